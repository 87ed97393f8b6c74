//! Owner znode payloads and ZooKeeper-stored offsets.

use crate::ids::MemberId;

use super::error::Problem;
use super::json::parse_decimal_u64;
use super::Codec;

/// A pykafka owner payload: the owning member's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PykafkaOwner(pub MemberId);

/// A Scala owner payload: `<memberId>-<threadId>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScalaOwner {
    /// The owning member.
    pub member: MemberId,
    /// The consumer thread (stream) within the member, from 0.
    pub thread: u32,
}

fn text(bytes: &[u8]) -> Result<&str, Problem> {
    std::str::from_utf8(bytes).map_err(|_| Problem::NotUtf8)
}

impl Codec for PykafkaOwner {
    fn decode_payload(bytes: &[u8]) -> Result<Self, Problem> {
        Ok(PykafkaOwner(MemberId::new(text(bytes)?)?))
    }

    fn encode(&self) -> Vec<u8> {
        self.0.as_str().as_bytes().to_vec()
    }
}

impl Codec for ScalaOwner {
    fn decode_payload(bytes: &[u8]) -> Result<Self, Problem> {
        let text = text(bytes)?;
        let bad = || Problem::BadText(format!("{text:?} is not <memberId>-<threadId>"));
        // Member ids contain '-', thread ids never do: split at the last one.
        let (member, thread) = text.rsplit_once('-').ok_or_else(bad)?;
        let thread = super::json::parse_canonical_i32(thread, false).ok_or_else(bad)?;
        Ok(ScalaOwner { member: MemberId::new(member)?, thread: thread as u32 })
    }

    fn encode(&self) -> Vec<u8> {
        format!("{}-{}", self.member, self.thread).into_bytes()
    }
}

/// A ZooKeeper-stored offset: the decimal *next* offset to consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ZkOffset(pub u64);

impl Codec for ZkOffset {
    fn decode_payload(bytes: &[u8]) -> Result<Self, Problem> {
        let text = text(bytes)?;
        parse_decimal_u64(text)
            .filter(|&n| n <= i64::MAX as u64 && (text.len() == 1 || !text.starts_with('0')))
            .map(ZkOffset)
            .ok_or_else(|| Problem::BadText(format!("{text:?} is not a non-negative decimal offset")))
    }

    fn encode(&self) -> Vec<u8> {
        self.0.to_string().into_bytes()
    }
}
