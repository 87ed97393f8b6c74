//! The loop that carries out the state machine's actions against a real
//! ZooKeeper and feeds the answers back. It owns the machine, so no lock
//! guards it. What each action does on ZooKeeper is the group protocol's
//! ([`protocol::Operation`]); every operation runs in a task of its own and
//! answers through the loop's channel tagged with its session, so no call
//! ever blocks the loop and no answer of a dead session is mistaken for the
//! current one's ([`protocol::admit`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zookeeper_client::{Client, SessionState};

use crate::balance::{Action, BalanceConfig, BalanceError, Balancer, Input, PartitionGate, SessionEvent, SessionLease};
use crate::ids::TopicPartition;
use crate::protocol::{self, Answer, Context, GroupLayout, Handover, Operation};
use crate::znode::{Flavour, Subscription};

use super::clock;
use super::config::GroupConfig;
use super::lease::{lease, Ending, Fence, LeaseHandle};
use super::zk::{self, Watches, Watching};
use super::{AssignmentView, GroupEvent, Metrics};

pub(crate) enum Msg {
    Input(Input),
    /// The answer to an operation of session number `.0`.
    Reply(u64, Answer),
    /// The application dropped a revoked partition's lease.
    LetGo(TopicPartition),
    NewClient(Client),
    Stop(oneshot::Sender<()>),
}

/// What the public handle keeps of a running driver.
pub(crate) struct Handles {
    pub control: mpsc::UnboundedSender<Msg>,
    pub events: mpsc::UnboundedReceiver<GroupEvent>,
    pub handshake: Arc<AtomicBool>,
    pub view: watch::Receiver<AssignmentView>,
    pub metrics: Arc<Metrics>,
    pub session: watch::Receiver<Option<(u64, Client)>>,
    pub pulse: watch::Receiver<u64>,
    /// The outcome of the first registration attempt.
    pub registered: oneshot::Receiver<Result<(), crate::zk_call::ZkCallError>>,
}

pub(crate) struct Driver {
    cfg: GroupConfig,
    machine: Balancer,
    zk: Client,
    layout: GroupLayout,
    handover: Handover,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    events: mpsc::UnboundedSender<GroupEvent>,
    handshake: Arc<AtomicBool>,
    view: watch::Sender<AssignmentView>,
    metrics: Arc<Metrics>,
    leases: BTreeMap<TopicPartition, LeaseHandle>,
    owner_watches: BTreeMap<TopicPartition, JoinHandle<()>>,
    watches: Watches,
    /// The ACL of the member's own znodes (the config's policy).
    acl: Arc<[zookeeper_client::Acl]>,
    /// Told how the first registration went, so joining can fail on a
    /// refusal that retrying cannot cure (`NoAuth`).
    first_registration: Option<oneshot::Sender<Result<(), crate::zk_call::ZkCallError>>>,
    changed_tx: mpsc::UnboundedSender<()>,
    changed_rx: mpsc::UnboundedReceiver<()>,
    stop_waiters: Vec<oneshot::Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
    /// Bumped at every new session, so late answers from an old one are
    /// recognised and dropped.
    session_epoch: u64,
    /// The current session, for commits fenced by it; `None` once stopped.
    session: watch::Sender<Option<(u64, Client)>>,
    /// The rebalance under way: when it began, and its span.
    rebalance: Option<(Instant, tracing::Span)>,
    /// The current session's delivery lease, as the machine grants it;
    /// every partition lease of the session checks it.
    session_lease: Arc<SessionLease>,
    /// Bumped whenever the lease or a partition's gate changes, so a
    /// consumer waiting for a lapsed lease rechecks.
    pulse: watch::Sender<u64>,
}

/// A fresh lease for a new session (ignored by the `IgnoreLease` mutant).
fn session_lease(cfg: &BalanceConfig) -> Arc<SessionLease> {
    #[cfg(feature = "mutants")]
    if cfg.mutant == Some(crate::balance::Mutant::IgnoreLease) {
        return Arc::new(SessionLease::ignored());
    }
    let _ = cfg;
    Arc::new(SessionLease::new())
}

/// Confirms the session every `interval`; each answer renews the delivery
/// lease from the moment its request was sent. The request is a `sync`:
/// the server it reaches forwards it to the leader, which checks the
/// session there, so a follower cut off from its leader — which would
/// still answer reads — cannot confirm a session the leader may expire.
fn heartbeats(
    zk: &Client,
    tx: mpsc::UnboundedSender<Msg>,
    epoch: u64,
    interval: std::time::Duration,
) -> JoinHandle<()> {
    let zk = zk.clone();
    tokio::spawn(async move {
        loop {
            let sent_at = clock::now();
            match tokio::time::timeout(interval * 5, zk.sync("/")).await {
                Ok(Ok(())) => {
                    let beat = Answer { input: Some(Input::Heartbeat { sent_at }), skipped: Vec::new() };
                    if tx.send(Msg::Reply(epoch, beat)).is_err() {
                        return;
                    }
                }
                Ok(Err(_)) if zk.state().is_terminated() => return,
                Ok(Err(_)) | Err(_) => {}
            }
            tokio::time::sleep(interval).await;
        }
    })
}

fn session_events(zk: &Client, tx: mpsc::UnboundedSender<Msg>) {
    let mut states = zk.state_watcher();
    tokio::spawn(async move {
        loop {
            let state = states.changed().await;
            let event = match state {
                SessionState::Disconnected => SessionEvent::Disconnected,
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => SessionEvent::Reconnected,
                SessionState::Expired | SessionState::AuthFailed => SessionEvent::Expired,
                SessionState::Closed => return,
            };
            if tx.send(Msg::Input(Input::Session(event))).is_err() || state.is_terminated() {
                return;
            }
        }
    });
}

impl Driver {
    /// Starts driving `machine` over `zk`; returns the handles the public
    /// [`GroupMember`](super::GroupMember) keeps.
    pub fn start(cfg: GroupConfig, machine: Balancer, zk: Client) -> (JoinHandle<()>, Handles) {
        let acl_entries: Arc<[zookeeper_client::Acl]> = cfg.access.acl().entries().into();
        let balance = machine.config();
        let member = balance.member.clone();
        let layout = GroupLayout { group: cfg.group.clone(), flavour: balance.flavour, member: member.clone() };
        let handover = Handover::new(balance, cfg.revoke_timeout);
        let session_lease = session_lease(balance);
        let (tx, rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (changed_tx, changed_rx) = mpsc::unbounded_channel();
        let (view_tx, view) = watch::channel(AssignmentView::default());
        let (session_tx, session) = watch::channel(Some((0, zk.clone())));
        let (pulse_tx, pulse) = watch::channel(0);
        let handshake = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(Metrics::default());
        let (registered_tx, registered) = oneshot::channel();
        let driver = Driver {
            cfg,
            machine,
            zk,
            layout,
            handover,
            tx: tx.clone(),
            rx,
            events: events_tx,
            handshake: Arc::clone(&handshake),
            view: view_tx,
            metrics: Arc::clone(&metrics),
            leases: BTreeMap::new(),
            owner_watches: BTreeMap::new(),
            watches: Watches::default(),
            acl: acl_entries,
            first_registration: Some(registered_tx),
            changed_tx,
            changed_rx,
            stop_waiters: Vec::new(),
            heartbeat: None,
            session_epoch: 0,
            session: session_tx,
            rebalance: None,
            session_lease,
            pulse: pulse_tx,
        };
        let span = tracing::info_span!("group_member", member = %member);
        let task = tokio::spawn(tracing::Instrument::instrument(driver.run(), span));
        (task, Handles { control: tx, events, handshake, view, metrics, session, pulse, registered })
    }

    fn context(&self) -> Context {
        let subscription = &self.cfg.subscription;
        let topics = match subscription {
            Subscription::Static(topics) => topics.iter().map(|(t, _)| t.clone()).collect(),
            // Owner directories of matching topics are made when claimed.
            Subscription::Whitelist { .. } | Subscription::Blacklist { .. } => Vec::new(),
        };
        let timestamp = match self.layout.flavour {
            Flavour::Scala => {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
            }
            Flavour::Pykafka => None,
        };
        let payload = protocol::member_payload(self.layout.flavour, subscription, timestamp);
        Context {
            layout: self.layout.clone(),
            session: self.zk.session_id().0,
            topics,
            payload,
            exclude_internal_topics: self.cfg.exclude_internal_topics,
        }
    }

    /// Runs an operation in a task of its own; its answer comes back tagged
    /// with the session it was made in.
    fn spawn(&self, op: Operation) -> JoinHandle<()> {
        let (zk, tx, epoch) = (self.zk.clone(), self.tx.clone(), self.session_epoch);
        let (watches, changed) = (self.watches.clone(), self.changed_tx.clone());
        let acl = Arc::clone(&self.acl);
        tokio::spawn(async move {
            let watching =
                if op.awaits_owners_of().is_some() { Watching::Awaited } else { Watching::Stale(&watches, &changed) };
            let answer = zk::run_with_acl(&zk, op, watching, &acl).await;
            let _ = tx.send(Msg::Reply(epoch, answer));
        })
    }

    fn start_heartbeats(&mut self) {
        if let Some(old) = self.heartbeat.take() {
            old.abort();
        }
        let interval = self.machine.config().heartbeat_interval();
        self.heartbeat = Some(heartbeats(&self.zk, self.tx.clone(), self.session_epoch, interval));
    }

    async fn run(mut self) {
        session_events(&self.zk, self.tx.clone());
        self.start_heartbeats();
        self.feed(Input::Start);
        loop {
            let due = [self.machine.next_deadline(), self.handover.next_deadline()].into_iter().flatten().min();
            let deadline = due.map(|t| Instant::now() + clock::until(t));
            let msg = tokio::select! {
                msg = self.rx.recv() => msg,
                Some(()) = self.changed_rx.recv() => Some(Msg::Input(Input::Changed)),
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    Some(Msg::Input(Input::Tick))
                }
            };
            match msg {
                None => break,
                Some(Msg::Input(Input::Tick)) => {
                    for tp in self.handover.overdue(clock::now()) {
                        self.metrics.forced_releases.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%tp, timeout = ?self.cfg.revoke_timeout, "the application kept a revoked partition too long; releasing it");
                        self.feed(Input::Released(tp));
                    }
                    self.feed(Input::Tick);
                }
                Some(Msg::Input(input)) => self.feed(input),
                Some(Msg::Reply(epoch, answer)) => self.answer(epoch, answer),
                Some(Msg::LetGo(tp)) => {
                    if let Some(input) = self.handover.let_go(&tp) {
                        self.feed(input);
                    }
                }
                Some(Msg::NewClient(zk)) => {
                    self.zk = zk;
                    self.session_epoch += 1;
                    self.session_lease = session_lease(self.machine.config());
                    self.session.send_replace(Some((self.session_epoch, self.zk.clone())));
                    self.watches.clear();
                    session_events(&self.zk, self.tx.clone());
                    self.start_heartbeats();
                    self.feed(Input::Session(SessionEvent::Established));
                }
                Some(Msg::Stop(done)) => {
                    self.stop_waiters.push(done);
                    self.feed(Input::Stop);
                }
            }
            if self.machine.is_stopped() {
                break;
            }
        }
        // Every task holding a client clone goes, so the session closes.
        self.session_lease.publish(None);
        self.pulse.send_modify(|p| *p += 1);
        self.session.send_replace(None);
        for (_, task) in std::mem::take(&mut self.owner_watches) {
            task.abort();
        }
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        for waiter in self.stop_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    fn answer(&mut self, epoch: u64, answer: Answer) {
        let Some(input) = answer.input else { return };
        if !protocol::admit(self.machine.config(), self.session_epoch, epoch, &input) {
            tracing::debug!(?input, "dropping an answer from an earlier session");
            return;
        }
        for skipped in &answer.skipped {
            tracing::warn!(znode = %skipped, "skipping a znode the group cannot use");
        }
        self.metrics.skipped_znodes.fetch_add(answer.skipped.len() as u64, Ordering::Relaxed);
        let first = match &input {
            Input::Registered => Some(Ok(())),
            Input::RegisterFailed(e) => Some(Err(e.clone())),
            _ => None,
        };
        if let Some(outcome) = first {
            if let Some(tx) = self.first_registration.take() {
                let _ = tx.send(outcome);
            }
        }
        self.feed(input);
    }

    fn feed(&mut self, input: Input) {
        if matches!(input, Input::Snapshot(_)) {
            self.metrics.group_reads.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(input, Input::Session(SessionEvent::Expired)) {
            self.metrics.session_expirations.fetch_add(1, Ordering::Relaxed);
        }
        let actions = self.machine.handle(clock::now(), input);
        if self.rebalance.is_none()
            && actions.iter().any(|a| matches!(a, Action::Revoke(_) | Action::Claim { .. } | Action::Lost(_)))
        {
            let span = tracing::info_span!("rebalance", generation = self.machine.generation());
            self.rebalance = Some((Instant::now(), span));
        }
        let span = self.rebalance.as_ref().map(|(_, s)| s.clone());
        let _entered = span.as_ref().map(|s| s.enter());
        let gates_end = actions.iter().any(|a| matches!(a, Action::Revoke(_) | Action::Lost(_)));
        for action in actions {
            self.execute(action);
        }
        // After the actions: a lost partition's gate is closed before the
        // lease of its session could say anything again.
        if self.session_lease.publish(self.machine.lease_until()) || gates_end {
            self.pulse.send_modify(|p| *p += 1);
        }
        let settled = self.machine.is_settled();
        self.view.send_if_modified(|v| std::mem::replace(&mut v.settled, settled) != settled);
        if settled || self.machine.is_stopped() {
            if let Some((started, span)) = self.rebalance.take() {
                let took = started.elapsed();
                self.metrics.rebalances.record(took);
                #[cfg(feature = "metrics")]
                metrics::histogram!("zkbalance_rebalance_seconds", "group" => self.layout.group.to_string())
                    .record(took.as_secs_f64());
                let generation = self.machine.generation();
                span.in_scope(|| tracing::info!(?took, generation, "rebalance done"));
                let _ = self.events.send(GroupEvent::Settled { generation });
            }
        }
    }

    fn execute(&mut self, action: Action) {
        tracing::debug!(?action, "executing");
        if let Some(op) = Operation::for_action(&action, &self.context()) {
            match &action {
                Action::Claim { .. } => {
                    self.metrics.claims.fetch_add(1, Ordering::Relaxed);
                }
                Action::WatchOwner(_) => {
                    self.metrics.claim_waits.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            let tp = op.awaits_owners_of().cloned();
            let task = self.spawn(op);
            if let Some(old) = tp.and_then(|tp| self.owner_watches.insert(tp, task)) {
                old.abort();
            }
            return;
        }
        match action {
            Action::Unwatch(tp) => {
                if let Some(task) = self.owner_watches.remove(&tp) {
                    task.abort();
                }
            }
            Action::Revoke(tps) => self.revoke(tps),
            Action::Lost(tps) => {
                self.metrics.partitions_lost.fetch_add(tps.len() as u64, Ordering::Relaxed);
                for tp in &tps {
                    self.handover.forget(tp);
                    if let Some(h) = self.leases.remove(tp) {
                        drop(h.end(Ending::Lost));
                    }
                }
                let _ = self.events.send(GroupEvent::Lost { partitions: tps.into_iter().collect() });
            }
            Action::Assigned { generation, partitions } => self.assigned(generation, partitions),
            Action::Suspend => {
                tracing::warn!("delivery suspended: the session has not been confirmed recently enough");
                self.view.send_modify(|v| v.suspended = true);
                let _ = self.events.send(GroupEvent::Suspended);
            }
            Action::Resume => {
                tracing::info!("delivery resumed: the session is confirmed again");
                self.view.send_modify(|v| v.suspended = false);
                let _ = self.events.send(GroupEvent::Resumed);
            }
            Action::NewSession => self.new_session(),
            // Dropping the driver's client (the last one) closes the session.
            Action::Close => {}
            Action::Blocked { by, waited, past_bound } => {
                self.metrics.blocked_by.store(by.len() as u64, Ordering::Relaxed);
                self.metrics.blocked_reports.fetch_add(1, Ordering::Relaxed);
                self.view.send_modify(|v| v.blocked_by = by.clone());
                let _ = self.events.send(GroupEvent::Blocked { by, waited, past_bound });
            }
            Action::Unblocked => {
                self.metrics.blocked_by.store(0, Ordering::Relaxed);
                self.view.send_modify(|v| v.blocked_by.clear());
                let _ = self.events.send(GroupEvent::Unblocked);
            }
            Action::Error(e) => {
                match e {
                    BalanceError::ClaimGaveUp { .. } => {
                        self.metrics.claims_abandoned.fetch_add(1, Ordering::Relaxed);
                    }
                    BalanceError::UnreadableLeftOut { .. } => {
                        self.metrics.unreadable_left_out.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                tracing::warn!(error = %e, "group member error");
                let _ = self.events.send(GroupEvent::Error(e));
            }
            Action::ReadGroup
            | Action::Claim { .. }
            | Action::WatchOwner(_)
            | Action::DeleteOwner { .. }
            | Action::Register
            | Action::Deregister => unreachable!("carried out by an operation"),
        }
    }

    fn new_session(&self) {
        let (connect, access, timeout, tx) = (
            self.cfg.zookeeper.clone(),
            self.cfg.access.clone(),
            self.machine.config().session_timeout,
            self.tx.clone(),
        );
        tokio::spawn(async move {
            let mut delay = std::time::Duration::from_millis(100);
            loop {
                match super::connect(&connect, &access, timeout, timeout * 2).await {
                    Ok(zk) => {
                        let _ = tx.send(Msg::NewClient(zk));
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reconnecting after session expiry failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(std::time::Duration::from_secs(5));
                    }
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
    }

    fn revoke(&mut self, tps: std::collections::BTreeSet<TopicPartition>) {
        let handshake = self.handshake.load(Ordering::Relaxed);
        let now = clock::now();
        for tp in &tps {
            let handle = self.leases.remove(tp);
            let waits = handshake && handle.is_some();
            if let Some(input) = self.handover.revoke(now, tp.clone(), waits) {
                if let Some(h) = handle {
                    drop(h.end(Ending::Revoked));
                }
                let _ = self.tx.send(Msg::Input(input));
                continue;
            }
            if let Some(h) = handle {
                let released = h.end(Ending::Revoked);
                let (tx, tp) = (self.tx.clone(), tp.clone());
                tokio::spawn(async move {
                    released.await;
                    let _ = tx.send(Msg::LetGo(tp));
                });
            }
        }
        self.view.send_modify(|v| v.partitions.retain(|tp| !tps.contains(tp)));
        let _ = self.events.send(GroupEvent::Revoked { partitions: tps.into_iter().collect() });
    }

    fn assigned(&mut self, generation: u64, partitions: Vec<(TopicPartition, crate::assign::Slot)>) {
        let mut fresh = Vec::new();
        // The first round's end is recorded after its last claim.
        let first_round = self.metrics.rebalances.count() == 0;
        for (tp, slot) in &partitions {
            if !self.leases.contains_key(tp) {
                let name = self.machine.held_owner_name(tp).expect("an assigned partition is held");
                let owner_path = self.layout.owner_paths(tp, name).swap_remove(0);
                let fence = Fence { session: self.session_epoch, owner_path };
                let gate = PartitionGate::new(Arc::clone(&self.session_lease));
                let (l, h) = lease(tp.clone(), slot.clone(), generation, first_round, fence, gate);
                self.leases.insert(tp.clone(), h);
                fresh.push(l);
            }
        }
        let all: Vec<TopicPartition> = partitions.into_iter().map(|(tp, _)| tp).collect();
        self.view.send_modify(|v| {
            v.generation = generation;
            v.partitions = all.iter().cloned().collect();
        });
        tracing::info!(generation, partitions = all.len(), new = fresh.len(), "assignment changed");
        let _ = self.events.send(GroupEvent::Assigned { generation, leases: fresh, partitions: all });
    }
}
