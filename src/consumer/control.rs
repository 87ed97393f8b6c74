//! What the consumer does with group events: one task per leased
//! partition (read the committed offset, start fetching, and on revoke stop
//! delivering, stop fetching, wait for the messages in hand, commit, and
//! let go), and one task that runs commits one at a time so they never
//! overtake each other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::listener::{self, Chosen, Listening};
use super::metrics::Counters;
use super::notice::{ConsumeError, Notices};
use super::partition::PartitionCell;
use super::start::{self, Place, StartBatch};
use crate::balance::BalanceError;
use crate::coord::{Ending, GroupEvent, Lease};
use crate::fetch::Fetcher;
use crate::ids::TopicPartition;
use crate::offsets::{Committer, OffsetError, OffsetReset};

pub(crate) struct CommitRequest {
    pub cells: Vec<Arc<PartitionCell>>,
    /// The caller waits for the outcome; without one, failures go to the
    /// application's notices.
    pub done: Option<oneshot::Sender<Result<(), OffsetError>>>,
}

pub(crate) struct Shared {
    pub cells: Mutex<BTreeMap<TopicPartition, Arc<PartitionCell>>>,
    pub counters: Arc<Counters>,
    pub fetcher: Fetcher<Arc<PartitionCell>>,
    pub committer: Committer,
    pub commits: mpsc::UnboundedSender<CommitRequest>,
    pub reset: OffsetReset,
    /// Start the first assignment's partitions at the reset end.
    pub reset_on_start: bool,
    /// Where each partition starts the first time it is owned.
    pub start_at: super::StartAt,
    /// The partitions started at `start_at` already.
    pub positioned: Mutex<std::collections::HashSet<TopicPartition>>,
    pub listening: Arc<Listening>,
    /// How long a revoke waits for the messages in hand to be acknowledged.
    pub ack_wait: Duration,
    pub notices: Notices,
    /// Set by `stop` and on drop: the group member's end is expected.
    pub stopping: AtomicBool,
}

impl Shared {
    /// Where `tp` starts if this is the first time it is owned and a start
    /// position was asked for.
    pub fn first_start(&self, tp: &TopicPartition) -> Option<super::StartAt> {
        (self.start_at != super::StartAt::Committed && !self.positioned.lock().contains(tp)).then_some(self.start_at)
    }

    /// `tp` started at the asked position: later leases resume from commits.
    pub fn positioned(&self, tp: &TopicPartition) {
        self.positioned.lock().insert(tp.clone());
    }

    /// The owned partitions' cells, copied out so the map's lock is not
    /// held while they are used.
    pub fn owned_cells(&self) -> Vec<Arc<PartitionCell>> {
        self.cells.lock().values().cloned().collect()
    }

    /// Commits every owned partition's low watermark; `Err` carries the
    /// first failure.
    pub async fn commit_all(&self) -> Result<(), OffsetError> {
        self.commit(self.owned_cells()).await
    }

    /// Commits every owned partition, reporting failures to the
    /// application (the periodic commit).
    fn commit_all_reported(&self) {
        let _ = self.commits.send(CommitRequest { cells: self.owned_cells(), done: None });
    }

    /// Moves an owned partition's delivery to `offset`: fetching restarts
    /// there, messages fetched before are dropped, and acknowledgements of
    /// messages delivered before no longer count (they come as late).
    /// `false` if the partition is not owned, or is being revoked.
    pub async fn seek(&self, tp: &TopicPartition, offset: u64) -> bool {
        let Some(old) = self.cells.lock().get(tp).cloned().filter(|c| c.is_active()) else { return false };
        self.fetcher.unassign(vec![tp.clone()]).await;
        let new = Arc::new(old.successor(offset));
        {
            // Under the map's lock, as the revoke takes the current cell.
            let mut cells = self.cells.lock();
            if !cells.get(tp).is_some_and(|c| Arc::ptr_eq(c, &old)) || !old.is_active() {
                return false;
            }
            old.close();
            cells.insert(tp.clone(), Arc::clone(&new));
        }
        self.fetcher.assign(vec![(tp.clone(), rdkafka::Offset::Offset(offset as i64), new)]);
        true
    }

    /// The partition's current cell (a seek replaces it), marked revoking
    /// in the same step when `revoking`.
    fn current(&self, tp: &TopicPartition, fallback: &Arc<PartitionCell>, revoking: bool) -> Arc<PartitionCell> {
        let cells = self.cells.lock();
        let cell = cells.get(tp).cloned().unwrap_or_else(|| Arc::clone(fallback));
        if revoking {
            cell.begin_revoke();
        }
        cell
    }

    async fn commit(&self, cells: Vec<Arc<PartitionCell>>) -> Result<(), OffsetError> {
        let (done, wait) = oneshot::channel();
        if self.commits.send(CommitRequest { cells, done: Some(done) }).is_err() {
            return Ok(());
        }
        wait.await.unwrap_or(Ok(()))
    }
}

/// Runs commits in order. A fenced commit is expected around rebalances and
/// only counted; other failures are counted, logged and returned.
///
/// Nothing is committed unless the partition's session lease holds at the
/// moment of the commit (judged at this clock, like deliveries): past it
/// the session may be expiring and a successor about to start, and a late
/// commit of ours — to Kafka, which has no owner-znode check — would move
/// its committed offset backwards.
pub(crate) async fn committer(
    committer: Committer,
    counters: Arc<Counters>,
    notices: Notices,
    mut rx: mpsc::UnboundedReceiver<CommitRequest>,
) {
    while let Some(req) = rx.recv().await {
        let mut first = None;
        for cell in req.cells {
            let Some(offset) = cell.to_commit() else { continue };
            if !cell.gate.session().valid_at(crate::coord::clock::now()) {
                counters.fenced_commits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(tp = %cell.tp, "commit skipped: the delivery lease lapsed");
                continue;
            }
            #[cfg(feature = "metrics")]
            let began = std::time::Instant::now();
            let result = committer.commit(&cell.fence, &cell.tp, offset).await;
            #[cfg(feature = "metrics")]
            metrics::histogram!("zkbalance_commit_seconds", "group" => committer.zk.group.to_string())
                .record(began.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    cell.committed(offset);
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(tp = %cell.tp, offset, "committed");
                }
                Err(OffsetError::Fenced { tp }) => {
                    counters.fenced_commits.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%tp, "commit fenced: the partition is no longer ours");
                }
                Err(e) => {
                    counters.commit_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "offset commit failed");
                    match &req.done {
                        Some(_) => {
                            first.get_or_insert(e);
                        }
                        None => notices.post(ConsumeError::Commit { partition: cell.tp.clone(), source: e }),
                    }
                }
            }
        }
        if let Some(done) = req.done {
            let _ = done.send(first.map_or(Ok(()), Err));
        }
    }
}

/// The control task's periodic work.
pub(crate) struct Timers {
    pub auto_commit: Option<Duration>,
    /// The bound of [`ConsumeError::AckOverdue`].
    pub ack_warning: Option<Duration>,
    /// Longest wait for a rebalance to settle before the partitions it
    /// granted so far start (with a listener).
    pub round_wait: Duration,
}

/// Newly owned partitions of one rebalance, waiting for it to settle.
struct Round {
    generation: u64,
    leases: Vec<Lease>,
    /// When they start even if the rebalance has not settled; `None` while
    /// there is nothing to start.
    due: Option<tokio::time::Instant>,
    wait: Duration,
}

impl Round {
    fn new(generation: u64, wait: Duration) -> Self {
        Round { generation, leases: Vec::new(), due: None, wait }
    }

    fn add(&mut self, generation: u64, leases: Vec<Lease>) {
        self.generation = generation;
        if !leases.is_empty() && self.due.is_none() {
            self.due = Some(tokio::time::Instant::now() + self.wait);
        }
        self.leases.extend(leases);
    }

    /// Drops the leases that ended before they started (revoked or lost in
    /// the same rebalance), so their release does not wait for the round;
    /// returns their partitions.
    fn drop_ended(&mut self) -> BTreeSet<TopicPartition> {
        let (ended, held): (Vec<Lease>, Vec<Lease>) =
            std::mem::take(&mut self.leases).into_iter().partition(|l| l.ending() != Ending::Held);
        self.leases = held;
        ended.iter().map(|l| l.topic_partition().clone()).collect()
    }
}

async fn round_due(round: &Option<Round>) {
    match round.as_ref().and_then(|r| r.due) {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Announces a round's partitions to the listener in one call and starts
/// them together.
fn start_round(shared: &Arc<Shared>, tasks: &mut JoinSet<()>, round: Option<Round>) {
    let Some(Round { generation, leases, .. }) = round else { return };
    if leases.is_empty() {
        return;
    }
    let mut fresh: Vec<TopicPartition> = leases.iter().map(|l| l.topic_partition().clone()).collect();
    fresh.sort();
    // Before fetching starts: the listener may choose where the
    // partitions start.
    let chosen = shared.listening.assigned(generation, fresh);
    let batch = StartBatch::new(leases.len());
    for lease in leases {
        let place = Place::new(&batch, shared);
        // pykafka's `reset_offset_on_start`: the first rebalance only
        // (later ones resume from commits).
        let reset = shared.reset_on_start && lease.is_first_round();
        tasks.spawn(partition(Arc::clone(shared), lease, place, reset, chosen.clone()));
    }
}

fn interval(period: Option<Duration>) -> tokio::time::Interval {
    let period = period.unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Reacts to group events until the group member is gone.
pub(crate) async fn run(shared: Arc<Shared>, mut events: mpsc::UnboundedReceiver<GroupEvent>, timers: Timers) {
    let mut tasks = JoinSet::new();
    let auto_commit = timers.auto_commit;
    let mut tick = interval(auto_commit);
    // Checked four times per bound: a stuck message is reported at most a
    // quarter of the bound late.
    let ack_warning = timers.ack_warning;
    let mut ack_tick = interval(ack_warning.map(|b| (b / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))));
    // The newly owned partitions of the rebalance under way, not started
    // yet: the listener hears of them once, when it settles.
    let mut round: Option<Round> = None;
    // Why the group member is ending on its own, once it says.
    let mut ending: Option<String> = None;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                None => {
                    if !shared.stopping.load(Ordering::Acquire) {
                        let reason = ending.take().unwrap_or_else(|| "the group member ended".to_owned());
                        shared.notices.post(ConsumeError::Fatal { reason });
                    }
                    break;
                }
                Some(GroupEvent::Assigned { generation, leases, .. }) => {
                    let r = round.get_or_insert_with(|| Round::new(generation, timers.round_wait));
                    r.add(generation, leases);
                    // Claims complete one by one, each its own event: take
                    // those already queued together.
                    let mut settled = false;
                    while let Ok(next) = events.try_recv() {
                        match next {
                            GroupEvent::Assigned { generation, leases, .. } => r.add(generation, leases),
                            GroupEvent::Settled { .. } => settled = true,
                            other => on_event(&shared, other, Some(&mut *r), &mut ending),
                        }
                    }
                    // Without a listener nobody hears of the round: its
                    // partitions start as their claims complete.
                    if settled || shared.listening.listener.is_none() {
                        start_round(&shared, &mut tasks, round.take());
                    }
                }
                Some(GroupEvent::Settled { .. }) => start_round(&shared, &mut tasks, round.take()),
                Some(other) => on_event(&shared, other, round.as_mut(), &mut ending),
            },
            // A round that does not settle (a claim waiting for a crashed
            // peer's owner znode to expire) is announced in parts.
            _ = round_due(&round) => start_round(&shared, &mut tasks, round.take()),
            _ = tick.tick(), if auto_commit.is_some() => shared.commit_all_reported(),
            _ = ack_tick.tick(), if ack_warning.is_some() => report_overdue(&shared, ack_warning.unwrap_or_default()),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Reports each partition whose commits wait for one message longer than
/// `bound`.
fn report_overdue(shared: &Shared, bound: Duration) {
    let now = crate::coord::clock::now();
    for cell in shared.owned_cells() {
        if let Some((offset, held_for)) = cell.overdue(now, bound) {
            shared.counters.acks_overdue.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tp = %cell.tp, offset, ?held_for, "a message not acknowledged holds the partition's commits back");
            shared.notices.post(ConsumeError::AckOverdue { partition: cell.tp.clone(), offset, held_for });
        }
    }
}

/// Acts on a group event other than an assignment; `ending` learns why
/// the member is about to end, when it ends on its own.
fn on_event(shared: &Arc<Shared>, event: GroupEvent, round: Option<&mut Round>, ending: &mut Option<String>) {
    // A partition revoked or lost before the listener was told of it is
    // dropped unannounced.
    let dropped = round.map(Round::drop_ended).unwrap_or_default();
    let announced = |partitions: Vec<TopicPartition>| -> Vec<TopicPartition> {
        partitions.into_iter().filter(|tp| !dropped.contains(tp)).collect()
    };
    match event {
        // The partitions' tasks see their leases end first; the listener
        // hears of the whole step here.
        GroupEvent::Revoked { partitions } => shared.listening.revoked(announced(partitions)),
        GroupEvent::Lost { partitions } => shared.listening.lost(announced(partitions)),
        // Reported once, as the reason of the `Fatal` that ends the stream.
        GroupEvent::Error(e @ BalanceError::RegistrationRefused(_)) => {
            tracing::error!(error = %e, "the group member ends");
            *ending = Some(e.to_string());
        }
        GroupEvent::Error(e) => {
            tracing::warn!(error = %e, "group error");
            shared.notices.post(ConsumeError::Group(e));
        }
        other => tracing::debug!(event = ?other, "group event"),
    }
}

async fn partition(shared: Arc<Shared>, mut lease: Lease, mut place: Place, reset: bool, chosen: Option<Chosen>) {
    let tp = lease.topic_partition().clone();
    shared.listening.fresh(&tp);
    let span = tracing::info_span!("partition", %tp, generation = lease.generation());
    let _ = tracing::Instrument::instrument(
        async {
            // A revoke may come while the start is looked up (claims in a
            // storm are often taken back at once): it must not wait for the
            // lookup, or the release, and every peer's claim, waits too.
            let found = tokio::select! {
                biased;
                ending = lease.ended() => Err(ending),
                found = async {
                    match listener::chosen(chosen, &tp).await {
                        Some(o) => Some((Some(o), rdkafka::Offset::Offset(o as i64))),
                        None => start::find(&shared, &tp, &mut place, reset).await,
                    }
                } => Ok(found),
            };
            let (start, offset) = match found {
                // Nothing was fetched or delivered: nothing to stop or commit
                // (the listener hears of the revoke with the others).
                Err(_) => return,
                Ok(None) => {
                    place.defer();
                    let source = OffsetError::NoCommittedOffset { tp: tp.clone() };
                    tracing::error!(error = %source, "partition left idle");
                    shared.notices.post(ConsumeError::StartOffset { partition: tp.clone(), source });
                    lease.ended().await;
                    return;
                }
                Ok(Some(found)) => found,
            };
            let cell = Arc::new(PartitionCell::new(&lease, start, Arc::clone(&shared.counters)));
            shared.cells.lock().insert(tp.clone(), Arc::clone(&cell));
            place.start((tp.clone(), offset, Arc::clone(&cell)));
            tracing::debug!(?offset, "fetching");
            let ending = lease.ended().await;
            place.withdraw(&tp);
            let cell = shared.current(&tp, &cell, ending == Ending::Revoked);
            match ending {
                Ending::Revoked => {
                    shared.fetcher.unassign(vec![tp.clone()]).await;
                    // What `on_revoked` acknowledges is in the commit.
                    shared.listening.revoke_called(&tp, shared.ack_wait).await;
                    if !cell.wait_idle(shared.ack_wait).await {
                        shared.counters.unacked_at_revoke.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(wait = ?shared.ack_wait, "revoked with messages unacknowledged; they will be delivered again");
                    }
                    let _ = shared.commit(vec![Arc::clone(&cell)]).await;
                    cell.close();
                }
                Ending::Lost | Ending::Held => {
                    cell.close();
                    shared.fetcher.unassign(vec![tp.clone()]).await;
                }
            }
            let mut cells = shared.cells.lock();
            if cells.get(&tp).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                cells.remove(&tp);
            }
        },
        span,
    )
    .await;
    // Dropping the lease lets the group delete the owner znode.
    drop(lease);
}
