//! Rebalance listeners: the application's say in a hand-over, called once
//! per rebalance step with the whole set, off the runtime's workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use crate::ids::TopicPartition;

/// Start offsets a listener chose: partition → next offset to deliver.
pub type StartOffsets = BTreeMap<TopicPartition, u64>;

/// Callbacks around rebalances.
///
/// They run on Tokio's blocking pool, never on a runtime worker: a
/// listener may block (flush a file, write to a database) and may run
/// async code with `tokio::runtime::Handle::current().block_on(...)`.
/// A slow listener delays only the hand-over of its own partitions: the
/// group releases a revoked partition after the revoke timeout whatever
/// the listener does.
pub trait RebalanceListener: Send + Sync + 'static {
    /// Newly owned partitions of one rebalance step, before fetching them
    /// starts. Returns start offsets for any of them, which replace their
    /// committed offsets (pykafka's `post_rebalance_callback` returning
    /// offsets); the others start at their committed offset. Not called
    /// when a change only took partitions away.
    fn on_assigned(&self, generation: u64, partitions: &[TopicPartition]) -> StartOffsets {
        let _ = (generation, partitions);
        StartOffsets::new()
    }

    /// Partitions being taken away, all of one rebalance step: called
    /// before their final commit and before their owner znodes are
    /// released. Nothing of them is delivered from this call on; what the
    /// application acknowledges before returning (and within half the
    /// revoke timeout after) is committed.
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Partitions lost without a hand-over (the session expired, or a
    /// competing claim won): a peer may own them already, so nothing of
    /// them is committed any more. Undo or drop their work in progress;
    /// do not commit it elsewhere.
    fn on_lost(&self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
}

/// One rebalance step's `on_assigned` answer, as the partitions' tasks
/// wait for it (`None` until the listener returned).
pub(crate) type Chosen = watch::Receiver<Option<Arc<StartOffsets>>>;

/// The listener and what its calls owe the partitions' tasks.
#[derive(Default)]
pub(crate) struct Listening {
    pub listener: Option<Arc<dyn RebalanceListener>>,
    /// Per partition: `on_revoked` returned for its revoke. A permit is
    /// kept when the call returns before the task waits.
    revoked: Mutex<HashMap<TopicPartition, Arc<Notify>>>,
}

impl Listening {
    pub fn new(listener: Option<Arc<dyn RebalanceListener>>) -> Self {
        Listening { listener, revoked: Mutex::default() }
    }

    /// Calls `on_assigned` in the background; the tasks wait on the answer.
    pub fn assigned(&self, generation: u64, partitions: Vec<TopicPartition>) -> Option<Chosen> {
        let listener = self.listener.clone().filter(|_| !partitions.is_empty())?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let call = tokio::task::spawn_blocking(move || listener.on_assigned(generation, &partitions));
            // A panicking listener chose nothing.
            let chosen = call.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "the rebalance listener's on_assigned failed");
                StartOffsets::new()
            });
            tx.send_replace(Some(Arc::new(chosen)));
        });
        Some(rx)
    }

    /// Calls `on_revoked` in the background, then lets each partition's
    /// revoke go on.
    pub fn revoked(self: &Arc<Self>, partitions: Vec<TopicPartition>) {
        let Some(listener) = self.listener.clone().filter(|_| !partitions.is_empty()) else { return };
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let ps = partitions.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || listener.on_revoked(&ps)).await {
                tracing::error!(error = %e, "the rebalance listener's on_revoked failed");
            }
            for tp in partitions {
                this.gate(&tp).notify_one();
            }
        });
    }

    /// Calls `on_lost` in the background.
    pub fn lost(&self, partitions: Vec<TopicPartition>) {
        let Some(listener) = self.listener.clone().filter(|_| !partitions.is_empty()) else { return };
        tokio::spawn(async move {
            if let Err(e) = tokio::task::spawn_blocking(move || listener.on_lost(&partitions)).await {
                tracing::error!(error = %e, "the rebalance listener's on_lost failed");
            }
        });
    }

    /// Waits until `on_revoked` returned for `tp`'s revoke (at once without
    /// a listener), at most `within`.
    pub async fn revoke_called(&self, tp: &TopicPartition, within: std::time::Duration) {
        if self.listener.is_none() {
            return;
        }
        let gate = self.gate(tp);
        if tokio::time::timeout(within, gate.notified()).await.is_err() {
            tracing::warn!(%tp, ?within, "on_revoked did not return in time; the partition is committed without it");
        }
        self.revoked.lock().remove(tp);
    }

    /// Forgets what an earlier lease of `tp` left (a revoke that ended
    /// before its task waited).
    pub fn fresh(&self, tp: &TopicPartition) {
        self.revoked.lock().remove(tp);
    }

    fn gate(&self, tp: &TopicPartition) -> Arc<Notify> {
        Arc::clone(self.revoked.lock().entry(tp.clone()).or_default())
    }
}

/// Waits for the listener's choice for `tp` (none without a listener).
pub(crate) async fn chosen(chosen: Option<Chosen>, tp: &TopicPartition) -> Option<u64> {
    let mut rx = chosen?;
    let answer = rx.wait_for(Option::is_some).await.ok()?;
    answer.as_ref().and_then(|offsets| offsets.get(tp).copied())
}
