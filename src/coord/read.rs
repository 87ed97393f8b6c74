//! Reading the group: members, the partitions of their topics, and owners,
//! setting the watches that mark the view stale.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use zookeeper_client::{Client, Error as ZkError, OneshotWatcher};

use crate::assign::GroupShape;
use crate::balance::{GroupSnapshot, OwnerRecord};
use crate::ids::{BrokerId, MemberId, PartitionId, TopicName, TopicPartition};
use crate::znode::{
    layout, Codec, Flavour, MemberRegistration, OwnerName, PartitionState, Problem, PykafkaOwner, ScalaOwner,
    Subscription, TopicRegistration, ZnodeError,
};

use super::ops::Layout;

/// One watch per (kind, path) at a time: a read that finds a watch already
/// set reads without setting another, so reconciles do not pile them up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Watches {
    set: Arc<Mutex<HashSet<String>>>,
}

impl Watches {
    fn claim(&self, key: &str) -> bool {
        self.set.lock().insert(key.to_owned())
    }

    fn forget(&self, key: &str) {
        self.set.lock().remove(key);
    }

    /// After an expiry every watch is gone with the session.
    pub fn clear(&self) {
        self.set.lock().clear();
    }

    fn arm(&self, key: String, watcher: OneshotWatcher, changed: &mpsc::UnboundedSender<()>) {
        let (set, changed) = (Arc::clone(&self.set), changed.clone());
        tokio::spawn(async move {
            watcher.changed().await;
            set.lock().remove(&key);
            let _ = changed.send(());
        });
    }
}

/// What a read needs.
pub(crate) struct Reader<'a> {
    pub zk: &'a Client,
    pub layout: &'a Layout,
    pub watches: &'a Watches,
    pub changed: &'a mpsc::UnboundedSender<()>,
}

/// The snapshot, and the znodes skipped as malformed.
pub(crate) type Read = (GroupSnapshot, Vec<ZnodeError>);

impl Reader<'_> {
    async fn children(&self, path: &str) -> Result<Vec<String>, ZkError> {
        let key = format!("children:{path}");
        if !self.watches.claim(&key) {
            return self.zk.list_children(path).await;
        }
        match self.zk.list_and_watch_children(path).await {
            Ok((children, watcher)) => {
                self.watches.arm(key, watcher, self.changed);
                Ok(children)
            }
            Err(e) => {
                self.watches.forget(&key);
                Err(e)
            }
        }
    }

    /// Data with a data watch; `None` (and an existence watch) if absent.
    async fn data(&self, path: &str) -> Result<Option<Vec<u8>>, ZkError> {
        let key = format!("data:{path}");
        if !self.watches.claim(&key) {
            return match self.zk.get_data(path).await {
                Ok((d, _)) => Ok(Some(d)),
                Err(ZkError::NoNode) => Ok(None),
                Err(e) => Err(e),
            };
        }
        match self.zk.check_and_watch_stat(path).await {
            Ok((None, watcher)) => {
                self.watches.arm(key, watcher, self.changed);
                Ok(None)
            }
            Ok((Some(_), exists_watcher)) => {
                // The existence watch fires on data changes and deletion too.
                self.watches.arm(key, exists_watcher, self.changed);
                match self.zk.get_data(path).await {
                    Ok((d, _)) => Ok(Some(d)),
                    Err(ZkError::NoNode) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Err(e) => {
                self.watches.forget(&key);
                Err(e)
            }
        }
    }

    async fn plain(&self, path: &str) -> Result<Option<(Vec<u8>, i64)>, ZkError> {
        match self.zk.get_data(path).await {
            Ok((d, stat)) => Ok(Some((d, stat.czxid))),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn read(&self) -> Result<Read, String> {
        let fail = |what: &str, e: ZkError| format!("reading {what}: {e}");
        let mut skipped = Vec::new();
        let flavour = self.layout.flavour;
        let all_topics = if flavour == Flavour::Scala {
            self.children(layout::BROKER_TOPICS).await.map_err(|e| fail(layout::BROKER_TOPICS, e))?
        } else {
            // pykafka rebalances when brokers come and go: leaders move.
            self.children(layout::BROKER_IDS).await.map_err(|e| fail(layout::BROKER_IDS, e))?;
            Vec::new()
        };

        let mut shape = GroupShape::default();
        let ids = layout::members(&self.layout.group);
        for child in self.children(&ids).await.map_err(|e| fail(&ids, e))? {
            let path = format!("{ids}/{child}");
            let Some((bytes, _)) = self.plain(&path).await.map_err(|e| fail(&path, e))? else { continue };
            let member = match MemberId::new(child.as_str()) {
                Ok(m) => m,
                Err(e) => {
                    skipped.push(ZnodeError { path, problem: e.into() });
                    continue;
                }
            };
            match (MemberRegistration::decode(&path, &bytes), flavour) {
                (Ok(MemberRegistration::Pykafka { topic }), Flavour::Pykafka) => shape.add_member(member, [(topic, 1)]),
                (Ok(MemberRegistration::Scala(reg)), Flavour::Scala) => {
                    shape.add_member(member, resolve(&reg.subscription, &all_topics))
                }
                (Ok(_), _) => skipped.push(ZnodeError {
                    path,
                    problem: Problem::BadText(format!("a member of the other flavour in a {flavour} group")),
                }),
                (Err(e), _) => skipped.push(e),
            }
        }

        let topics: Vec<TopicName> = {
            let mut v: Vec<TopicName> = shape.members.values().flat_map(|s| s.keys().cloned()).collect();
            v.sort();
            v.dedup();
            v
        };
        let mut owners = BTreeMap::new();
        for topic in topics {
            let path = layout::topic(&topic);
            let Some(bytes) = self.data(&path).await.map_err(|e| fail(&path, e))? else { continue };
            let registration = match TopicRegistration::decode(&path, &bytes) {
                Ok(r) => r,
                Err(e) => {
                    skipped.push(e);
                    continue;
                }
            };
            let mut partitions: BTreeMap<PartitionId, Option<BrokerId>> = BTreeMap::new();
            for p in registration.partition_ids() {
                let leader =
                    if flavour == Flavour::Pykafka { self.leader(&topic, p, &mut skipped).await? } else { None };
                partitions.insert(p, leader);
            }
            shape.add_topic(topic.clone(), partitions);
            self.owners_of(&topic, &mut owners, &mut skipped).await?;
        }
        for records in owners.values_mut() {
            records.sort_by_key(|r: &OwnerRecord| r.czxid);
            records.dedup_by(|a, b| a.member == b.member && a.name == b.name);
        }
        Ok((GroupSnapshot { shape, owners }, skipped))
    }

    async fn leader(
        &self,
        topic: &TopicName,
        p: PartitionId,
        skipped: &mut Vec<ZnodeError>,
    ) -> Result<Option<BrokerId>, String> {
        let path = layout::partition_state(topic, p);
        match self.plain(&path).await {
            Ok(Some((bytes, _))) => match PartitionState::decode(&path, &bytes) {
                Ok(s) => Ok(s.leader),
                Err(e) => {
                    skipped.push(e);
                    Ok(None)
                }
            },
            // The controller writes a new partition's state after the topic:
            // watch for it, or members that read in between would disagree
            // on pykafka's leader-based order until the next reconcile.
            Ok(None) => match self.data(&path).await {
                Ok(Some(bytes)) => Ok(PartitionState::decode(&path, &bytes).ok().and_then(|s| s.leader)),
                Ok(None) => Ok(None),
                Err(e) => Err(format!("reading {path}: {e}")),
            },
            Err(e) => Err(format!("reading {path}: {e}")),
        }
    }

    async fn owners_of(
        &self,
        topic: &TopicName,
        owners: &mut BTreeMap<TopicPartition, Vec<OwnerRecord>>,
        skipped: &mut Vec<ZnodeError>,
    ) -> Result<(), String> {
        for dir in self.layout.owner_dirs(topic) {
            let children = match self.zk.list_children(&dir).await {
                Ok(c) => c,
                Err(ZkError::NoNode) => continue,
                Err(e) => return Err(format!("reading {dir}: {e}")),
            };
            for child in children {
                let name = match OwnerName::parse(self.layout.flavour, &dir, &child) {
                    Ok(n) => n,
                    Err(e) => {
                        skipped.push(e);
                        continue;
                    }
                };
                let path = format!("{dir}/{child}");
                let Some((bytes, czxid)) = self.plain(&path).await.map_err(|e| format!("reading {path}: {e}"))? else {
                    continue;
                };
                let decoded = match self.layout.flavour {
                    Flavour::Pykafka => PykafkaOwner::decode(&path, &bytes).map(|o| (o.0, 0)),
                    Flavour::Scala => ScalaOwner::decode(&path, &bytes).map(|o| (o.member, o.thread)),
                };
                match decoded {
                    Ok((member, thread)) => owners
                        .entry(TopicPartition::new(topic.clone(), name.partition()))
                        .or_default()
                        .push(OwnerRecord { member, thread, name, czxid }),
                    Err(e) => skipped.push(e),
                }
            }
        }
        Ok(())
    }
}

/// The topics a Scala subscription covers. Wildcards follow Kafka's
/// `Whitelist`/`Blacklist`: commas mean alternation, spaces and surrounding
/// quotes are dropped, the whole name must match, and internal topics are
/// excluded. (Rust's regex dialect stands in for Java's; the two agree on
/// the patterns topic filters use.)
fn resolve(subscription: &Subscription, all_topics: &[String]) -> Vec<(TopicName, u32)> {
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
