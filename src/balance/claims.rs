//! Rebalancing and claims: from a fresh view of the group to owner znodes
//! created, waited for, given up or released.

use std::collections::BTreeSet;

use super::machine::{Balancer, Claim, ClaimState, Held, Phase, Release};
use super::{Action, BalanceError, ClaimOutcome, Time};
use crate::assign::{self, Assignment};
use crate::ids::TopicPartition;
use crate::znode::{Flavour, OwnerName};

impl Balancer {
    pub(super) fn owner_name(&self, tp: &TopicPartition) -> OwnerName {
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

    pub(super) fn rebalance(&mut self, read_issued: Time, out: &mut Vec<Action>) {
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
        let unreadable = snap.unreadable.clone();
        let blocking = self.blocking(&unreadable, out);
        let snap = self.snapshot.as_ref().expect("checked above");
        if blocking.is_empty() {
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
            self.unblock(out);
        } else {
            self.target.clear();
        }
        let snap = self.snapshot.as_ref().expect("checked above");

        // Drift: what ZooKeeper says of partitions we believe we deliver.
        // Only claims older than the read can be judged by it.
        let mut lost = BTreeSet::new();
        for (tp, h) in &self.held {
            if h.state != Release::Active || h.claimed_at > read_issued {
                continue;
            }
            let records = snap.owners.get(tp).map(Vec::as_slice).unwrap_or_default();
            let ours = records.iter().any(|o| o.member.as_ref() == Some(&me));
            let beaten = records.iter().any(|o| o.member.as_ref() != Some(&me) && o.czxid < h.czxid);
            if !ours || beaten {
                lost.insert(tp.clone());
                if ours {
                    out.push(Action::DeleteOwner { tp: tp.clone(), name: h.name, czxid: h.czxid });
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

        // Strays: owner znodes of ours for partitions we neither hold nor
        // claim — a claim whose create went through although its answer was
        // lost (a connection loss) leaves one, and nobody would ever delete
        // it while our session lives. Ours to claim again (the claim adopts
        // it) if the target wants it; else deleted.
        // Tracked as a release until the deletion is answered, so no claim
        // of the partition starts meanwhile (one could adopt the very znode).
        let strays: Vec<(TopicPartition, Held)> = snap
            .owners
            .iter()
            .filter(|(tp, _)| {
                !self.held.contains_key(*tp) && !self.claims.contains_key(*tp) && !self.target.contains_key(*tp)
            })
            .filter_map(|(tp, records)| {
                let o = records.iter().find(|o| o.member.as_ref() == Some(&me))?;
                let slot = crate::assign::Slot::new(me.clone(), o.thread);
                let held = Held {
                    slot,
                    name: o.name,
                    czxid: o.czxid,
                    state: Release::Deleting,
                    round: self.round,
                    claimed_at: self.now,
                };
                Some((tp.clone(), held))
            })
            .collect();
        for (tp, held) in strays {
            tracing::warn!(%tp, "an owner znode of ours that nothing holds (a claim lost its answer): deleting it");
            out.push(Action::DeleteOwner { tp: tp.clone(), name: held.name, czxid: held.czxid });
            self.held.insert(tp, held);
        }

        if !blocking.is_empty() {
            self.hold(blocking, out);
            return;
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
            if mutant!(self, DeleteBeforeRelease) {
                for tp in &revoke {
                    let h = self.held.get_mut(tp).expect("just revoked");
                    h.state = Release::Deleting;
                    out.push(Action::DeleteOwner { tp: tp.clone(), name: h.name, czxid: h.czxid });
                }
            }
            out.push(Action::Revoke(revoke));
        }
        for tp in wanted {
            self.start_claim(tp, out);
        }
    }

    /// Drops every claim that has not reached ZooKeeper yet and marks the
    /// ones on their way as cancelled: their answers must not start a
    /// hand-over the next rebalance did not decide.
    pub(super) fn cancel_claims(&mut self, out: &mut Vec<Action>) {
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
    }

    pub(super) fn start_claim(&mut self, tp: TopicPartition, out: &mut Vec<Action>) {
        let Some(slot) = self.target.get(&tp).cloned() else { return };
        let name = self.owner_name(&tp);
        let taken = self
            .snapshot
            .as_ref()
            .and_then(|s| s.owner(&tp))
            .is_some_and(|o| o.member.as_ref() != Some(&self.cfg.member));
        let state = if taken {
            out.push(Action::WatchOwner(tp.clone()));
            ClaimState::Waiting { retry_at: self.now + self.jittered(self.cfg.backoff(0)) }
        } else {
            out.push(Action::Claim { tp: tp.clone(), slot: slot.clone(), name });
            ClaimState::InFlight { cancelled: false }
        };
        self.claims.insert(tp, Claim { slot, name, attempt: 0, state, round: self.round });
    }

    pub(super) fn retry_claim(&mut self, tp: TopicPartition, out: &mut Vec<Action>) {
        let unbounded = mutant!(self, UnboundedClaims);
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
    pub(super) fn give_up(&mut self, tp: TopicPartition, out: &mut Vec<Action>) {
        let Some(c) = self.claims.remove(&tp) else { return };
        let owner = self.snapshot.as_ref().and_then(|s| s.owner(&tp)).and_then(|o| o.member.clone());
        tracing::warn!(%tp, attempts = c.attempt, ?owner, "claim gave up; rolling back this round");
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

    pub(super) fn on_claim_result(&mut self, tp: TopicPartition, outcome: ClaimOutcome, out: &mut Vec<Action>) {
        let Some(mut c) = self.claims.remove(&tp) else { return };
        let cancelled = matches!(c.state, ClaimState::InFlight { cancelled: true });
        match outcome {
            ClaimOutcome::Claimed { czxid } => {
                let deliver = !cancelled && self.phase == Phase::Running;
                let state = if deliver { Release::Active } else { Release::Deleting };
                if !deliver {
                    // Never delivered, so nothing to revoke: delete at once.
                    out.push(Action::DeleteOwner { tp: tp.clone(), name: c.name, czxid });
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

    pub(super) fn on_owner_deleted(&mut self, tp: TopicPartition, out: &mut Vec<Action>) {
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
}
