//! There is one snapshot builder; what differs between the driver, the
//! simulator and `inspect` is how each fetches the raw znodes. This property
//! test materialises random groups — valid, damaged and foreign znodes
//! alike — in a real ZooKeeper and in the simulator's model, reads them
//! through every adapter, and requires the same read from each.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use zookeeper_client::{Acls, Client, CreateMode};

use crate::coord::zk::{run, Watches, Watching};
use crate::ids::GroupId;
use crate::protocol::{GroupRead, ReadGroup};
use crate::sim::ZkModel;
use crate::testkit::ZooKeeper;
use crate::znode::Flavour;

/// A group's znodes: (path, payload), parents first.
#[derive(Debug, Clone)]
struct Tree {
    flavour: Flavour,
    znodes: Vec<(String, Vec<u8>)>,
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"\xff\xfe not utf-8".to_vec()),
        Just(b"{\"version\":1,\"subscription\":".to_vec()),
        "[a-z]{1,3}".prop_map(String::into_bytes),
    ]
}

fn member(topics: Vec<&'static str>) -> impl Strategy<Value = Vec<u8>> {
    let t = topics.clone();
    prop_oneof![
        3 => prop::sample::select(topics.clone()).prop_map(|t| t.as_bytes().to_vec()),
        3 => prop::sample::subsequence(t, 1..=topics.len()).prop_map(|ts| {
            let subs: Vec<String> = ts.iter().map(|t| format!("\"{t}\":1")).collect();
            format!(r#"{{"version":1,"subscription":{{{}}},"pattern":"static","timestamp":"1"}}"#, subs.join(",")).into_bytes()
        }),
        1 => Just(br#"{"version":1,"subscription":{"t|u":1},"pattern":"white_list","timestamp":"1"}"#.to_vec()),
        1 => payload(),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    let topics = vec!["t", "u", "v"];
    (
        prop::bool::ANY,
        prop::collection::vec((1..4i32, prop::bool::weighted(0.9)), 3),
        prop::collection::vec(member(topics.clone()), 0..5),
        prop::collection::vec((0..3usize, 0..4i32, 0..5usize, prop::bool::weighted(0.85), 0..3u8), 0..8),
        prop::collection::vec(prop::bool::weighted(0.8), 12),
    )
        .prop_map(move |(scala, regs, members, owners, states)| {
            let flavour = if scala { Flavour::Scala } else { Flavour::Pykafka };
            let mut znodes: Vec<(String, Vec<u8>)> = vec![
                ("/brokers".into(), vec![]),
                ("/brokers/ids".into(), vec![]),
                ("/brokers/topics".into(), vec![]),
                ("/consumers".into(), vec![]),
                ("/consumers/g".into(), vec![]),
                ("/consumers/g/ids".into(), vec![]),
                ("/consumers/g/owners".into(), vec![]),
            ];
            for (i, (parts, ok)) in regs.iter().enumerate() {
                let t = topics[i];
                let ps: Vec<String> = (0..*parts).map(|p| format!("\"{p}\":[1]")).collect();
                let reg =
                    if *ok { format!(r#"{{"version":1,"partitions":{{{}}}}}"#, ps.join(",")) } else { "{".into() };
                znodes.push((format!("/brokers/topics/{t}"), reg.into_bytes()));
                znodes.push((format!("/brokers/topics/{t}/partitions"), vec![]));
                for p in 0..*parts {
                    znodes.push((format!("/brokers/topics/{t}/partitions/{p}"), vec![]));
                    match states[(i * 4 + p as usize) % states.len()] {
                        true => znodes.push((
                            format!("/brokers/topics/{t}/partitions/{p}/state"),
                            format!(
                                r#"{{"controller_epoch":1,"leader":{},"version":1,"leader_epoch":0,"isr":[1]}}"#,
                                1 + p % 2
                            )
                            .into_bytes(),
                        )),
                        false if p % 2 == 0 => {
                            znodes.push((format!("/brokers/topics/{t}/partitions/{p}/state"), b"x".to_vec()))
                        }
                        false => {}
                    }
                }
                znodes.push((format!("/consumers/g/owners/{t}"), vec![]));
                znodes.push((format!("/consumers/g/owners/b'{t}'"), vec![]));
            }
            for (i, bytes) in members.into_iter().enumerate() {
                znodes.push((format!("/consumers/g/ids/m{i}"), bytes));
            }
            for (t, p, who, valid_name, spelling) in owners {
                let dir = if spelling == 1 { format!("b'{}'", topics[t]) } else { topics[t].to_owned() };
                let name = match (flavour, valid_name) {
                    (Flavour::Scala, true) => p.to_string(),
                    (Flavour::Pykafka, true) => format!("{}-{p}", 1 + p % 2),
                    (_, false) => format!("x-{p}-y"),
                };
                let owner = if who == 4 { "\u{0}".to_owned() } else { format!("m{who}") };
                let data = if flavour == Flavour::Scala { format!("{owner}-0") } else { owner };
                let path = format!("/consumers/g/owners/{dir}/{name}");
                if !znodes.iter().any(|(p, _)| *p == path) {
                    znodes.push((path, data.into_bytes()));
                }
            }
            Tree { flavour, znodes }
        })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt"))
}

fn zookeeper() -> &'static (ZooKeeper, String) {
    static ZK: OnceLock<(ZooKeeper, String)> = OnceLock::new();
    ZK.get_or_init(|| {
        let zk = runtime().block_on(ZooKeeper::standalone()).expect("a real ZooKeeper (Debian package `zookeeper`)");
        let connect = zk.connect_string();
        (zk, connect)
    })
}

/// Creates the tree under a chroot of its own; returns a client rooted there.
async fn materialise(connect: &str, case: usize, tree: &Tree) -> Client {
    let root = crate::testkit::connect(connect, std::time::Duration::from_secs(10)).await.expect("connect");
    let chroot = format!("/case{case}");
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    root.create(&chroot, &[], &persistent).await.expect("chroot");
    let zk = crate::testkit::connect(&format!("{connect}{chroot}"), std::time::Duration::from_secs(10))
        .await
        .expect("connect");
    for (path, data) in &tree.znodes {
        zk.create(path, data, &persistent).await.expect("create");
    }
    zk
}

fn model(tree: &Tree) -> ZkModel {
    let mut model = ZkModel::default();
    for (path, data) in &tree.znodes {
        model.create(None, &[(path.clone(), data.clone())], false).expect("create in the model");
    }
    model
}

/// Creation zxids differ between a server and the model; their order is
/// what the protocol uses. Replaces each by its rank.
fn normalised(mut read: GroupRead) -> GroupRead {
    let mut zxids: Vec<i64> = read.listing.owners.iter().map(|o| o.czxid).collect();
    zxids.sort_unstable();
    zxids.dedup();
    let rank: BTreeMap<i64, i64> = zxids.iter().enumerate().map(|(i, z)| (*z, i as i64)).collect();
    for o in &mut read.listing.owners {
        o.czxid = rank[&o.czxid];
    }
    for records in read.snapshot.owners.values_mut() {
        for r in records {
            r.czxid = rank[&r.czxid];
        }
    }
    read
}

fn cases() -> u32 {
    std::env::var("ZKB_PROTOCOL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_adapter_reads_the_same_group(tree in tree()) {
        static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let group = GroupId::new("g").unwrap();
        let connect = &zookeeper().1;
        let (driver, inspect, inspect_flavour) = runtime().block_on(async {
            let zk = materialise(connect, case, &tree).await;
            let (watches, (changed, _rx)) = (Watches::default(), tokio::sync::mpsc::unbounded_channel());
            let driver = run(&zk, ReadGroup::new(group.clone(), tree.flavour), Watching::Stale(&watches, &changed)).await;
            let inspect = run(&zk, ReadGroup::inspect(group.clone()), Watching::Off).await;
            let flavour = inspect.as_ref().map(|r| r.flavour).unwrap_or(tree.flavour);
            let as_inspected = run(&zk, ReadGroup::new(group.clone(), flavour), Watching::Off).await;
            (driver, (inspect, as_inspected), flavour)
        });
        let model = model(&tree);
        let sim = crate::sim::read_group(&model, ReadGroup::new(group.clone(), tree.flavour));
        let driver = driver.map(normalised).expect("the driver reads the group");
        let sim = sim.map(normalised).expect("the simulator reads the group");
        prop_assert_eq!(&driver, &sim, "driver and simulator");
        // Inspect also lists /brokers/topics whatever the flavour: its raw
        // listing may hold more; what it builds must be the same.
        let (inspect, as_inspected) = inspect;
        let inspect = inspect.map(normalised).expect("inspect reads the group");
        let as_inspected = as_inspected.map(normalised).expect("the driver reads the group");
        prop_assert_eq!(
            (inspect.flavour, &inspect.snapshot, &inspect.skipped),
            (as_inspected.flavour, &as_inspected.snapshot, &as_inspected.skipped),
            "inspect, flavour {:?}",
            inspect_flavour
        );
    }

    /// The driver's registration cache: after members and owners are
    /// deleted, recreated with other payloads or (against the rules)
    /// rewritten in place, a read served partly from the cache equals a
    /// fresh one.
    #[test]
    fn a_cached_read_equals_a_fresh_one_after_registrations_change(
        tree in tree(),
        changes in prop::collection::vec((0..3u8, 0..16usize, "[a-z]{1,3}"), 1..6),
    ) {
        static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1_000_000);
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let group = GroupId::new("g").unwrap();
        let connect = &zookeeper().1;
        let registrations: Vec<String> = tree
            .znodes
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| p.starts_with("/consumers/g/ids/") || p.matches('/').count() == 5 && p.starts_with("/consumers/g/owners/"))
            .collect();
        prop_assume!(!registrations.is_empty());
        let (cached, fresh, hits) = runtime().block_on(async {
            let zk = materialise(connect, case, &tree).await;
            let (watches, (changed, _rx)) = (Watches::default(), tokio::sync::mpsc::unbounded_channel());
            let read = || run(&zk, ReadGroup::new(group.clone(), tree.flavour), Watching::Stale(&watches, &changed));
            read().await.expect("first read");
            let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
            for (kind, i, data) in &changes {
                let path = &registrations[i % registrations.len()];
                let data = data.as_bytes();
                match kind {
                    0 => {
                        let _ = zk.delete(path, None).await;
                    }
                    1 => {
                        let _ = zk.delete(path, None).await;
                        zk.create(path, data, &persistent).await.expect("recreate");
                    }
                    _ => {
                        if zk.set_data(path, data, None).await.is_err() {
                            zk.create(path, data, &persistent).await.expect("create");
                        }
                    }
                }
            }
            let cached = read().await;
            let fresh = run(&zk, ReadGroup::new(group.clone(), tree.flavour), Watching::Off).await;
            (cached, fresh, watches.cached())
        });
        let cached = cached.map(normalised).expect("the cached read");
        let fresh = fresh.map(normalised).expect("the fresh read");
        prop_assert_eq!(&cached, &fresh, "cached and fresh reads differ ({} cached entries)", hits);
    }
}
