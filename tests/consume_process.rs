//! `zkbc consume` as a separate process, killed with SIGKILL mid-stream.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::consumer::{consumer, Ledger, Running};
use common::group::topic_cluster;
use common::within;
use tokio::io::{AsyncBufReadExt, BufReader};
use zkbalance::testkit::protocol::parse_generated_value;
use zkbalance::znode::{layout, Codec, Flavour, ZkOffset};

const TOTAL: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_stream_loses_nothing_and_duplicates_only_the_uncommitted_window() {
    let (zk, mut kafka) = topic_cluster("crash", 4).await;
    kafka.produce_generated("crash", TOTAL, 100).await.expect("produce");
    let connect = zk.connect_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"))
        .args(["consume", "--zookeeper", &connect, "--group", "crash", "--topic", "crash", "--flavour", "scala"])
        .args(["--offset-reset", "earliest", "-J", "--commit-interval", "100ms", "--session-timeout", "2s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run zkbc consume");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // (seq, partition, offset) as printed by the process.
    let mut printed: Vec<(u64, i32, u64)> = Vec::new();
    let parse = |line: String| {
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let value = v["payload"].as_str().expect("payload");
        let seq = parse_generated_value("crash", value.as_bytes()).expect("a generated value");
        (seq, v["partition"].as_i64().unwrap() as i32, v["offset"].as_u64().unwrap())
    };
    // The process alone owns everything (committing every 100 ms); it is
    // killed well under way, while the pipe holds it back.
    while printed.len() < 3_000 {
        let line =
            within("zkbc to print", Duration::from_secs(20), lines.next_line()).await.expect("read").expect("a line");
        printed.push(parse(line));
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("reap");
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push(line);
    }
    // SIGKILL can cut a write short: a last line that is not whole was not
    // printed (nor acknowledged).
    if rest.last().is_some_and(|l| serde_json::from_str::<serde_json::Value>(l).is_err()) {
        rest.pop();
    }
    printed.extend(rest.into_iter().map(parse));
    // What the killed process had committed: nothing can move it now.
    let observer = zkbalance::testkit::connect(&connect, Duration::from_secs(6)).await.expect("observer");
    let (g, t) = (zkbalance::GroupId::new("crash").unwrap(), zkbalance::TopicName::new("crash").unwrap());
    let mut committed = BTreeMap::new();
    for p in 0..4 {
        let path = layout::offset(&g, &t, zkbalance::PartitionId(p));
        let offset = match observer.get_data(&path).await {
            Ok((bytes, _)) => ZkOffset::decode(&path, &bytes).expect("decimal").0,
            Err(_) => 0,
        };
        committed.insert(p, offset);
    }
    let ledger = Ledger::default();
    let peer = consumer(&connect, "crash", "crash").flavour(Flavour::Scala).offset_reset("earliest".parse().unwrap());
    let peer = Running::spawn("peer", peer.start().await.expect("start the peer"), ledger.clone(), "crash");
    // The dead member's owner znodes last until its session (2 s) expires.
    let from_process: std::collections::BTreeSet<u64> = printed.iter().map(|p| p.0).collect();
    within("the peer to deliver the rest", Duration::from_secs(30), async {
        while ledger.all().iter().filter(|(s, _)| !from_process.contains(s)).count()
            < (TOTAL as usize - from_process.len())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for (s, _, _) in &printed {
        *seen.entry(*s).or_default() += 1;
    }
    let mut duplicates = 0;
    for (s, d) in ledger.all() {
        let n = seen.entry(s).or_default();
        *n += 1;
        if *n > 1 {
            duplicates += 1;
            assert!(
                d.offset >= committed[&d.partition],
                "seq {s} redelivered at {}@{} below the committed offset {}",
                d.partition,
                d.offset,
                committed[&d.partition]
            );
        }
    }
    let lost: Vec<u64> = (0..TOTAL).filter(|s| !seen.contains_key(s)).collect();
    let window: u64 = (0..4)
        .map(|p| {
            let last = printed.iter().filter(|x| x.1 == p).map(|x| x.2 + 1).max().unwrap_or(0);
            last.saturating_sub(committed[&p])
        })
        .sum();
    peer.stop().await;
    assert!(lost.is_empty(), "{} messages lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    assert_eq!(duplicates, window, "duplicates are exactly the printed-but-uncommitted window");
    eprintln!(
        "kill -9 after {} messages printed: committed {committed:?}; {duplicates} duplicates (the uncommitted window), 0 lost",
        printed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_serves_prometheus_metrics_over_http() {
    let (zk, mut kafka) = topic_cluster("scraped", 2).await;
    kafka.produce_generated("scraped", 300, 50).await.expect("produce");
    let addr = common::free_addr();
    let z = zk.connect_string();
    let member = |extra: &[&str]| {
        let args = [&["consume", "--zookeeper", &z, "--group", "scraped", "--topic", "scraped"], extra].concat();
        common::cli::zkbc(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn()
    };
    let _child =
        member(&["--metrics-addr", &addr.to_string(), "--commit-interval", "100ms"]).expect("run zkbc consume");
    // Published every second: wait for the figures of all 300.
    let body = zkbalance::testkit::wait_until("the metrics of 300 messages", Duration::from_secs(20), || async {
        common::scrape(addr).await.filter(|b| b.contains(r#"zkbalance_messages_total{group="scraped"} 300"#))
    })
    .await
    .expect("scraped");
    for series in [
        r#"zkbalance_owned_partitions{group="scraped"} 2"#,
        r#"zkbalance_lag{group="scraped",topic="scraped",partition="0"}"#,
        r#"zkbalance_outstanding_acks{group="scraped",topic="scraped",partition="1"}"#,
        "zkbalance_commits_total",
        "zkbalance_commit_seconds",
        "zkbalance_rebalances_total",
        "zkbalance_fetch_errors_total",
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }

    // A second member takes one partition: the first one's gauges of it go
    // (the idle timeout), those of the partition it keeps stay.
    let _peer = member(&[]).expect("run a second zkbc consume");
    let series = |p: i32| format!(r#"zkbalance_outstanding_acks{{group="scraped",topic="scraped",partition="{p}"}}"#);
    let wait = zkbalance::consumer::GAUGE_IDLE_TIMEOUT + Duration::from_secs(20);
    let body = zkbalance::testkit::wait_until("the revoked partition's gauges to go", wait, || async {
        common::scrape(addr).await.filter(|b| b.contains(&series(0)) != b.contains(&series(1)))
    })
    .await
    .expect("scraped after the rebalance");
    assert!(body.contains(r#"zkbalance_owned_partitions{group="scraped"} 1"#), "one partition left:\n{body}");
}
