//! Where a newly owned partition starts, and how the partitions of one
//! assignment reach librdkafka: resolved to concrete offsets, in one call.
//!
//! Why: a partition handed over with a logical offset (`Beginning`, `End`)
//! waits for librdkafka's own offset lookup, and one handed over a few
//! milliseconds after its siblings waits for the fetch already parked on the
//! broker for them (`fetch.wait.max.ms`). Both were measured as 100–400 ms
//! before a just-claimed partition's first message.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::Offset;

use super::control::Shared;
use super::partition::PartitionCell;
use crate::fetch::Fetcher;
use crate::ids::TopicPartition;
use crate::offsets::OffsetReset;

/// Where a partition starts the first time this consumer owns it
/// ([`ConsumerBuilder::start_at`](super::ConsumerBuilder::start_at)); later
/// assignments of it resume from the committed offset. Positions past the
/// log's ends are clamped to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartAt {
    /// The committed offset (the reset policy without one): the default.
    #[default]
    Committed,
    /// The oldest retained offset.
    Beginning,
    /// The log end: only messages produced from now on.
    End,
    /// This offset.
    Offset(u64),
    /// This many messages before the log end.
    FromEnd(u64),
    /// The first message at or after this time (ms since the epoch), or the
    /// log end.
    Timestamp(i64),
}

/// Resolves `at` for `tp` with the broker's watermarks.
async fn position(shared: &Shared, tp: &TopicPartition, at: StartAt) -> Result<u64, crate::offsets::OffsetError> {
    let kafka = &shared.committer.kafka;
    let (topic, p) = (tp.topic.as_str(), tp.partition.0);
    let failed = |e: rdkafka::error::KafkaError| crate::offsets::OffsetError::Kafka {
        op: "offset lookup",
        tp: tp.clone(),
        reason: e.to_string(),
    };
    let (low, high) = crate::kafka::watermarks(&kafka.client, topic, p, kafka.timeout).await.map_err(failed)?;
    Ok(match at {
        StartAt::Committed | StartAt::Beginning => low,
        StartAt::End => high,
        StartAt::Offset(o) => o.clamp(low, high),
        StartAt::FromEnd(n) => high.saturating_sub(n).max(low),
        StartAt::Timestamp(ms) => crate::kafka::offset_for_time(&kafka.client, topic, p, ms, kafka.timeout)
            .await
            .map_err(failed)?
            .map_or(high, |o| o.clamp(low, high)),
    })
}

/// What the fetcher is told for one partition.
pub(crate) type Start = (TopicPartition, Offset, Arc<PartitionCell>);

/// Where a partition starts: its committed offset (retried until read:
/// the caller gives up when the lease ends) or, without one, the reset
/// policy's end of the log. `None` when the policy is to report, not guess.
/// The first failed read gives up the partition's place in its batch, so
/// its siblings do not wait for the retries. `reset`: ignore the committed
/// offset and start at the policy's end.
pub(crate) async fn find(
    shared: &Shared,
    tp: &TopicPartition,
    place: &mut Place,
    reset: bool,
) -> Option<(Option<u64>, Offset)> {
    if let Some(at) = shared.first_start(tp) {
        let mut delay = Duration::from_millis(100);
        loop {
            match position(shared, tp, at).await {
                Ok(o) => {
                    tracing::info!(%tp, ?at, offset = o, "starts where asked: the committed offset is ignored");
                    shared.positioned(tp);
                    return Some((Some(o), Offset::Offset(o as i64)));
                }
                Err(e) => {
                    place.defer();
                    tracing::warn!(%tp, error = %e, "cannot resolve the start position; retrying");
                    shared.notices.post(super::ConsumeError::StartOffset { partition: tp.clone(), source: e });
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
    if reset && shared.reset != OffsetReset::Error {
        tracing::info!(%tp, policy = ?shared.reset, "reset on start: the committed offset is ignored");
        return Some((None, reset_offset(shared, tp).await));
    }
    let mut delay = Duration::from_millis(100);
    let committed = loop {
        match shared.committer.read(tp).await {
            Ok(offset) => break offset,
            Err(e) => {
                place.defer();
                shared.counters.offset_read_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%tp, error = %e, "cannot read the committed offset; retrying (fix or reset it with `zkbc offsets reset`)");
                shared.notices.post(super::ConsumeError::StartOffset { partition: tp.clone(), source: e });
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    };
    match (committed, shared.reset) {
        (Some(o), _) => Some((committed, Offset::Offset(o as i64))),
        (None, OffsetReset::Error) => None,
        (None, _) => Some((None, reset_offset(shared, tp).await)),
    }
}

/// Where fetching starts without a committed offset: the reset policy's end
/// of the log, as a concrete offset when the leader answers in time (so
/// librdkafka fetches at once), else as the logical offset it resolves.
async fn reset_offset(shared: &Shared, tp: &TopicPartition) -> Offset {
    let logical = match shared.reset {
        OffsetReset::Earliest => Offset::Beginning,
        _ => Offset::End,
    };
    let kafka = &shared.committer.kafka;
    match crate::kafka::watermarks(&kafka.client, tp.topic.as_str(), tp.partition.0, kafka.timeout).await {
        Ok((low, _)) if logical == Offset::Beginning => Offset::Offset(low as i64),
        Ok((_, high)) => Offset::Offset(high as i64),
        Err(e) => {
            tracing::debug!(%tp, error = %e, "watermarks unknown; librdkafka resolves the start");
            logical
        }
    }
}

#[derive(Default)]
struct Pending {
    /// Partitions of the assignment that have not reported yet.
    waiting: usize,
    starts: Vec<Start>,
    sent: bool,
}

/// Gathers the starts of one assignment's partitions and hands them to the
/// fetcher together once every partition has reported (or given up its
/// place). A partition revoked before that is withdrawn under the same
/// lock, so the fetcher never sees its assign after its unassign.
pub(crate) struct StartBatch {
    pending: Mutex<Pending>,
}

impl StartBatch {
    pub fn new(partitions: usize) -> Arc<Self> {
        Arc::new(StartBatch { pending: Mutex::new(Pending { waiting: partitions, ..Pending::default() }) })
    }

    /// Reports one partition: its start, or `None` when it will not be in
    /// the batch (it starts alone later, or not at all). Each place reports
    /// once and the batch goes out only after the last report, so a report
    /// always finds it unsent.
    fn report(&self, fetcher: &Fetcher<Arc<PartitionCell>>, start: Option<Start>) {
        let mut p = self.pending.lock();
        debug_assert!(!p.sent, "a place reported after its batch went out");
        p.starts.extend(start);
        p.waiting = p.waiting.saturating_sub(1);
        if p.waiting == 0 {
            p.sent = true;
            let starts = std::mem::take(&mut p.starts);
            if !starts.is_empty() {
                // A channel send: never blocks, so fine under the lock.
                fetcher.assign(starts);
            }
        }
    }

    /// Takes a partition out of a batch not yet sent.
    pub fn withdraw(&self, tp: &TopicPartition) {
        let mut p = self.pending.lock();
        if !p.sent {
            p.starts.retain(|(t, _, _)| t != tp);
        }
    }
}

/// One partition's place in a batch: reported exactly once, as `None` if
/// dropped unreported (the partition's task ended before it had a start).
pub(crate) struct Place {
    batch: Arc<StartBatch>,
    shared: Arc<Shared>,
    reported: bool,
}

impl Place {
    pub fn new(batch: &Arc<StartBatch>, shared: &Arc<Shared>) -> Self {
        Place { batch: Arc::clone(batch), shared: Arc::clone(shared), reported: false }
    }

    /// Gives up the place: the partition will start alone, if at all.
    pub fn defer(&mut self) {
        if !std::mem::replace(&mut self.reported, true) {
            self.batch.report(&self.shared.fetcher, None);
        }
    }

    /// Starts the partition: with the batch while it waits, else at once.
    pub fn start(&mut self, start: Start) {
        if std::mem::replace(&mut self.reported, true) {
            self.shared.fetcher.assign(vec![start]);
        } else {
            self.batch.report(&self.shared.fetcher, Some(start));
        }
    }

    /// Takes the partition out of the batch if it was not sent yet; then
    /// an unassign sent after this cannot be overtaken by the batch.
    pub fn withdraw(&self, tp: &TopicPartition) {
        self.batch.withdraw(tp);
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.defer();
    }
}
