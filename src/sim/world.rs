//! The discrete-event world: a virtual clock, a seeded scheduler, the
//! ZooKeeper model, and members whose real [`Balancer`]s are driven by a
//! driver that speaks to the model instead of a server.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use crate::balance::{Action, BalanceConfig, Balancer, Input, OwnerRecord, Time};
use crate::ids::{BrokerId, GroupId, MemberId, PartitionId, TopicName, TopicPartition};
use crate::znode::{layout, Codec, MemberRegistration, OwnerName, PartitionState, TopicRegistration};

use super::app::App;
use super::model::{SessionId, WatchOn, ZkModel};
use super::scenario::{Report, Rng, SimConfig, Step, Violation};

#[derive(Debug, Clone)]
pub(super) enum Ev {
    Step(usize),
    Deliver {
        m: usize,
        input: Input,
    },
    /// An answer from the server to a request made in `session`.
    Reply {
        m: usize,
        session: SessionId,
        input: Input,
    },
    Op {
        m: usize,
        session: SessionId,
        action: Action,
    },
    OwnerCheck {
        m: usize,
        session: SessionId,
        tp: TopicPartition,
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
    Settle,
}

#[derive(Debug)]
pub(super) struct Member {
    pub id: MemberId,
    pub machine: Balancer,
    pub session: SessionId,
    pub alive: bool,
    pub stopped: bool,
    pub connected: bool,
    pub disconnected_until: Time,
    pub stalled_until: Time,
    pub expiry_told: bool,
    pub last_zxid: i64,
    pub timer_at: Option<Time>,
    pub owner_watch: BTreeSet<TopicPartition>,
    /// The application: what it holds, through which gates it delivers.
    pub app: App,
    pub claim_attempts: BTreeMap<TopicPartition, u32>,
    /// Writes that must happen once connected again (the real driver retries them).
    pub deferred: Vec<Action>,
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
    pub topic: TopicName,
    pub partitions: i32,
    pub leaders: BTreeMap<i32, i32>,
    pub committed: BTreeMap<TopicPartition, u64>,
    /// Per partition: one past the highest offset any member delivered.
    pub delivered: BTreeMap<TopicPartition, u64>,
    pub brokers_down: BTreeSet<i32>,
    pub report: Report,
    pub settle_from: Option<Time>,
    pub states: BTreeSet<u64>,
    pub chooser: Option<&'a mut dyn FnMut(usize) -> usize>,
}

fn ms(t: Time) -> u64 {
    t.as_millis() as u64
}

impl<'a> World<'a> {
    pub fn new(cfg: &'a SimConfig, steps: &'a [Step]) -> Self {
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
            topic: TopicName::new("t").expect("valid"),
            partitions: i32::from(cfg.partitions.max(1)),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            delivered: BTreeMap::new(),
            brokers_down: BTreeSet::new(),
            report: Report::default(),
            settle_from: None,
            states: BTreeSet::new(),
            chooser: None,
        };
        for b in 1..=cfg.brokers.max(1) {
            w.model.mkdir(&layout::broker(BrokerId(i32::from(b))));
        }
        w.model.mkdir(&layout::topic(&w.topic));
        for p in 0..w.partitions {
            w.leaders.insert(p, 1 + p % i32::from(cfg.brokers.max(1)));
        }
        w.write_topic();
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

    fn net(&mut self) -> Time {
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

    pub(super) fn write_topic_public(&mut self) {
        self.write_topic();
    }

    fn write_topic(&mut self) {
        let reg = TopicRegistration {
            version: 1,
            partitions: (0..self.partitions).map(|p| (PartitionId(p), vec![BrokerId(self.leaders[&p])])).collect(),
            adding_replicas: BTreeMap::new(),
            removing_replicas: BTreeMap::new(),
            topic_id: None,
        };
        let fired = self.model.set(&layout::topic(&self.topic), reg.encode()).expect("topic exists");
        self.notify(fired);
        for p in 0..self.partitions {
            let path = layout::partition_state(&self.topic, PartitionId(p));
            let state = PartitionState {
                version: 1,
                leader: Some(BrokerId(self.leaders[&p])),
                leader_epoch: 0,
                controller_epoch: 1,
                isr: vec![BrokerId(self.leaders[&p])],
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

    pub fn join(&mut self) {
        let m = self.members.len();
        let id = MemberId::new(format!("m{m}")).expect("valid");
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
        let app = App::new(&cfg);
        self.members.push(Member {
            id,
            machine: Balancer::new(cfg),
            session,
            alive: true,
            stopped: false,
            connected: true,
            disconnected_until: Time::ZERO,
            stalled_until: Time::ZERO,
            expiry_told: false,
            last_zxid: 0,
            timer_at: None,
            owner_watch: BTreeSet::new(),
            app,
            claim_attempts: BTreeMap::new(),
            deferred: Vec::new(),
        });
        self.log(|| format!("m{m} joins with session {session}"));
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
        let label = if self.cfg.timeline { short(&input) } else { String::new() };
        let actions = self.members[m].machine.handle(self.now, input);
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
        let next = self.members[m].machine.next_deadline();
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
            self.feed(m, Input::Tick);
        }
    }

    fn execute(&mut self, m: usize, action: Action) {
        match action {
            Action::Claim { ref tp, .. } => {
                let tp = tp.clone();
                self.count_claim(m, &tp);
                self.send(m, action);
            }
            Action::Register
            | Action::ReadGroup
            | Action::DeleteOwner { .. }
            | Action::Deregister
            | Action::NewSession => self.send(m, action),
            Action::WatchOwner(tp) => {
                self.members[m].owner_watch.insert(tp.clone());
                let session = self.members[m].session;
                let d = self.net();
                self.schedule(d, Ev::OwnerCheck { m, session, tp });
            }
            Action::Unwatch(tp) => {
                self.members[m].owner_watch.remove(&tp);
                self.members[m].claim_attempts.remove(&tp);
            }
            Action::Revoke(tps) => {
                self.app_revoked(m, tps.iter().cloned());
                for tp in tps {
                    // The application finishes the message in hand, commits, lets go.
                    let d = Duration::from_millis(self.rng.below(60));
                    self.schedule(d, Ev::AppRelease { m, tp });
                }
            }
            Action::Lost(tps) => self.app_lost(m, tps),
            Action::Assigned { partitions, .. } => self.app_assigned(m, partitions.into_iter().map(|(tp, _)| tp)),
            Action::Suspend | Action::Resume => {}
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
    match a {
        Action::Claim { tp, .. } => format!("claim {tp}"),
        Action::DeleteOwner { tp, .. } => format!("delete owner {tp}"),
        Action::Assigned { generation, partitions } => format!(
            "assigned g{generation} [{}]",
            partitions.iter().map(|(tp, _)| tp.partition.to_string()).collect::<Vec<_>>().join(",")
        ),
        Action::Revoke(tps) | Action::Lost(tps) => format!(
            "{} [{}]",
            if matches!(a, Action::Revoke(_)) { "revoke" } else { "lost" },
            tps.iter().map(|tp| tp.partition.to_string()).collect::<Vec<_>>().join(",")
        ),
        other => format!("{other:?}").chars().take(60).collect(),
    }
}

pub(super) fn owner_record(member: MemberId, name: OwnerName, czxid: i64) -> OwnerRecord {
    OwnerRecord { member, thread: 0, name, czxid }
}

pub(super) fn decode_member(bytes: &[u8]) -> Option<TopicName> {
    match MemberRegistration::decode_payload(bytes) {
        Ok(MemberRegistration::Pykafka { topic }) => Some(topic),
        _ => None,
    }
}
