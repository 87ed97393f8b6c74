//! A deterministic simulator of a group: many members' real
//! [`Balancer`](crate::balance::Balancer)s against an in-memory model of
//! ZooKeeper, under a seeded scheduler with a virtual clock.
//!
//! It explores thousands of interleavings per second and checks, after every
//! event, that no partition is delivered by two members at once, that owner
//! znodes are deleted only after the application let go, that claims are
//! bounded, that nobody delivers without a live session and that committed
//! offsets never go backwards; and at quiescence that every partition is
//! owned as the strategy says. A seed and a schedule replay byte for byte.
//!
//! ```
//! use zkbalance::sim::{run, SimConfig, Step};
//!
//! let cfg = SimConfig { seed: 7, members: 3, partitions: 6, ..SimConfig::default() };
//! let report = run(&cfg, &[Step::Join, Step::Crash(0), Step::Disconnect(1, 800)]);
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! ```

mod app;
mod exec;
mod model;
mod scenario;
mod world;

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::time::Duration;

pub use exec::read_group;
pub use model::{SessionId, View, WatchOn, ZkModel, Znode};
pub use scenario::{random_steps, Report, Rng, SimConfig, Step, Violation};

use crate::assign::{assign, Assignment};
use crate::balance::Input;
use crate::ids::{BrokerId, PartitionId, TopicPartition};
use crate::protocol::snapshot::{self, Listing};
use crate::znode::{layout, Flavour, OwnerName, TopicSpelling};

use world::{Ev, World};

const MAX_EVENTS: u64 = 200_000;

/// Runs one simulation: the initial members, then `steps` one `step_gap`
/// apart, then quiet until the group settles (or a bound passes).
pub fn run(cfg: &SimConfig, steps: &[Step]) -> Report {
    drive(World::new(cfg, steps)).0
}

/// Shrinks a failing case to a 1-minimal one: drops every step whose removal
/// keeps `fails` true, then lowers the member and partition counts while it
/// stays true. Deterministic, so the result replays like any case.
pub fn shrink(cfg: &SimConfig, steps: &[Step], fails: impl Fn(&Report) -> bool) -> (SimConfig, Vec<Step>) {
    let mut cfg = cfg.clone();
    let mut steps = steps.to_vec();
    let mut progress = true;
    while progress {
        progress = false;
        let mut i = 0;
        while i < steps.len() {
            let mut fewer = steps.clone();
            fewer.remove(i);
            if fails(&run(&cfg, &fewer)) {
                steps = fewer;
                progress = true;
            } else {
                i += 1;
            }
        }
        for smaller in [
            SimConfig { members: cfg.members.saturating_sub(1), ..cfg.clone() },
            SimConfig { partitions: cfg.partitions.saturating_sub(1).max(1), ..cfg.clone() },
        ] {
            if (smaller.members, smaller.partitions) != (cfg.members, cfg.partitions) && fails(&run(&smaller, &steps)) {
                cfg = smaller;
                progress = true;
            }
        }
    }
    (cfg, steps)
}

/// What exhaustive exploration found.
#[derive(Debug, Clone, Default)]
pub struct Exploration {
    /// Complete runs (interleavings) explored.
    pub runs: u64,
    /// Distinct states seen across all runs.
    pub states: u64,
    /// The first violation found, with the choices that lead to it.
    pub counterexample: Option<(Vec<usize>, Vec<Violation>)>,
    /// Whether every interleaving up to the depth was explored.
    pub complete: bool,
}

/// Explores every interleaving of events due within 10 ms of each other,
/// over the first `depth` such choice points, up to `max_runs` runs: a
/// stateless model check by re-execution.
pub fn explore(cfg: &SimConfig, steps: &[Step], depth: usize, max_runs: u64) -> Exploration {
    let mut out = Exploration::default();
    let mut all_states = BTreeSet::new();
    let mut prefix: Vec<usize> = Vec::new();
    loop {
        let mut degrees: Vec<usize> = Vec::new();
        let report = {
            let mut at = 0;
            let mut choose = |n: usize| {
                let pick = if at < depth { prefix.get(at).copied().unwrap_or(0) } else { 0 };
                if at < depth {
                    degrees.push(n);
                }
                at += 1;
                pick
            };
            let mut w = World::new(cfg, steps);
            w.chooser = Some(&mut choose);
            drive(w)
        };
        out.runs += 1;
        all_states.extend(report.1);
        if !report.0.violations.is_empty() {
            out.counterexample = Some((prefix.clone(), report.0.violations));
            break;
        }
        // Next prefix: bump the deepest choice that has an untried option.
        let mut next = None;
        for i in (0..degrees.len()).rev() {
            let cur = prefix.get(i).copied().unwrap_or(0);
            if cur + 1 < degrees[i] {
                let mut p: Vec<usize> = (0..i).map(|j| prefix.get(j).copied().unwrap_or(0)).collect();
                p.push(cur + 1);
                next = Some(p);
                break;
            }
        }
        match next {
            Some(p) if out.runs < max_runs => prefix = p,
            Some(_) => break,
            None => {
                out.complete = true;
                break;
            }
        }
    }
    out.states = all_states.len() as u64;
    out
}

/// Runs a world to its end; returns the report and the state hashes seen.
fn drive(mut w: World<'_>) -> (Report, BTreeSet<u64>) {
    while let Some(ev) = w.pop() {
        match ev {
            Ev::Step(i) => w.step(i),
            Ev::Deliver { m, input } => w.feed(m, input),
            Ev::Answer { m, epoch, answer } => w.answer(m, epoch, answer),
            Ev::Batch { m, op } => w.batch(m, op),
            Ev::Replies { m, op, replies } => w.replies(m, op, replies),
            Ev::Resume { m, op } => w.advance(m, op, Vec::new()),
            Ev::Connect { m } => w.connect(m),
            Ev::Timer { m, at } => w.timer(m, at),
            Ev::Heartbeat { m, session } => w.heartbeat(m, session),
            Ev::Reconnect { m } => w.reconnect(m),
            Ev::Notify { m, on } => w.notified(m, on),
            Ev::AppRelease { m, tp } => w.app_release(m, tp),
            Ev::ForeignRelease(path) => {
                if let Some(name) = path.strip_prefix(&format!("{}/", layout::members(&w.group))) {
                    w.peers.remove(name);
                }
                if let Ok(fired) = w.model.delete(&path, None) {
                    w.notify(fired);
                }
            }
            Ev::PeerFills(name) => {
                let path = format!("{}/{name}", layout::members(&w.group));
                let data = w.peers.get(&name).cloned().unwrap_or_default();
                w.log(|| format!("peer {name} fills its member znode"));
                if let Ok(fired) = w.model.set(&path, data) {
                    w.notify(fired);
                }
            }
            Ev::Settle => {
                if w.settled() {
                    w.log(|| "the group has settled".into());
                    break;
                }
                if w.now >= w.settle_from.unwrap_or_default() + w.settle_bound() {
                    let why = w.unsettled();
                    let bound = w.settle_bound().as_millis();
                    w.violate("liveness", format!("not settled {bound} ms after the last step: {why}"));
                } else {
                    w.schedule(Duration::from_millis(50), Ev::Settle);
                }
            }
        }
        w.expire();
        w.check_instant();
        if w.report.events > MAX_EVENTS {
            w.violate("liveness", format!("no quiescence within {MAX_EVENTS} events"));
        }
        if !w.report.violations.is_empty() {
            break;
        }
    }
    w.report.virtual_time = w.now;
    w.report.states = w.states.len() as u64;
    let states = std::mem::take(&mut w.states);
    (w.report, states)
}

impl World<'_> {
    fn step(&mut self, i: usize) {
        let Some(step) = self.steps.get(i).copied() else {
            self.settle_from = Some(self.now);
            self.schedule(Duration::from_millis(50), Ev::Settle);
            return;
        };
        self.log(|| format!("step {i}: {step:?}"));
        let mut gap = self.cfg.step_gap;
        match step {
            Step::Join => self.join(),
            Step::Leave(i) => {
                if let Some(m) = self.pick(i) {
                    self.feed(m, Input::Stop);
                }
            }
            Step::Crash(i) => {
                if let Some(m) = self.pick(i) {
                    self.crash(m);
                }
            }
            Step::Restart(i) => {
                if let Some(m) = self.pick(i) {
                    self.crash(m);
                    self.join_as(Some(m));
                }
            }
            Step::Stall(i, ms) => {
                if let Some(m) = self.pick(i) {
                    self.members[m].stalled_until = self.now + Duration::from_millis(ms.into());
                }
            }
            // A session expires only when the server has not heard from its
            // client for the timeout: cut the member off past that.
            Step::Expire(i) => {
                let ms = (self.cfg.session_timeout + Duration::from_millis(300)).as_millis() as u16;
                self.disconnect(i, ms);
            }
            Step::Disconnect(i, ms) => self.disconnect(i, ms),
            Step::AddPartitions(n) => {
                let brokers = i32::from(self.cfg.brokers.max(1));
                let t = self.topics[0].clone();
                for _ in 0..n.min(4) {
                    let p = self.partitions[&t];
                    self.leaders.insert((t.clone(), p), 1 + p % brokers);
                    *self.partitions.get_mut(&t).expect("a topic of ours") += 1;
                }
                self.write_topic(&t);
            }
            Step::MoveLeader(p) => {
                let (t, p) = self.partition_of(p);
                let brokers = i32::from(self.cfg.brokers.max(1));
                let next = self.leaders[&(t.clone(), p)] % brokers + 1;
                self.leaders.insert((t.clone(), p), next);
                self.write_topic(&t);
            }
            Step::FlipBroker(b) => {
                let brokers = i32::from(self.cfg.brokers.max(1));
                let b = 1 + i32::from(b) % brokers;
                let path = layout::broker(BrokerId(b));
                if self.brokers_down.remove(&b) {
                    self.log(|| format!("broker {b} comes back"));
                    let fired = self.model.mkdir(&path);
                    self.notify(fired);
                } else if self.brokers_down.len() + 1 < brokers as usize {
                    self.brokers_down.insert(b);
                    self.log(|| format!("broker {b} goes down; its partitions get new leaders"));
                    if let Ok(fired) = self.model.delete(&path, None) {
                        self.notify(fired);
                    }
                    let up: Vec<i32> = (1..=brokers).filter(|x| !self.brokers_down.contains(x)).collect();
                    for ((_, p), leader) in self.leaders.iter_mut() {
                        if *leader == b {
                            *leader = up[*p as usize % up.len()];
                        }
                    }
                    for t in self.topics.clone() {
                        self.write_topic(&t);
                    }
                }
            }
            Step::ForeignClaim(p, ms) => {
                let (t, p) = self.partition_of(p);
                let (spelling, name, payload): (_, _, &[u8]) = match self.cfg.flavour {
                    Flavour::Pykafka => (
                        TopicSpelling::PythonBytes,
                        OwnerName::Pykafka {
                            leader: BrokerId(self.leaders[&(t.clone(), p)]),
                            partition: PartitionId(p),
                        },
                        b"foreign:stuck",
                    ),
                    Flavour::Scala => {
                        (TopicSpelling::Plain, OwnerName::Scala { partition: PartitionId(p) }, b"foreign-0")
                    }
                };
                self.model.mkdir(&layout::owner_dir(&self.group, &t, spelling));
                let path = layout::owner(&self.group, &t, spelling, name);
                if let Ok((_, fired)) = self.model.create(None, &[(path.clone(), payload.to_vec())], false) {
                    self.notify(fired);
                    self.schedule(Duration::from_millis(ms.into()), Ev::ForeignRelease(path));
                }
            }
            Step::TwoStepPeer(blank, stay) => self.two_step_peer(blank, stay),
            Step::Wait(ms) => gap += Duration::from_millis(ms.into()),
        }
        self.schedule(gap, Ev::Step(i + 1));
    }

    /// See [`Step::TwoStepPeer`].
    fn two_step_peer(&mut self, blank: u16, stay: u16) {
        let name = format!("peer_{}", self.peers.len() + self.report.events as usize);
        let registration = match self.cfg.flavour {
            Flavour::Pykafka => self.topics[0].as_str().as_bytes().to_vec(),
            // kafka-node given every topic: one key per topic, the first
            // is the filter. (Round-robin needs identical subscriptions.)
            Flavour::Scala if self.cfg.strategy == crate::assign::Strategy::ScalaRoundRobin => {
                let subscription =
                    crate::znode::Subscription::Static(self.topics.iter().map(|t| (t.clone(), 1)).collect());
                crate::protocol::member_payload(Flavour::Scala, &subscription, Some(1))
            }
            Flavour::Scala => {
                let keys: Vec<String> = self.topics.iter().map(|t| format!("\"{t}\":1")).collect();
                format!(
                    r#"{{"version":1,"subscription":{{{}}},"pattern":"white_list","timestamp":"1"}}"#,
                    keys.join(",")
                )
                .into_bytes()
            }
        };
        let path = format!("{}/{name}", layout::members(&self.group));
        if let Ok((_, fired)) = self.model.create(None, &[(path.clone(), Vec::new())], false) {
            self.log(|| format!("peer {name} registers with an empty member znode"));
            self.notify(fired);
            self.peers.insert(name.clone(), registration);
            self.peers_since.insert(name.clone(), self.now);
            let blank = Duration::from_millis(blank.into());
            self.schedule(blank, Ev::PeerFills(name));
            self.schedule(blank + Duration::from_millis(500 + u64::from(stay)), Ev::ForeignRelease(path));
        }
    }

    fn crash(&mut self, m: usize) {
        let member = &mut self.members[m];
        member.alive = false;
        member.app.holds.clear();
        member.ops.clear();
        let session = member.session;
        self.log(|| format!("m{m} crashes; session {session} lingers"));
    }

    fn disconnect(&mut self, i: u8, ms: u16) {
        let Some(m) = self.pick(i) else { return };
        let until = self.now + Duration::from_millis(ms.into());
        let member = &mut self.members[m];
        member.connected = false;
        member.disconnected_until = member.disconnected_until.max(until);
        self.log(|| format!("m{m} is cut off for {ms} ms"));
        // The client notices within 0.45 of the session timeout, or not
        // before it heals; a blip it never noticed is never reported as a
        // reconnect either.
        let notice = Duration::from_millis(self.rng.below((self.cfg.session_timeout * 9 / 20).as_millis() as u64));
        if notice < Duration::from_millis(ms.into()) {
            self.members[m].noticed_disconnect = true;
            self.schedule(notice, Ev::Deliver { m, input: Input::Session(crate::balance::SessionEvent::Disconnected) });
        }
        self.schedule(Duration::from_millis(ms.into()), Ev::Reconnect { m });
    }

    /// The partition a step's number names: topics in turn, then
    /// partitions within them.
    fn partition_of(&self, n: u8) -> (crate::ids::TopicName, i32) {
        let n = usize::from(n);
        let t = self.topics[n % self.topics.len()].clone();
        let p = (n / self.topics.len()) as i32 % self.partitions[&t];
        (t, p)
    }

    /// The server expires overdue sessions.
    fn expire(&mut self) {
        let (expired, fired) = self.model.expire_due(self.now);
        for s in expired {
            self.log(|| format!("the server expires session {s}"));
        }
        self.notify(fired);
    }

    /// Invariants that hold at every instant, checked on what the
    /// applications hand over now (through their gates).
    fn check_instant(&mut self) {
        for (inv, detail) in self.deliver() {
            self.violate(inv, detail);
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for member in &self.members {
            (member.alive, member.connected, member.machine.held(), member.machine.deliverable_at(self.now))
                .hash(&mut h);
        }
        self.model.latest().zxid.hash(&mut h);
        self.states.insert(h.finish());
    }

    fn settle_bound(&self) -> Duration {
        let t = self.cfg.session_timeout;
        // Outages end, a session expires, claims wait out their window, a
        // reconcile repairs what a lost notification hid.
        Duration::from_millis(2000) + t * 4 + t * 2 * 2 + Duration::from_millis(500)
    }

    /// The strategy's answer for the live members, computed by the one
    /// snapshot builder from the model's true state.
    fn target(&self) -> Assignment {
        let latest = self.model.latest();
        let topic_children = latest.children(layout::BROKER_TOPICS);
        let mut listing = Listing { all_topics: topic_children, ..Listing::default() };
        for m in self.members.iter().filter(|m| m.alive && !m.stopped) {
            listing.members.push((m.id.to_string(), m.cx.payload.clone()));
        }
        let ids = layout::members(&self.group);
        for name in self.peers.keys() {
            if let Some(z) = latest.get(&format!("{ids}/{name}")) {
                listing.members.push((name.clone(), z.data.clone()));
            }
        }
        for t in &self.topics {
            listing.topics.insert(t.clone(), latest.get(&layout::topic(t)).map(|n| n.data.clone()));
            for p in 0..self.partitions[t] {
                let state = latest.get(&layout::partition_state(t, PartitionId(p))).map(|n| n.data.clone());
                listing.states.insert((t.clone(), PartitionId(p)), state);
            }
        }
        let (snap, _) = snapshot::build(self.cfg.flavour, &self.group, &listing, true);
        assign(self.cfg.strategy, &snap.shape, &Assignment::new()).unwrap_or_default()
    }

    fn settled(&self) -> bool {
        self.unsettled().is_empty()
    }

    /// Why the group is not settled yet ("" when it is).
    fn unsettled(&self) -> String {
        let live: Vec<usize> =
            (0..self.members.len()).filter(|&m| self.members[m].alive && !self.members[m].stopped).collect();
        if live.is_empty() {
            return String::new();
        }
        for &m in &live {
            let member = &self.members[m];
            if !member.machine.holds_steady() {
                return format!("m{m} still rebalancing");
            }
        }
        let target = self.target();
        for &m in &live {
            let member = &self.members[m];
            let want: BTreeSet<TopicPartition> =
                target.iter().filter(|(_, s)| s.member == member.id).map(|(tp, _)| tp.clone()).collect();
            let have = member.machine.deliverable_at(self.now);
            if want != have {
                return format!("m{m} delivers {:?}, the strategy gives it {:?}", parts(&have), parts(&want));
            }
        }
        String::new()
    }
}

fn parts(s: &BTreeSet<TopicPartition>) -> Vec<String> {
    s.iter().map(ToString::to_string).collect()
}
