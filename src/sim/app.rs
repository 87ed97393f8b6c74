//! The application side of a simulated member: the partitions it holds,
//! and how it hands their messages over — through the same delivery gate
//! ([`PartitionGate`]) the consumer checks, published the way the driver
//! publishes it. So a consumer that ignored its lease (the `IgnoreLease`
//! mutant lives in the gate) is caught here, message by message.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::balance::{BalanceConfig, Ending, PartitionGate, SessionLease, Verdict};
use crate::ids::TopicPartition;

use super::world::World;

/// What the application holds of one partition: from `Assigned` until it
/// lets go after a revoke, or at once on a loss.
#[derive(Debug)]
pub(super) struct Holding {
    /// The next offset it will deliver.
    pub position: u64,
    pub gate: PartitionGate,
}

#[derive(Debug)]
pub(super) struct App {
    pub holds: BTreeMap<TopicPartition, Holding>,
    /// The current session's lease, as the driver publishes it.
    pub lease: Arc<SessionLease>,
}

/// A fresh lease for a new session, as the driver makes one.
pub(super) fn session_lease(cfg: &BalanceConfig) -> Arc<SessionLease> {
    #[cfg(feature = "mutants")]
    if cfg.mutant == Some(crate::balance::Mutant::IgnoreLease) {
        return Arc::new(SessionLease::ignored());
    }
    let _ = cfg;
    Arc::new(SessionLease::new())
}

impl App {
    pub fn new(cfg: &BalanceConfig) -> Self {
        App { holds: BTreeMap::new(), lease: session_lease(cfg) }
    }
}

impl World<'_> {
    /// The driver publishes the machine's lease after every input.
    pub(super) fn publish_lease(&mut self, m: usize) {
        let member = &self.members[m];
        member.app.lease.publish(member.machine.lease_until());
    }

    /// Newly owned partitions: the application starts each at its
    /// committed offset.
    pub(super) fn app_assigned(&mut self, m: usize, partitions: impl IntoIterator<Item = TopicPartition>) {
        for tp in partitions {
            if self.members[m].app.holds.contains_key(&tp) {
                continue;
            }
            let start = self.committed.get(&tp).copied().unwrap_or(0);
            let delivered = self.delivered.get(&tp).copied().unwrap_or(0);
            if start > delivered {
                self.violate(
                    "no skipped offsets",
                    format!("m{m} starts {tp} at {start}, past everything delivered ({delivered})"),
                );
            }
            let gate = PartitionGate::new(Arc::clone(&self.members[m].app.lease));
            self.members[m].app.holds.insert(tp, Holding { position: start, gate });
        }
    }

    /// A revoke closes the gate at once; the application lets go later.
    pub(super) fn app_revoked(&mut self, m: usize, tps: impl IntoIterator<Item = TopicPartition>) {
        for tp in tps {
            if let Some(h) = self.members[m].app.holds.get(&tp) {
                h.gate.end(Ending::Revoked);
            }
        }
    }

    /// A loss: the application drops the partition at once, committing
    /// nothing.
    pub(super) fn app_lost(&mut self, m: usize, tps: impl IntoIterator<Item = TopicPartition>) {
        for tp in tps {
            if let Some(h) = self.members[m].app.holds.remove(&tp) {
                h.gate.end(Ending::Lost);
            }
        }
    }

    /// The application lets go of a revoked partition: it commits its
    /// position if its lease still holds, then tells the machine.
    pub(super) fn app_release(&mut self, m: usize, tp: TopicPartition) {
        if !self.members[m].alive {
            return;
        }
        if let Some(h) = self.members[m].app.holds.remove(&tp) {
            if self.members[m].machine.lease_valid_at(self.now) {
                self.commit(m, &tp, h.position);
            } else {
                self.log(|| format!("m{m} lets go of {tp} without committing: its lease has lapsed"));
            }
        }
        // The hand-over decides when the machine hears of it (not at all
        // if the partition was lost meanwhile).
        if let Some(input) = self.members[m].handover.let_go(&tp) {
            self.feed(m, input);
        }
    }

    /// The application commits its position on release.
    fn commit(&mut self, m: usize, tp: &TopicPartition, pos: u64) {
        let before = self.committed.get(tp).copied().unwrap_or(0);
        if pos < before {
            self.violate("no backwards offsets", format!("m{m} committed {pos} for {tp} after {before} was committed"));
        }
        self.log(|| format!("m{m} commits {tp} at {pos}"));
        self.committed.insert(tp.clone(), pos.max(before));
    }

    /// Every running application hands over one message of each partition
    /// its gate lets through at this instant; each hand-over is checked.
    /// Returns (invariant, detail) for each violation.
    pub(super) fn deliver(&mut self) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        let mut by: BTreeMap<TopicPartition, usize> = BTreeMap::new();
        let view = self.model.latest();
        for m in 0..self.members.len() {
            let member = &self.members[m];
            if !member.alive || member.stalled_until > self.now {
                continue;
            }
            let open: Vec<TopicPartition> = member
                .app
                .holds
                .iter()
                .filter(|(_, h)| h.gate.check(self.now) == Verdict::Deliver)
                .map(|(tp, _)| tp.clone())
                .collect();
            for tp in open {
                let member = &self.members[m];
                if !member.machine.lease_valid_at(self.now) {
                    found.push(("delivery lease", format!("m{m} hands over {tp} after its delivery lease ended")));
                }
                if let Some(other) = by.insert(tp.clone(), m) {
                    found.push(("exclusive delivery", format!("{tp} delivered by m{other} and m{m}")));
                }
                if !self.model.alive(member.session) {
                    found.push(("live session", format!("m{m} delivers {tp} with session {} expired", member.session)));
                }
                let dirs = crate::protocol::layout::owner_dirs(&self.group, self.cfg.flavour, &tp.topic);
                let owns = dirs.iter().any(|dir| {
                    view.children(dir).iter().any(|c| {
                        crate::znode::OwnerName::parse(self.cfg.flavour, dir, c)
                            .is_ok_and(|n| n.partition() == tp.partition)
                            && view.get(&format!("{dir}/{c}")).is_some_and(|n| n.owner == Some(member.session))
                    })
                });
                if !owns {
                    found.push(("live session", format!("m{m} delivers {tp} without holding its owner znode")));
                }
                let h = self.members[m].app.holds.get_mut(&tp).expect("listed above");
                h.position += 1;
                let high = self.delivered.entry(tp).or_default();
                *high = (*high).max(h.position);
            }
        }
        found
    }
}
