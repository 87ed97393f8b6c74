//! The loop that carries out the state machine's actions with
//! `zookeeper-client` and feeds the answers back. It owns the machine, so no
//! lock guards it; every ZooKeeper call runs in a task of its own and
//! answers through the loop's channel, so no call ever blocks the loop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zookeeper_client::{Client, SessionState};

use crate::balance::{Action, BalanceError, Balancer, Input, PartitionGate, SessionEvent, SessionLease};
use crate::ids::TopicPartition;
use crate::znode::{Codec, Flavour, MemberRegistration, ScalaRegistration, Subscription};

use super::clock;
use super::config::GroupConfig;
use super::lease::{lease, Ending, Fence, LeaseHandle};
use super::ops::{self, Layout};
use super::read::{Reader, Watches};
use super::{AssignmentView, GroupEvent, Metrics};

pub(crate) enum Msg {
    Input(Input),
    /// The answer to a request made in session number `.0`: dropped if a
    /// new session has started since, whatever it says.
    Reply(u64, Input),
    NewClient(Client),
    Stop(oneshot::Sender<()>),
}

pub(crate) struct Driver {
    pub cfg: GroupConfig,
    pub machine: Balancer,
    pub zk: Client,
    pub layout: Layout,
    pub tx: mpsc::UnboundedSender<Msg>,
    pub rx: mpsc::UnboundedReceiver<Msg>,
    pub events: mpsc::UnboundedSender<GroupEvent>,
    pub handshake: Arc<std::sync::atomic::AtomicBool>,
    pub view: watch::Sender<AssignmentView>,
    pub metrics: Arc<Metrics>,
    pub leases: BTreeMap<TopicPartition, LeaseHandle>,
    pub owner_watches: BTreeMap<TopicPartition, JoinHandle<()>>,
    pub watches: Watches,
    pub changed_tx: mpsc::UnboundedSender<()>,
    pub changed_rx: mpsc::UnboundedReceiver<()>,
    pub stop_waiters: Vec<oneshot::Sender<()>>,
    pub heartbeat: Option<JoinHandle<()>>,
    /// Bumped at every new session, so late answers from an old one are
    /// recognised and dropped.
    pub session_epoch: u64,
    /// The current session, for commits fenced by it; `None` once stopped.
    pub session: watch::Sender<Option<(u64, Client)>>,
    /// The rebalance under way: when it began, and its span.
    pub rebalance: Option<(Instant, tracing::Span)>,
    /// The current session's delivery lease, as the machine grants it;
    /// every partition lease of the session checks it.
    pub session_lease: Arc<SessionLease>,
    /// Bumped whenever the lease or a partition's gate changes, so a
    /// consumer waiting for a lapsed lease rechecks.
    pub pulse: watch::Sender<u64>,
}

/// A fresh lease for a new session (ignored by the `IgnoreLease` mutant).
pub(crate) fn session_lease(cfg: &crate::balance::BalanceConfig) -> Arc<SessionLease> {
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
                    if tx.send(Msg::Reply(epoch, Input::Heartbeat { sent_at })).is_err() {
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
    pub fn member_payload(&self) -> Vec<u8> {
        let registration = match self.layout.flavour {
            Flavour::Pykafka => MemberRegistration::Pykafka {
                topic: self.cfg.topics.keys().next().expect("validated: one topic").clone(),
            },
            Flavour::Scala => MemberRegistration::Scala(ScalaRegistration {
                subscription: Subscription::Static(self.cfg.topics.iter().map(|(t, n)| (t.clone(), *n)).collect()),
                timestamp_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_millis() as u64),
            }),
        };
        registration.encode()
    }

    /// Runs a request in a task of its own; its answer comes back tagged
    /// with the session it was made in.
    fn send_later(&self, fut: impl std::future::Future<Output = Input> + Send + 'static) {
        let (tx, epoch) = (self.tx.clone(), self.session_epoch);
        tokio::spawn(async move {
            let input = fut.await;
            let _ = tx.send(Msg::Reply(epoch, input));
        });
    }

    fn start_heartbeats(&mut self) {
        if let Some(old) = self.heartbeat.take() {
            old.abort();
        }
        let interval = self.machine.config().heartbeat_interval();
        self.heartbeat = Some(heartbeats(&self.zk, self.tx.clone(), self.session_epoch, interval));
    }

    pub async fn run(mut self) {
        session_events(&self.zk, self.tx.clone());
        self.start_heartbeats();
        self.feed(Input::Start);
        loop {
            let deadline = self.machine.next_deadline().map(|t| Instant::now() + clock::until(t));
            let msg = tokio::select! {
                msg = self.rx.recv() => msg,
                Some(()) = self.changed_rx.recv() => Some(Msg::Input(Input::Changed)),
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    Some(Msg::Input(Input::Tick))
                }
            };
            match msg {
                None => break,
                Some(Msg::Input(input)) => self.feed(input),
                Some(Msg::Reply(epoch, input)) => {
                    if epoch == self.session_epoch {
                        self.feed(input);
                    } else {
                        tracing::debug!(?input, "dropping an answer from an earlier session");
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

    fn feed(&mut self, input: Input) {
        if matches!(input, Input::Snapshot(_)) {
            self.metrics.group_reads.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(input, Input::Session(SessionEvent::Expired)) {
            self.metrics.session_expirations.fetch_add(1, Ordering::Relaxed);
        }
        let now = clock::now();
        let actions = self.machine.handle(now, input);
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
        if self.machine.is_settled() || self.machine.is_stopped() {
            if let Some((started, span)) = self.rebalance.take() {
                let took = started.elapsed();
                self.metrics.rebalances.record(took);
                span.in_scope(|| tracing::info!(?took, generation = self.machine.generation(), "rebalance done"));
            }
        }
    }

    fn execute(&mut self, action: Action) {
        tracing::debug!(?action, "executing");
        match action {
            Action::Register => {
                let (zk, layout, payload) = (self.zk.clone(), self.layout.clone(), self.member_payload());
                let topics: Vec<_> = self.cfg.topics.keys().cloned().collect();
                self.send_later(async move {
                    match ops::register(&zk, &layout, topics.iter(), &payload).await {
                        Ok(()) => Input::Registered,
                        Err(e) => Input::RegisterFailed(e),
                    }
                });
            }
            Action::ReadGroup => {
                let (zk, layout, watches, changed) =
                    (self.zk.clone(), self.layout.clone(), self.watches.clone(), self.changed_tx.clone());
                let metrics = Arc::clone(&self.metrics);
                self.send_later(async move {
                    let reader = Reader { zk: &zk, layout: &layout, watches: &watches, changed: &changed };
                    match reader.read().await {
                        Ok((snapshot, skipped)) => {
                            for e in &skipped {
                                tracing::warn!(error = %e, "skipping a malformed znode");
                            }
                            metrics.skipped_znodes.fetch_add(skipped.len() as u64, Ordering::Relaxed);
                            Input::Snapshot(snapshot)
                        }
                        Err(e) => Input::ReadFailed(e),
                    }
                });
            }
            Action::Claim { tp, slot, name } => {
                self.metrics.claims.fetch_add(1, Ordering::Relaxed);
                let (zk, layout) = (self.zk.clone(), self.layout.clone());
                self.send_later(async move {
                    let outcome = ops::claim(&zk, &layout, &tp, &slot, name).await;
                    Input::ClaimResult { tp, outcome }
                });
            }
            Action::WatchOwner(tp) => {
                self.metrics.claim_waits.fetch_add(1, Ordering::Relaxed);
                let (zk, layout, tx) = (self.zk.clone(), self.layout.clone(), self.tx.clone());
                let key = tp.clone();
                let task = tokio::spawn(async move {
                    // On error the claim's backoff timer retries anyway.
                    if ops::owners_gone(&zk, &layout, &tp).await.is_ok() {
                        let _ = tx.send(Msg::Input(Input::OwnerGone(tp)));
                    }
                });
                if let Some(old) = self.owner_watches.insert(key, task) {
                    old.abort();
                }
            }
            Action::Unwatch(tp) => {
                if let Some(task) = self.owner_watches.remove(&tp) {
                    task.abort();
                }
            }
            Action::Revoke(tps) => self.revoke(tps),
            Action::Lost(tps) => {
                self.metrics.partitions_lost.fetch_add(tps.len() as u64, Ordering::Relaxed);
                for tp in &tps {
                    if let Some(h) = self.leases.remove(tp) {
                        drop(h.end(Ending::Lost));
                    }
                }
                let _ = self.events.send(GroupEvent::Lost { partitions: tps.into_iter().collect() });
            }
            Action::DeleteOwner { tp, name } => {
                let (zk, layout) = (self.zk.clone(), self.layout.clone());
                self.send_later(async move {
                    ops::delete_owner(&zk, &layout, &tp, name).await;
                    Input::OwnerDeleted(tp)
                });
            }
            Action::Assigned { generation, partitions } => self.assigned(generation, partitions),
            Action::Suspend => {
                self.view.send_modify(|v| v.suspended = true);
                let _ = self.events.send(GroupEvent::Suspended);
            }
            Action::Resume => {
                self.view.send_modify(|v| v.suspended = false);
                let _ = self.events.send(GroupEvent::Resumed);
            }
            Action::NewSession => {
                let (connect, timeout, tx) =
                    (self.cfg.zookeeper.clone(), self.cfg.balance.session_timeout, self.tx.clone());
                tokio::spawn(async move {
                    let mut delay = std::time::Duration::from_millis(100);
                    loop {
                        match super::connect(&connect, timeout, timeout * 2).await {
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
            Action::Deregister => {
                let (zk, layout) = (self.zk.clone(), self.layout.clone());
                self.send_later(async move {
                    if let Err(e) = ops::deregister(&zk, &layout).await {
                        tracing::warn!(error = %e, "deleting the member znode failed; closing the session removes it");
                    }
                    Input::Deregistered
                });
            }
            // Dropping the driver's client (the last one) closes the session.
            Action::Close => {}
            Action::Error(e) => {
                if matches!(e, BalanceError::ClaimGaveUp { .. }) {
                    self.metrics.claims_abandoned.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(error = %e, "group member error");
                let _ = self.events.send(GroupEvent::Error(e));
            }
        }
    }

    fn revoke(&mut self, tps: BTreeSet<TopicPartition>) {
        let handshake = self.handshake.load(Ordering::Relaxed);
        for tp in &tps {
            let handle = self.leases.remove(tp);
            let (tx, timeout, metrics, tp) =
                (self.tx.clone(), self.cfg.revoke_timeout, Arc::clone(&self.metrics), tp.clone());
            match handle {
                Some(h) if handshake => {
                    let released = h.end(Ending::Revoked);
                    tokio::spawn(async move {
                        if tokio::time::timeout(timeout, released).await.is_err() {
                            metrics.forced_releases.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%tp, ?timeout, "the application kept a revoked partition too long; releasing it");
                        }
                        let _ = tx.send(Msg::Input(Input::Released(tp)));
                    });
                }
                other => {
                    if let Some(h) = other {
                        drop(h.end(Ending::Revoked));
                    }
                    let _ = tx.send(Msg::Input(Input::Released(tp)));
                }
            }
        }
        self.view.send_modify(|v| v.partitions.retain(|tp| !tps.contains(tp)));
        let _ = self.events.send(GroupEvent::Revoked { partitions: tps.into_iter().collect() });
    }

    fn assigned(&mut self, generation: u64, partitions: Vec<(TopicPartition, crate::assign::Slot)>) {
        let mut fresh = Vec::new();
        for (tp, slot) in &partitions {
            if !self.leases.contains_key(tp) {
                let name = self.machine.held_owner_name(tp).expect("an assigned partition is held");
                let owner_path = self.layout.owner_paths(tp, name).swap_remove(0);
                let fence = Fence { session: self.session_epoch, owner_path };
                let gate = PartitionGate::new(Arc::clone(&self.session_lease));
                let (l, h) = lease(tp.clone(), slot.clone(), generation, fence, gate);
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
