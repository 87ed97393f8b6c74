//! A mock Kafka cluster (in its own process) registered in ZooKeeper the way
//! ZooKeeper-mode brokers and their controller register: `/brokers/ids/<id>`
//! (ephemeral, one session per broker), `/brokers/topics/<t>` and every
//! partition's `state`, kept current as brokers go down and leaders move.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};
use zookeeper_client::{Acls, Client, CreateMode};

use crate::ids::{BrokerId, PartitionId, TopicName};
use crate::znode::{layout, BrokerRegistration, Codec, PartitionState, TopicRegistration};

use super::process::{self, Supervised};
use super::protocol::{BrokerInfo, Record, Reply, Request};
use super::session::connect_with;
use super::TestkitError;

mod faults;

const BINARY: &str = "zkbalance-mock-kafka";
/// Overrides where the mock binary is looked for.
pub const BINARY_ENV: &str = "ZKBALANCE_MOCK_KAFKA_BIN";
const BROKER_SESSION_TIMEOUT: Duration = Duration::from_secs(6);
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(180);

/// What the registrar (playing Kafka's controller) knows of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionModel {
    /// Replica brokers, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// Current leader.
    pub leader: Option<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
    /// Bumped at every leader change.
    pub leader_epoch: i32,
}

/// What a produce call wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceSummary {
    /// First generated sequence number (0 for explicit records).
    pub first_seq: u64,
    /// Records acknowledged per partition.
    pub counts: BTreeMap<PartitionId, u64>,
    /// Offset of the last record per partition.
    pub last_offsets: BTreeMap<PartitionId, i64>,
}

impl ProduceSummary {
    /// Records acknowledged in all.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

struct BrokerSlot {
    info: BrokerInfo,
    /// The broker's own ZooKeeper session; `None` while the broker is down.
    session: Option<Client>,
}

/// A running mock Kafka cluster, registered in ZooKeeper.
pub struct KafkaCluster {
    process: Supervised,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    log: PathBuf,
    _dir: tempfile::TempDir,
    bootstrap: String,
    zk_connect: String,
    /// How the cluster's own sessions (controller, brokers) authenticate.
    access: crate::coord::ZkAccess,
    controller: Client,
    controller_epoch: i32,
    brokers: BTreeMap<BrokerId, BrokerSlot>,
    topics: BTreeMap<TopicName, BTreeMap<PartitionId, PartitionModel>>,
    next_seq: BTreeMap<TopicName, u64>,
}

impl std::fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCluster").field("bootstrap", &self.bootstrap).field("zk", &self.zk_connect).finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> TestkitError + '_ {
    move |source| TestkitError::Io { what: what.to_owned(), source }
}

/// Finds the mock binary: `$ZKBALANCE_MOCK_KAFKA_BIN`, else beside the
/// running executable or one directory up (tests run from `target/*/deps`).
pub fn find_binary() -> Result<PathBuf, TestkitError> {
    if let Some(p) = std::env::var_os(BINARY_ENV) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(io("locating the running executable"))?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(BINARY))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            TestkitError::MockKafka(format!(
                "{BINARY} not found near {}: build it with `cargo build --features testkit --bin {BINARY}` or set {BINARY_ENV}",
                exe.display()
            ))
        })
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

/// Creates `chroot` (e.g. `/kafka`) on the server named by the host part of
/// `connect_string`, so a chrooted connect can succeed.
async fn ensure_chroot(connect_string: &str, access: &crate::coord::ZkAccess) -> Result<(), TestkitError> {
    let Some(slash) = connect_string.find('/') else { return Ok(()) };
    let (hosts, chroot) = connect_string.split_at(slash);
    if chroot == "/" {
        return Ok(());
    }
    let root = connect_with(hosts, access, BROKER_SESSION_TIMEOUT).await?;
    root.mkdir(chroot, &persistent()).await.map_err(TestkitError::zk("mkdir", chroot))
}

impl KafkaCluster {
    /// Starts `brokers` mock brokers and registers them in the ZooKeeper at
    /// `zk_connect` (which may end in a chroot, as Kafka's `zookeeper.connect`).
    pub async fn start(zk_connect: &str, brokers: i32) -> Result<Self, TestkitError> {
        Self::start_with_binary(&find_binary()?, zk_connect, brokers).await
    }

    /// As [`KafkaCluster::start`], with an explicit path to the mock binary
    /// (integration tests pass `env!("CARGO_BIN_EXE_zkbalance-mock-kafka")`).
    pub async fn start_with_binary(binary: &Path, zk_connect: &str, brokers: i32) -> Result<Self, TestkitError> {
        Self::start_secured(binary, zk_connect, &crate::coord::ZkAccess::default(), brokers).await
    }

    /// As [`KafkaCluster::start_with_binary`], registering through sessions
    /// authenticated as `access` says (a server that requires SASL).
    pub async fn start_secured(
        binary: &Path,
        zk_connect: &str,
        access: &crate::coord::ZkAccess,
        brokers: i32,
    ) -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new().prefix("zkbalance-kafka-").tempdir().map_err(io("creating a temp dir"))?;
        let log = dir.path().join("mock-kafka.log");
        let log_file = std::fs::File::create(&log).map_err(io("creating the mock log"))?;
        let mut cmd = Command::new(binary);
        cmd.args(["--brokers", &brokers.to_string(), &process::owner_marker()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let child = process::spawn(cmd).map_err(io("starting the mock Kafka process"))?;
        let mut process = Supervised::new(child, "mock kafka");
        let child = process.child_mut().expect("just spawned");
        let stdin = ChildStdin::from_std(child.stdin.take().expect("piped")).map_err(io("mock stdin"))?;
        let stdout = ChildStdout::from_std(child.stdout.take().expect("piped")).map_err(io("mock stdout"))?;
        ensure_chroot(zk_connect, access).await?;
        let controller = connect_with(zk_connect, access, BROKER_SESSION_TIMEOUT).await?;
        let mut cluster = KafkaCluster {
            process,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            log,
            _dir: dir,
            bootstrap: String::new(),
            zk_connect: zk_connect.to_owned(),
            access: access.clone(),
            controller,
            controller_epoch: 1,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            next_seq: BTreeMap::new(),
        };
        let Reply::Ready { bootstrap, brokers } = cluster.read_reply(CONTROL_TIMEOUT).await? else {
            return Err(TestkitError::MockKafka("expected a ready line first".into()));
        };
        cluster.bootstrap = bootstrap;
        for info in brokers {
            cluster.brokers.insert(BrokerId(info.id), BrokerSlot { info, session: None });
        }
        cluster.register_cluster().await?;
        Ok(cluster)
    }

    async fn read_reply(&mut self, within: Duration) -> Result<Reply, TestkitError> {
        let line = match tokio::time::timeout(within, self.stdout.next_line()).await {
            Err(_) => {
                return Err(TestkitError::Timeout {
                    what: "a reply from the mock Kafka process".into(),
                    waited: within,
                })
            }
            Ok(Err(e)) => return Err(io("reading from the mock Kafka process")(e)),
            Ok(Ok(None)) => {
                self.process.has_exited();
                let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: String = tail.lines().rev().take(10).collect::<Vec<_>>().join("\n");
                return Err(TestkitError::MockKafka(format!("the process exited; its last log lines:\n{tail}")));
            }
            Ok(Ok(Some(line))) => line,
        };
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Error { message }) => Err(TestkitError::MockKafka(message)),
            Ok(reply) => Ok(reply),
            Err(e) => Err(TestkitError::MockKafka(format!("unreadable reply {line:?}: {e}"))),
        }
    }

    async fn call(&mut self, req: &Request, within: Duration) -> Result<Reply, TestkitError> {
        let mut line = serde_json::to_string(req).map_err(|e| TestkitError::MockKafka(e.to_string()))?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.map_err(io("writing to the mock Kafka process"))?;
        self.stdin.flush().await.map_err(io("writing to the mock Kafka process"))?;
        self.read_reply(within).await
    }

    /// The persistent skeleton a ZooKeeper-mode cluster has, the controller's
    /// znodes, and one ephemeral registration per broker.
    async fn register_cluster(&mut self) -> Result<(), TestkitError> {
        for path in [
            "/consumers",
            "/brokers/ids",
            "/brokers/topics",
            "/brokers/seqid",
            "/config/topics",
            "/config/changes",
            "/admin/delete_topics",
            "/isr_change_notification",
        ] {
            self.controller.mkdir(path, &persistent()).await.map_err(TestkitError::zk("mkdir", path))?;
        }
        let epoch = self.controller_epoch.to_string();
        match self.controller.create("/controller_epoch", epoch.as_bytes(), &persistent()).await {
            Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
            Err(e) => return Err(TestkitError::zk("create", "/controller_epoch")(e)),
        }
        let first = self.brokers.keys().next().copied().unwrap_or(BrokerId(1));
        let controller = format!(r#"{{"version":1,"brokerid":{first},"timestamp":"{}"}}"#, now_ms());
        let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        self.controller
            .create("/controller", controller.as_bytes(), &ephemeral)
            .await
            .map_err(TestkitError::zk("create", "/controller"))?;
        let ids: Vec<BrokerId> = self.brokers.keys().copied().collect();
        for id in ids {
            self.register_broker(id).await?;
        }
        Ok(())
    }

    async fn register_broker(&mut self, id: BrokerId) -> Result<(), TestkitError> {
        let session = connect_with(&self.zk_connect, &self.access, BROKER_SESSION_TIMEOUT).await?;
        let slot = self.brokers.get_mut(&id).ok_or_else(|| TestkitError::InvalidArgument(format!("no broker {id}")))?;
        let reg = BrokerRegistration::plaintext_v4(&slot.info.host, slot.info.port, now_ms());
        let path = layout::broker(id);
        session
            .create(&path, &reg.encode(), &CreateMode::Ephemeral.with_acls(Acls::anyone_all()))
            .await
            .map_err(TestkitError::zk("create", &path))?;
        slot.session = Some(session);
        Ok(())
    }

    async fn write_state(&self, topic: &TopicName, partition: PartitionId) -> Result<(), TestkitError> {
        let m = &self.topics[topic][&partition];
        let state = PartitionState {
            version: 1,
            leader: m.leader,
            leader_epoch: m.leader_epoch,
            controller_epoch: self.controller_epoch,
            isr: m.isr.clone(),
        };
        let path = layout::partition_state(topic, partition);
        match self.controller.set_data(&path, &state.encode(), None).await {
            Ok(_) => Ok(()),
            Err(zookeeper_client::Error::NoNode) => {
                let dir = layout::partition(topic, partition);
                self.controller.mkdir(&dir, &persistent()).await.map_err(TestkitError::zk("mkdir", &dir))?;
                self.controller
                    .create(&path, &state.encode(), &persistent())
                    .await
                    .map_err(TestkitError::zk("create", &path))?;
                Ok(())
            }
            Err(e) => Err(TestkitError::zk("set", &path)(e)),
        }
    }

    fn topic_name(topic: &str) -> Result<TopicName, TestkitError> {
        TopicName::new(topic).map_err(|e| TestkitError::InvalidArgument(e.to_string()))
    }

    /// A topic created through [`KafkaCluster::create_topic`]. The mock would
    /// auto-create any other on first use, unregistered in ZooKeeper.
    fn known_topic(&self, topic: &str) -> Result<TopicName, TestkitError> {
        let name = Self::topic_name(topic)?;
        if !self.topics.contains_key(&name) {
            return Err(TestkitError::InvalidArgument(format!("unknown topic {topic}: create it first")));
        }
        Ok(name)
    }

    /// Creates a topic in the mock and registers it as Kafka 2.x does:
    /// `/config/topics/<t>`, `/brokers/topics/<t>` (v2), then every
    /// partition's `state`.
    pub async fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
    ) -> Result<(), TestkitError> {
        let name = Self::topic_name(topic)?;
        if self.topics.contains_key(&name) {
            return Err(TestkitError::InvalidArgument(format!("topic {topic} already exists")));
        }
        if partitions < 1 || replication_factor < 1 || replication_factor as usize > self.brokers.len() {
            return Err(TestkitError::InvalidArgument(format!(
                "{partitions} partitions × {replication_factor} replicas on {} brokers",
                self.brokers.len()
            )));
        }
        let req = Request::CreateTopic { topic: topic.to_owned(), partitions, replication_factor };
        self.call(&req, CONTROL_TIMEOUT).await?;
        let Reply::Metadata { topics, .. } = self.call(&Request::Metadata, CONTROL_TIMEOUT).await? else {
            return Err(TestkitError::MockKafka("expected metadata".into()));
        };
        let reported = topics.get(topic).filter(|p| p.len() == partitions as usize).ok_or_else(|| {
            TestkitError::MockKafka(format!("topic {topic} missing or incomplete in metadata after creation"))
        })?;
        let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
        let model: BTreeMap<PartitionId, PartitionModel> = reported
            .iter()
            .map(|p| {
                let m = PartitionModel {
                    replicas: ids(&p.replicas),
                    leader: (p.leader >= 0).then_some(BrokerId(p.leader)),
                    isr: ids(&p.isr),
                    leader_epoch: 0,
                };
                (PartitionId(p.id), m)
            })
            .collect();
        let config_path = format!("/config/topics/{topic}");
        self.controller
            .create(&config_path, br#"{"version":1,"config":{}}"#, &persistent())
            .await
            .map_err(TestkitError::zk("create", &config_path))?;
        let registration = TopicRegistration {
            version: 2,
            partitions: model.iter().map(|(p, m)| (*p, m.replicas.clone())).collect(),
            adding_replicas: BTreeMap::new(),
            removing_replicas: BTreeMap::new(),
            topic_id: None,
        };
        let topic_path = layout::topic(&name);
        self.controller
            .create(&topic_path, &registration.encode(), &persistent())
            .await
            .map_err(TestkitError::zk("create", &topic_path))?;
        let partition_ids: Vec<PartitionId> = model.keys().copied().collect();
        self.topics.insert(name.clone(), model);
        for p in partition_ids {
            self.write_state(&name, p).await?;
        }
        Ok(())
    }

    fn summary(first_seq: u64, reply: Reply) -> Result<ProduceSummary, TestkitError> {
        let Reply::Produced { counts, last_offsets } = reply else {
            return Err(TestkitError::MockKafka("expected a produce summary".into()));
        };
        Ok(ProduceSummary {
            first_seq,
            counts: counts.into_iter().map(|(p, n)| (PartitionId(p), n)).collect(),
            last_offsets: last_offsets.into_iter().map(|(p, o)| (PartitionId(p), o)).collect(),
        })
    }

    /// Produces `count` generated records (see
    /// [`protocol::generated_value`](super::protocol::generated_value)),
    /// continuing the topic's sequence numbers from earlier calls; returns
    /// once every record is acknowledged.
    pub async fn produce_generated(
        &mut self,
        topic: &str,
        count: u64,
        value_size: usize,
    ) -> Result<ProduceSummary, TestkitError> {
        let name = self.known_topic(topic)?;
        let first_seq = self.next_seq.get(&name).copied().unwrap_or(0);
        let req = Request::ProduceGenerated { topic: topic.to_owned(), first_seq, count, value_size };
        let summary = Self::summary(first_seq, self.call(&req, PRODUCE_TIMEOUT).await?)?;
        self.next_seq.insert(name, first_seq + count);
        Ok(summary)
    }

    /// Produces explicit records; returns once every one is acknowledged.
    pub async fn produce(&mut self, topic: &str, records: Vec<Record>) -> Result<ProduceSummary, TestkitError> {
        self.known_topic(topic)?;
        let req = Request::Produce { topic: topic.to_owned(), records };
        Self::summary(0, self.call(&req, PRODUCE_TIMEOUT).await?)
    }

    /// Every broker's `host:port`, as the mock reports them.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The ZooKeeper connect string the cluster is registered under.
    pub fn zk_connect(&self) -> &str {
        &self.zk_connect
    }

    /// Brokers currently up.
    pub fn live_brokers(&self) -> Vec<BrokerId> {
        self.brokers.iter().filter(|(_, s)| s.session.is_some()).map(|(b, _)| *b).collect()
    }

    /// The registrar's view of a topic's partitions.
    pub fn partitions(&self, topic: &str) -> Option<&BTreeMap<PartitionId, PartitionModel>> {
        TopicName::new(topic).ok().and_then(|t| self.topics.get(&t))
    }

    /// The ZooKeeper session the registrar writes with.
    pub fn zk(&self) -> &Client {
        &self.controller
    }

    /// The mock process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}
