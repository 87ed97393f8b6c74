//! What a driver does with the state machine's actions, written once for
//! the production driver and the simulator: which procedure carries out
//! which action and what its result tells the machine ([`Operation`]); when
//! a revoked partition may be released ([`Handover`]); which answers are
//! still the current session's ([`admit`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::balance::{Action, BalanceConfig, Input, Time};
use crate::ids::{TopicName, TopicPartition};

use super::claim::{AwaitOwnersGone, Claim};
use super::layout::GroupLayout;
use super::member::{Deregister, Register, Release};
use super::ops::{Procedure, Reply, Step};
use super::read::ReadGroup;
use super::snapshot::Skipped;

/// What a driver needs to turn actions into procedures.
#[derive(Debug, Clone)]
pub struct Context {
    /// This member's znodes.
    pub layout: GroupLayout,
    /// The ZooKeeper session the requests go out in (to recognise our
    /// own ephemerals).
    pub session: i64,
    /// The topics it registers for.
    pub topics: Vec<TopicName>,
    /// Its member znode's payload.
    pub payload: Vec<u8>,
    /// Whether wildcard subscriptions leave internal topics out (Scala's
    /// `exclude.internal.topics`).
    pub exclude_internal_topics: bool,
}

/// An action in progress as ZooKeeper round trips.
#[derive(Debug)]
pub enum Operation {
    /// [`Action::ReadGroup`].
    Read(ReadGroup),
    /// [`Action::Claim`].
    Claim(TopicPartition, Claim),
    /// [`Action::WatchOwner`].
    AwaitOwners(TopicPartition, AwaitOwnersGone),
    /// [`Action::DeleteOwner`].
    Release(TopicPartition, Release),
    /// [`Action::Register`].
    Register(Register),
    /// [`Action::Deregister`].
    Deregister(Deregister),
}

/// What an operation ends with: the input for the machine, if any, and
/// what a group read could not use.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Fed to the machine (tagged with the session it was asked in).
    pub input: Option<Input>,
    /// Znodes a read skipped, to log and count.
    pub skipped: Vec<Skipped>,
}

impl Answer {
    fn of(input: Input) -> Self {
        Answer { input: Some(input), skipped: Vec::new() }
    }
}

impl Operation {
    /// The operation that carries `action` out, if it talks to ZooKeeper.
    pub fn for_action(action: &Action, cx: &Context) -> Option<Operation> {
        let layout = cx.layout.clone();
        Some(match action {
            Action::ReadGroup => Operation::Read(
                ReadGroup::new(layout.group.clone(), layout.flavour)
                    .exclude_internal_topics(cx.exclude_internal_topics),
            ),
            Action::Claim { tp, slot, name } => {
                Operation::Claim(tp.clone(), Claim::new(layout, cx.session, tp.clone(), slot, *name))
            }
            Action::WatchOwner(tp) => Operation::AwaitOwners(tp.clone(), AwaitOwnersGone::new(layout, tp.clone())),
            Action::DeleteOwner { tp, name, czxid } => {
                Operation::Release(tp.clone(), Release::new(&layout, cx.session, tp, *name, *czxid))
            }
            Action::Register => Operation::Register(Register::new(layout, cx.session, &cx.topics, cx.payload.clone())),
            Action::Deregister => Operation::Deregister(Deregister::new(&layout, cx.session)),
            _ => return None,
        })
    }

    /// The partition an owner wait is for (a driver cancels it on
    /// [`Action::Unwatch`]).
    pub fn awaits_owners_of(&self) -> Option<&TopicPartition> {
        match self {
            Operation::AwaitOwners(tp, _) => Some(tp),
            _ => None,
        }
    }
}

impl Procedure for Operation {
    type Output = Answer;

    fn resume(&mut self, replies: Vec<Reply>) -> Step<Answer> {
        fn map<T>(step: Step<T>, f: impl FnOnce(T) -> Answer) -> Step<Answer> {
            match step {
                Step::Send(b) => Step::Send(b),
                Step::AwaitWatch => Step::AwaitWatch,
                Step::Sleep(d) => Step::Sleep(d),
                Step::Done(out) => Step::Done(f(out)),
            }
        }
        match self {
            Operation::Read(p) => map(p.resume(replies), |r| match r {
                Ok(read) => Answer { input: Some(Input::Snapshot(read.snapshot)), skipped: read.skipped },
                Err(e) => Answer::of(Input::ReadFailed(e)),
            }),
            Operation::Claim(tp, p) => {
                let tp = tp.clone();
                map(p.resume(replies), |outcome| Answer::of(Input::ClaimResult { tp, outcome }))
            }
            Operation::AwaitOwners(tp, p) => {
                let tp = tp.clone();
                // On a failure the claim's backoff retries anyway.
                map(p.resume(replies), |r| Answer { input: r.ok().map(|()| Input::OwnerGone(tp)), skipped: Vec::new() })
            }
            Operation::Release(tp, p) => {
                let tp = tp.clone();
                map(p.resume(replies), |()| Answer::of(Input::OwnerDeleted(tp)))
            }
            Operation::Register(p) => map(p.resume(replies), |r| match r {
                Ok(()) => Answer::of(Input::Registered),
                Err(e) => Answer::of(Input::RegisterFailed(e)),
            }),
            Operation::Deregister(p) => map(p.resume(replies), |r| {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "deleting the member znode failed; closing the session removes it");
                }
                Answer::of(Input::Deregistered)
            }),
        }
    }
}

/// Whether an answer to a request made in session `sent_in` may be fed to
/// the machine now that the driver is in session `current`: an answer from
/// an earlier session is about znodes that died with it.
pub fn admit(cfg: &BalanceConfig, current: u64, sent_in: u64, input: &Input) -> bool {
    if sent_in == current {
        return true;
    }
    #[cfg(feature = "mutants")]
    if cfg.mutant == Some(crate::balance::Mutant::StaleClaimReplies) && matches!(input, Input::ClaimResult { .. }) {
        return true;
    }
    let _ = (cfg, input);
    false
}

/// The revoke → release hand-over: a revoked partition's owner znode may
/// be deleted only once the application let go of it (after its last
/// commit), or once the revoke timeout passed — never before.
#[derive(Debug)]
pub struct Handover {
    timeout: Duration,
    /// Revoked partitions not yet let go, with their deadline.
    pending: BTreeMap<TopicPartition, Time>,
    early: bool,
}

impl Handover {
    /// Waits at most `timeout` for the application.
    pub fn new(cfg: &BalanceConfig, timeout: Duration) -> Self {
        #[cfg(feature = "mutants")]
        let early = cfg.mutant == Some(crate::balance::Mutant::ReleaseBeforeRevoke);
        #[cfg(not(feature = "mutants"))]
        let early = {
            let _ = cfg;
            false
        };
        Handover { timeout, pending: BTreeMap::new(), early }
    }

    /// `tp` is revoked at `now`; waits for the application unless
    /// `wait_for_app` is false (nobody holds leases), then it is released
    /// at once.
    pub fn revoke(&mut self, now: Time, tp: TopicPartition, wait_for_app: bool) -> Option<Input> {
        if !wait_for_app || self.early {
            return Some(Input::Released(tp));
        }
        self.pending.insert(tp, now + self.timeout);
        None
    }

    /// The application let go of `tp`.
    pub fn let_go(&mut self, tp: &TopicPartition) -> Option<Input> {
        self.pending.remove(tp).map(|_| Input::Released(tp.clone()))
    }

    /// Partitions whose revoke timeout passed at `now`: released anyway.
    pub fn overdue(&mut self, now: Time) -> Vec<TopicPartition> {
        let due: Vec<TopicPartition> =
            self.pending.iter().filter(|(_, at)| **at <= now).map(|(tp, _)| tp.clone()).collect();
        for tp in &due {
            self.pending.remove(tp);
        }
        due
    }

    /// Forgets everything (the partitions were lost).
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.pending.remove(tp);
    }

    /// When the next revoke timeout falls.
    pub fn next_deadline(&self) -> Option<Time> {
        self.pending.values().min().copied()
    }
}
