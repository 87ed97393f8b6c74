//! `zkbc consume`: a balanced group member printing what it consumes.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use zkbalance::consumer::{BalancedConsumer, ConsumerMetrics, Message, StartAt};
use zkbalance::offsets::{OffsetReset, OffsetStorage};
use zkbalance::znode::Flavour;

use crate::common::{duration, table, ZkArgs};
use crate::errors::CliError;

mod output;

use output::{Encoding, Output, Template};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    zk: ZkArgs,
    #[command(flatten)]
    kafka: crate::security::KafkaArgs,
    /// Consumer group.
    #[arg(short = 'G', long)]
    group: String,
    /// Topics to consume, comma-separated or repeated (several: scala flavour).
    #[arg(short = 't', long, value_delimiter = ',', required_unless_present_any = ["whitelist", "blacklist"])]
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
    /// Where each partition starts the first time this process owns it:
    /// beginning, end, stored (the committed offset), <n> (that offset),
    /// -<n> (n before the end), s@<ms> (the first at or after that time).
    /// Later assignments of a partition resume from the committed offset.
    #[arg(short = 'o', long, default_value = "stored", value_parser = start_at, value_name = "OFFSET", allow_hyphen_values = true)]
    offset: StartAt,
    /// With -o stored: where a partition without a committed offset starts,
    /// earliest or latest (default: the flavour's, as the reference clients).
    #[arg(long, value_name = "earliest|latest")]
    offset_reset: Option<OffsetReset>,
    /// Exit (commit, release, leave) once every owned partition is drained.
    #[arg(short = 'e', long)]
    exit: bool,
    /// Exit after this many messages.
    #[arg(short = 'c', long, value_name = "N")]
    count: Option<u64>,
    /// Output format, kcat's tokens: %t topic, %p partition, %o offset,
    /// %k key, %K key length, %s payload, %S payload length, %T timestamp
    /// (ms), %h headers (name=value,...), %%; escapes \n \t \r \xHH. A
    /// null key, payload or header value prints as null (its length as -1).
    #[arg(short = 'f', long, default_value = "%s\\n", value_name = "FORMAT", conflicts_with_all = ["json", "audit"])]
    format: String,
    /// One JSON object per message, kcat's -J envelope: topic, partition,
    /// offset, tstype, ts, broker, headers, key, payload.
    #[arg(short = 'J', long = "json", conflicts_with = "audit")]
    json: bool,
    /// One line per delivery for auditing delivery guarantees (member,
    /// session, generation, partition, offset, the wall-clock µs it was
    /// handed over; no payload): what the fault suite checks.
    #[arg(long)]
    audit: bool,
    /// How keys, payloads and header values are written: utf8 (as they
    /// are), base64 or hex.
    #[arg(long, value_enum, default_value = "utf8")]
    encoding: Encoding,
    /// Where offsets are committed: zookeeper, kafka or dual (default: the flavour's).
    #[arg(long)]
    offset_storage: Option<OffsetStorage>,
    /// Commit the acknowledged offsets this often.
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DURATION")]
    commit_interval: Duration,
    /// ZooKeeper session timeout.
    #[arg(long, default_value = "6s", value_parser = duration, value_name = "DURATION")]
    session_timeout: Duration,
    /// A static member id (a restart within the session timeout keeps its partitions).
    #[arg(long)]
    member_id: Option<String>,
    /// Serve Prometheus metrics (lag, owned partitions, rebalances, commit
    /// latency and failures, fetch errors, outstanding acks) at
    /// http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,
}

/// kcat's `-o`.
fn start_at(s: &str) -> Result<StartAt, String> {
    let number = |n: &str| n.parse::<u64>().map_err(|_| format!("{s:?}: not a number"));
    Ok(match s {
        "beginning" => StartAt::Beginning,
        "end" => StartAt::End,
        "stored" => StartAt::Committed,
        _ if s.starts_with("s@") => {
            StartAt::Timestamp(s[2..].parse().map_err(|_| format!("{s:?}: s@ wants milliseconds since the epoch"))?)
        }
        _ if s.starts_with('-') => StartAt::FromEnd(number(&s[1..])?),
        _ if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => StartAt::Offset(number(s)?),
        _ => return Err(format!("{s:?}: expected beginning, end, stored, <n>, -<n> or s@<ms>")),
    })
}

/// Writes a batch in one go and acknowledges it once written: a message
/// is done when it is out of the process, never before.
fn write_batch(
    out: &mut impl Write,
    buf: &mut Vec<u8>,
    batch: &[Message],
    format: &Output,
    member: &str,
) -> std::io::Result<()> {
    buf.clear();
    for m in batch {
        format.render(m, member, buf);
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
        "consumed {} ({:.0}/s), {} partitions, lag {lag}, fetch errors {}, rebalances {}, commits {}",
        m.messages,
        m.messages as f64 / started.elapsed().as_secs_f64().max(0.001),
        m.partitions.len(),
        m.fetch_errors,
        m.group.rebalances.count(),
        m.commits
    )
}

/// Each owned partition's offsets and lag (on SIGUSR1).
fn partitions(m: &ConsumerMetrics) -> String {
    let opt = crate::common::opt;
    let rows: Vec<Vec<String>> = m
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.topic_partition.topic.to_string(),
                p.topic_partition.partition.0.to_string(),
                opt(&p.committed),
                opt(&p.acknowledged),
                opt(&p.log_end),
                opt(&p.lag),
                p.outstanding.to_string(),
            ]
        })
        .collect();
    table(&["TOPIC", "PARTITION", "COMMITTED", "ACKNOWLEDGED", "LOG-END-OFFSET", "LAG", "OUTSTANDING"], &rows)
}

/// Whether every owned partition is drained: the group settled, and each
/// partition it gave this member handed over everything up to its log end
/// and had it written.
fn drained(consumer: &BalancedConsumer) -> bool {
    let view = consumer.assignment().borrow().clone();
    if !view.settled || view.suspended {
        return false;
    }
    let m = consumer.metrics();
    view.partitions
        .iter()
        .all(|tp| m.partitions.iter().any(|p| &p.topic_partition == tp && p.at_end && p.outstanding == 0))
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
    let format = match (args.json, args.audit) {
        (true, _) => Output::Json(args.encoding),
        (_, true) => Output::Audit,
        _ => Output::Format(Template::parse(&args.format)?, args.encoding),
    };
    if let Some(addr) = args.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(zkbalance::consumer::GAUGE_IDLE_TIMEOUT))
            .install()
            .map_err(|e| CliError::Usage(format!("--metrics-addr {addr}: {e}")))?;
    }
    let timeout = args.zk.timeout();
    let mut builder = BalancedConsumer::builder()
        .zookeeper(&args.zk.zookeeper)
        .zookeeper_access(args.zk.security.access()?)
        .group(&args.group)
        .flavour(args.flavour)
        .start_at(args.offset)
        .auto_commit(Some(args.commit_interval))
        .session_timeout(args.session_timeout)
        .kafka_timeout(timeout)
        .membership(|g| g.connect_timeout(timeout));
    if let Some(reset) = args.offset_reset {
        builder = builder.offset_reset(reset);
    }
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
    let member = consumer.id().map(ToString::to_string).unwrap_or_default();
    if matches!(format, Output::Audit) {
        // The first line names the member, so an auditor can tie what it
        // does to the process before the first delivery.
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
        println!("{}", serde_json::json!({"event": "joined", "member": member, "at_us": at}));
    }
    let live = std::io::stderr().is_terminal();
    let started = Instant::now();
    let period = Duration::from_secs(if live { 1 } else { 10 });
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // How soon `--exit` notices the last partition drained.
    let mut drain_check = tokio::time::interval(Duration::from_millis(20));
    let signal =
        |kind| tokio::signal::unix::signal(kind).map_err(|e| CliError::Internal(format!("cannot watch a signal: {e}")));
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigusr1 = signal(tokio::signal::unix::SignalKind::user_defined1())?;
    let mut count = 0u64;
    let stdout = std::io::stdout();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut first_at = None;
    let result = loop {
        let left = args.count.map_or(BATCH, |max| max.saturating_sub(count).min(BATCH as u64) as usize);
        if left == 0 {
            break Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = sigterm.recv() => break Ok(()),
            _ = sigusr1.recv() => {
                if live { eprint!("\r\x1b[2K") }
                eprint!("{}", partitions(&consumer.metrics()));
            }
            _ = ticker.tick() => {
                let line = status(&consumer.metrics(), started);
                if live { eprint!("\r\x1b[2K{line}") } else { eprintln!("{line}") }
            }
            _ = drain_check.tick(), if args.exit => if drained(&consumer) { break Ok(()) },
            batch = consumer.recv_many(left) => {
                let batch = match batch {
                    None => break Ok(()),
                    Some(Ok(batch)) => batch,
                    Some(Err(e)) if e.is_fatal() => break Err(CliError::Internal(e.to_string())),
                    Some(Err(e)) => {
                        // Stays on stderr: stdout carries only messages.
                        if live { eprint!("\r\x1b[2K") }
                        crate::common::warn(&e);
                        continue;
                    }
                };
                first_at.get_or_insert_with(Instant::now);
                if let Err(e) = write_batch(&mut stdout.lock(), &mut buf, &batch, &format, &member) {
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
    // Committed first, so the summary's lag is what the group is left with
    // (the leave commits again: nothing more by then).
    if let Err(e) = consumer.commit().await {
        crate::common::warn(format!("the final commit failed: {e}"));
    }
    let m = consumer.metrics();
    consumer.stop().await?;
    if live {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    let lag: u64 = m.partitions.iter().filter_map(|p| p.lag).sum();
    eprintln!(
        "zkbc: consumed {count} messages ({} bytes) from {} partition(s) in {secs:.1} s; lag {lag}, fetch errors {}, \
         rebalances {}, commits {}; stopped cleanly",
        m.bytes,
        m.partitions.len(),
        m.fetch_errors,
        m.group.rebalances.count(),
        m.commits,
    );
    if let Some(first) = first_at {
        // Machine-readable, for benches/throughput.rs.
        let secs = last_at.duration_since(first).as_secs_f64();
        eprintln!("output: {count} messages in {secs:.6} s from the first");
    }
    result
}
