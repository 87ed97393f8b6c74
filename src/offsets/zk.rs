//! Offsets in ZooKeeper, the Scala layout: a persistent znode per partition
//! holding the next offset to consume in decimal.

use tokio::sync::watch;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, MultiWriteError};

use super::OffsetError;
use crate::coord::zk::call as zk_call;
use crate::coord::Fence;
use crate::ids::{GroupId, TopicPartition};
use crate::znode::{layout, Codec, ZkOffset};

/// The session a fence is checked against: numbered, `None` once stopped.
pub(crate) type Sessions = watch::Receiver<Option<(u64, Client)>>;

#[derive(Clone)]
pub(crate) struct ZkOffsets {
    pub group: GroupId,
    pub sessions: Sessions,
}

impl ZkOffsets {
    fn client(&self) -> Option<(u64, Client)> {
        self.sessions.borrow().clone()
    }

    /// The client of the fence's session, or `Fenced`.
    pub fn check_session(&self, fence: &Fence, tp: &TopicPartition) -> Result<Client, OffsetError> {
        match self.client() {
            Some((epoch, zk)) if epoch == fence.session => Ok(zk),
            _ => Err(OffsetError::Fenced { tp: tp.clone() }),
        }
    }

    pub async fn read(&self, tp: &TopicPartition) -> Result<Option<u64>, OffsetError> {
        let path = layout::offset(&self.group, &tp.topic, tp.partition);
        let Some((_, zk)) = self.client() else {
            return Err(crate::zk_call::ZkCallError::new("read", path, crate::zk_call::ZkCode::Closed).into());
        };
        match zk.get_data(&path).await {
            Ok((bytes, _)) => Ok(Some(ZkOffset::decode(&path, &bytes)?.0)),
            Err(ZkError::NoNode) => Ok(None),
            Err(source) => Err(zk_call("read", path)(source).into()),
        }
    }

    /// Sets the offset znode in one transaction with a check that our owner
    /// znode (never modified, so at version 0) is still there.
    pub async fn commit(&self, fence: &Fence, tp: &TopicPartition, offset: u64) -> Result<(), OffsetError> {
        let zk = self.check_session(fence, tp)?;
        let path = layout::offset(&self.group, &tp.topic, tp.partition);
        let payload = ZkOffset(offset).encode();
        let fenced = || OffsetError::Fenced { tp: tp.clone() };
        let zk_err = |op, source| OffsetError::from(zk_call(op, &path)(source));
        let mut set = zk.new_multi_writer();
        set.add_check_version(&fence.owner_path, 0).map_err(|e| zk_err("check owner", e))?;
        set.add_set_data(&path, &payload, None).map_err(|e| zk_err("set", e))?;
        match set.commit().await {
            Ok(_) => return Ok(()),
            Err(MultiWriteError::OperationFailed { index: 0, .. }) => return Err(fenced()),
            Err(MultiWriteError::OperationFailed { index: 1, source: ZkError::NoNode }) => {}
            Err(MultiWriteError::OperationFailed { source, .. } | MultiWriteError::RequestFailed { source }) => {
                return Err(zk_err("set", source))
            }
        }
        // The first commit of this partition: make the parents, then create.
        let dir = layout::offsets_dir(&self.group, &tp.topic);
        let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
        zk.mkdir(&dir, &persistent).await.map_err(|e| zk_err("create parent", e))?;
        let mut create = zk.new_multi_writer();
        create.add_check_version(&fence.owner_path, 0).map_err(|e| zk_err("check owner", e))?;
        create.add_create(&path, &payload, &persistent).map_err(|e| zk_err("create", e))?;
        match create.commit().await {
            Ok(_) => Ok(()),
            Err(MultiWriteError::OperationFailed { index: 0, .. }) => Err(fenced()),
            // A commit racing ours created it: ours is the later one, set it.
            Err(MultiWriteError::OperationFailed { index: 1, source: ZkError::NodeExists }) => {
                Box::pin(self.commit(fence, tp, offset)).await
            }
            Err(MultiWriteError::OperationFailed { source, .. } | MultiWriteError::RequestFailed { source }) => {
                Err(zk_err("create", source))
            }
        }
    }
}
