//! The ZooKeeper writes of a member: registration and owner znodes, in the
//! group's flavour.

use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, MultiWriteError, MultiWriteResult};

use crate::assign::Slot;
use crate::balance::ClaimOutcome;
use crate::ids::{GroupId, MemberId, TopicName, TopicPartition};
use crate::znode::{layout, Codec, Flavour, OwnerName, PykafkaOwner, ScalaOwner, TopicSpelling};

fn ephemeral() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Ephemeral.with_acls(Acls::anyone_all())
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

fn failed(op: &str, path: &str, e: impl std::fmt::Display) -> String {
    format!("{op} {path}: {e}")
}

/// Where this member's znodes go and what they hold.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub group: GroupId,
    pub flavour: Flavour,
    pub member: MemberId,
}

impl Layout {
    /// The spellings an owner directory takes: pykafka peers on Python 2 and
    /// 3 spell it differently, so a pykafka-flavour claim writes both.
    pub fn spellings(&self) -> &'static [TopicSpelling] {
        match self.flavour {
            Flavour::Pykafka => &TopicSpelling::ALL,
            Flavour::Scala => &[TopicSpelling::Plain],
        }
    }

    pub fn owner_dirs(&self, topic: &TopicName) -> Vec<String> {
        self.spellings().iter().map(|s| layout::owner_dir(&self.group, topic, *s)).collect()
    }

    pub fn owner_paths(&self, tp: &TopicPartition, name: OwnerName) -> Vec<String> {
        self.spellings().iter().map(|s| layout::owner(&self.group, &tp.topic, *s, name)).collect()
    }

    pub fn owner_payload(&self, slot: &Slot) -> Vec<u8> {
        match self.flavour {
            Flavour::Pykafka => PykafkaOwner(slot.member.clone()).encode(),
            Flavour::Scala => ScalaOwner { member: slot.member.clone(), thread: slot.thread }.encode(),
        }
    }

    /// The member named by an owner payload.
    pub fn payload_member(&self, bytes: &[u8]) -> Option<MemberId> {
        match self.flavour {
            Flavour::Pykafka => PykafkaOwner::decode_payload(bytes).ok().map(|o| o.0),
            Flavour::Scala => ScalaOwner::decode_payload(bytes).ok().map(|o| o.member),
        }
    }
}

/// Creates the group's persistent directories and the member znode. A
/// member znode left by an earlier incarnation of a static member id (its
/// session not yet expired) is replaced in one transaction.
pub(crate) async fn register(
    zk: &Client,
    layout: &Layout,
    topics: impl Iterator<Item = &TopicName>,
    payload: &[u8],
) -> Result<(), String> {
    let mut dirs = vec![layout::members(&layout.group)];
    for t in topics {
        dirs.extend(layout.owner_dirs(t));
        if layout.flavour == Flavour::Scala {
            dirs.push(layout::offsets_dir(&layout.group, t));
        }
    }
    for dir in &dirs {
        zk.mkdir(dir, &persistent()).await.map_err(|e| failed("mkdir", dir, e))?;
    }
    let path = layout::member(&layout.group, &layout.member);
    match zk.create(&path, payload, &ephemeral()).await {
        Ok(_) => Ok(()),
        Err(ZkError::NodeExists) => {
            let (_, stat) = zk.get_data(&path).await.map_err(|e| failed("read", &path, e))?;
            if stat.ephemeral_owner == zk.session_id().0 {
                return Ok(());
            }
            tracing::info!(%path, "taking over the member znode of an earlier incarnation");
            let mut w = zk.new_multi_writer();
            w.add_delete(&path, Some(stat.version)).map_err(|e| failed("delete", &path, e))?;
            w.add_create(&path, payload, &ephemeral()).map_err(|e| failed("create", &path, e))?;
            w.commit().await.map(drop).map_err(|e| failed("replace", &path, e))
        }
        Err(e) => Err(failed("create", &path, e)),
    }
}

/// Deletes the member znode if it is this session's.
pub(crate) async fn deregister(zk: &Client, layout: &Layout) -> Result<(), String> {
    delete_if_ours(zk, &layout::member(&layout.group, &layout.member)).await
}

async fn delete_if_ours(zk: &Client, path: &str) -> Result<(), String> {
    match zk.get_data(path).await {
        Ok((_, stat)) if stat.ephemeral_owner == zk.session_id().0 => match zk.delete(path, Some(stat.version)).await {
            Ok(()) | Err(ZkError::NoNode) => Ok(()),
            Err(e) => Err(failed("delete", path, e)),
        },
        // Someone else's (our session ended and a peer claimed): not ours to delete.
        Ok(_) | Err(ZkError::NoNode) => Ok(()),
        Err(e) => Err(failed("read", path, e)),
    }
}

/// Owner znodes that exist for a partition, under any name and spelling.
pub(crate) async fn existing_owners(zk: &Client, layout: &Layout, tp: &TopicPartition) -> Result<Vec<String>, ZkError> {
    let mut out = Vec::new();
    for dir in layout.owner_dirs(&tp.topic) {
        let children = match zk.list_children(&dir).await {
            Ok(c) => c,
            Err(ZkError::NoNode) => continue,
            Err(e) => return Err(e),
        };
        for name in children {
            if OwnerName::parse(layout.flavour, &dir, &name).is_ok_and(|n| n.partition() == tp.partition) {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    Ok(out)
}

/// Claims a partition: creates its owner znode(s) in one transaction.
pub(crate) async fn claim(
    zk: &Client,
    layout: &Layout,
    tp: &TopicPartition,
    slot: &Slot,
    name: OwnerName,
) -> ClaimOutcome {
    let paths = layout.owner_paths(tp, name);
    let payload = layout.owner_payload(slot);
    // A pykafka peer that saw another leader names the partition differently;
    // its znode is an owner all the same.
    match existing_owners(zk, layout, tp).await {
        Ok(found) if found.iter().any(|p| !paths.contains(p)) => return ClaimOutcome::Taken,
        Ok(_) => {}
        Err(e) => return ClaimOutcome::Failed(failed("list owners of", &tp.to_string(), e)),
    }
    let mut w = zk.new_multi_writer();
    for p in &paths {
        if let Err(e) = w.add_create(p, &payload, &ephemeral()) {
            return ClaimOutcome::Failed(failed("create", p, e));
        }
    }
    match w.commit().await {
        Ok(results) => created(zk, &paths[0], results).await,
        Err(MultiWriteError::OperationFailed { source: ZkError::NodeExists, .. }) => {
            adopt_or_taken(zk, layout, &paths, &payload).await
        }
        Err(e) => ClaimOutcome::Failed(failed("claim", &paths[0], e)),
    }
}

async fn created(zk: &Client, path: &str, results: Vec<MultiWriteResult>) -> ClaimOutcome {
    let stat = results.into_iter().find_map(|r| match r {
        MultiWriteResult::Create { stat, .. } if !stat.is_invalid() => Some(stat),
        _ => None,
    });
    match stat {
        Some(s) => ClaimOutcome::Claimed { czxid: s.czxid },
        // Some servers return no stat from a multi: read it.
        None => match zk.check_stat(path).await {
            Ok(Some(s)) => ClaimOutcome::Claimed { czxid: s.czxid },
            Ok(None) => ClaimOutcome::Failed(format!("{path} vanished right after its creation")),
            Err(e) => ClaimOutcome::Failed(failed("stat", path, e)),
        },
    }
}

/// An owner znode exists: ours from this session (a retried create whose
/// reply was lost), ours from an earlier incarnation (static member id:
/// replaced in one transaction, so no peer can slip in), or a peer's.
async fn adopt_or_taken(zk: &Client, layout: &Layout, paths: &[String], payload: &[u8]) -> ClaimOutcome {
    let mut w = zk.new_multi_writer();
    let session = zk.session_id().0;
    let mut all_ours_now = true;
    for p in paths {
        match zk.get_data(p).await {
            Ok((data, stat)) => {
                if layout.payload_member(&data).as_ref() != Some(&layout.member) {
                    return ClaimOutcome::Taken;
                }
                if stat.ephemeral_owner != session {
                    all_ours_now = false;
                    if let Err(e) = w.add_delete(p, Some(stat.version)) {
                        return ClaimOutcome::Failed(failed("delete", p, e));
                    }
                }
            }
            Err(ZkError::NoNode) => all_ours_now = false,
            Err(e) => return ClaimOutcome::Failed(failed("read", p, e)),
        }
    }
    if all_ours_now {
        return created(zk, &paths[0], Vec::new()).await;
    }
    for p in paths {
        if zk.check_stat(p).await.ok().flatten().is_some_and(|s| s.ephemeral_owner == session) {
            continue;
        }
        if let Err(e) = w.add_create(p, payload, &ephemeral()) {
            return ClaimOutcome::Failed(failed("create", p, e));
        }
    }
    match w.commit().await {
        Ok(results) => {
            tracing::info!(path = %paths[0], "took over an owner znode of an earlier incarnation");
            created(zk, &paths[0], results).await
        }
        Err(MultiWriteError::OperationFailed {
            source: ZkError::NodeExists | ZkError::NoNode | ZkError::BadVersion,
            ..
        }) => ClaimOutcome::Taken,
        Err(e) => ClaimOutcome::Failed(failed("take over", &paths[0], e)),
    }
}

/// Deletes this session's owner znode(s) of a partition, retrying through
/// connection loss; returns once they are gone or no longer ours.
pub(crate) async fn delete_owner(zk: &Client, layout: &Layout, tp: &TopicPartition, name: OwnerName) {
    for path in layout.owner_paths(tp, name) {
        let mut delay = Duration::from_millis(50);
        loop {
            match delete_if_ours(zk, &path).await {
                Ok(()) => break,
                Err(e) if zk.state().is_terminated() => {
                    tracing::debug!(error = %e, "session over: its owner znodes are gone with it");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "deleting an owner znode failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// Resolves when no owner znode of the partition is left.
pub(crate) async fn owners_gone(zk: &Client, layout: &Layout, tp: &TopicPartition) -> Result<(), ZkError> {
    loop {
        let existing = existing_owners(zk, layout, tp).await?;
        let Some(first) = existing.first() else { return Ok(()) };
        let (stat, watcher) = zk.check_and_watch_stat(first).await?;
        if stat.is_some() {
            watcher.changed().await;
        }
    }
}
