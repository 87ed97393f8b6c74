//! The rdkafka client: its configuration, its context (logs and errors
//! into `tracing`), and brokers bootstrapped from their ZooKeeper registrations.

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;

use crate::ids::GroupId;
use crate::offsets::OffsetReset;

/// librdkafka's callbacks: logs and errors into `tracing`.
#[derive(Default)]
pub struct FetchContext;

impl ClientContext for FetchContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::warn!(target: "librdkafka", fac, "{message}")
            }
            _ => tracing::debug!(target: "librdkafka", fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Transient broker errors are expected during broker outages; the
        // fetch error counter and the log carry them.
        tracing::debug!(target: "librdkafka", error = %error, "{reason}");
    }
}

impl ConsumerContext for FetchContext {}

/// The consumer the fetcher polls and the Kafka committer commits through.
pub(crate) type KafkaClient = BaseConsumer<FetchContext>;

/// What the rdkafka client is built from.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub bootstrap: String,
    pub group: GroupId,
    pub reset: OffsetReset,
    /// Applied last: any librdkafka property.
    pub overrides: Vec<(String, String)>,
}

pub(crate) fn kafka_client(s: &ClientSettings) -> Result<KafkaClient, KafkaError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &s.bootstrap)
        // Needed for OffsetCommit/OffsetFetch; no Kafka group membership is
        // used (assignment is ours).
        .set("group.id", s.group.as_str())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
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
    cfg.create_with_context(FetchContext)
}

/// `host:port,...` of the brokers registered in ZooKeeper, for
/// `bootstrap.servers`; `None` when none is registered.
pub(crate) async fn bootstrap_from_zookeeper(
    zk: &zookeeper_client::Client,
) -> Result<Option<String>, crate::cluster::ReadError> {
    let servers = crate::cluster::read_brokers(zk).await?.bootstrap_servers();
    Ok((!servers.is_empty()).then_some(servers))
}

/// Follows the broker registrations in ZooKeeper for the consumer's life:
/// brokers that appear are added to librdkafka, so a cluster whose brokers
/// were all replaced is still reachable. `known` counts the brokers
/// registered at the last look.
pub(crate) async fn follow_brokers(
    mut sessions: crate::offsets::Sessions,
    client: std::sync::Arc<KafkaClient>,
    known: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    loop {
        let Some((_, zk)) = sessions.borrow_and_update().clone() else { return };
        // The watch is set before the read, so no change falls between them.
        let read = match zk.get_and_watch_children(crate::znode::layout::BROKER_IDS).await {
            Ok((_, _, watcher)) => crate::cluster::read_brokers(&zk).await.map(|view| (view, watcher)),
            Err(source) => Err(crate::cluster::ReadError { path: crate::znode::layout::BROKER_IDS.into(), source }),
        };
        match read {
            Ok((view, watcher)) => {
                known.store(view.brokers.len(), std::sync::atomic::Ordering::Relaxed);
                let added = super::ffi::add_brokers(&client, &view.bootstrap_servers());
                if added > 0 {
                    tracing::info!(added, "brokers from ZooKeeper added");
                }
                tokio::select! {
                    _ = watcher.changed() => {}
                    changed = sessions.changed() => if changed.is_err() { return },
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading the broker registrations");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    changed = sessions.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}
