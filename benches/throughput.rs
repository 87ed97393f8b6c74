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

fn raw_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.error.backoff.ms", "10")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("raw consumer")
}

/// Assigns every partition of the bench topic from the beginning, in one call.
fn assign_all(consumer: &BaseConsumer) {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
}

/// A raw consumer: manual assignment, poll, touch every payload.
fn raw(bootstrap: &str, group: &str, total: u64) -> (Duration, u64) {
    let consumer = raw_consumer(bootstrap, group);
    assign_all(&consumer);
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

/// A one-member group on the bench topic, without auto-commit.
async fn balanced(zk: &str, group: &str) -> BalancedConsumer {
    BalancedConsumer::builder().zookeeper(zk).group(group).topic(TOPIC).auto_commit(None).start().await.expect("start")
}

async fn ours(zk: &str, group: &str, total: u64) -> (Duration, u64, Duration, u64) {
    let mut consumer = balanced(zk, group).await;
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
            .expect("a message")
            .unwrap_or_else(|e| panic!("BalancedConsumer error at {n}: {e}"));
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
    consumer.stop().await.expect("stop");
    (took, bytes, gap, gap_at)
}

/// From creating a raw consumer (assigned every partition from the
/// beginning at once, after asking for the topic's metadata if `warm`) to
/// its first message.
fn raw_first(bootstrap: &str, group: &str, warm: bool) -> Duration {
    let t0 = Instant::now();
    let consumer = raw_consumer(bootstrap, group);
    if warm {
        consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(10)).expect("metadata");
    }
    assign_all(&consumer);
    loop {
        assert!(t0.elapsed() < Duration::from_secs(30), "raw consumer: no first message in 30 s");
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            return t0.elapsed();
        }
    }
}

/// From `start()` of a one-member group (connect, join, claim, offsets,
/// fetch) to its first message.
async fn ours_first(zk: &str, group: &str) -> Duration {
    let t0 = Instant::now();
    let mut consumer = balanced(zk, group).await;
    let first = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("BalancedConsumer: no first message in 30 s")
        .expect("a message")
        .expect("no consumer error");
    let took = t0.elapsed();
    first.ack();
    consumer.stop().await.expect("stop");
    took
}

/// From spawning `zkbc consume` to the first byte of its standard output:
/// the whole start as a user sees it, process included.
async fn zkbc_first(zk: &str, group: &str) -> Duration {
    use tokio::io::AsyncReadExt;
    let t0 = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"))
        .args(["consume", "--zookeeper", zk, "--group", group, "--topic", TOPIC, "-c", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("zkbc runs");
    let mut stdout = child.stdout.take().expect("piped");
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut byte))
        .await
        .expect("zkbc: no output within 30 s")
        .expect("zkbc's stdout");
    assert_eq!(n, 1, "zkbc wrote its first message");
    let took = t0.elapsed();
    let status =
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("zkbc exits").expect("status");
    assert!(status.success(), "zkbc consume -c 1 failed: {status}");
    took
}

/// `zkbc consume` from the beginning of the topic to `/dev/null`: msg/s
/// from its first message to its last one written, as it reports it.
async fn zkbc(zk: &str, group: &str, format: &str, total: u64) -> f64 {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"))
        .args(["consume", "--zookeeper", zk, "--group", group, "--topic", TOPIC])
        .args(if format == "json" { &["-J"][..] } else { &[] })
        .args(["-c", &total.to_string(), "--commit-interval", "60s"])
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
    let (mut raw_rates, mut our_rates, mut ratios, mut longest) = (Vec::new(), Vec::new(), Vec::new(), Duration::ZERO);
    for round in 0..rounds {
        let (b, g) = (bootstrap.clone(), format!("raw-{round}"));
        let (t_raw, bytes_raw) = tokio::task::spawn_blocking(move || raw(&b, &g, total)).await.unwrap();
        let (t_ours, bytes_ours, gap, gap_at) = ours(&zk.connect_string(), &format!("ours-{round}"), total).await;
        assert_eq!(bytes_raw, bytes_ours, "both read the same bytes");
        let (r, o) = (total as f64 / t_raw.as_secs_f64(), total as f64 / t_ours.as_secs_f64());
        println!(
            "  round {round}: raw rdkafka {r:>10.0} msg/s   BalancedConsumer {o:>10.0} msg/s   ratio {:.3}   longest wait {:>6.1} ms (after message {gap_at})",
            o / r,
            gap.as_secs_f64() * 1e3,
        );
        raw_rates.push(r);
        our_rates.push(o);
        ratios.push(o / r);
        longest = longest.max(gap);
    }
    let (r, o) = (median(raw_rates), median(our_rates));
    let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    println!("median: raw rdkafka {r:.0} msg/s, BalancedConsumer {o:.0} msg/s");
    println!("ratio (BalancedConsumer / raw rdkafka): {:.3}; lowest round {lowest:.3}", o / r);
    println!("longest wait between two of our messages, all rounds: {:.1} ms", longest.as_secs_f64() * 1e3);

    // Start to first message, all from nothing: the raw consumer from its
    // creation, ours from `start()` (which also joins the group), and the
    // `zkbc consume` process from its spawn to the first byte it writes.
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut firsts: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds {
        let mut t = [0.0; 4];
        for (i, warm) in [(0, false), (1, true)] {
            let (b, g) = (bootstrap.clone(), format!("raw-first-{i}-{round}"));
            t[i] = ms(tokio::task::spawn_blocking(move || raw_first(&b, &g, warm)).await.unwrap());
        }
        t[2] = ms(ours_first(&zk.connect_string(), &format!("ours-first-{round}")).await);
        t[3] = ms(zkbc_first(&zk.connect_string(), &format!("zkbc-first-{round}")).await);
        println!(
            "  start -> first message, round {round}: raw rdkafka {:>6.1} ms, raw after metadata {:>6.1} ms, BalancedConsumer {:>6.1} ms, zkbc consume process {:>6.1} ms",
            t[0], t[1], t[2], t[3]
        );
        for (v, x) in firsts.iter_mut().zip(t) {
            v.push(x);
        }
    }
    let [raw, warm, ours, process] = firsts.map(median);
    println!(
        "median start -> first message: raw rdkafka {raw:.1} ms, raw after metadata {warm:.1} ms, BalancedConsumer {ours:.1} ms ({:+.1} ms against raw, {:+.1} ms against raw after metadata), zkbc consume process {process:.1} ms",
        ours - raw,
        ours - warm
    );

    for format in ["text", "json"] {
        let mut rates = Vec::new();
        for round in 0..rounds {
            let rate = zkbc(&zk.connect_string(), &format!("zkbc-{format}-{round}"), format, total).await;
            println!("  zkbc consume ({format}) > /dev/null, round {round}: {rate:>10.0} msg/s");
            rates.push(rate);
        }
        let z = median(rates);
        println!("median: zkbc consume ({format}) {z:.0} msg/s; ratio to raw rdkafka's median {:.3}", z / r);
    }
}
