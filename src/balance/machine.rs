use std::collections::{BTreeMap, BTreeSet};

use super::{Action, BalanceConfig, BalanceError, ClaimOutcome, GroupSnapshot, Input, SessionEvent, Time};
use crate::assign::{self, Assignment, Slot};
use crate::ids::TopicPartition;
use crate::znode::{Flavour, OwnerName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Registering,
    Running,
    /// The session expired; waiting for a new one.
    AwaitingSession,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// Delivering.
    Active,
    /// Revoked from the application; waiting for it to let go.
    Revoking,
    /// Deleting the owner znode.
    Deleting,
}

#[derive(Debug, Clone)]
struct Held {
    slot: Slot,
    name: OwnerName,
    czxid: i64,
    state: Release,
    round: u64,
    claimed_at: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimState {
    /// A create is under way; `cancelled` if the target moved on meanwhile.
    InFlight { cancelled: bool },
    /// Another member owns it: waiting for its deletion or `retry_at`.
    Waiting { retry_at: Time },
}

#[derive(Debug, Clone)]
struct Claim {
    slot: Slot,
    name: OwnerName,
    attempt: u32,
    state: ClaimState,
    round: u64,
}

/// One member's rebalance state machine. See the [module docs](super).
#[derive(Debug)]
pub struct Balancer {
    cfg: BalanceConfig,
    rng: u64,
    now: Time,
    phase: Phase,
    /// Delivery is allowed until then (see [`BalanceConfig::lease`]).
    lease_until: Option<Time>,
    suspended: bool,
    snapshot: Option<GroupSnapshot>,
    read_issued_at: Option<Time>,
    read_due: Option<Time>,
    reconcile_due: Option<Time>,
    register_retry_at: Option<Time>,
    deregistering: bool,
    register_attempts: u32,
    held: BTreeMap<TopicPartition, Held>,
    claims: BTreeMap<TopicPartition, Claim>,
    /// This member's share in the last computed assignment.
    target: BTreeMap<TopicPartition, Slot>,
    round: u64,
    generation: u64,
    published: BTreeSet<TopicPartition>,
}

impl Balancer {
    /// A machine for `cfg.member`; call [`Balancer::handle`] with
    /// [`Input::Start`] to begin.
    pub fn new(cfg: BalanceConfig) -> Self {
        let rng = cfg.seed ^ 0x9E37_79B9_7F4A_7C15;
        Balancer {
            cfg,
            rng: rng.max(1),
            now: Time::ZERO,
            phase: Phase::Idle,
            lease_until: None,
            suspended: false,
            snapshot: None,
            read_issued_at: None,
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
        }
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
        self.lease_until.is_some_and(|until| now < until) || self.mutant(super::Mutant::IgnoreLease)
    }

    /// The end of the delivery lease, if one was granted.
    pub fn lease_until(&self) -> Option<Time> {
        self.lease_until
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

    /// Whether delivery is suspended because the lease ran out.
    pub fn is_suspended(&self) -> bool {
        self.suspended
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
            Input::RegisterFailed(why) => {
                if self.phase == Phase::Registering {
                    self.register_attempts += 1;
                    let wait = self.jittered(self.cfg.backoff(self.register_attempts));
                    self.register_retry_at = Some(self.now + wait);
                    out.push(Action::Error(BalanceError::ZooKeeper(why)));
                }
            }
            Input::Changed => {
                if self.phase == Phase::Running {
                    self.schedule_read(self.now + self.cfg.coalesce);
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
                    out.push(Action::DeleteOwner { tp, name: h.name });
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

    /// Whether a deliberate bug is switched on (always false without the
    /// `mutants` feature).
    #[allow(unused_variables)]
    fn mutant(&self, m: super::Mutant) -> bool {
        #[cfg(feature = "mutants")]
        return self.cfg.mutant == Some(m);
        #[cfg(not(feature = "mutants"))]
        false
    }

    fn active(&self) -> impl Iterator<Item = TopicPartition> + '_ {
        self.held.iter().filter(|(_, h)| h.state == Release::Active).map(|(tp, _)| tp.clone())
    }

    /// Emits [`Action::Assigned`] when the deliverable set changed.
    fn publish(&mut self, out: &mut Vec<Action>) {
        let now: BTreeSet<TopicPartition> = self.active().collect();
        if now != self.published {
            self.generation += 1;
            let partitions = now.iter().map(|tp| (tp.clone(), self.held[tp].slot.clone())).collect();
            self.published = now;
            out.push(Action::Assigned { generation: self.generation, partitions });
        }
    }

    /// xorshift64*: jitter only, never correctness.
    fn jittered(&mut self, base: Time) -> Time {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // Up to +50%, so retries of members that collided spread apart.
        base + base.mul_f64((r >> 11) as f64 / (1u64 << 53) as f64 / 2.0)
    }

    fn schedule_read(&mut self, at: Time) {
        self.read_due = Some(self.read_due.map_or(at, |due| due.min(at)));
    }

    fn on_registered(&mut self, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Registering => {
                self.phase = Phase::Running;
                self.register_attempts = 0;
                self.register_retry_at = None;
                self.schedule_read(self.now);
                if !self.mutant(super::Mutant::NoReconcile) {
                    self.reconcile_due = Some(self.now + self.cfg.reconcile_interval);
                }
                self.on_tick(out);
            }
            Phase::Stopping => self.finish_stop(out),
            _ => {}
        }
    }

    fn owner_name(&self, tp: &TopicPartition) -> OwnerName {
        match self.cfg.flavour {
            Flavour::Scala => OwnerName::Scala { partition: tp.partition },
            Flavour::Pykafka => {
                let leader = self
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.shape.topics.get(&tp.topic))
                    .and_then(|ps| ps.get(&tp.partition).copied().flatten());
                OwnerName::Pykafka { leader: leader.unwrap_or(crate::BrokerId(-1)), partition: tp.partition }
            }
        }
    }

    fn rebalance(&mut self, read_issued: Time, out: &mut Vec<Action>) {
        let me = self.cfg.member.clone();
        let Some(snap) = self.snapshot.as_ref() else { return };
        if !snap.shape.members.contains_key(&me) {
            out.push(Action::Error(BalanceError::MemberVanished));
            self.phase = Phase::Registering;
            out.push(Action::Register);
            return;
        }
        self.round += 1;
        let span = tracing::info_span!("rebalance", member = %me, round = self.round, generation = self.generation);
        let _entered = span.enter();
        let current = if self.cfg.strategy.uses_current_owners() { snap.current() } else { Assignment::new() };
        let target = match assign::assign(self.cfg.strategy, &snap.shape, &current) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "the group cannot be assigned; keeping the current partitions");
                out.push(Action::Error(e.into()));
                return;
            }
        };
        self.target = target.into_iter().filter(|(_, s)| s.member == me).collect();

        // Drift: what ZooKeeper says of partitions we believe we deliver.
        // Only claims older than the read can be judged by it.
        let mut lost = BTreeSet::new();
        for (tp, h) in &self.held {
            if h.state != Release::Active || h.claimed_at > read_issued {
                continue;
            }
            let records = snap.owners.get(tp).map(Vec::as_slice).unwrap_or_default();
            let ours = records.iter().any(|o| o.member == me);
            let beaten = records.iter().any(|o| o.member != me && o.czxid < h.czxid);
            if !ours || beaten {
                lost.insert(tp.clone());
                if ours {
                    out.push(Action::DeleteOwner { tp: tp.clone(), name: h.name });
                }
            }
        }
        if !lost.is_empty() {
            tracing::warn!(partitions = lost.len(), "ownership drifted: partitions lost");
            for tp in &lost {
                self.held.remove(tp);
            }
            out.push(Action::Lost(lost));
        }

        let mut revoke = BTreeSet::new();
        for (tp, h) in self.held.iter_mut() {
            if h.state == Release::Active && self.target.get(tp) != Some(&h.slot) {
                h.state = Release::Revoking;
                revoke.insert(tp.clone());
            }
        }

        let mut stale = Vec::new();
        for (tp, c) in self.claims.iter_mut() {
            if self.target.get(tp) == Some(&c.slot) {
                if let ClaimState::InFlight { cancelled } = &mut c.state {
                    *cancelled = false;
                }
            } else {
                match &mut c.state {
                    ClaimState::InFlight { cancelled } => *cancelled = true,
                    ClaimState::Waiting { .. } => stale.push(tp.clone()),
                }
            }
        }
        for tp in stale {
            self.claims.remove(&tp);
            out.push(Action::Unwatch(tp));
        }

        let wanted: Vec<TopicPartition> = self
            .target
            .keys()
            .filter(|tp| !self.held.contains_key(*tp) && !self.claims.contains_key(*tp))
            .cloned()
            .collect();
        tracing::info!(
            target = self.target.len(),
            revoke = revoke.len(),
            claim = wanted.len(),
            members = self.snapshot.as_ref().map_or(0, |s| s.shape.members.len()),
            "rebalance planned"
        );
        if !revoke.is_empty() {
            if self.mutant(super::Mutant::DeleteBeforeRelease) {
                for tp in &revoke {
                    let h = self.held.get_mut(tp).expect("just revoked");
                    h.state = Release::Deleting;
                    out.push(Action::DeleteOwner { tp: tp.clone(), name: h.name });
                }
            }
            out.push(Action::Revoke(revoke));
        }
        for tp in wanted {
            self.start_claim(tp, out);
        }
    }

    fn start_claim(&mut self, tp: TopicPartition, out: &mut Vec<Action>) {
        let Some(slot) = self.target.get(&tp).cloned() else { return };
        let name = self.owner_name(&tp);
        let taken = self.snapshot.as_ref().and_then(|s| s.owner(&tp)).is_some_and(|o| o.member != self.cfg.member);
        let state = if taken {
            out.push(Action::WatchOwner(tp.clone()));
            ClaimState::Waiting { retry_at: self.now + self.jittered(self.cfg.backoff(0)) }
        } else {
            out.push(Action::Claim { tp: tp.clone(), slot: slot.clone(), name });
            ClaimState::InFlight { cancelled: false }
        };
        self.claims.insert(tp, Claim { slot, name, attempt: 0, state, round: self.round });
    }

    fn retry_claim(&mut self, tp: TopicPartition, out: &mut Vec<Action>) {
        let unbounded = self.mutant(super::Mutant::UnboundedClaims);
        let Some(c) = self.claims.get_mut(&tp) else { return };
        c.attempt += 1;
        if c.attempt >= self.cfg.claim_retries && !unbounded {
            self.give_up(tp, out);
            return;
        }
        c.state = ClaimState::InFlight { cancelled: false };
        out.push(Action::Claim { tp, slot: c.slot.clone(), name: c.name });
    }

    /// Bounded retries are spent: roll back the round's claims (so no owner
    /// znode is left with nobody behind it), report, and try a fresh round
    /// later — never at once.
    fn give_up(&mut self, tp: TopicPartition, out: &mut Vec<Action>) {
        let Some(c) = self.claims.remove(&tp) else { return };
        let owner = self
            .snapshot
            .as_ref()
            .and_then(|s| s.owner(&tp))
            .map_or_else(|| "unknown".to_owned(), |o| o.member.to_string());
        tracing::warn!(%tp, attempts = c.attempt, %owner, "claim gave up; rolling back this round");
        out.push(Action::Unwatch(tp.clone()));
        out.push(Action::Error(BalanceError::ClaimGaveUp { tp, attempts: c.attempt, owner }));
        let mut revoke = BTreeSet::new();
        for (tp, h) in self.held.iter_mut() {
            if h.round == c.round && h.state == Release::Active {
                h.state = Release::Revoking;
                revoke.insert(tp.clone());
            }
        }
        let round: Vec<TopicPartition> =
            self.claims.iter().filter(|(_, x)| x.round == c.round).map(|(t, _)| t.clone()).collect();
        for tp in round {
            let claim = self.claims.get_mut(&tp).expect("listed above");
            match &mut claim.state {
                ClaimState::InFlight { cancelled } => *cancelled = true,
                ClaimState::Waiting { .. } => {
                    self.claims.remove(&tp);
                    out.push(Action::Unwatch(tp));
                }
            }
        }
        self.target.clear();
        if !revoke.is_empty() {
            out.push(Action::Revoke(revoke));
        }
        self.schedule_read(self.now + self.cfg.backoff_max);
    }

    fn on_claim_result(&mut self, tp: TopicPartition, outcome: ClaimOutcome, out: &mut Vec<Action>) {
        let Some(mut c) = self.claims.remove(&tp) else { return };
        let cancelled = matches!(c.state, ClaimState::InFlight { cancelled: true });
        match outcome {
            ClaimOutcome::Claimed { czxid } => {
                let deliver = !cancelled && self.phase == Phase::Running;
                let state = if deliver { Release::Active } else { Release::Deleting };
                if !deliver {
                    // Never delivered, so nothing to revoke: delete at once.
                    out.push(Action::DeleteOwner { tp: tp.clone(), name: c.name });
                }
                self.held.insert(
                    tp,
                    Held { slot: c.slot, name: c.name, czxid, state, round: c.round, claimed_at: self.now },
                );
            }
            ClaimOutcome::Taken | ClaimOutcome::Failed(_) if cancelled || self.phase != Phase::Running => {
                self.finish_stop(out);
            }
            ClaimOutcome::Taken => {
                c.state = ClaimState::Waiting { retry_at: self.now + self.jittered(self.cfg.backoff(c.attempt)) };
                out.push(Action::WatchOwner(tp.clone()));
                self.claims.insert(tp, c);
            }
            ClaimOutcome::Failed(why) => {
                out.push(Action::Error(BalanceError::ZooKeeper(why)));
                c.state = ClaimState::Waiting { retry_at: self.now + self.jittered(self.cfg.backoff(c.attempt)) };
                self.claims.insert(tp, c);
            }
        }
    }

    fn on_owner_deleted(&mut self, tp: TopicPartition, out: &mut Vec<Action>) {
        if self.held.get(&tp).is_some_and(|h| h.state == Release::Deleting) {
            self.held.remove(&tp);
        }
        match self.phase {
            Phase::Stopping => self.finish_stop(out),
            // The target may want it back (it changed during the release).
            Phase::Running
                if self.target.contains_key(&tp) && !self.claims.contains_key(&tp) && !self.held.contains_key(&tp) =>
            {
                self.start_claim(tp, out)
            }
            _ => {}
        }
    }

    fn on_session(&mut self, event: SessionEvent, out: &mut Vec<Action>) {
        match event {
            // The lease, not the report, decides when delivery stops: the
            // client may notice a silent partition late, or not at all
            // while the process is paused.
            SessionEvent::Disconnected => {}
            SessionEvent::Reconnected => {
                if self.phase == Phase::Running {
                    // Watches survive a reconnect, but a read is cheap
                    // insurance against anything missed meanwhile.
                    self.schedule_read(self.now);
                }
            }
            SessionEvent::Expired => {
                self.lease_until = None;
                let lost: BTreeSet<TopicPartition> = std::mem::take(&mut self.held).into_keys().collect();
                for (tp, c) in std::mem::take(&mut self.claims) {
                    if matches!(c.state, ClaimState::Waiting { .. }) {
                        out.push(Action::Unwatch(tp));
                    }
                }
                if !lost.is_empty() {
                    out.push(Action::Lost(lost));
                }
                if std::mem::take(&mut self.suspended) {
                    out.push(Action::Resume);
                }
                self.target.clear();
                self.read_issued_at = None;
                self.read_due = None;
                self.reconcile_due = None;
                match self.phase {
                    Phase::Stopping | Phase::Idle | Phase::Stopped => {
                        self.phase = Phase::Stopped;
                        out.push(Action::Close);
                    }
                    _ => {
                        self.phase = Phase::AwaitingSession;
                        out.push(Action::NewSession);
                    }
                }
            }
            SessionEvent::Established => {
                if self.phase == Phase::AwaitingSession {
                    self.phase = Phase::Registering;
                    out.push(Action::Register);
                }
            }
        }
    }

    fn on_tick(&mut self, out: &mut Vec<Action>) {
        let now = self.now;
        if !self.suspended && self.lease_until.is_some_and(|until| now >= until) {
            tracing::warn!(
                "no confirmed contact with ZooKeeper for too long: suspending delivery before the session can expire"
            );
            self.suspended = true;
            out.push(Action::Suspend);
        }
        match self.phase {
            Phase::Registering if self.register_retry_at.is_some_and(|t| t <= now) => {
                self.register_retry_at = None;
                out.push(Action::Register);
            }
            Phase::Running => {
                if self.reconcile_due.is_some_and(|t| t <= now) && !self.mutant(super::Mutant::NoReconcile) {
                    self.reconcile_due = Some(now + self.cfg.reconcile_interval);
                    self.schedule_read(now);
                }
                if self.read_issued_at.is_none() && self.read_due.is_some_and(|t| t <= now) {
                    self.read_due = None;
                    self.read_issued_at = Some(now);
                    out.push(Action::ReadGroup);
                }
                let due: Vec<TopicPartition> = self
                    .claims
                    .iter()
                    .filter(|(_, c)| matches!(c.state, ClaimState::Waiting { retry_at } if retry_at <= now))
                    .map(|(tp, _)| tp.clone())
                    .collect();
                for tp in due {
                    self.retry_claim(tp, out);
                }
            }
            _ => {}
        }
    }

    fn on_stop(&mut self, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Idle | Phase::AwaitingSession => {
                self.phase = Phase::Stopped;
                out.push(Action::Close);
            }
            Phase::Stopping | Phase::Stopped => {}
            Phase::Registering | Phase::Running => {
                let registered = self.phase == Phase::Running;
                self.phase = Phase::Stopping;
                self.target.clear();
                let mut revoke = BTreeSet::new();
                for (tp, h) in self.held.iter_mut() {
                    if h.state == Release::Active {
                        h.state = Release::Revoking;
                        revoke.insert(tp.clone());
                    }
                }
                let waiting: Vec<TopicPartition> = self
                    .claims
                    .iter()
                    .filter(|(_, c)| matches!(c.state, ClaimState::Waiting { .. }))
                    .map(|(tp, _)| tp.clone())
                    .collect();
                for tp in waiting {
                    self.claims.remove(&tp);
                    out.push(Action::Unwatch(tp));
                }
                for c in self.claims.values_mut() {
                    c.state = ClaimState::InFlight { cancelled: true };
                }
                if !revoke.is_empty() {
                    out.push(Action::Revoke(revoke));
                }
                if registered {
                    self.finish_stop(out);
                }
            }
        }
    }

    /// Deregisters once nothing is held and no claim is in flight.
    fn finish_stop(&mut self, out: &mut Vec<Action>) {
        if self.phase == Phase::Stopping && self.held.is_empty() && self.claims.is_empty() && !self.deregistering {
            self.deregistering = true;
            out.push(Action::Deregister);
        }
    }
}
