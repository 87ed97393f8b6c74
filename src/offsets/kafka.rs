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
            .map_err(|e| OffsetError::Kafka { op: "OffsetFetch", tp: tp.clone(), reason: e.to_string() })
    }

    /// Bounded by the Kafka timeout: a synchronous commit to an unreachable
    /// cluster otherwise waits for librdkafka's own timeouts (about 45 s
    /// measured), and a revoke or `stop` with it. The request itself runs
    /// on to its end in the background.
    pub async fn commit(&self, tp: &TopicPartition, offset: u64) -> Result<(), OffsetError> {
        let failed = |reason: String| OffsetError::Kafka { op: "OffsetCommit", tp: tp.clone(), reason };
        match tokio::time::timeout(
            self.timeout,
            kafka::commit(&self.client, tp.topic.as_str(), &[(tp.partition.0, offset)]),
        )
        .await
        {
            Ok(result) => result.map_err(|e| failed(e.to_string())),
            Err(_) => Err(failed(format!("no answer within {:?}", self.timeout))),
        }
    }
}
