//! The simulator's executor of protocol operations: each batch reaches the
//! model's server after a network delay, is carried out there against the
//! state of that moment (reads may lag, as ZooKeeper's do), and its replies
//! come back after another delay — so peers act between any two round
//! trips, and an answer can arrive after the session that asked died. The
//! connection behaves as zookeeper-client's: a batch sent while
//! disconnected waits for the reconnect, one in flight when the connection
//! drops fails with `ConnectionLoss`, and everything fails with
//! `SessionExpired` once the session is gone.

use std::time::Duration;

use crate::balance::{Input, SessionEvent, Time};
use crate::protocol::ops::{MultiFailure, Step, Write};
use crate::protocol::{admit, Answer, Operation, Procedure, Reply, Request};
use crate::zk_call::ZkCode;
use crate::znode::OwnerName;

use super::model::{SessionId, View, WatchOn};
use super::world::{Ev, InFlight, World};

/// What the model's server answers to a read, from the state `view`.
pub(super) fn read(view: &View, request: &Request) -> Reply {
    match request {
        Request::Children { path, .. } => match view.get(path) {
            None => Reply::Children(Err(ZkCode::NoNode)),
            Some(_) => Reply::Children(Ok(view.children(path))),
        },
        // The model answers registrations fresh: what the driver's cache
        // must equal.
        Request::Data { path, .. } | Request::Registration { path } => {
            Reply::Data(Ok(view.get(path).map(|n| (n.data.clone(), n.stat()))))
        }
        Request::Mkdir { .. } | Request::Multi(_) => unreachable!("a write, not a read"),
    }
}

/// Reads a group from the model's latest state, as a member's read would
/// (the simulator's adapter of the protocol's reads, without the network).
pub fn read_group(
    model: &super::ZkModel,
    mut read_group: crate::protocol::ReadGroup,
) -> Result<crate::protocol::GroupRead, crate::zk_call::ZkCallError> {
    let view = model.latest();
    let mut replies = Vec::new();
    loop {
        match read_group.resume(std::mem::take(&mut replies)) {
            Step::Done(out) => return out,
            Step::Send(batch) => replies = batch.iter().map(|r| read(&view, r)).collect(),
            Step::AwaitWatch | Step::Sleep(_) => {}
        }
    }
}

fn failed(batch: &[Request], code: &ZkCode) -> Vec<Reply> {
    batch
        .iter()
        .map(|r| match r {
            Request::Children { .. } => Reply::Children(Err(code.clone())),
            Request::Data { .. } | Request::Registration { .. } => Reply::Data(Err(code.clone())),
            Request::Mkdir { .. } => Reply::Mkdir(Err(code.clone())),
            Request::Multi(_) => Reply::Multi(Err(MultiFailure { index: None, code: code.clone() })),
        })
        .collect()
}

impl World<'_> {
    /// Starts an operation for member `m` in its current session.
    pub(super) fn start(&mut self, m: usize, op: Operation) {
        let id = self.next_op;
        self.next_op += 1;
        let member = &mut self.members[m];
        if let Some(tp) = op.awaits_owners_of() {
            if let Some(old) = member.owner_waits.insert(tp.clone(), id) {
                member.ops.remove(&old);
                member.awaiting.retain(|_, o| *o != old);
            }
        }
        let flight = InFlight { op, session: member.session, epoch: member.epoch, batch: Vec::new(), watched: None };
        member.ops.insert(id, flight);
        self.advance(m, id, Vec::new());
    }

    /// Resumes operation `id` with `replies` and carries out its next step.
    pub(super) fn advance(&mut self, m: usize, id: u64, replies: Vec<Reply>) {
        let Some(flight) = self.members[m].ops.get_mut(&id) else { return };
        match flight.op.resume(replies) {
            Step::Send(batch) => {
                flight.watched = batch.iter().rev().find_map(|r| match r {
                    Request::Data { path, watch: true } => Some(path.clone()),
                    _ => None,
                });
                flight.batch = batch;
                if self.members[m].connected {
                    let d = self.net();
                    self.schedule(d, Ev::Batch { m, op: id });
                } else {
                    self.members[m].queued.push(id);
                }
            }
            Step::AwaitWatch => match flight.watched.clone() {
                Some(path) => {
                    self.members[m].awaiting.insert(path, id);
                }
                None => self.advance(m, id, Vec::new()),
            },
            Step::Sleep(d) => self.schedule(d, Ev::Resume { m, op: id }),
            Step::Done(answer) => {
                let flight = self.members[m].ops.remove(&id).expect("in flight");
                self.members[m].owner_waits.retain(|_, o| *o != id);
                // Each operation answers from a task of its own: a busy
                // runtime may let the session watcher's events overtake it.
                let d = self.task_delay();
                self.schedule(d, Ev::Answer { m, epoch: flight.epoch, answer });
            }
        }
    }

    /// How long a task waits to be scheduled: under a millisecond, and now
    /// and then (`slow_replies`) 100–600 ms on a busy runtime.
    fn task_delay(&mut self) -> Time {
        if self.rng.chance(self.cfg.slow_replies) {
            return Duration::from_millis(100 + self.rng.below(500));
        }
        Duration::from_micros(self.rng.below(1000))
    }

    /// An answer reaches the member's driver: fed to the machine if the
    /// driver admits it (it is from the current session).
    pub(super) fn answer(&mut self, m: usize, epoch: u64, answer: Answer) {
        if self.members[m].stalled_until > self.now {
            let wait = self.members[m].stalled_until - self.now;
            self.schedule(wait, Ev::Answer { m, epoch, answer });
            return;
        }
        let Some(input) = answer.input else { return };
        let member = &self.members[m];
        if admit(member.machine.config(), member.epoch, epoch, &input) {
            self.feed(m, input);
        } else {
            self.log(|| format!("m{m} drops an answer from its earlier session: {}", short(&input)));
        }
    }

    /// A batch reaches the server.
    pub(super) fn batch(&mut self, m: usize, id: u64) {
        let Some(flight) = self.members[m].ops.get(&id) else { return };
        if !self.members[m].alive {
            return;
        }
        let (session, batch) = (flight.session, flight.batch.clone());
        let awaited = flight.op.awaits_owners_of().is_some();
        if !self.members[m].connected {
            // In flight when the connection dropped.
            self.schedule(Time::ZERO, Ev::Replies { m, op: id, replies: failed(&batch, &ZkCode::ConnectionLoss) });
            return;
        }
        if self.model.touch(session, self.now).is_err() {
            // Only the current session's client hears of its expiry; an old
            // one's requests just fail (the driver drops their answers).
            if session == self.members[m].session {
                self.tell_expired(m);
            }
            let d = self.net();
            self.schedule(d, Ev::Replies { m, op: id, replies: failed(&batch, &ZkCode::SessionExpired) });
            return;
        }
        let lag = self.rng.below(self.cfg.max_read_lag as u64 + 1) as usize;
        let replies: Vec<Reply> = batch.iter().map(|r| self.serve(m, session, r, lag, awaited)).collect();
        debug_assert_eq!(replies.len(), batch.len());
        self.members[m].last_zxid = self.members[m].last_zxid.max(self.model.zxid());
        let d = self.net();
        self.schedule(d, Ev::Replies { m, op: id, replies });
    }

    fn serve(&mut self, m: usize, session: SessionId, request: &Request, lag: usize, awaited: bool) -> Reply {
        let view = self.model.view(self.members[m].last_zxid, lag);
        let latest = self.model.latest();
        // A watch set by a read fires for any change after the state the
        // read returned: on a lagging server, the changes still to be
        // applied fire it as they arrive.
        let watch = |w: &mut Self, on: WatchOn, stale: bool| {
            if stale {
                let d = w.net();
                w.schedule(d, Ev::Notify { m, on });
            } else {
                w.model.watch(session, on);
            }
        };
        match request {
            Request::Children { path, watch: set } => {
                if *set && view.get(path).is_some() {
                    watch(self, WatchOn::Children(path.clone()), view.children(path) != latest.children(path));
                }
                read(&view, request)
            }
            Request::Data { path, watch: set } => {
                let found = view.get(path);
                // An owner wait watches only an owner that exists (as
                // get-and-watch does); a group read sets existence watches.
                if *set && (!awaited || found.is_some()) {
                    watch(self, WatchOn::Node(path.clone()), found != latest.get(path));
                }
                read(&view, request)
            }
            Request::Registration { .. } => read(&view, request),
            Request::Mkdir { path } => {
                let fired = self.model.mkdir(path);
                self.notify(fired);
                Reply::Mkdir(Ok(()))
            }
            Request::Multi(writes) => {
                self.check_release(m, session, writes);
                match self.model.apply(Some(session), writes, self.now) {
                    Ok((stats, fired)) => {
                        self.notify(fired);
                        Reply::Multi(Ok(stats))
                    }
                    Err(f) => Reply::Multi(Err(f)),
                }
            }
        }
    }

    /// Release before reassign: an owner znode of ours is deleted only once
    /// the application let go of its partition.
    fn check_release(&mut self, m: usize, session: SessionId, writes: &[Write]) {
        for w in writes {
            let Write::Delete { path, .. } = w else { continue };
            let ours = self.model.latest().get(path).is_some_and(|n| n.owner == Some(session));
            let Some((dir, name)) = path.rsplit_once('/') else { continue };
            let Ok(name) = OwnerName::parse(self.cfg.flavour, dir, name) else { continue };
            let held: Vec<_> = self.members[m]
                .app
                .holds
                .keys()
                .filter(|tp| {
                    tp.partition == name.partition()
                        && self.members[m].cx.layout.owner_dirs(&tp.topic).iter().any(|d| d == dir)
                })
                .cloned()
                .collect();
            if ours && !held.is_empty() {
                self.violate(
                    "release before reassign",
                    format!("m{m} deleted its owner znode of {} while its application still held it", held[0]),
                );
            }
        }
    }

    /// Replies reach the member.
    pub(super) fn replies(&mut self, m: usize, id: u64, replies: Vec<Reply>) {
        if !self.members[m].alive || !self.members[m].ops.contains_key(&id) {
            return;
        }
        if self.members[m].stalled_until > self.now {
            let wait = self.members[m].stalled_until - self.now;
            self.schedule(wait, Ev::Replies { m, op: id, replies });
            return;
        }
        let replies = if self.members[m].connected {
            replies
        } else {
            // The connection dropped while they were on their way.
            failed(&self.members[m].ops[&id].batch, &ZkCode::ConnectionLoss)
        };
        self.advance(m, id, replies);
    }

    pub(super) fn tell_expired(&mut self, m: usize) {
        if self.members[m].expiry_told {
            return;
        }
        self.members[m].expiry_told = true;
        let d = self.net();
        self.schedule(d, Ev::Deliver { m, input: Input::Session(SessionEvent::Expired) });
        for id in std::mem::take(&mut self.members[m].queued) {
            let batch = self.members[m].ops.get(&id).map(|f| f.batch.clone()).unwrap_or_default();
            self.schedule(Time::ZERO, Ev::Replies { m, op: id, replies: failed(&batch, &ZkCode::SessionExpired) });
        }
    }

    /// The machine asks for a new session: the request goes out when the
    /// member is connected.
    pub(super) fn request_session(&mut self, m: usize) {
        if self.members[m].connected {
            let d = self.net();
            self.schedule(d, Ev::Connect { m });
        } else {
            self.members[m].connect_pending = true;
        }
    }

    /// A new session is opened on the server.
    pub(super) fn connect(&mut self, m: usize) {
        if !self.members[m].alive || self.members[m].stopped {
            return;
        }
        if !self.members[m].connected {
            self.members[m].connect_pending = true;
            return;
        }
        let s = self.model.open_session(self.cfg.session_timeout, self.now);
        let member = &mut self.members[m];
        member.session = s;
        member.epoch += 1;
        member.expiry_told = false;
        member.cx.session = s as i64;
        member.awaiting.clear();
        member.app.lease = super::app::session_lease(member.machine.config());
        self.log(|| format!("m{m} opens session {s}"));
        let d = self.net();
        self.schedule(d, Ev::Deliver { m, input: Input::Session(SessionEvent::Established) });
        self.schedule(Time::ZERO, Ev::Heartbeat { m, session: s });
    }

    /// A watch fired for a member.
    pub(super) fn notified(&mut self, m: usize, on: WatchOn) {
        if !self.members[m].alive || self.members[m].stopped {
            return;
        }
        if !self.members[m].connected {
            // Around a disconnect a notification may be lost for good.
            if self.rng.chance(self.cfg.lose_notifications) {
                self.log(|| format!("m{m} loses a notification for {on:?}"));
                return;
            }
            let wait = self.members[m].disconnected_until.saturating_sub(self.now);
            self.schedule(wait + Duration::from_millis(1), Ev::Notify { m, on });
            return;
        }
        if let WatchOn::Node(path) = &on {
            if let Some(id) = self.members[m].awaiting.remove(path) {
                self.advance(m, id, Vec::new());
                return;
            }
        }
        self.feed(m, Input::Changed);
    }

    /// The client confirms its session (a `sync`): the server hears it,
    /// and the answer renews the machine's lease.
    pub(super) fn heartbeat(&mut self, m: usize, session: SessionId) {
        let member = &self.members[m];
        if session != member.session || !member.alive || member.stopped {
            return;
        }
        let interval = member.machine.config().heartbeat_interval();
        if member.connected && member.stalled_until <= self.now {
            let (sent_at, epoch) = (self.now, member.epoch);
            match self.model.touch(session, self.now) {
                Ok(()) => {
                    let answer = Answer { input: Some(Input::Heartbeat { sent_at }), skipped: Vec::new() };
                    let d = self.net();
                    self.schedule(d, Ev::Answer { m, epoch, answer });
                }
                Err(_) => self.tell_expired(m),
            }
        }
        let next =
            if self.members[m].stalled_until > self.now { self.members[m].stalled_until - self.now } else { interval };
        self.schedule(next, Ev::Heartbeat { m, session });
    }

    /// A disconnected member's network comes back.
    pub(super) fn reconnect(&mut self, m: usize) {
        if !self.members[m].alive || self.members[m].connected || self.now < self.members[m].disconnected_until {
            return;
        }
        self.members[m].connected = true;
        let session = self.members[m].session;
        if self.model.touch(session, self.now).is_ok() {
            self.log(|| format!("m{m} reconnects with session {session}"));
            if std::mem::take(&mut self.members[m].noticed_disconnect) {
                let d = self.net();
                self.schedule(d, Ev::Deliver { m, input: Input::Session(SessionEvent::Reconnected) });
            }
            for id in std::mem::take(&mut self.members[m].queued) {
                let d = self.net();
                self.schedule(d, Ev::Batch { m, op: id });
            }
        } else {
            self.log(|| format!("m{m} reconnects to find session {session} expired"));
            self.tell_expired(m);
        }
        if std::mem::take(&mut self.members[m].connect_pending) {
            self.request_session(m);
        }
    }
}

/// A compact label of an input, for the timeline.
fn short(input: &Input) -> String {
    format!("{input:?}").chars().take(80).collect()
}
