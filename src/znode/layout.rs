//! Where every znode lives. The only place that formats a ZooKeeper path.

use std::fmt;

use crate::ids::{BrokerId, GroupId, MemberId, PartitionId, TopicName};

use super::error::{Problem, ZnodeError};
use super::json::parse_canonical_i32;

/// `/brokers/ids`: one ephemeral child per live broker.
pub const BROKER_IDS: &str = "/brokers/ids";
/// `/brokers/topics`: one persistent child per topic.
pub const BROKER_TOPICS: &str = "/brokers/topics";
/// `/consumers`: one child per ZooKeeper-coordinated consumer group.
pub const CONSUMERS: &str = "/consumers";

/// Which legacy consumer's layout a group follows. The two cannot share a
/// group: they name owner znodes differently and count participants
/// differently, so the flavour is an explicit per-group choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// pykafka's `BalancedConsumer`.
    Pykafka,
    /// Kafka's Scala `ZookeeperConsumerConnector`.
    Scala,
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::Pykafka => "pykafka",
            Flavour::Scala => "scala",
        })
    }
}

impl std::str::FromStr for Flavour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pykafka" => Ok(Flavour::Pykafka),
            "scala" => Ok(Flavour::Scala),
            other => Err(format!("unknown flavour {other:?} (pykafka or scala)")),
        }
    }
}

/// How the topic is spelled in a pykafka owner directory. pykafka on Python 3
/// formats the topic's `bytes` into the path, so its directory is literally
/// `b'<topic>'`; on Python 2 it is the plain name. Scala always uses `Plain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicSpelling {
    /// `owners/<topic>`.
    Plain,
    /// `owners/b'<topic>'`.
    PythonBytes,
}

impl TopicSpelling {
    /// Both spellings, in the order claims write them.
    pub const ALL: [TopicSpelling; 2] = [TopicSpelling::Plain, TopicSpelling::PythonBytes];

    /// The owner directory's name for `topic` in this spelling.
    pub fn dir_name(self, topic: &TopicName) -> String {
        match self {
            TopicSpelling::Plain => topic.as_str().to_owned(),
            TopicSpelling::PythonBytes => format!("b'{topic}'"),
        }
    }

    /// Reads an owner directory's name back into a topic and its spelling.
    pub fn parse_dir_name(parent: &str, name: &str) -> Result<(TopicName, TopicSpelling), ZnodeError> {
        let (topic, spelling) = match name.strip_prefix("b'").and_then(|n| n.strip_suffix('\'')) {
            Some(inner) => (inner, TopicSpelling::PythonBytes),
            None => (name, TopicSpelling::Plain),
        };
        TopicName::new(topic)
            .map(|t| (t, spelling))
            .map_err(|e| ZnodeError::new(&child(parent, name), Problem::Name(e)))
    }
}

/// The name of an owner znode, which differs by flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnerName {
    /// pykafka: `<leaderId>-<partitionId>`. The leader is the one the claimer
    /// saw when it claimed; it is part of the name, not a live fact.
    Pykafka {
        /// The partition leader's broker id at claim time.
        leader: BrokerId,
        /// The partition.
        partition: PartitionId,
    },
    /// Scala: `<partitionId>`.
    Scala {
        /// The partition.
        partition: PartitionId,
    },
}

impl OwnerName {
    /// The partition this owner znode stands for.
    pub fn partition(&self) -> PartitionId {
        match *self {
            OwnerName::Pykafka { partition, .. } | OwnerName::Scala { partition } => partition,
        }
    }

    /// Parses an owner znode's name in the given flavour. `dir` is its parent
    /// path, used only to name the znode in errors.
    pub fn parse(flavour: Flavour, dir: &str, name: &str) -> Result<Self, ZnodeError> {
        let bad = |why: &str| ZnodeError::new(&child(dir, name), Problem::BadText(why.to_owned()));
        let partition = |s: &str| {
            parse_canonical_i32(s, false)
                .map(PartitionId)
                .ok_or_else(|| bad(&format!("partition {s:?} is not a non-negative decimal integer")))
        };
        match flavour {
            Flavour::Scala => Ok(OwnerName::Scala { partition: partition(name)? }),
            Flavour::Pykafka => {
                // The leader may be -1 when pykafka saw no leader, so split at
                // the last '-' and let the leader carry its own sign.
                let (leader, part) = name.rsplit_once('-').ok_or_else(|| bad("expected <leaderId>-<partitionId>"))?;
                let leader = parse_canonical_i32(leader, true)
                    .ok_or_else(|| bad(&format!("leader {leader:?} is not a decimal integer")))?;
                Ok(OwnerName::Pykafka { leader: BrokerId(leader), partition: partition(part)? })
            }
        }
    }
}

impl fmt::Display for OwnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnerName::Pykafka { leader, partition } => write!(f, "{leader}-{partition}"),
            OwnerName::Scala { partition } => write!(f, "{partition}"),
        }
    }
}

fn child(parent: &str, name: &str) -> String {
    format!("{parent}/{name}")
}

/// `/brokers/ids/<id>`.
pub fn broker(id: BrokerId) -> String {
    format!("{BROKER_IDS}/{id}")
}

/// `/brokers/topics/<t>`.
pub fn topic(topic: &TopicName) -> String {
    format!("{BROKER_TOPICS}/{topic}")
}

/// `/brokers/topics/<t>/partitions`.
pub fn topic_partitions(topic: &TopicName) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions")
}

/// `/brokers/topics/<t>/partitions/<p>`.
pub fn partition(topic: &TopicName, partition: PartitionId) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions/{partition}")
}

/// `/brokers/topics/<t>/partitions/<p>/state`.
pub fn partition_state(topic: &TopicName, partition: PartitionId) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions/{partition}/state")
}

/// `/consumers/<g>`.
pub fn group(group: &GroupId) -> String {
    format!("{CONSUMERS}/{group}")
}

/// `/consumers/<g>/ids`: one ephemeral child per member.
pub fn members(group: &GroupId) -> String {
    format!("{CONSUMERS}/{group}/ids")
}

/// `/consumers/<g>/ids/<member>`.
pub fn member(group: &GroupId, member: &MemberId) -> String {
    format!("{CONSUMERS}/{group}/ids/{member}")
}

/// `/consumers/<g>/owners`.
pub fn owners(group: &GroupId) -> String {
    format!("{CONSUMERS}/{group}/owners")
}

/// `/consumers/<g>/owners/<t>` or `/consumers/<g>/owners/b'<t>'`.
pub fn owner_dir(group: &GroupId, topic: &TopicName, spelling: TopicSpelling) -> String {
    format!("{CONSUMERS}/{group}/owners/{}", spelling.dir_name(topic))
}

/// One owner znode.
pub fn owner(group: &GroupId, topic: &TopicName, spelling: TopicSpelling, name: OwnerName) -> String {
    format!("{}/{name}", owner_dir(group, topic, spelling))
}

/// `/consumers/<g>/offsets/<t>`.
pub fn offsets_dir(group: &GroupId, topic: &TopicName) -> String {
    format!("{CONSUMERS}/{group}/offsets/{topic}")
}

/// `/consumers/<g>/offsets/<t>/<p>`: the Scala consumer's ZooKeeper-stored offset.
pub fn offset(group: &GroupId, topic: &TopicName, partition: PartitionId) -> String {
    format!("{CONSUMERS}/{group}/offsets/{topic}/{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    #[test]
    fn paths_match_the_legacy_layouts() {
        let g = GroupId::new("g1").unwrap();
        assert_eq!(broker(BrokerId(3)), "/brokers/ids/3");
        assert_eq!(partition_state(&t("t"), PartitionId(7)), "/brokers/topics/t/partitions/7/state");
        assert_eq!(member(&g, &MemberId::new("h:u").unwrap()), "/consumers/g1/ids/h:u");
        let py = OwnerName::Pykafka { leader: BrokerId(1), partition: PartitionId(10) };
        assert_eq!(owner(&g, &t("t"), TopicSpelling::Plain, py), "/consumers/g1/owners/t/1-10");
        assert_eq!(owner(&g, &t("t"), TopicSpelling::PythonBytes, py), "/consumers/g1/owners/b't'/1-10");
        let sc = OwnerName::Scala { partition: PartitionId(4) };
        assert_eq!(owner(&g, &t("t"), TopicSpelling::Plain, sc), "/consumers/g1/owners/t/4");
        assert_eq!(offset(&g, &t("t"), PartitionId(2)), "/consumers/g1/offsets/t/2");
    }

    #[test]
    fn owner_names_parse_strictly() {
        let d = "/consumers/g/owners/t";
        assert_eq!(
            OwnerName::parse(Flavour::Pykafka, d, "-1-3").unwrap(),
            OwnerName::Pykafka { leader: BrokerId(-1), partition: PartitionId(3) }
        );
        assert_eq!(OwnerName::parse(Flavour::Scala, d, "12").unwrap(), OwnerName::Scala { partition: PartitionId(12) });
        for bad in ["", "1", "a-1", "1-", "1-01", "1--2", "1-2-3x"] {
            let err = OwnerName::parse(Flavour::Pykafka, d, bad).unwrap_err();
            assert_eq!(err.path, format!("{d}/{bad}"));
        }
        for bad in ["", "-1", "01", "1-2", " 1", "99999999999"] {
            assert!(OwnerName::parse(Flavour::Scala, d, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn owner_dir_spellings_round_trip() {
        for s in TopicSpelling::ALL {
            let name = s.dir_name(&t("orders"));
            assert_eq!(TopicSpelling::parse_dir_name("/x", &name).unwrap(), (t("orders"), s));
        }
        assert!(TopicSpelling::parse_dir_name("/x", "b'bad topic'").is_err());
    }
}
