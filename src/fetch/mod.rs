//! The rdkafka driver: one thread owns a `BaseConsumer` with a manual
//! assignment of exactly the owned partitions, polls it, and hands batches
//! to the consumer over a channel. Assignment changes are incremental, so a
//! partition that stays keeps fetching.
//!
//! Backpressure: when the consumer's buffer is full the thread stops
//! polling, and librdkafka stops fetching once its own bounded prefetch
//! queue (`queued.min.messages`, sized from the buffer) is full. It does not
//! use `rd_kafka_pause` for this: a pause discards the prefetched messages
//! and a resume fetches them again, so a handler slower than the broker
//! would cost a full refetch per buffer of progress. Explicit pauses are
//! for the application ([`Command::Pause`]). Coordination runs elsewhere
//! and never waits on this thread.

mod client;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

pub(crate) use client::{bootstrap_from_zookeeper, kafka_client, ClientSettings, KafkaClient};

use crate::ids::TopicPartition;

/// One message as fetched, tagged with what the consumer attached to its
/// partition's assignment.
#[derive(Debug)]
pub(crate) struct Fetched<T> {
    pub tag: T,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
}

pub(crate) enum Command<T> {
    /// Start fetching these partitions from these offsets.
    Assign(Vec<(TopicPartition, Offset, T)>),
    /// Stop fetching; answered once no later poll can return their messages.
    Unassign(Vec<TopicPartition>, oneshot::Sender<()>),
    /// Stop fetching these until resumed (their prefetched messages are
    /// dropped by librdkafka and fetched again on resume).
    Pause(Vec<TopicPartition>),
    Resume(Vec<TopicPartition>),
    Stop,
}

/// Counters of the fetch thread.
#[derive(Debug, Default)]
pub(crate) struct FetchStats {
    pub fetch_errors: AtomicU64,
    pub backpressure_pauses: AtomicU64,
    pub paused: AtomicBool,
}

/// Handle on the fetch thread.
pub(crate) struct Fetcher<T> {
    commands: std_mpsc::Sender<Command<T>>,
    thread: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

/// A poll answers at least this often, so commands never wait longer.
const POLL: Duration = Duration::from_millis(20);
/// The most messages handed over at once.
const MAX_BATCH: usize = 1024;

impl<T: Clone + Send + 'static> Fetcher<T> {
    /// Starts the thread. `buffered` counts messages handed over and not yet
    /// taken by the consumer; fetching pauses at `capacity` and resumes at
    /// half of it.
    pub fn spawn(
        client: Arc<KafkaClient>,
        capacity: usize,
        buffered: Arc<AtomicUsize>,
        out: mpsc::UnboundedSender<Vec<Fetched<T>>>,
        stats: Arc<FetchStats>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std_mpsc::channel();
        let mut worker = Worker { client, capacity, buffered, out, stats, tags: HashMap::new(), paused: false };
        let thread = std::thread::Builder::new().name("zkbalance-fetch".into()).spawn(move || worker.run(rx))?;
        Ok(Fetcher { commands: tx, thread: parking_lot::Mutex::new(Some(thread)) })
    }

    pub fn assign(&self, partitions: Vec<(TopicPartition, Offset, T)>) {
        let _ = self.commands.send(Command::Assign(partitions));
    }

    /// Stops fetching `partitions`; resolves once no message of theirs can
    /// be handed over any more (or the thread is gone).
    pub async fn unassign(&self, partitions: Vec<TopicPartition>) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Unassign(partitions, done)).is_ok() {
            let _ = wait.await;
        }
    }

    pub fn pause(&self, partitions: Vec<TopicPartition>) {
        let _ = self.commands.send(Command::Pause(partitions));
    }

    pub fn resume(&self, partitions: Vec<TopicPartition>) {
        let _ = self.commands.send(Command::Resume(partitions));
    }

    /// Tells the thread to stop, without waiting.
    pub fn stop_soon(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Stops the thread and waits for it (at most one poll).
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl<T> Drop for Fetcher<T> {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
    }
}

struct Worker<T> {
    client: Arc<KafkaClient>,
    capacity: usize,
    buffered: Arc<AtomicUsize>,
    out: mpsc::UnboundedSender<Vec<Fetched<T>>>,
    stats: Arc<FetchStats>,
    /// topic → partition → tag; nested so a lookup needs no allocation.
    tags: HashMap<String, HashMap<i32, T>>,
    paused: bool,
}

fn tpl<'a>(tps: impl Iterator<Item = (&'a str, i32)>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (t, p) in tps {
        list.add_partition(t, p);
    }
    list
}

impl<T: Clone + Send + 'static> Worker<T> {
    /// Handles one command; false on `Stop`.
    fn command(&mut self, cmd: Command<T>) -> bool {
        match cmd {
            Command::Assign(parts) => {
                let mut list = TopicPartitionList::new();
                for (tp, offset, tag) in parts {
                    if let Err(e) = list.add_partition_offset(tp.topic.as_str(), tp.partition.0, offset) {
                        tracing::warn!(%tp, error = %e, "cannot assign partition");
                        continue;
                    }
                    self.tags.entry(tp.topic.as_str().to_owned()).or_default().insert(tp.partition.0, tag);
                }
                if let Err(e) = self.client.incremental_assign(&list) {
                    self.stats.fetch_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "incremental assign failed");
                }
            }
            Command::Unassign(parts, done) => {
                for tp in &parts {
                    if let Some(ps) = self.tags.get_mut(tp.topic.as_str()) {
                        ps.remove(&tp.partition.0);
                    }
                }
                self.tags.retain(|_, ps| !ps.is_empty());
                let list = tpl(parts.iter().map(|tp| (tp.topic.as_str(), tp.partition.0)));
                if let Err(e) = self.client.incremental_unassign(&list) {
                    tracing::debug!(error = %e, "incremental unassign");
                }
                // Nothing polled from here on carries their tags.
                let _ = done.send(());
            }
            Command::Pause(parts) => {
                if let Err(e) = self.client.pause(&tpl(parts.iter().map(|tp| (tp.topic.as_str(), tp.partition.0)))) {
                    tracing::warn!(error = %e, "pause failed");
                }
            }
            Command::Resume(parts) => {
                if let Err(e) = self.client.resume(&tpl(parts.iter().map(|tp| (tp.topic.as_str(), tp.partition.0)))) {
                    tracing::warn!(error = %e, "resume failed");
                }
            }
            Command::Stop => return false,
        }
        true
    }

    /// Stops polling while the buffer is full; resumes as soon as there is room.
    fn backpressure(&mut self) {
        let full = self.buffered.load(Ordering::Acquire) >= self.capacity;
        if full && !self.paused {
            self.stats.backpressure_pauses.fetch_add(1, Ordering::Relaxed);
        }
        if full != self.paused {
            self.paused = full;
            self.stats.paused.store(full, Ordering::Relaxed);
        }
    }

    fn run(&mut self, rx: std_mpsc::Receiver<Command<T>>) {
        loop {
            loop {
                match rx.try_recv() {
                    Ok(cmd) => {
                        if !self.command(cmd) {
                            return;
                        }
                    }
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => return,
                }
            }
            self.backpressure();
            if self.paused || self.tags.is_empty() {
                match rx.recv_timeout(Duration::from_millis(5)) {
                    Ok(cmd) => {
                        if !self.command(cmd) {
                            return;
                        }
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                }
                // Serve callbacks (statistics, errors) while nothing is
                // assigned. Never while paused: a poll returns messages too.
                if !self.paused {
                    let _ = self.client.poll(Duration::ZERO);
                }
                continue;
            }
            let room = self.capacity.saturating_sub(self.buffered.load(Ordering::Acquire)).clamp(1, MAX_BATCH);
            let batch = self.poll_batch(room);
            if !batch.is_empty() {
                self.buffered.fetch_add(batch.len(), Ordering::AcqRel);
                if self.out.send(batch).is_err() {
                    return;
                }
            }
        }
    }

    fn poll_batch(&self, room: usize) -> Vec<Fetched<T>> {
        let mut batch = Vec::new();
        let mut wait = POLL;
        while batch.len() < room {
            match self.client.poll(wait) {
                None => break,
                Some(Ok(m)) => {
                    let tag = self.tags.get(m.topic()).and_then(|ps| ps.get(&m.partition()));
                    // A message of a partition unassigned meanwhile is dropped.
                    if let Some(tag) = tag {
                        batch.push(Fetched {
                            tag: tag.clone(),
                            offset: m.offset(),
                            key: m.key().map(<[u8]>::to_vec),
                            payload: m.payload().map(<[u8]>::to_vec),
                            timestamp: m.timestamp().to_millis(),
                        });
                    }
                }
                Some(Err(e)) => {
                    self.stats.fetch_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "fetch error");
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        batch
    }
}
