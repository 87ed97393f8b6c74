//! Leases: how the application holds a partition, and how a rebalance takes
//! it back without waiting on anything but the lease itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::assign::Slot;
pub use crate::balance::Ending;
use crate::balance::{PartitionGate, Verdict};
use crate::ids::TopicPartition;

/// What a commit made under a lease must still find true: the session that
/// claimed the partition is the current one and its owner znode is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The driver's session number when the partition was claimed.
    pub(crate) session: u64,
    /// The owner znode (the first spelling, for pykafka's two).
    pub(crate) owner_path: String,
}

/// The right to process one partition. Dropping it tells the group the
/// application has let go.
///
/// Holding it is not enough to act: the group may have been cut off from
/// ZooKeeper, or this process paused, long enough that a peer could own the
/// partition soon. [`Lease::is_valid`] answers at the caller's clock; check
/// it right before each unit of work that must not run twice.
#[derive(Debug)]
pub struct Lease {
    tp: TopicPartition,
    slot: Slot,
    generation: u64,
    first_round: bool,
    fence: Fence,
    gate: Arc<PartitionGate>,
    ending: watch::Receiver<Ending>,
    _held: oneshot::Sender<()>,
}

impl Lease {
    /// The partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The consumer thread it is assigned to.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// The generation that granted it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What a fenced commit checks.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Whether it was granted in this member's first rebalance (the one
    /// that followed its registration), before the group first settled
    /// with it: what pykafka's `reset_offset_on_start` applies to.
    pub fn is_first_round(&self) -> bool {
        self.first_round
    }

    /// How the lease stands now.
    pub fn ending(&self) -> Ending {
        self.gate.ending()
    }

    /// Whether the partition may be worked on *now*: still held, and the
    /// session confirmed alive recently enough that it cannot have expired
    /// (the delivery lease; see docs/coordination.md). Judged at the
    /// caller's clock, so a process that wakes from a long pause gets
    /// `false` before any event reached it.
    pub fn is_valid(&self) -> bool {
        self.gate.check(super::clock::now()) == Verdict::Deliver
    }

    /// How much longer the lease is valid if no confirmation renews it
    /// (zero once lapsed or ended).
    pub fn remaining(&self) -> Duration {
        match (self.gate.ending(), self.gate.session().until()) {
            (Ending::Held, Some(until)) => super::clock::until(until),
            _ => Duration::ZERO,
        }
    }

    /// The gate the consumer checks each message of this partition through.
    pub(crate) fn gate(&self) -> Arc<PartitionGate> {
        Arc::clone(&self.gate)
    }

    /// Resolves when the lease is revoked or lost. Select on this beside
    /// any wait for work, so a rebalance never waits on that work.
    pub async fn ended(&mut self) -> Ending {
        match self.ending.wait_for(|e| *e != Ending::Held).await {
            Ok(e) => *e,
            // The group is gone: treat as lost.
            Err(_) => Ending::Lost,
        }
    }
}

/// The group's side of a lease.
#[derive(Debug)]
pub(crate) struct LeaseHandle {
    gate: Arc<PartitionGate>,
    ending: watch::Sender<Ending>,
    released: Option<oneshot::Receiver<()>>,
}

pub(crate) fn lease(
    tp: TopicPartition,
    slot: Slot,
    generation: u64,
    first_round: bool,
    fence: Fence,
    gate: PartitionGate,
) -> (Lease, LeaseHandle) {
    let gate = Arc::new(gate);
    let (ending_tx, ending_rx) = watch::channel(Ending::Held);
    let (held_tx, held_rx) = oneshot::channel();
    (
        Lease { tp, slot, generation, first_round, fence, gate: Arc::clone(&gate), ending: ending_rx, _held: held_tx },
        LeaseHandle { gate, ending: ending_tx, released: Some(held_rx) },
    )
}

impl LeaseHandle {
    /// Signals the end; returns a future that resolves when the lease is
    /// dropped. The gate closes first, so no message of the partition is
    /// handed over from here on, whatever the holder is doing.
    pub(crate) fn end(mut self, how: Ending) -> impl std::future::Future<Output = ()> {
        self.gate.end(how);
        self.ending.send_replace(self.gate.ending());
        let released = self.released.take();
        async move {
            if let Some(rx) = released {
                let _ = rx.await;
            }
        }
    }
}
