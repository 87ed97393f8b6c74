//! # zkbalance
//!
//! Consume Kafka topics as a balanced group coordinated through ZooKeeper, in
//! the same groups as pykafka's `BalancedConsumer` and Kafka's Scala
//! `ZookeeperConsumerConnector`: same znodes, same payloads, same assignment.
//!
//! - [`consumer`]: the [`BalancedConsumer`](consumer::BalancedConsumer) —
//!   fetching with rdkafka, per-message acknowledgement with the
//!   low-watermark rule, fenced commits to ZooKeeper and/or Kafka,
//!   backpressure that never stalls coordination, metrics.
//! - [`coord`]: group membership over ZooKeeper without Kafka — assignment
//!   events and leases on partitions, for your own worker pools.
//! - [`balance`] (the sans-IO rebalance state machine), [`assign`]
//!   (pykafka/Scala range and round-robin, sticky), [`sim`] (a deterministic
//!   simulator of the same machine), [`znode`] (strict codecs of every
//!   znode), [`cluster`] (the cluster as ZooKeeper describes it), [`offsets`].
//! - behind the `testkit` feature, a private real ZooKeeper and a mock Kafka
//!   cluster registered in it the way ZooKeeper-mode brokers register.
//!
//! ```
//! use zkbalance::ids::{GroupId, TopicName};
//! use zkbalance::znode::{layout, Flavour, OwnerName, TopicSpelling};
//!
//! let group = GroupId::new("billing")?;
//! let topic = TopicName::new("orders")?;
//! let name = OwnerName::parse(Flavour::Pykafka, "/consumers/billing/owners/orders", "1-10")?;
//! assert_eq!(
//!     layout::owner(&group, &topic, TopicSpelling::PythonBytes, name),
//!     "/consumers/billing/owners/b'orders'/1-10"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Stability
//!
//! Until 1.0, a minor release (0.x → 0.x+1) may break the API and a patch
//! release does not. Within that, the modules differ in what they promise:
//!
//! - **The product API** — [`consumer`], [`coord`], [`ids`], [`offsets`],
//!   [`kafka_access`], [`assign`], [`cluster`], [`inspect`], [`znode`] and
//!   [`sim`] (the simulator is a product part: scenarios, seeds and
//!   verdicts) — changes only with a note in the changelog and a migration
//!   path. Enums and structs that will grow are `#[non_exhaustive]`; no
//!   type of a pre-1.0 dependency (`rdkafka`, `zookeeper-client`) appears
//!   in the consumer's signatures or errors.
//! - **The machinery** — [`balance`] (the sans-IO state machine),
//!   [`protocol`] (the group protocol's operations) and [`zk_call`] — is
//!   public so the simulator, the fuzz targets and the test kit drive the
//!   same code as production; it may change in any minor release.
//! - `testkit` (feature) and `fuzzing` (hidden) are for tests only.
//!
//! Features: `metrics` (the `metrics` facade), `prometheus` (an exporter),
//! `kafka-ssl`, `kafka-ssl-vendored`, `kafka-gssapi`, `zk-gssapi`,
//! `testkit`, `cli` (the `zkbc` binary). The library alone pulls only
//! Tokio's runtime, time and sync parts.
#![warn(missing_docs)]

pub mod assign;
pub mod balance;
pub mod cluster;
pub mod consumer;
pub mod coord;
pub(crate) mod fetch;
pub mod ids;
pub mod inspect;
pub(crate) mod kafka;
pub mod kafka_access;
pub mod offsets;
pub mod protocol;
pub mod sim;
pub mod zk_call;
pub mod znode;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use ids::{BrokerId, GroupId, MemberId, PartitionId, TopicName, TopicPartition};

/// The README's and the docs' code, compiled as doctests so they cannot rot.
#[cfg(doctest)]
mod doc_snippets {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/coordination.md")]
    struct Coordination;
    #[doc = include_str!("../docs/consumer.md")]
    struct Consumer;
    #[doc = include_str!("../docs/security.md")]
    struct Security;
}
