//! Moving a group's committed offsets the way kafka-consumer-groups does: a
//! plan first (where each chosen partition would move, from where), and
//! only on request the change itself, refused while members are active.

use std::collections::BTreeMap;

use serde::Serialize;
use zookeeper_client::{Acls, CreateMode, Error as ZkError};

use super::describe::zk_committed;
use super::{children, group_id, require_group, zk_err, InspectError, KafkaSide};
use crate::cluster;
use crate::coord::ZkClient;
use crate::ids::{GroupId, PartitionId, TopicName};
use crate::offsets::OffsetStorage;
use crate::znode::{layout, Codec, ZkOffset};

/// Where the chosen partitions move. Every new offset is clamped to the
/// partition's retained range, as a consumer would clamp it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetTarget {
    /// The oldest retained offset.
    Earliest,
    /// The log end.
    Latest,
    /// An explicit offset.
    Offset(u64),
    /// The first message at or after a time, ms since the epoch (the log
    /// end when there is none).
    Timestamp(i64),
    /// The committed offset moved by this many (negative: back); a
    /// partition without one counts from the oldest retained offset.
    ShiftBy(i64),
    /// The committed offset as it is (for `--export`); a partition without
    /// one gets the oldest retained offset.
    Current,
    /// Explicit offsets per partition (`--from-file`); the selection is the
    /// file's partitions.
    Given(BTreeMap<(String, i32), u64>),
}

/// A topic to reset, and which of its partitions (`None`: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSelection {
    /// The topic.
    pub topic: String,
    /// Its partitions to reset; `None` for every partition.
    pub partitions: Option<Vec<i32>>,
}

/// One partition of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PlanRow {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The committed offset now, if any.
    pub current: Option<u64>,
    /// Where it would move.
    pub new: u64,
}

/// What a reset would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ResetPlan {
    /// The group.
    pub group: String,
    /// Every chosen partition, in topic and partition order.
    pub rows: Vec<PlanRow>,
    /// Members registered when the plan was made (an applied reset would
    /// race them).
    pub active_members: usize,
}

/// Computes where a reset of `selection` to `target` moves `group`'s
/// committed offsets (read from `storage`; the larger in dual mode),
/// changing nothing.
///
/// # Errors
/// [`InspectError::UnknownGroup`], [`InspectError::UnknownTopic`],
/// [`InspectError::BadName`] for a partition the topic does not have,
/// [`InspectError::Kafka`] when the watermarks cannot be read.
pub async fn plan_reset(
    zk: &ZkClient,
    kafka: &KafkaSide,
    group: &str,
    selection: &[TopicSelection],
    target: &ResetTarget,
    storage: OffsetStorage,
) -> Result<ResetPlan, InspectError> {
    let zk = zk.raw();
    let g = group_id(group)?;
    require_group(zk, &g).await?;
    let view = cluster::read_all(zk).await?;
    let given = match target {
        ResetTarget::Given(offsets) => {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (t, p) in offsets.keys() {
                by_topic.entry(t.clone()).or_default().push(*p);
            }
            by_topic.into_iter().map(|(topic, ps)| TopicSelection { topic, partitions: Some(ps) }).collect()
        }
        _ => selection.to_vec(),
    };
    let mut rows = Vec::new();
    for sel in &given {
        let t = TopicName::new(sel.topic.as_str()).map_err(|e| InspectError::BadName(e.to_string()))?;
        let parts = view.topics.get(&t).ok_or_else(|| InspectError::UnknownTopic(sel.topic.clone()))?;
        let chosen: Vec<i32> = match &sel.partitions {
            None => parts.keys().map(|p| p.0).collect(),
            Some(ps) => {
                if let Some(p) = ps.iter().find(|p| !parts.contains_key(&PartitionId(**p))) {
                    return Err(InspectError::BadName(format!("topic {t} has no partition {p}")));
                }
                let mut ps = ps.clone();
                ps.sort_unstable();
                ps.dedup();
                ps
            }
        };
        for p in chosen {
            let current = current(zk, kafka, &g, &t, p, storage).await?;
            let (lo, hi) = kafka.watermarks(t.as_str(), p).await?;
            let new = match target {
                ResetTarget::Earliest => lo,
                ResetTarget::Latest => hi,
                ResetTarget::Offset(o) => *o,
                ResetTarget::Timestamp(ts) => kafka.offset_for_time(t.as_str(), p, *ts).await?.unwrap_or(hi),
                ResetTarget::ShiftBy(n) => current.unwrap_or(lo).saturating_add_signed(*n),
                ResetTarget::Current => current.unwrap_or(lo),
                ResetTarget::Given(offsets) => offsets[&(sel.topic.clone(), p)],
            };
            rows.push(PlanRow { topic: t.to_string(), partition: p, current, new: new.clamp(lo, hi) });
        }
    }
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let active_members = children(zk, &layout::members(&g)).await?.len();
    Ok(ResetPlan { group: group.to_owned(), rows, active_members })
}

/// The committed offset of one partition, as `storage` keeps it.
async fn current(
    zk: &zookeeper_client::Client,
    kafka: &KafkaSide,
    g: &GroupId,
    t: &TopicName,
    p: i32,
    storage: OffsetStorage,
) -> Result<Option<u64>, InspectError> {
    // A malformed offset znode counts as none: the reset overwrites it.
    let from_zk = match storage {
        OffsetStorage::Kafka => None,
        _ => zk_committed(zk, g, t, PartitionId(p), &mut Vec::new()).await?,
    };
    let from_kafka = match storage {
        OffsetStorage::Zookeeper => None,
        _ => kafka.committed(t.as_str(), p).await?,
    };
    Ok(from_zk.max(from_kafka))
}

/// Writes a plan's offsets to `storage` (both stores in dual mode).
/// Refuses while members are registered unless `force`: a live member
/// would commit over the reset.
///
/// # Errors
/// [`InspectError::Active`] while members are registered and not `force`;
/// [`InspectError::ZooKeeper`] or [`InspectError::Kafka`] when a write
/// fails (the partitions before it are written).
pub async fn apply_reset(
    zk: &ZkClient,
    kafka: &KafkaSide,
    plan: &ResetPlan,
    storage: OffsetStorage,
    force: bool,
) -> Result<(), InspectError> {
    let zk = zk.raw();
    let g = group_id(&plan.group)?;
    let active = children(zk, &layout::members(&g)).await?.len();
    if active > 0 && !force {
        return Err(InspectError::Active { forceable: true, group: plan.group.clone(), members: active });
    }
    let mut by_topic: BTreeMap<&str, BTreeMap<i32, u64>> = BTreeMap::new();
    for row in &plan.rows {
        by_topic.entry(row.topic.as_str()).or_default().insert(row.partition, row.new);
    }
    for (topic, offsets) in &by_topic {
        let t = TopicName::new(*topic).map_err(|e| InspectError::BadName(e.to_string()))?;
        if storage != OffsetStorage::Kafka {
            let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
            let dir = layout::offsets_dir(&g, &t);
            zk.mkdir(&dir, &persistent).await.map_err(zk_err("mkdir", &dir))?;
            for (p, o) in offsets {
                let path = layout::offset(&g, &t, PartitionId(*p));
                let payload = ZkOffset(*o).encode();
                match zk.set_data(&path, &payload, None).await {
                    Ok(_) => {}
                    Err(ZkError::NoNode) => {
                        zk.create(&path, &payload, &persistent).await.map_err(zk_err("create", &path))?;
                    }
                    Err(e) => return Err(zk_err("set", &path)(e)),
                }
            }
        }
        if storage != OffsetStorage::Zookeeper {
            kafka.commit(topic, offsets).await?;
        }
    }
    Ok(())
}
