//! Reading a group: which znodes, in which round trips, with which watches.
//! Each round trip is one batch of independent requests, so an executor may
//! send them together. The watches are the ones that make the view stale:
//! the members, the topics' registrations (and `/brokers/topics` for Scala
//! wildcards, `/brokers/ids` for pykafka, whose order follows leaders), and
//! a partition `state` that does not exist yet (a topic being created).

use std::collections::BTreeSet;

use super::ops::{Procedure, Reply, Request, Step};
use super::snapshot::{self, Listing, RawOwner, Skipped};
use crate::balance::GroupSnapshot;
use crate::ids::{GroupId, PartitionId, TopicName};
use crate::zk_call::{ZkCallError, ZkCode};
use crate::znode::{layout, Codec, Flavour, MemberRegistration, TopicRegistration};

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRead {
    /// The group's layout (as given, or as its members' registrations
    /// tell).
    pub flavour: Flavour,
    /// The raw znodes.
    pub listing: Listing,
    /// The snapshot built from them.
    pub snapshot: GroupSnapshot,
    /// What could not be used, and why.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug)]
enum Stage {
    Start,
    Lists,
    MemberData(Vec<String>),
    MemberWatches(Vec<String>),
    Topics(Vec<TopicName>),
    States(Vec<(TopicName, PartitionId)>),
    StateWatches(Vec<(TopicName, PartitionId)>),
    OwnerDirs(Vec<String>),
    OwnerData(Vec<(String, String)>),
}

/// Reads a group (see the [module docs](self)).
#[derive(Debug)]
pub struct ReadGroup {
    group: GroupId,
    flavour: Option<Flavour>,
    watch: bool,
    exclude_internal: bool,
    stage: Stage,
    listing: Listing,
}

impl ReadGroup {
    /// A read of `group` in `flavour`, setting the watches a member needs.
    pub fn new(group: GroupId, flavour: Flavour) -> Self {
        ReadGroup {
            group,
            flavour: Some(flavour),
            watch: true,
            exclude_internal: true,
            stage: Stage::Start,
            listing: Listing::default(),
        }
    }

    /// Whether wildcard subscriptions leave internal topics out (default
    /// on, as Scala's `exclude.internal.topics`).
    pub fn exclude_internal_topics(mut self, exclude: bool) -> Self {
        self.exclude_internal = exclude;
        self
    }

    /// A read from outside: no watches, and the flavour told by the
    /// members' registrations (pykafka when none tells).
    pub fn inspect(group: GroupId) -> Self {
        ReadGroup {
            group,
            flavour: None,
            watch: false,
            exclude_internal: true,
            stage: Stage::Start,
            listing: Listing::default(),
        }
    }

    fn flavour(&self) -> Flavour {
        self.flavour.unwrap_or(Flavour::Pykafka)
    }

    fn failed(path: &str, code: ZkCode) -> Step<Result<GroupRead, ZkCallError>> {
        Step::Done(Err(ZkCallError::new("read", path, code)))
    }

    fn data(&self, path: String, watch: bool) -> Request {
        Request::Data { path, watch: watch && self.watch }
    }

    fn topics_step(&mut self) -> Step<Result<GroupRead, ZkCallError>> {
        if self.flavour.is_none() {
            let scala = self.listing.members.iter().any(|(_, bytes)| {
                matches!(MemberRegistration::decode_payload(bytes), Ok(MemberRegistration::Scala(_)))
            });
            self.flavour = Some(if scala { Flavour::Scala } else { Flavour::Pykafka });
        }
        let members = snapshot::members(
            self.flavour(),
            &self.group,
            &self.listing.members,
            &self.listing.all_topics,
            self.exclude_internal,
        );
        let topics: Vec<TopicName> = snapshot::subscribed(&members.subscriptions).into_iter().collect();
        if topics.is_empty() {
            return self.finish();
        }
        let batch = topics.iter().map(|t| self.data(layout::topic(t), true)).collect();
        self.stage = Stage::Topics(topics);
        Step::Send(batch)
    }

    fn owners_step(&mut self) -> Step<Result<GroupRead, ZkCallError>> {
        let dirs: Vec<String> = self
            .listing
            .topics
            .iter()
            .filter(|(_, reg)| reg.is_some())
            .flat_map(|(t, _)| super::layout::owner_dirs(&self.group, self.flavour(), t))
            .collect();
        if dirs.is_empty() {
            return self.finish();
        }
        let batch = dirs.iter().map(|d| Request::Children { path: d.clone(), watch: false }).collect();
        self.stage = Stage::OwnerDirs(dirs);
        Step::Send(batch)
    }

    fn finish(&mut self) -> Step<Result<GroupRead, ZkCallError>> {
        let flavour = self.flavour();
        let listing = std::mem::take(&mut self.listing);
        let (snapshot, skipped) = snapshot::build(flavour, &self.group, &listing, self.exclude_internal);
        Step::Done(Ok(GroupRead { flavour, listing, snapshot, skipped }))
    }
}

impl Procedure for ReadGroup {
    type Output = Result<GroupRead, ZkCallError>;

    fn resume(&mut self, replies: Vec<Reply>) -> Step<Self::Output> {
        let ids = layout::members(&self.group);
        match std::mem::replace(&mut self.stage, Stage::Start) {
            Stage::Start => {
                // pykafka rebalances when brokers come and go (leaders move);
                // Scala wildcards match against the topic list.
                let brokers = match self.flavour {
                    Some(Flavour::Pykafka) => layout::BROKER_IDS,
                    _ => layout::BROKER_TOPICS,
                };
                self.stage = Stage::Lists;
                Step::Send(vec![
                    Request::Children { path: brokers.into(), watch: self.watch },
                    Request::Children { path: ids, watch: self.watch },
                ])
            }
            Stage::Lists => {
                let mut replies = replies.into_iter();
                let brokers = replies.next().map(Reply::children);
                let members = replies.next().map(Reply::children);
                let all = match brokers {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => return Self::failed(layout::BROKER_TOPICS, e),
                    None => return Self::failed(layout::BROKER_TOPICS, ZkCode::Other("no reply".into())),
                };
                if self.flavour != Some(Flavour::Pykafka) {
                    self.listing.all_topics = all;
                }
                let mut children = match members {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => return Self::failed(&ids, e),
                    None => return Self::failed(&ids, ZkCode::Other("no reply".into())),
                };
                children.sort();
                if children.is_empty() {
                    return self.topics_step();
                }
                let batch = children.iter().map(|c| Request::Registration { path: format!("{ids}/{c}") }).collect();
                self.stage = Stage::MemberData(children);
                Step::Send(batch)
            }
            Stage::MemberData(children) => {
                for (child, reply) in children.into_iter().zip(replies) {
                    match reply.data() {
                        Ok(Some((bytes, _))) => self.listing.members.push((child, bytes)),
                        // Gone between listing and reading.
                        Ok(None) => {}
                        Err(e) => return Self::failed(&format!("{ids}/{child}"), e),
                    }
                }
                // A member read before its registration is complete (or
                // damaged) holds the rebalance: watch its data, so the
                // rebalance goes on the moment it can be read. Read again
                // with the watch, so nothing written in between is missed.
                let unreadable: Vec<String> = match self.flavour.filter(|_| self.watch) {
                    Some(flavour) => self
                        .listing
                        .members
                        .iter()
                        .filter(|(c, bytes)| {
                            snapshot::unreadable_reason(flavour, &format!("{ids}/{c}"), bytes).is_some()
                        })
                        .map(|(c, _)| c.clone())
                        .collect(),
                    None => Vec::new(),
                };
                if unreadable.is_empty() {
                    return self.topics_step();
                }
                let batch = unreadable.iter().map(|c| self.data(format!("{ids}/{c}"), true)).collect();
                self.stage = Stage::MemberWatches(unreadable);
                Step::Send(batch)
            }
            Stage::MemberWatches(children) => {
                for (child, reply) in children.into_iter().zip(replies) {
                    let at = self.listing.members.iter().position(|(c, _)| *c == child);
                    match (reply.data(), at) {
                        (Ok(Some((bytes, _))), Some(i)) => self.listing.members[i].1 = bytes,
                        (Ok(None), Some(i)) => {
                            self.listing.members.remove(i);
                        }
                        (Ok(_), None) => {}
                        (Err(e), _) => return Self::failed(&format!("{ids}/{child}"), e),
                    }
                }
                self.topics_step()
            }
            Stage::Topics(topics) => {
                let mut states = Vec::new();
                for (topic, reply) in topics.into_iter().zip(replies) {
                    let path = layout::topic(&topic);
                    let bytes = match reply.data() {
                        Ok(found) => found.map(|(b, _)| b),
                        Err(e) => return Self::failed(&path, e),
                    };
                    if self.flavour() == Flavour::Pykafka {
                        if let Some(reg) = bytes.as_ref().and_then(|b| TopicRegistration::decode(&path, b).ok()) {
                            states.extend(reg.partition_ids().map(|p| (topic.clone(), p)));
                        }
                    }
                    self.listing.topics.insert(topic, bytes);
                }
                if states.is_empty() {
                    return self.owners_step();
                }
                let batch = states.iter().map(|(t, p)| self.data(layout::partition_state(t, *p), false)).collect();
                self.stage = Stage::States(states);
                Step::Send(batch)
            }
            Stage::States(states) => {
                let mut missing = Vec::new();
                for ((topic, p), reply) in states.into_iter().zip(replies) {
                    match reply.data() {
                        Ok(Some((bytes, _))) => {
                            self.listing.states.insert((topic, p), Some(bytes));
                        }
                        Ok(None) => missing.push((topic, p)),
                        Err(e) => return Self::failed(&layout::partition_state(&topic, p), e),
                    }
                }
                if missing.is_empty() || !self.watch {
                    for key in missing {
                        self.listing.states.insert(key, None);
                    }
                    return self.owners_step();
                }
                // The controller writes a new partition's state after the
                // topic: watch for it, or members that read in between would
                // disagree on pykafka's leader-based order until a reconcile.
                let batch = missing.iter().map(|(t, p)| self.data(layout::partition_state(t, *p), true)).collect();
                self.stage = Stage::StateWatches(missing);
                Step::Send(batch)
            }
            Stage::StateWatches(missing) => {
                for ((topic, p), reply) in missing.into_iter().zip(replies) {
                    match reply.data() {
                        Ok(found) => {
                            self.listing.states.insert((topic, p), found.map(|(b, _)| b));
                        }
                        Err(e) => return Self::failed(&layout::partition_state(&topic, p), e),
                    }
                }
                self.owners_step()
            }
            Stage::OwnerDirs(dirs) => {
                let mut znodes = Vec::new();
                for (dir, reply) in dirs.into_iter().zip(replies) {
                    match reply.children() {
                        Ok(mut children) => {
                            children.sort();
                            znodes.extend(children.into_iter().map(|c| (dir.clone(), c)));
                        }
                        Err(e) => return Self::failed(&dir, e),
                    }
                }
                if znodes.is_empty() {
                    return self.finish();
                }
                let batch = znodes.iter().map(|(d, c)| Request::Registration { path: format!("{d}/{c}") }).collect();
                self.stage = Stage::OwnerData(znodes);
                Step::Send(batch)
            }
            Stage::OwnerData(znodes) => {
                for ((dir, name), reply) in znodes.into_iter().zip(replies) {
                    match reply.data() {
                        Ok(Some((payload, stat))) => {
                            self.listing.owners.push(RawOwner { dir, name, payload, czxid: stat.czxid })
                        }
                        Ok(None) => {}
                        Err(e) => return Self::failed(&format!("{dir}/{name}"), e),
                    }
                }
                self.finish()
            }
        }
    }
}

/// The topics a read will look at: those its members subscribe to.
pub fn topics_of(read: &GroupRead) -> BTreeSet<TopicName> {
    read.snapshot.shape.members.values().flat_map(|s| s.keys().cloned()).collect()
}
