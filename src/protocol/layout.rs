//! Where a group's znodes are and what they hold, per flavour: the owner
//! directories (pykafka's two spellings), owner znode names and payloads,
//! and the member's own paths. The znode codecs say how each payload is
//! spelled; this says which znodes a member writes and reads.

use crate::assign::Slot;
use crate::ids::{GroupId, MemberId, TopicName, TopicPartition};
use crate::znode::{layout, Codec, Flavour, OwnerName, PykafkaOwner, ScalaOwner, TopicSpelling};

/// The spellings of a topic's owner directory a flavour uses: pykafka
/// peers on Python 2 and 3 spell it differently, so a pykafka-flavour
/// claim writes (and a read looks at) both.
pub fn spellings(flavour: Flavour) -> &'static [TopicSpelling] {
    match flavour {
        Flavour::Pykafka => &TopicSpelling::ALL,
        Flavour::Scala => &[TopicSpelling::Plain],
    }
}

/// Every owner directory of `topic` in a group of `flavour`.
pub fn owner_dirs(group: &GroupId, flavour: Flavour, topic: &TopicName) -> Vec<String> {
    spellings(flavour).iter().map(|s| layout::owner_dir(group, topic, *s)).collect()
}

/// The member an owner payload names, as `flavour` writes it.
pub fn owner_member(flavour: Flavour, bytes: &[u8]) -> Option<(MemberId, u32)> {
    match flavour {
        Flavour::Pykafka => PykafkaOwner::decode_payload(bytes).ok().map(|o| (o.0, 0)),
        Flavour::Scala => ScalaOwner::decode_payload(bytes).ok().map(|o| (o.member, o.thread)),
    }
}

/// Where one member's znodes go and what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLayout {
    /// The group.
    pub group: GroupId,
    /// Its layout.
    pub flavour: Flavour,
    /// This member.
    pub member: MemberId,
}

impl GroupLayout {
    /// The member znode.
    pub fn member_path(&self) -> String {
        layout::member(&self.group, &self.member)
    }

    /// The persistent directories a member needs before it registers:
    /// the members' directory, the owner directories of its topics, and
    /// (Scala) their offset directories.
    pub fn directories<'a>(&self, topics: impl IntoIterator<Item = &'a TopicName>) -> Vec<String> {
        let mut dirs = vec![layout::members(&self.group)];
        for t in topics {
            dirs.extend(owner_dirs(&self.group, self.flavour, t));
            if self.flavour == Flavour::Scala {
                dirs.push(layout::offsets_dir(&self.group, t));
            }
        }
        dirs
    }

    /// The owner directories of `topic`.
    pub fn owner_dirs(&self, topic: &TopicName) -> Vec<String> {
        owner_dirs(&self.group, self.flavour, topic)
    }

    /// Whether a partition has exactly one owner znode name, whatever a
    /// member read (Scala: the partition id), so a claim need not look for
    /// others; pykafka's names embed the leader, which members may read
    /// differently.
    pub fn one_name_per_partition(&self) -> bool {
        self.flavour == Flavour::Scala
    }

    /// The owner znodes a claim of `tp` under `name` creates (one per
    /// spelling).
    pub fn owner_paths(&self, tp: &TopicPartition, name: OwnerName) -> Vec<String> {
        spellings(self.flavour).iter().map(|s| layout::owner(&self.group, &tp.topic, *s, name)).collect()
    }

    /// What an owner znode of ours holds.
    pub fn owner_payload(&self, slot: &Slot) -> Vec<u8> {
        match self.flavour {
            Flavour::Pykafka => PykafkaOwner(slot.member.clone()).encode(),
            Flavour::Scala => ScalaOwner { member: slot.member.clone(), thread: slot.thread }.encode(),
        }
    }

    /// Whether an owner payload names this member.
    pub fn is_ours(&self, bytes: &[u8]) -> bool {
        owner_member(self.flavour, bytes).is_some_and(|(m, _)| m == self.member)
    }
}
