//! `zkbc`: the zkbalance command-line tool.

// The doc comments of its arguments are clap's help text, written for a
// terminal (`[:USER]`, `<ms>`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod cluster_cmds;
mod common;
mod consume;
mod demo;
mod errors;
mod group;
mod offsets;
mod security;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "zkbc", version, about = "Kafka consumer groups coordinated through ZooKeeper")]
struct Cli {
    /// What to log on stderr, as RUST_LOG takes it: a level (error, warn,
    /// info, debug, trace) and per-target overrides, e.g.
    /// `info,librdkafka=debug`. Default: warnings, librdkafka's included,
    /// without the ZooKeeper client's transport chatter.
    #[arg(long, global = true, env = "RUST_LOG", value_name = "FILTER", default_value = DEFAULT_LOG)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

/// Transport chatter of the ZooKeeper client (connection retries, logged
/// as warnings) is noise to an operator; our own warnings and librdkafka's
/// are not.
const DEFAULT_LOG: &str = "warn,zookeeper_client=error";

#[derive(Subcommand)]
enum Command {
    /// Consume a topic as a member of a balanced group; messages to stdout,
    /// progress and lag to stderr. SIGINT/SIGTERM commit, release and exit 0.
    Consume(consume::Args),
    /// Inspect consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Change a group's committed offsets.
    #[command(subcommand)]
    Offsets(offsets::OffsetsCommand),
    /// The brokers registered in ZooKeeper.
    Brokers(cluster_cmds::Args),
    /// The topics registered in ZooKeeper, with leaders and ISRs.
    Topics(cluster_cmds::Args),
    /// Start a local cluster (a real ZooKeeper and a mock Kafka registered in
    /// it), produce messages, and show the cluster as read back from ZooKeeper.
    Demo(demo::Args),
    /// Run a deterministic simulation of a group (real state machines, a
    /// model of ZooKeeper, seeded faults) and print its timeline.
    Sim(sim::Args),
    /// Print a shell completion script: `zkbc completions bash > /etc/bash_completion.d/zkbc`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print as clap does; a bad flag is one line.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // clap's message runs to the first blank line (the usage follows).
            let text = e.to_string();
            let message: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            let line = message.join(" ");
            eprintln!("zkbc: {} (see --help)", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "zkbc", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
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
    let filter = match tracing_subscriber::EnvFilter::try_new(&cli.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("zkbc: --log-level {:?}: {e} (see --help)", cli.log_level);
            return ExitCode::from(64);
        }
    };
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colours).with_writer(std::io::stderr).init();
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
            Command::Group(cmd) => group::run(cmd).await,
            Command::Offsets(cmd) => offsets::run(cmd).await,
            Command::Brokers(args) => cluster_cmds::brokers(args).await,
            Command::Topics(args) => cluster_cmds::topics(args).await,
            Command::Sim(_) | Command::Completions { .. } => unreachable!("handled above"),
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
