//! The consumer's counters and their snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::coord::MetricsSnapshot;
use crate::ids::TopicPartition;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub dropped_revoked: AtomicU64,
    pub late_acks: AtomicU64,
    pub commits: AtomicU64,
    pub commit_failures: AtomicU64,
    pub fenced_commits: AtomicU64,
    pub offset_read_failures: AtomicU64,
    pub unacked_at_revoke: AtomicU64,
    pub acks_overdue: AtomicU64,
}

/// One owned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionMetrics {
    /// The partition.
    pub topic_partition: TopicPartition,
    /// The last committed offset (next to consume), if any.
    pub committed: Option<u64>,
    /// The low watermark: everything below it is acknowledged.
    pub acknowledged: Option<u64>,
    /// The log end offset, as last seen in a fetch response.
    pub log_end: Option<u64>,
    /// `log_end − committed`.
    pub lag: Option<u64>,
    /// Messages delivered and not acknowledged.
    pub outstanding: usize,
    /// How long the commit position has waited for its message (the
    /// oldest one not acknowledged); `None` when nothing is outstanding.
    pub oldest_unacked_for: Option<std::time::Duration>,
    /// Whether every message up to the log end, as the last fetch that
    /// reached it found it, was handed to the application (librdkafka's
    /// partition EOF, so transaction markers do not hold it back). What
    /// `zkbc consume --exit` waits for, with `outstanding == 0`.
    pub at_end: bool,
}

/// A copy of a consumer's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerMetrics {
    /// The group member's counters: group reads, rebalances (count and
    /// duration histogram), claims and claim waits (retries), losses.
    pub group: MetricsSnapshot,
    /// Owned partitions, with offsets and lag.
    pub partitions: Vec<PartitionMetrics>,
    /// Messages delivered to the application.
    pub messages: u64,
    /// Payload and key bytes delivered.
    pub bytes: u64,
    /// Fetched messages dropped because their partition was revoked or lost
    /// before they were delivered.
    pub dropped_revoked: u64,
    /// Acknowledgements that came after their partition's final commit.
    pub late_acks: u64,
    /// Offset commits done.
    pub commits: u64,
    /// Offset commits that failed (ZooKeeper or Kafka errors).
    pub commit_failures: u64,
    /// Commits refused because the lease no longer stood.
    pub fenced_commits: u64,
    /// Failed reads of a committed offset (retried).
    pub offset_read_failures: u64,
    /// Revoked partitions committed with messages still unacknowledged
    /// (they will be delivered again by the next owner).
    pub unacked_at_revoke: u64,
    /// Times one unacknowledged message held a partition's commits back
    /// past the warning bound (see `ConsumerBuilder::ack_warning`).
    pub acks_overdue: u64,
    /// Errors returned by polls (transient broker failures and the like).
    pub fetch_errors: u64,
    /// Errors and warnings dropped because the application did not read
    /// them (see [`BalancedConsumer::recv`](super::BalancedConsumer::recv)).
    pub notices_dropped: u64,
    /// Times fetching paused because the buffer was full.
    pub backpressure_pauses: u64,
    /// Messages fetched and not yet delivered.
    pub buffered: usize,
    /// Brokers registered in ZooKeeper, as last followed (new ones are
    /// added to the Kafka client as they register).
    pub brokers: usize,
}

impl Counters {
    pub fn fill(&self, m: &mut ConsumerMetrics) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        m.dropped_revoked = get(&self.dropped_revoked);
        m.late_acks = get(&self.late_acks);
        m.commits = get(&self.commits);
        m.commit_failures = get(&self.commit_failures);
        m.fenced_commits = get(&self.fenced_commits);
        m.offset_read_failures = get(&self.offset_read_failures);
        m.unacked_at_revoke = get(&self.unacked_at_revoke);
        m.acks_overdue = get(&self.acks_overdue);
    }
}
