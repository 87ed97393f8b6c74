use std::collections::BTreeMap;

use crate::assign::{Assignment, GroupShape};
use crate::ids::{MemberId, TopicPartition};
use crate::znode::OwnerName;

/// One owner znode as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRecord {
    /// The owning member (from the payload).
    pub member: MemberId,
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
            .filter_map(|(tp, v)| v.first().map(|o| (tp.clone(), crate::assign::Slot::new(o.member.clone(), o.thread))))
            .collect()
    }
}
