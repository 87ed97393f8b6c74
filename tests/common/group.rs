//! Helpers for group tests: fast-timing members, an owner sampler, and the
//! expected assignment.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use zkbalance::assign::{assign, Assignment, GroupShape, Strategy};
use zkbalance::coord::{AssignmentView, GroupBuilder, GroupMember};
use zkbalance::znode::{Flavour, OwnerName, TopicSpelling};
use zkbalance::{GroupId, MemberId, PartitionId, TopicName, TopicPartition};
use zookeeper_client::Client;

pub const SESSION: Duration = Duration::from_millis(2000);

pub fn builder(zk: &str, group: &str, topic: &str) -> GroupBuilder {
    fast(zk, group).topic(topic)
}

/// A member with the fast test timings and no subscription yet.
pub fn fast(zk: &str, group: &str) -> GroupBuilder {
    GroupBuilder::default()
        .zookeeper(zk)
        .group(group)
        .session_timeout(SESSION)
        .coalesce(Duration::from_millis(20))
        .claim_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .reconcile_interval(Duration::from_secs(2))
        .revoke_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
}

pub async fn join(zk: &str, group: &str, topic: &str) -> GroupMember {
    builder(zk, group, topic).join().await.expect("join the group")
}

/// One owner znode as read: partition, member, path, creation zxid.
type OwnerRead = (i32, String, String, i64);

async fn owner_reads(zk: &Client, group: &str, topic: &str) -> Vec<OwnerRead> {
    let g = GroupId::new(group).unwrap();
    let t = TopicName::new(topic).unwrap();
    let mut out = Vec::new();
    for spelling in TopicSpelling::ALL {
        let dir = zkbalance::znode::layout::owner_dir(&g, &t, spelling);
        let Ok(children) = zk.list_children(&dir).await else { continue };
        for child in children {
            let Ok(name) = OwnerName::parse(Flavour::Pykafka, &dir, &child) else { continue };
            let path = format!("{dir}/{child}");
            if let Ok((data, stat)) = zk.get_data(&path).await {
                out.push((name.partition().0, String::from_utf8_lossy(&data).into_owned(), path, stat.czxid));
            }
        }
    }
    out
}

/// Owner znodes of a pykafka-flavour group: partition → owning members.
pub async fn owners(zk: &Client, group: &str, topic: &str) -> BTreeMap<i32, BTreeSet<String>> {
    let mut out: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    for (p, member, _, _) in owner_reads(zk, group, topic).await {
        out.entry(p).or_default().insert(member);
    }
    out
}

/// Partitions owned by two members at one instant. Reads are not atomic,
/// so a candidate counts only if every znode involved still exists, with
/// the same creation zxid, after all were read: then all were alive at once.
async fn double_owners(zk: &Client, group: &str, topic: &str) -> Vec<String> {
    let reads = owner_reads(zk, group, topic).await;
    let mut by_partition: BTreeMap<i32, Vec<&OwnerRead>> = BTreeMap::new();
    for r in &reads {
        by_partition.entry(r.0).or_default().push(r);
    }
    let mut out = Vec::new();
    for (p, rs) in by_partition {
        let members: BTreeSet<&String> = rs.iter().map(|r| &r.1).collect();
        if members.len() < 2 {
            continue;
        }
        let mut alive = true;
        for r in &rs {
            alive &= zk.check_stat(&r.2).await.ok().flatten().is_some_and(|s| s.czxid == r.3);
        }
        if alive {
            out.push(format!("partition {p} owned by {members:?}"));
        }
    }
    out
}

/// Members' views, by member id.
type Views = Arc<parking_lot::Mutex<Vec<(String, watch::Receiver<AssignmentView>)>>>;

/// Samples owner znodes and the members' deliverable sets until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    pub samples: Arc<AtomicU64>,
    views: Views,
    task: tokio::task::JoinHandle<Vec<String>>,
}

/// Members delivering the same partition at once. Each view is read twice;
/// only views unchanged between the reads (so held across the window) and
/// not suspended are compared.
fn double_deliveries(views: &[(String, watch::Receiver<AssignmentView>)]) -> Vec<String> {
    let first: Vec<AssignmentView> = views.iter().map(|(_, v)| v.borrow().clone()).collect();
    let second: Vec<AssignmentView> = views.iter().map(|(_, v)| v.borrow().clone()).collect();
    let mut seen: BTreeMap<TopicPartition, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, (id, _)) in views.iter().enumerate() {
        if first[i] != second[i] || second[i].suspended {
            continue;
        }
        for tp in &second[i].partitions {
            if let Some(other) = seen.insert(tp.clone(), id) {
                out.push(format!("{tp} delivered by {other} and {id}"));
            }
        }
    }
    out
}

impl Sampler {
    pub fn start(zk: Client, group: &str, topic: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(AtomicU64::new(0));
        let views: Views = Default::default();
        let (s, n, g, t, v) =
            (Arc::clone(&stop), Arc::clone(&samples), group.to_owned(), topic.to_owned(), Arc::clone(&views));
        let task = tokio::spawn(async move {
            let mut violations = Vec::new();
            while !s.load(Ordering::Relaxed) {
                violations.extend(double_owners(&zk, &g, &t).await);
                let current = v.lock().clone();
                violations.extend(double_deliveries(&current));
                n.fetch_add(1, Ordering::Relaxed);
            }
            violations
        });
        Sampler { stop, samples, views, task }
    }

    /// Also watch what `member` delivers.
    pub fn watch(&self, member: &GroupMember) {
        self.views.lock().push((member.id().to_string(), member.assignment()));
    }

    /// Stops and returns the sample count and the violations seen.
    pub async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let violations = self.task.await.expect("sampler task");
        (self.samples.load(Ordering::Relaxed), violations)
    }
}

/// What pykafka range assigns `members` over `partitions` (all led by
/// `leaders[p]`): member id → partitions.
pub fn expected(members: &[&MemberId], topic: &str, leaders: &BTreeMap<i32, i32>) -> BTreeMap<String, BTreeSet<i32>> {
    let t = TopicName::new(topic).unwrap();
    let mut shape = GroupShape::default();
    for m in members {
        shape.add_member((*m).clone(), [(t.clone(), 1)]);
    }
    shape.add_topic(t, leaders.iter().map(|(p, l)| (PartitionId(*p), Some(zkbalance::BrokerId(*l)))));
    let a: Assignment = assign(Strategy::PykafkaRange, &shape, &Assignment::new()).unwrap();
    let mut out: BTreeMap<String, BTreeSet<i32>> = members.iter().map(|m| (m.to_string(), BTreeSet::new())).collect();
    for (tp, slot) in a {
        out.entry(slot.member.to_string()).or_default().insert(tp.partition.0);
    }
    out
}

/// Owner znodes as member → partitions.
pub async fn by_member(zk: &Client, group: &str, topic: &str) -> BTreeMap<String, BTreeSet<i32>> {
    let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (p, who) in owners(zk, group, topic).await {
        for m in who {
            out.entry(m).or_default().insert(p);
        }
    }
    out
}

pub fn partitions(view: &AssignmentView) -> BTreeSet<i32> {
    view.partitions.iter().map(|tp: &TopicPartition| tp.partition.0).collect()
}

/// Waits until the owner znodes equal `want` (members with no partitions
/// omitted), failing after `within` with both sides printed.
pub async fn converge(zk: &Client, group: &str, topic: &str, want: &BTreeMap<String, BTreeSet<i32>>, within: Duration) {
    let want: BTreeMap<String, BTreeSet<i32>> =
        want.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = by_member(zk, group, topic).await;
        if got == want {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("no convergence within {within:?}:\n want {want:?}\n  got {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A ZooKeeper and a one-broker mock Kafka holding `topic`.
pub async fn topic_cluster(
    topic: &str,
    partitions: i32,
) -> (zkbalance::testkit::ZooKeeper, zkbalance::testkit::KafkaCluster) {
    let zk = super::zookeeper().await;
    let mut kafka = super::kafka(&zk.connect_string(), 1).await;
    kafka.create_topic(topic, partitions, 1).await.expect("create the topic");
    (zk, kafka)
}
