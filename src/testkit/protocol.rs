//! The line-delimited JSON control protocol between the testkit and the
//! `zkbalance-mock-kafka` process, and the deterministic test data it makes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One command to the mock cluster process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create a topic.
    CreateTopic {
        /// Name.
        topic: String,
        /// Partition count.
        partitions: i32,
        /// Replicas per partition.
        replication_factor: i32,
    },
    /// Produce explicit records and wait until all are acknowledged.
    Produce {
        /// Topic.
        topic: String,
        /// The records.
        records: Vec<Record>,
    },
    /// Produce `count` generated records (see [`generated_value`]) with
    /// sequence numbers from `first_seq`, record `s` to partition
    /// `s % partitions`.
    ProduceGenerated {
        /// Topic.
        topic: String,
        /// First sequence number.
        first_seq: u64,
        /// How many.
        count: u64,
        /// Value size in bytes.
        value_size: usize,
    },
    /// Brokers, topics, partitions, leaders, replicas and ISRs.
    Metadata,
    /// Take a broker down.
    BrokerDown {
        /// Which.
        broker: i32,
    },
    /// Bring a broker back.
    BrokerUp {
        /// Which.
        broker: i32,
    },
    /// Move a partition's leadership.
    SetLeader {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// New leader.
        broker: i32,
    },
}

/// One record to produce.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Target partition.
    pub partition: i32,
    /// Key, if any.
    pub key: Option<String>,
    /// Value.
    pub value: String,
}

/// A broker as the mock advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Broker id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
}

/// One partition as the mock reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Partition id.
    pub id: i32,
    /// Leader broker id (-1: none).
    pub leader: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
}

/// What the mock answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Sent once at start.
    Ready {
        /// `host:port,...` of every broker.
        bootstrap: String,
        /// Every broker.
        brokers: Vec<BrokerInfo>,
    },
    /// The command took effect.
    Done,
    /// Records were acknowledged: count per partition, and the offset of the
    /// last record per partition.
    Produced {
        /// `(partition, count)`; pairs, not a map, because integer map keys
        /// do not survive serde's internally tagged enums.
        counts: Vec<(i32, u64)>,
        /// `(partition, offset of its last record)`.
        last_offsets: Vec<(i32, i64)>,
    },
    /// Metadata.
    Metadata {
        /// Brokers.
        brokers: Vec<BrokerInfo>,
        /// Topic → partitions.
        topics: BTreeMap<String, Vec<PartitionInfo>>,
    },
    /// The command failed.
    Error {
        /// Why.
        message: String,
    },
}

/// The value of generated record `seq` of `topic`: `"<topic>:<seq>"` padded
/// with `.` to `size` bytes (never truncated). Its key is `seq` in decimal.
pub fn generated_value(topic: &str, seq: u64, size: usize) -> String {
    let mut v = format!("{topic}:{seq}");
    if v.len() < size {
        v.extend(std::iter::repeat_n('.', size - v.len()));
    }
    v
}

/// Reads a generated value back into its sequence number.
pub fn parse_generated_value(topic: &str, value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let rest = text.strip_prefix(topic)?.strip_prefix(':')?;
    rest.trim_end_matches('.').parse().ok()
}
