//! Runs one simulation from a seed and prints its timeline.
//!
//! `cargo run --example sim -- [seed] [members] [partitions] [steps]`

use zkbalance::sim::{random_steps, run, SimConfig};

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let cfg = SimConfig {
        seed: arg(0, 1),
        members: arg(1, 3) as u8,
        partitions: arg(2, 8) as u8,
        timeline: true,
        ..SimConfig::default()
    };
    let steps = random_steps(cfg.seed, arg(3, 12) as usize);
    let report = run(&cfg, &steps);
    for line in &report.timeline {
        println!("{line}");
    }
    println!("\n{}", report.summary());
}
