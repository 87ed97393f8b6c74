//! The member's life: registration, session events, timers, leaving.

use std::collections::BTreeSet;

use super::machine::{Balancer, ClaimState, Phase, Release};
use super::{Action, SessionEvent};
use crate::ids::TopicPartition;

impl Balancer {
    pub(super) fn on_registered(&mut self, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Registering => {
                self.phase = Phase::Running;
                self.register_attempts = 0;
                self.register_retry_at = None;
                self.schedule_read(self.now);
                if !mutant!(self, NoReconcile) {
                    self.reconcile_due = Some(self.now + self.cfg.reconcile_interval);
                }
                self.on_tick(out);
            }
            Phase::Stopping => self.finish_stop(out),
            _ => {}
        }
    }

    pub(super) fn on_session(&mut self, event: SessionEvent, out: &mut Vec<Action>) {
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

    pub(super) fn on_tick(&mut self, out: &mut Vec<Action>) {
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
                if self.reconcile_due.is_some_and(|t| t <= now) && !mutant!(self, NoReconcile) {
                    self.reconcile_due = Some(now + self.cfg.reconcile_interval);
                    self.schedule_read(now);
                }
                self.read_if_due(out);
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

    pub(super) fn on_stop(&mut self, out: &mut Vec<Action>) {
        // Waiting to retry a failed registration: nothing was created that
        // must be deleted, and no answer will come.
        let unregistered = self.phase == Phase::Registering && self.register_retry_at.is_some();
        match self.phase {
            Phase::Idle | Phase::AwaitingSession => {
                self.phase = Phase::Stopped;
                out.push(Action::Close);
            }
            Phase::Registering if unregistered => {
                self.register_retry_at = None;
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
                self.cancel_claims(out);
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
    pub(super) fn finish_stop(&mut self, out: &mut Vec<Action>) {
        if self.phase == Phase::Stopping && self.held.is_empty() && self.claims.is_empty() && !self.deregistering {
            self.deregistering = true;
            out.push(Action::Deregister);
        }
    }
}
