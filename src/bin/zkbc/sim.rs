//! `zkbc sim`: one deterministic simulation, replayable from its seed.

use zkbalance::assign::Strategy;
use zkbalance::sim::{random_steps, run, SimConfig};
use zkbalance::znode::Flavour;

#[derive(clap::Args)]
pub struct Args {
    /// Seed of the schedule and of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Members at the start.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=64))]
    members: u8,
    /// Znode layout of the group: pykafka or scala.
    #[arg(long, default_value = "pykafka")]
    flavour: Flavour,
    /// Topics of the group (pykafka members take one each in turn; Scala
    /// members all, every third by a whitelist).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    topics: u8,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u8).range(1..=200))]
    partitions: u8,
    /// Workload and fault steps to generate from the seed.
    #[arg(long, default_value_t = 15)]
    steps: usize,
    /// Session timeout in virtual ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(200..=60_000))]
    session_ms: u64,
    /// Strategy: range, roundrobin or sticky.
    #[arg(long, default_value = "range")]
    strategy: String,
    /// Print only the summary, not the timeline.
    #[arg(long)]
    quiet: bool,
}

pub fn run_sim(args: Args) -> Result<(), String> {
    let strategy = match (args.strategy.as_str(), args.flavour) {
        ("range", Flavour::Pykafka) => Strategy::PykafkaRange,
        ("range", Flavour::Scala) => Strategy::ScalaRange,
        ("roundrobin", Flavour::Pykafka) => Strategy::PykafkaRoundRobin,
        ("roundrobin", Flavour::Scala) => Strategy::ScalaRoundRobin,
        ("sticky", _) => Strategy::Sticky,
        (other, _) => return Err(format!("unknown strategy {other:?} (range, roundrobin, sticky)")),
    };
    let cfg = SimConfig {
        seed: args.seed,
        members: args.members,
        flavour: args.flavour,
        topics: args.topics,
        partitions: args.partitions,
        strategy,
        session_timeout: std::time::Duration::from_millis(args.session_ms),
        timeline: !args.quiet,
        ..SimConfig::default()
    };
    let steps = random_steps(args.seed, args.steps);
    let report = run(&cfg, &steps);
    for line in &report.timeline {
        println!("{line}");
    }
    println!("seed {}, {} steps: {}", args.seed, steps.len(), report.summary());
    if report.violations.is_empty() {
        Ok(())
    } else {
        Err("an invariant broke; the timeline above shows where".into())
    }
}
