//! Looking at groups from outside: members, owners, committed offsets, log
//! end offsets and lag — and resetting committed offsets. What `zkbc group`
//! and `zkbc offsets` print, usable from code too.
//!
//! Whatever a group holds is shown: znodes that cannot be used (a member
//! registration nobody can read, an owner znode named or filled by another
//! client's rules, one for a partition that does not exist) are listed with
//! the reason, beside the rest of the table, never instead of it.

mod delete;
mod describe;
mod reset;
mod watch;

pub use delete::{delete_group, Deleted};
pub use describe::{
    describe_group, list_groups, GroupDescription, GroupSummary, MemberInfo, PartitionRow, ZnodeProblem,
};
pub use reset::{apply_reset, plan_reset, PlanRow, ResetPlan, ResetTarget, TopicSelection};
pub use watch::{watch_group, GroupChange, GroupWatch};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use zookeeper_client::{Client, Error as ZkError};

use crate::cluster::{self, ClusterView};
use crate::coord::zk::call as zk_call;
use crate::coord::zk::Watching;
use crate::coord::{CoordError, ZkClient};
use crate::ids::GroupId;
use crate::kafka::{ClientSettings, KafkaClient};
use crate::kafka_access::KafkaAccess;
use crate::protocol::{GroupRead, ReadGroup};
use crate::znode::{layout, ZnodeError};

/// Why an inspection failed.
#[derive(Debug, Error)]
pub enum InspectError {
    /// Connecting failed (unreachable, bad chroot).
    #[error(transparent)]
    Connect(#[from] CoordError),
    /// No `/consumers/<group>`.
    #[error("group {0} does not exist (no /consumers/{0} in ZooKeeper)")]
    UnknownGroup(String),
    /// No `/brokers/topics/<topic>`.
    #[error("topic {0} does not exist (no /brokers/topics/{0} in ZooKeeper)")]
    UnknownTopic(String),
    /// A znode of the group or cluster does not parse.
    #[error(transparent)]
    Malformed(#[from] ZnodeError),
    /// A name given is not a legal group or topic name.
    #[error("{0}")]
    BadName(String),
    /// ZooKeeper failed a request.
    #[error(transparent)]
    ZooKeeper(#[from] crate::zk_call::ZkCallError),
    /// Kafka failed a request, or no broker is registered.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// Members are active: resetting or deleting would race them.
    #[error("group {group} has {members} active member(s); stop them first{}", if *forceable { " or pass --force" } else { "" })]
    Active {
        /// Whether `--force` would go ahead anyway.
        forceable: bool,
        /// The group.
        group: String,
        /// How many.
        members: usize,
    },
}

fn zk_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(ZkError) -> InspectError + 'a {
    move |source| zk_call(op, path)(source).into()
}

/// Connects within `timeout`, as `access` says, and checks the chroot
/// exists: [`ZkClient::connect`].
///
/// # Errors
/// [`InspectError::Connect`] with [`CoordError::Unreachable`],
/// [`CoordError::AuthFailed`] (credentials refused, TLS handshake failed)
/// or [`CoordError::BadChroot`].
///
/// [`CoordError::Unreachable`]: crate::coord::CoordError::Unreachable
/// [`CoordError::AuthFailed`]: crate::coord::CoordError::AuthFailed
/// [`CoordError::BadChroot`]: crate::coord::CoordError::BadChroot
pub async fn connect(
    connect: &str,
    access: &crate::coord::ZkAccess,
    timeout: Duration,
) -> Result<ZkClient, InspectError> {
    Ok(ZkClient::connect(connect, access, timeout).await?)
}

async fn children(zk: &Client, path: &str) -> Result<Vec<String>, InspectError> {
    Ok(cluster::children(zk, path).await?)
}

async fn data(zk: &Client, path: &str) -> Result<Option<Vec<u8>>, InspectError> {
    Ok(cluster::get(zk, path).await?)
}

fn group_id(group: &str) -> Result<GroupId, InspectError> {
    GroupId::new(group).map_err(|e| InspectError::BadName(e.to_string()))
}

/// The group as the protocol reads it from outside (no watches; the
/// flavour as its members' registrations tell).
async fn read_group(zk: &Client, group: &GroupId) -> Result<GroupRead, InspectError> {
    Ok(crate::coord::zk::run(zk, ReadGroup::inspect(group.clone()), Watching::Off).await?)
}

async fn require_group(zk: &Client, group: &GroupId) -> Result<(), InspectError> {
    let path = layout::group(group);
    match zk.check_stat(&path).await.map_err(zk_err("stat", &path))? {
        Some(_) => Ok(()),
        None => Err(InspectError::UnknownGroup(group.to_string())),
    }
}

/// Reads and writes Kafka-stored offsets and log ends for one group.
pub struct KafkaSide {
    client: Arc<KafkaClient>,
    timeout: Duration,
}

fn kafka_err(e: rdkafka::error::KafkaError) -> InspectError {
    InspectError::Kafka(e.to_string())
}

impl KafkaSide {
    /// A client for `group`, bootstrapped as `access` says: given brokers,
    /// or the registered brokers in `view` (their endpoints of the wanted
    /// listener), with `access`'s librdkafka properties.
    ///
    /// # Errors
    /// [`InspectError::Kafka`] when no broker is registered, none offers
    /// the wanted listener, or librdkafka refuses the properties.
    pub fn new(view: &ClusterView, group: &str, timeout: Duration, access: &KafkaAccess) -> Result<Self, InspectError> {
        let servers = access
            .bootstrap(view)
            .map_err(|e| InspectError::Kafka(e.to_string()))?
            .ok_or_else(|| InspectError::Kafka("no broker is registered in ZooKeeper".into()))?;
        let mut overrides = vec![("log_level".to_owned(), "3".to_owned())];
        overrides.extend(access.properties.iter().cloned());
        let settings = ClientSettings {
            bootstrap: servers,
            group: group_id(group)?,
            reset: crate::offsets::OffsetReset::Earliest,
            overrides,
        };
        let (client, _) = crate::kafka::client(&settings, None).map_err(kafka_err)?;
        Ok(KafkaSide { client: Arc::new(client), timeout })
    }

    /// (low, high) watermarks of a partition.
    pub async fn watermarks(&self, topic: &str, partition: i32) -> Result<(u64, u64), InspectError> {
        crate::kafka::watermarks(&self.client, topic, partition, self.timeout).await.map_err(kafka_err)
    }

    /// The committed offset of a partition, if any.
    pub async fn committed(&self, topic: &str, partition: i32) -> Result<Option<u64>, InspectError> {
        crate::kafka::committed(&self.client, topic, partition, self.timeout).await.map_err(kafka_err)
    }

    /// Whether the group has an offset committed to Kafka for any of these
    /// partitions of `topic` (one request).
    pub async fn has_committed(&self, topic: &str, partitions: &[i32]) -> Result<bool, InspectError> {
        let got =
            crate::kafka::committed_all(&self.client, topic, partitions, self.timeout).await.map_err(kafka_err)?;
        Ok(!got.is_empty())
    }

    /// The first offset at or after `timestamp_ms`, or the log end.
    pub async fn offset_for_time(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<u64>, InspectError> {
        crate::kafka::offset_for_time(&self.client, topic, partition, timestamp_ms, self.timeout)
            .await
            .map_err(kafka_err)
    }

    /// Commits `offsets` (next to consume) for the group.
    pub async fn commit(&self, topic: &str, offsets: &BTreeMap<i32, u64>) -> Result<(), InspectError> {
        let offsets: Vec<(i32, u64)> = offsets.iter().map(|(p, o)| (*p, *o)).collect();
        crate::kafka::commit(&self.client, topic, &offsets).await.map_err(kafka_err)
    }
}
