//! The one place a group's raw znodes become a [`GroupSnapshot`]: member
//! registrations decoded and resolved to topics, partitions and (pykafka)
//! leaders, owner znodes decoded — and everything that could not be used,
//! with the reason. The driver, the simulator and `inspect` gather the raw
//! [`Listing`] their own way (a real server, a model) and all build here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::assign::GroupShape;
use crate::balance::{GroupSnapshot, OwnerRecord, Unreadable};
use crate::ids::{BrokerId, GroupId, MemberId, PartitionId, TopicName, TopicPartition};
use crate::znode::{
    layout, Codec, Flavour, MemberRegistration, OwnerName, PartitionState, TopicRegistration, ZnodeError,
};

use super::filter;
use super::layout::{owner_dirs, owner_member};

/// One owner znode as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOwner {
    /// Its directory.
    pub dir: String,
    /// Its name in it.
    pub name: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Its creation zxid.
    pub czxid: i64,
}

/// A group's znodes as read: what a snapshot is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Children of `/brokers/topics` (what Scala wildcards match against).
    pub all_topics: Vec<String>,
    /// Member znodes: (name under `ids/`, payload).
    pub members: Vec<(String, Vec<u8>)>,
    /// Registrations of the subscribed topics (`None`: not registered).
    pub topics: BTreeMap<TopicName, Option<Vec<u8>>>,
    /// Partition states, where leaders matter (pykafka; `None`: absent).
    pub states: BTreeMap<(TopicName, PartitionId), Option<Vec<u8>>>,
    /// Owner znodes of the subscribed topics.
    pub owners: Vec<RawOwner>,
}

/// A znode the snapshot could not use, and why. Reported (logged and
/// counted by the driver, listed by `inspect`), never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skipped {
    /// Its name or payload does not decode.
    Malformed(ZnodeError),
    /// A member registered in the other flavour's layout.
    OtherFlavour {
        /// The member znode.
        path: String,
    },
}

impl Skipped {
    /// The znode.
    pub fn path(&self) -> &str {
        match self {
            Skipped::Malformed(e) => &e.path,
            Skipped::OtherFlavour { path } => path,
        }
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skipped::Malformed(e) => e.fmt(f),
            Skipped::OtherFlavour { path } => write!(f, "{path}: a member of the other flavour"),
        }
    }
}

/// Each member with the topics it consumes and its streams of each.
pub type Subscriptions = BTreeMap<MemberId, Vec<(TopicName, u32)>>;

/// What reading the member znodes gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// The members whose registration could be used.
    pub subscriptions: Subscriptions,
    /// Registered members whose registration cannot be used: nobody can
    /// tell what they consume, so no assignment that counts them can be
    /// computed.
    pub unreadable: Vec<Unreadable>,
    /// Members left out the way the flavour's reference client leaves them
    /// out (a Scala registration in a pykafka group).
    pub skipped: Vec<Skipped>,
}

/// Whether a member payload can be read in `flavour`: the reason if not.
/// The rule the read's data watches and the snapshot share.
pub fn unreadable_reason(flavour: Flavour, path: &str, bytes: &[u8]) -> Option<String> {
    match (MemberRegistration::decode(path, bytes), flavour) {
        (Err(e), _) => Some(e.problem.to_string()),
        // The Scala consumer cannot parse a bare topic name: it fails the
        // rebalance rather than leave the member out.
        (Ok(MemberRegistration::Pykafka { .. }), Flavour::Scala) => {
            Some("a pykafka registration (a bare topic name) in a Scala-layout group".into())
        }
        (Ok(_), _) => None,
    }
}

/// The members, decoded, with the topics each consumes (wildcards
/// resolved against `all_topics`, internal topics left out when
/// `exclude_internal`).
pub fn members(
    flavour: Flavour,
    group: &GroupId,
    raw: &[(String, Vec<u8>)],
    all_topics: &[String],
    exclude_internal: bool,
) -> Members {
    let ids = layout::members(group);
    let mut out = Members::default();
    for (child, bytes) in raw {
        let path = format!("{ids}/{child}");
        let unreadable = |reason: String| Unreadable { member: child.clone(), path: path.clone(), reason };
        let member = match MemberId::new(child.as_str()) {
            Ok(m) => m,
            Err(e) => {
                out.unreadable.push(unreadable(format!("the member id is not usable: {e}")));
                continue;
            }
        };
        if let Some(reason) = unreadable_reason(flavour, &path, bytes) {
            out.unreadable.push(unreadable(reason));
            continue;
        }
        match MemberRegistration::decode_payload(bytes) {
            Ok(MemberRegistration::Pykafka { topic }) => {
                out.subscriptions.insert(member, vec![(topic, 1)]);
            }
            // pykafka compares the payload with its topic name: a JSON
            // registration is simply not a participant.
            Ok(MemberRegistration::Scala(_)) if flavour == Flavour::Pykafka => {
                out.skipped.push(Skipped::OtherFlavour { path })
            }
            Ok(MemberRegistration::Scala(reg)) => {
                match filter::resolve(&reg.subscription, all_topics, exclude_internal) {
                    Ok(topics) => {
                        out.subscriptions.insert(member, topics);
                    }
                    Err(reason) => out.unreadable.push(unreadable(reason)),
                }
            }
            Err(_) => unreachable!("unreadable_reason rejected it"),
        }
    }
    out
}

/// Every topic some member consumes, sorted.
pub fn subscribed(members: &Subscriptions) -> BTreeSet<TopicName> {
    members.values().flat_map(|ts| ts.iter().map(|(t, _)| t.clone())).collect()
}

/// Builds the snapshot from a listing; internal topics are left out of
/// wildcard subscriptions when `exclude_internal` (Scala's
/// `exclude.internal.topics`).
pub fn build(
    flavour: Flavour,
    group: &GroupId,
    listing: &Listing,
    exclude_internal: bool,
) -> (GroupSnapshot, Vec<Skipped>) {
    let Members { subscriptions: members, unreadable, mut skipped } =
        self::members(flavour, group, &listing.members, &listing.all_topics, exclude_internal);
    let mut shape = GroupShape::default();
    for (m, topics) in &members {
        shape.add_member(m.clone(), topics.iter().cloned());
    }
    let mut owners: BTreeMap<TopicPartition, Vec<OwnerRecord>> = BTreeMap::new();
    for topic in subscribed(&members) {
        let path = layout::topic(&topic);
        let Some(Some(bytes)) = listing.topics.get(&topic) else { continue };
        let registration = match TopicRegistration::decode(&path, bytes) {
            Ok(r) => r,
            Err(e) => {
                skipped.push(Skipped::Malformed(e));
                continue;
            }
        };
        let mut partitions: BTreeMap<PartitionId, Option<BrokerId>> = BTreeMap::new();
        for p in registration.partition_ids() {
            let leader = match listing.states.get(&(topic.clone(), p)) {
                Some(Some(bytes)) if flavour == Flavour::Pykafka => {
                    let path = layout::partition_state(&topic, p);
                    match PartitionState::decode(&path, bytes) {
                        Ok(s) => s.leader,
                        Err(e) => {
                            skipped.push(Skipped::Malformed(e));
                            None
                        }
                    }
                }
                _ => None,
            };
            partitions.insert(p, leader);
        }
        shape.add_topic(topic.clone(), partitions);
        let dirs = owner_dirs(group, flavour, &topic);
        for raw in listing.owners.iter().filter(|o| dirs.contains(&o.dir)) {
            let name = match OwnerName::parse(flavour, &raw.dir, &raw.name) {
                Ok(n) => n,
                Err(e) => {
                    skipped.push(Skipped::Malformed(e));
                    continue;
                }
            };
            // Existence is ownership; the payload only says by whom, and
            // other clients spell it their own way (kafka-node: the bare
            // member id).
            let (member, thread) = match owner_member(flavour, &raw.payload) {
                Some((m, t)) => (Some(m), t),
                None => (None, 0),
            };
            owners.entry(TopicPartition::new(topic.clone(), name.partition())).or_default().push(OwnerRecord {
                member,
                thread,
                name,
                czxid: raw.czxid,
            });
        }
    }
    for records in owners.values_mut() {
        records.sort_by_key(|r| r.czxid);
        records.dedup_by(|a, b| a.member == b.member && a.name == b.name);
    }
    (GroupSnapshot { shape, owners, unreadable }, skipped)
}
