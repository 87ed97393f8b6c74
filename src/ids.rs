//! Typed identifiers: a broker id is never confused with a partition id, and a
//! group or topic name is validated once, where it enters the program.

use std::fmt;

use thiserror::Error;

/// A name that failed validation, with the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct InvalidName {
    /// What was being named (`"topic"`, `"group"`, ...).
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// The rule it broke.
    pub reason: &'static str,
}

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i32> for $name {
            fn from(v: i32) -> Self {
                Self(v)
            }
        }
    };
}

int_id!(
    /// A Kafka broker id, as registered under `/brokers/ids/<id>`.
    BrokerId
);
int_id!(
    /// A partition number within one topic.
    PartitionId
);

/// Kafka's legal topic name: 1–249 of `[A-Za-z0-9._-]`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(String);

impl TopicName {
    /// The longest name Kafka accepts.
    pub const MAX_LEN: usize = 249;

    /// Validates `name` with Kafka's rules.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("empty")
        } else if name.len() > Self::MAX_LEN {
            Some("longer than 249 characters")
        } else if name == "." || name == ".." {
            Some("'.' and '..' are reserved")
        } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidName { kind: "topic", value: name, reason }),
            None => Ok(Self(name)),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name used as one ZooKeeper path component: non-empty, no `/`, not `.` or
/// `..`, no control characters. Group ids and member ids are such names.
fn validate_component(kind: &'static str, value: String) -> Result<String, InvalidName> {
    let reason = if value.is_empty() {
        Some("empty")
    } else if value == "." || value == ".." {
        Some("'.' and '..' are not valid path components")
    } else if value.contains('/') {
        Some("contains '/'")
    } else if value.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvalidName { kind, value, reason }),
        None => Ok(value),
    }
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` as one ZooKeeper path component.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidName> {
                validate_component($kind, value.into()).map(Self)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

name_id!(
    /// A consumer group id: the `<g>` of `/consumers/<g>`.
    GroupId,
    "group"
);
name_id!(
    /// A group member id: the child name under `/consumers/<g>/ids`.
    MemberId,
    "member id"
);

macro_rules! display_str {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}
display_str!(TopicName, GroupId, MemberId);

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: TopicName,
    /// The partition within it.
    pub partition: PartitionId,
}

impl TopicPartition {
    /// Pairs a topic with a partition.
    pub fn new(topic: TopicName, partition: impl Into<PartitionId>) -> Self {
        Self { topic, partition: partition.into() }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(TopicName::new("orders.v2_x-1").is_ok());
        assert!(TopicName::new("a".repeat(249)).is_ok());
        for bad in ["", ".", "..", "a/b", "sp ace", "ü", &"a".repeat(250)] {
            let err = TopicName::new(bad).unwrap_err();
            assert_eq!(err.kind, "topic", "{bad:?}");
        }
    }

    #[test]
    fn path_components_reject_separators_and_controls() {
        assert!(GroupId::new("my group:1").is_ok());
        assert!(MemberId::new("host:7d1c").is_ok());
        for bad in ["", ".", "..", "a/b", "tab\t"] {
            assert!(GroupId::new(bad).is_err(), "{bad:?}");
        }
    }
}
