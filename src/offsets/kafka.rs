//! Offsets in Kafka: OffsetCommit / OffsetFetch with the group id, through
//! the fetcher's rdkafka client (no Kafka group membership involved).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::OffsetError;
use crate::fetch::KafkaClient;
use crate::ids::TopicPartition;

#[derive(Clone)]
pub(crate) struct KafkaOffsets {
    pub client: Arc<KafkaClient>,
    pub timeout: Duration,
}

fn list(tp: &TopicPartition, offset: Offset) -> Result<TopicPartitionList, rdkafka::error::KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(tp.topic.as_str(), tp.partition.0, offset)?;
    Ok(tpl)
}

impl KafkaOffsets {
    pub async fn read(&self, tp: &TopicPartition) -> Result<Option<u64>, OffsetError> {
        let (client, timeout, key) = (Arc::clone(&self.client), self.timeout, tp.clone());
        let err = |source| OffsetError::Kafka { op: "OffsetFetch", tp: tp.clone(), source: Box::new(source) };
        // A blocking request: off the async workers.
        let answer = tokio::task::spawn_blocking(move || -> Result<Option<i64>, rdkafka::error::KafkaError> {
            let tpl = client.committed_offsets(list(&key, Offset::Invalid)?, timeout)?;
            Ok(tpl.elements().first().and_then(|e| match e.offset() {
                Offset::Offset(n) if n >= 0 => Some(n),
                _ => None,
            }))
        })
        .await
        .map_err(|_| err(rdkafka::error::KafkaError::Canceled))?;
        Ok(answer.map_err(err)?.map(|n| n as u64))
    }

    pub async fn commit(&self, tp: &TopicPartition, offset: u64) -> Result<(), OffsetError> {
        let (client, key) = (Arc::clone(&self.client), tp.clone());
        let err = |source| OffsetError::Kafka { op: "OffsetCommit", tp: tp.clone(), source: Box::new(source) };
        let answer = tokio::task::spawn_blocking(move || -> Result<(), rdkafka::error::KafkaError> {
            client.commit(&list(&key, Offset::Offset(offset as i64))?, CommitMode::Sync)
        })
        .await
        .map_err(|_| err(rdkafka::error::KafkaError::Canceled))?;
        answer.map_err(err)
    }
}
