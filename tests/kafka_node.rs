//! A real kafka-node 3.0.1 `HighLevelConsumer` — the last kafka-node with
//! ZooKeeper groups — in a Scala-layout group with our members. kafka-node
//! registers in two requests (empty, then the JSON), writes a `white_list`
//! with one key per topic it was given, and puts its bare member id in its
//! owner znodes; given topics `t,u` it writes `{"t": 1, "u": 1}`, which the
//! Scala consumer (and we) read as the filter `t`. Both sides must compute
//! the same split of `t`, through joins and leaves on either side.
//!
//! Needs Node.js and kafka-node 3.0.1 under `target/peers` (the test
//! command installs both), or in `ZKB_KAFKA_NODE_DIR`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::group::{builder, SESSION};
use common::peer_process::PeerProcess;
use common::within;
use tokio::process::Command;
use zkbalance::coord::{GroupBuilder, GroupMember};
use zkbalance::testkit::peer::owner_payloads;
use zkbalance::znode::Flavour;
use zookeeper_client::Client;

const GROUP: &str = "kn";

fn kafka_node_dir() -> PathBuf {
    let dir = std::env::var_os("ZKB_KAFKA_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers"));
    assert!(
        dir.join("node_modules/kafka-node/package.json").exists(),
        "kafka-node 3.0.1 is not installed in {}: run scripts/test (it installs it), or \
         `npm install --prefix target/peers kafka-node@3.0.1`",
        dir.display()
    );
    dir
}

/// A kafka-node member process on `topics`.
fn kafka_node(zk: &str, id: &str, topics: &str) -> PeerProcess {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/kafka_node_member.js");
    let mut command = Command::new("node");
    command.arg(script).args([zk, GROUP, id, topics]).env("KAFKA_NODE_DIR", kafka_node_dir());
    PeerProcess::spawn("kafka-node", command)
}

/// Waits for kafka-node to report owning exactly `want` of `t`.
async fn owns(node: &mut PeerProcess, want: &BTreeSet<i32>) {
    node.reports(want, |v| {
        (v["event"] == "rebalanced").then(|| {
            v["owned"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|tp| tp[0] == "t")
                .map(|tp| tp[1].as_i64().unwrap() as i32)
                .collect()
        })
    })
    .await;
}

fn ours(zk: &str, id: &str) -> GroupBuilder {
    builder(zk, GROUP, "t").flavour(Flavour::Scala).member_id(id)
}

async fn owners(zk: &Client) -> BTreeMap<i32, String> {
    owner_payloads(zk, GROUP, "t").await
}

async fn converge(zk: &Client, want: &[(&str, &[i32])]) {
    let want: BTreeMap<i32, String> =
        want.iter().flat_map(|(who, ps)| ps.iter().map(move |p| (*p, who.to_string()))).collect();
    let what = format!("owner znodes of t to be {want:?}");
    within(&what, Duration::from_secs(30), async {
        while owners(zk).await != want {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn mine(m: &GroupMember) -> BTreeSet<i32> {
    m.assignment().borrow().partitions.iter().map(|tp| tp.partition.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_node_and_our_members_split_a_topic_the_same_way() {
    let (zk, mut kafka) = common::group::topic_cluster("t", 6).await;
    kafka.create_topic("u", 2, 1).await.unwrap();
    let connect = zk.connect_string();
    let observer = zkbalance::testkit::connect(&connect, SESSION).await.unwrap();
    // Ids chosen so that kafka-node's order (bare ids) and Scala's
    // (`<id>-<thread>`) agree; they can differ only for ids one of which
    // extends the other with a character below '-'.
    let (a, c) = ("kn_a-1-0000000a", "kn_c-1-0000000c");
    let kn = "kn_b5e6f7a1c-1d2b-4c3d-9e8f-0a1b2c3d4e5f";
    let ma = ours(&connect, a).join().await.unwrap();
    let a0 = format!("{a}-0");
    converge(&observer, &[(&a0, &[0, 1, 2, 3, 4, 5])]).await;

    // kafka-node joins, on t and u: {"t": 1, "u": 1} — for us, filter t.
    let mut node = kafka_node(&connect, kn, "t,u");
    converge(&observer, &[(&a0, &[0, 1, 2]), (kn, &[3, 4, 5])]).await;
    owns(&mut node, &[3, 4, 5].into()).await;
    assert_eq!(mine(&ma), [0, 1, 2].into());
    let (registration, _) = observer.get_data(&format!("/consumers/{GROUP}/ids/{kn}")).await.unwrap();
    let registration = String::from_utf8(registration).unwrap();
    assert!(
        registration.contains(r#""subscription":{"t": 1, "u": 1}"#)
            && registration.contains(r#""pattern":"white_list""#),
        "kafka-node registers a wildcard with one key per topic: {registration}"
    );

    // One of ours joins after it: three ways, everyone agreeing.
    let mc = ours(&connect, c).join().await.unwrap();
    let c0 = format!("{c}-0");
    converge(&observer, &[(&a0, &[0, 1]), (kn, &[2, 3]), (&c0, &[4, 5])]).await;
    owns(&mut node, &[2, 3].into()).await;
    assert_eq!((mine(&ma), mine(&mc)), ([0, 1].into(), [4, 5].into()));

    // kafka-node leaves: ours take its share.
    node.leave().await;
    converge(&observer, &[(&a0, &[0, 1, 2]), (&c0, &[3, 4, 5])]).await;
    ma.stop().await.unwrap();
    mc.stop().await.unwrap();
}
