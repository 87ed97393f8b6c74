//! Leases: how the application holds a partition, and how a rebalance takes
//! it back without waiting on anything but the lease itself.

use tokio::sync::{oneshot, watch};

use crate::assign::Slot;
use crate::ids::TopicPartition;

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Still held.
    Held,
    /// A rebalance moves the partition: finish the message in hand, commit,
    /// and drop the lease; the owner znode is deleted once it is dropped.
    Revoked,
    /// Ownership is gone already (session expired, or a competing claim
    /// won): stop at once and commit nothing.
    Lost,
}

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
#[derive(Debug)]
pub struct Lease {
    tp: TopicPartition,
    slot: Slot,
    generation: u64,
    fence: Fence,
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

    /// How the lease stands now.
    pub fn ending(&self) -> Ending {
        *self.ending.borrow()
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
    ending: watch::Sender<Ending>,
    released: Option<oneshot::Receiver<()>>,
}

pub(crate) fn lease(tp: TopicPartition, slot: Slot, generation: u64, fence: Fence) -> (Lease, LeaseHandle) {
    let (ending_tx, ending_rx) = watch::channel(Ending::Held);
    let (held_tx, held_rx) = oneshot::channel();
    (
        Lease { tp, slot, generation, fence, ending: ending_rx, _held: held_tx },
        LeaseHandle { ending: ending_tx, released: Some(held_rx) },
    )
}

impl LeaseHandle {
    /// Signals the end; returns a future that resolves when the lease is
    /// dropped.
    pub(crate) fn end(mut self, how: Ending) -> impl std::future::Future<Output = ()> {
        self.ending.send_replace(how);
        let released = self.released.take();
        async move {
            if let Some(rx) = released {
                let _ = rx.await;
            }
        }
    }
}
