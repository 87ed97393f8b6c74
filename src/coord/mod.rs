//! Group membership over ZooKeeper: the driver of the [`balance`](crate::balance)
//! state machine, and a public API usable without Kafka — a stream of
//! assignment events with generation numbers, and [`Lease`]s on partitions —
//! so an application can lease partitions to its own workers.
//!
//! ```no_run
//! # async fn f() -> Result<(), zkbalance::coord::CoordError> {
//! use zkbalance::coord::{Ending, GroupBuilder, GroupEvent};
//!
//! let mut member = GroupBuilder::default()
//!     .zookeeper("127.0.0.1:2181/kafka")
//!     .group("billing")
//!     .topic("orders")
//!     .join()
//!     .await?;
//! let mut events = member.events();
//! while let Some(event) = events.recv().await {
//!     if let GroupEvent::Assigned { leases, .. } = event {
//!         for mut lease in leases {
//!             tokio::spawn(async move {
//!                 // Work on lease.topic_partition() until the lease ends;
//!                 // a rebalance never waits on anything but this select.
//!                 let _ending: Ending = lease.ended().await;
//!             });
//!         }
//!     }
//! }
//! member.stop().await?;
//! # Ok(()) }
//! ```

pub(crate) mod access;
mod cache;
mod client;
pub(crate) mod clock;
mod config;
pub(crate) mod connect;
mod driver;
mod lease;
pub(crate) mod zk;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use zookeeper_client::Client;

pub use access::{AccessError, AclPolicy, Secret, ZkAccess, ZkSasl, ZkTls};
pub use client::ZkClient;
pub use config::{GroupBuilder, GroupConfig};
pub(crate) use connect::{connect, connect_checked};
pub use lease::{Ending, Fence, Lease};

use crate::balance::{BalanceError, Balancer, ConfigError, Unreadable};
use crate::ids::{MemberId, TopicPartition};

/// Why joining or leaving failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoordError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No ZooKeeper server answered in time.
    #[error(
        "ZooKeeper at {connect} is unreachable (waited {:.1} s){}",
        waited.as_secs_f64(),
        if *tls { "; over TLS: is it the server's TLS port, and does the CA given sign its certificate?" } else { "" }
    )]
    Unreachable {
        /// The connect string.
        connect: String,
        /// How long.
        waited: Duration,
        /// Whether TLS was asked for: a failed handshake looks the same as
        /// no answer (the client retries until the bound).
        tls: bool,
    },
    /// The chroot in the connect string does not exist.
    #[error("the chroot of {connect} does not exist")]
    BadChroot {
        /// The connect string.
        connect: String,
    },
    /// A security setting cannot be used (a secret or TLS file unreadable,
    /// a bad ACL).
    #[error(transparent)]
    Access(#[from] AccessError),
    /// ZooKeeper refused the credentials (SASL or `addauth`), or the TLS
    /// handshake failed.
    #[error("ZooKeeper at {connect} refused the session's credentials ({reason})")]
    AuthFailed {
        /// The connect string.
        connect: String,
        /// What the client reported.
        reason: String,
    },
    /// ZooKeeper refused a request.
    #[error(transparent)]
    ZooKeeper(#[from] crate::zk_call::ZkCallError),
    /// Leaving took longer than its bound.
    #[error("leaving the group did not finish within {0:?}")]
    StopTimeout(Duration),
}

/// What the application hears from the group.
#[derive(Debug)]
#[non_exhaustive]
pub enum GroupEvent {
    /// The owned set changed. `leases` are the newly owned partitions;
    /// `partitions` is everything owned now.
    Assigned {
        /// Bumped at every change.
        generation: u64,
        /// One lease per newly owned partition.
        leases: Vec<Lease>,
        /// Every owned partition.
        partitions: Vec<TopicPartition>,
    },
    /// These partitions are being taken away: their leases ended with
    /// [`Ending::Revoked`]; drop them to let the rebalance go on.
    Revoked {
        /// The partitions.
        partitions: Vec<TopicPartition>,
    },
    /// These partitions are no longer ours (session expired, or a competing
    /// claim won): stop at once.
    Lost {
        /// The partitions.
        partitions: Vec<TopicPartition>,
    },
    /// No contact with ZooKeeper was confirmed recently enough to be sure the
    /// session is alive: stop delivering until [`GroupEvent::Resumed`].
    Suspended,
    /// The connection is back with the same session.
    Resumed,
    /// The rebalance waits for member znodes it cannot read (a peer that
    /// registers in two requests, read in between; a damaged registration):
    /// owned partitions are kept and delivered, nothing new is claimed.
    /// `past_bound`: the wait passed the unreadable bound and, in a Scala
    /// group, the group stays blocked until the znode is fixed or goes.
    Blocked {
        /// The member znodes waited for, with the reason each is unreadable.
        by: Vec<Unreadable>,
        /// The longest wait so far.
        waited: Duration,
        /// Whether the wait passed the bound.
        past_bound: bool,
    },
    /// Every member znode is readable (or counted out) again.
    Unblocked,
    /// A rebalance finished: no claim, release or group read is under way
    /// (what ends the `rebalance` span and its duration metric). The
    /// [`GroupEvent::Assigned`] events since the previous one are that
    /// rebalance's, whole.
    Settled {
        /// The generation it settled at.
        generation: u64,
    },
    /// A failure the member recovers from by itself, reported for the record.
    Error(BalanceError),
}

/// The current assignment, always available without waiting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssignmentView {
    /// Generation of the last change.
    pub generation: u64,
    /// Partitions owned and not being revoked.
    pub partitions: BTreeSet<TopicPartition>,
    /// Whether delivery is suspended: the delivery lease ran out.
    pub suspended: bool,
    /// Whether the member is at rest: joined, and no group read, claim or
    /// release under way (false while joining and during a rebalance).
    pub settled: bool,
    /// The member znodes the rebalance waits for (empty unless blocked).
    pub blocked_by: Vec<Unreadable>,
}

/// Counters of one member.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reads of the group acted on (watch-triggered, reconcile, retries).
    pub group_reads: AtomicU64,
    /// Rebalances: rounds that changed ownership, from the first revoke or
    /// claim until settled, by duration.
    pub rebalances: Histogram,
    /// Owner znode creations attempted.
    pub claims: AtomicU64,
    /// Claims that found the partition held and waited for its release.
    pub claim_waits: AtomicU64,
    /// Claims given up after the bounded retries.
    pub claims_abandoned: AtomicU64,
    /// Partitions lost without a clean release.
    pub partitions_lost: AtomicU64,
    /// Revoked partitions the application did not release in time.
    pub forced_releases: AtomicU64,
    /// Malformed znodes skipped.
    pub skipped_znodes: AtomicU64,
    /// Member znodes the rebalance waits for now (a gauge).
    pub blocked_by: AtomicU64,
    /// Times the rebalance reported itself blocked (or its blockers changed).
    pub blocked_reports: AtomicU64,
    /// Unreadable members a pykafka group left out past the unreadable
    /// bound, as pykafka does.
    pub unreadable_left_out: AtomicU64,
    /// Session expirations survived.
    pub session_expirations: AtomicU64,
}

/// Upper bounds (ms) of the rebalance duration buckets; a last bucket holds
/// the rest.
pub const REBALANCE_BUCKETS_MS: [u64; 9] = [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// A duration histogram with fixed buckets ([`REBALANCE_BUCKETS_MS`]).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 10],
    sum_ms: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let ms = d.as_millis() as u64;
        let i = REBALANCE_BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(REBALANCE_BUCKETS_MS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// How many were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a [`Histogram`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Counts per bucket of [`REBALANCE_BUCKETS_MS`], then the overflow.
    pub buckets: [u64; 10],
    /// Sum of all durations, ms.
    pub sum_ms: u64,
}

impl HistogramSnapshot {
    /// How many were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// A copy of [`Metrics`] at one moment (each field as documented there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Reads of the group acted on.
    pub group_reads: u64,
    /// Rebalances by duration.
    pub rebalances: HistogramSnapshot,
    /// Owner znode creations attempted.
    pub claims: u64,
    /// Claims that waited for a release.
    pub claim_waits: u64,
    /// Claims given up after the bounded retries.
    pub claims_abandoned: u64,
    /// Partitions lost without a clean release.
    pub partitions_lost: u64,
    /// Revoked partitions released after the revoke timeout.
    pub forced_releases: u64,
    /// Znodes skipped as unusable (logged).
    pub skipped_znodes: u64,
    /// Member znodes a held rebalance waits for now.
    pub blocked_by: u64,
    /// Times a rebalance reported itself blocked.
    pub blocked_reports: u64,
    /// Unreadable members a pykafka group counted out.
    pub unreadable_left_out: u64,
    /// Sessions that expired (each followed by a new one).
    pub session_expirations: u64,
}

impl Metrics {
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            group_reads: get(&self.group_reads),
            rebalances: self.rebalances.snapshot(),
            claims: get(&self.claims),
            claim_waits: get(&self.claim_waits),
            claims_abandoned: get(&self.claims_abandoned),
            partitions_lost: get(&self.partitions_lost),
            forced_releases: get(&self.forced_releases),
            skipped_znodes: get(&self.skipped_znodes),
            blocked_by: get(&self.blocked_by),
            blocked_reports: get(&self.blocked_reports),
            unreadable_left_out: get(&self.unreadable_left_out),
            session_expirations: get(&self.session_expirations),
        }
    }
}

/// A live member of a group.
pub struct GroupMember {
    member: MemberId,
    control: mpsc::UnboundedSender<driver::Msg>,
    events: Option<mpsc::UnboundedReceiver<GroupEvent>>,
    handshake: Arc<AtomicBool>,
    view: watch::Receiver<AssignmentView>,
    metrics: Arc<Metrics>,
    task: Option<JoinHandle<()>>,
    stop_bound: Duration,
    session_timeout: Duration,
    session: watch::Receiver<Option<(u64, Client)>>,
    pulse: watch::Receiver<u64>,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember").field("member", &self.member).finish()
    }
}

impl GroupMember {
    /// A builder.
    pub fn builder() -> GroupBuilder {
        GroupBuilder::default()
    }

    pub(crate) async fn join(cfg: GroupConfig) -> Result<GroupMember, CoordError> {
        let zk = connect_checked(&cfg.zookeeper, &cfg.access, cfg.balance.session_timeout, cfg.connect_timeout).await?;
        // The server may negotiate another timeout; timings follow the real one.
        let balance = cfg.balance_for(zk.session_timeout()).map_err(|e| ConfigError {
            setting: e.setting,
            reason: format!("with the session timeout the server granted ({:?}): {}", zk.session_timeout(), e.reason),
        })?;
        if balance.session_timeout != cfg.balance.session_timeout {
            tracing::info!(
                requested = ?cfg.balance.session_timeout,
                granted = ?balance.session_timeout,
                "the server negotiated another session timeout; timings follow it"
            );
        }
        let member = balance.member.clone();
        let session_timeout = balance.session_timeout;
        let stop_bound = cfg.revoke_timeout + balance.session_timeout * 2 + Duration::from_secs(5);
        let machine = Balancer::new(balance)?;
        let connect_timeout = cfg.connect_timeout;
        let (task, h) = driver::Driver::start(cfg, machine, zk);
        // A registration the server refuses for want of rights (an ACL on
        // the group's `ids` this session is not admitted by) would be
        // retried forever: fail the join instead, naming the znode. Other
        // failures are retried by the member as before.
        if let Ok(Ok(Err(refused))) = tokio::time::timeout(connect_timeout, h.registered).await {
            if refused.code == crate::zk_call::ZkCode::NoAuth {
                task.abort();
                return Err(CoordError::ZooKeeper(refused));
            }
        }
        Ok(GroupMember {
            member,
            control: h.control,
            events: Some(h.events),
            handshake: h.handshake,
            view: h.view,
            metrics: h.metrics,
            task: Some(task),
            stop_bound,
            session_timeout,
            session: h.session,
            pulse: h.pulse,
        })
    }

    /// Changes whenever the delivery lease or a partition's gate changes:
    /// what a consumer holding a lapsed message waits on.
    pub(crate) fn pulse(&self) -> watch::Receiver<u64> {
        self.pulse.clone()
    }

    /// This member's id.
    pub fn id(&self) -> &MemberId {
        &self.member
    }

    /// The session timeout the server granted when the member joined, which
    /// may differ from the one requested (servers clamp it between their
    /// `minSessionTimeout` and `maxSessionTimeout`). The suspend margin, the
    /// claim window and the delivery lease all follow this one.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// The event stream. Taking it turns on the lease handshake: a revoked
    /// partition's owner znode is deleted only once its [`Lease`] is dropped
    /// (or the revoke timeout passes). Without it, revocation is immediate.
    /// Panics if taken twice.
    pub fn events(&mut self) -> mpsc::UnboundedReceiver<GroupEvent> {
        self.handshake.store(true, Ordering::Relaxed);
        self.events.take().expect("GroupMember::events taken twice")
    }

    /// The current assignment, updated as it changes.
    pub fn assignment(&self) -> watch::Receiver<AssignmentView> {
        self.view.clone()
    }

    /// The current session, numbered; `None` once the member stopped. A
    /// commit fenced by a [`Fence`] runs only in the session it names.
    pub(crate) fn sessions(&self) -> watch::Receiver<Option<(u64, Client)>> {
        self.session.clone()
    }

    /// The member's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The live counters (the consumer's probe reads them).
    pub(crate) fn counters(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Leaves the group cleanly: revokes every partition, deletes the owner
    /// znodes and the member znode, and closes the session, so peers
    /// rebalance at once instead of after the session timeout.
    pub async fn stop(mut self) -> Result<(), CoordError> {
        let (done_tx, done_rx) = oneshot::channel();
        if self.control.send(driver::Msg::Stop(done_tx)).is_ok()
            && tokio::time::timeout(self.stop_bound, done_rx).await.is_err()
        {
            return Err(CoordError::StopTimeout(self.stop_bound));
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        Ok(())
    }
}

impl Drop for GroupMember {
    /// Without [`GroupMember::stop`], the member still leaves: the driver is
    /// told to stop and closes its session when done.
    fn drop(&mut self) {
        if self.task.is_some() {
            let (done, _) = oneshot::channel();
            let _ = self.control.send(driver::Msg::Stop(done));
        }
    }
}
