//! Deleting a dead group: its member registrations and owner znodes, and
//! its committed offsets only when asked. Never a live group's.

use serde::Serialize;
use zookeeper_client::{Client, Error as ZkError};

use super::{children, group_id, require_group, zk_err, InspectError};
use crate::coord::ZkClient;
use crate::znode::layout;

/// What [`delete_group`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Deleted {
    /// The group.
    pub group: String,
    /// How many znodes went.
    pub znodes: usize,
    /// Whether its committed offsets went too (and with them the group's
    /// own znode).
    pub offsets: bool,
}

/// Removes `group`'s `ids` and `owners` subtrees, and with
/// `include_offsets` its `offsets` subtree and the group's own znode (kept
/// if anything else is left under it).
///
/// The `ids` directory goes first, and ZooKeeper refuses to delete it while
/// it has a child: a member that registers meanwhile makes the delete fail
/// rather than lose its registration.
///
/// # Errors
/// [`InspectError::UnknownGroup`] without `/consumers/<group>`;
/// [`InspectError::Active`] while members are registered;
/// [`InspectError::ZooKeeper`] when a request fails.
pub async fn delete_group(zk: &ZkClient, group: &str, include_offsets: bool) -> Result<Deleted, InspectError> {
    let zk = zk.raw();
    let g = group_id(group)?;
    require_group(zk, &g).await?;
    let ids = layout::members(&g);
    let active = children(zk, &ids).await?.len();
    if active > 0 {
        return Err(InspectError::Active { forceable: false, group: group.to_owned(), members: active });
    }
    let mut znodes = 0;
    match zk.delete(&ids, None).await {
        Ok(()) => znodes += 1,
        Err(ZkError::NoNode) => {}
        Err(ZkError::NotEmpty) => {
            let members = children(zk, &ids).await?.len();
            return Err(InspectError::Active { forceable: false, group: group.to_owned(), members });
        }
        Err(e) => return Err(zk_err("delete", &ids)(e)),
    }
    znodes += delete_tree(zk, &layout::owners(&g)).await?;
    if include_offsets {
        znodes += delete_tree(zk, &format!("{}/offsets", layout::group(&g))).await?;
        // Not recursive: a member that registered meanwhile keeps the group.
        let path = layout::group(&g);
        match zk.delete(&path, None).await {
            Ok(()) => znodes += 1,
            Err(ZkError::NoNode | ZkError::NotEmpty) => {}
            Err(e) => return Err(zk_err("delete", &path)(e)),
        }
    }
    Ok(Deleted { group: group.to_owned(), znodes, offsets: include_offsets })
}

/// Deletes `path` and everything under it, children first; returns how
/// many znodes went. Znodes already gone are skipped.
async fn delete_tree(zk: &Client, path: &str) -> Result<usize, InspectError> {
    // Depth first without recursion in an async fn: collect, then delete
    // deepest first.
    let mut order = vec![path.to_owned()];
    let mut i = 0;
    while i < order.len() {
        let dir = order[i].clone();
        order.extend(children(zk, &dir).await?.into_iter().map(|c| format!("{dir}/{c}")));
        i += 1;
    }
    let mut deleted = 0;
    for p in order.iter().rev() {
        match zk.delete(p, None).await {
            Ok(()) => deleted += 1,
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(zk_err("delete", p)(e)),
        }
    }
    Ok(deleted)
}
