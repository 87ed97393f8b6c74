//! `zkbc`: the zkbalance command-line tool.

mod consume;
mod demo;
mod errors;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "zkbc", version, about = "Kafka consumer groups coordinated through ZooKeeper")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume a topic as a member of a balanced group; messages to stdout,
    /// progress and lag to stderr. SIGINT/SIGTERM commit, release and exit 0.
    Consume(consume::Args),
    /// Start a local cluster (a real ZooKeeper and a mock Kafka registered in
    /// it), produce messages, and show the cluster as read back from ZooKeeper.
    Demo(demo::Args),
    /// Run a deterministic simulation of a group (real state machines, a
    /// model of ZooKeeper, seeded faults) and print its timeline.
    Sim(sim::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation's output is its timeline, in virtual time: no logs.
    if let Command::Sim(args) = cli.command {
        return match sim::run_sim(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("zkbc: {e}");
                ExitCode::from(1)
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zkbc: cannot start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await.map_err(errors::CliError::from),
            Command::Consume(args) => consume::run(args).await,
            Command::Sim(_) => unreachable!("handled above"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zkbc: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
