//! A delivered message and its acknowledgement.

use std::sync::Arc;

use bytes::Bytes;

use super::partition::PartitionCell;
use crate::balance::{Time, Verdict};
use crate::ids::{PartitionId, TopicName, TopicPartition};

/// One message, delivered once. Call [`Message::ack`] when its work is
/// done: the committed offset of its partition never passes a message that
/// was not acknowledged.
#[derive(Debug)]
pub struct Message {
    pub(crate) offset: u64,
    pub(crate) key: Option<Bytes>,
    pub(crate) payload: Option<Bytes>,
    pub(crate) timestamp: Option<(i64, TimestampType)>,
    /// The broker that served it; -1 when unknown.
    pub(crate) broker: i32,
    pub(crate) headers: Option<Box<[Header]>>,
    /// When `recv` checked the lease and handed it over, on the lease clock.
    pub(crate) checked_at: Time,
    pub(crate) cell: Arc<PartitionCell>,
}

impl Message {
    /// Topic and partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.cell.tp
    }

    /// The topic.
    pub fn topic(&self) -> &TopicName {
        &self.cell.tp.topic
    }

    /// The partition.
    pub fn partition(&self) -> PartitionId {
        self.cell.tp.partition
    }

    /// The offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value, if any (`None` for a tombstone).
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// The assignment generation under which this member owns the
    /// partition. Within one generation a partition's offsets only grow; a
    /// new generation starts again at the committed offset, so messages
    /// delivered but not committed before may come again.
    pub fn generation(&self) -> u64 {
        self.cell.generation
    }

    /// Whether this member may still act on the message *now*: its partition
    /// is neither revoked nor lost, and the delivery lease holds at the
    /// caller's clock. A message is valid when handed over; an application
    /// that holds messages (a queue, a batch, a long computation) checks this
    /// right before an effect that must not happen twice: once it is false,
    /// a peer may own the partition soon and deliver the message again.
    pub fn is_valid(&self) -> bool {
        self.cell.gate.check(crate::coord::clock::now()) == Verdict::Deliver
    }

    /// The wall-clock time at which it was handed over (its lease was
    /// checked then). For audit trails: lease clock and wall clock agree to
    /// within microseconds at the time of the call.
    pub fn delivered_at(&self) -> std::time::SystemTime {
        crate::coord::clock::wall(self.checked_at)
    }

    /// The member's ZooKeeper session it was delivered under: 0 for the
    /// first, one more for each new session after an expiry. With
    /// [`generation`](Self::generation) it names the ownership a delivery
    /// belongs to (what audit trails and the fault suite's checker group
    /// deliveries by).
    pub fn session(&self) -> u64 {
        self.cell.fence.session
    }

    /// The timestamp in milliseconds since the epoch, if the message has
    /// one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp.map(|(ts, _)| ts)
    }

    /// Who set the timestamp, if the message has one.
    pub fn timestamp_type(&self) -> Option<TimestampType> {
        self.timestamp.map(|(_, kind)| kind)
    }

    /// The broker (the partition's leader) that served the message, when
    /// librdkafka knows it.
    pub fn broker(&self) -> Option<crate::ids::BrokerId> {
        (self.broker >= 0).then_some(crate::ids::BrokerId(self.broker))
    }

    /// Its headers, in the order they were written (names may repeat).
    pub fn headers(&self) -> &[Header] {
        self.headers.as_deref().unwrap_or_default()
    }

    /// Marks the message done. Acknowledging twice is harmless; an
    /// acknowledgement after the partition was revoked and committed is
    /// counted as late (the message will be delivered again elsewhere).
    pub fn ack(&self) {
        self.cell.ack(self.offset);
    }

    /// What acknowledges this message after it was moved away.
    pub(crate) fn acker(&self) -> Acker {
        Acker { cell: Arc::clone(&self.cell), offset: self.offset }
    }
}

/// Who set a message's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimestampType {
    /// The producer (`CreateTime`).
    Create,
    /// The broker, when it appended the message (`LogAppendTime`).
    LogAppend,
}

/// One header of a message: a name and a value, which may be null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    name: Box<str>,
    value: Option<Bytes>,
}

impl Header {
    pub(crate) fn new(name: &str, value: Option<&[u8]>) -> Self {
        Header { name: name.into(), value: value.map(Bytes::copy_from_slice) }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, if not null.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }
}

/// Acknowledges one message later (`for_each`).
pub(crate) struct Acker {
    cell: Arc<PartitionCell>,
    offset: u64,
}

impl Acker {
    pub fn ack(self) {
        self.cell.ack(self.offset);
    }
}
