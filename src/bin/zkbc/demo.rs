//! `zkbc demo`: the embedded local cluster, a group of consumers changing
//! live, and the count of what was consumed, duplicated and lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use zkbalance::cluster;
use zkbalance::consumer::{BalancedConsumer, ConsumerError};
use zkbalance::coord::AssignmentView;
use zkbalance::testkit::protocol::parse_generated_value;
use zkbalance::testkit::{KafkaCluster, TestkitError, ZooKeeper};

use crate::errors::CliError;

#[derive(clap::Args)]
pub struct Args {
    /// Topic to create and fill.
    #[arg(long, default_value = "demo-orders")]
    topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=1000))]
    partitions: i32,
    /// Mock Kafka brokers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=16))]
    brokers: i32,
    /// Messages to produce in each of the four waves.
    #[arg(long, default_value_t = 25_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    messages: u64,
    /// Keep the cluster running afterwards (until Ctrl-C), to try the other
    /// subcommands against it.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Testkit(#[from] TestkitError),
    #[error("{0}")]
    Read(#[from] zkbalance::zk_call::ZkCallError),
    #[error("{0}")]
    Consumer(#[from] ConsumerError),
    #[error("{0}")]
    Stalled(String),
}

impl From<DemoError> for CliError {
    fn from(e: DemoError) -> Self {
        match e {
            DemoError::Testkit(TestkitError::ZooKeeperNotInstalled { .. }) => {
                CliError::ZooKeeperNotInstalled(e.to_string())
            }
            DemoError::Consumer(c) => c.into(),
            other => CliError::Internal(other.to_string()),
        }
    }
}

/// How many times each message (by its sequence number) was delivered.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<BTreeMap<u64, u32>>>);

impl Ledger {
    fn distinct(&self) -> u64 {
        self.0.lock().len() as u64
    }
}

struct Member {
    name: &'static str,
    view: watch::Receiver<AssignmentView>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<u64, ConsumerError>>,
}

async fn start(name: &'static str, zk: &str, topic: &str, ledger: &Ledger) -> Result<Member, DemoError> {
    let mut consumer = BalancedConsumer::builder()
        .zookeeper(zk)
        .group("demo")
        .topic(topic)
        .member_id(format!("demo-{name}"))
        .session_timeout(Duration::from_secs(4))
        .start()
        .await?;
    let view = consumer.assignment();
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let (ledger, topic) = (ledger.clone(), topic.to_owned());
    let task = tokio::spawn(async move {
        let mut n = 0;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                m = consumer.recv() => {
                    let m = match m {
                        None => break,
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            tracing::warn!(member = name, error = %e, "consumer error");
                            continue;
                        }
                    };
                    if let Some(seq) = parse_generated_value(&topic, m.payload().unwrap_or_default()) {
                        *ledger.0.lock().entry(seq).or_default() += 1;
                    }
                    m.ack();
                    n += 1;
                }
            }
        }
        consumer.stop().await?;
        Ok(n)
    });
    Ok(Member { name, view, stop, task })
}

/// `0-3,7` style ranges.
fn ranges(ps: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = ps.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(",")
    }
}

fn assignment(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| {
            let ps: BTreeSet<i32> = m.view.borrow().partitions.iter().map(|tp| tp.partition.0).collect();
            format!("{}: {:<9}", m.name, ranges(&ps))
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// Prints the assignment each time it changes until it covers every
/// partition exactly once, or `within` passes.
async fn show_until_balanced(members: &[Member], partitions: usize, started: Instant, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    loop {
        let now = assignment(members);
        if now != last {
            println!("  {:>6.2} s  {}", started.elapsed().as_secs_f64(), now.trim_end());
            last = now;
        }
        let owned: Vec<usize> = members.iter().map(|m| m.view.borrow().partitions.len()).collect();
        let (lo, hi) = (owned.iter().min().copied().unwrap_or(0), owned.iter().max().copied().unwrap_or(0));
        if owned.iter().sum::<usize>() == partitions && hi - lo <= 1 {
            return;
        }
        if Instant::now() >= deadline {
            println!("  (not balanced after {within:?})");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_consumed(ledger: &Ledger, n: u64, within: Duration) -> Result<(), DemoError> {
    let deadline = Instant::now() + within;
    while ledger.distinct() < n {
        if Instant::now() >= deadline {
            return Err(DemoError::Stalled(format!(
                "only {} of {n} messages consumed in {within:?}",
                ledger.distinct()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub async fn run(args: Args) -> Result<(), DemoError> {
    let started = Instant::now();
    println!("Starting a private ZooKeeper (Debian package) and a mock Kafka cluster of {} brokers", args.brokers);
    println!("registered in it as ZooKeeper-mode brokers register...");
    let zk = ZooKeeper::standalone().await?;
    let mut kafka = KafkaCluster::start(&zk.connect_string(), args.brokers).await?;
    let replication = args.brokers.min(2);
    kafka.create_topic(&args.topic, args.partitions, replication).await?;
    let view = cluster::read_brokers(&kafka.zk().clone().into()).await?;
    println!("  ZooKeeper {}; brokers {}", zk.connect_string(), view.bootstrap_servers());
    println!("  topic {}: {} partitions, replication {replication}", args.topic, args.partitions);

    let connect = zk.connect_string();
    let parts = args.partitions as usize;
    let ledger = Ledger::default();
    let mut produced = 0;
    let mut produce = async |kafka: &mut KafkaCluster| -> Result<u64, DemoError> {
        produced += kafka.produce_generated(&args.topic, args.messages, 100).await?.total();
        Ok(produced)
    };
    let total = produce(&mut kafka).await?;
    println!("\nProduced {total} messages. Three members join group \"demo\" (pykafka layout; its range");
    println!("strategy orders partitions as \"<topic>-<leader>-<partition>\", so shares follow leaders):");
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        members.push(start(name, &connect, &args.topic, &ledger).await?);
    }
    show_until_balanced(&members, parts, started, Duration::from_secs(20)).await;
    let total = produce(&mut kafka).await?;
    wait_consumed(&ledger, total * 3 / 4, Duration::from_secs(60)).await?;

    println!("\nMember a stops cleanly (commit, release, leave) mid-stream:");
    let a = members.remove(0);
    let _ = a.stop.send(());
    let a_count = a.task.await.map_err(|e| DemoError::Stalled(e.to_string()))??;
    show_until_balanced(&members, parts, started, Duration::from_secs(20)).await;
    let total = produce(&mut kafka).await?;
    wait_consumed(&ledger, total * 3 / 4, Duration::from_secs(60)).await?;

    println!("\nMember d joins mid-stream:");
    members.push(start("d", &connect, &args.topic, &ledger).await?);
    show_until_balanced(&members, parts, started, Duration::from_secs(20)).await;
    let total = produce(&mut kafka).await?;
    wait_consumed(&ledger, total, Duration::from_secs(60)).await?;

    let mut per_member = vec![("a", a_count)];
    for m in members {
        let _ = m.stop.send(());
        per_member.push((m.name, m.task.await.map_err(|e| DemoError::Stalled(e.to_string()))??));
    }
    let counts = ledger.0.lock().clone();
    let delivered: u64 = counts.values().map(|&n| u64::from(n)).sum();
    let duplicated = counts.values().filter(|&&n| n > 1).count();
    let lost = (0..total).filter(|s| !counts.contains_key(s)).count();
    println!("\nAll members stopped. Of {total} messages produced:");
    println!(
        "  consumed {} ({}), duplicated {duplicated}, lost {lost}",
        counts.len(),
        per_member.iter().map(|(n, c)| format!("{n}: {c}")).collect::<Vec<_>>().join(", ")
    );
    println!("  deliveries {delivered}. Done in {:.1} s.", started.elapsed().as_secs_f64());
    if args.keep {
        println!("\nThe cluster keeps running; in another shell try:");
        println!("  zkbc group describe demo -z {connect}");
        println!("  zkbc group watch demo -z {connect}");
        println!("  zkbc consume -z {connect} -G mine -t {} -o -5 -e -J", args.topic);
        println!("Ctrl-C stops it.");
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(kafka);
    drop(zk);
    if duplicated > 0 || lost > 0 {
        return Err(DemoError::Stalled(format!("{duplicated} duplicated, {lost} lost")));
    }
    Ok(())
}
