//! A handle other tasks hold on a running consumer: commits, offsets and
//! pauses while `recv` or `stream` borrow the consumer itself.

use std::sync::Arc;

use tokio::sync::watch;

use super::control::Shared;
use super::ConsumerError;
use crate::coord::AssignmentView;
use crate::ids::TopicPartition;

/// Cloneable and `Send`: commit from a timer task, seek from a control
/// plane, pause from a backpressure monitor, while the consumer's own task
/// sits in [`recv`](super::BalancedConsumer::recv). Its calls fail with
/// [`ConsumerError::NotOwned`] or do nothing once the consumer stopped.
#[derive(Clone)]
pub struct ConsumerHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) view: watch::Receiver<AssignmentView>,
}

impl std::fmt::Debug for ConsumerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHandle").finish_non_exhaustive()
    }
}

impl ConsumerHandle {
    /// Commits every owned partition's acknowledged low watermark now.
    ///
    /// # Errors
    /// [`ConsumerError::Offset`] with the first failure (the others are
    /// still tried).
    pub async fn commit(&self) -> Result<(), ConsumerError> {
        Ok(self.shared.commit_all().await?)
    }

    /// The committed offset (next to consume) of a partition, owned or not,
    /// as the consumer's offset storage holds it now.
    ///
    /// # Errors
    /// [`ConsumerError::Offset`] when the storage cannot be read or holds
    /// something else than an offset.
    pub async fn committed(&self, partition: &TopicPartition) -> Result<Option<u64>, ConsumerError> {
        Ok(self.shared.committer.read(partition).await?)
    }

    /// Moves an owned partition's delivery to `offset`: the next message of
    /// it that `recv` hands over is at `offset` (or the first after it, in a
    /// compacted topic). Messages of it fetched or delivered before no
    /// longer count: their acknowledgements come too late to commit, and
    /// the next commit writes the new position once its messages are
    /// acknowledged (backwards too: a seek back re-consumes).
    ///
    /// # Errors
    /// [`ConsumerError::NotOwned`] when this member does not own the
    /// partition, or is handing it over.
    pub async fn seek(&self, partition: &TopicPartition, offset: u64) -> Result<(), ConsumerError> {
        if self.shared.seek(partition, offset).await {
            Ok(())
        } else {
            Err(ConsumerError::NotOwned { partition: partition.clone() })
        }
    }

    /// Stops fetching these partitions until resumed (ownership is
    /// unaffected); see [`BalancedConsumer::pause`](super::BalancedConsumer::pause).
    pub async fn pause(&self, partitions: &[TopicPartition]) {
        self.shared.fetcher.pause(partitions.to_vec()).await;
    }

    /// Resumes fetching paused partitions from where delivery stopped.
    pub async fn resume(&self, partitions: &[TopicPartition]) {
        self.shared.fetcher.resume(partitions.to_vec()).await;
    }

    /// The current assignment, updated as it changes.
    pub fn assignment(&self) -> watch::Receiver<AssignmentView> {
        self.view.clone()
    }
}
