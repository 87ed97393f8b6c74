use std::time::Duration;

use thiserror::Error;

use crate::assign::Strategy;
use crate::ids::MemberId;
use crate::znode::Flavour;

/// A setting that cannot work, with the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    /// The setting.
    pub setting: &'static str,
    /// Why.
    pub reason: String,
}

/// Deliberately broken members, to prove the simulator and the fault suite
/// catch each. Compiled only with the `mutants` feature (tests); never in a
/// release.
#[cfg(feature = "mutants")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// Delete the owner znode as soon as a partition is revoked, without
    /// waiting for the application to let go.
    DeleteBeforeRelease,
    /// Deliver whether or not the session is confirmed alive: the delivery
    /// gate ([`SessionLease`](super::SessionLease)) treats every lease as
    /// valid, while the machine itself is correct. A consumer built so
    /// delivers as the zombie consumers of the old clients did.
    IgnoreLease,
    /// Retry claims forever instead of giving up.
    UnboundedClaims,
    /// Never re-read the group periodically (lost watches go unnoticed).
    NoReconcile,
    /// A driver that tells the machine a revoked partition is released at
    /// once, without waiting for the application to let go: its owner
    /// znode is deleted before the revoke completes.
    ReleaseBeforeRevoke,
    /// A driver that feeds claim results from an earlier session to the
    /// machine (a claim "won" by a session that is already dead).
    StaleClaimReplies,
    /// Compute the assignment without members whose znode cannot be read
    /// (what every client did before): peers that count them disagree.
    IgnoreUnreadable,
}

/// What the state machine needs to know. Built and validated by the group
/// builder; every field has a sane default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BalanceConfig {
    /// This member.
    pub member: MemberId,
    /// The group's layout.
    pub flavour: Flavour,
    /// The assignment strategy.
    pub strategy: Strategy,
    /// The negotiated ZooKeeper session timeout.
    pub session_timeout: Duration,
    /// The coalescing window: a watch event with no group read in the last
    /// `coalesce` is read at once; events within the window of the last
    /// read are gathered into one read at the window's end.
    pub coalesce: Duration,
    /// First claim backoff; doubles per attempt up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest claim backoff.
    pub backoff_max: Duration,
    /// Claim attempts before giving up on a partition.
    pub claim_retries: u32,
    /// Delivery stops this long before the session could expire, counted
    /// from the last confirmed contact (see [`BalanceConfig::lease`]).
    pub suspend_margin: Duration,
    /// Period of the full re-read that repairs lost watches.
    pub reconcile_interval: Duration,
    /// How long a rebalance waits for a member znode it cannot read before
    /// the member is counted as the flavour's reference client counts it:
    /// pykafka leaves it out; the Scala consumer never does, so a Scala
    /// group stays blocked, reported as such (see
    /// [`Action::Blocked`](super::Action::Blocked)).
    pub unreadable_bound: Duration,
    /// Seed of the jitter generator.
    pub seed: u64,
    /// A deliberate bug (tests of the simulator only).
    #[cfg(feature = "mutants")]
    pub mutant: Option<Mutant>,
}

impl BalanceConfig {
    /// Defaults for a member.
    pub fn new(member: MemberId, flavour: Flavour, strategy: Strategy) -> Self {
        Self {
            member,
            flavour,
            strategy,
            session_timeout: Duration::from_secs(6),
            coalesce: Duration::from_millis(50),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            claim_retries: 10,
            suspend_margin: Self::default_suspend_margin(Duration::from_secs(6)),
            reconcile_interval: Duration::from_secs(30),
            unreadable_bound: Self::default_unreadable_bound(Duration::from_secs(6)),
            seed: 0,
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }

    /// The margin that keeps the delivery lease inside the session on any
    /// server whose session timeout is at least twice its `tickTime`
    /// (ZooKeeper's default minimum): two fifths of the timeout. The
    /// arithmetic is in docs/coordination.md ("Delivery lease").
    pub fn default_suspend_margin(session_timeout: Duration) -> Duration {
        session_timeout * 2 / 5
    }

    /// Twice the session timeout: a client that registers in two requests
    /// and dies in between leaves an empty member znode until its own
    /// session expires, and a peer's session may be longer than ours.
    pub fn default_unreadable_bound(session_timeout: Duration) -> Duration {
        session_timeout * 2
    }

    /// How often the driver confirms the session (a `sync`); each
    /// confirmation renews the delivery lease. A tenth of the timeout: it
    /// bounds the longest silence between two of our requests, which the
    /// lease bound depends on (docs/coordination.md).
    pub fn heartbeat_interval(&self) -> Duration {
        self.session_timeout / 10
    }

    /// How long a confirmation sent at `t` lets the member deliver: the server
    /// cannot expire the session before `t + session_timeout`, so delivery
    /// stops `suspend_margin` earlier.
    pub fn lease(&self) -> Duration {
        self.session_timeout.saturating_sub(self.suspend_margin)
    }

    /// Backoff before attempt `attempt` (0-based), without jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.backoff_initial.saturating_mul(factor).min(self.backoff_max)
    }

    /// The shortest total time a claim waits before giving up (jitter only
    /// adds to each wait).
    pub fn claim_window(&self) -> Duration {
        (0..self.claim_retries).map(|a| self.backoff(a)).sum()
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting, reason: String| Err(ConfigError { setting, reason });
        if self.session_timeout < Duration::from_millis(100) {
            return bad("session_timeout", format!("{:?} is too short", self.session_timeout));
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return bad("claim_backoff", "initial must be positive and at most the maximum".into());
        }
        if self.claim_retries == 0 {
            return bad("claim_retries", "at least one attempt is needed".into());
        }
        // A crashed member's owner znodes live until its session expires: a
        // claim that gives up sooner fails against them for nothing.
        if self.claim_window() <= self.session_timeout {
            return bad(
                "claim_retries",
                format!(
                    "the claim window ({:?}) must outlast the session timeout ({:?}): raise claim_retries or the backoff",
                    self.claim_window(),
                    self.session_timeout
                ),
            );
        }
        // Between two heartbeats the lease must not lapse.
        if self.suspend_margin.is_zero() || self.lease() <= self.heartbeat_interval() {
            return bad(
                "suspend_margin",
                format!(
                    "{:?} must be positive and leave a delivery lease ({:?}) longer than the heartbeat interval ({:?})",
                    self.suspend_margin,
                    self.lease(),
                    self.heartbeat_interval()
                ),
            );
        }
        if self.reconcile_interval.is_zero() {
            return bad("reconcile_interval", "must be positive".into());
        }
        if self.unreadable_bound.is_zero() {
            return bad("unreadable_bound", "must be positive".into());
        }
        Ok(())
    }
}
