//! Throughput of `BalancedConsumer` against a raw rdkafka consumer assigned
//! the same partitions, on the same mock cluster, in one run.
//!
//! ```text
//! cargo bench --features cli --bench throughput
//! ZKB_BENCH_MESSAGES=300000 ZKB_BENCH_ROUNDS=5 cargo bench --features cli --bench throughput
//! ```
//!
//! Both read every message from the beginning of a 12-partition topic with
//! the same librdkafka settings (the consumer's defaults:
//! `fetch.queue.backoff.ms=10`, `fetch.error.backoff.ms=10`,
//! `fetch.wait.max.ms=100`, the rest librdkafka's). Each gets a 100 ms head start once its
//! partitions are assigned (for ours: once the group member has claimed all
//! twelve, so joining is not counted); the clock then runs from the first
//! message to the last. Ours also acknowledges each message. Rounds
//! alternate between the two; the ratio of medians is printed.
//!
//! Then `zkbc consume` itself, as a user runs it, with its output to
//! `/dev/null`: `--format text` and `--format json` rounds, each timed by
//! the process from its first message to its last one written (the line
//! `output: N messages in S s from the first` on its stderr), reported in
//! msg/s and against the raw consumer's median of the same run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use zkbalance::consumer::BalancedConsumer;
use zkbalance::testkit::{KafkaCluster, ZooKeeper};

const TOPIC: &str = "bench";
const PARTITIONS: i32 = 12;
/// Both consumers prefetch this long before the clock starts.
const HEAD_START: Duration = Duration::from_millis(100);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A raw consumer: manual assignment, poll, touch every payload.
fn raw(bootstrap: &str, group: &str, total: u64) -> (Duration, u64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.error.backoff.ms", "10")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("raw consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    std::thread::sleep(HEAD_START);
    let (mut n, mut bytes, mut first) = (0u64, 0u64, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while n < total {
        assert!(Instant::now() < deadline, "raw consumer stalled at {n}");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, |p| p.len() as u64);
            n += 1;
        }
    }
    (first.unwrap().elapsed(), bytes)
}

async fn ours(zk: &str, group: &str, total: u64) -> (Duration, u64) {
    let mut consumer = BalancedConsumer::builder()
        .zookeeper(zk)
        .group(group)
        .topic(TOPIC)
        .auto_commit(None)
        .start()
        .await
        .expect("BalancedConsumer");
    // Joining and claiming are not throughput: start once every partition
    // is claimed and fetching, with the same head start as the raw consumer.
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.metrics().partitions.len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "BalancedConsumer did not claim every partition");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(HEAD_START).await;
    let (mut n, mut bytes, mut first) = (0u64, 0u64, None);
    let (mut last, mut gap, mut gap_at) = (None::<Instant>, Duration::ZERO, 0);
    while n < total {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("BalancedConsumer stalled at {n}"))
            .expect("a message");
        let now = Instant::now();
        if let Some(prev) = last.replace(now) {
            if now - prev > gap {
                gap = now - prev;
                gap_at = n;
            }
        }
        first.get_or_insert(now);
        bytes += m.payload().map_or(0, |p| p.len() as u64);
        m.ack();
        n += 1;
    }
    let took = first.unwrap().elapsed();
    if gap > Duration::from_millis(50) {
        println!("    (longest wait between two messages: {gap:?}, after message {gap_at})");
    }
    consumer.stop().await.expect("stop");
    (took, bytes)
}

/// `zkbc consume` from the beginning of the topic to `/dev/null`: msg/s
/// from its first message to its last one written, as it reports it.
async fn zkbc(zk: &str, group: &str, format: &str, total: u64) -> f64 {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"))
        .args(["consume", "--zookeeper", zk, "--group", group, "--topic", TOPIC, "--format", format])
        .args(["--max-messages", &total.to_string(), "--commit-interval-ms", "60000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("zkbc runs");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("zkbc finished within 120 s")
        .expect("zkbc's output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "zkbc failed: {stderr}");
    let line =
        stderr.lines().find_map(|l| l.strip_prefix("output: ")).unwrap_or_else(|| panic!("no output line: {stderr}"));
    let mut words = line.split_whitespace();
    let n: f64 = words.next().and_then(|w| w.parse().ok()).expect("a count");
    let secs: f64 = words.nth(2).and_then(|w| w.parse().ok()).expect("seconds");
    assert_eq!(n as u64, total, "zkbc wrote every message");
    n / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total = env("ZKB_BENCH_MESSAGES", 300_000);
    let rounds = env("ZKB_BENCH_ROUNDS", 5);
    let zk = ZooKeeper::standalone().await.expect("ZooKeeper");
    let mut kafka = KafkaCluster::start(&zk.connect_string(), 1).await.expect("mock Kafka");
    kafka.create_topic(TOPIC, PARTITIONS, 1).await.expect("topic");
    kafka.produce_generated(TOPIC, total, 100).await.expect("produce");
    let bootstrap = kafka.bootstrap_servers().to_owned();
    println!("{total} messages of 100 bytes over {PARTITIONS} partitions, {rounds} rounds each (release build)");
    let (mut raw_rates, mut our_rates) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (b, g) = (bootstrap.clone(), format!("raw-{round}"));
        let (t_raw, bytes_raw) = tokio::task::spawn_blocking(move || raw(&b, &g, total)).await.unwrap();
        let (t_ours, bytes_ours) = ours(&zk.connect_string(), &format!("ours-{round}"), total).await;
        assert_eq!(bytes_raw, bytes_ours, "both read the same bytes");
        let (r, o) = (total as f64 / t_raw.as_secs_f64(), total as f64 / t_ours.as_secs_f64());
        println!(
            "  round {round}: raw rdkafka {r:>10.0} msg/s   BalancedConsumer {o:>10.0} msg/s   ratio {:.3}",
            o / r
        );
        raw_rates.push(r);
        our_rates.push(o);
    }
    let (r, o) = (median(raw_rates), median(our_rates));
    println!("median: raw rdkafka {r:.0} msg/s, BalancedConsumer {o:.0} msg/s");
    println!("ratio (BalancedConsumer / raw rdkafka): {:.3}", o / r);

    for format in ["text", "json"] {
        let mut rates = Vec::new();
        for round in 0..rounds {
            let rate = zkbc(&zk.connect_string(), &format!("zkbc-{format}-{round}"), format, total).await;
            println!("  zkbc consume --format {format} > /dev/null, round {round}: {rate:>10.0} msg/s");
            rates.push(rate);
        }
        let z = median(rates);
        println!("median: zkbc consume --format {format} {z:.0} msg/s; ratio to raw rdkafka's median {:.3}", z / r);
    }
}
