//! Offsets in Kafka: OffsetCommit / OffsetFetch with the group id, through
//! the fetcher's rdkafka client (no Kafka group membership involved).

use std::sync::Arc;
use std::time::Duration;

use super::OffsetError;
use crate::ids::TopicPartition;
use crate::kafka::{self, KafkaClient};

#[derive(Clone)]
pub(crate) struct KafkaOffsets {
    pub client: Arc<KafkaClient>,
    pub timeout: Duration,
}

impl KafkaOffsets {
    pub async fn read(&self, tp: &TopicPartition) -> Result<Option<u64>, OffsetError> {
        kafka::committed(&self.client, tp.topic.as_str(), tp.partition.0, self.timeout)
            .await
            .map_err(|source| OffsetError::Kafka { op: "OffsetFetch", tp: tp.clone(), source: Box::new(source) })
    }

    pub async fn commit(&self, tp: &TopicPartition, offset: u64) -> Result<(), OffsetError> {
        kafka::commit(&self.client, tp.topic.as_str(), &[(tp.partition.0, offset)])
            .await
            .map_err(|source| OffsetError::Kafka { op: "OffsetCommit", tp: tp.clone(), source: Box::new(source) })
    }
}
