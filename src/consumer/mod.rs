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
//! while let Some(item) = consumer.recv().await {
//!     match item {
//!         Ok(message) => {
//!             // ... work on message.payload() ...
//!             message.ack();
//!         }
//!         // A broker down, a failed commit, a partition without a start
//!         // offset: the consumer goes on. Only a fatal error is last.
//!         Err(e) => eprintln!("consumer: {e}"),
//!     }
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
mod buffer;
mod config;
mod control;
mod error;
#[cfg(feature = "metrics")]
mod export;
mod handle;
mod listener;
mod message;
mod metrics;
mod notice;
mod partition;
mod probe;
mod start;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use blocking::BlockingConsumer;
pub use config::{AckMode, ConsumerBuilder};
pub use error::ConsumerError;
#[cfg(feature = "metrics")]
pub use export::GAUGE_IDLE_TIMEOUT;
pub use handle::ConsumerHandle;
pub use listener::{RebalanceListener, StartOffsets};
pub use message::{Header, Message, TimestampType};
pub use metrics::{ConsumerMetrics, PartitionMetrics};
pub use notice::ConsumeError;
pub use start::StartAt;

use crate::coord::{AssignmentView, GroupMember};
use crate::fetch::{FetchStats, Fetched, Fetcher, Run};
use crate::ids::{MemberId, TopicPartition};
use crate::kafka::{follow_brokers, ClientSettings};
use crate::offsets::{Committer, KafkaOffsets, ZkOffsets};
use buffer::{Ready, Wait};
use config::ConsumerConfig;
use control::Shared;
use notice::Notices;
use partition::PartitionCell;

/// A member of a balanced consumer group. See the [module docs](self).
pub struct BalancedConsumer {
    member: Option<GroupMember>,
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedReceiver<Vec<Run<Arc<PartitionCell>>>>,
    /// Errors and warnings for the application, in the order they came.
    notices: mpsc::Receiver<ConsumeError>,
    /// A fatal notice was handed over: nothing follows.
    ended: bool,
    /// [`AckMode::OnReceipt`].
    ack_on_receipt: bool,
    /// Runs taken from the channel: (partition, the rest of its messages).
    pending: VecDeque<(Arc<PartitionCell>, std::vec::IntoIter<Fetched>, Option<u64>)>,
    /// Messages taken from `pending` and not yet subtracted from `buffered`
    /// (subtracted in chunks: the counter is shared with the fetch thread).
    taken: usize,
    /// Delivered messages and bytes, counted here; each delivery also
    /// stores them in the probe (uncontended relaxed stores).
    delivered: (u64, u64),
    /// What `metrics()` and the exporter read; also the buffer count and
    /// fetch stats shared with the fetch thread.
    probe: Arc<probe::Probe>,
    view: watch::Receiver<AssignmentView>,
    /// Changes when the delivery lease or a partition's gate does.
    pulse: watch::Receiver<u64>,
    control: Option<JoinHandle<()>>,
    /// Keeps the Kafka client's broker list current; ends with the member.
    follow: JoinHandle<()>,
    /// Resolves once the Kafka client is destroyed (its connections closed).
    destroyed: Option<crate::kafka::Destroyed>,
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
            None => crate::cluster::brokers(&zk).await?,
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
        let (notices, notices_rx) = Notices::new();
        let (client, destroyed) =
            crate::kafka::client(&settings, Some(notices.sink())).map_err(|e| ConsumerError::Kafka(e.to_string()))?;
        let client = Arc::new(client);
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
        let fetcher = Fetcher::spawn(
            Arc::clone(&client),
            cfg.buffer,
            Arc::clone(&buffered),
            out_tx,
            Arc::clone(&fetch_stats),
            notices.sink(),
        )
        .map_err(ConsumerError::Thread)?;
        let brokers = Arc::new(AtomicUsize::new(0));
        let follow = tokio::spawn(follow_brokers(
            member.sessions(),
            cfg.kafka.listener(),
            Arc::clone(&client),
            Arc::clone(&brokers),
        ));
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        tokio::spawn(control::committer(committer.clone(), Arc::clone(&counters), notices.clone(), commit_rx));
        let shared = Arc::new(Shared {
            cells: Default::default(),
            counters,
            fetcher,
            committer,
            commits: commit_tx,
            reset: cfg.reset,
            reset_on_start: cfg.reset_on_start,
            start_at: cfg.start_at,
            positioned: Default::default(),
            listening: Arc::new(listener::Listening::new(cfg.listener.clone())),
            ack_wait: cfg.group.revoke_timeout / 2,
            notices,
            stopping: Default::default(),
        });
        let span = tracing::info_span!("consumer", member = %member.id());
        let control = tokio::spawn(tracing::Instrument::instrument(
            control::run(
                Arc::clone(&shared),
                events,
                control::Timers {
                    auto_commit: cfg.auto_commit,
                    ack_warning: cfg.ack_warning,
                    round_wait: cfg.round_wait,
                },
            ),
            span,
        ));
        let probe = Arc::new(probe::Probe {
            shared: Arc::clone(&shared),
            fetch_stats,
            buffered,
            client,
            brokers,
            group: member.counters(),
            delivered: Default::default(),
        });
        #[cfg(feature = "metrics")]
        export::spawn(Arc::downgrade(&probe), cfg.group.group.to_string());
        Ok(BalancedConsumer {
            member: Some(member),
            shared,
            incoming: out_rx,
            notices: notices_rx,
            ended: false,
            ack_on_receipt: cfg.ack_mode == AckMode::OnReceipt,
            pending: VecDeque::new(),
            taken: 0,
            delivered: (0, 0),
            probe,
            view,
            pulse,
            control: Some(control),
            follow,
            destroyed: Some(destroyed),
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

    /// The next message, or an error or warning to act on; `None` once the
    /// consumer stopped. Cancel-safe.
    ///
    /// An `Err` is one of [`ConsumeError`]'s kinds: only
    /// [`ConsumeError::Fatal`] ends the stream (`None` follows it); after
    /// any other the consumer goes on, so the usual loop logs or counts the
    /// error and calls `recv` again. Errors are handed over as they come,
    /// ahead of messages already buffered.
    ///
    /// Every message is checked at this call's clock against its
    /// partition's lease right before it is returned: none is handed over
    /// while the ZooKeeper session is unconfirmed for too long (it waits,
    /// keeping what was fetched, until the session is confirmed again), and
    /// none of a partition that was revoked or lost meanwhile (those are
    /// dropped). A process that wakes from a long pause therefore returns
    /// nothing it may no longer own, before any event reached it.
    pub async fn recv(&mut self) -> Option<Result<Message, ConsumeError>> {
        if self.ended {
            return None;
        }
        loop {
            if let Ok(e) = self.notices.try_recv() {
                return Some(Err(self.hand_over(e)));
            }
            let wait = match self.next_ready() {
                Ready::Message(m) => return Some(Ok(m)),
                Ready::Empty => Wait::Batch,
                Ready::Lapsed => Wait::Pulse,
            };
            self.release_taken();
            tokio::select! {
                e = self.notices.recv() => match e {
                    Some(e) => return Some(Err(self.hand_over(e))),
                    // Never: the consumer holds a sender.
                    None => return None,
                },
                more = self.incoming.recv(), if wait == Wait::Batch => self.queue(more?),
                // Any renewal or loss after the check wakes this.
                pulse = self.pulse.changed(), if wait == Wait::Pulse => pulse.ok()?,
            }
        }
    }

    fn hand_over(&mut self, e: ConsumeError) -> ConsumeError {
        self.ended |= e.is_fatal();
        e
    }

    /// Waits for the next message or error like [`recv`](Self::recv); after
    /// a message, adds every further message already fetched and
    /// deliverable now, up to `max` in all, without waiting again: for
    /// applications that write or commit per batch. Each is checked against
    /// its lease as `recv` checks it. A batch stops before an error that
    /// comes in meanwhile; the next call returns it. `None` once the
    /// consumer stopped. Cancel-safe (only the first wait can be
    /// cancelled).
    pub async fn recv_many(&mut self, max: usize) -> Option<Result<Vec<Message>, ConsumeError>> {
        let first = match self.recv().await? {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        };
        let mut out = vec![first];
        while out.len() < max && self.notices.is_empty() {
            match self.next_ready() {
                Ready::Message(m) => out.push(m),
                Ready::Lapsed => break,
                Ready::Empty => match self.incoming.try_recv() {
                    Ok(runs) => self.queue(runs),
                    Err(_) => break,
                },
            }
        }
        Some(Ok(out))
    }

    /// Runs `handler` on every message, acknowledging each when its
    /// handler returns (a handler that panics leaves its message
    /// unacknowledged: it is delivered again after the next hand-over).
    /// Errors other than fatal ones are logged and counted, and the loop
    /// goes on; use [`recv`](Self::recv) to act on them. Returns when the
    /// consumer stops, or with the fatal error.
    ///
    /// ```no_run
    /// # async fn f(mut consumer: zkbalance::consumer::BalancedConsumer) {
    /// consumer
    ///     .for_each(|message| async move {
    ///         // ... work on message.payload() ...
    ///         let _ = message.offset();
    ///     })
    ///     .await
    ///     .expect("the consumer failed");
    /// # }
    /// ```
    pub async fn for_each<F, Fut>(&mut self, mut handler: F) -> Result<(), ConsumeError>
    where
        F: FnMut(Message) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        while let Some(item) = self.recv().await {
            match item {
                Ok(m) => {
                    let ack = m.acker();
                    handler(m).await;
                    ack.ack();
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => tracing::warn!(error = %e, "consumer error; for_each goes on"),
            }
        }
        Ok(())
    }

    /// The messages and errors as a `Stream`: [`recv`](Self::recv) until
    /// it returns `None`.
    pub fn stream(&mut self) -> impl futures_core::Stream<Item = Result<Message, ConsumeError>> + '_ {
        futures_util::stream::unfold(self, |c| async move { c.recv().await.map(|m| (m, c)) })
    }

    /// A handle for other tasks: commit, seek, pause while this consumer
    /// is in `recv` or a `stream`.
    pub fn handle(&self) -> ConsumerHandle {
        ConsumerHandle { shared: Arc::clone(&self.shared), view: self.view.clone() }
    }

    /// Stops fetching these partitions until [`resume`](Self::resume)d
    /// (ownership is unaffected); resolves once fetching stopped. Messages
    /// already buffered are still delivered; librdkafka's prefetch of them
    /// is discarded and fetched again on resume.
    pub async fn pause(&self, partitions: &[TopicPartition]) {
        self.handle().pause(partitions).await;
    }

    /// Resumes fetching paused partitions from where delivery stopped.
    pub async fn resume(&self, partitions: &[TopicPartition]) {
        self.handle().resume(partitions).await;
    }

    /// Commits every owned partition's acknowledged low watermark now
    /// (see [`ConsumerHandle::commit`]).
    pub async fn commit(&self) -> Result<(), ConsumerError> {
        self.handle().commit().await
    }

    /// Moves an owned partition's delivery to `offset` (see
    /// [`ConsumerHandle::seek`]).
    pub async fn seek(&self, partition: &TopicPartition, offset: u64) -> Result<(), ConsumerError> {
        self.handle().seek(partition, offset).await
    }

    /// The committed offset of a partition (see
    /// [`ConsumerHandle::committed`]).
    pub async fn committed(&self, partition: &TopicPartition) -> Result<Option<u64>, ConsumerError> {
        self.handle().committed(partition).await
    }

    /// A snapshot of the counters, offsets and lag.
    pub fn metrics(&self) -> ConsumerMetrics {
        self.probe.snapshot(self.delivered)
    }

    /// Leaves cleanly: every partition is revoked (messages in hand get the
    /// revoke timeout to be acknowledged), committed and released, the
    /// member znode deleted and the session closed — peers take over at
    /// once, exactly at the committed offsets.
    pub async fn stop(mut self) -> Result<(), ConsumerError> {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(member) = self.member.take() {
            member.stop().await?;
        }
        if let Some(control) = self.control.take() {
            let _ = control.await;
        }
        let shared = Arc::clone(&self.shared);
        let _ = tokio::task::spawn_blocking(move || shared.fetcher.stop()).await;
        // Once this returns, the consumer is gone from the cluster too: its
        // Kafka connections are closed (unless a handle keeps the client),
        // so a cluster shut down next sees no client of ours reconnecting.
        self.follow.abort();
        let destroyed = self.destroyed.take();
        let shared = Arc::downgrade(&self.shared);
        drop(self);
        if let Some(destroyed) = destroyed.filter(|_| shared.strong_count() == 0) {
            let _ = tokio::time::timeout(CLOSE_WAIT, destroyed).await;
        }
        Ok(())
    }
}

/// Longest wait in `stop` for the Kafka client to close its connections.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for BalancedConsumer {
    /// Without [`BalancedConsumer::stop`] the member still leaves (its group
    /// member is dropped, which stops it) and the fetch thread ends.
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.fetcher.stop_soon();
    }
}
