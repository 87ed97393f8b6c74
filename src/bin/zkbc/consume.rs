//! `zkbc consume`: a balanced group member printing what it consumes.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use zkbalance::consumer::{BalancedConsumer, ConsumerMetrics, Message};
use zkbalance::offsets::{OffsetReset, OffsetStorage};
use zkbalance::znode::Flavour;

use serde::Serialize;

use crate::errors::CliError;

#[derive(clap::Args)]
pub struct Args {
    /// ZooKeeper: `HOST:PORT[,HOST:PORT...][/chroot]`.
    #[arg(long)]
    zookeeper: String,
    #[command(flatten)]
    security: crate::security::ZkSecurity,
    #[command(flatten)]
    kafka: crate::security::KafkaArgs,
    /// Consumer group.
    #[arg(long)]
    group: String,
    /// Topics to consume, comma-separated (several: scala flavour).
    #[arg(long, value_delimiter = ',', required_unless_present_any = ["whitelist", "blacklist"])]
    topic: Vec<String>,
    /// Consume every topic matching this regex, including topics created
    /// later (scala flavour; Java syntax, commas mean alternation).
    #[arg(long, conflicts_with_all = ["topic", "blacklist"])]
    whitelist: Option<String>,
    /// Consume every topic not matching this regex (scala flavour).
    #[arg(long, conflicts_with_all = ["topic", "whitelist"])]
    blacklist: Option<String>,
    /// Consumer threads per topic in the assignment (scala flavour).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    streams: u32,
    /// Let wildcards match Kafka's internal topics too (Scala's
    /// exclude.internal.topics=false).
    #[arg(long)]
    include_internal_topics: bool,
    /// Znode layout of the group: pykafka or scala.
    #[arg(long, default_value = "pykafka")]
    flavour: Flavour,
    /// Where to start a partition with no committed offset: earliest or latest.
    #[arg(long = "from", default_value = "earliest")]
    from: OffsetReset,
    /// Output: text (values, one per line), json (key, value, partition,
    /// offset, timestamp) or audit (one line per delivery for auditing
    /// delivery guarantees: member, session, generation, partition, offset,
    /// and the wall-clock µs at which it was handed over; no payload).
    #[arg(long, default_value = "text", value_parser = ["text", "json", "audit"])]
    format: String,
    /// Stop after this many messages (then commit, release and exit 0).
    #[arg(long)]
    max_messages: Option<u64>,
    /// Where offsets are committed: zookeeper, kafka or dual (default: the flavour's).
    #[arg(long)]
    offset_storage: Option<OffsetStorage>,
    /// Commit the acknowledged offsets every this many ms.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    commit_interval_ms: u64,
    /// ZooKeeper session timeout, ms.
    #[arg(long, default_value_t = 6000, value_parser = clap::value_parser!(u64).range(1000..=600_000))]
    session_timeout_ms: u64,
    /// A static member id (a restart within the session timeout keeps its partitions).
    #[arg(long)]
    member_id: Option<String>,
    /// Longest wait for ZooKeeper at start, ms.
    #[arg(long, default_value_t = 10_000)]
    connect_timeout_ms: u64,
    /// Serve Prometheus metrics (lag, owned partitions, rebalances, commit
    /// latency and failures, fetch errors, outstanding acks) at
    /// http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Text,
    Json,
    Audit,
}

/// A key or value as JSON: text as is, other bytes lossily (no allocation
/// for valid UTF-8).
fn text(b: Option<&[u8]>) -> Option<Cow<'_, str>> {
    b.map(String::from_utf8_lossy)
}

/// One `--format json` line, serialised straight from the message.
#[derive(Serialize)]
struct JsonLine<'a> {
    topic: &'a str,
    partition: i32,
    offset: u64,
    timestamp: Option<i64>,
    key: Option<Cow<'a, str>>,
    value: Option<Cow<'a, str>>,
}

/// One `--format audit` line.
#[derive(Serialize)]
struct AuditLine<'a> {
    member: &'a str,
    session: u64,
    generation: u64,
    topic: &'a str,
    partition: i32,
    offset: u64,
    at_us: u128,
}

/// Appends `m` as one line of `format` to `out`.
fn render(out: &mut Vec<u8>, m: &Message, format: Output, member: &str) {
    // Writing to a Vec cannot fail, nor can serialising these structs.
    let _ = match format {
        Output::Json => serde_json::to_writer(
            &mut *out,
            &JsonLine {
                topic: m.topic().as_str(),
                partition: m.partition().0,
                offset: m.offset(),
                timestamp: m.timestamp(),
                key: text(m.key()),
                value: text(m.payload()),
            },
        ),
        Output::Audit => serde_json::to_writer(
            &mut *out,
            &AuditLine {
                member,
                session: m.session(),
                generation: m.generation(),
                topic: m.topic().as_str(),
                partition: m.partition().0,
                offset: m.offset(),
                at_us: m.delivered_at().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros()),
            },
        ),
        Output::Text => {
            out.extend_from_slice(m.payload().unwrap_or_default());
            Ok(())
        }
    };
    out.push(b'\n');
}

/// Writes a batch in one go and acknowledges it once written: a message
/// is done when it is out of the process, never before.
fn write_batch(
    out: &mut impl Write,
    buf: &mut Vec<u8>,
    batch: &[Message],
    format: Output,
    member: &str,
) -> std::io::Result<()> {
    buf.clear();
    for m in batch {
        render(buf, m, format, member);
    }
    out.write_all(buf)?;
    out.flush()?;
    for m in batch {
        m.ack();
    }
    Ok(())
}

fn status(m: &ConsumerMetrics, started: Instant) -> String {
    let lag: u64 = m.partitions.iter().filter_map(|p| p.lag).sum();
    format!(
        "consumed {} ({:.0}/s), {} partitions, lag {lag}, rebalances {}, commits {}",
        m.messages,
        m.messages as f64 / started.elapsed().as_secs_f64().max(0.001),
        m.partitions.len(),
        m.group.rebalances.count(),
        m.commits
    )
}

/// `ZKBALANCE_MUTANT=ignore-lease` runs a deliberately broken consumer, so
/// the fault suite can prove its checker catches one. Only in builds with
/// the `mutants` feature (the test build); release builds ignore it.
#[cfg(feature = "mutants")]
fn with_mutant(
    builder: zkbalance::consumer::ConsumerBuilder,
) -> Result<zkbalance::consumer::ConsumerBuilder, CliError> {
    use zkbalance::balance::Mutant;
    let mutant = match std::env::var("ZKBALANCE_MUTANT").ok().as_deref() {
        None | Some("") => return Ok(builder),
        Some("ignore-lease") => Mutant::IgnoreLease,
        Some(other) => return Err(CliError::Usage(format!("unknown ZKBALANCE_MUTANT {other:?} (ignore-lease)"))),
    };
    eprintln!("zkbc: running the {mutant:?} mutant: this consumer is deliberately broken");
    Ok(builder.membership(|g| g.mutant(mutant)))
}

#[cfg(not(feature = "mutants"))]
fn with_mutant(
    builder: zkbalance::consumer::ConsumerBuilder,
) -> Result<zkbalance::consumer::ConsumerBuilder, CliError> {
    Ok(builder)
}

/// Most messages written (and acknowledged) per batch.
const BATCH: usize = 4096;

pub async fn run(args: Args) -> Result<(), CliError> {
    if let Some(addr) = args.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|e| CliError::Usage(format!("--metrics-addr {addr}: {e}")))?;
    }
    let mut builder = BalancedConsumer::builder()
        .zookeeper(&args.zookeeper)
        .zookeeper_access(args.security.access()?)
        .group(&args.group)
        .flavour(args.flavour)
        .offset_reset(args.from)
        .auto_commit(Some(Duration::from_millis(args.commit_interval_ms)))
        .session_timeout(Duration::from_millis(args.session_timeout_ms))
        .membership(|g| g.connect_timeout(Duration::from_millis(args.connect_timeout_ms)));
    for topic in &args.topic {
        builder = builder.topic_streams(topic, args.streams);
    }
    let streams = args.streams;
    let internal = !args.include_internal_topics;
    builder = match (&args.whitelist, &args.blacklist) {
        (Some(re), _) => builder.membership(|g| g.whitelist(re).wildcard_streams(streams)),
        (_, Some(re)) => builder.membership(|g| g.blacklist(re).wildcard_streams(streams)),
        _ => builder,
    }
    .membership(|g| g.exclude_internal_topics(internal));
    builder = builder.kafka_access(args.kafka.access());
    if let Some(s) = args.offset_storage {
        builder = builder.offset_storage(s);
    }
    if let Some(id) = &args.member_id {
        builder = builder.member_id(id);
    }
    builder = with_mutant(builder)?;
    let mut consumer = builder.start().await?;
    let format = match args.format.as_str() {
        "json" => Output::Json,
        "audit" => Output::Audit,
        _ => Output::Text,
    };
    let member = consumer.id().map(ToString::to_string).unwrap_or_default();
    if format == Output::Audit {
        // The first line names the member, so an auditor can tie what it
        // does to the process before the first delivery.
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
        println!("{}", serde_json::json!({"event": "joined", "member": member, "at_us": at}));
    }
    let live = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(if live { 1 } else { 10 }));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::Internal(format!("cannot watch SIGTERM: {e}")))?;
    let mut count = 0u64;
    let stdout = std::io::stdout();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut first_at = None;
    let result = loop {
        let left = args.max_messages.map_or(BATCH, |max| max.saturating_sub(count).min(BATCH as u64) as usize);
        if left == 0 {
            break Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = sigterm.recv() => break Ok(()),
            _ = ticker.tick() => {
                let line = status(&consumer.metrics(), started);
                if live { eprint!("\r\x1b[2K{line}") } else { eprintln!("{line}") }
            }
            batch = consumer.recv_many(left) => {
                let batch = match batch {
                    None => break Ok(()),
                    Some(Ok(batch)) => batch,
                    Some(Err(e)) if e.is_fatal() => break Err(CliError::Internal(e.to_string())),
                    Some(Err(e)) => {
                        // Stays on stderr: stdout carries only messages.
                        if live { eprint!("\r\x1b[2K") }
                        eprintln!("zkbc: warning: {e}");
                        continue;
                    }
                };
                first_at.get_or_insert_with(Instant::now);
                if let Err(e) = write_batch(&mut stdout.lock(), &mut buf, &batch, format, &member) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        break Ok(());
                    }
                    break Err(CliError::Internal(format!("writing to stdout: {e}")));
                }
                count += batch.len() as u64;
            }
        }
    };
    let last_at = Instant::now();
    let final_status = status(&consumer.metrics(), started);
    consumer.stop().await?;
    if live {
        eprintln!();
    }
    eprintln!("{final_status}; stopped cleanly");
    if let Some(first) = first_at {
        // Machine-readable, for benches/throughput.rs.
        let secs = last_at.duration_since(first).as_secs_f64();
        eprintln!("output: {count} messages in {secs:.6} s from the first");
    }
    result
}
