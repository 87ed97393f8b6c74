//! One owned partition as the consumer sees it, for one lease: whether its
//! messages may still be delivered, and what was acknowledged.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::metrics::Counters;
use crate::balance::{PartitionGate, Time};
use crate::coord::Fence;
use crate::ids::TopicPartition;
use crate::offsets::AckWindow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Delivering.
    Active,
    /// Revoked: nothing more is delivered; acks of messages in hand still
    /// count, so the commit on revoke includes them.
    Revoking,
    /// Done: the last commit happened (or the partition was lost).
    Closed,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Created at the first delivery when the start offset was unknown
    /// (no committed offset: librdkafka resolves earliest/latest).
    window: Option<AckWindow>,
    committed: Option<u64>,
    /// Since when (lease clock) the commit position has waited for its
    /// message: set when a delivery finds nothing outstanding, moved when
    /// an acknowledgement advances the position, cleared when idle.
    held_since: Option<Time>,
    /// The position last reported as overdue (reported once).
    overdue_reported: Option<u64>,
    /// Where the last fetch that reached the log end found it, once every
    /// message before it was handed over.
    end: Option<u64>,
}

/// Shared by the fetcher's tags, the messages and the partition's task.
/// Its lock is held only for a few field updates, never across an await.
#[derive(Debug)]
pub(crate) struct PartitionCell {
    pub tp: TopicPartition,
    pub fence: Fence,
    /// The lease's gate: checked, at the caller's clock, before each message
    /// is handed over and before each commit.
    pub gate: Arc<PartitionGate>,
    /// The assignment generation of the lease this cell lives for.
    pub generation: u64,
    state: Mutex<State>,
    idle: Notify,
    counters: Arc<Counters>,
}

impl PartitionCell {
    pub fn new(lease: &crate::coord::Lease, start: Option<u64>, counters: Arc<Counters>) -> Self {
        let state = State {
            phase: Phase::Active,
            window: start.map(AckWindow::new),
            committed: start,
            held_since: None,
            overdue_reported: None,
            end: None,
        };
        PartitionCell {
            tp: lease.topic_partition().clone(),
            fence: lease.fence().clone(),
            gate: lease.gate(),
            generation: lease.generation(),
            state: Mutex::new(state),
            idle: Notify::new(),
            counters,
        }
    }

    /// The cell that replaces this one after a seek to `start`: the same
    /// lease, a fresh window (acknowledgements of messages delivered
    /// before the seek no longer count).
    pub fn successor(&self, start: u64) -> Self {
        PartitionCell {
            tp: self.tp.clone(),
            fence: self.fence.clone(),
            gate: Arc::clone(&self.gate),
            generation: self.generation,
            state: Mutex::new(State {
                phase: Phase::Active,
                window: Some(AckWindow::new(start)),
                committed: None,
                held_since: None,
                overdue_reported: None,
                end: None,
            }),
            idle: Notify::new(),
            counters: Arc::clone(&self.counters),
        }
    }

    pub fn is_active(&self) -> bool {
        self.state.lock().phase == Phase::Active
    }

    /// Records the delivery of `offset` at `now` if the partition is still
    /// active and the offset moves forward; false means drop the message.
    /// `acked`: acknowledged on receipt, in the same step.
    pub fn deliver(&self, offset: u64, now: Time, acked: bool) -> bool {
        let mut s = self.state.lock();
        if s.phase != Phase::Active {
            return false;
        }
        let window = s.window.get_or_insert_with(|| AckWindow::new(offset));
        let was_idle = window.is_idle();
        if window.deliver(offset).is_err() {
            return false;
        }
        if acked {
            let _ = window.ack(offset);
            if window.is_idle() {
                s.held_since = None;
                return true;
            }
        }
        if was_idle {
            s.held_since = Some(now);
        }
        true
    }

    /// An acknowledgement after the partition's last commit is counted as
    /// late: the message will be delivered again by the next owner.
    pub fn ack(&self, offset: u64) {
        let mut s = self.state.lock();
        if s.phase == Phase::Closed {
            drop(s);
            self.counters.late_acks.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let revoking = s.phase == Phase::Revoking;
        let (idle, moved) = match s.window.as_mut() {
            Some(w) => {
                let moved = w.ack(offset).unwrap_or_else(|e| {
                    tracing::debug!(tp = %self.tp, error = %e, "acknowledgement ignored");
                    false
                });
                (w.is_idle(), moved)
            }
            None => (true, false),
        };
        if idle {
            s.held_since = None;
        } else if moved {
            s.held_since = Some(crate::coord::clock::now());
        }
        drop(s);
        if revoking && idle {
            self.idle.notify_waiters();
        }
    }

    pub fn begin_revoke(&self) {
        let mut s = self.state.lock();
        if s.phase == Phase::Active {
            s.phase = Phase::Revoking;
        }
    }

    pub fn close(&self) {
        self.state.lock().phase = Phase::Closed;
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().phase == Phase::Closed
    }

    fn is_idle(&self) -> bool {
        self.state.lock().window.as_ref().is_none_or(AckWindow::is_idle)
    }

    /// Waits until every delivered message is acknowledged, at most `within`;
    /// false if some were still outstanding.
    pub async fn wait_idle(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_idle() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.is_idle();
            }
        }
    }

    /// The offset to commit, if it moved past the last commit and the
    /// partition is still ours.
    pub fn to_commit(&self) -> Option<u64> {
        let s = self.state.lock();
        let wm = s.window.as_ref()?.low_watermark();
        (s.phase != Phase::Closed && s.committed.is_none_or(|c| wm > c)).then_some(wm)
    }

    pub fn committed(&self, offset: u64) {
        let mut s = self.state.lock();
        s.committed = Some(s.committed.map_or(offset, |c| c.max(offset)));
    }

    /// Messages delivered and not acknowledged, and for how long (at `now`)
    /// the commit position has waited for the oldest of them.
    pub fn unacked(&self, now: Time) -> (usize, Option<Duration>) {
        let s = self.state.lock();
        let outstanding = s.window.as_ref().map_or(0, AckWindow::outstanding);
        (outstanding, s.held_since.map(|t| now.saturating_sub(t)))
    }

    /// The commit position and how long it waited, when that passed
    /// `bound` and was not reported yet (each stuck offset once).
    pub fn overdue(&self, now: Time, bound: Duration) -> Option<(u64, Duration)> {
        let mut s = self.state.lock();
        let held = now.saturating_sub(s.held_since?);
        let position = s.window.as_ref()?.low_watermark();
        if s.phase == Phase::Closed || held < bound || s.overdue_reported == Some(position) {
            return None;
        }
        s.overdue_reported = Some(position);
        Some((position, held))
    }

    /// (committed, position): the last commit, and the low watermark.
    /// Every message before `end`, where a fetch found the log's end, was
    /// handed over.
    pub fn reached_end(&self, end: u64) {
        self.state.lock().end = Some(end);
    }

    /// Whether nothing was delivered past the log end last reached: the
    /// partition is drained as of that fetch.
    pub fn at_end(&self) -> bool {
        let s = self.state.lock();
        s.end.is_some_and(|end| s.window.as_ref().is_none_or(|w| end >= w.next()))
    }

    pub fn offsets(&self) -> (Option<u64>, Option<u64>) {
        let s = self.state.lock();
        (s.committed, s.window.as_ref().map(AckWindow::low_watermark))
    }
}
