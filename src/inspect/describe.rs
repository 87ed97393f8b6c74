//! `zkbc group list` and `zkbc group describe`: a group's members, owners,
//! offsets and lag, with every znode that cannot be used listed beside
//! them. Groups shared with other clients hold what those clients write
//! (kafka-node's bare-id owner payloads, registrations written in two
//! requests), and an operator needs the table most when something is odd.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use zookeeper_client::{Client, Error as ZkError};

use super::{children, group_id, read_group, require_group, zk_err, InspectError, KafkaSide};
use crate::cluster;
use crate::coord::ZkClient;
use crate::ids::{GroupId, PartitionId, TopicName};
use crate::offsets::OffsetStorage;
use crate::protocol::GroupRead;
use crate::znode::{layout, Codec, Flavour, MemberRegistration, OwnerName, Subscription, TopicSpelling, ZkOffset};

/// A group as `zkbc group list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group.
    pub group: String,
    /// Registered members.
    pub members: usize,
    /// Its layout, if members tell.
    pub flavour: Option<String>,
}

/// One member.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberInfo {
    /// Its id.
    pub id: String,
    /// Its host, when its id tells.
    pub host: Option<String>,
    /// How many partitions it owns.
    pub partitions: usize,
    /// `pykafka` or `scala`; `unknown` when its registration cannot be read.
    pub flavour: String,
    /// What it subscribes to, as it registered (the raw payload, escaped,
    /// when it cannot be read).
    pub subscription: String,
    /// Why its registration cannot be used, if it cannot.
    pub problem: Option<String>,
}

/// One partition of a group's topic.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionRow {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Its owner znode's payload, as written (ownership is the znode's
    /// existence; clients spell the owner differently).
    pub owner: Option<String>,
    /// The owning member's id, read from the payload (Scala's
    /// `<member>-<thread>`, pykafka's and kafka-node's bare id).
    pub consumer_id: Option<String>,
    /// The owning member's host, when its id tells (pykafka's
    /// `<host>:<uuid>`, Scala's `<group>_<host>-<ms>-<hex>`).
    pub host: Option<String>,
    /// The committed offset (next to consume).
    pub committed: Option<u64>,
    /// The log end offset.
    pub log_end: Option<u64>,
    /// `log_end − committed`.
    pub lag: Option<u64>,
}

/// A znode of the group that cannot be used, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ZnodeProblem {
    /// The znode.
    pub znode: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A group as `zkbc group describe` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// Registered members.
    pub members: Vec<MemberInfo>,
    /// Every partition of every topic the group subscribes to, owns or has
    /// offsets for.
    pub partitions: Vec<PartitionRow>,
    /// Znodes that cannot be used, with the reason.
    pub problems: Vec<ZnodeProblem>,
    /// Why log ends, lag and Kafka-stored offsets are missing, when Kafka
    /// did not answer (the ZooKeeper side is shown all the same).
    pub kafka_unavailable: Option<String>,
}

/// Bytes as text: UTF-8 as is, anything else escaped, long payloads cut.
fn shown(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes).chars().flat_map(char::escape_default).collect();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn subscription_text(s: &Subscription) -> String {
    match s {
        Subscription::Static(ts) => ts.iter().map(|(t, n)| format!("{t}:{n}")).collect::<Vec<_>>().join(","),
        Subscription::Whitelist { regex, streams } => format!("white_list {regex} ×{streams}"),
        Subscription::Blacklist { regex, streams } => format!("black_list {regex} ×{streams}"),
    }
}

/// The host a member id names: pykafka's `<host>:<uuid4>`, Scala's
/// `<group>_<host>-<ms>-<8 hex>`; kafka-node's `<group>_<uuid4>` names none.
pub(crate) fn host_of(group: &GroupId, member: &str) -> Option<String> {
    if let Some((host, id)) = member.rsplit_once(':') {
        return (uuid::Uuid::parse_str(id).is_ok() && !host.is_empty()).then(|| host.to_owned());
    }
    let rest = member.strip_prefix(group.as_str())?.strip_prefix('_')?;
    let (rest, hex) = rest.rsplit_once('-')?;
    let (host, ms) = rest.rsplit_once('-')?;
    let scala = hex.len() == 8
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && !ms.is_empty()
        && ms.bytes().all(|b| b.is_ascii_digit());
    (scala && !host.is_empty()).then(|| host.to_owned())
}

/// The member an owner payload names: the payload itself when it is a
/// member's id (pykafka, kafka-node), else the part before Scala's
/// `-<thread>` suffix.
pub(super) fn consumer_of(payload: &str, is_member: impl Fn(&str) -> bool) -> String {
    if is_member(payload) {
        return payload.to_owned();
    }
    match payload.rsplit_once('-') {
        Some((member, thread)) if !thread.is_empty() && thread.bytes().all(|b| b.is_ascii_digit()) => member.to_owned(),
        _ => payload.to_owned(),
    }
}

/// Every member znode, readable or not.
fn members_of(group: &GroupId, read: &GroupRead) -> Vec<MemberInfo> {
    let unreadable: BTreeMap<&str, &str> =
        read.snapshot.unreadable.iter().map(|u| (u.member.as_str(), u.reason.as_str())).collect();
    read.listing
        .members
        .iter()
        .map(|(id, bytes)| {
            let path = format!("{}/{id}", layout::members(group));
            let (flavour, subscription, problem) = match MemberRegistration::decode(&path, bytes) {
                Ok(MemberRegistration::Pykafka { topic }) => ("pykafka", topic.to_string(), None),
                Ok(MemberRegistration::Scala(r)) => ("scala", subscription_text(&r.subscription), None),
                Err(e) => ("unknown", shown(bytes), Some(e.problem.to_string())),
            };
            // Readable, but not usable in this group (the other flavour, a
            // filter that does not compile).
            let problem = problem.or_else(|| unreadable.get(id.as_str()).map(|r| r.to_string()));
            let host = host_of(group, id);
            MemberInfo { id: id.clone(), host, partitions: 0, flavour: flavour.into(), subscription, problem }
        })
        .collect()
}

/// Every group under `/consumers`.
pub async fn list_groups(zk: &ZkClient) -> Result<Vec<GroupSummary>, InspectError> {
    let zk = zk.raw();
    let mut out = Vec::new();
    for name in children(zk, layout::CONSUMERS).await? {
        let Ok(group) = GroupId::new(name.as_str()) else { continue };
        let members = members_of(&group, &read_group(zk, &group).await?);
        let flavour = members.iter().find(|m| m.problem.is_none()).map(|m| m.flavour.clone());
        out.push(GroupSummary { group: name, members: members.len(), flavour });
    }
    Ok(out)
}

/// An owner znode's partition: its name in either layout (they never
/// collide: Scala's is a bare number, pykafka's `<leader>-<partition>`).
pub(super) fn owner_partition(flavour: Flavour, dir: &str, name: &str) -> Option<PartitionId> {
    let other = match flavour {
        Flavour::Pykafka => Flavour::Scala,
        Flavour::Scala => Flavour::Pykafka,
    };
    OwnerName::parse(flavour, dir, name).or_else(|_| OwnerName::parse(other, dir, name)).ok().map(|n| n.partition())
}

/// Owner payloads by partition (the earliest created, when pykafka peers
/// named one partition twice), from every owner directory of the group.
async fn owners(
    zk: &Client,
    group: &GroupId,
    flavour: Flavour,
    problems: &mut Vec<ZnodeProblem>,
) -> Result<BTreeMap<(TopicName, i32), (i64, String)>, InspectError> {
    let mut out: BTreeMap<(TopicName, i32), (i64, String)> = BTreeMap::new();
    let root = layout::owners(group);
    for dir_name in children(zk, &root).await? {
        let dir = format!("{root}/{dir_name}");
        let topic = match TopicSpelling::parse_dir_name(&root, &dir_name) {
            Ok((t, _)) => t,
            Err(e) => {
                problems.push(ZnodeProblem { znode: dir, problem: e.problem.to_string() });
                continue;
            }
        };
        for name in children(zk, &dir).await? {
            let path = format!("{dir}/{name}");
            let Some(p) = owner_partition(flavour, &dir, &name) else {
                let problem = "not an owner znode name of either layout (<partition> or <leader>-<partition>)";
                problems.push(ZnodeProblem { znode: path, problem: problem.into() });
                continue;
            };
            match zk.get_data(&path).await {
                Ok((payload, stat)) => {
                    let entry = out.entry((topic.clone(), p.0)).or_insert((stat.czxid, shown(&payload)));
                    if stat.czxid < entry.0 {
                        *entry = (stat.czxid, shown(&payload));
                    }
                }
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(zk_err("read", &path)(e)),
            }
        }
    }
    Ok(out)
}

pub(super) async fn zk_committed(
    zk: &Client,
    group: &GroupId,
    topic: &TopicName,
    p: PartitionId,
    problems: &mut Vec<ZnodeProblem>,
) -> Result<Option<u64>, InspectError> {
    let path = layout::offset(group, topic, p);
    Ok(match super::data(zk, &path).await? {
        Some(bytes) => match ZkOffset::decode(&path, &bytes) {
            Ok(o) => Some(o.0),
            Err(e) => {
                problems.push(ZnodeProblem { znode: path, problem: e.problem.to_string() });
                None
            }
        },
        None => None,
    })
}

/// Describes `group`: members, every partition of its topics with owner,
/// committed offset (from `storage`; the larger in dual mode), log end and
/// lag, and the znodes that cannot be used. `kafka` is needed for
/// Kafka-stored offsets and log ends. The topics shown are those the
/// members subscribe to, own or have ZooKeeper offsets for, and `topics`:
/// a group without members that commits to Kafka leaves no trace of its
/// topics in ZooKeeper, so they are named.
///
/// # Errors
/// [`InspectError::UnknownGroup`] without `/consumers/<group>`;
/// [`InspectError::ZooKeeper`] or [`InspectError::Kafka`] when a request
/// fails. A damaged znode is never an error: it is listed in
/// [`GroupDescription::problems`].
pub async fn describe_group(
    zk: &ZkClient,
    group: &str,
    storage: OffsetStorage,
    kafka: Option<&KafkaSide>,
    topics: &[String],
) -> Result<GroupDescription, InspectError> {
    let named: Vec<TopicName> = topics
        .iter()
        .map(|t| TopicName::new(t.as_str()).map_err(|e| InspectError::BadName(e.to_string())))
        .collect::<Result<_, _>>()?;
    let zk = zk.raw();
    let g = group_id(group)?;
    require_group(zk, &g).await?;
    let read = read_group(zk, &g).await?;
    let members = members_of(&g, &read);
    let mut problems: Vec<ZnodeProblem> =
        read.skipped.iter().map(|s| ZnodeProblem { znode: s.path().to_owned(), problem: s.to_string() }).collect();
    problems.extend(
        read.snapshot.unreadable.iter().map(|u| ZnodeProblem { znode: u.path.clone(), problem: u.reason.clone() }),
    );
    let owners = owners(zk, &g, read.flavour, &mut problems).await?;
    let view = cluster::read_all(zk).await?;
    let mut topics: BTreeSet<TopicName> =
        read.snapshot.shape.members.values().flat_map(|s| s.keys().cloned()).collect();
    topics.extend(owners.keys().map(|(t, _)| t.clone()));
    if let Some(t) = named.iter().find(|t| !view.topics.contains_key(*t)) {
        return Err(InspectError::UnknownTopic(t.to_string()));
    }
    topics.extend(named);
    let offsets_dir = format!("{}/offsets", layout::group(&g));
    for child in children(zk, &offsets_dir).await? {
        if let Ok((t, _)) = TopicSpelling::parse_dir_name(&offsets_dir, &child) {
            topics.insert(t);
        }
    }
    // A group that left no trace of its topics in ZooKeeper (no member,
    // owner or ZooKeeper offset: pykafka commits to Kafka) is looked for in
    // Kafka, one request per topic of the cluster.
    let mut kafka_unavailable = None;
    let mut kafka = kafka;
    if let (true, Some(k), false) = (topics.is_empty(), kafka, storage == OffsetStorage::Zookeeper) {
        for (topic, parts) in &view.topics {
            let ps: Vec<i32> = parts.keys().map(|p| p.0).collect();
            match k.has_committed(topic.as_str(), &ps).await {
                Ok(true) => {
                    topics.insert(topic.clone());
                }
                Ok(false) => {}
                Err(e) => {
                    kafka_unavailable = Some(e.to_string());
                    kafka = None;
                    break;
                }
            }
        }
    }
    for ((topic, p), (_, payload)) in &owners {
        let exists = view.topics.get(topic).is_some_and(|ps| ps.contains_key(&PartitionId(*p)));
        if !exists {
            problems.push(ZnodeProblem {
                znode: format!("{}/{topic}/{p}", layout::owners(&g)),
                problem: format!("owned (by {payload:?}), but {topic} has no partition {p}"),
            });
        }
    }
    let mut members = members;
    let mut partitions = Vec::new();
    // The first Kafka request that fails turns Kafka off for the rest: one
    // timeout, not one per partition.
    for topic in topics.iter().filter(|t| view.topics.contains_key(*t)) {
        for p in view.topics[topic].keys() {
            let from_zk = match storage {
                OffsetStorage::Kafka => None,
                _ => zk_committed(zk, &g, topic, *p, &mut problems).await?,
            };
            let (mut from_kafka, mut log_end) = (None, None);
            if let Some(k) = kafka {
                let asked = async {
                    let committed = match storage {
                        OffsetStorage::Zookeeper => None,
                        _ => k.committed(topic.as_str(), p.0).await?,
                    };
                    Ok::<_, InspectError>((committed, k.watermarks(topic.as_str(), p.0).await?.1))
                };
                match asked.await {
                    Ok((c, end)) => (from_kafka, log_end) = (c, Some(end)),
                    Err(e) => {
                        kafka_unavailable = Some(e.to_string());
                        kafka = None;
                    }
                }
            }
            let committed = from_zk.max(from_kafka);
            let owner = owners.get(&(topic.clone(), p.0)).map(|(_, payload)| payload.clone());
            let consumer_id = owner.as_deref().map(|o| consumer_of(o, |id| members.iter().any(|m| m.id == id)));
            if let Some(m) = members.iter_mut().find(|m| Some(&m.id) == consumer_id.as_ref()) {
                m.partitions += 1;
            }
            partitions.push(PartitionRow {
                topic: topic.to_string(),
                partition: p.0,
                host: consumer_id.as_deref().and_then(|c| host_of(&g, c)),
                owner,
                consumer_id,
                committed,
                log_end,
                lag: log_end.zip(committed).map(|(e, c)| e.saturating_sub(c)),
            });
        }
    }
    problems.sort();
    problems.dedup();
    Ok(GroupDescription { group: group.to_owned(), members, partitions, problems, kafka_unavailable })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_from_the_ids_that_name_them() {
        let g = GroupId::new("orders").unwrap();
        assert_eq!(host_of(&g, "web-1:5e6f7a1c-1d2b-4c3d-9e8f-0a1b2c3d4e5f").as_deref(), Some("web-1"), "pykafka");
        assert_eq!(host_of(&g, "orders_db-2.dc-1700000000000-0a1b2c3d").as_deref(), Some("db-2.dc"), "Scala");
        assert_eq!(host_of(&g, "orders_5e6f7a1c-1d2b-4c3d-9e8f-0a1b2c3d4e5f"), None, "kafka-node names none");
        assert_eq!(host_of(&g, "static-id"), None);
        assert_eq!(host_of(&g, "web:not-a-uuid"), None);
        assert_eq!(host_of(&g, "other_db-1700000000000-0a1b2c3d"), None, "another group's id");
    }

    #[test]
    fn owner_payloads_name_their_member() {
        let members = ["orders_db-1-0a1b2c3d", "kn_peer", "a-7"];
        let is_member = |id: &str| members.contains(&id);
        assert_eq!(consumer_of("orders_db-1-0a1b2c3d-0", is_member), "orders_db-1-0a1b2c3d", "Scala's thread suffix");
        assert_eq!(consumer_of("kn_peer", is_member), "kn_peer", "kafka-node's bare id");
        assert_eq!(consumer_of("a-7", is_member), "a-7", "a member id that looks like a thread suffix");
        assert_eq!(consumer_of("gone-3", is_member), "gone", "a member no longer registered");
        assert_eq!(consumer_of("who", is_member), "who");
    }
}
