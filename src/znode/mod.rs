//! The ZooKeeper layout of ZooKeeper-mode Kafka and of its two legacy group
//! consumers: typed paths and strict codecs for every znode we read or write.
//!
//! Decoding is total: any byte string yields a value or a [`ZnodeError`] that
//! names the znode and what was wrong — never a panic. Unknown JSON fields are
//! tolerated (later Kafka versions add fields), wrong types and out-of-range
//! values are not.
//!
//! ```
//! use zkbalance::znode::{BrokerRegistration, Codec};
//!
//! let bytes = br#"{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://kafka1:9092"],"jmx_port":-1,"host":"kafka1","timestamp":"1587561622934","port":9092,"version":4}"#;
//! let reg = BrokerRegistration::decode("/brokers/ids/1", bytes)?;
//! assert_eq!(reg.endpoint_for("PLAINTEXT").unwrap().address(), "kafka1:9092");
//! assert_eq!(reg.encode(), bytes.to_vec());
//!
//! let err = BrokerRegistration::decode("/brokers/ids/2", b"{\"version\":4}").unwrap_err();
//! assert_eq!(err.to_string(), "malformed znode /brokers/ids/2: missing field `endpoints`");
//! # Ok::<(), zkbalance::znode::ZnodeError>(())
//! ```

mod broker;
mod error;
mod json;
pub mod layout;
mod member;
mod owner;
mod topic;

pub use broker::{BrokerRegistration, Endpoint, FeatureRange};
pub use error::{Problem, ZnodeError};
pub use layout::{Flavour, OwnerName, TopicSpelling};
pub use member::{pykafka_member_id, scala_member_id, MemberRegistration, ScalaRegistration, Subscription};
pub use owner::{PykafkaOwner, ScalaOwner, ZkOffset};
pub use topic::{PartitionState, ReplicaAssignment, TopicRegistration};

/// A znode payload format.
pub trait Codec: Sized {
    /// Parses a payload; the error says what is wrong but not where.
    fn decode_payload(bytes: &[u8]) -> Result<Self, Problem>;

    /// Serializes exactly as the system that owns the znode writes it.
    fn encode(&self) -> Vec<u8>;

    /// Parses the payload of the znode at `path`.
    fn decode(path: &str, bytes: &[u8]) -> Result<Self, ZnodeError> {
        Self::decode_payload(bytes).map_err(|problem| ZnodeError::new(path, problem))
    }
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod roundtrip;
