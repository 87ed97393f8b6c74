//! The rdkafka driver: one thread owns a `BaseConsumer` with a manual
//! assignment of exactly the owned partitions, polls it, and hands batches
//! to the consumer over a channel. Assignment changes are incremental, so a
//! partition that stays keeps fetching.
//!
//! Backpressure: when the consumer's buffer is full the thread stops
//! polling, and librdkafka stops fetching once its own bounded prefetch
//! queue (`queued.min.messages`, `queued.max.messages.kbytes`) is full. It does not
//! use `rd_kafka_pause` for this: a pause discards the prefetched messages
//! and a resume fetches them again, so a handler slower than the broker
//! would cost a full refetch per buffer of progress. Explicit pauses are
//! for the application ([`Command::Pause`]). Coordination runs elsewhere
//! and never waits on this thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use crate::ids::TopicPartition;
use crate::kafka::ffi;
use crate::kafka::KafkaClient;

/// Consecutive messages of one partition, tagged with what the consumer
/// attached to the partition's assignment. Runs, not tagged messages: the
/// tag is cloned once a run, so the fetch thread and the consumer do not
/// bounce a shared reference count between cores on every message.
#[derive(Debug)]
pub(crate) struct Run<T> {
    pub tag: T,
    pub messages: Vec<Fetched>,
    /// The fetch reached the partition's end (this offset) right after
    /// these messages (librdkafka's partition EOF).
    pub end: Option<u64>,
}

/// One message as fetched.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub offset: i64,
    /// Slices of one buffer per batch: one allocation a batch, not two a
    /// message, and freed by whichever thread drops the last message.
    pub key: Option<Bytes>,
    pub payload: Option<Bytes>,
    pub timestamp: Option<(i64, crate::consumer::TimestampType)>,
    /// The broker that served it; -1 when unknown.
    pub broker: i32,
    /// Its headers; `None` (no allocation) without any.
    pub headers: Option<Box<[crate::consumer::Header]>>,
}

pub(crate) enum Command<T> {
    /// Start fetching these partitions from these offsets.
    Assign(Vec<(TopicPartition, Offset, T)>),
    /// Stop fetching; answered once no later poll can return their messages.
    Unassign(Vec<TopicPartition>, oneshot::Sender<()>),
    /// Stop fetching these until resumed (their prefetched messages are
    /// dropped by librdkafka and fetched again on resume).
    Pause(Vec<TopicPartition>, oneshot::Sender<()>),
    Resume(Vec<TopicPartition>, oneshot::Sender<()>),
    Stop,
}

/// An error the fetch thread saw: of one partition, or of the client.
#[derive(Debug, Clone)]
pub(crate) struct FetchFailure {
    pub partition: Option<TopicPartition>,
    /// librdkafka's error name.
    pub code: String,
    pub reason: String,
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
    /// Unparks the thread: commands and freed room take effect at once.
    waker: std::thread::Thread,
    /// Interrupts a poll in progress, for commands.
    queue: ffi::QueueWaker,
    thread: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

/// A poll answers at least this often, so commands never wait longer.
const POLL: Duration = Duration::from_millis(20);
/// The most messages handed over at once.
const MAX_BATCH: usize = 1024;

impl<T: Clone + Send + 'static> Fetcher<T> {
    /// Starts the thread. `buffered` counts messages handed over and not yet
    /// taken by the consumer; polling stops at `capacity` and resumes as soon
    /// as there is room.
    pub fn spawn(
        client: Arc<KafkaClient>,
        capacity: usize,
        buffered: Arc<AtomicUsize>,
        out: mpsc::UnboundedSender<Vec<Run<T>>>,
        stats: Arc<FetchStats>,
        on_error: crate::kafka::ErrorSink,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std_mpsc::channel();
        let queue = ffi::ConsumerQueue::new(&client);
        let main = ffi::MainQueue::detach(&client);
        let queue_waker = ffi::QueueWaker::new(&client);
        let mut worker = Worker {
            queue,
            main,
            client,
            capacity,
            buffered,
            out,
            stats,
            on_error,
            tags: HashMap::new(),
            paused: false,
        };
        let thread = std::thread::Builder::new().name("zkbalance-fetch".into()).spawn(move || worker.run(rx))?;
        let waker = thread.thread().clone();
        Ok(Fetcher { commands: tx, waker, queue: queue_waker, thread: parking_lot::Mutex::new(Some(thread)) })
    }

    fn send(&self, cmd: Command<T>) -> bool {
        let sent = self.commands.send(cmd).is_ok();
        self.waker.unpark();
        // Without this a command waits out a poll of up to `POLL` when no
        // message arrives: 20 ms added to every release.
        self.queue.wake();
        sent
    }

    /// Wakes the thread if it waits for room in the buffer.
    pub fn wake(&self) {
        self.waker.unpark();
    }

    pub fn assign(&self, partitions: Vec<(TopicPartition, Offset, T)>) {
        self.send(Command::Assign(partitions));
    }

    /// Stops fetching `partitions`; resolves once no message of theirs can
    /// be handed over any more (or the thread is gone).
    pub async fn unassign(&self, partitions: Vec<TopicPartition>) {
        let (done, wait) = oneshot::channel();
        if self.send(Command::Unassign(partitions, done)) {
            let _ = wait.await;
        }
    }

    /// Pauses fetching; resolves once applied.
    pub async fn pause(&self, partitions: Vec<TopicPartition>) {
        let (done, wait) = oneshot::channel();
        if self.send(Command::Pause(partitions, done)) {
            let _ = wait.await;
        }
    }

    /// Resumes fetching; resolves once applied.
    pub async fn resume(&self, partitions: Vec<TopicPartition>) {
        let (done, wait) = oneshot::channel();
        if self.send(Command::Resume(partitions, done)) {
            let _ = wait.await;
        }
    }

    /// Tells the thread to stop, without waiting.
    pub fn stop_soon(&self) {
        self.send(Command::Stop);
    }

    /// Stops the thread and waits for it (at most one poll).
    pub fn stop(&self) {
        self.send(Command::Stop);
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl<T> Drop for Fetcher<T> {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        self.waker.unpark();
        self.queue.wake();
    }
}

struct Worker<T> {
    /// Declared before `client`, so it is released first.
    queue: ffi::ConsumerQueue,
    /// librdkafka's logs and errors.
    main: ffi::MainQueue,
    client: Arc<KafkaClient>,
    capacity: usize,
    buffered: Arc<AtomicUsize>,
    out: mpsc::UnboundedSender<Vec<Run<T>>>,
    stats: Arc<FetchStats>,
    /// Where errors go (it must not block).
    on_error: crate::kafka::ErrorSink,
    /// topic → partition → tag; nested so a lookup needs no allocation.
    tags: HashMap<String, HashMap<i32, T>>,
    paused: bool,
}

/// Where a key or payload lies in a batch's buffer.
type Span = Option<(usize, usize)>;

fn tpl(tps: &[TopicPartition]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for tp in tps {
        list.add_partition(tp.topic.as_str(), tp.partition.0);
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
                // Only what librdkafka was given: a partition revoked before
                // its start was sent is not in its assignment (and it warns
                // about every such unassign).
                let assigned: Vec<TopicPartition> = parts
                    .into_iter()
                    .filter(|tp| {
                        self.tags.get_mut(tp.topic.as_str()).is_some_and(|ps| ps.remove(&tp.partition.0).is_some())
                    })
                    .collect();
                self.tags.retain(|_, ps| !ps.is_empty());
                if !assigned.is_empty() {
                    if let Err(e) = self.client.incremental_unassign(&tpl(&assigned)) {
                        tracing::debug!(error = %e, "incremental unassign");
                    }
                }
                // Nothing polled from here on carries their tags.
                let _ = done.send(());
            }
            Command::Pause(parts, done) => {
                if let Err(e) = self.client.pause(&tpl(&parts)) {
                    tracing::warn!(error = %e, "pause failed");
                }
                let _ = done.send(());
            }
            Command::Resume(parts, done) => {
                if let Err(e) = self.client.resume(&tpl(&parts)) {
                    tracing::warn!(error = %e, "resume failed");
                }
                let _ = done.send(());
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
            self.main.serve(&self.client);
            self.backpressure();
            if self.paused || self.tags.is_empty() {
                // Unparked by a command or by the consumer freeing room.
                std::thread::park_timeout(Duration::from_millis(5));
                continue;
            }
            let room = self.capacity.saturating_sub(self.buffered.load(Ordering::Acquire)).clamp(1, MAX_BATCH);
            let runs = self.poll_batch(room);
            if !runs.is_empty() {
                self.buffered.fetch_add(runs.iter().map(|r| r.messages.len()).sum(), Ordering::AcqRel);
                if self.out.send(runs).is_err() {
                    return;
                }
            }
        }
    }

    /// The tag of a partition, and its identity.
    fn tag(&self, topic: &str, partition: i32) -> Option<(&T, *const T)> {
        // One topic (the usual case): no need to compare the topic name.
        let partitions = match self.tags.len() {
            1 => self.tags.values().next(),
            _ => self.tags.get(topic),
        };
        partitions.and_then(|ps| ps.get(&partition)).map(|t| (t, t as *const T))
    }

    fn poll_batch(&self, room: usize) -> Vec<Run<T>> {
        let mut runs: Vec<Run<T>> = Vec::new();
        // Identifies the current run's partition (tags do not move while
        // polling: commands are handled between batches).
        let mut current: *const T = std::ptr::null();
        // Where each message's key and payload lie in `buf`.
        let mut spans: Vec<(Span, Span)> = Vec::new();
        let mut buf = BytesMut::new();
        let copy = |bytes: Option<&[u8]>, buf: &mut BytesMut| {
            bytes.map(|b| {
                buf.extend_from_slice(b);
                (buf.len() - b.len(), buf.len())
            })
        };
        let stats = &self.stats;
        self.queue.take(room, POLL, |taken| match taken {
            ffi::Taken::Message(m) => {
                // A message of a partition unassigned meanwhile is dropped.
                let Some((tag, id)) = self.tag(m.topic, m.partition) else { return };
                if id != current || runs.is_empty() || runs.last().is_some_and(|r| r.end.is_some()) {
                    runs.push(Run { tag: tag.clone(), messages: Vec::new(), end: None });
                    current = id;
                }
                spans.push((copy(m.key, &mut buf), copy(m.payload, &mut buf)));
                let headers = (!m.headers.is_empty()).then(|| {
                    m.headers.iter().map(|(name, value)| crate::consumer::Header::new(name, *value)).collect()
                });
                runs.last_mut().expect("pushed above").messages.push(Fetched {
                    offset: m.offset,
                    key: None,
                    payload: None,
                    timestamp: m.timestamp,
                    broker: m.broker,
                    headers,
                });
            }
            ffi::Taken::Error(e) if e.code == rdkafka::types::RDKafkaErrorCode::PartitionEOF => {
                // Not an error: the end, after the messages before it.
                let Some(topic) = e.topic else { return };
                let Some((tag, id)) = self.tag(topic, e.partition) else { return };
                let end = u64::try_from(e.offset).ok();
                match runs.last_mut() {
                    Some(run) if id == current && run.end.is_none() => run.end = end,
                    _ => {
                        runs.push(Run { tag: tag.clone(), messages: Vec::new(), end });
                        current = id;
                    }
                }
            }
            ffi::Taken::Error(e) => {
                stats.fetch_errors.fetch_add(1, Ordering::Relaxed);
                let partition = e
                    .topic
                    .and_then(|t| crate::ids::TopicName::new(t).ok())
                    .map(|t| TopicPartition::new(t, e.partition));
                let failure = FetchFailure { partition, code: format!("{:?}", e.code), reason: e.reason.to_owned() };
                tracing::warn!(tp = ?failure.partition, code = %failure.code, "fetch error: {}", failure.reason);
                (self.on_error)(failure);
            }
        });
        let buf = buf.freeze();
        for (f, (key, payload)) in runs.iter_mut().flat_map(|r| r.messages.iter_mut()).zip(spans) {
            f.key = key.map(|(a, b)| buf.slice(a..b));
            f.payload = payload.map(|(a, b)| buf.slice(a..b));
        }
        runs
    }
}
