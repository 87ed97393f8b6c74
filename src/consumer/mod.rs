//! The consumer users put in production: group membership over ZooKeeper,
//! fetching with rdkafka, per-message acknowledgement, fenced commits.
//!
//! ```no_run
//! # async fn f() -> Result<(), zkbalance::consumer::ConsumerError> {
//! use zkbalance::consumer::BalancedConsumer;
//!
//! let mut consumer = BalancedConsumer::builder()
//!     .zookeeper("127.0.0.1:2181/kafka")
//!     .group("billing")
//!     .topic("orders")
//!     .start()
//!     .await?;
//! while let Some(message) = consumer.recv().await {
//!     // ... work on message.payload() ...
//!     message.ack();
//! #   break;
//! }
//! consumer.stop().await?; // commits, releases, leaves: peers take over at once
//! # Ok(()) }
//! ```
//!
//! How a partition moves: on revoke the consumer stops delivering it (any
//! fetched message of it still buffered is dropped), stops fetching it,
//! waits (bounded) for the messages in hand to be acknowledged, commits the
//! low watermark, and only then lets the group delete the owner znode. The
//! next owner starts exactly there.

mod blocking;
mod config;
mod control;
mod message;
mod metrics;
mod partition;
mod start;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use blocking::BlockingConsumer;
pub use config::ConsumerBuilder;
pub use message::Message;
pub use metrics::{ConsumerMetrics, PartitionMetrics};

use crate::balance::{ConfigError, Verdict};
use crate::coord::{AssignmentView, CoordError, GroupMember};
use crate::fetch::{FetchStats, Fetched, Fetcher, Run};
use crate::ids::{MemberId, TopicPartition};
use crate::kafka::{follow_brokers, ClientSettings, KafkaClient};
use crate::offsets::{Committer, KafkaOffsets, OffsetError, ZkOffsets};
use config::ConsumerConfig;
use control::Shared;
use partition::PartitionCell;

/// Why the consumer could not start, commit or stop.
#[derive(Debug, Error)]
pub enum ConsumerError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Joining or leaving the group failed.
    #[error(transparent)]
    Group(#[from] CoordError),
    /// A topic is not registered in ZooKeeper.
    #[error("topic {topic} does not exist (no /brokers/topics/{topic} in ZooKeeper)")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// No broker is registered in ZooKeeper and none was given.
    #[error("no Kafka broker is registered in ZooKeeper at {connect}")]
    NoBrokers {
        /// The connect string.
        connect: String,
    },
    /// No registered broker offers the wanted listener (by name, or by
    /// the `security.protocol` configured).
    #[error(transparent)]
    NoListener(crate::kafka_access::NoListener),
    /// A ZooKeeper request failed (reading the cluster, at start).
    #[error(transparent)]
    ZooKeeper(#[from] crate::zk_call::ZkCallError),
    /// The Kafka client could not be created.
    #[error("creating the Kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A commit failed.
    #[error(transparent)]
    Offset(#[from] OffsetError),
    /// The fetch thread could not be started.
    #[error("starting the fetch thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The blocking consumer's runtime could not be started.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Callbacks around rebalances. Called from the consumer's tasks: keep them
/// short (a slow callback delays only its own partitions' hand-over).
pub trait RebalanceListener: Send + Sync + 'static {
    /// After these newly owned partitions were claimed and their fetching
    /// started (not called when a change only took partitions away).
    fn on_assigned(&self, generation: u64, partitions: &[TopicPartition]) {
        let _ = (generation, partitions);
    }

    /// A partition is being taken away: called before its final commit and
    /// before its owner znode is released.
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
}

/// A member of a balanced consumer group. See the [module docs](self).
pub struct BalancedConsumer {
    member: Option<GroupMember>,
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedReceiver<Vec<Run<Arc<PartitionCell>>>>,
    /// Runs taken from the channel: (partition, the rest of its messages).
    pending: VecDeque<(Arc<PartitionCell>, std::vec::IntoIter<Fetched>)>,
    /// Messages taken from `pending` and not yet subtracted from `buffered`
    /// (subtracted in chunks: the counter is shared with the fetch thread).
    taken: usize,
    /// Delivered messages and bytes: counted here, not in shared atomics,
    /// on the hot path.
    delivered: (u64, u64),
    buffered: Arc<AtomicUsize>,
    fetch_stats: Arc<FetchStats>,
    client: Arc<KafkaClient>,
    /// Brokers registered in ZooKeeper at the last look.
    brokers: Arc<AtomicUsize>,
    view: watch::Receiver<AssignmentView>,
    /// Changes when the delivery lease or a partition's gate does.
    pulse: watch::Receiver<u64>,
    control: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for BalancedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancedConsumer").field("member", &self.member).finish()
    }
}

impl BalancedConsumer {
    /// A builder.
    pub fn builder() -> ConsumerBuilder {
        ConsumerBuilder::default()
    }

    async fn start(cfg: ConsumerConfig) -> Result<BalancedConsumer, ConsumerError> {
        let g = &cfg.group;
        let zk = crate::coord::connect_checked(&g.zookeeper, &g.access, g.balance.session_timeout, g.connect_timeout)
            .await?;
        for topic in &g.named_topics() {
            let path = crate::znode::layout::topic(topic);
            match zk.check_stat(&path).await {
                Ok(Some(_)) => {}
                Ok(None) => return Err(ConsumerError::UnknownTopic { topic: topic.to_string() }),
                Err(source) => return Err(crate::coord::zk::call("read", path)(source).into()),
            }
        }
        let view = match cfg.kafka.bootstrap {
            Some(_) => crate::cluster::ClusterView::default(),
            None => crate::cluster::read_brokers(&zk).await?,
        };
        let bootstrap = cfg
            .kafka
            .bootstrap(&view)
            .map_err(ConsumerError::NoListener)?
            .ok_or_else(|| ConsumerError::NoBrokers { connect: g.zookeeper.clone() })?;
        drop(zk);
        let settings = ClientSettings {
            bootstrap,
            group: g.group.clone(),
            reset: cfg.reset,
            overrides: cfg.kafka.properties.clone(),
        };
        let client = Arc::new(crate::kafka::client(&settings)?);
        crate::kafka::warm_up(&client, &g.named_topics(), cfg.kafka_timeout);
        let mut member = GroupMember::join(cfg.group.clone()).await?;
        let events = member.events();
        let view = member.assignment();
        let pulse = member.pulse();
        let counters = Arc::new(metrics::Counters::default());
        let committer = Committer {
            storage: cfg.storage,
            zk: ZkOffsets { group: cfg.group.group.clone(), sessions: member.sessions() },
            kafka: KafkaOffsets { client: Arc::clone(&client), timeout: cfg.kafka_timeout },
        };
        let buffered = Arc::new(AtomicUsize::new(0));
        let fetch_stats = Arc::new(FetchStats::default());
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let fetcher =
            Fetcher::spawn(Arc::clone(&client), cfg.buffer, Arc::clone(&buffered), out_tx, Arc::clone(&fetch_stats))
                .map_err(ConsumerError::Thread)?;
        let brokers = Arc::new(AtomicUsize::new(0));
        tokio::spawn(follow_brokers(
            member.sessions(),
            cfg.kafka.listener(),
            Arc::clone(&client),
            Arc::clone(&brokers),
        ));
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        tokio::spawn(control::committer(committer.clone(), Arc::clone(&counters), commit_rx));
        let shared = Arc::new(Shared {
            cells: Default::default(),
            counters,
            fetcher,
            committer,
            commits: commit_tx,
            reset: cfg.reset,
            listener: cfg.listener.clone(),
            ack_wait: cfg.group.revoke_timeout / 2,
        });
        let span = tracing::info_span!("consumer", member = %member.id());
        let control = tokio::spawn(tracing::Instrument::instrument(
            control::run(Arc::clone(&shared), events, cfg.auto_commit),
            span,
        ));
        Ok(BalancedConsumer {
            member: Some(member),
            shared,
            incoming: out_rx,
            pending: VecDeque::new(),
            taken: 0,
            delivered: (0, 0),
            buffered,
            fetch_stats,
            client,
            brokers,
            view,
            pulse,
            control: Some(control),
        })
    }

    /// This member's id.
    pub fn id(&self) -> Option<&MemberId> {
        self.member.as_ref().map(GroupMember::id)
    }

    /// The current assignment, updated as it changes.
    pub fn assignment(&self) -> watch::Receiver<AssignmentView> {
        self.view.clone()
    }

    /// The next message; `None` once the consumer stopped. Cancel-safe.
    ///
    /// Every message is checked at this call's clock against its
    /// partition's lease right before it is returned: none is handed over
    /// while the ZooKeeper session is unconfirmed for too long (it waits,
    /// keeping what was fetched, until the session is confirmed again), and
    /// none of a partition that was revoked or lost meanwhile (those are
    /// dropped). A process that wakes from a long pause therefore returns
    /// nothing it may no longer own, before any event reached it.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            match self.next_ready() {
                Ready::Message(m) => return Some(m),
                Ready::Empty => {
                    self.release_taken();
                    self.take_batch().await?;
                }
                Ready::Lapsed => {
                    self.release_taken();
                    // Any renewal or loss after the check wakes this.
                    self.pulse.changed().await.ok()?;
                }
            }
        }
    }

    /// Waits for the next message like [`recv`](Self::recv), then adds
    /// every further message already fetched and deliverable now, up to
    /// `max` in all, without waiting again: for applications that write or
    /// commit per batch. Each is checked against its lease as `recv` checks
    /// it. Empty once the consumer stopped. Cancel-safe (only the first
    /// wait can be cancelled).
    pub async fn recv_many(&mut self, max: usize) -> Vec<Message> {
        let mut out = Vec::new();
        let Some(first) = self.recv().await else { return out };
        out.push(first);
        while out.len() < max {
            match self.next_ready() {
                Ready::Message(m) => out.push(m),
                Ready::Lapsed => break,
                Ready::Empty => match self.incoming.try_recv() {
                    Ok(runs) => self.queue(runs),
                    Err(_) => break,
                },
            }
        }
        out
    }

    /// The next buffered message that may be handed over now, checked at
    /// this instant against its partition's lease; or why there is none.
    fn next_ready(&mut self) -> Ready {
        loop {
            let now = crate::coord::clock::now();
            let verdict = match self.front() {
                Some(cell) => cell.gate.check(now),
                None => return Ready::Empty,
            };
            match verdict {
                Verdict::Deliver => {}
                Verdict::Ended => {
                    // A run is one partition's: all of it goes.
                    if let Some((_, rest)) = self.pending.pop_front() {
                        self.taken += rest.len();
                        self.shared.counters.dropped_revoked.fetch_add(rest.len() as u64, Ordering::Relaxed);
                    }
                    continue;
                }
                Verdict::Lapsed => return Ready::Lapsed,
            }
            let (cell, messages) = self.pending.front_mut().expect("front() found a message");
            let (cell, f) = (Arc::clone(cell), messages.next().expect("front() found a message"));
            self.taken += 1;
            if self.taken >= 64 {
                self.release_taken();
            }
            let Ok(offset) = u64::try_from(f.offset) else { continue };
            if !cell.deliver(offset) {
                self.shared.counters.dropped_revoked.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let bytes = f.payload.as_ref().map_or(0, |b| b.len()) + f.key.as_ref().map_or(0, |b| b.len());
            self.delivered.0 += 1;
            self.delivered.1 += bytes as u64;
            return Ready::Message(Message {
                offset,
                key: f.key,
                payload: f.payload,
                timestamp: f.timestamp,
                checked_at: now,
                cell,
            });
        }
    }

    /// The partition of the next fetched message, dropping spent runs.
    fn front(&mut self) -> Option<&Arc<PartitionCell>> {
        while self.pending.front().is_some_and(|(_, rest)| rest.len() == 0) {
            self.pending.pop_front();
        }
        self.pending.front().map(|(cell, _)| cell)
    }

    fn release_taken(&mut self) {
        if self.taken > 0 {
            self.buffered.fetch_sub(self.taken, Ordering::AcqRel);
            self.taken = 0;
            if self.fetch_stats.paused.load(Ordering::Relaxed) {
                self.shared.fetcher.wake();
            }
        }
    }

    /// Waits for the next batch; `None` once stopped.
    async fn take_batch(&mut self) -> Option<()> {
        let runs = self.incoming.recv().await?;
        self.queue(runs);
        Some(())
    }

    /// Queues fetched runs behind what is pending.
    fn queue(&mut self, runs: Vec<Run<Arc<PartitionCell>>>) {
        self.pending.extend(runs.into_iter().map(|r| (r.tag, r.messages.into_iter())));
    }

    /// The messages as a `Stream`.
    pub fn stream(&mut self) -> impl futures_core::Stream<Item = Message> + '_ {
        futures_util::stream::unfold(self, |c| async move { c.recv().await.map(|m| (m, c)) })
    }

    /// Stops fetching these partitions until [`resume`](Self::resume)d
    /// (ownership is unaffected); resolves once fetching stopped. Messages
    /// already buffered are still delivered; librdkafka's prefetch of them
    /// is discarded and fetched again on resume.
    pub async fn pause(&self, partitions: &[TopicPartition]) {
        self.shared.fetcher.pause(partitions.to_vec()).await;
    }

    /// Resumes fetching paused partitions from where delivery stopped.
    pub async fn resume(&self, partitions: &[TopicPartition]) {
        self.shared.fetcher.resume(partitions.to_vec()).await;
    }

    /// Commits every owned partition's acknowledged low watermark now.
    pub async fn commit(&self) -> Result<(), ConsumerError> {
        Ok(self.shared.commit_all().await?)
    }

    /// A snapshot of the counters, offsets and lag.
    pub fn metrics(&self) -> ConsumerMetrics {
        let mut m = ConsumerMetrics::default();
        self.shared.counters.fill(&mut m);
        (m.messages, m.bytes) = self.delivered;
        if let Some(member) = &self.member {
            m.group = member.metrics();
        }
        m.fetch_errors = self.fetch_stats.fetch_errors.load(Ordering::Relaxed);
        m.backpressure_pauses = self.fetch_stats.backpressure_pauses.load(Ordering::Relaxed);
        m.buffered = self.buffered.load(Ordering::Relaxed);
        m.brokers = self.brokers.load(Ordering::Relaxed);
        let cells: Vec<_> = self.shared.cells.lock().values().cloned().collect();
        m.partitions = cells
            .iter()
            .filter(|c| !c.is_closed())
            .map(|c| {
                let (committed, acknowledged) = c.offsets();
                let log_end = crate::kafka::ffi::cached_log_end(&self.client, c.tp.topic.as_str(), c.tp.partition.0);
                let lag = log_end.zip(committed).map(|(e, c)| e.saturating_sub(c));
                PartitionMetrics { topic_partition: c.tp.clone(), committed, acknowledged, log_end, lag }
            })
            .collect();
        m
    }

    /// Leaves cleanly: every partition is revoked (messages in hand get the
    /// revoke timeout to be acknowledged), committed and released, the
    /// member znode deleted and the session closed — peers take over at
    /// once, exactly at the committed offsets.
    pub async fn stop(mut self) -> Result<(), ConsumerError> {
        if let Some(member) = self.member.take() {
            member.stop().await?;
        }
        if let Some(control) = self.control.take() {
            let _ = control.await;
        }
        let shared = Arc::clone(&self.shared);
        let _ = tokio::task::spawn_blocking(move || shared.fetcher.stop()).await;
        Ok(())
    }
}

impl Drop for BalancedConsumer {
    /// Without [`BalancedConsumer::stop`] the member still leaves (its group
    /// member is dropped, which stops it) and the fetch thread ends.
    fn drop(&mut self) {
        self.shared.fetcher.stop_soon();
    }
}

/// What the buffer holds for the application at this instant.
enum Ready {
    Message(Message),
    /// Nothing buffered: wait for the fetcher.
    Empty,
    /// The front partition's lease has lapsed: wait for a renewal or loss.
    Lapsed,
}
