//! `zkbc demo`: the local cluster, end to end.

use std::fmt::Write as _;
use std::time::Instant;

use zkbalance::cluster::{self, ClusterView};
use zkbalance::testkit::{KafkaCluster, TestkitError, ZooKeeper};

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
    /// Messages to produce.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Testkit(#[from] TestkitError),
    #[error("{0}")]
    Read(#[from] cluster::ReadError),
}

impl From<DemoError> for crate::errors::CliError {
    fn from(e: DemoError) -> Self {
        use crate::errors::CliError;
        match e {
            DemoError::Testkit(TestkitError::ZooKeeperNotInstalled { .. }) => {
                CliError::ZooKeeperNotInstalled(e.to_string())
            }
            other => CliError::Internal(other.to_string()),
        }
    }
}

fn render(view: &ClusterView, topic: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  brokers (/brokers/ids):");
    for (id, reg) in &view.brokers {
        let ep = reg.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        let _ = writeln!(out, "    {id:>3}  v{}  {ep}", reg.version);
    }
    for (name, parts) in view.topics.iter().filter(|(n, _)| n.as_str() == topic) {
        let _ = writeln!(out, "  topic {name} ({} partitions):", parts.len());
        let _ = writeln!(out, "    {:>9}  {:>6}  {:>5}  {:<10}  isr", "partition", "leader", "epoch", "replicas");
        for (p, pv) in parts {
            let list = |v: &[zkbalance::BrokerId]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            let (leader, epoch, isr) = match &pv.state {
                Some(s) => {
                    (s.leader.map_or("none".into(), |l| l.to_string()), s.leader_epoch.to_string(), list(&s.isr))
                }
                None => ("?".into(), "?".into(), "?".into()),
            };
            let _ = writeln!(out, "    {p:>9}  {leader:>6}  {epoch:>5}  {:<10}  {isr}", list(&pv.replicas));
        }
    }
    if !view.skipped.is_empty() {
        let _ = writeln!(out, "  skipped {} malformed znodes", view.skipped.len());
    }
    out
}

pub async fn run(args: Args) -> Result<(), DemoError> {
    let started = Instant::now();
    println!("Starting a private ZooKeeper (Debian package) on a free loopback port...");
    let zk = ZooKeeper::standalone().await?;
    println!("  ZooKeeper serving at {}", zk.connect_string());
    println!(
        "Starting a mock Kafka cluster of {} brokers, registered in ZooKeeper as brokers register...",
        args.brokers
    );
    let mut kafka = KafkaCluster::start(&zk.connect_string(), args.brokers).await?;
    let replication = args.brokers.min(2);
    kafka.create_topic(&args.topic, args.partitions, replication).await?;
    let produced = kafka.produce_generated(&args.topic, args.messages, 100).await?;
    println!(
        "  produced {} messages of 100 bytes to {} ({} partitions, replication {replication})",
        produced.total(),
        args.topic,
        args.partitions
    );

    let view = cluster::read(kafka.zk()).await?;
    println!("\nThe cluster as read back from ZooKeeper through zkbalance's codecs:");
    print!("{}", render(&view, &args.topic));
    println!("  bootstrap.servers from ZooKeeper: {}", view.bootstrap_servers());

    let victim = view.leader(
        &zkbalance::TopicName::new(args.topic.as_str()).map_err(|e| TestkitError::InvalidArgument(e.to_string()))?,
        zkbalance::PartitionId(0),
    );
    if let (Some(victim), true) = (victim, args.brokers > 1) {
        println!("\nTaking broker {victim} down: its registration vanishes and its partitions get new leaders...");
        kafka.broker_down(victim).await?;
        let after = cluster::read(kafka.zk()).await?;
        print!("{}", render(&after, &args.topic));
        kafka.broker_up(victim).await?;
        println!("  broker {victim} is back: {} brokers registered", cluster::read(kafka.zk()).await?.brokers.len());
    }
    drop(kafka);
    drop(zk);
    println!("\nDone in {:.1} s; the local cluster is stopped.", started.elapsed().as_secs_f64());
    Ok(())
}
