//! Helpers for consumer tests: fast-timing consumers and a ledger of what
//! was delivered.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use zkbalance::consumer::{BalancedConsumer, ConsumerBuilder, Message};
use zkbalance::testkit::protocol::parse_generated_value;

use super::group::SESSION;

pub fn consumer(zk: &str, group: &str, topic: &str) -> ConsumerBuilder {
    BalancedConsumer::builder()
        .zookeeper(zk)
        .group(group)
        .topic(topic)
        .session_timeout(SESSION)
        .membership(|g| {
            g.coalesce(Duration::from_millis(20))
                .claim_backoff(Duration::from_millis(50), Duration::from_millis(500))
                .reconcile_interval(Duration::from_secs(2))
                .revoke_timeout(Duration::from_secs(5))
                .connect_timeout(Duration::from_secs(5))
        })
        .kafka_timeout(Duration::from_secs(5))
}

/// One delivery of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub who: String,
    pub partition: i32,
    pub offset: u64,
    /// The member's assignment generation for the partition.
    pub generation: u64,
    /// Order of delivery across the ledger.
    pub index: u64,
}

/// Deliveries so far, and every delivery by sequence number.
type Book = (u64, BTreeMap<u64, Vec<Delivery>>);

/// Every delivery, by the generated message's sequence number.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    inner: Arc<Mutex<Book>>,
}

impl Ledger {
    pub fn record(&self, who: &str, topic: &str, m: &Message) -> u64 {
        let seq = parse_generated_value(topic, m.payload().unwrap_or_default())
            .unwrap_or_else(|| panic!("not a generated value at {}@{}", m.topic_partition(), m.offset()));
        let mut inner = self.inner.lock();
        let index = inner.0;
        inner.0 += 1;
        let d = Delivery {
            who: who.to_owned(),
            partition: m.partition().0,
            offset: m.offset(),
            generation: m.generation(),
            index,
        };
        inner.1.entry(seq).or_default().push(d);
        seq
    }

    /// Deliveries so far.
    pub fn deliveries(&self) -> u64 {
        self.inner.lock().0
    }

    /// Every delivery with its sequence number.
    pub fn all(&self) -> Vec<(u64, Delivery)> {
        let inner = self.inner.lock();
        inner.1.iter().flat_map(|(s, ds)| ds.iter().map(move |d| (*s, d.clone()))).collect()
    }

    pub fn distinct(&self) -> u64 {
        self.inner.lock().1.len() as u64
    }

    /// (sequence, deliveries) of every message delivered more than once.
    pub fn duplicates(&self) -> Vec<(u64, Vec<Delivery>)> {
        self.inner.lock().1.iter().filter(|(_, d)| d.len() > 1).map(|(s, d)| (*s, d.clone())).collect()
    }

    pub fn missing(&self, total: u64) -> Vec<u64> {
        let inner = self.inner.lock();
        (0..total).filter(|s| !inner.1.contains_key(s)).collect()
    }

    pub async fn wait_for(&self, n: u64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.distinct() < n {
            if tokio::time::Instant::now() >= deadline {
                panic!("only {} of {n} messages delivered within {within:?}", self.distinct());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Runs `consumer` in a task: records and acknowledges every message until
/// told to stop, then stops the consumer cleanly.
pub struct Running {
    pub name: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<zkbalance::consumer::ConsumerMetrics>,
}

impl Running {
    pub fn spawn(name: &str, consumer: BalancedConsumer, ledger: Ledger, topic: &str) -> Self {
        Self::paced(name, consumer, ledger, topic, Duration::ZERO)
    }

    /// Like `spawn`, taking `pace` per message.
    pub fn paced(name: &str, consumer: BalancedConsumer, ledger: Ledger, topic: &str, pace: Duration) -> Self {
        Self::run(name, consumer, ledger, topic, pace, true)
    }

    /// As [`spawn`](Self::spawn), never calling `ack` (for consumers that
    /// acknowledge on receipt).
    pub fn without_acks(name: &str, consumer: BalancedConsumer, ledger: Ledger, topic: &str) -> Self {
        Self::run(name, consumer, ledger, topic, Duration::ZERO, false)
    }

    fn run(name: &str, mut consumer: BalancedConsumer, ledger: Ledger, topic: &str, pace: Duration, ack: bool) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (who, topic) = (name.to_owned(), topic.to_owned());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    m = consumer.recv() => match m {
                        // Faults (a broker down) raise errors; the ledger
                        // judges what was delivered.
                        Some(Err(e)) => eprintln!("{who}: consumer error: {e}"),
                        Some(Ok(m)) => {
                            if !pace.is_zero() {
                                tokio::time::sleep(pace).await;
                            }
                            ledger.record(&who, &topic, &m);
                            if ack {
                                m.ack();
                            }
                        }
                        None => break,
                    }
                }
            }
            let metrics = consumer.metrics();
            consumer.stop().await.expect("stop the consumer cleanly");
            metrics
        });
        Running { name: name.to_owned(), stop, task }
    }

    pub async fn stop(self) -> zkbalance::consumer::ConsumerMetrics {
        let _ = self.stop.send(());
        super::within(&format!("{} to stop", self.name), Duration::from_secs(20), self.task)
            .await
            .expect("consumer task")
    }
}
