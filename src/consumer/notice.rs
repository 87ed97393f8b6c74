//! What the application hears besides messages: errors and warnings from
//! the fetcher, the committer, start-offset lookups and the group, handed
//! over by [`recv`](super::BalancedConsumer::recv) in the order they came.
//!
//! They travel in a bounded queue: an application that ignores them must
//! not grow memory without bound in a long broker outage. What overflows
//! is counted ([`ConsumerMetrics::notices_dropped`](super::ConsumerMetrics))
//! and was logged when it happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;

use crate::balance::BalanceError;
use crate::ids::TopicPartition;
use crate::offsets::OffsetError;

/// How many notices wait for the application before the oldest unread
/// ones are dropped (counted).
const CAPACITY: usize = 1024;

/// An error or warning [`recv`](super::BalancedConsumer::recv) reports in
/// place of a message. Only [`Fatal`](Self::Fatal) ends the stream; after
/// any other the consumer goes on (the affected partition retries or waits)
/// and the next `recv` returns the next message.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// Fetching one partition failed; librdkafka retries it.
    #[error("fetching {partition}: {reason} ({code})")]
    Fetch {
        /// The partition.
        partition: TopicPartition,
        /// librdkafka's error name (as `OffsetOutOfRange`).
        code: String,
        /// librdkafka's description.
        reason: String,
    },
    /// The Kafka client reported an error of no one partition (a broker
    /// down, every broker down, a failed connection); librdkafka retries.
    #[error("Kafka: {reason} ({code})")]
    Client {
        /// librdkafka's error name (as `AllBrokersDown`).
        code: String,
        /// librdkafka's description.
        reason: String,
    },
    /// A periodic or revoke-time commit failed: the next commit tries again;
    /// on revoke, the next owner starts from the last commit that held.
    #[error("committing {partition}: {source}")]
    Commit {
        /// The partition.
        partition: TopicPartition,
        /// Why.
        #[source]
        source: OffsetError,
    },
    /// A newly owned partition cannot start: its committed offset cannot
    /// be read (retried with backoff), or there is none and the reset
    /// policy is [`OffsetReset::Error`](crate::offsets::OffsetReset) (the
    /// partition stays owned and idle until an offset is set).
    #[error("starting {partition}: {source}")]
    StartOffset {
        /// The partition.
        partition: TopicPartition,
        /// Why.
        #[source]
        source: OffsetError,
    },
    /// One unacknowledged message has held a partition's commits back for
    /// longer than the configured bound
    /// ([`ConsumerBuilder::ack_warning`](super::ConsumerBuilder::ack_warning)).
    /// Reported once per stuck offset.
    #[error("{partition}: offset {offset} delivered and not acknowledged for {held_for:?}; commits of the partition wait for it")]
    AckOverdue {
        /// The partition.
        partition: TopicPartition,
        /// The oldest unacknowledged offset.
        offset: u64,
        /// Since the partition's commit position last moved.
        held_for: Duration,
    },
    /// The group reported a failure it recovers from (a claim given up
    /// after its retries, a member znode left out of the assignment).
    #[error("group: {0}")]
    Group(#[source] BalanceError),
    /// The consumer cannot go on (its group member ended without
    /// [`stop`](super::BalancedConsumer::stop)); the stream ends after this.
    #[error("the consumer stopped: {reason}")]
    Fatal {
        /// Why.
        reason: String,
    },
}

impl ConsumeError {
    /// The partition it concerns, if one.
    pub fn partition(&self) -> Option<&TopicPartition> {
        match self {
            ConsumeError::Fetch { partition, .. }
            | ConsumeError::Commit { partition, .. }
            | ConsumeError::StartOffset { partition, .. }
            | ConsumeError::AckOverdue { partition, .. } => Some(partition),
            _ => None,
        }
    }

    /// Whether the stream ends after it.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ConsumeError::Fatal { .. })
    }
}

impl From<crate::fetch::FetchFailure> for ConsumeError {
    fn from(f: crate::fetch::FetchFailure) -> Self {
        match f.partition {
            Some(partition) => ConsumeError::Fetch { partition, code: f.code, reason: f.reason },
            None => ConsumeError::Client { code: f.code, reason: f.reason },
        }
    }
}

/// The sending side, shared by the consumer's tasks and the fetch thread.
#[derive(Debug, Clone)]
pub(crate) struct Notices {
    tx: mpsc::Sender<ConsumeError>,
    dropped: Arc<AtomicU64>,
}

impl Notices {
    pub fn new() -> (Notices, mpsc::Receiver<ConsumeError>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (Notices { tx, dropped: Arc::default() }, rx)
    }

    /// Queues `e` for the application without waiting (the fetch thread
    /// and the commit task must never block on a slow reader).
    pub fn post(&self, e: ConsumeError) {
        if let Err(mpsc::error::TrySendError::Full(e)) = self.tx.try_send(e) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "notice dropped: the application is not reading them");
        }
    }

    /// Where the Kafka client and the fetch thread report their errors.
    pub fn sink(&self) -> crate::kafka::ErrorSink {
        let notices = self.clone();
        std::sync::Arc::new(move |f: crate::fetch::FetchFailure| notices.post(f.into()))
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
