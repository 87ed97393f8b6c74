//! The one place a group's raw znodes become a [`GroupSnapshot`]: member
//! registrations decoded and resolved to topics, partitions and (pykafka)
//! leaders, owner znodes decoded — and everything that could not be used,
//! with the reason. The driver, the simulator and `inspect` gather the raw
//! [`Listing`] their own way (a real server, a model) and all build here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::assign::GroupShape;
use crate::balance::{GroupSnapshot, OwnerRecord};
use crate::ids::{BrokerId, GroupId, MemberId, PartitionId, TopicName, TopicPartition};
use crate::znode::{
    layout, Codec, Flavour, MemberRegistration, OwnerName, PartitionState, Problem, Subscription, TopicRegistration,
    ZnodeError,
};

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

/// The members, decoded, with the topics each consumes (wildcards
/// resolved against `all_topics`).
pub fn members(
    flavour: Flavour,
    group: &GroupId,
    raw: &[(String, Vec<u8>)],
    all_topics: &[String],
) -> (Subscriptions, Vec<Skipped>) {
    let ids = layout::members(group);
    let mut out = BTreeMap::new();
    let mut skipped = Vec::new();
    for (child, bytes) in raw {
        let path = format!("{ids}/{child}");
        let member = match MemberId::new(child.as_str()) {
            Ok(m) => m,
            Err(e) => {
                skipped.push(Skipped::Malformed(ZnodeError { path, problem: e.into() }));
                continue;
            }
        };
        match (MemberRegistration::decode(&path, bytes), flavour) {
            (Ok(MemberRegistration::Pykafka { topic }), Flavour::Pykafka) => {
                out.insert(member, vec![(topic, 1)]);
            }
            (Ok(MemberRegistration::Scala(reg)), Flavour::Scala) => {
                out.insert(member, resolve(&reg.subscription, all_topics));
            }
            (Ok(_), _) => skipped.push(Skipped::OtherFlavour { path }),
            (Err(e), _) => skipped.push(Skipped::Malformed(e)),
        }
    }
    (out, skipped)
}

/// Every topic some member consumes, sorted.
pub fn subscribed(members: &Subscriptions) -> BTreeSet<TopicName> {
    members.values().flat_map(|ts| ts.iter().map(|(t, _)| t.clone())).collect()
}

/// Builds the snapshot from a listing.
pub fn build(flavour: Flavour, group: &GroupId, listing: &Listing) -> (GroupSnapshot, Vec<Skipped>) {
    let (members, mut skipped) = members(flavour, group, &listing.members, &listing.all_topics);
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
            let path = format!("{}/{}", raw.dir, raw.name);
            match owner_member(flavour, &raw.payload) {
                Some((member, thread)) => owners
                    .entry(TopicPartition::new(topic.clone(), name.partition()))
                    .or_default()
                    .push(OwnerRecord { member, thread, name, czxid: raw.czxid }),
                None => skipped.push(Skipped::Malformed(ZnodeError {
                    path,
                    problem: Problem::BadText(format!("not a {flavour} owner payload")),
                })),
            }
        }
    }
    for records in owners.values_mut() {
        records.sort_by_key(|r| r.czxid);
        records.dedup_by(|a, b| a.member == b.member && a.name == b.name);
    }
    (GroupSnapshot { shape, owners }, skipped)
}

/// The topics a Scala subscription covers. Wildcards follow Kafka's
/// `Whitelist`/`Blacklist`: commas mean alternation, spaces and surrounding
/// quotes are dropped, the whole name must match, and internal topics are
/// excluded. (Rust's regex dialect stands in for Java's; the two agree on
/// the patterns topic filters use.)
pub fn resolve(subscription: &Subscription, all_topics: &[String]) -> Vec<(TopicName, u32)> {
    let wildcard = |regex: &str, streams: u32, white: bool| -> Vec<(TopicName, u32)> {
        let cleaned = regex.trim().replace(',', "|").replace(' ', "");
        let cleaned = cleaned.trim_start_matches(['"', '\'']).trim_end_matches(['"', '\'']);
        let Ok(re) = regex::Regex::new(&format!("^(?:{cleaned})$")) else {
            tracing::warn!(%regex, "a member's topic filter is not a valid regex; it subscribes to nothing");
            return Vec::new();
        };
        all_topics
            .iter()
            .filter(|t| !t.starts_with("__"))
            .filter(|t| re.is_match(t) == white)
            .filter_map(|t| TopicName::new(t.as_str()).ok())
            .map(|t| (t, streams))
            .collect()
    };
    match subscription {
        Subscription::Static(topics) => topics.clone(),
        Subscription::Whitelist { regex, streams } => wildcard(regex, *streams, true),
        Subscription::Blacklist { regex, streams } => wildcard(regex, *streams, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_resolve_like_kafka_filters() {
        let all: Vec<String> =
            ["orders", "orders.eu", "payments", "__consumer_offsets"].iter().map(|s| s.to_string()).collect();
        let names = |s: &Subscription| resolve(s, &all).into_iter().map(|(t, _)| t.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(&Subscription::Whitelist { regex: "orders.*, payments".into(), streams: 1 }),
            ["orders", "orders.eu", "payments"]
        );
        assert_eq!(names(&Subscription::Whitelist { regex: "\"orders\"".into(), streams: 1 }), ["orders"]);
        assert_eq!(names(&Subscription::Blacklist { regex: "orders.*".into(), streams: 1 }), ["payments"]);
        assert!(names(&Subscription::Whitelist { regex: "(".into(), streams: 1 }).is_empty());
    }
}
