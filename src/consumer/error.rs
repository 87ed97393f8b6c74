//! Why the consumer could not start, commit or stop (what goes wrong while
//! it consumes is a [`ConsumeError`](super::ConsumeError), handed over by
//! `recv`).

use thiserror::Error;

use crate::balance::ConfigError;
use crate::coord::CoordError;
use crate::offsets::OffsetError;

/// Why the consumer could not start, commit or stop.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Joining or leaving the group failed.
    #[error(transparent)]
    Group(#[from] CoordError),
    /// A topic is not registered in ZooKeeper.
    #[error("topic {topic} does not exist (no /brokers/topics/{topic} in ZooKeeper)")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// No broker is registered in ZooKeeper and none was given.
    #[error("no Kafka broker is registered in ZooKeeper at {connect}")]
    NoBrokers {
        /// The connect string.
        connect: String,
    },
    /// No registered broker offers the wanted listener (by name, or by
    /// the `security.protocol` configured).
    #[error(transparent)]
    NoListener(crate::kafka_access::NoListener),
    /// A ZooKeeper request failed (reading the cluster, at start).
    #[error(transparent)]
    ZooKeeper(#[from] crate::zk_call::ZkCallError),
    /// The partition is not owned by this member (or is being handed over).
    #[error("{partition} is not owned by this member")]
    NotOwned {
        /// The partition.
        partition: crate::ids::TopicPartition,
    },
    /// The Kafka client could not be created (librdkafka refused a
    /// property, most often); librdkafka's description.
    #[error("creating the Kafka client: {0}")]
    Kafka(String),
    /// A commit failed.
    #[error(transparent)]
    Offset(#[from] OffsetError),
    /// The fetch thread could not be started.
    #[error("starting the fetch thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The blocking consumer's runtime could not be started.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// [`BlockingConsumer::start`](super::BlockingConsumer::start) was called from async code, where it
    /// would block a runtime worker (use [`BalancedConsumer`](super::BalancedConsumer) there).
    #[error("the blocking consumer cannot start inside an async runtime; use BalancedConsumer there")]
    InsideRuntime,
}
