//! What the consumer does with group events: one task per leased
//! partition (read the committed offset, start fetching, and on revoke stop
//! delivering, stop fetching, wait for the messages in hand, commit, and
//! let go), and one task that runs commits one at a time so they never
//! overtake each other.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::metrics::Counters;
use super::partition::PartitionCell;
use super::start::{self, Place, StartBatch};
use super::RebalanceListener;
use crate::coord::{Ending, GroupEvent, Lease};
use crate::fetch::Fetcher;
use crate::ids::TopicPartition;
use crate::offsets::{Committer, OffsetError, OffsetReset};

pub(crate) struct CommitRequest {
    pub cells: Vec<Arc<PartitionCell>>,
    pub done: Option<oneshot::Sender<Result<(), OffsetError>>>,
}

pub(crate) struct Shared {
    pub cells: Mutex<BTreeMap<TopicPartition, Arc<PartitionCell>>>,
    pub counters: Arc<Counters>,
    pub fetcher: Fetcher<Arc<PartitionCell>>,
    pub committer: Committer,
    pub commits: mpsc::UnboundedSender<CommitRequest>,
    pub reset: OffsetReset,
    pub listener: Option<Arc<dyn RebalanceListener>>,
    /// How long a revoke waits for the messages in hand to be acknowledged.
    pub ack_wait: Duration,
}

impl Shared {
    /// Commits every owned partition's low watermark; `Err` carries the
    /// first failure.
    pub async fn commit_all(&self) -> Result<(), OffsetError> {
        let cells: Vec<_> = self.cells.lock().values().cloned().collect();
        self.commit(cells).await
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
            match committer.commit(&cell.fence, &cell.tp, offset).await {
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
                    first.get_or_insert(e);
                }
            }
        }
        if let Some(done) = req.done {
            let _ = done.send(first.map_or(Ok(()), Err));
        }
    }
}

/// Reacts to group events until the group member is gone.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut events: mpsc::UnboundedReceiver<GroupEvent>,
    auto_commit: Option<Duration>,
) {
    let mut tasks = JoinSet::new();
    let period = auto_commit.unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                None => break,
                Some(GroupEvent::Assigned { mut generation, mut leases, .. }) => {
                    // A rebalance's claims complete one by one, each its own
                    // event: take those already queued together, so their
                    // partitions start in one call and the listener hears
                    // of them once.
                    while let Ok(next) = events.try_recv() {
                        match next {
                            GroupEvent::Assigned { generation: g, leases: more, .. } => {
                                generation = g;
                                leases.extend(more);
                            }
                            other => log_event(other),
                        }
                    }
                    let fresh: Vec<TopicPartition> = leases.iter().map(|l| l.topic_partition().clone()).collect();
                    let mut ready = Vec::new();
                    let batch = StartBatch::new(leases.len());
                    for lease in leases {
                        let (tx, rx) = oneshot::channel();
                        ready.push(rx);
                        let place = Place::new(&batch, &shared);
                        tasks.spawn(partition(Arc::clone(&shared), lease, place, tx));
                    }
                    if let Some(listener) = shared.listener.clone().filter(|_| !fresh.is_empty()) {
                        // After the new partitions are set up; off this loop,
                        // so a slow callback never delays a revoke.
                        tokio::spawn(async move {
                            for r in ready {
                                let _ = r.await;
                            }
                            listener.on_assigned(generation, &fresh);
                        });
                    }
                }
                Some(other) => log_event(other),
            },
            _ = tick.tick(), if auto_commit.is_some() => {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { shared.commit_all().await });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

fn log_event(event: GroupEvent) {
    match event {
        GroupEvent::Error(e) => tracing::warn!(error = %e, "group error"),
        other => tracing::debug!(event = ?other, "group event"),
    }
}

async fn partition(shared: Arc<Shared>, mut lease: Lease, mut place: Place, ready: oneshot::Sender<()>) {
    let tp = lease.topic_partition().clone();
    let span = tracing::info_span!("partition", %tp, generation = lease.generation());
    let _ = tracing::Instrument::instrument(
        async {
            // A revoke may come while the start is looked up (claims in a
            // storm are often taken back at once): it must not wait for the
            // lookup, or the release, and every peer's claim, waits too.
            let found = tokio::select! {
                biased;
                ending = lease.ended() => Err(ending),
                found = start::find(&shared, &tp, &mut place) => Ok(found),
            };
            let (start, offset) = match found {
                Err(ending) => {
                    // Nothing was fetched or delivered: nothing to stop or commit.
                    if let (Ending::Revoked, Some(l)) = (ending, &shared.listener) {
                        l.on_revoked(std::slice::from_ref(&tp));
                    }
                    return;
                }
                Ok(None) => {
                    place.defer();
                    tracing::error!(error = %OffsetError::NoCommittedOffset { tp: tp.clone() }, "partition left idle");
                    let _ = ready.send(());
                    lease.ended().await;
                    return;
                }
                Ok(Some(found)) => found,
            };
            let cell = Arc::new(PartitionCell::new(&lease, start, Arc::clone(&shared.counters)));
            shared.cells.lock().insert(tp.clone(), Arc::clone(&cell));
            place.start((tp.clone(), offset, Arc::clone(&cell)));
            tracing::debug!(?offset, "fetching");
            let _ = ready.send(());
            let ending = lease.ended().await;
            place.withdraw(&tp);
            match ending {
                Ending::Revoked => {
                    if let Some(l) = &shared.listener {
                        l.on_revoked(std::slice::from_ref(&tp));
                    }
                    cell.begin_revoke();
                    shared.fetcher.unassign(vec![tp.clone()]).await;
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
