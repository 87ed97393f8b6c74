//! Claiming a partition, and waiting for its owner znodes to go.
//!
//! A claim is not one atomic step: in pykafka's layout it lists the
//! partition's owner znodes (a pykafka peer that saw another leader names
//! it differently; a Scala partition has one name, so there the claim goes
//! straight to the create, one round trip less), then creates ours (every spelling, one transaction). On `NodeExists` it reads
//! what is there: ours from this session (a retried create whose reply was
//! lost), or anyone else's — a peer's, or an earlier incarnation's of this
//! member id (a static member restarted), which is waited out like a
//! peer's: ZooKeeper has no transaction that could tell that znode from one
//! a peer creates at the same path the moment the old session expires.
//! Peers act between any two of these round trips.
//!
//! Where a partition has more than one possible owner name (pykafka's embed
//! the leader, and members may have read different leaders), two claims can
//! both pass the listing and both create. So a pykafka claim looks again
//! after creating: ZooKeeper orders creations (`czxid`) and a session's
//! reads see everything before its own writes, so the later claimer always
//! sees the earlier znode — and withdraws its own; the earlier keeps it.
//! Exactly one claim survives, before either member delivers.
//!
//! A claim whose answer was lost may have created its znode; if the
//! partition's leader moves before the next attempt, that znode stands
//! under the old name. The next attempt finds it among the other names,
//! sees it is this session's, and deletes it before creating its own — else
//! the member would wait on itself until its session ends.

use crate::assign::Slot;
use crate::balance::ClaimOutcome;
use crate::ids::TopicPartition;
use crate::znode::OwnerName;

use super::layout::GroupLayout;
use super::ops::{MultiFailure, Procedure, Reply, Request, Stat, Step, Write};
use crate::zk_call::{ZkCallError, ZkCode};

fn existing(
    layout: &GroupLayout,
    tp: &TopicPartition,
    dirs: &[String],
    replies: Vec<Reply>,
) -> Result<Vec<String>, ZkCallError> {
    let mut out = Vec::new();
    for (dir, reply) in dirs.iter().zip(replies) {
        let children = reply.children().map_err(|code| ZkCallError::new("list owners", dir, code))?;
        for name in children {
            if OwnerName::parse(layout.flavour, dir, &name).is_ok_and(|n| n.partition() == tp.partition) {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn list(dirs: &[String]) -> Vec<Request> {
    dirs.iter().map(|d| Request::Children { path: d.clone(), watch: false }).collect()
}

#[derive(Debug)]
enum Stage {
    Start,
    Listed,
    /// Owner znodes under other names of the partition: whose are they?
    Foreign(Vec<String>),
    /// Orphans of ours under an old name are being deleted.
    Orphans,
    /// The owner directories were missing (a topic a wildcard just
    /// matched): made, list again.
    Dirs,
    Created,
    /// The creation went through but the server returned no stat: read it.
    Stat,
    Existing,
    /// Ours exists with this czxid: any other name for the partition?
    Verify(i64),
    /// Other names exist: are any of them older than ours?
    Compare(i64, Vec<String>),
    /// An older claim won: ours is being withdrawn.
    Withdrawn,
    /// A withdrawal failed on the way: send it again.
    WithdrawAgain,
}

/// Claims `tp` for this member (see the [module docs](self)).
#[derive(Debug)]
pub struct Claim {
    layout: GroupLayout,
    session: i64,
    tp: TopicPartition,
    paths: Vec<String>,
    dirs: Vec<String>,
    payload: Vec<u8>,
    stage: Stage,
    made_dirs: bool,
}

impl Claim {
    /// A claim of `tp` under `name` for `slot`, by this member's session
    /// `session` (its id, to recognise its own ephemerals).
    pub fn new(layout: GroupLayout, session: i64, tp: TopicPartition, slot: &Slot, name: OwnerName) -> Self {
        let paths = layout.owner_paths(&tp, name);
        let dirs = layout.owner_dirs(&tp.topic);
        let payload = layout.owner_payload(slot);
        Claim { layout, session, tp, paths, dirs, payload, stage: Stage::Start, made_dirs: false }
    }

    /// An owner znode this very session created (a retried or orphaned
    /// create whose answer was lost), not a peer's or an earlier
    /// incarnation's of this member id.
    fn ours_in_this_session(&self, data: &[u8], stat: &Stat) -> bool {
        self.layout.is_ours(data) && stat.ephemeral_owner == self.session
    }

    fn failed(&self, op: &'static str, code: ZkCode) -> Step<ClaimOutcome> {
        Step::Done(ClaimOutcome::Failed(ZkCallError::new(op, &self.paths[0], code)))
    }

    fn claimed(&mut self, stats: &[Option<Stat>]) -> Step<ClaimOutcome> {
        match stats.iter().flatten().next() {
            Some(s) => self.verify(s.czxid),
            // Some servers return no stat from a multi: read it.
            None => {
                self.stage = Stage::Stat;
                Step::Send(vec![Request::Data { path: self.paths[0].clone(), watch: false }])
            }
        }
    }

    /// Creates our owner znodes (every spelling, one transaction).
    fn create(&mut self) -> Step<ClaimOutcome> {
        self.stage = Stage::Created;
        let writes = self
            .paths
            .iter()
            .map(|p| Write::Create { path: p.clone(), data: self.payload.clone(), ephemeral: true })
            .collect();
        Step::Send(vec![Request::Multi(writes)])
    }

    fn withdraw(&mut self) -> Step<ClaimOutcome> {
        self.stage = Stage::Withdrawn;
        let deletes = self.paths.iter().map(|p| Write::Delete { path: p.clone(), version: Some(0) }).collect();
        Step::Send(vec![Request::Multi(deletes)])
    }

    /// Ours exists (created with `czxid`): where the partition has other
    /// possible names, look for an older claim under one of them.
    fn verify(&mut self, czxid: i64) -> Step<ClaimOutcome> {
        if self.layout.one_name_per_partition() {
            return Step::Done(ClaimOutcome::Claimed { czxid });
        }
        self.stage = Stage::Verify(czxid);
        Step::Send(list(&self.dirs))
    }
}

impl Procedure for Claim {
    type Output = ClaimOutcome;

    fn resume(&mut self, replies: Vec<Reply>) -> Step<ClaimOutcome> {
        match std::mem::replace(&mut self.stage, Stage::Start) {
            // With one name per partition there is nothing to list: the
            // create itself finds a claim already there (`NodeExists`).
            Stage::Start if self.layout.one_name_per_partition() => self.create(),
            Stage::Start => {
                self.stage = Stage::Listed;
                Step::Send(list(&self.dirs))
            }
            Stage::Listed => match existing(&self.layout, &self.tp, &self.dirs, replies) {
                Err(e) => Step::Done(ClaimOutcome::Failed(e)),
                // Another name for the partition: a peer's claim, or an
                // orphan of ours (read them to tell).
                Ok(found) if found.iter().any(|p| !self.paths.contains(p)) => {
                    let others: Vec<String> = found.into_iter().filter(|p| !self.paths.contains(p)).collect();
                    self.stage = Stage::Foreign(others.clone());
                    Step::Send(others.into_iter().map(|path| Request::Data { path, watch: false }).collect())
                }
                Ok(_) => self.create(),
            },
            Stage::Foreign(paths) => {
                let mut orphans = Vec::new();
                for (path, reply) in paths.iter().zip(replies) {
                    match reply.data() {
                        // Ours, from this very session, under a name the
                        // partition no longer has: a claim whose answer was
                        // lost before its leader moved. Nothing was ever
                        // delivered under it; left standing it would block
                        // the partition for as long as the session lives.
                        Ok(Some((data, stat))) if self.ours_in_this_session(&data, &stat) => orphans.push(path.clone()),
                        Ok(Some(_)) => return Step::Done(ClaimOutcome::Taken),
                        Ok(None) => {}
                        Err(e) => return Step::Done(ClaimOutcome::Failed(ZkCallError::new("read", path, e))),
                    }
                }
                if orphans.is_empty() {
                    self.stage = Stage::Listed;
                    return Step::Send(list(&self.dirs));
                }
                tracing::info!(tp = %self.tp, ?orphans, "removing an owner znode of ours left under an old name");
                self.stage = Stage::Orphans;
                let deletes = orphans.into_iter().map(|path| Write::Delete { path, version: None }).collect();
                Step::Send(vec![Request::Multi(deletes)])
            }
            Stage::Orphans => match replies.into_iter().next().map(Reply::multi) {
                Some(Ok(_)) | Some(Err(MultiFailure { code: ZkCode::NoNode, .. })) => {
                    self.stage = Stage::Listed;
                    Step::Send(list(&self.dirs))
                }
                Some(Err(f)) => self.failed("delete orphan", f.code),
                None => self.failed("delete orphan", ZkCode::Other("no reply".into())),
            },
            Stage::Dirs => {
                for (dir, reply) in self.dirs.iter().zip(replies) {
                    if let Err(code) = reply.mkdir() {
                        return Step::Done(ClaimOutcome::Failed(ZkCallError::new("mkdir", dir, code)));
                    }
                }
                self.stage = Stage::Listed;
                Step::Send(list(&self.dirs))
            }
            Stage::Created => match replies.into_iter().next().map(Reply::multi) {
                Some(Ok(stats)) => self.claimed(&stats),
                // No owner directory yet: a topic a wildcard just matched.
                Some(Err(MultiFailure { code: ZkCode::NoNode, .. })) if !self.made_dirs => {
                    self.made_dirs = true;
                    self.stage = Stage::Dirs;
                    Step::Send(self.dirs.iter().map(|d| Request::Mkdir { path: d.clone() }).collect())
                }
                Some(Err(MultiFailure { code: ZkCode::NodeExists, .. })) => {
                    self.stage = Stage::Existing;
                    Step::Send(self.paths.iter().map(|p| Request::Data { path: p.clone(), watch: false }).collect())
                }
                Some(Err(f)) => self.failed("claim", f.code),
                None => self.failed("claim", ZkCode::Other("no reply".into())),
            },
            Stage::Stat => match replies.into_iter().next().map(Reply::data) {
                Some(Ok(Some((_, stat)))) => self.verify(stat.czxid),
                Some(Ok(None)) => self.failed("claim", ZkCode::Other("vanished right after its creation".into())),
                Some(Err(e)) => self.failed("stat", e),
                None => self.failed("stat", ZkCode::Other("no reply".into())),
            },
            Stage::Existing => {
                let mut ours = Vec::new();
                for reply in replies {
                    match reply.data() {
                        // Created by this very session: a retried create
                        // whose answer was lost.
                        Ok(Some((data, stat))) if self.ours_in_this_session(&data, &stat) => ours.push(stat),
                        // A peer's — or an earlier incarnation's of this
                        // member id, which is waited out like a peer's: no
                        // transaction could tell its znode from one a peer
                        // creates at the same path the moment it expires.
                        Ok(_) => return Step::Done(ClaimOutcome::Taken),
                        Err(e) => return self.failed("read", e),
                    }
                }
                match ours.first() {
                    Some(stat) => self.verify(stat.czxid),
                    None => Step::Done(ClaimOutcome::Taken),
                }
            }
            Stage::Verify(czxid) => match existing(&self.layout, &self.tp, &self.dirs, replies) {
                Err(e) => Step::Done(ClaimOutcome::Failed(e)),
                Ok(found) => {
                    let others: Vec<String> = found.into_iter().filter(|p| !self.paths.contains(p)).collect();
                    if others.is_empty() {
                        return Step::Done(ClaimOutcome::Claimed { czxid });
                    }
                    self.stage = Stage::Compare(czxid, others.clone());
                    Step::Send(others.into_iter().map(|path| Request::Data { path, watch: false }).collect())
                }
            },
            Stage::Compare(czxid, others) => {
                let mut older = false;
                for (path, reply) in others.iter().zip(replies) {
                    match reply.data() {
                        Ok(Some((_, stat))) => older |= stat.czxid < czxid,
                        Ok(None) => {}
                        Err(e) => return Step::Done(ClaimOutcome::Failed(ZkCallError::new("read", path, e))),
                    }
                }
                if !older {
                    return Step::Done(ClaimOutcome::Claimed { czxid });
                }
                tracing::info!(tp = %self.tp, "an older claim under another owner name won; withdrawing ours");
                self.withdraw()
            }
            Stage::Withdrawn => match replies.into_iter().next().map(Reply::multi) {
                Some(Ok(_)) | Some(Err(MultiFailure { code: ZkCode::NoNode, .. })) => Step::Done(ClaimOutcome::Taken),
                // Gone with the session.
                Some(Err(f)) if f.code.ends_session() => Step::Done(ClaimOutcome::Taken),
                // Left standing it would block the partition: try again.
                Some(Err(_)) | None => {
                    self.stage = Stage::WithdrawAgain;
                    Step::Sleep(std::time::Duration::from_millis(100))
                }
            },
            Stage::WithdrawAgain => self.withdraw(),
        }
    }
}

#[derive(Debug)]
enum WaitStage {
    List,
    Watch,
    Watching,
}

/// Resolves when no owner znode of a partition is left: lists them, and
/// watches the first one left until it goes, again and again.
#[derive(Debug)]
pub struct AwaitOwnersGone {
    layout: GroupLayout,
    tp: TopicPartition,
    dirs: Vec<String>,
    stage: WaitStage,
}

impl AwaitOwnersGone {
    /// Waits for `tp`'s owner znodes, under any name and spelling.
    pub fn new(layout: GroupLayout, tp: TopicPartition) -> Self {
        let dirs = layout.owner_dirs(&tp.topic);
        AwaitOwnersGone { layout, tp, dirs, stage: WaitStage::List }
    }
}

impl Procedure for AwaitOwnersGone {
    type Output = Result<(), ZkCallError>;

    fn resume(&mut self, replies: Vec<Reply>) -> Step<Self::Output> {
        match std::mem::replace(&mut self.stage, WaitStage::List) {
            WaitStage::List => {
                self.stage = WaitStage::Watch;
                Step::Send(list(&self.dirs))
            }
            WaitStage::Watch => match existing(&self.layout, &self.tp, &self.dirs, replies) {
                Err(e) => Step::Done(Err(e)),
                Ok(found) => match found.into_iter().next() {
                    None => Step::Done(Ok(())),
                    Some(first) => {
                        self.stage = WaitStage::Watching;
                        Step::Send(vec![Request::Data { path: first, watch: true }])
                    }
                },
            },
            WaitStage::Watching => match replies.into_iter().next().map(Reply::data) {
                // Gone already: look again (another may be left).
                Some(Ok(None)) => self.resume(Vec::new()),
                Some(Ok(Some(_))) => Step::AwaitWatch,
                Some(Err(e)) => Step::Done(Err(ZkCallError::new("watch owner", &self.dirs[0], e))),
                None => {
                    Step::Done(Err(ZkCallError::new("watch owner", &self.dirs[0], ZkCode::Other("no reply".into()))))
                }
            },
        }
    }
}
