//! librdkafka's mock Kafka cluster in a process of its own, driven over
//! stdin/stdout with the testkit's line-delimited JSON protocol.
//!
//! Its own process because the mock is not `Send` and can crash on some
//! requests: a crash here fails one test instead of the whole test binary.
//! It exits when stdin closes, so it never outlives the process driving it.
//!
//! Usage: `zkbalance-mock-kafka --brokers N [zkbalance.testkit.owner=PID]`

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaApiKey;
use rdkafka::ClientContext;
use zkbalance::testkit::protocol::{generated_value, BrokerInfo, PartitionInfo, Reply, Request};

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Deliveries {
    counts: BTreeMap<i32, u64>,
    last_offsets: BTreeMap<i32, i64>,
    errors: Vec<String>,
}

#[derive(Default)]
struct Recorder(Mutex<Deliveries>);

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut d = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(m) => {
                *d.counts.entry(m.partition()).or_default() += 1;
                let last = d.last_offsets.entry(m.partition()).or_insert(-1);
                *last = (*last).max(m.offset());
            }
            Err((e, _)) => d.errors.push(e.to_string()),
        }
    }
}

struct Mock {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    producer: BaseProducer<Recorder>,
}

impl Mock {
    fn new(brokers: i32) -> Result<Self, String> {
        let cluster = MockCluster::new(brokers).map_err(|e| format!("creating the mock cluster: {e}"))?;
        // A leaderless partition plus Produce v10+ or Fetch v12+ crashes the
        // mock (librdkafka 2.12.1): cap both before any client connects.
        cluster.apiversion(RDKafkaApiKey::Produce, Some(0), Some(9)).map_err(|e| e.to_string())?;
        cluster.apiversion(RDKafkaApiKey::Fetch, Some(0), Some(11)).map_err(|e| e.to_string())?;
        let producer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "30000")
            .create_with_context(Recorder::default())
            .map_err(|e| format!("creating the producer: {e}"))?;
        Ok(Mock { cluster, producer })
    }

    fn metadata(&self) -> Result<Reply, String> {
        let md = self.producer.client().fetch_metadata(None, TIMEOUT).map_err(|e| format!("metadata: {e}"))?;
        let brokers = brokers_of(&md)?;
        let topics = md
            .topics()
            .iter()
            .map(|t| {
                let parts = t
                    .partitions()
                    .iter()
                    .map(|p| PartitionInfo {
                        id: p.id(),
                        leader: p.leader(),
                        replicas: p.replicas().to_vec(),
                        isr: p.isr().to_vec(),
                    })
                    .collect();
                (t.name().to_owned(), parts)
            })
            .collect();
        Ok(Reply::Metadata { brokers, topics })
    }

    fn produce(
        &self,
        records: impl Iterator<Item = (i32, Option<String>, String)>,
        topic: &str,
    ) -> Result<Reply, String> {
        *self.producer.context().0.lock().unwrap_or_else(|e| e.into_inner()) = Deliveries::default();
        for (partition, key, value) in records {
            let mut record = BaseRecord::<String, String>::to(topic).partition(partition).payload(&value);
            if let Some(k) = key.as_ref() {
                record = record.key(k);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(format!("produce: {e}")),
                }
            }
        }
        self.producer.flush(TIMEOUT).map_err(|e| format!("flush: {e}"))?;
        let d = std::mem::take(&mut *self.producer.context().0.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(first) = d.errors.first() {
            return Err(format!("{} records failed, first: {first}", d.errors.len()));
        }
        Ok(Reply::Produced {
            counts: d.counts.into_iter().collect(),
            last_offsets: d.last_offsets.into_iter().collect(),
        })
    }

    fn partitions_of(&self, topic: &str) -> Result<i32, String> {
        let md = self.producer.client().fetch_metadata(Some(topic), TIMEOUT).map_err(|e| format!("metadata: {e}"))?;
        match md.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
            _ => Err(format!("unknown topic {topic}")),
        }
    }

    fn handle(&self, req: Request) -> Result<Reply, String> {
        let done = |r: rdkafka::error::KafkaResult<()>| r.map(|()| Reply::Done).map_err(|e| e.to_string());
        match req {
            Request::CreateTopic { topic, partitions, replication_factor } => {
                done(self.cluster.create_topic(&topic, partitions, replication_factor))
            }
            Request::Produce { topic, records } => {
                self.produce(records.into_iter().map(|r| (r.partition, r.key, r.value)), &topic)
            }
            Request::ProduceGenerated { topic, first_seq, count, value_size } => {
                let n = self.partitions_of(&topic)? as u64;
                let records = (first_seq..first_seq + count)
                    .map(|s| ((s % n) as i32, Some(s.to_string()), generated_value(&topic, s, value_size)));
                self.produce(records, &topic)
            }
            Request::Metadata => self.metadata(),
            Request::BrokerDown { broker } => done(self.cluster.broker_down(broker)),
            Request::BrokerUp { broker } => done(self.cluster.broker_up(broker)),
            Request::SetLeader { topic, partition, broker } => {
                done(self.cluster.partition_leader(&topic, partition, Some(broker)))
            }
        }
    }
}

fn brokers_of(md: &rdkafka::metadata::Metadata) -> Result<Vec<BrokerInfo>, String> {
    let mut brokers = md
        .brokers()
        .iter()
        .map(|b| {
            let port = u16::try_from(b.port()).map_err(|_| format!("broker {} has port {}", b.id(), b.port()))?;
            Ok(BrokerInfo { id: b.id(), host: b.host().to_owned(), port })
        })
        .collect::<Result<Vec<_>, String>>()?;
    brokers.sort_by_key(|b| b.id);
    Ok(brokers)
}

fn send(out: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    let line = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()
}

fn parse_brokers() -> Result<i32, String> {
    let mut args = std::env::args().skip(1);
    let mut brokers = 3;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => {
                brokers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n: &i32| (1..=64).contains(n))
                    .ok_or("--brokers takes a number from 1 to 64")?;
            }
            a if a.starts_with(zkbalance::testkit::OWNER_MARKER) => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(brokers)
}

fn main() {
    let mut out = std::io::stdout().lock();
    let started = parse_brokers().and_then(Mock::new).and_then(|m| {
        let md = m.producer.client().fetch_metadata(None, TIMEOUT).map_err(|e| format!("metadata: {e}"))?;
        let brokers = brokers_of(&md)?;
        Ok((m, brokers))
    });
    let mock = match started {
        Ok((mock, brokers)) => {
            let ready = Reply::Ready { bootstrap: mock.cluster.bootstrap_servers(), brokers };
            if send(&mut out, &ready).is_err() {
                return;
            }
            mock
        }
        Err(message) => {
            let _ = send(&mut out, &Reply::Error { message });
            std::process::exit(2);
        }
    };
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => mock.handle(req).unwrap_or_else(|message| Reply::Error { message }),
            Err(e) => Reply::Error { message: format!("bad request: {e}") },
        };
        if send(&mut out, &reply).is_err() {
            break;
        }
    }
}
