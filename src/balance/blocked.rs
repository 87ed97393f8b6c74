//! Waiting for peers whose member znode cannot be read. A member that
//! computes an assignment without a registered peer disagrees with every
//! member that counts it, and the partitions in between end up unowned; so
//! the rebalance holds — owned partitions kept and delivered, nothing
//! claimed — until the znode can be read (the driver watches its data), or
//! until [`BalanceConfig::unreadable_bound`](super::BalanceConfig::unreadable_bound)
//! passes and the flavour's reference client decides: pykafka leaves such a
//! member out; the Scala consumer fails its rebalance instead, so a Scala
//! group stays held and is reported blocked.

use super::machine::Balancer;
use super::{Action, BalanceError, Time, Unreadable};
use crate::znode::Flavour;

impl Balancer {
    /// The unreadable member znodes the rebalance must wait for, with how
    /// long each has been waited for.
    pub(super) fn blocking(
        &mut self,
        unreadable: &[Unreadable],
        out_errors: &mut Vec<Action>,
    ) -> Vec<(Unreadable, Time)> {
        if mutant!(self, IgnoreUnreadable) {
            return Vec::new();
        }
        self.unreadable_since.retain(|name, _| unreadable.iter().any(|u| &u.member == name));
        self.counted_out.retain(|name| unreadable.iter().any(|u| &u.member == name));
        let now = self.now;
        let mut out = Vec::new();
        for u in unreadable {
            let since = *self.unreadable_since.entry(u.member.clone()).or_insert(now);
            let waited = now.saturating_sub(since);
            let counted_out = self.cfg.flavour == Flavour::Pykafka && waited >= self.cfg.unreadable_bound;
            if counted_out {
                if self.counted_out.insert(u.member.clone()) {
                    tracing::warn!(znode = %u, ?waited, "leaving an unreadable member out, as pykafka does");
                    out_errors.push(Action::Error(BalanceError::UnreadableLeftOut { znode: u.clone(), waited }));
                }
            } else {
                out.push((u.clone(), waited));
            }
        }
        out
    }

    /// Holds the rebalance: no claim goes on, owned partitions stay, and the
    /// group is read again after a backoff (sooner when a watched member
    /// znode changes).
    pub(super) fn hold(&mut self, blocking: Vec<(Unreadable, Time)>, out: &mut Vec<Action>) {
        self.target.clear();
        self.cancel_claims(out);
        let wait = self.jittered(self.cfg.backoff(self.blocked_reads));
        self.blocked_reads = self.blocked_reads.saturating_add(1);
        self.schedule_read(self.now + wait);

        let waited = blocking.iter().map(|(_, w)| *w).max().unwrap_or_default();
        let past_bound = waited >= self.cfg.unreadable_bound;
        let names: Vec<String> = blocking.iter().map(|(u, _)| u.member.clone()).collect();
        if self.blocked.as_ref() != Some(&(names.clone(), past_bound)) {
            let by: Vec<Unreadable> = blocking.into_iter().map(|(u, _)| u).collect();
            if past_bound {
                tracing::warn!(?by, ?waited, "the group is blocked by member znodes nobody can read");
            } else {
                tracing::info!(?by, "waiting for member znodes that cannot be read yet");
            }
            self.blocked = Some((names, past_bound));
            out.push(Action::Blocked { by, waited, past_bound });
        }
    }

    /// The rebalance is no longer held.
    pub(super) fn unblock(&mut self, out: &mut Vec<Action>) {
        self.blocked_reads = 0;
        if self.blocked.take().is_some() {
            tracing::info!("every member znode is readable again");
            out.push(Action::Unblocked);
        }
    }
}
