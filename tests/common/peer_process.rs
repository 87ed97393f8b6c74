//! A real third-party client run as a child process: it prints one JSON
//! line per rebalance it completes and leaves its group when stdin closes.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::within;

pub struct PeerProcess {
    name: &'static str,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl PeerProcess {
    /// Starts `command`; it is killed if the test ends without
    /// [`PeerProcess::leave`].
    pub fn spawn(name: &'static str, mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        PeerProcess { name, child, lines }
    }

    /// Waits for a rebalance report whose owned partitions, as `owned`
    /// reads them from the JSON line, equal `want`.
    pub async fn reports(&mut self, want: &BTreeSet<i32>, owned: impl Fn(&serde_json::Value) -> Option<BTreeSet<i32>>) {
        let what = format!("{} to report owning {want:?}", self.name);
        let name = self.name;
        within(&what, Duration::from_secs(40), async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .unwrap_or_else(|e| panic!("read {name}: {e}"))
                    .unwrap_or_else(|| panic!("{name} exited"));
                let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                if owned(&v).as_ref() == Some(want) {
                    return;
                }
            }
        })
        .await;
    }

    /// Closes its stdin: the client leaves its group and exits.
    pub async fn leave(mut self) {
        drop(self.child.stdin.take());
        let what = format!("{} to leave", self.name);
        let _ = within(&what, Duration::from_secs(30), self.child.wait()).await;
    }
}
