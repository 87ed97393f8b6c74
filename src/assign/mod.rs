//! Assignment strategies: who owns which partition, computed by every member
//! from the same inputs to the same answer.
//!
//! Range and round-robin come in both legacy flavours, ordered exactly as
//! pykafka and the Scala consumer order them, so a mixed group agrees.
//! [`Strategy::Sticky`] is ours: it moves as few partitions as it can while
//! keeping every consumer thread within one partition of the others, and is
//! only for groups where every member is zkbalance.
//!
//! ```
//! use std::collections::BTreeMap;
//! use zkbalance::assign::{assign, GroupShape, Slot, Strategy};
//! use zkbalance::{BrokerId, MemberId, PartitionId, TopicName, TopicPartition};
//!
//! let t = TopicName::new("orders")?;
//! let mut shape = GroupShape::default();
//! shape.add_member(MemberId::new("a:1")?, [(t.clone(), 1)]);
//! shape.add_member(MemberId::new("b:2")?, [(t.clone(), 1)]);
//! shape.add_topic(t.clone(), (0..3).map(|p| (PartitionId(p), Some(BrokerId(1)))));
//! let out = assign(Strategy::PykafkaRange, &shape, &BTreeMap::new())?;
//! assert_eq!(out[&TopicPartition::new(t.clone(), 2)], Slot::new(MemberId::new("b:2")?, 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod legacy;
mod sticky;

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

use crate::ids::{BrokerId, MemberId, PartitionId, TopicName, TopicPartition};

/// One consumer thread: a member and a stream within it. pykafka members
/// have one stream (thread 0); Scala members one per configured stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The member.
    pub member: MemberId,
    /// The stream within the member, from 0.
    pub thread: u32,
}

impl Slot {
    /// A member's stream.
    pub fn new(member: MemberId, thread: u32) -> Self {
        Self { member, thread }
    }
}

impl fmt::Display for Slot {
    /// The Scala consumer's thread id: `<member>-<thread>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.member, self.thread)
    }
}

/// Who is in the group and what there is to assign: the strategies' input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupShape {
    /// Member → topic → stream count.
    pub members: BTreeMap<MemberId, BTreeMap<TopicName, u32>>,
    /// Topic → partition → leader (pykafka orders partitions by leader).
    pub topics: BTreeMap<TopicName, BTreeMap<PartitionId, Option<BrokerId>>>,
}

impl GroupShape {
    /// Adds a member subscribed to `topics` with the given stream counts.
    pub fn add_member(&mut self, member: MemberId, topics: impl IntoIterator<Item = (TopicName, u32)>) {
        self.members.insert(member, topics.into_iter().collect());
    }

    /// Adds a topic's partitions and their leaders.
    pub fn add_topic(
        &mut self,
        topic: TopicName,
        partitions: impl IntoIterator<Item = (PartitionId, Option<BrokerId>)>,
    ) {
        self.topics.insert(topic, partitions.into_iter().collect());
    }

    /// The consumer threads subscribed to `topic`, in no particular order.
    pub(crate) fn slots_for(&self, topic: &TopicName) -> Vec<Slot> {
        self.members
            .iter()
            .filter_map(|(m, subs)| subs.get(topic).map(|n| (m, *n)))
            .flat_map(|(m, n)| (0..n).map(move |t| Slot::new(m.clone(), t)))
            .collect()
    }

    /// Topics with at least one subscriber and known partitions.
    pub(crate) fn subscribed_topics(
        &self,
    ) -> impl Iterator<Item = (&TopicName, &BTreeMap<PartitionId, Option<BrokerId>>)> {
        self.topics.iter().filter(|(t, _)| self.members.values().any(|subs| subs.contains_key(*t)))
    }
}

/// The strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// pykafka's default (`RangeProtocol`): per topic, members sorted
    /// byte-wise, partitions sorted by the string `"<topic>-<leader>-<id>"`.
    PykafkaRange,
    /// pykafka's `RoundRobinProtocol`: the same orders, dealt in turn.
    PykafkaRoundRobin,
    /// The Scala consumer's `range`: per topic, threads sorted by
    /// `"<member>-<thread>"`, partitions numerically.
    ScalaRange,
    /// The Scala consumer's `roundrobin`: every topic-partition ordered by the
    /// Java `hashCode` of `"[topic,partition]"`, dealt over all threads.
    /// Requires identical subscriptions on every member.
    ScalaRoundRobin,
    /// Ours: minimal movement from the current owners, every thread within
    /// one partition of the others, per topic.
    Sticky,
}

impl Strategy {
    /// Whether the strategy reads the current owners.
    pub fn uses_current_owners(self) -> bool {
        self == Strategy::Sticky
    }
}

/// Partition → the thread that should own it.
pub type Assignment = BTreeMap<TopicPartition, Slot>;

/// Inputs a strategy cannot assign from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AssignError {
    /// Scala round-robin needs every member to subscribe to the same topics
    /// with the same stream counts.
    #[error(
        "round-robin needs identical subscriptions: {topic} is consumed by {found:?} but not by all of {expected:?}"
    )]
    MixedSubscriptions {
        /// A topic whose subscribers differ.
        topic: TopicName,
        /// Its subscribers.
        found: Vec<String>,
        /// The subscribers of the first topic.
        expected: Vec<String>,
    },
}

/// Computes the assignment. `current` (partition → owning thread) is read
/// only by [`Strategy::Sticky`].
pub fn assign(strategy: Strategy, shape: &GroupShape, current: &Assignment) -> Result<Assignment, AssignError> {
    match strategy {
        Strategy::PykafkaRange => Ok(legacy::pykafka(shape, legacy::Deal::Range)),
        Strategy::PykafkaRoundRobin => Ok(legacy::pykafka(shape, legacy::Deal::RoundRobin)),
        Strategy::ScalaRange => Ok(legacy::scala_range(shape)),
        Strategy::ScalaRoundRobin => legacy::scala_round_robin(shape),
        Strategy::Sticky => Ok(sticky::assign(shape, current)),
    }
}

/// The `[start, start + len)` slice of `n` items that position `i` of `k`
/// takes in a range split: the first `n % k` positions take one extra.
pub(crate) fn range_of(i: usize, k: usize, n: usize) -> std::ops::Range<usize> {
    let (per, extra) = (n / k, n % k);
    let start = per * i + i.min(extra);
    start..start + per + usize::from(i < extra)
}

#[cfg(test)]
mod tests;
