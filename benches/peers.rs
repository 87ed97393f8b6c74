//! How fast a group takes in a peer that registers in two requests
//! (kafka-node: the member znode created empty, filled later), against a
//! peer that registers in one, in one run.
//!
//! ```text
//! cargo bench --features testkit --bench peers
//! ZKB_BENCH_ROUNDS=40 ZKB_BENCH_GAP_MS=3000 cargo bench --features testkit --bench peers
//! ```
//!
//! Two zkbalance members (Scala flavour, default timings) own a 6-partition
//! topic. Each round a peer joins — alternately in two requests (empty,
//! then the registration `ZKB_BENCH_GAP_MS` later) and in one — and claims
//! its Scala-range share the moment each owner znode is released. The
//! clock runs from the moment its registration became readable (the fill,
//! or the one create) until the owner znodes equal the split that counts
//! it, sampled every millisecond. Then the peer leaves, the group settles
//! back, and the next round starts 200 ms later. Medians and maxima are
//! printed, and the ratio of medians.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use zkbalance::coord::GroupBuilder;
use zkbalance::testkit::peer::{owner_payloads, scala_range, ScalaLayoutPeer};
use zkbalance::testkit::{KafkaCluster, ZooKeeper};
use zkbalance::znode::Flavour;
use zookeeper_client::Client;

const GROUP: &str = "bench";
const TOPIC: &str = "t";
const PARTITIONS: i32 = 6;
/// Pause between rounds: longer than the coalescing window (50 ms).
const QUIET: Duration = Duration::from_millis(200);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn owners(zk: &Client) -> BTreeMap<i32, String> {
    owner_payloads(zk, GROUP, TOPIC).await
}

/// The owners Scala range gives `members` (the peer's payload is its bare id).
fn split(members: &[&str], peer: Option<&str>) -> BTreeMap<i32, String> {
    let subs: BTreeMap<String, BTreeMap<String, u32>> =
        members.iter().map(|m| (m.to_string(), [(TOPIC.to_string(), 1)].into_iter().collect())).collect();
    let parts: BTreeMap<String, i32> = [(TOPIC.to_string(), PARTITIONS)].into_iter().collect();
    scala_range(&subs, &parts)
        .remove(TOPIC)
        .unwrap_or_default()
        .into_iter()
        .map(|(p, thread)| match peer {
            Some(id) if thread == format!("{id}-0") => (p, id.to_string()),
            _ => (p, thread),
        })
        .collect()
}

async fn settle(zk: &Client, want: &BTreeMap<i32, String>) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if &owners(zk).await == want {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "no convergence to {want:?}: {:?}", owners(zk).await);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds = env("ZKB_BENCH_ROUNDS", 20);
    let gap = Duration::from_millis(env("ZKB_BENCH_GAP_MS", 300));
    let zk = ZooKeeper::standalone().await.expect("ZooKeeper");
    let connect = zk.connect_string();
    let mut kafka = KafkaCluster::start(&connect, 1).await.expect("mock Kafka");
    kafka.create_topic(TOPIC, PARTITIONS, 1).await.expect("topic");
    let (a, b) = ("bench_a-1-0000000a", "bench_b-1-0000000b");
    let member = |id: &str| {
        GroupBuilder::default()
            .zookeeper(&connect)
            .group(GROUP)
            .flavour(Flavour::Scala)
            .topic(TOPIC)
            .member_id(id)
            .join()
    };
    let (ma, mb) = (member(a).await.expect("join"), member(b).await.expect("join"));
    let observer = zkbalance::testkit::connect(&connect, Duration::from_secs(6)).await.expect("observer");
    let two = split(&[a, b], None);
    settle(&observer, &two).await;

    let (mut two_step, mut one_step) = (Vec::new(), Vec::new());
    for round in 0..rounds * 2 {
        let id = format!("bench_peer{round:04}");
        let peer = ScalaLayoutPeer::connect(&connect, GROUP, &id, Duration::from_secs(30)).await.expect("peer");
        let three = split(&[a, b, &id], Some(&id));
        let share: BTreeSet<i32> = three.iter().filter(|(_, o)| **o == id).map(|(p, _)| *p).collect();
        let registration = br#"{"version":1,"subscription":{"t":1},"pattern":"static","timestamp":"1"}"#;
        let readable = if round % 2 == 0 {
            peer.register_empty().await.expect("register");
            tokio::time::sleep(gap).await;
            let at = Instant::now();
            peer.fill(registration).await.expect("fill");
            at
        } else {
            let at = Instant::now();
            peer.register(registration).await.expect("register");
            at
        };
        peer.claim(TOPIC, &share, id.as_bytes(), Duration::from_secs(30)).await.expect("claim");
        let took = settle(&observer, &three).await - readable;
        if round % 2 == 0 { &mut two_step } else { &mut one_step }.push(took);
        peer.close();
        settle(&observer, &two).await;
        // Every round starts from a quiet group, so each registration is an
        // isolated change, not one inside the previous round's coalescing
        // window.
        tokio::time::sleep(QUIET).await;
    }
    let (m2, m1) = (median(&mut two_step), median(&mut one_step));
    println!(
        "two-step registration (filled {gap:?} late): median {m2:?}, max {:?}",
        two_step.last().copied().unwrap_or_default()
    );
    println!("one-request registration: median {m1:?}, max {:?}", one_step.last().copied().unwrap_or_default());
    println!(
        "ratio of medians (two-step / one-request): {:.2} over {rounds} rounds each",
        m2.as_secs_f64() / m1.as_secs_f64()
    );
    ma.stop().await.expect("stop");
    mb.stop().await.expect("stop");
}
