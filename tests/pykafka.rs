//! A real pykafka 2.8 `BalancedConsumer` in a group with our members. The
//! oracle is pykafka itself: the owner znodes it writes and the partitions
//! it reports after each rebalance must equal what our members computed,
//! through joins and leaves on either side, with partition leaders spread
//! over three brokers (pykafka sorts partitions by a string that holds the
//! leader).
//!
//! Needs pykafka 2.8 in the virtualenv `target/peers/py` (the test command
//! installs it), or a Python that has it in `ZKB_PYKAFKA_PYTHON`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::group::{converge, expected, join, partitions, SESSION};
use common::peer_process::PeerProcess;
use common::{kafka, within, zookeeper};
use tokio::process::Command;
use zkbalance::MemberId;
use zookeeper_client::Client;

const GROUP: &str = "pyk";
const TOPIC: &str = "t";

fn python() -> PathBuf {
    let python = std::env::var_os("ZKB_PYKAFKA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/py/bin/python"));
    assert!(
        python.exists(),
        "no Python with pykafka 2.8 at {}: run scripts/test (it installs it), or \
         `python3 -m venv target/peers/py && target/peers/py/bin/pip install 'setuptools<81' pykafka==2.8.0`",
        python.display()
    );
    python
}

/// A pykafka member process.
fn pykafka(zk: &str) -> PeerProcess {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pykafka_member.py");
    let mut command = Command::new(python());
    command.arg(script).args([zk, GROUP, TOPIC]);
    PeerProcess::spawn("pykafka", command)
}

/// Waits for pykafka to report owning exactly `want`.
async fn owns(py: &mut PeerProcess, want: &BTreeSet<i32>) {
    py.reports(want, |v| Some(v["owned"].as_array()?.iter().map(|p| p.as_i64().unwrap() as i32).collect())).await;
}

/// The member ids registered in the group, once there are `n`.
async fn members(zk: &Client, n: usize) -> BTreeSet<String> {
    let dir = format!("/consumers/{GROUP}/ids");
    within(&format!("{n} members to register"), Duration::from_secs(30), async {
        loop {
            let ids: BTreeSet<String> = zk.list_children(&dir).await.unwrap_or_default().into_iter().collect();
            if ids.len() == n {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pykafka_and_our_members_split_a_topic_the_same_way() {
    let zk = zookeeper().await;
    let connect = zk.connect_string();
    let mut cluster = kafka(&connect, 3).await;
    cluster.create_topic(TOPIC, 6, 2).await.unwrap();
    let leaders: BTreeMap<i32, i32> =
        cluster.partitions(TOPIC).unwrap().iter().map(|(p, m)| (p.0, m.leader.unwrap().0)).collect();
    let observer = zkbalance::testkit::connect(&connect, SESSION).await.unwrap();
    let ma = join(&connect, GROUP, TOPIC).await;
    let a = ma.id().clone();

    // pykafka joins: the two split the topic by pykafka's range.
    let mut py = pykafka(&connect);
    let ids = members(&observer, 2).await;
    let p = MemberId::new(ids.iter().find(|id| **id != a.to_string()).unwrap().clone()).unwrap();
    let want = expected(&[&a, &p], TOPIC, &leaders);
    converge(&observer, GROUP, TOPIC, &want, Duration::from_secs(30)).await;
    owns(&mut py, &want[&p.to_string()]).await;
    assert_eq!(partitions(&ma.assignment().borrow()), want[&a.to_string()]);

    // One of ours joins after it: three ways, everyone agreeing.
    let mb = join(&connect, GROUP, TOPIC).await;
    let b = mb.id().clone();
    let want = expected(&[&a, &b, &p], TOPIC, &leaders);
    converge(&observer, GROUP, TOPIC, &want, Duration::from_secs(30)).await;
    owns(&mut py, &want[&p.to_string()]).await;
    assert_eq!(partitions(&mb.assignment().borrow()), want[&b.to_string()]);

    // pykafka leaves: ours take its share.
    py.leave().await;
    let want = expected(&[&a, &b], TOPIC, &leaders);
    converge(&observer, GROUP, TOPIC, &want, Duration::from_secs(30)).await;
    ma.stop().await.unwrap();
    mb.stop().await.unwrap();
}
