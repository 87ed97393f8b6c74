//! `/brokers/topics/<t>` (replica assignment) and
//! `/brokers/topics/<t>/partitions/<p>/state` (leader and ISR).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::ids::{BrokerId, PartitionId};

use super::error::{bad_field, Problem};
use super::json::{self, Object};
use super::Codec;

/// Partition → replica list.
pub type ReplicaAssignment = BTreeMap<PartitionId, Vec<BrokerId>>;

/// A topic's replica assignment, versions 1–3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRegistration {
    /// Format version.
    pub version: i32,
    /// Replicas of every partition; the partition list is its keys.
    pub partitions: ReplicaAssignment,
    /// v2+: replicas being added by a reassignment.
    pub adding_replicas: ReplicaAssignment,
    /// v2+: replicas being removed by a reassignment.
    pub removing_replicas: ReplicaAssignment,
    /// v3+: the topic's id.
    pub topic_id: Option<String>,
}

impl TopicRegistration {
    /// The topic's partitions, ascending.
    pub fn partition_ids(&self) -> impl Iterator<Item = PartitionId> + '_ {
        self.partitions.keys().copied()
    }
}

fn decode_assignment(obj: &Object, field: &'static str) -> Result<ReplicaAssignment, Problem> {
    json::object_field(obj, field)?
        .iter()
        .map(|(p, replicas)| {
            let id = json::parse_canonical_i32(p, false)
                .ok_or_else(|| bad_field(field, format!("partition key {p:?} is not a non-negative integer")))?;
            Ok((PartitionId(id), json::broker_list(replicas, field)?))
        })
        .collect()
}

fn encode_assignment(a: &ReplicaAssignment) -> Value {
    let m: Map<String, Value> =
        a.iter().map(|(p, rs)| (p.to_string(), Value::Array(rs.iter().map(|b| json!(b.0)).collect()))).collect();
    Value::Object(m)
}

impl Codec for TopicRegistration {
    fn decode_payload(bytes: &[u8]) -> Result<Self, Problem> {
        let obj = json::parse_object(bytes)?;
        let version = json::i32_field(&obj, "version", 1)?;
        let optional =
            |field| if obj.contains_key(field) { decode_assignment(&obj, field) } else { Ok(BTreeMap::new()) };
        let topic_id = match obj.get("topic_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(bad_field("topic_id", format!("expected a string, found {}", json::kind(v)))),
        };
        Ok(TopicRegistration {
            version,
            partitions: decode_assignment(&obj, "partitions")?,
            adding_replicas: optional("adding_replicas")?,
            removing_replicas: optional("removing_replicas")?,
            topic_id,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("version".into(), json!(self.version));
        m.insert("partitions".into(), encode_assignment(&self.partitions));
        // Written when the version requires them or they have content, so
        // nothing read is lost on a round trip.
        if self.version >= 2 || !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty() {
            m.insert("adding_replicas".into(), encode_assignment(&self.adding_replicas));
            m.insert("removing_replicas".into(), encode_assignment(&self.removing_replicas));
        }
        if let Some(id) = &self.topic_id {
            m.insert("topic_id".into(), Value::String(id.clone()));
        }
        serde_json::to_vec(&Value::Object(m)).expect("a JSON value always serializes")
    }
}

/// A partition's leader and in-sync replicas, as the controller writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Format version.
    pub version: i32,
    /// The leader, `None` when the controller wrote `-1` (no leader).
    pub leader: Option<BrokerId>,
    /// Bumped at every leader change.
    pub leader_epoch: i32,
    /// Epoch of the controller that wrote this.
    pub controller_epoch: i32,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
}

impl Codec for PartitionState {
    fn decode_payload(bytes: &[u8]) -> Result<Self, Problem> {
        let obj = json::parse_object(bytes)?;
        let leader = json::i32_field(&obj, "leader", -1)?;
        Ok(PartitionState {
            version: json::i32_field(&obj, "version", 1)?,
            leader: (leader >= 0).then_some(BrokerId(leader)),
            leader_epoch: json::i32_field(&obj, "leader_epoch", 0)?,
            controller_epoch: json::i32_field(&obj, "controller_epoch", 0)?,
            isr: json::broker_list(json::required(&obj, "isr")?, "isr")?,
        })
    }

    /// Keys in the order Kafka's controller writes them.
    fn encode(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("controller_epoch".into(), json!(self.controller_epoch));
        m.insert("leader".into(), json!(self.leader.map_or(-1, |b| b.0)));
        m.insert("version".into(), json!(self.version));
        m.insert("leader_epoch".into(), json!(self.leader_epoch));
        m.insert("isr".into(), Value::Array(self.isr.iter().map(|b| json!(b.0)).collect()));
        serde_json::to_vec(&Value::Object(m)).expect("a JSON value always serializes")
    }
}
