//! A delivered message and its acknowledgement.

use std::sync::Arc;

use bytes::Bytes;

use super::partition::PartitionCell;
use crate::ids::{PartitionId, TopicName, TopicPartition};

/// One message, delivered once. Call [`Message::ack`] when its work is
/// done: the committed offset of its partition never passes a message that
/// was not acknowledged.
#[derive(Debug)]
pub struct Message {
    pub(crate) offset: u64,
    pub(crate) key: Option<Bytes>,
    pub(crate) payload: Option<Bytes>,
    pub(crate) timestamp: Option<i64>,
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

    /// The timestamp in milliseconds since the epoch, if the broker set one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Marks the message done. Acknowledging twice is harmless; an
    /// acknowledgement after the partition was revoked and committed is
    /// counted as late (the message will be delivered again elsewhere).
    pub fn ack(&self) {
        self.cell.ack(self.offset);
    }
}
