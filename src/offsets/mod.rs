//! Offsets: per-partition acknowledgement tracking ([`AckWindow`]) and the
//! committers — ZooKeeper (the Scala layout, `/consumers/<g>/offsets/<t>/<p>`),
//! Kafka (OffsetCommit with the group id, as pykafka does), or both.
//!
//! Every commit is fenced: it runs only in the ZooKeeper session that
//! claimed the partition, and a ZooKeeper commit is one transaction with a
//! check of the owner znode, so a member that lost a partition can never
//! move its committed offset.

mod kafka;
mod window;
mod zk;

use std::str::FromStr;

use thiserror::Error;

pub use window::{AckWindow, WindowError};

pub(crate) use kafka::KafkaOffsets;
pub(crate) use zk::{Sessions, ZkOffsets};

use crate::ids::TopicPartition;
use crate::znode::ZnodeError;

/// Where committed offsets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetStorage {
    /// `/consumers/<group>/offsets/<topic>/<partition>`: the Scala
    /// consumer's default (`offsets.storage=zookeeper`).
    Zookeeper,
    /// Kafka's offset store, through OffsetCommit with the group id:
    /// pykafka's only store.
    Kafka,
    /// Both written, the larger read: the Scala consumer's
    /// `dual.commit.enabled`, for migrating between the two.
    Dual,
}

impl FromStr for OffsetStorage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zookeeper" => Ok(OffsetStorage::Zookeeper),
            "kafka" => Ok(OffsetStorage::Kafka),
            "dual" => Ok(OffsetStorage::Dual),
            other => Err(format!("unknown offset storage {other:?} (zookeeper, kafka or dual)")),
        }
    }
}

/// Where to start a partition with no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The oldest retained message (pykafka's default).
    Earliest,
    /// Only messages produced from now on (the Scala consumer's default).
    Latest,
    /// Don't guess: report [`OffsetError::NoCommittedOffset`] and leave the
    /// partition unconsumed.
    Error,
}

impl FromStr for OffsetReset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" | "smallest" => Ok(OffsetReset::Earliest),
            "latest" | "largest" => Ok(OffsetReset::Latest),
            "error" | "none" => Ok(OffsetReset::Error),
            other => Err(format!("unknown offset reset {other:?} (earliest, latest or error)")),
        }
    }
}

/// Why reading or committing an offset failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OffsetError {
    /// The partition is no longer ours in the session that claimed it: the
    /// commit was refused so it cannot overwrite the new owner's progress.
    #[error("commit of {tp} fenced: the partition is no longer owned in the session that claimed it")]
    Fenced {
        /// The partition.
        tp: TopicPartition,
    },
    /// No committed offset and the reset policy is `error`.
    #[error("{tp} has no committed offset and the reset policy is `error`")]
    NoCommittedOffset {
        /// The partition.
        tp: TopicPartition,
    },
    /// The offset znode holds something else than a decimal offset.
    #[error(transparent)]
    Malformed(Box<ZnodeError>),
    /// ZooKeeper refused or failed a request.
    #[error(transparent)]
    ZooKeeper(#[from] crate::zk_call::ZkCallError),
    /// Kafka refused or failed a request, or did not answer in time.
    #[error("Kafka {op} for {tp}: {reason}")]
    Kafka {
        /// What was being done.
        op: &'static str,
        /// The partition.
        tp: TopicPartition,
        /// librdkafka's description (kept as text: its error type is not
        /// part of this crate's API).
        reason: String,
    },
}

impl From<ZnodeError> for OffsetError {
    fn from(e: ZnodeError) -> Self {
        OffsetError::Malformed(Box::new(e))
    }
}

/// The committers of one consumer, by storage mode.
#[derive(Clone)]
pub(crate) struct Committer {
    pub storage: OffsetStorage,
    pub zk: ZkOffsets,
    pub kafka: KafkaOffsets,
}

impl Committer {
    /// The committed offset (next to consume); the larger one in dual mode.
    pub async fn read(&self, tp: &TopicPartition) -> Result<Option<u64>, OffsetError> {
        match self.storage {
            OffsetStorage::Zookeeper => self.zk.read(tp).await,
            OffsetStorage::Kafka => self.kafka.read(tp).await,
            OffsetStorage::Dual => {
                let (z, k) = (self.zk.read(tp).await?, self.kafka.read(tp).await?);
                Ok(z.max(k))
            }
        }
    }

    /// Commits `offset` as the next to consume of `tp`, fenced by the lease.
    pub async fn commit(
        &self,
        fence: &crate::coord::Fence,
        tp: &TopicPartition,
        offset: u64,
    ) -> Result<(), OffsetError> {
        match self.storage {
            OffsetStorage::Zookeeper => self.zk.commit(fence, tp, offset).await,
            OffsetStorage::Kafka => {
                self.zk.check_session(fence, tp)?;
                self.kafka.commit(tp, offset).await
            }
            OffsetStorage::Dual => {
                // ZooKeeper first: its transaction is the fence.
                self.zk.commit(fence, tp, offset).await?;
                self.kafka.commit(tp, offset).await
            }
        }
    }
}
