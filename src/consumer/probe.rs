//! The consumer's counters, offsets and lag, read without the consumer
//! itself: by `metrics()` and by the exporter task alike.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::control::Shared;
use super::metrics::{ConsumerMetrics, PartitionMetrics};
use crate::fetch::FetchStats;
use crate::kafka::KafkaClient;

pub(crate) struct Probe {
    pub shared: Arc<Shared>,
    pub fetch_stats: Arc<FetchStats>,
    pub buffered: Arc<AtomicUsize>,
    pub client: Arc<KafkaClient>,
    /// Brokers registered in ZooKeeper at the last look.
    pub brokers: Arc<AtomicUsize>,
    pub group: Arc<crate::coord::Metrics>,
    /// Messages and bytes delivered, as the consumer stored them at its
    /// last delivery.
    pub delivered: (AtomicU64, AtomicU64),
}

impl Probe {
    /// What the consumer published of its delivery counts.
    pub fn published(&self) -> (u64, u64) {
        (self.delivered.0.load(Ordering::Relaxed), self.delivered.1.load(Ordering::Relaxed))
    }

    pub fn publish(&self, (messages, bytes): (u64, u64)) {
        self.delivered.0.store(messages, Ordering::Relaxed);
        self.delivered.1.store(bytes, Ordering::Relaxed);
    }

    /// A snapshot, with these delivery counts.
    pub fn snapshot(&self, delivered: (u64, u64)) -> ConsumerMetrics {
        let mut m = ConsumerMetrics::default();
        self.shared.counters.fill(&mut m);
        (m.messages, m.bytes) = delivered;
        m.group = self.group.snapshot();
        m.fetch_errors = self.fetch_stats.fetch_errors.load(Ordering::Relaxed);
        m.backpressure_pauses = self.fetch_stats.backpressure_pauses.load(Ordering::Relaxed);
        m.notices_dropped = self.shared.notices.dropped();
        m.buffered = self.buffered.load(Ordering::Relaxed);
        m.brokers = self.brokers.load(Ordering::Relaxed);
        let now = crate::coord::clock::now();
        m.partitions = self
            .shared
            .owned_cells()
            .iter()
            .filter(|c| !c.is_closed())
            .map(|c| {
                let (committed, acknowledged) = c.offsets();
                let log_end = crate::kafka::ffi::cached_log_end(&self.client, c.tp.topic.as_str(), c.tp.partition.0);
                let lag = log_end.zip(committed).map(|(e, c)| e.saturating_sub(c));
                let (outstanding, oldest_unacked_for) = c.unacked(now);
                PartitionMetrics {
                    topic_partition: c.tp.clone(),
                    committed,
                    acknowledged,
                    log_end,
                    lag,
                    outstanding,
                    oldest_unacked_for,
                    at_end: c.at_end(),
                }
            })
            .collect();
        m
    }
}
