//! What the inspecting subcommands share: the ZooKeeper flags, the output
//! format, and aligned tables.

use std::time::Duration;

use zkbalance::inspect::InspectError;

use crate::errors::CliError;
use crate::security::ZkSecurity;

#[derive(clap::Args, Clone)]
pub struct ZkArgs {
    /// ZooKeeper: `HOST:PORT[,HOST:PORT...][/chroot]`.
    #[arg(short = 'z', long, env = "ZKB_ZOOKEEPER", value_name = "CONNECT")]
    pub zookeeper: String,
    /// Longest wait for ZooKeeper, and for each Kafka request (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub security: ZkSecurity,
}

/// A positive duration as humans write it: `10s`, `500ms`, `1m`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 10s, 500ms)"))?;
    if d.is_zero() {
        return Err("must be positive".into());
    }
    Ok(d)
}

impl ZkArgs {
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn connect(&self) -> Result<zkbalance::coord::ZkClient, CliError> {
        Ok(zkbalance::inspect::connect(&self.zookeeper, &self.security.access()?, self.timeout()).await?)
    }
}

/// Prints a warning line on stderr, in the form every error line has.
pub fn warn(message: impl std::fmt::Display) {
    eprintln!("zkbc: warning: {message}");
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// One JSON document.
    Json,
}

/// Columns padded to their widest cell; numbers right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| rows.iter().all(|r| r[i] == "-" || r[i].parse::<i64>().is_ok()) && !rows.is_empty())
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(
                |(i, c)| if numeric[i] { format!("{c:>w$}", w = widths[i]) } else { format!("{c:<w$}", w = widths[i]) },
            )
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string)
}

impl From<InspectError> for CliError {
    fn from(e: InspectError) -> Self {
        match e {
            InspectError::Connect(c) => c.into(),
            InspectError::UnknownGroup(_) => CliError::UnknownGroup(e.to_string()),
            InspectError::UnknownTopic(_) => CliError::UnknownTopic(e.to_string()),
            InspectError::Malformed(m) => CliError::Malformed(m.to_string()),
            InspectError::BadName(_) => CliError::Usage(e.to_string()),
            InspectError::Kafka(_) => CliError::Kafka(e.to_string()),
            InspectError::Active { .. } => CliError::Refused(e.to_string()),
            InspectError::ZooKeeper(_) => CliError::Internal(e.to_string()),
        }
    }
}
