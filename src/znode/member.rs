//! `/consumers/<g>/ids/<member>`: member registrations and member ids, in both
//! flavours.

use serde_json::{json, Map, Value};

use crate::ids::{GroupId, MemberId, TopicName};

use super::error::{bad_field, Problem};
use super::json;
use super::Codec;

/// What a Scala member subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// `"pattern":"static"`: named topics, each with a stream (thread) count.
    Static(Vec<(TopicName, u32)>),
    /// `"pattern":"white_list"`: topics matching a Java regex.
    Whitelist {
        /// The filter as the member wrote it.
        regex: String,
        /// Streams per matching topic.
        streams: u32,
    },
    /// `"pattern":"black_list"`: topics not matching a Java regex.
    Blacklist {
        /// The filter as the member wrote it.
        regex: String,
        /// Streams per matching topic.
        streams: u32,
    },
}

impl Subscription {
    fn pattern(&self) -> &'static str {
        match self {
            Subscription::Static(_) => "static",
            Subscription::Whitelist { .. } => "white_list",
            Subscription::Blacklist { .. } => "black_list",
        }
    }
}

/// A Scala `ZookeeperConsumerConnector` registration (JSON, version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalaRegistration {
    /// What the member consumes.
    pub subscription: Subscription,
    /// Registration time in ms since the epoch (written as a string).
    pub timestamp_ms: Option<u64>,
}

/// A member registration in either flavour. The flavours are told apart by
/// the payload itself: a legal topic name never starts with `{`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRegistration {
    /// pykafka: the payload is the raw topic name.
    Pykafka {
        /// The one topic the member consumes.
        topic: TopicName,
    },
    /// Scala: JSON.
    Scala(ScalaRegistration),
}

fn streams(v: &Value, field: &'static str) -> Result<u32, Problem> {
    json::int_in(v, field, 1, i32::MAX.into()).map(|n| n as u32)
}

fn decode_scala(bytes: &[u8]) -> Result<ScalaRegistration, Problem> {
    let obj = json::parse_object(bytes)?;
    let version = json::i32_field(&obj, "version", 1)?;
    if version != 1 {
        return Err(bad_field("version", format!("{version} is not a known version (1)")));
    }
    let map = json::object_field(&obj, "subscription")?;
    let subscription = match json::str_field(&obj, "pattern")? {
        "static" => Subscription::Static(
            map.iter()
                .map(|(t, n)| {
                    let topic = TopicName::new(t.as_str()).map_err(|e| bad_field("subscription", e.to_string()))?;
                    Ok((topic, streams(n, "subscription")?))
                })
                .collect::<Result<_, Problem>>()?,
        ),
        p @ ("white_list" | "black_list") => {
            // The Scala consumer takes the first key as the filter and its
            // value as the stream count, and ignores the rest: kafka-node
            // writes one key per topic it was given.
            let Some((regex, n)) = map.iter().next() else {
                return Err(bad_field("subscription", "a wildcard subscription names no filter"));
            };
            let (regex, streams) = (regex.clone(), streams(n, "subscription")?);
            if p == "white_list" {
                Subscription::Whitelist { regex, streams }
            } else {
                Subscription::Blacklist { regex, streams }
            }
        }
        other => return Err(bad_field("pattern", format!("{other:?} is not static, white_list or black_list"))),
    };
    Ok(ScalaRegistration { subscription, timestamp_ms: json::timestamp_field(&obj, "timestamp")? })
}

/// Keys in the order the Scala consumer writes them:
/// `{"version":1,"subscription":{..},"pattern":"..","timestamp":".."}`.
fn encode_scala(reg: &ScalaRegistration) -> Vec<u8> {
    let subscription: Map<String, Value> = match &reg.subscription {
        Subscription::Static(topics) => topics.iter().map(|(t, n)| (t.to_string(), json!(n))).collect(),
        Subscription::Whitelist { regex, streams } | Subscription::Blacklist { regex, streams } => {
            std::iter::once((regex.clone(), json!(streams))).collect()
        }
    };
    let mut m = Map::new();
    m.insert("version".into(), json!(1));
    m.insert("subscription".into(), Value::Object(subscription));
    m.insert("pattern".into(), json!(reg.subscription.pattern()));
    if let Some(ts) = reg.timestamp_ms {
        m.insert("timestamp".into(), Value::String(ts.to_string()));
    }
    serde_json::to_vec(&Value::Object(m)).expect("a JSON value always serializes")
}

impl Codec for MemberRegistration {
    fn decode_payload(bytes: &[u8]) -> Result<Self, Problem> {
        if bytes.first() == Some(&b'{') {
            return decode_scala(bytes).map(MemberRegistration::Scala);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Problem::NotUtf8)?;
        Ok(MemberRegistration::Pykafka { topic: TopicName::new(text)? })
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            MemberRegistration::Pykafka { topic } => topic.as_str().as_bytes().to_vec(),
            MemberRegistration::Scala(reg) => encode_scala(reg),
        }
    }
}

/// pykafka's member id: `<hostname>:<uuid4>`.
pub fn pykafka_member_id(hostname: &str, uuid: uuid::Uuid) -> Result<MemberId, crate::ids::InvalidName> {
    MemberId::new(format!("{hostname}:{uuid}"))
}

/// The Scala consumer's member id: `<group>_<hostname>-<ms>-<8 hex>`, the hex
/// being the first 8 digits of a random UUID's most significant bits.
pub fn scala_member_id(
    group: &GroupId,
    hostname: &str,
    now_ms: u64,
    uuid: uuid::Uuid,
) -> Result<MemberId, crate::ids::InvalidName> {
    // Java's Long.toHexString: unsigned, lowercase, no leading zeros.
    let msb = format!("{:x}", (uuid.as_u128() >> 64) as u64);
    let hex = &msb[..msb.len().min(8)];
    MemberId::new(format!("{group}_{hostname}-{now_ms}-{hex}"))
}
