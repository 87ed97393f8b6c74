//! The one Kafka client of the crate: how it is configured, where its logs
//! and errors go, how brokers are found through ZooKeeper, and the offset
//! and watermark requests the committers and `inspect` make. The fetcher
//! polls it; nothing else creates one.

mod brokers;
pub(crate) mod ffi;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

pub(crate) use brokers::follow_brokers;

use crate::ids::GroupId;
use crate::offsets::OffsetReset;

/// Where a client's errors go besides the log: its context's error
/// callback and the fetch thread report to the same place.
pub(crate) type ErrorSink = Arc<dyn Fn(crate::fetch::FetchFailure) + Send + Sync>;

/// librdkafka's callbacks: logs into `tracing` (target `librdkafka`),
/// errors into `tracing` and, for the consumer, to the application.
///
/// librdkafka calls the error callback from the thread that serves its
/// queue: for the consumer that is the fetch thread, whose batch reads
/// serve error events too.
#[derive(Default)]
pub struct KafkaContext {
    on_error: Option<ErrorSink>,
    /// Dropped with the context, once librdkafka destroyed the client and
    /// closed its connections.
    _destroyed: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Resolves once the client it was made with is destroyed.
pub(crate) type Destroyed = tokio::sync::oneshot::Receiver<()>;

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // librdkafka's errors are mostly transient (a refused connection,
        // retried): warnings to the application, which hears of what
        // matters through `recv()`.
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka also logs these (as warnings): a debug line is enough.
        tracing::debug!(target: "librdkafka", error = %error, "{reason}");
        if let Some(sink) = &self.on_error {
            let code = error.rdkafka_error_code().map_or_else(|| "Unknown".to_owned(), |c| format!("{c:?}"));
            sink(crate::fetch::FetchFailure { partition: None, code, reason: reason.to_owned() });
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// The client: a consumer with a manual assignment (no Kafka group
/// membership; `group.id` names the group for offset requests only).
pub(crate) type KafkaClient = BaseConsumer<KafkaContext>;

/// What a client is built from.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub bootstrap: String,
    pub group: GroupId,
    pub reset: OffsetReset,
    /// Applied last: any librdkafka property.
    pub overrides: Vec<(String, String)>,
}

pub(crate) fn client(s: &ClientSettings, on_error: Option<ErrorSink>) -> Result<(KafkaClient, Destroyed), KafkaError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &s.bootstrap)
        // Needed for OffsetCommit/OffsetFetch; no Kafka group membership is
        // used (assignment is ours).
        .set("group.id", s.group.as_str())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A partition's end is an event in the fetch stream, after the
        // messages before it: what tells the consumer a partition is
        // drained (`PartitionMetrics::at_end`), control records included.
        .set("enable.partition.eof", "true")
        .set(
            "auto.offset.reset",
            match s.reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
                OffsetReset::Error => "error",
            },
        )
        // librdkafka backs off a full second once its prefetch queue fills
        // (`fetch.queue.backoff.ms`); our own buffer bounds memory, so a
        // short backoff keeps throughput without unbounded prefetch.
        .set("fetch.queue.backoff.ms", "10")
        // After a pause in polling (backpressure) librdkafka was seen to
        // hold a partition in fetch-error backoff for 0.5–1 s (the default
        // 500 ms, sometimes twice) before fetching again; a short backoff
        // keeps a consumer that just caught up from idling.
        .set("fetch.error.backoff.ms", "10")
        // A fetch at the log end waits on the broker this long, and a
        // partition assigned meanwhile cannot be fetched until it returns:
        // this bounds how late a newly owned partition starts (librdkafka's
        // default, 500 ms, was measured as a 0.5 s stall after a claim).
        .set("fetch.wait.max.ms", "100")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in &s.overrides {
        cfg.set(k, v);
    }
    let (tx, destroyed) = tokio::sync::oneshot::channel();
    Ok((cfg.create_with_context(KafkaContext { on_error, _destroyed: Some(tx) })?, destroyed))
}

/// Runs a blocking librdkafka request off the async workers.
async fn blocking<T: Send + 'static>(
    client: &Arc<KafkaClient>,
    f: impl FnOnce(&KafkaClient) -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    let client = Arc::clone(client);
    tokio::task::spawn_blocking(move || f(&client)).await.map_err(|_| KafkaError::Canceled)?
}

fn offset_of(tpl: &TopicPartitionList) -> Option<u64> {
    tpl.elements().first().and_then(|e| match e.offset() {
        Offset::Offset(n) if n >= 0 => Some(n as u64),
        _ => None,
    })
}

/// Asks for the topics' metadata in the background, while the member
/// joins: the first partitions it claims then find their leaders known and
/// the connection to them open (a partition assigned before its leader is
/// known waits for librdkafka's retry, about 500 ms). Best effort: a
/// failure only leaves the lookup to librdkafka.
///
/// Not awaited before joining: that spreads the registrations of members
/// started together, and each registration is a rebalance round for those
/// already in (8 members at once: 1,232 ZooKeeper packets awaited, 898 not,
/// in `benches/rebalance.rs`).
pub(crate) fn warm_up(client: &Arc<KafkaClient>, topics: &[crate::ids::TopicName], timeout: Duration) {
    for topic in topics {
        let (client, topic) = (Arc::clone(client), topic.as_str().to_owned());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = client.fetch_metadata(Some(&topic), timeout) {
                tracing::debug!(%topic, error = %e, "metadata warm-up failed");
            }
        });
    }
}

/// The group's committed offset of a partition (next to consume), if any.
pub(crate) async fn committed(
    client: &Arc<KafkaClient>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Option<u64>, KafkaError> {
    let topic = topic.to_owned();
    blocking(client, move |c| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&topic, partition);
        Ok(offset_of(&c.committed_offsets(tpl, timeout)?))
    })
    .await
}

/// The committed offsets of these partitions of one topic, in one request.
pub(crate) async fn committed_all(
    client: &Arc<KafkaClient>,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<Vec<(i32, u64)>, KafkaError> {
    let (topic, partitions) = (topic.to_owned(), partitions.to_vec());
    blocking(client, move |c| {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(&topic, p);
        }
        let got = c.committed_offsets(tpl, timeout)?;
        Ok(got
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(n) if n >= 0 => Some((e.partition(), n as u64)),
                _ => None,
            })
            .collect())
    })
    .await
}

/// Commits `offsets` (partition → next to consume) of one topic for the
/// group, synchronously.
pub(crate) async fn commit(client: &Arc<KafkaClient>, topic: &str, offsets: &[(i32, u64)]) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o as i64))?;
    }
    // A thread of its own, not the runtime's blocking pool: a synchronous
    // commit to an unreachable cluster runs for librdkafka's own timeouts
    // (about 45 s), and a runtime shutting down waits for its pool, so the
    // caller's bound would not bound the application's exit.
    let (done, result) = tokio::sync::oneshot::channel();
    let client = Arc::clone(client);
    std::thread::Builder::new()
        .name("zkbalance-commit".into())
        .spawn(move || {
            let _ = done.send(client.commit(&tpl, CommitMode::Sync));
        })
        .map_err(|_| KafkaError::Canceled)?;
    result.await.map_err(|_| KafkaError::Canceled)?
}

/// (low, high) watermarks of a partition, asked of its leader.
pub(crate) async fn watermarks(
    client: &Arc<KafkaClient>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(u64, u64), KafkaError> {
    let topic = topic.to_owned();
    let (lo, hi) = blocking(client, move |c| c.fetch_watermarks(&topic, partition, timeout)).await?;
    Ok((lo.max(0) as u64, hi.max(0) as u64))
}

/// The first offset at or after `timestamp_ms`, or `None` past the end.
pub(crate) async fn offset_for_time(
    client: &Arc<KafkaClient>,
    topic: &str,
    partition: i32,
    timestamp_ms: i64,
    timeout: Duration,
) -> Result<Option<u64>, KafkaError> {
    let topic = topic.to_owned();
    blocking(client, move |c| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, Offset::Offset(timestamp_ms))?;
        Ok(offset_of(&c.offsets_for_times(tpl, timeout)?))
    })
    .await
}
