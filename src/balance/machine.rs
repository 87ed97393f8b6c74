use std::collections::{BTreeMap, BTreeSet};

use super::{Action, BalanceConfig, BalanceError, GroupSnapshot, Input, Time};
use crate::assign::Slot;
use crate::ids::TopicPartition;
use crate::zk_call::ZkCode;
use crate::znode::OwnerName;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Idle,
    Registering,
    Running,
    /// The session expired; waiting for a new one.
    AwaitingSession,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Release {
    /// Delivering.
    Active,
    /// Revoked from the application; waiting for it to let go.
    Revoking,
    /// Deleting the owner znode.
    Deleting,
}

#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) slot: Slot,
    pub(super) name: OwnerName,
    pub(super) czxid: i64,
    pub(super) state: Release,
    pub(super) round: u64,
    pub(super) claimed_at: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClaimState {
    /// A create is under way; `cancelled` if the target moved on meanwhile.
    InFlight { cancelled: bool },
    /// Another member owns it: waiting for its deletion or `retry_at`.
    Waiting { retry_at: Time },
}

#[derive(Debug, Clone)]
pub(super) struct Claim {
    pub(super) slot: Slot,
    pub(super) name: OwnerName,
    pub(super) attempt: u32,
    pub(super) state: ClaimState,
    pub(super) round: u64,
}

/// One member's rebalance state machine. See the [module docs](super).
#[derive(Debug)]
pub struct Balancer {
    pub(super) cfg: BalanceConfig,
    pub(super) rng: u64,
    pub(super) now: Time,
    pub(super) phase: Phase,
    /// Delivery is allowed until then (see [`BalanceConfig::lease`]).
    pub(super) lease_until: Option<Time>,
    pub(super) suspended: bool,
    pub(super) snapshot: Option<GroupSnapshot>,
    pub(super) read_issued_at: Option<Time>,
    /// When the last group read was issued: the start of the coalescing
    /// window.
    pub(super) last_read_at: Option<Time>,
    pub(super) read_due: Option<Time>,
    pub(super) reconcile_due: Option<Time>,
    pub(super) register_retry_at: Option<Time>,
    pub(super) deregistering: bool,
    pub(super) register_attempts: u32,
    pub(super) held: BTreeMap<TopicPartition, Held>,
    pub(super) claims: BTreeMap<TopicPartition, Claim>,
    /// This member's share in the last computed assignment.
    pub(super) target: BTreeMap<TopicPartition, Slot>,
    pub(super) round: u64,
    pub(super) generation: u64,
    pub(super) published: BTreeSet<TopicPartition>,
    /// Unreadable member znodes by name, with when they were first seen.
    pub(super) unreadable_since: BTreeMap<String, Time>,
    /// Unreadable members the pykafka rule left out (reported once each).
    pub(super) counted_out: BTreeSet<String>,
    /// What the last [`Action::Blocked`] reported, while blocked.
    pub(super) blocked: Option<(Vec<String>, bool)>,
    /// Reads in a row that found the rebalance blocked (the re-read backoff).
    pub(super) blocked_reads: u32,
}

impl Balancer {
    /// A machine for `cfg.member`; call [`Balancer::handle`] with
    /// [`Input::Start`] to begin.
    ///
    /// # Errors
    /// [`ConfigError`](super::ConfigError) when the settings cannot work
    /// together ([`BalanceConfig::validate`]): a machine is never built on
    /// them.
    pub fn new(cfg: BalanceConfig) -> Result<Self, super::ConfigError> {
        cfg.validate()?;
        let rng = cfg.seed ^ 0x9E37_79B9_7F4A_7C15;
        Ok(Balancer {
            cfg,
            rng: rng.max(1),
            now: Time::ZERO,
            phase: Phase::Idle,
            lease_until: None,
            suspended: false,
            snapshot: None,
            read_issued_at: None,
            last_read_at: None,
            read_due: None,
            reconcile_due: None,
            register_retry_at: None,
            deregistering: false,
            register_attempts: 0,
            held: BTreeMap::new(),
            claims: BTreeMap::new(),
            target: BTreeMap::new(),
            round: 0,
            generation: 0,
            published: BTreeSet::new(),
            unreadable_since: BTreeMap::new(),
            counted_out: BTreeSet::new(),
            blocked: None,
            blocked_reads: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BalanceConfig {
        &self.cfg
    }

    /// Partitions the application may deliver at the last input's time.
    pub fn deliverable(&self) -> BTreeSet<TopicPartition> {
        self.deliverable_at(self.now)
    }

    /// Partitions the application may deliver at `now`: owned, not being
    /// revoked, and within the delivery lease. Evaluated at the caller's
    /// clock, so a process that was paused stops delivering the moment it
    /// wakes, before any input tells it what happened meanwhile.
    pub fn deliverable_at(&self, now: Time) -> BTreeSet<TopicPartition> {
        if !self.lease_valid_at(now) {
            return BTreeSet::new();
        }
        self.active().collect()
    }

    /// Whether the delivery lease holds at `now`. An application commits a
    /// revoked partition's offsets only while it does: past it the session
    /// may have expired and a new owner may already have started, so a late
    /// commit would move the committed offset under the new owner's feet.
    pub fn lease_valid_at(&self, now: Time) -> bool {
        self.lease_until.is_some_and(|until| now < until)
    }

    /// The end of the delivery lease, if one was granted.
    pub fn lease_until(&self) -> Option<Time> {
        self.lease_until
    }

    /// The name of the owner znode we hold for `tp`.
    pub fn held_owner_name(&self, tp: &TopicPartition) -> Option<OwnerName> {
        self.held.get(tp).map(|h| h.name)
    }

    /// Partitions whose owner znode this member holds, in any state.
    pub fn held(&self) -> BTreeSet<TopicPartition> {
        self.held.keys().cloned().collect()
    }

    /// The assignment generation: bumped whenever the deliverable set changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the member has left (or never joined) the group.
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Whether the rebalance is held by member znodes it cannot read.
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// Whether delivery is suspended because the lease ran out.
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// Whether ownership is at rest: running, with no claim under way and
    /// nothing being released (a read may be in flight). What "the group
    /// has converged" means for an observer.
    pub fn holds_steady(&self) -> bool {
        self.phase == Phase::Running && self.claims.is_empty() && self.held.values().all(|h| h.state == Release::Active)
    }

    /// Whether nothing is in flight: no claim, no release, no read due.
    pub fn is_settled(&self) -> bool {
        self.phase == Phase::Running
            && self.claims.is_empty()
            && self.held.values().all(|h| h.state == Release::Active)
            && self.read_issued_at.is_none()
            && self.read_due.is_none()
    }

    /// When the machine next wants an [`Input::Tick`], if ever.
    pub fn next_deadline(&self) -> Option<Time> {
        let mut next: Option<Time> = None;
        let mut consider = |t: Option<Time>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        match self.phase {
            Phase::Registering => consider(self.register_retry_at),
            Phase::Running => {
                consider(self.reconcile_due);
                consider(self.read_due.filter(|_| self.read_issued_at.is_none()));
                for c in self.claims.values() {
                    if let ClaimState::Waiting { retry_at } = c.state {
                        consider(Some(retry_at));
                    }
                }
            }
            _ => {}
        }
        if !self.suspended {
            consider(self.lease_until);
        }
        next
    }

    /// Feeds one input at time `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Time, input: Input) -> Vec<Action> {
        self.now = self.now.max(now);
        let mut out = Vec::new();
        match input {
            Input::Start => {
                if self.phase == Phase::Idle {
                    self.phase = Phase::Registering;
                    out.push(Action::Register);
                }
            }
            Input::Registered => self.on_registered(&mut out),
            Input::RegisterFailed(why) => match self.phase {
                // Rights that retrying cannot grant: leave as a stop does
                // (releasing whatever is held), telling why. Nothing of
                // ours is registered: with nothing held the leave is done.
                Phase::Registering if why.code == ZkCode::NoAuth => {
                    out.push(Action::Error(BalanceError::RegistrationRefused(why)));
                    self.on_stop(&mut out);
                    if self.held.is_empty() && self.claims.is_empty() {
                        self.phase = Phase::Stopped;
                        out.push(Action::Close);
                    }
                }
                Phase::Registering => {
                    self.register_attempts += 1;
                    let wait = self.jittered(self.cfg.backoff(self.register_attempts));
                    self.register_retry_at = Some(self.now + wait);
                    out.push(Action::Error(BalanceError::ZooKeeper(why)));
                }
                // Stopped while the registration was under way, and it
                // failed: there is nothing to leave.
                Phase::Stopping if self.held.is_empty() && self.claims.is_empty() && !self.deregistering => {
                    self.phase = Phase::Stopped;
                    out.push(Action::Close);
                }
                _ => {}
            },
            Input::Changed => {
                if self.phase == Phase::Running {
                    // Leading edge: an isolated change is read at once;
                    // what follows within the window of the last read is
                    // gathered into one read at its end, so a storm still
                    // costs one read per window.
                    let window_end = self.read_issued_at.or(self.last_read_at).map(|t| t + self.cfg.coalesce);
                    self.schedule_read(window_end.map_or(self.now, |end| end.max(self.now)));
                    self.read_if_due(&mut out);
                }
            }
            Input::Snapshot(snapshot) => {
                let issued = self.read_issued_at.take();
                if self.phase == Phase::Running {
                    self.snapshot = Some(snapshot);
                    self.rebalance(issued.unwrap_or(self.now), &mut out);
                }
            }
            Input::ReadFailed(why) => {
                self.read_issued_at = None;
                if self.phase == Phase::Running {
                    self.schedule_read(self.now + self.cfg.backoff_initial);
                    out.push(Action::Error(BalanceError::ZooKeeper(why)));
                }
            }
            Input::ClaimResult { tp, outcome } => self.on_claim_result(tp, outcome, &mut out),
            Input::OwnerGone(tp) => {
                if matches!(self.claims.get(&tp).map(|c| c.state), Some(ClaimState::Waiting { .. })) {
                    self.retry_claim(tp, &mut out);
                }
            }
            Input::Released(tp) => {
                if let Some(h) = self.held.get_mut(&tp).filter(|h| h.state == Release::Revoking) {
                    h.state = Release::Deleting;
                    out.push(Action::DeleteOwner { tp, name: h.name, czxid: h.czxid });
                }
            }
            Input::OwnerDeleted(tp) => self.on_owner_deleted(tp, &mut out),
            Input::Session(event) => self.on_session(event, &mut out),
            Input::Heartbeat { sent_at } => {
                let until = sent_at + self.cfg.lease();
                self.lease_until = Some(self.lease_until.map_or(until, |u| u.max(until)));
                if self.suspended && self.now < until {
                    self.suspended = false;
                    out.push(Action::Resume);
                    if self.phase == Phase::Running {
                        // Anything may have changed while we could not tell.
                        self.schedule_read(self.now);
                    }
                }
            }
            Input::Tick => self.on_tick(&mut out),
            Input::Stop => self.on_stop(&mut out),
            Input::Deregistered => {
                if self.phase == Phase::Stopping {
                    self.phase = Phase::Stopped;
                    out.push(Action::Close);
                }
            }
        }
        self.publish(&mut out);
        out
    }

    pub(super) fn active(&self) -> impl Iterator<Item = TopicPartition> + '_ {
        self.held.iter().filter(|(_, h)| h.state == Release::Active).map(|(tp, _)| tp.clone())
    }

    /// Emits [`Action::Assigned`] when the deliverable set changed.
    pub(super) fn publish(&mut self, out: &mut Vec<Action>) {
        let now: BTreeSet<TopicPartition> = self.active().collect();
        if now != self.published {
            self.generation += 1;
            let partitions = now.iter().map(|tp| (tp.clone(), self.held[tp].slot.clone())).collect();
            self.published = now;
            out.push(Action::Assigned { generation: self.generation, partitions });
        }
    }

    /// xorshift64*: jitter only, never correctness.
    pub(super) fn jittered(&mut self, base: Time) -> Time {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // Up to +50%, so retries of members that collided spread apart.
        base + base.mul_f64((r >> 11) as f64 / (1u64 << 53) as f64 / 2.0)
    }

    pub(super) fn schedule_read(&mut self, at: Time) {
        self.read_due = Some(self.read_due.map_or(at, |due| due.min(at)));
    }

    /// Issues the group read if one is due and none is in flight.
    pub(super) fn read_if_due(&mut self, out: &mut Vec<Action>) {
        if self.read_issued_at.is_none() && self.read_due.is_some_and(|t| t <= self.now) {
            self.read_due = None;
            self.read_issued_at = Some(self.now);
            self.last_read_at = Some(self.now);
            out.push(Action::ReadGroup);
        }
    }
}
