//! A mixed group: our member beside a pykafka peer that the test drives with
//! pykafka's exact znode writes (Python 3: owner directory `b'<topic>'`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::group::{by_member, converge, join, partitions, SESSION};
use common::{kafka, within, zookeeper};
use zookeeper_client::{Acls, Client, CreateMode};

/// pykafka's `decide_partitions_range`, written out independently of our
/// assignor: participants sorted as bytes, partitions sorted by the string
/// `"<topic>-<leader>-<id>"` (Python 3 formats the topic as `b'<topic>'`).
fn pykafka_decide(participants: &[String], me: &str, topic: &str, leaders: &BTreeMap<i32, i32>) -> BTreeSet<i32> {
    let mut parts: Vec<(String, i32)> = leaders.iter().map(|(p, l)| (format!("b'{topic}'-{l}-{p}"), *p)).collect();
    parts.sort();
    let mut participants = participants.to_vec();
    participants.sort();
    let idx = participants.iter().position(|p| p == me).unwrap();
    let (per, rem) = (parts.len() / participants.len(), parts.len() % participants.len());
    let start = per * idx + idx.min(rem);
    // pykafka: `0 if (idx + 1 > remainder_ppc) else 1`.
    let n = per + usize::from(idx < rem);
    parts[start..start + n].iter().map(|(_, p)| *p).collect()
}

/// One pass of a pykafka peer's rebalance: release what it should not own,
/// claim what it should (NodeExists: try again next pass).
async fn pykafka_pass(
    zk: &Client,
    me: &str,
    group: &str,
    topic: &str,
    leaders: &BTreeMap<i32, i32>,
    owned: &mut BTreeSet<i32>,
) {
    let ids = format!("/consumers/{group}/ids");
    let mut participants = Vec::new();
    for child in zk.list_children(&ids).await.unwrap() {
        if let Ok((data, _)) = zk.get_data(&format!("{ids}/{child}")).await {
            if data == topic.as_bytes() {
                participants.push(child);
            }
        }
    }
    let want = pykafka_decide(&participants, me, topic, leaders);
    let dir = format!("/consumers/{group}/owners/b'{topic}'");
    for p in owned.clone().difference(&want) {
        zk.delete(&format!("{dir}/{}-{p}", leaders[p]), None).await.unwrap();
        owned.remove(p);
    }
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    for p in want.difference(&owned.clone()) {
        if zk.create(&format!("{dir}/{}-{p}", leaders[p]), me.as_bytes(), &ephemeral).await.is_ok() {
            owned.insert(*p);
        }
    }
}

#[tokio::test]
async fn our_member_and_a_pykafka_peer_agree_on_the_split() {
    let zk = zookeeper().await;
    let mut kafka = kafka(&zk.connect_string(), 3).await;
    kafka.create_topic("mixed", 12, 2).await.unwrap();
    let leaders: BTreeMap<i32, i32> =
        kafka.partitions("mixed").unwrap().iter().map(|(p, m)| (p.0, m.leader.unwrap().0)).collect();

    // The pykafka peer joins first and takes everything, as pykafka does.
    let peer = zkbalance::testkit::connect(&zk.connect_string(), SESSION).await.unwrap();
    let peer_id = "pyhost:2c4f5a8e-1b7d-4e3a-9f60-7d8e9a0b1c2d".to_owned();
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    peer.mkdir("/consumers/gmix/ids", &persistent).await.unwrap();
    peer.mkdir("/consumers/gmix/owners/b'mixed'", &persistent).await.unwrap();
    peer.create(
        &format!("/consumers/gmix/ids/{peer_id}"),
        b"mixed",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let mut peer_owned = BTreeSet::new();
    pykafka_pass(&peer, &peer_id, "gmix", "mixed", &leaders, &mut peer_owned).await;
    assert_eq!(peer_owned.len(), 12);

    let ours = join(&zk.connect_string(), "gmix", "mixed").await;
    let our_id = ours.id().to_string();
    let participants = vec![peer_id.clone(), our_id.clone()];
    let peer_share = pykafka_decide(&participants, &peer_id, "mixed", &leaders);
    let our_share = pykafka_decide(&participants, &our_id, "mixed", &leaders);
    assert_eq!(peer_share.len() + our_share.len(), 12);

    // The peer rebalances as its watch would make it; ours waits for the
    // peer's releases through watches and claims its share.
    within("the split to settle", Duration::from_secs(10), async {
        loop {
            pykafka_pass(&peer, &peer_id, "gmix", "mixed", &leaders, &mut peer_owned).await;
            if peer_owned == peer_share && partitions(&ours.assignment().borrow()) == our_share {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let observer = zkbalance::testkit::connect(&zk.connect_string(), SESSION).await.unwrap();
    let want: BTreeMap<String, BTreeSet<i32>> =
        [(peer_id.clone(), peer_share.clone()), (our_id.clone(), our_share.clone())].into();
    converge(&observer, "gmix", "mixed", &want, Duration::from_secs(5)).await;
    // Ours are written in both spellings, so Python 2 and 3 peers see them.
    for p in &our_share {
        for dir in ["mixed", "b'mixed'"] {
            let path = format!("/consumers/gmix/owners/{dir}/{}-{p}", leaders[p]);
            let (data, _) = observer.get_data(&path).await.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(data, our_id.as_bytes());
        }
    }
    assert_eq!(by_member(&observer, "gmix", "mixed").await.len(), 2);
    ours.stop().await.unwrap();
}
