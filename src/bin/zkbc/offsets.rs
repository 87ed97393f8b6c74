//! `zkbc offsets reset`.

use zkbalance::cluster;
use zkbalance::inspect::{self, KafkaSide, ResetTarget};
use zkbalance::offsets::OffsetStorage;

use crate::common::{table, Format, ZkArgs};
use crate::errors::CliError;

#[derive(clap::Subcommand)]
pub enum OffsetsCommand {
    /// Move a group's committed offsets of a topic. Refuses while members are active unless --force.
    Reset {
        /// The group.
        group: String,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, or a time (RFC 3339, e.g. 2026-11-22T10:00:00Z, or @<ms since epoch>).
        #[arg(long)]
        to: String,
        #[command(flatten)]
        zk: ZkArgs,
        #[command(flatten)]
        kafka: crate::security::KafkaArgs,
        /// Where to write: zookeeper, kafka, or dual (both).
        #[arg(long, default_value = "dual")]
        offset_storage: OffsetStorage,
        /// Reset even while members are registered (they may overwrite it).
        #[arg(long)]
        force: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

fn target(to: &str) -> Result<ResetTarget, CliError> {
    Ok(match to {
        "earliest" => ResetTarget::Earliest,
        "latest" => ResetTarget::Latest,
        t if t.starts_with('@') => ResetTarget::Timestamp(
            t[1..].parse().map_err(|_| CliError::Usage(format!("--to {t}: expected @<ms since the epoch>")))?,
        ),
        t if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() => {
            ResetTarget::Offset(t.parse().map_err(|_| CliError::Usage(format!("--to {t}: offset out of range")))?)
        }
        t => {
            let time = humantime::parse_rfc3339_weak(t).map_err(|_| {
                CliError::Usage(format!("--to {t}: expected earliest, latest, an offset, an RFC 3339 time or @<ms>"))
            })?;
            let ms = time
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| CliError::Usage(format!("--to {t}: before 1970")))?;
            ResetTarget::Timestamp(ms.as_millis() as i64)
        }
    })
}

pub async fn run(cmd: OffsetsCommand) -> Result<(), CliError> {
    let OffsetsCommand::Reset { group, topic, to, zk, kafka, offset_storage, force, format } = cmd;
    let target = target(&to)?;
    let client = zk.connect().await?;
    let view = cluster::read_brokers(&client).await?;
    let kafka = KafkaSide::new(&view, &group, zk.timeout(), &kafka.access())?;
    let offsets = inspect::reset_offsets(&client, &kafka, &group, &topic, target, offset_storage, force).await?;
    match format {
        Format::Json => {
            let json: Vec<_> =
                offsets.iter().map(|(p, o)| serde_json::json!({"topic": topic, "partition": p, "offset": o})).collect();
            println!("{}", serde_json::to_string_pretty(&json).expect("serializable"));
        }
        Format::Table => {
            let rows: Vec<Vec<String>> =
                offsets.iter().map(|(p, o)| vec![topic.clone(), p.to_string(), o.to_string()]).collect();
            print!("{}", table(&["TOPIC", "PARTITION", "NEW-OFFSET"], &rows));
        }
    }
    Ok(())
}
