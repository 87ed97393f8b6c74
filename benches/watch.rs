//! How soon `zkbc group watch` prints an ownership change, against a raw
//! ZooKeeper watch on the same server in the same run.
//!
//! ```text
//! cargo bench --features cli --bench watch
//! ZKB_BENCH_TRIALS=500 cargo bench --features cli --bench watch
//! ```
//!
//! Each trial creates a Scala-layout owner znode, waits for the line
//! `owned <topic>/<p> by <owner>` on the watcher's stdout, deletes it and
//! waits for `released`: each timed from the moment the create (or delete)
//! was sent. The baseline is a persistent recursive watch held by this
//! process on the same group, timed the same way (the request's round trip
//! and ZooKeeper's notification): the ratio is what the subcommand costs
//! on top (its own read of the new owner znode, formatting, the pipe).

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use zkbalance::testkit::ZooKeeper;
use zookeeper_client::{Acls, AddWatchMode, CreateMode, EventType};

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn report(what: &str, mut waits: Vec<Duration>) -> Duration {
    waits.sort();
    let median = percentile(&waits, 0.5);
    println!(
        "{what:<28} median {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        median.as_secs_f64() * 1e3,
        percentile(&waits, 0.99).as_secs_f64() * 1e3,
        waits.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    median
}

#[tokio::main]
async fn main() {
    let trials: usize = std::env::var("ZKB_BENCH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let zk = ZooKeeper::standalone().await.expect("a ZooKeeper server");
    let z = zk.connect_string();
    let client = zkbalance::testkit::connect(&z, Duration::from_secs(6)).await.expect("connect");
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir("/consumers/bench/owners/t", &persistent).await.expect("group dirs");
    client.mkdir("/consumers/bench/ids", &persistent).await.expect("group dirs");

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"))
        .args(["group", "watch", "bench", "-z", &z])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("zkbc group watch");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_with = async |needle: &str| loop {
        let line = lines.next_line().await.expect("read").expect("zkbc group watch runs");
        if line.contains(needle) {
            return;
        }
    };
    next_with("group bench:").await;
    let mut raw = client.watch("/consumers/bench", AddWatchMode::PersistentRecursive).await.expect("a watch");
    let path = "/consumers/bench/owners/t/0";
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        let at = Instant::now();
        client.create(path, b"bench_m-1-0000000a-0", &persistent).await.expect("create");
        while raw.changed().await.event_type != EventType::NodeCreated {}
        baseline.push(at.elapsed());
        next_with("owned     t/0 by bench_m-1-0000000a").await;
        ours.push(at.elapsed());
        let at = Instant::now();
        client.delete(path, None).await.expect("delete");
        while raw.changed().await.event_type != EventType::NodeDeleted {}
        baseline.push(at.elapsed());
        next_with("released  t/0").await;
        ours.push(at.elapsed());
    }
    println!("{trials} trials, {} changes each way (create and delete):", trials);
    let base = report("raw ZooKeeper watch", baseline);
    let watch = report("zkbc group watch line", ours);
    println!(
        "ratio of medians (zkbc group watch / raw watch): {:.2}",
        watch.as_secs_f64() / base.as_secs_f64().max(1e-9)
    );
    child.kill().await.ok();
}
