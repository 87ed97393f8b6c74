//! `zkbc group watch`: the group's members and owners as ZooKeeper's
//! watches report them, each change stamped with the time it was seen.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};

use zkbalance::inspect::{self, GroupChange, GroupWatch};

use crate::common::ZkArgs;
use crate::errors::CliError;

#[derive(clap::Args)]
pub struct Args {
    /// The group.
    group: String,
    #[command(flatten)]
    zk: ZkArgs,
}

/// Changes kept under the redrawn view.
const RECENT: usize = 15;

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

fn line(change: &GroupChange) -> String {
    match change {
        GroupChange::Joined { member } => format!("joined    {member}"),
        GroupChange::Left { member } => format!("left      {member}"),
        GroupChange::Owned { topic, partition, owner } => format!("owned     {topic}/{partition} by {owner}"),
        GroupChange::Released { topic, partition, owner } => format!("released  {topic}/{partition} by {owner}"),
        other => format!("{other:?}"),
    }
}

/// Partitions as ranges: `0-3,7`.
fn ranges(ps: &[i32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ps.len() {
        let mut j = i;
        while j + 1 < ps.len() && ps[j + 1] == ps[j] + 1 {
            j += 1;
        }
        out.push(if i == j { ps[i].to_string() } else { format!("{}-{}", ps[i], ps[j]) });
        i = j + 1;
    }
    out.join(",")
}

/// Each member (and each owner that is not a member) with what it owns.
fn assignment(w: &GroupWatch) -> Vec<String> {
    let mut by_member: BTreeMap<String, BTreeMap<String, Vec<i32>>> =
        w.members().iter().map(|m| (m.clone(), BTreeMap::new())).collect();
    for ((topic, p), owner) in w.owners() {
        by_member.entry(owner).or_default().entry(topic).or_default().push(p);
    }
    by_member
        .into_iter()
        .map(|(member, topics)| {
            let owned: Vec<String> = topics.iter().map(|(t, ps)| format!("{t} {}", ranges(ps))).collect();
            let unregistered = if w.members().contains(&member) { "" } else { " (not registered)" };
            let owned = if owned.is_empty() { "-".to_owned() } else { owned.join("  ") };
            format!("  {member}{unregistered}: {owned}")
        })
        .collect()
}

pub async fn run(args: Args) -> Result<(), CliError> {
    let client = args.zk.connect().await?;
    let mut w = inspect::watch_group(&client, &args.group).await?;
    let live = std::io::stdout().is_terminal();
    let mut recent: VecDeque<String> = VecDeque::new();
    let mut out = std::io::stdout();
    let header = |w: &GroupWatch| {
        format!(
            "{}  group {}: {} member(s), {} partition(s) owned",
            now(),
            args.group,
            w.members().len(),
            w.owners().len()
        )
    };
    let write = |out: &mut std::io::Stdout, text: String| -> Result<(), CliError> {
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| CliError::Internal(format!("writing to stdout: {e}")))
    };
    if !live {
        write(&mut out, format!("{}\n{}\n", header(&w), assignment(&w).join("\n")).replace("\n\n", "\n"))?;
    }
    loop {
        if live {
            let mut screen = format!("\x1b[2J\x1b[H{}\n{}\n", header(&w), assignment(&w).join("\n"));
            screen.push_str("\nchanges:\n");
            for l in &recent {
                screen.push_str(l);
                screen.push('\n');
            }
            write(&mut out, screen)?;
        }
        let changes = tokio::select! {
            changes = w.next() => changes?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let at = now();
        let lines: Vec<String> = changes.iter().map(|c| format!("{at}  {}", line(c))).collect();
        if live {
            recent.extend(lines);
            while recent.len() > RECENT {
                recent.pop_front();
            }
        } else {
            write(&mut out, lines.iter().map(|l| format!("{l}\n")).collect())?;
        }
    }
}
