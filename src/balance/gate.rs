//! The delivery gate: how whoever hands messages to the application decides,
//! at its own clock and at the moment of the hand-over, whether it still may.
//!
//! Two facts decide it, and both are published without a lock so the check
//! costs two atomic loads:
//! - the [`SessionLease`]: until when the ZooKeeper session is known to be
//!   alive (the state machine's delivery lease, see
//!   [`Balancer::lease_until`](super::Balancer::lease_until)); one per
//!   session, so nothing granted under a dead session is ever valid again;
//! - the partition's [`Ending`]: whether the group still holds it for this
//!   holder, or is taking it back.
//!
//! The driver publishes both as the machine decides; the consumer, the
//! group-membership leases and the simulator all check through
//! [`PartitionGate::check`], so a process that wakes from a pause, or that
//! lost ZooKeeper, stops at the first message whose lease ran out — before
//! any event has told it anything.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use super::Time;

/// Why a partition's lease ended, or that it did not.
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

impl Ending {
    fn code(self) -> u8 {
        match self {
            Ending::Held => 0,
            Ending::Revoked => 1,
            Ending::Lost => 2,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            0 => Ending::Held,
            1 => Ending::Revoked,
            _ => Ending::Lost,
        }
    }
}

/// The delivery lease of one ZooKeeper session.
#[derive(Debug, Default)]
pub struct SessionLease {
    /// End of the lease in nanoseconds since the clock's epoch; 0 = none.
    until_nanos: AtomicU64,
    /// A deliberate bug: treat the lease as always valid.
    #[cfg(feature = "mutants")]
    ignored: bool,
}

fn nanos(t: Time) -> u64 {
    // 0 means "none"; a lease can't end at the epoch itself.
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl SessionLease {
    /// A session with no lease yet: nothing may be delivered until the
    /// first confirmation.
    pub fn new() -> Self {
        Self::default()
    }

    /// A lease that a deliberately broken consumer ignores (tests of the
    /// fault suite and the simulator only).
    #[cfg(feature = "mutants")]
    pub fn ignored() -> Self {
        SessionLease { until_nanos: AtomicU64::new(0), ignored: true }
    }

    /// Publishes the end of the lease (`None`: no lease, e.g. once the
    /// session expired). Returns whether it changed.
    pub fn publish(&self, until: Option<Time>) -> bool {
        let new = until.map_or(0, nanos);
        self.until_nanos.swap(new, Ordering::AcqRel) != new
    }

    /// The end of the lease, if one is granted.
    pub fn until(&self) -> Option<Time> {
        match self.until_nanos.load(Ordering::Acquire) {
            0 => None,
            n => Some(Time::from_nanos(n)),
        }
    }

    /// Whether delivery is allowed at `now`, on the clock the lease was
    /// published in.
    pub fn valid_at(&self, now: Time) -> bool {
        #[cfg(feature = "mutants")]
        if self.ignored {
            return true;
        }
        let until = self.until_nanos.load(Ordering::Acquire);
        until != 0 && nanos(now) < until
    }
}

/// What the gate says of a message at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it over.
    Deliver,
    /// Not now: the session is not confirmed alive recently enough. Keep it;
    /// a renewal makes it deliverable again, a loss ends it.
    Lapsed,
    /// Never: the partition was revoked or lost. Drop it.
    Ended,
}

/// One partition's lease as a holder sees it: shared by the group, which
/// ends it, and whoever delivers the partition's messages.
#[derive(Debug)]
pub struct PartitionGate {
    session: Arc<SessionLease>,
    ending: AtomicU8,
}

impl PartitionGate {
    /// A held partition under `session`'s lease.
    pub fn new(session: Arc<SessionLease>) -> Self {
        PartitionGate { session, ending: AtomicU8::new(Ending::Held.code()) }
    }

    /// Ends it; an earlier ending stands (a loss after a revoke is still
    /// reported as the revoke the holder already acted on).
    pub fn end(&self, how: Ending) {
        let _ = self.ending.compare_exchange(Ending::Held.code(), how.code(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// How it stands.
    pub fn ending(&self) -> Ending {
        Ending::from_code(self.ending.load(Ordering::Acquire))
    }

    /// The session lease it was granted under.
    pub fn session(&self) -> &SessionLease {
        &self.session
    }

    /// Whether a message of this partition may be handed over at `now`.
    pub fn check(&self, now: Time) -> Verdict {
        if self.ending() != Ending::Held {
            Verdict::Ended
        } else if self.session.valid_at(now) {
            Verdict::Deliver
        } else {
            Verdict::Lapsed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_delivers_only_while_held_and_within_the_session_lease() {
        let session = Arc::new(SessionLease::new());
        let gate = PartitionGate::new(Arc::clone(&session));
        let ms = Time::from_millis;
        assert_eq!(gate.check(ms(1)), Verdict::Lapsed, "no lease before the first confirmation");
        assert!(session.publish(Some(ms(100))));
        assert!(!session.publish(Some(ms(100))), "unchanged");
        assert_eq!(gate.check(ms(99)), Verdict::Deliver);
        assert_eq!(gate.check(ms(100)), Verdict::Lapsed, "the lease ends at its deadline, not after");
        session.publish(Some(ms(300)));
        assert_eq!(gate.check(ms(250)), Verdict::Deliver, "a renewal makes it deliverable again");
        gate.end(Ending::Revoked);
        gate.end(Ending::Lost);
        assert_eq!(gate.ending(), Ending::Revoked, "the first ending stands");
        assert_eq!(gate.check(ms(250)), Verdict::Ended);
        session.publish(None);
        assert_eq!(session.until(), None);
    }
}
