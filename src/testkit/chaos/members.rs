//! Group members as real processes: `zkbc consume --audit`, each
//! reaching ZooKeeper through a link of its own (so it can be cut off
//! alone), with every audit line parsed as it arrives.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStdout;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::checker::{Delivery, MemberEvent};
use super::now_us;
use crate::testkit::process::{self, Supervised};
use crate::testkit::{TestkitError, ZkLink};

/// What every member's reader appends to.
#[derive(Debug, Default, Clone)]
pub(crate) struct Journal {
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    pub events: Arc<Mutex<Vec<(u64, String, MemberEvent)>>>,
}

impl Journal {
    pub fn event(&self, member: &str, e: MemberEvent) {
        self.events.lock().push((now_us(), member.to_owned(), e));
    }
}

/// How members are started.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub zkbc: PathBuf,
    pub group: String,
    pub topic: String,
    pub flavour: &'static str,
    pub session_timeout: Duration,
    pub commit_interval: Duration,
    pub mutant: Option<String>,
    /// Flags and environment of a secured server (SASL, TLS).
    pub security_args: Vec<String>,
    pub security_env: Vec<(String, String)>,
    pub logs: PathBuf,
}

/// One member process.
pub(crate) struct MemberProcess {
    pub id: String,
    pub link: ZkLink,
    process: Supervised,
    reader: JoinHandle<()>,
    /// While true the reader stops reading: the member blocks writing its
    /// output, as a busy application would, with fetched messages in hand.
    hold: watch::Sender<bool>,
    pub log: PathBuf,
    pub paused: bool,
}

/// A small pipe, so that holding the reader backs the member up within a
/// few dozen lines.
const PIPE_BYTES: libc::c_int = 4096;

fn parse(line: &str, seq: u64) -> Option<Result<Delivery, String>> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("event").is_some() {
        return Some(Err(v["member"].as_str()?.to_owned()));
    }
    Some(Ok(Delivery {
        member: v["member"].as_str()?.to_owned(),
        session: v["session"].as_u64()?,
        generation: v["generation"].as_u64()?,
        partition: i32::try_from(v["partition"].as_i64()?).ok()?,
        offset: v["offset"].as_u64()?,
        at_us: v["at_us"].as_u64()?,
        seq,
    }))
}

impl MemberProcess {
    /// Starts a member and waits until it has joined (its first audit line).
    pub async fn start(launch: &Launch, link: ZkLink, n: usize, journal: &Journal) -> Result<Self, TestkitError> {
        let log = launch.logs.join(format!("member-{n}.log"));
        let log_file = std::fs::File::create(&log)
            .map_err(|source| TestkitError::Io { what: format!("creating {}", log.display()), source })?;
        let mut cmd = Command::new(&launch.zkbc);
        cmd.args(["consume", "--zookeeper", &link.connect_string(), "--group", &launch.group])
            .args(["--topic", &launch.topic, "--flavour", launch.flavour, "--offset-reset", "earliest", "--audit"])
            .arg(format!("--session-timeout={}ms", launch.session_timeout.as_millis()))
            .arg(format!("--commit-interval={}ms", launch.commit_interval.as_millis()))
            .env(
                "RUST_LOG",
                std::env::var("ZKB_CHAOS_RUST_LOG")
                    .unwrap_or_else(|_| "warn,zkbalance=info,librdkafka=error,zookeeper_client=error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        if let Some(m) = &launch.mutant {
            cmd.env("ZKBALANCE_MUTANT", m);
        }
        cmd.args(&launch.security_args).envs(launch.security_env.iter().map(|(k, v)| (k, v)));
        let child = process::spawn(cmd)
            .map_err(|source| TestkitError::Io { what: format!("starting {}", launch.zkbc.display()), source })?;
        let mut process = Supervised::new(child, format!("member {n}"));
        let stdout = process.child_mut().and_then(|c| c.stdout.take()).expect("piped");
        {
            use std::os::fd::AsRawFd;
            // SAFETY: fcntl on a pipe descriptor we own; failure only
            // leaves the default size.
            unsafe {
                libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES);
            }
        }
        let stdout = ChildStdout::from_std(stdout)
            .map_err(|source| TestkitError::Io { what: "member stdout".into(), source })?;
        let (id_tx, mut id_rx) = watch::channel(None::<String>);
        let (hold, mut held) = watch::channel(false);
        let deliveries = Arc::clone(&journal.deliveries);
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut seq = 0;
            // A line cut short by SIGKILL is not a delivery the member made.
            loop {
                if held.wait_for(|h| !*h).await.is_err() {
                    return;
                }
                let Ok(Some(line)) = lines.next_line().await else { return };
                match parse(&line, seq) {
                    Some(Ok(d)) => {
                        seq += 1;
                        deliveries.lock().push(d);
                    }
                    Some(Err(member)) => {
                        id_tx.send_replace(Some(member));
                    }
                    None => {}
                }
            }
        });
        let joined = tokio::time::timeout(launch.session_timeout * 4 + Duration::from_secs(10), async {
            id_rx.wait_for(Option::is_some).await.ok().and_then(|id| id.clone())
        })
        .await;
        let Ok(Some(id)) = joined else {
            return Err(TestkitError::Timeout {
                what: format!("member {n} to join (log: {})", tail(&log)),
                waited: launch.session_timeout * 4 + Duration::from_secs(10),
            });
        };
        journal.event(&id, MemberEvent::Started);
        Ok(MemberProcess { id, link, process, reader, hold, log, paused: false })
    }

    /// Stops or resumes reading the member's output.
    pub fn hold_output(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    pub fn is_running(&mut self) -> bool {
        !self.process.has_exited()
    }

    /// SIGSTOP: a GC pause or a frozen VM.
    pub fn pause(&mut self) {
        self.process.signal(libc::SIGSTOP);
        self.paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.process.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// SIGKILL, and the reader drains what was printed before.
    pub async fn kill(&mut self, journal: &Journal) {
        journal.event(&self.id, MemberEvent::Killed);
        self.process.kill();
        self.hold_output(false);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.reader).await;
        journal.event(&self.id, MemberEvent::Gone);
    }

    /// SIGTERM: the member commits, releases and leaves; waits for it to
    /// exit (its stdout closing). An error if it does not within `within`.
    pub async fn stop(&mut self, journal: &Journal, within: Duration) -> Result<(), TestkitError> {
        journal.event(&self.id, MemberEvent::Stopping);
        self.hold_output(false);
        if self.paused {
            self.resume();
        }
        self.process.signal(libc::SIGTERM);
        let exited = tokio::time::timeout(within, &mut self.reader).await.is_ok();
        // Reaps it (or kills it, if it hung).
        self.process.kill();
        journal.event(&self.id, MemberEvent::Gone);
        if exited {
            Ok(())
        } else {
            Err(TestkitError::Timeout {
                what: format!("member {} to stop cleanly (log: {})", self.id, tail(&self.log)),
                waited: within,
            })
        }
    }
}

/// The last lines of a member's log, for failure messages.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}
