//! A member's own znodes: registering (creating the group's directories and
//! the member znode, taking over one left by an earlier incarnation of a
//! static member id), leaving, and releasing owner znodes.

use std::time::Duration;

use crate::ids::{TopicName, TopicPartition};
use crate::zk_call::{ZkCallError, ZkCode};
use crate::znode::OwnerName;

use super::layout::GroupLayout;
use super::ops::{MultiFailure, Procedure, Reply, Request, Step, Write};

#[derive(Debug)]
enum RegisterStage {
    Start,
    Dirs(Vec<String>),
    Created,
    Existing,
    Replaced,
}

/// Registers a member (see the [module docs](self)).
#[derive(Debug)]
pub struct Register {
    layout: GroupLayout,
    session: i64,
    dirs: Vec<String>,
    payload: Vec<u8>,
    stage: RegisterStage,
}

impl Register {
    /// Registers `layout.member` with `payload` for `topics`, in session
    /// `session`.
    pub fn new<'a>(
        layout: GroupLayout,
        session: i64,
        topics: impl IntoIterator<Item = &'a TopicName>,
        payload: Vec<u8>,
    ) -> Self {
        let dirs = layout.directories(topics);
        Register { layout, session, dirs, payload, stage: RegisterStage::Start }
    }

    fn create(&mut self) -> Step<Result<(), ZkCallError>> {
        self.stage = RegisterStage::Created;
        let path = self.layout.member_path();
        Step::Send(vec![Request::Multi(vec![Write::Create { path, data: self.payload.clone(), ephemeral: true }])])
    }

    fn failed(&self, op: &'static str, code: ZkCode) -> Step<Result<(), ZkCallError>> {
        Step::Done(Err(ZkCallError::new(op, self.layout.member_path(), code)))
    }
}

impl Procedure for Register {
    type Output = Result<(), ZkCallError>;

    fn resume(&mut self, replies: Vec<Reply>) -> Step<Self::Output> {
        match std::mem::replace(&mut self.stage, RegisterStage::Start) {
            RegisterStage::Start => {
                let dirs = self.dirs.clone();
                self.stage = RegisterStage::Dirs(dirs.clone());
                Step::Send(dirs.into_iter().map(|path| Request::Mkdir { path }).collect())
            }
            RegisterStage::Dirs(dirs) => {
                for (dir, reply) in dirs.iter().zip(replies) {
                    if let Err(code) = reply.mkdir() {
                        return Step::Done(Err(ZkCallError::new("mkdir", dir, code)));
                    }
                }
                self.create()
            }
            RegisterStage::Created => match replies.into_iter().next().map(Reply::multi) {
                Some(Ok(_)) => Step::Done(Ok(())),
                Some(Err(MultiFailure { code: ZkCode::NodeExists, .. })) => {
                    self.stage = RegisterStage::Existing;
                    Step::Send(vec![Request::Data { path: self.layout.member_path(), watch: false }])
                }
                Some(Err(f)) => self.failed("create", f.code),
                None => self.failed("create", ZkCode::Other("no reply".into())),
            },
            RegisterStage::Existing => match replies.into_iter().next().map(Reply::data) {
                Some(Ok(Some((_, stat)))) if stat.ephemeral_owner == self.session => Step::Done(Ok(())),
                Some(Ok(Some((_, stat)))) => {
                    let path = self.layout.member_path();
                    tracing::info!(%path, "taking over the member znode of an earlier incarnation");
                    self.stage = RegisterStage::Replaced;
                    Step::Send(vec![Request::Multi(vec![
                        Write::Delete { path: path.clone(), version: Some(stat.version) },
                        Write::Create { path, data: self.payload.clone(), ephemeral: true },
                    ])])
                }
                // Gone meanwhile: create it after all.
                Some(Ok(None)) => self.create(),
                Some(Err(e)) => self.failed("read", e),
                None => self.failed("read", ZkCode::Other("no reply".into())),
            },
            RegisterStage::Replaced => match replies.into_iter().next().map(Reply::multi) {
                Some(Ok(_)) => Step::Done(Ok(())),
                Some(Err(f)) => self.failed("replace", f.code),
                None => self.failed("replace", ZkCode::Other("no reply".into())),
            },
        }
    }
}

/// Deletes znodes if this session holds them (and, given one, only the
/// znode of that creation zxid), one path after another.
#[derive(Debug)]
struct DeleteOurs {
    session: i64,
    czxid: Option<i64>,
    paths: Vec<String>,
    next: usize,
    deleting: bool,
}

enum Deleted {
    Step(Step<()>),
    Failed(ZkCallError),
}

impl DeleteOurs {
    fn resume(&mut self, replies: Vec<Reply>) -> Deleted {
        let Some(path) = self.paths.get(self.next).cloned() else { return Deleted::Step(Step::Done(())) };
        if self.deleting {
            self.deleting = false;
            match replies.into_iter().next().map(Reply::multi) {
                Some(Ok(_)) | Some(Err(MultiFailure { code: ZkCode::NoNode, .. })) => {
                    self.next += 1;
                    return self.resume(Vec::new());
                }
                Some(Err(f)) => return Deleted::Failed(ZkCallError::new("delete", path, f.code)),
                None => return Deleted::Failed(ZkCallError::new("delete", path, ZkCode::Other("no reply".into()))),
            }
        }
        match replies.into_iter().next().map(Reply::data) {
            None => Deleted::Step(Step::Send(vec![Request::Data { path, watch: false }])),
            Some(Ok(Some((_, stat))))
                if stat.ephemeral_owner == self.session && self.czxid.is_none_or(|c| c == stat.czxid) =>
            {
                self.deleting = true;
                Deleted::Step(Step::Send(vec![Request::Multi(vec![Write::Delete {
                    path,
                    version: Some(stat.version),
                }])]))
            }
            // Someone else's (our session ended and a peer claimed), a later
            // znode than the one meant, or gone.
            Some(Ok(_)) => {
                self.next += 1;
                self.resume(Vec::new())
            }
            Some(Err(e)) => Deleted::Failed(ZkCallError::new("read", path, e)),
        }
    }
}

/// Deletes the member znode if it is this session's.
#[derive(Debug)]
pub struct Deregister(DeleteOurs);

impl Deregister {
    /// Leaves: `layout.member`'s znode, if session `session` holds it.
    pub fn new(layout: &GroupLayout, session: i64) -> Self {
        Deregister(DeleteOurs { session, czxid: None, paths: vec![layout.member_path()], next: 0, deleting: false })
    }
}

impl Procedure for Deregister {
    type Output = Result<(), ZkCallError>;

    fn resume(&mut self, replies: Vec<Reply>) -> Step<Self::Output> {
        match self.0.resume(replies) {
            Deleted::Step(Step::Done(())) => Step::Done(Ok(())),
            Deleted::Step(Step::Send(b)) => Step::Send(b),
            Deleted::Step(Step::AwaitWatch) => Step::AwaitWatch,
            Deleted::Step(Step::Sleep(d)) => Step::Sleep(d),
            Deleted::Failed(e) => Step::Done(Err(e)),
        }
    }
}

/// Deletes this session's owner znodes of a partition; retries through
/// connection loss with backoff, and is done once they are gone, are no
/// longer ours, or the session is over (its ephemerals went with it).
#[derive(Debug)]
pub struct Release {
    delete: DeleteOurs,
    backoff: Duration,
}

impl Release {
    /// Releases `tp`, claimed under `name` (the znodes created at `czxid`),
    /// in session `session`.
    pub fn new(layout: &GroupLayout, session: i64, tp: &TopicPartition, name: OwnerName, czxid: i64) -> Self {
        let paths = layout.owner_paths(tp, name);
        let delete = DeleteOurs { session, czxid: Some(czxid), paths, next: 0, deleting: false };
        Release { delete, backoff: Duration::from_millis(50) }
    }
}

impl Procedure for Release {
    type Output = ();

    fn resume(&mut self, replies: Vec<Reply>) -> Step<()> {
        match self.delete.resume(replies) {
            Deleted::Step(step) => step,
            Deleted::Failed(e) if e.code.ends_session() => {
                tracing::debug!(error = %e, "session over: its owner znodes are gone with it");
                Step::Done(())
            }
            Deleted::Failed(e) => {
                tracing::warn!(error = %e, "deleting an owner znode failed; retrying");
                self.delete.deleting = false;
                let wait = self.backoff;
                self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
                Step::Sleep(wait)
            }
        }
    }
}
