//! The rebalance state machine, *sans I/O*.
//!
//! A [`Balancer`] is one member's view of its group. It is fed [`Input`]s —
//! what ZooKeeper said, what a claim returned, that the application let go of
//! a partition, that time passed — and answers with [`Action`]s for a driver
//! to carry out: register, read the group, create or delete an owner znode,
//! watch for a deletion, revoke partitions from the application. It never
//! touches a socket or a clock: time comes in with every input, and jitter
//! from a seeded generator, so the production driver (`coord`) and the
//! simulator drive exactly the same code.
//!
//! The rules it keeps:
//! - **Coalescing**: watch events only mark the view stale; one read follows
//!   a short window, however many events came in it.
//! - **Release before reassign**: a partition leaves this member by
//!   [`Action::Revoke`] (the application stops and commits), then
//!   [`Action::DeleteOwner`]; only the deletion lets a peer claim it.
//! - **Incremental**: partitions that stay are never revoked or re-claimed.
//! - **Bounded claims**: a claim on a held partition waits for the owner's
//!   deletion (a watch) or a backoff with jitter, retries a bounded number of
//!   times whose total outlasts the session timeout, then gives up, rolls back
//!   the round's claims and reports [`BalanceError::ClaimGaveUp`].
//! - **Delivery lease**: delivery is allowed only until the last confirmed
//!   contact with ZooKeeper plus the session timeout minus a margin — before
//!   the earliest the server could expire the session. Disconnects, slow
//!   detection and process pauses all end the lease the same way; ownership
//!   is kept until the session really expires, then everything is dropped at
//!   once and the member rejoins with a new session. Whoever hands messages
//!   over checks the lease through the [`gate`] at its own clock.
//! - **Never decide without a peer**: a member znode that cannot be read
//!   holds the rebalance (owned partitions kept, nothing claimed) until it
//!   can be, or until [`BalanceConfig::unreadable_bound`] lets the flavour's
//!   reference rule count it.
//! - **Reconcile**: the group is re-read periodically, so a lost watch never
//!   leaves a member idle or a partition unowned.

/// Whether a deliberate bug is switched on in a machine: always false
/// without the `mutants` feature (its enum does not exist then).
macro_rules! mutant {
    ($machine:expr, $m:ident) => {{
        #[cfg(feature = "mutants")]
        let on = $machine.cfg.mutant == Some(crate::balance::Mutant::$m);
        #[cfg(not(feature = "mutants"))]
        let on = false;
        on
    }};
}

mod blocked;
mod claims;
mod config;
pub mod gate;
mod lifecycle;
mod machine;
mod snapshot;

#[cfg(feature = "mutants")]
pub use config::Mutant;
pub use config::{BalanceConfig, ConfigError};
pub use gate::{Ending, PartitionGate, SessionLease, Verdict};
pub use machine::Balancer;
pub use snapshot::{GroupSnapshot, OwnerRecord, Unreadable};

use std::collections::BTreeSet;
use std::time::Duration;

use thiserror::Error;

use crate::assign::{AssignError, Slot};
use crate::ids::TopicPartition;
use crate::zk_call::ZkCallError;
use crate::znode::OwnerName;

/// Time since the driver's epoch. The machine has no clock of its own.
pub type Time = Duration;

/// What happened to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The owner znode is ours; `czxid` is its creation zxid (the earliest
    /// creation wins when two claims slip past each other).
    Claimed {
        /// Creation zxid of our owner znode.
        czxid: i64,
    },
    /// Another member's owner znode exists.
    Taken,
    /// ZooKeeper failed the request.
    Failed(ZkCallError),
}

/// The session, as the driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// The connection dropped; the session may still be alive.
    Disconnected,
    /// Reconnected within the session timeout: the same session.
    Reconnected,
    /// The session expired: ephemerals (member and owner znodes) are gone.
    Expired,
    /// A new session is connected after an expiry.
    Established,
}

/// Everything the machine reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Begin: register in the group.
    Start,
    /// The member znode exists.
    Registered,
    /// Registering failed; retried after a backoff.
    RegisterFailed(ZkCallError),
    /// A watch fired (members, topics, brokers): the view is stale.
    Changed,
    /// The group as read after [`Action::ReadGroup`].
    Snapshot(GroupSnapshot),
    /// Reading the group failed; retried after a backoff.
    ReadFailed(ZkCallError),
    /// The answer to [`Action::Claim`].
    ClaimResult {
        /// The partition.
        tp: TopicPartition,
        /// What happened.
        outcome: ClaimOutcome,
    },
    /// Every owner znode of a partition we wait for is gone.
    OwnerGone(TopicPartition),
    /// The application stopped using a revoked partition (and committed).
    Released(TopicPartition),
    /// Our owner znode of a partition is deleted (or was already gone).
    OwnerDeleted(TopicPartition),
    /// The session changed.
    Session(SessionEvent),
    /// The driver confirmed the session with a request sent at `sent_at`:
    /// delivery may go on until `sent_at + lease`.
    Heartbeat {
        /// When the confirming request was sent.
        sent_at: Time,
    },
    /// Time passed; see [`Balancer::next_deadline`].
    Tick,
    /// Leave the group cleanly.
    Stop,
    /// The member znode is deleted.
    Deregistered,
}

/// Everything the machine asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the member znode; answer [`Input::Registered`] or
    /// [`Input::RegisterFailed`].
    Register,
    /// Read members, topics and owners, setting watches; answer
    /// [`Input::Snapshot`] or [`Input::ReadFailed`].
    ReadGroup,
    /// Create the owner znode; answer [`Input::ClaimResult`].
    Claim {
        /// The partition.
        tp: TopicPartition,
        /// The thread that will own it (its payload).
        slot: Slot,
        /// The znode's name.
        name: OwnerName,
    },
    /// Watch the partition's owner znodes; answer [`Input::OwnerGone`] when
    /// none is left (at once if none exists).
    WatchOwner(TopicPartition),
    /// Stop watching (the claim was abandoned).
    Unwatch(TopicPartition),
    /// Take these partitions away from the application: it stops delivering
    /// and commits; answer [`Input::Released`] per partition.
    Revoke(BTreeSet<TopicPartition>),
    /// These partitions are no longer ours (session expired, or another
    /// member's claim won): stop delivering now, commit nothing.
    Lost(BTreeSet<TopicPartition>),
    /// Delete our owner znode — exactly the one created at `czxid`, never
    /// a later claim's; answer [`Input::OwnerDeleted`].
    DeleteOwner {
        /// The partition.
        tp: TopicPartition,
        /// The znode's name.
        name: OwnerName,
        /// Its creation zxid.
        czxid: i64,
    },
    /// The set of partitions this member owns changed.
    Assigned {
        /// Bumped at every change.
        generation: u64,
        /// Partitions now owned, with their threads.
        partitions: Vec<(TopicPartition, Slot)>,
    },
    /// Stop delivering: no contact with ZooKeeper has been confirmed recently
    /// enough to be sure the session is alive.
    Suspend,
    /// Contact is confirmed again: deliver again.
    Resume,
    /// Connect a new session (after expiry); answer
    /// [`Input::Session`]`(`[`SessionEvent::Established`]`)`.
    NewSession,
    /// Delete the member znode; answer [`Input::Deregistered`].
    Deregister,
    /// Close the session: the member has left.
    Close,
    /// The rebalance waits for member znodes it cannot read: an assignment
    /// without them would differ from their peers'. Owned partitions are
    /// kept and delivered; nothing is claimed. Reported when the set of
    /// blocking znodes changes, and when the wait passes
    /// [`BalanceConfig::unreadable_bound`].
    Blocked {
        /// The member znodes waited for.
        by: Vec<Unreadable>,
        /// The longest wait so far.
        waited: Duration,
        /// Whether the wait passed the bound (a Scala group stays blocked).
        past_bound: bool,
    },
    /// Every member znode is readable (or counted out) again.
    Unblocked,
    /// Something went wrong that the application should hear about.
    Error(BalanceError),
}

/// Failures the machine reports (it keeps running after each, but for
/// [`BalanceError::RegistrationRefused`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BalanceError {
    /// A claim was retried the configured number of times and the partition
    /// is still owned by another member. The round's claims were rolled back.
    #[error(
        "gave up claiming {tp} after {attempts} attempts; still owned by {}",
        owner.as_ref().map_or("an unknown member", |m| m.as_str())
    )]
    ClaimGaveUp {
        /// The partition.
        tp: TopicPartition,
        /// Attempts made.
        attempts: u32,
        /// Its owner at the last read, if it was readable.
        owner: Option<crate::ids::MemberId>,
    },
    /// The strategy cannot assign this group.
    #[error("cannot assign: {0}")]
    Assign(#[from] AssignError),
    /// Our member znode is missing from a fresh read: re-registering.
    #[error("our member znode is gone; registering again")]
    MemberVanished,
    /// ZooKeeper failed a request; it is retried.
    #[error(transparent)]
    ZooKeeper(#[from] ZkCallError),
    /// The server refuses our member znode for want of rights (an ACL on
    /// the group's `ids` this session is not admitted by): retrying cannot
    /// cure it, so the member releases what it holds and leaves for good.
    #[error("{0}: the group refuses this member's registration; it leaves the group")]
    RegistrationRefused(ZkCallError),
    /// A member znode stayed unreadable past
    /// [`BalanceConfig::unreadable_bound`] in a pykafka group: it is left
    /// out of the assignment, as pykafka leaves it out.
    #[error("left out of the assignment after {waited:?}, as pykafka does: {znode}")]
    UnreadableLeftOut {
        /// The member znode.
        znode: Unreadable,
        /// How long it was waited for.
        waited: Duration,
    },
}

#[cfg(test)]
mod tests;
