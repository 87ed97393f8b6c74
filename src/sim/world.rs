//! The discrete-event world: a virtual clock, a seeded scheduler, the
//! ZooKeeper model, and members whose real [`Balancer`]s are driven the way
//! the production driver drives them — the same protocol operations, the
//! same hand-over, the same admission of answers — against the model.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use crate::balance::{Action, BalanceConfig, Balancer, Input, Time};
use crate::ids::{BrokerId, GroupId, MemberId, PartitionId, TopicName, TopicPartition};
use crate::protocol::{Answer, Context, GroupLayout, Handover, Operation, Reply, Request};
use crate::znode::{layout, Codec, Flavour, PartitionState, Subscription, TopicRegistration};

use super::app::App;
use super::model::{SessionId, WatchOn, ZkModel};
use super::scenario::{Report, Rng, SimConfig, Step, Violation};

#[derive(Debug, Clone)]
pub(super) enum Ev {
    Step(usize),
    /// An input the member's driver feeds (start, session events).
    Deliver {
        m: usize,
        input: Input,
    },
    /// A finished operation's answer (or a heartbeat), tagged with the
    /// session epoch it was asked in.
    Answer {
        m: usize,
        epoch: u64,
        answer: Answer,
    },
    /// An operation's batch reaches the server.
    Batch {
        m: usize,
        op: u64,
    },
    /// Its replies reach the member.
    Replies {
        m: usize,
        op: u64,
        replies: Vec<Reply>,
    },
    /// An operation's backoff ended.
    Resume {
        m: usize,
        op: u64,
    },
    /// A request for a new session reaches the server.
    Connect {
        m: usize,
    },
    Timer {
        m: usize,
        at: Time,
    },
    Heartbeat {
        m: usize,
        session: SessionId,
    },
    Reconnect {
        m: usize,
    },
    Notify {
        m: usize,
        on: WatchOn,
    },
    AppRelease {
        m: usize,
        tp: TopicPartition,
    },
    ForeignRelease(String),
    /// A two-step peer writes its registration into its member znode.
    PeerFills(String),
    Settle,
}

/// An operation under way.
#[derive(Debug)]
pub(super) struct InFlight {
    pub op: Operation,
    pub session: SessionId,
    pub epoch: u64,
    pub batch: Vec<Request>,
    /// The path its last batch left an awaited watch on.
    pub watched: Option<String>,
}

#[derive(Debug)]
pub(super) struct Member {
    pub id: MemberId,
    /// Which member this is an incarnation of (its subscription follows).
    pub index: usize,
    pub machine: Balancer,
    pub session: SessionId,
    /// Bumped at every new session, as the driver's.
    pub epoch: u64,
    pub alive: bool,
    pub stopped: bool,
    pub connected: bool,
    /// Whether the client noticed the current disconnection (and so will
    /// report the reconnect).
    pub noticed_disconnect: bool,
    pub disconnected_until: Time,
    pub stalled_until: Time,
    pub expiry_told: bool,
    pub connect_pending: bool,
    pub last_zxid: i64,
    pub timer_at: Option<Time>,
    pub cx: Context,
    pub ops: BTreeMap<u64, InFlight>,
    /// Batches sent while disconnected: they go out on reconnect.
    pub queued: Vec<u64>,
    /// Watched path → the operation awaiting it.
    pub awaiting: BTreeMap<String, u64>,
    pub owner_waits: BTreeMap<TopicPartition, u64>,
    pub handover: Handover,
    /// The application: what it holds, through which gates it delivers.
    pub app: App,
    pub claim_attempts: BTreeMap<TopicPartition, u32>,
}

pub(super) struct World<'a> {
    pub cfg: &'a SimConfig,
    pub steps: &'a [Step],
    pub rng: Rng,
    pub now: Time,
    seq: u64,
    queue: BinaryHeap<Reverse<(Time, u64, usize)>>,
    events: Vec<Option<Ev>>,
    pub model: ZkModel,
    pub members: Vec<Member>,
    pub group: GroupId,
    pub topics: Vec<TopicName>,
    pub partitions: BTreeMap<TopicName, i32>,
    pub leaders: BTreeMap<(TopicName, i32), i32>,
    pub committed: BTreeMap<TopicPartition, u64>,
    /// Per partition: one past the highest offset any member delivered.
    pub delivered: BTreeMap<TopicPartition, u64>,
    pub brokers_down: BTreeSet<i32>,
    pub report: Report,
    pub settle_from: Option<Time>,
    pub states: BTreeSet<u64>,
    pub chooser: Option<&'a mut dyn FnMut(usize) -> usize>,
    pub next_op: u64,
    /// Two-step peers registered now: member znode name → its payload.
    pub peers: BTreeMap<String, Vec<u8>>,
    /// When each two-step peer registered.
    pub peers_since: BTreeMap<String, Time>,
}

fn ms(t: Time) -> u64 {
    t.as_millis() as u64
}

/// The sim's topic names: `t`, `u`, `v`, …
fn topic_name(i: usize) -> TopicName {
    let name = char::from(b't' + (i % 7) as u8).to_string() + &"x".repeat(i / 7);
    TopicName::new(name).expect("valid")
}

impl<'a> World<'a> {
    pub fn new(cfg: &'a SimConfig, steps: &'a [Step]) -> Self {
        let topics: Vec<TopicName> = (0..usize::from(cfg.topics.max(1))).map(topic_name).collect();
        let mut w = World {
            cfg,
            steps,
            rng: Rng::new(cfg.seed),
            now: Time::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            model: ZkModel::default(),
            members: Vec::new(),
            group: GroupId::new("sim").expect("valid"),
            partitions: topics.iter().map(|t| (t.clone(), i32::from(cfg.partitions.max(1)))).collect(),
            topics,
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            delivered: BTreeMap::new(),
            brokers_down: BTreeSet::new(),
            report: Report::default(),
            settle_from: None,
            states: BTreeSet::new(),
            chooser: None,
            next_op: 0,
            peers: BTreeMap::new(),
            peers_since: BTreeMap::new(),
        };
        let brokers = i32::from(cfg.brokers.max(1));
        for b in 1..=brokers {
            w.model.mkdir(&layout::broker(BrokerId(b)));
        }
        for t in w.topics.clone() {
            w.model.mkdir(&layout::topic(&t));
            for p in 0..w.partitions[&t] {
                w.leaders.insert((t.clone(), p), 1 + p % brokers);
            }
            w.write_topic(&t);
        }
        for _ in 0..cfg.members {
            w.join();
        }
        w.schedule(cfg.step_gap, Ev::Step(0));
        w
    }

    pub fn log(&mut self, text: impl FnOnce() -> String) {
        if self.cfg.timeline {
            let line = format!("{:>7} ms  {}", ms(self.now), text());
            self.report.timeline.push(line);
        }
    }

    pub fn violate(&mut self, invariant: &'static str, detail: String) {
        self.log(|| format!("VIOLATION {invariant}: {detail}"));
        self.report.violations.push(Violation { at_ms: ms(self.now), invariant, detail });
    }

    pub fn schedule(&mut self, after: Time, ev: Ev) {
        self.seq += 1;
        self.events.push(Some(ev));
        self.queue.push(Reverse((self.now + after, self.seq, self.events.len() - 1)));
    }

    /// A network delay: 1–15 ms, and now and then (`slow_replies`) a
    /// stalled packet of 100–600 ms, so answers can outlive their session.
    pub fn net(&mut self) -> Time {
        if self.rng.chance(self.cfg.slow_replies) {
            return Duration::from_millis(100 + self.rng.below(500));
        }
        Duration::from_millis(1 + self.rng.below(15))
    }

    /// The next event. With a chooser (exhaustive mode), any event due
    /// within 10 ms of the earliest may go first.
    pub fn pop(&mut self) -> Option<Ev> {
        let Reverse((at, seq, idx)) = self.queue.pop()?;
        let mut chosen = (at, seq, idx);
        if let Some(choose) = self.chooser.as_mut() {
            let mut window = vec![chosen];
            while window.len() < 3 {
                match self.queue.peek() {
                    Some(Reverse((t, _, _))) if *t <= at + Duration::from_millis(10) => {
                        window.push(self.queue.pop().expect("peeked").0);
                    }
                    _ => break,
                }
            }
            let pick = if window.len() > 1 { choose(window.len()).min(window.len() - 1) } else { 0 };
            chosen = window.remove(pick);
            for rest in window {
                self.queue.push(Reverse(rest));
            }
        }
        self.now = self.now.max(chosen.0);
        self.report.events += 1;
        self.events[chosen.2].take()
    }

    /// Writes a topic's registration and its partitions' states, as the
    /// controller does.
    pub(super) fn write_topic(&mut self, topic: &TopicName) {
        let n = self.partitions[topic];
        let leader = |w: &Self, p: i32| BrokerId(w.leaders[&(topic.clone(), p)]);
        let reg = TopicRegistration {
            version: 1,
            partitions: (0..n).map(|p| (PartitionId(p), vec![leader(self, p)])).collect(),
            adding_replicas: BTreeMap::new(),
            removing_replicas: BTreeMap::new(),
            topic_id: None,
        };
        let fired = self.model.set(&layout::topic(topic), reg.encode()).expect("topic exists");
        self.notify(fired);
        for p in 0..n {
            let path = layout::partition_state(topic, PartitionId(p));
            let state = PartitionState {
                version: 1,
                leader: Some(leader(self, p)),
                leader_epoch: 0,
                controller_epoch: 1,
                isr: vec![leader(self, p)],
            };
            if self.model.set(&path, state.encode()).is_err() {
                self.model.mkdir(&path);
                let _ = self.model.set(&path, state.encode());
            }
        }
    }

    pub fn notify(&mut self, fired: Vec<(SessionId, WatchOn)>) {
        for (session, on) in fired {
            if let Some(m) = self.members.iter().position(|x| x.session == session && x.alive) {
                let d = self.net();
                self.schedule(d, Ev::Notify { m, on });
            }
        }
    }

    /// What member `m` subscribes to: pykafka members one topic each (in
    /// turn); Scala members every topic, every third one by a whitelist.
    fn subscription(&self, m: usize) -> Subscription {
        let n = self.topics.len();
        match self.cfg.flavour {
            Flavour::Pykafka => Subscription::Static(vec![(self.topics[m % n].clone(), 1)]),
            Flavour::Scala if n > 1 && m % 3 == 2 => {
                let regex = self.topics.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("|");
                Subscription::Whitelist { regex, streams: 1 }
            }
            Flavour::Scala => Subscription::Static(self.topics.iter().map(|t| (t.clone(), 1)).collect()),
        }
    }

    pub fn join(&mut self) {
        self.join_as(None);
    }

    /// A member joins: a new one, or a new incarnation of member `old`
    /// (same id, same subscription).
    pub fn join_as(&mut self, old: Option<usize>) {
        let m = self.members.len();
        let incarnation = old.is_some();
        let id = match old {
            Some(o) => self.members[o].id.clone(),
            None => MemberId::new(format!("m{m}")).expect("valid"),
        };
        let mut cfg = BalanceConfig::new(id.clone(), self.cfg.flavour, self.cfg.strategy);
        cfg.session_timeout = self.cfg.session_timeout;
        cfg.coalesce = Duration::from_millis(20);
        cfg.backoff_initial = Duration::from_millis(50);
        cfg.backoff_max = Duration::from_millis(400);
        cfg.claim_retries = (1..64)
            .find(|&n| {
                cfg.claim_retries = n;
                cfg.claim_window() > self.cfg.session_timeout * 2
            })
            .unwrap_or(64);
        cfg.suspend_margin = BalanceConfig::default_suspend_margin(self.cfg.session_timeout);
        cfg.reconcile_interval = self.cfg.session_timeout * 2;
        cfg.seed = self.rng.next_u64();
        #[cfg(feature = "mutants")]
        {
            cfg.mutant = self.cfg.mutant;
        }
        let session = self.model.open_session(self.cfg.session_timeout, self.now);
        let subscription = self.subscription(old.map_or(m, |o| self.members[o].index));
        // As the driver: a wildcard member makes owner directories when it
        // first claims in them.
        let topics: Vec<TopicName> = match &subscription {
            Subscription::Static(ts) => ts.iter().map(|(t, _)| t.clone()).collect(),
            _ => Vec::new(),
        };
        let cx = Context {
            layout: GroupLayout { group: self.group.clone(), flavour: self.cfg.flavour, member: id.clone() },
            session: session as i64,
            topics,
            payload: crate::protocol::member_payload(self.cfg.flavour, &subscription, None),
            exclude_internal_topics: true,
        };
        let app = App::new(&cfg);
        let handover = Handover::new(&cfg, self.cfg.session_timeout * 3);
        let machine = Balancer::new(cfg).expect("the simulator's settings are valid");
        let index = old.map_or(m, |o| self.members[o].index);
        self.members.push(Member {
            id: id.clone(),
            index,
            machine,
            session,
            epoch: 0,
            alive: true,
            stopped: false,
            connected: true,
            noticed_disconnect: false,
            disconnected_until: Time::ZERO,
            stalled_until: Time::ZERO,
            expiry_told: false,
            connect_pending: false,
            last_zxid: 0,
            timer_at: None,
            cx,
            ops: BTreeMap::new(),
            queued: Vec::new(),
            awaiting: BTreeMap::new(),
            owner_waits: BTreeMap::new(),
            handover,
            app,
            claim_attempts: BTreeMap::new(),
        });
        if incarnation {
            self.log(|| format!("m{m} restarts as {id} with session {session}"));
        } else {
            self.log(|| format!("m{m} joins with session {session}"));
        }
        self.schedule(Time::ZERO, Ev::Deliver { m, input: Input::Start });
        self.schedule(Time::ZERO, Ev::Heartbeat { m, session });
    }

    /// Live members, for steps that name one by index.
    pub fn pick(&self, i: u8) -> Option<usize> {
        let live: Vec<usize> =
            (0..self.members.len()).filter(|&m| self.members[m].alive && !self.members[m].stopped).collect();
        (!live.is_empty()).then(|| live[usize::from(i) % live.len()])
    }

    /// Feeds an input to a member's machine and carries out its actions.
    pub fn feed(&mut self, m: usize, input: Input) {
        let member = &self.members[m];
        if !member.alive || member.stopped {
            return;
        }
        if member.stalled_until > self.now {
            let wait = member.stalled_until - self.now;
            self.schedule(wait, Ev::Deliver { m, input });
            return;
        }
        if matches!(input, Input::Snapshot(_)) {
            self.report.rebalances += 1;
        }
        if matches!(input, Input::Stop | Input::Session(crate::balance::SessionEvent::Expired)) {
            self.members[m].claim_attempts.clear();
        }
        let claim_answered = match &input {
            Input::ClaimResult { tp, .. } => Some(tp.clone()),
            _ => None,
        };
        // Peers this view cannot read and may not leave out yet: none of
        // them is past the bound counted from its creation (the earliest
        // any member could have seen it).
        let unreadable_peers: Vec<String> = match &input {
            Input::Snapshot(s) => {
                let bound = self.members[m].machine.config().unreadable_bound;
                s.unreadable
                    .iter()
                    .filter(|u| self.peers_since.get(&u.member).is_some_and(|t| self.now < *t + bound))
                    .map(|u| u.member.clone())
                    .collect()
            }
            _ => Vec::new(),
        };
        let label = if self.cfg.timeline { short(&input) } else { String::new() };
        let actions = self.members[m].machine.handle(self.now, input);
        if !unreadable_peers.is_empty() {
            if let Some(Action::Claim { tp, .. }) = actions.iter().find(|a| matches!(a, Action::Claim { .. })) {
                let detail = format!("m{m} claims {tp} from a view that cannot read {unreadable_peers:?}");
                self.violate("never decide without a peer", detail);
            }
        }
        if self.cfg.timeline && !label.is_empty() {
            let acts: Vec<String> = actions.iter().map(short_action).collect();
            self.log(|| {
                format!(
                    "m{m} <- {label}{}",
                    if acts.is_empty() { String::new() } else { format!("  => {}", acts.join(", ")) }
                )
            });
        }
        // A claim ends when it is won, or when its answer leads to no further
        // attempt or wait (the machine dropped it).
        if let Some(tp) = claim_answered {
            let goes_on =
                actions.iter().any(|a| matches!(a, Action::WatchOwner(t) | Action::Claim { tp: t, .. } if *t == tp));
            let won = self.members[m].machine.held().contains(&tp);
            if won || !goes_on {
                self.members[m].claim_attempts.remove(&tp);
            }
        }
        for a in actions {
            self.execute(m, a);
        }
        self.publish_lease(m);
        self.rearm(m);
    }

    fn rearm(&mut self, m: usize) {
        let member = &self.members[m];
        let next = [member.machine.next_deadline(), member.handover.next_deadline()].into_iter().flatten().min();
        if next != self.members[m].timer_at {
            self.members[m].timer_at = next;
            if let Some(at) = next {
                let after = at.saturating_sub(self.now);
                self.schedule(after, Ev::Timer { m, at });
            }
        }
    }

    pub fn timer(&mut self, m: usize, at: Time) {
        if self.members[m].timer_at == Some(at) {
            self.members[m].timer_at = None;
            for tp in self.members[m].handover.overdue(self.now) {
                self.log(|| format!("m{m}'s application kept {tp} too long; released anyway"));
                self.feed(m, Input::Released(tp));
            }
            self.feed(m, Input::Tick);
        }
    }

    fn execute(&mut self, m: usize, action: Action) {
        if let Action::Claim { tp, .. } = &action {
            let tp = tp.clone();
            self.count_claim(m, &tp);
        }
        if let Some(op) = Operation::for_action(&action, &self.members[m].cx) {
            self.start(m, op);
            return;
        }
        match action {
            Action::Unwatch(tp) => {
                let member = &mut self.members[m];
                if let Some(op) = member.owner_waits.remove(&tp) {
                    member.ops.remove(&op);
                    member.awaiting.retain(|_, o| *o != op);
                    member.queued.retain(|o| *o != op);
                }
                member.claim_attempts.remove(&tp);
            }
            Action::Revoke(tps) => {
                self.app_revoked(m, tps.iter().cloned());
                for tp in tps {
                    match self.members[m].handover.revoke(self.now, tp.clone(), true) {
                        Some(input) => self.schedule(Time::ZERO, Ev::Deliver { m, input }),
                        None => {
                            // The application finishes the message in hand, commits, lets go.
                            let d = Duration::from_millis(self.rng.below(60));
                            self.schedule(d, Ev::AppRelease { m, tp });
                        }
                    }
                }
            }
            Action::Lost(tps) => {
                for tp in &tps {
                    self.members[m].handover.forget(tp);
                }
                self.app_lost(m, tps);
            }
            Action::Assigned { partitions, .. } => self.app_assigned(m, partitions.into_iter().map(|(tp, _)| tp)),
            Action::Suspend | Action::Resume => {}
            Action::Blocked { by, past_bound, .. } => {
                let by: Vec<String> = by.iter().map(|u| u.member.clone()).collect();
                self.log(|| format!("m{m} waits for unreadable {by:?} (past the bound: {past_bound})"));
            }
            Action::Unblocked => self.log(|| format!("m{m} is no longer blocked")),
            Action::NewSession => self.request_session(m),
            Action::Close => {
                let session = self.members[m].session;
                let fired = self.model.close(session);
                self.notify(fired);
                self.members[m].stopped = true;
                self.log(|| format!("m{m} has left the group"));
            }
            Action::Error(e) => {
                if let crate::balance::BalanceError::ClaimGaveUp { attempts, tp, .. } = &e {
                    self.members[m].claim_attempts.remove(tp);
                    let bound = self.members[m].machine.config().claim_retries;
                    if *attempts > bound {
                        self.violate(
                            "bounded retries",
                            format!("m{m} gave up after {attempts} attempts, bound {bound}"),
                        );
                    }
                }
                self.log(|| format!("m{m} reports: {e}"));
            }
            _ => unreachable!("carried out by an operation"),
        }
    }

    /// Claims of one partition, from its first attempt until it is won or
    /// dropped, are bounded by the retries.
    fn count_claim(&mut self, m: usize, tp: &TopicPartition) {
        let bound = self.members[m].machine.config().claim_retries + 1;
        let n = self.members[m].claim_attempts.entry(tp.clone()).or_default();
        *n += 1;
        if *n > bound {
            let n = *n;
            self.violate(
                "bounded retries",
                format!("m{m} sent claim {n} for {tp} without a read between (bound {bound})"),
            );
        }
    }
}

/// A compact label for the timeline.
fn short(input: &Input) -> String {
    match input {
        Input::Snapshot(s) => format!("snapshot({} members, {} owned)", s.shape.members.len(), s.owners.len()),
        Input::ClaimResult { tp, outcome } => format!("claim {tp}: {outcome:?}"),
        Input::Heartbeat { .. } | Input::Tick => String::new(),
        other => format!("{other:?}"),
    }
}

fn short_action(a: &Action) -> String {
    let tps = |tps: &BTreeSet<TopicPartition>| tps.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    match a {
        Action::Claim { tp, .. } => format!("claim {tp}"),
        Action::DeleteOwner { tp, .. } => format!("delete owner {tp}"),
        Action::Assigned { generation, partitions } => format!(
            "assigned g{generation} [{}]",
            partitions.iter().map(|(tp, _)| tp.to_string()).collect::<Vec<_>>().join(",")
        ),
        Action::Revoke(t) => format!("revoke [{}]", tps(t)),
        Action::Lost(t) => format!("lost [{}]", tps(t)),
        other => format!("{other:?}").chars().take(60).collect(),
    }
}
