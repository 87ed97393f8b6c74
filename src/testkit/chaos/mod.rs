//! A standing fault suite's parts: a rig of real processes (a real
//! ZooKeeper, standalone or an ensemble; the mock Kafka cluster registered
//! in it; `zkbc consume` members, each behind a cuttable link), continuous
//! production, an outside observer of the group's znodes, the faults, and
//! the [`checker`] that judges what every member delivered.
//!
//! ```no_run
//! # async fn f() -> Result<(), zkbalance::testkit::TestkitError> {
//! use std::time::Duration;
//! use zkbalance::testkit::chaos::{ChaosRig, RigSpec};
//!
//! let spec = RigSpec::new("target/debug/zkbc".into(), "target/debug/zkbalance-mock-kafka".into());
//! let mut rig = ChaosRig::start(spec).await?;
//! rig.settle(Duration::from_secs(20)).await?;
//! rig.cut(0);                                  // member 0 loses ZooKeeper
//! tokio::time::sleep(Duration::from_secs(5)).await;
//! rig.restore(0);
//! let (history, verdict) = rig.finish().await?;
//! assert!(verdict.violations().is_empty(), "{}", verdict.summary());
//! # drop(history); Ok(()) }
//! ```

pub mod checker;
mod members;
mod observer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use checker::{History, Verdict};
use members::{Journal, Launch, MemberProcess};
pub use observer::Observed;
use observer::Observer;

use super::{KafkaCluster, ServerSecurity, TestkitError, ZkLink, ZooKeeper};
use crate::assign::{assign, Assignment, GroupShape, Strategy};
use crate::coord::{ZkAccess, ZkSasl};
use crate::ids::{BrokerId, GroupId, MemberId, PartitionId, TopicName};
use crate::znode::Flavour;

/// Wall-clock microseconds: the one clock the members' audit lines, the
/// observer and the harness share.
pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// What a rig runs.
#[derive(Debug, Clone)]
pub struct RigSpec {
    /// The `zkbc` binary.
    pub zkbc: PathBuf,
    /// The `zkbalance-mock-kafka` binary.
    pub mock: PathBuf,
    /// ZooKeeper nodes: 1 (standalone) or 3.
    pub ensemble: usize,
    /// The group's layout.
    pub flavour: Flavour,
    /// Members at the start.
    pub members: usize,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Mock brokers (replication factor 2).
    pub brokers: i32,
    /// The members' session timeout.
    pub session_timeout: Duration,
    /// The members' commit interval.
    pub commit_interval: Duration,
    /// Messages produced per second, continuously.
    pub rate: u64,
    /// Run members as this mutant (`ZKBALANCE_MUTANT`), to prove the
    /// checker catches it.
    pub mutant: Option<String>,
    /// A server that requires SASL (DIGEST-MD5) of every session: members,
    /// the mock cluster and the observer all authenticate.
    pub sasl: bool,
    /// Members reach ZooKeeper over TLS, with client certificates
    /// (standalone only; the mock cluster and the observer use the plain
    /// port).
    pub tls: bool,
}

impl RigSpec {
    /// Three pykafka-flavour members on a standalone ZooKeeper, 6
    /// partitions, 3 s sessions, 300 messages/s.
    pub fn new(zkbc: PathBuf, mock: PathBuf) -> Self {
        RigSpec {
            zkbc,
            mock,
            ensemble: 1,
            flavour: Flavour::Pykafka,
            members: 3,
            partitions: 6,
            brokers: 3,
            session_timeout: Duration::from_secs(3),
            commit_interval: Duration::from_millis(200),
            rate: 300,
            mutant: None,
            sasl: false,
            tls: false,
        }
    }
}

const TOPIC: &str = "chaos";
const SASL_USER: &str = "chaos";
const SASL_PASSWORD: &str = "chaos-rig-password";
const GROUP: &str = "chaos";
const PRODUCE_EVERY: Duration = Duration::from_millis(50);

type Producer = (watch::Sender<bool>, JoinHandle<Result<BTreeMap<i32, u64>, TestkitError>>);

/// A running rig. Dropping it kills every process it started.
pub struct ChaosRig {
    spec: RigSpec,
    zk: ZooKeeper,
    kafka: Arc<Mutex<KafkaCluster>>,
    launch: Launch,
    members: Vec<MemberProcess>,
    journal: Journal,
    observer: Option<Observer>,
    producer: Option<Producer>,
    steady_from_us: u64,
    started: u64,
    _logs: tempfile::TempDir,
}

impl ChaosRig {
    /// Starts ZooKeeper, the mock cluster and its topic, production, the
    /// observer and the members.
    pub async fn start(spec: RigSpec) -> Result<Self, TestkitError> {
        let security = ServerSecurity {
            sasl_users: if spec.sasl { vec![(SASL_USER.into(), SASL_PASSWORD.into())] } else { Vec::new() },
            require_sasl: spec.sasl,
            tls: spec.tls,
        };
        let zk = ZooKeeper::start_secured(spec.ensemble, &security).await?;
        let access = if spec.sasl {
            ZkAccess::new().with_sasl(ZkSasl::DigestMd5 {
                username: SASL_USER.into(),
                password: crate::coord::Secret::new(SASL_PASSWORD),
            })
        } else {
            ZkAccess::default()
        };
        // What members add to their command line and environment.
        let (mut member_args, mut member_env) = (Vec::new(), Vec::new());
        if spec.sasl {
            member_args.push(format!("--zookeeper-sasl=digest-md5:{SASL_USER}"));
            member_env.push(("ZKB_ZOOKEEPER_SASL_PASSWORD".to_owned(), SASL_PASSWORD.to_owned()));
        }
        if let Some(certs) = zk.certs() {
            member_args.push(format!("--zookeeper-tls-ca={}", certs.ca.display()));
            member_args.push(format!("--zookeeper-tls-cert={}", certs.client_cert.display()));
            member_args.push(format!("--zookeeper-tls-key={}", certs.client_key.display()));
        }
        let mut kafka = KafkaCluster::start_secured(&spec.mock, &zk.connect_string(), &access, spec.brokers).await?;
        kafka.create_topic(TOPIC, spec.partitions, 2.min(spec.brokers)).await?;
        let kafka = Arc::new(Mutex::new(kafka));
        // `ZKB_CHAOS_LOGS=DIR` keeps the members' logs there, one
        // directory per run; otherwise they go with the rig.
        let logs = match std::env::var_os("ZKB_CHAOS_LOGS") {
            Some(dir) => tempfile::Builder::new().prefix("run-").disable_cleanup(true).tempdir_in(dir),
            None => tempfile::Builder::new().prefix("zkbalance-chaos-").tempdir(),
        }
        .map_err(|source| TestkitError::Io { what: "creating a log dir".into(), source })?;
        let observer_zk = super::connect_with(&zk.connect_string(), &access, Duration::from_secs(30)).await?;
        let (group, topic) = (GroupId::new(GROUP).expect("valid"), TopicName::new(TOPIC).expect("valid"));
        let observer = Observer::start(observer_zk, spec.flavour, group, topic);
        let launch = Launch {
            zkbc: spec.zkbc.clone(),
            group: GROUP.into(),
            topic: TOPIC.into(),
            flavour: match spec.flavour {
                Flavour::Pykafka => "pykafka",
                Flavour::Scala => "scala",
            },
            session_timeout: spec.session_timeout,
            commit_interval: spec.commit_interval,
            mutant: spec.mutant.clone(),
            security_args: member_args,
            security_env: member_env,
            logs: logs.path().to_owned(),
        };
        let mut rig = ChaosRig {
            producer: Some(produce(Arc::clone(&kafka), spec.rate)),
            spec,
            zk,
            kafka,
            launch,
            members: Vec::new(),
            journal: Journal::default(),
            observer: Some(observer),
            steady_from_us: 0,
            started: 0,
            _logs: logs,
        };
        for _ in 0..rig.spec.members {
            rig.add_member().await?;
        }
        Ok(rig)
    }

    /// Starts one more member; returns its index.
    pub async fn add_member(&mut self) -> Result<usize, TestkitError> {
        let link = ZkLink::new(&self.zk).await?;
        let n = self.started as usize;
        self.started += 1;
        let member = MemberProcess::start(&self.launch, link, n, &self.journal).await?;
        self.members.push(member);
        Ok(self.members.len() - 1)
    }

    /// Member ids, by index.
    pub fn member_ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.id.clone()).collect()
    }

    /// What the group's strategy assigns the running members: partition →
    /// member. The rig knows the leaders pykafka's order depends on.
    async fn expected(&mut self) -> BTreeMap<i32, String> {
        let mut running = Vec::new();
        for m in &mut self.members {
            if m.is_running() {
                running.push(m.id.clone());
            }
        }
        let topic = TopicName::new(TOPIC).expect("valid");
        let mut shape = GroupShape::default();
        for id in &running {
            if let Ok(member) = MemberId::new(id.as_str()) {
                shape.add_member(member, [(topic.clone(), 1)]);
            }
        }
        let leaders: Vec<(PartitionId, Option<BrokerId>)> = {
            let kafka = self.kafka.lock().await;
            let partitions = kafka.partitions(TOPIC).cloned().unwrap_or_default();
            partitions
                .into_iter()
                .map(|(p, m)| (p, m.leader.filter(|_| self.spec.flavour == Flavour::Pykafka)))
                .collect()
        };
        shape.add_topic(topic, leaders);
        let strategy = match self.spec.flavour {
            Flavour::Pykafka => Strategy::PykafkaRange,
            Flavour::Scala => Strategy::ScalaRange,
        };
        assign(strategy, &shape, &Assignment::new())
            .unwrap_or_default()
            .into_iter()
            .map(|(tp, slot)| (tp.partition.0, slot.member.to_string()))
            .collect()
    }

    /// Waits until the observer sees exactly the strategy's assignment of
    /// the running members — every partition owned once, by the member the
    /// strategy names. From the first call on, the checker counts owner
    /// changes and unowned time.
    pub async fn settle(&mut self, within: Duration) -> Result<(), TestkitError> {
        let expected = self.expected().await;
        let mut seen = self.observer.as_ref().expect("observing").watch();
        let matches = |owners: &BTreeMap<i32, Vec<String>>| {
            owners.len() == expected.len()
                && expected.iter().all(|(p, m)| owners.get(p).is_some_and(|o| o.len() == 1 && o[0] == *m))
        };
        let settled = tokio::time::timeout(within, async {
            loop {
                if matches(&seen.borrow_and_update().current_owners()) {
                    return true;
                }
                if seen.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        if settled != Ok(true) {
            let owners = self.observer.as_ref().expect("observing").latest().current_owners();
            return Err(TestkitError::Timeout {
                what: format!("the group to settle as {expected:?}; owners now {owners:?}"),
                waited: within,
            });
        }
        if self.steady_from_us == 0 {
            self.steady_from_us = now_us();
        }
        Ok(())
    }

    /// Cuts member `i` off from ZooKeeper (Kafka stays reachable).
    pub fn cut(&self, i: usize) {
        self.members[i].link.cut();
    }

    /// Partitions member `i` from ZooKeeper silently: nothing passes and
    /// nothing is reset, so it learns only from its own timeouts.
    pub fn blackhole(&self, i: usize) {
        self.members[i].link.blackhole();
    }

    /// Heals member `i`'s link.
    pub fn restore(&self, i: usize) {
        self.members[i].link.restore();
    }

    /// SIGSTOPs member `i`.
    pub fn pause(&mut self, i: usize) {
        self.members[i].pause();
    }

    /// Stops (or resumes) reading member `i`'s output: it soon blocks
    /// writing, with what it fetched meanwhile in hand — a busy application.
    pub fn hold_output(&self, i: usize, hold: bool) {
        self.members[i].hold_output(hold);
    }

    /// SIGCONTs member `i`.
    pub fn resume(&mut self, i: usize) {
        self.members[i].resume();
    }

    /// SIGKILLs member `i`.
    pub async fn kill(&mut self, i: usize) {
        self.members[i].kill(&self.journal).await;
    }

    /// Stops member `i` cleanly (SIGTERM) and waits for it to exit.
    pub async fn stop(&mut self, i: usize) -> Result<(), TestkitError> {
        let within = self.spec.session_timeout * 3 + Duration::from_secs(10);
        self.members[i].stop(&self.journal, within).await
    }

    /// The ZooKeeper (to kill and restart nodes).
    pub fn zookeeper(&mut self) -> &mut ZooKeeper {
        &mut self.zk
    }

    /// Takes a broker down (leaders move, as the controller would).
    pub async fn broker_down(&self, id: i32) -> Result<(), TestkitError> {
        self.kafka.lock().await.broker_down(BrokerId(id)).await
    }

    /// Brings a broker back.
    pub async fn broker_up(&self, id: i32) -> Result<(), TestkitError> {
        self.kafka.lock().await.broker_up(BrokerId(id)).await
    }

    /// What the observer has seen so far.
    pub fn observed(&self) -> Observed {
        self.observer.as_ref().map(Observer::latest).unwrap_or_default()
    }

    /// Deliveries so far.
    pub fn deliveries(&self) -> usize {
        self.journal.deliveries.lock().len()
    }

    /// Stops production, waits (bounded) until every produced message was
    /// delivered, stops every member cleanly, and judges the run.
    pub async fn finish(mut self) -> Result<(History, Verdict), TestkitError> {
        let wind_down_us = now_us();
        let (stop, producer) = self.producer.take().expect("producing");
        let _ = stop.send(true);
        let produced = producer.await.map_err(|e| TestkitError::MockKafka(format!("the producer task: {e}")))??;
        let total: u64 = produced.values().sum();
        let drain = self.spec.session_timeout * 4 + Duration::from_secs(20);
        let deadline = tokio::time::Instant::now() + drain;
        loop {
            let delivered: std::collections::BTreeSet<(i32, u64)> =
                self.journal.deliveries.lock().iter().map(|d| (d.partition, d.offset)).collect();
            if delivered.len() as u64 >= total || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut errors = Vec::new();
        for i in 0..self.members.len() {
            if self.members[i].is_running() {
                if let Err(e) = self.stop(i).await {
                    errors.push(e.to_string());
                }
            }
        }
        let observed = self.observer.take().expect("observing").finish().await;
        let history = History {
            deliveries: std::mem::take(&mut *self.journal.deliveries.lock()),
            owners: observed.owners.into_values().collect(),
            members: observed.members.into_values().collect(),
            events: std::mem::take(&mut *self.journal.events.lock()),
            produced,
            steady_from_us: self.steady_from_us,
            wind_down_us,
            end_us: now_us(),
        };
        let verdict = checker::check(&history, self.spec.session_timeout);
        if !errors.is_empty() {
            return Err(TestkitError::Timeout { what: errors.join("; "), waited: drain });
        }
        Ok((history, verdict))
    }
}

/// Produces `rate` generated messages a second until told to stop (each
/// round produces what the clock says is owed, so slow round trips do not
/// lower the rate); returns how many went to each partition.
fn produce(kafka: Arc<Mutex<KafkaCluster>>, rate: u64) -> Producer {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut counts: BTreeMap<i32, u64> = BTreeMap::new();
        let started = tokio::time::Instant::now();
        let mut produced = 0u64;
        let mut tick = tokio::time::interval(PRODUCE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => return Ok(counts),
            }
            let owed = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            let n = owed.saturating_sub(produced).max(1);
            let summary = kafka.lock().await.produce_generated(TOPIC, n, 100).await?;
            produced += n;
            for (p, n) in summary.counts {
                *counts.entry(p.0).or_default() += n;
            }
        }
    });
    (stop, task)
}
