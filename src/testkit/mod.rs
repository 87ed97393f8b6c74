//! Test support: a private, real ZooKeeper and a mock Kafka cluster registered
//! in it exactly as ZooKeeper-mode brokers register themselves.
//!
//! Enabled by the `testkit` feature. Used by the integration tests, the demo
//! and the benchmarks. Nothing here is a fake: the ZooKeeper is the Debian
//! package's server, and Kafka is librdkafka's mock cluster, a real
//! wire-protocol server, running in a process of its own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), zkbalance::testkit::TestkitError> {
//! use zkbalance::testkit::{KafkaCluster, ZooKeeper};
//!
//! let zk = ZooKeeper::standalone().await?;
//! let mut kafka = KafkaCluster::start(&zk.connect_string(), 3).await?;
//! kafka.create_topic("orders", 12, 2).await?;
//! kafka.produce_generated("orders", 1000, 100).await?;
//! # Ok(()) }
//! ```

pub mod chaos;
mod kafka;
mod link;
pub mod peer;
mod process;
pub mod protocol;
mod secure;
mod session;
mod zookeeper;

use std::time::Duration;

use thiserror::Error;

pub use kafka::{find_binary, KafkaCluster, PartitionModel, ProduceSummary, BINARY_ENV};
pub use link::ZkLink;
pub use process::{orphans, sweep_orphans, Supervised, OWNER_MARKER};
pub use secure::{ServerSecurity, TestCerts};
pub use session::{connect, connect_with, wait_until};
pub use zookeeper::{server_mode, Mode, ZooKeeper};

/// Why a testkit operation failed. Each says what to do about it.
#[derive(Debug, Error)]
pub enum TestkitError {
    /// The Debian package is missing.
    #[error("ZooKeeper is not installed ({jar} is missing): run `apt-get install -y zookeeper`")]
    ZooKeeperNotInstalled {
        /// The jar looked for.
        jar: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A process did not become ready.
    #[error("{what} {why}; last log lines:\n{log_tail}")]
    NotReady {
        /// Which process.
        what: String,
        /// What happened.
        why: String,
        /// The end of its log.
        log_tail: String,
    },
    /// A ZooKeeper call failed.
    #[error(transparent)]
    ZooKeeper(#[from] crate::zk_call::ZkCallError),
    /// The mock Kafka process failed a command or died.
    #[error("mock Kafka: {0}")]
    MockKafka(String),
    /// A condition was not reached in time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
    },
    /// A name or value given to the testkit is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl TestkitError {
    pub(crate) fn zk(op: &'static str, path: impl Into<String>) -> impl FnOnce(zookeeper_client::Error) -> Self {
        let call = crate::coord::zk::call(op, path);
        move |source| TestkitError::ZooKeeper(call(source))
    }
}
