//! Following a group live: who is a member and who owns what, kept current
//! by one persistent recursive watch on the group's znode (ZooKeeper 3.6+)
//! rather than by polling, and re-read whole after a reconnect (events
//! missed while disconnected are not replayed: ZOOKEEPER-4698).

use std::collections::{BTreeMap, BTreeSet};

use zookeeper_client::{AddWatchMode, Client, EventType, PersistentWatcher, SessionState};

use super::describe::{consumer_of, owner_partition};
use super::{children, group_id, require_group, zk_err, InspectError};
use crate::coord::ZkClient;
use crate::ids::GroupId;
use crate::znode::{layout, Flavour, TopicSpelling};

/// A change to a group's membership or ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupChange {
    /// A member registered.
    Joined {
        /// Its id.
        member: String,
    },
    /// A member's registration went.
    Left {
        /// Its id.
        member: String,
    },
    /// A partition got an owner.
    Owned {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The owning member, as the owner znode's payload names it (Scala's
        /// `-<thread>` suffix taken off; empty when the znode was gone
        /// before it could be read).
        owner: String,
    },
    /// A partition's owner let go.
    Released {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Who owned it.
        owner: String,
    },
}

/// Owner znodes by partition: one per spelling (pykafka peers may write two).
type Owners = BTreeMap<(String, i32), BTreeMap<String, String>>;

/// A group followed live; see [`watch_group`].
pub struct GroupWatch {
    zk: Client,
    group: GroupId,
    watcher: PersistentWatcher,
    members: BTreeSet<String>,
    owners: Owners,
    /// A disconnection was seen: re-read once connected again.
    resync: bool,
}

/// Starts following `group`: the watch is set before the first read, so
/// nothing that happens after this returns is missed.
///
/// # Errors
/// [`InspectError::UnknownGroup`] without `/consumers/<group>`;
/// [`InspectError::ZooKeeper`] when the server refuses the watch (older
/// than 3.6) or a read fails.
pub async fn watch_group(zk: &ZkClient, group: &str) -> Result<GroupWatch, InspectError> {
    let zk = zk.raw().clone();
    let group = group_id(group)?;
    require_group(&zk, &group).await?;
    let root = layout::group(&group);
    let watcher = zk.watch(&root, AddWatchMode::PersistentRecursive).await.map_err(zk_err("watch", &root))?;
    let (members, owners) = read(&zk, &group).await?;
    Ok(GroupWatch { zk, group, watcher, members, owners, resync: false })
}

/// Everything, read afresh.
async fn read(zk: &Client, group: &GroupId) -> Result<(BTreeSet<String>, Owners), InspectError> {
    let members: BTreeSet<String> = children(zk, &layout::members(group)).await?.into_iter().collect();
    let mut owners = Owners::new();
    let root = layout::owners(group);
    for dir in children(zk, &root).await? {
        for name in children(zk, &format!("{root}/{dir}")).await? {
            let path = format!("{root}/{dir}/{name}");
            if let (Some(at), Some(owner)) = (locate(group, &path), payload(zk, &path).await?) {
                owners.entry(at).or_default().insert(path, consumer_of(&owner, |id| members.contains(id)));
            }
        }
    }
    Ok((members, owners))
}

/// The partition an owner znode path stands for.
fn locate(group: &GroupId, path: &str) -> Option<(String, i32)> {
    let root = layout::owners(group);
    let (dir, name) = path.strip_prefix(&root)?.strip_prefix('/')?.split_once('/')?;
    let (topic, _) = TopicSpelling::parse_dir_name(&root, dir).ok()?;
    let partition = owner_partition(Flavour::Scala, &format!("{root}/{dir}"), name)?;
    Some((topic.to_string(), partition.0))
}

async fn payload(zk: &Client, path: &str) -> Result<Option<String>, InspectError> {
    Ok(super::data(zk, path).await?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

fn first_owner(spellings: &BTreeMap<String, String>) -> String {
    spellings.values().next().cloned().unwrap_or_default()
}

impl GroupWatch {
    /// The registered members.
    pub fn members(&self) -> &BTreeSet<String> {
        &self.members
    }

    /// Each owned partition and its owning member.
    pub fn owners(&self) -> BTreeMap<(String, i32), String> {
        self.owners.iter().map(|(at, spellings)| (at.clone(), first_owner(spellings))).collect()
    }

    /// Who an owner payload names, among the members known now.
    fn member_of(&self, payload: &str) -> String {
        consumer_of(payload, |id| self.members.contains(id))
    }

    /// Waits for the next changes (at least one), in the order ZooKeeper
    /// made them.
    ///
    /// # Errors
    /// [`InspectError::ZooKeeper`] when the session ends (expired, closed)
    /// or a read fails.
    pub async fn next(&mut self) -> Result<Vec<GroupChange>, InspectError> {
        loop {
            let event = self.watcher.changed().await;
            let changes = match event.event_type {
                EventType::Session => match event.session_state {
                    SessionState::Disconnected => {
                        self.resync = true;
                        Vec::new()
                    }
                    SessionState::SyncConnected if self.resync => {
                        self.resync = false;
                        self.reread().await?
                    }
                    state if state.is_terminated() => {
                        let path = layout::group(&self.group);
                        return Err(zk_err("watch", &path)(zookeeper_client::Error::SessionExpired));
                    }
                    _ => Vec::new(),
                },
                EventType::NodeCreated => self.created(&event.path).await?,
                EventType::NodeDeleted => self.deleted(&event.path),
                _ => Vec::new(),
            };
            if !changes.is_empty() {
                return Ok(changes);
            }
        }
    }

    async fn created(&mut self, path: &str) -> Result<Vec<GroupChange>, InspectError> {
        let ids = layout::members(&self.group);
        if let Some(member) = path.strip_prefix(&ids).and_then(|p| p.strip_prefix('/')) {
            return Ok(if self.members.insert(member.to_owned()) {
                vec![GroupChange::Joined { member: member.to_owned() }]
            } else {
                Vec::new()
            });
        }
        let Some(at) = locate(&self.group, path) else { return Ok(Vec::new()) };
        // Gone before it could be read: still an ownership, of someone.
        let owner = payload(&self.zk, path).await?.map(|p| self.member_of(&p)).unwrap_or_default();
        let spellings = self.owners.entry(at.clone()).or_default();
        let first = spellings.is_empty();
        spellings.insert(path.to_owned(), owner.clone());
        Ok(if first { vec![GroupChange::Owned { topic: at.0, partition: at.1, owner }] } else { Vec::new() })
    }

    fn deleted(&mut self, path: &str) -> Vec<GroupChange> {
        let ids = layout::members(&self.group);
        if let Some(member) = path.strip_prefix(&ids).and_then(|p| p.strip_prefix('/')) {
            return if self.members.remove(member) {
                vec![GroupChange::Left { member: member.to_owned() }]
            } else {
                Vec::new()
            };
        }
        let Some(at) = locate(&self.group, path) else { return Vec::new() };
        let Some(spellings) = self.owners.get_mut(&at) else { return Vec::new() };
        let Some(owner) = spellings.remove(path) else { return Vec::new() };
        if !spellings.is_empty() {
            return Vec::new();
        }
        self.owners.remove(&at);
        vec![GroupChange::Released { topic: at.0, partition: at.1, owner }]
    }

    /// Re-reads everything and reports what changed meanwhile.
    async fn reread(&mut self) -> Result<Vec<GroupChange>, InspectError> {
        let (members, owners) = read(&self.zk, &self.group).await?;
        let mut changes = Vec::new();
        for m in self.members.difference(&members) {
            changes.push(GroupChange::Left { member: m.clone() });
        }
        for m in members.difference(&self.members) {
            changes.push(GroupChange::Joined { member: m.clone() });
        }
        for (at, spellings) in &self.owners {
            let now = owners.get(at).map(first_owner);
            if now.as_ref() != Some(&first_owner(spellings)) {
                changes.push(GroupChange::Released {
                    topic: at.0.clone(),
                    partition: at.1,
                    owner: first_owner(spellings),
                });
            }
        }
        for (at, spellings) in &owners {
            let before = self.owners.get(at).map(first_owner);
            if before.as_ref() != Some(&first_owner(spellings)) {
                changes.push(GroupChange::Owned {
                    topic: at.0.clone(),
                    partition: at.1,
                    owner: first_owner(spellings),
                });
            }
        }
        (self.members, self.owners) = (members, owners);
        Ok(changes)
    }
}
