use std::collections::BTreeMap;

use crate::assign::{Assignment, GroupShape};
use crate::ids::{MemberId, TopicPartition};
use crate::znode::OwnerName;

/// One owner znode as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRecord {
    /// The owning member, as the payload names it; `None` when the payload
    /// names no member in the flavour's spelling. Ownership is the znode's
    /// existence either way.
    pub member: Option<MemberId>,
    /// Its thread (Scala payloads), 0 for pykafka.
    pub thread: u32,
    /// The znode's name.
    pub name: OwnerName,
    /// Creation zxid: the earliest of two claims that slipped past each
    /// other wins.
    pub czxid: i64,
}

/// The group as one read saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// Members, their subscriptions, and the partitions of subscribed topics.
    pub shape: GroupShape,
    /// Owner znodes per partition, earliest created first. More than one
    /// only when pykafka peers named the same partition with different
    /// leaders.
    pub owners: BTreeMap<TopicPartition, Vec<OwnerRecord>>,
    /// Registered members whose registration cannot be read. An assignment
    /// computed without them would differ from their peers': the machine
    /// waits for them (see [`BalanceConfig::unreadable_bound`]).
    ///
    /// [`BalanceConfig::unreadable_bound`]: super::BalanceConfig::unreadable_bound
    pub unreadable: Vec<Unreadable>,
}

/// A registered member whose member znode cannot be read: empty (a client
/// that registers in two requests, read in between), partial, of an unknown
/// version, garbage, or naming a topic filter that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unreadable {
    /// Its name under `ids/`.
    pub member: String,
    /// The member znode.
    pub path: String,
    /// Why it cannot be read.
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl GroupSnapshot {
    /// The effective owner of a partition: its earliest owner znode.
    pub fn owner(&self, tp: &TopicPartition) -> Option<&OwnerRecord> {
        self.owners.get(tp).and_then(|v| v.first())
    }

    /// Current ownership as an assignment (what sticky starts from).
    pub fn current(&self) -> Assignment {
        self.owners
            .iter()
            .filter_map(|(tp, v)| {
                let o = v.first()?;
                Some((tp.clone(), crate::assign::Slot::new(o.member.clone()?, o.thread)))
            })
            .collect()
    }
}
