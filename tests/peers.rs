//! Sharing a Scala-layout group with other clients, as they behave in the
//! wild (COMPAT.md, "Other clients of the Scala layout"): a peer that
//! registers in two requests, wildcard maps with several keys, bare-id
//! owner payloads, members on several topics and on wildcards. Each peer is
//! driven with its client's exact znode writes; the split it computes is
//! Scala range written out independently (`testkit::peer::scala_range`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::group::{fast, SESSION};
use common::within;
use tokio::time::Instant;
use zkbalance::balance::BalanceError;
use zkbalance::coord::{GroupBuilder, GroupEvent};
use zkbalance::testkit::peer::{owner_payloads, scala_range, ScalaLayoutPeer};
use zkbalance::znode::Flavour;
use zookeeper_client::Client;

fn scala(zk: &str, group: &str, id: &str) -> GroupBuilder {
    fast(zk, group).flavour(Flavour::Scala).member_id(id)
}

/// The owners Scala range gives: partition → `<member>-<thread>`, except
/// for `bare` members, whose owner payload is their bare id (kafka-node).
fn expected(
    members: &[(&str, &[(&str, u32)])],
    partitions: &[(&str, i32)],
    bare: &[&str],
) -> BTreeMap<String, BTreeMap<i32, String>> {
    let members: BTreeMap<String, BTreeMap<String, u32>> = members
        .iter()
        .map(|(m, subs)| (m.to_string(), subs.iter().map(|(t, n)| (t.to_string(), *n)).collect()))
        .collect();
    let partitions: BTreeMap<String, i32> = partitions.iter().map(|(t, n)| (t.to_string(), *n)).collect();
    let mut out = scala_range(&members, &partitions);
    for owners in out.values_mut() {
        for thread in owners.values_mut() {
            if let Some(b) = bare.iter().find(|b| thread.strip_prefix(**b).is_some_and(|r| r.starts_with('-'))) {
                *thread = b.to_string();
            }
        }
    }
    out
}

/// Waits until every topic's owner znodes are exactly `want`.
async fn converge(zk: &Client, group: &str, want: &BTreeMap<String, BTreeMap<i32, String>>, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut got = BTreeMap::new();
        for topic in want.keys() {
            got.insert(topic.clone(), owner_payloads(zk, group, topic).await);
        }
        if &got == want {
            return;
        }
        if Instant::now() >= deadline {
            panic!("owners did not converge within {limit:?}:\n want {want:?}\n  got {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The share of `peer` in `want`, per topic.
fn share(want: &BTreeMap<String, BTreeMap<i32, String>>, peer: &str) -> BTreeMap<String, BTreeSet<i32>> {
    want.iter()
        .map(|(t, owners)| (t.clone(), owners.iter().filter(|(_, o)| *o == peer).map(|(p, _)| *p).collect()))
        .collect()
}

async fn peer_claims(peer: &ScalaLayoutPeer, want: &BTreeMap<String, BTreeMap<i32, String>>) {
    for (topic, parts) in share(want, peer.id()) {
        peer.claim(&topic, &parts, peer.id().as_bytes(), Duration::from_secs(10)).await.expect("the peer claims");
    }
}

/// Two of our members hold a 6-partition topic; a kafka-node peer creates
/// its member znode empty and fills it `gap` later. While it cannot be
/// read our members must change nothing (they keep and deliver what they
/// own, claim nothing, and say they are blocked); once it can, the group
/// converges to the split that counts it.
async fn two_step_registration(gap: Duration) {
    let (zk, _kafka) = common::group::topic_cluster("t", 6).await;
    let connect = zk.connect_string();
    let group = "twostep";
    let (a, b) = ("twostep_a-1-aaaaaaaa", "twostep_b-1-bbbbbbbb");
    let ma = scala(&connect, group, a).topic("t").join().await.unwrap();
    let mb = scala(&connect, group, b).topic("t").join().await.unwrap();
    let observer = zkbalance::testkit::connect(&connect, SESSION).await.unwrap();
    let before = expected(&[(a, &[("t", 1)]), (b, &[("t", 1)])], &[("t", 6)], &[]);
    converge(&observer, group, &before, Duration::from_secs(10)).await;

    let id = "twostep_6f1c2d3e-0a1b-4c5d-8e9f-001122334455";
    let peer = ScalaLayoutPeer::connect(&connect, group, id, Duration::from_secs(30)).await.unwrap();
    peer.register_empty().await.unwrap();
    let mut view = ma.assignment();
    within("member a to report itself blocked by the empty member znode", Duration::from_secs(5), async {
        while view.borrow().blocked_by.is_empty() {
            view.changed().await.expect("member running");
        }
    })
    .await;
    assert_eq!(view.borrow().blocked_by[0].member, id);
    // Sampled through the gap: nothing moves.
    let gap_end = Instant::now() + gap;
    while Instant::now() < gap_end {
        assert_eq!(
            owner_payloads(&observer, group, "t").await,
            before["t"],
            "ownership changed while the peer was unreadable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ma.metrics().blocked_by == 1 && mb.metrics().blocked_by == 1, "the gauge counts the unreadable member");

    let registration = r#"{"version":1,"subscription":{"t":1},"pattern":"static","timestamp":"1"}"#;
    let after = expected(&[(a, &[("t", 1)]), (b, &[("t", 1)]), (id, &[("t", 1)])], &[("t", 6)], &[id]);
    let filled = Instant::now();
    peer.fill(registration.as_bytes()).await.unwrap();
    peer_claims(&peer, &after).await;
    converge(&observer, group, &after, Duration::from_secs(10)).await;
    // A figure, not an assertion (timings belong to benches/peers.rs).
    eprintln!("gap {gap:?}: converged {:?} after the registration was filled", filled.elapsed());
    assert!(ma.assignment().borrow().blocked_by.is_empty(), "unblocked once readable");
    peer.close();
    ma.stop().await.unwrap();
    mb.stop().await.unwrap();
}

#[tokio::test]
async fn a_peer_filling_its_member_znode_300_ms_late_is_waited_for() {
    two_step_registration(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_peer_filling_its_member_znode_3_s_late_is_waited_for() {
    two_step_registration(Duration::from_secs(3)).await;
}

/// kafka-node given two topics writes a wildcard with one key per topic;
/// the Scala consumer reads the first key as the filter. Our member on `t`
/// and that peer must compute the same split of `t`.
#[tokio::test]
async fn a_wildcard_peer_with_several_keys_agrees_on_the_split() {
    let (zk, mut kafka) = common::group::topic_cluster("t", 5).await;
    kafka.create_topic("u", 3, 1).await.unwrap();
    let connect = zk.connect_string();
    let group = "wild";
    let ours = "wild_host-1-0000abcd";
    let m = scala(&connect, group, ours).topic("t").join().await.unwrap();
    let id = "wild_0b7e5c1a-2222-4333-8444-555566667777";
    let peer = ScalaLayoutPeer::connect(&connect, group, id, Duration::from_secs(30)).await.unwrap();
    peer.register(br#"{"version":1,"subscription":{"t":1,"u":1},"pattern":"white_list","timestamp":"1"}"#)
        .await
        .unwrap();
    // The peer's filter is "t": it consumes t only, with one stream.
    let want = expected(&[(ours, &[("t", 1)]), (id, &[("t", 1)])], &[("t", 5)], &[id]);
    peer_claims(&peer, &want).await;
    let observer = zkbalance::testkit::connect(&connect, SESSION).await.unwrap();
    converge(&observer, group, &want, Duration::from_secs(10)).await;
    assert!(owner_payloads(&observer, group, "u").await.is_empty(), "nobody subscribes to u");
    let mine: BTreeSet<i32> = m.assignment().borrow().partitions.iter().map(|tp| tp.partition.0).collect();
    assert_eq!(mine, share(&want, &format!("{ours}-0"))["t"]);
    peer.close();
    m.stop().await.unwrap();
}

/// Our member on `t,u`, another on a whitelist, and a peer on `t` only:
/// each topic split by Scala range among its subscribers; a topic created
/// later that the whitelist matches joins the assignment.
#[tokio::test]
async fn members_on_several_topics_and_wildcards_split_each_topic_as_scala_does() {
    let (zk, mut kafka) = common::group::topic_cluster("t", 6).await;
    kafka.create_topic("u", 4, 1).await.unwrap();
    let connect = zk.connect_string();
    let group = "multi";
    let (a, w) = ("multi_a-1-0000000a", "multi_w-1-0000000b");
    let ma = scala(&connect, group, a).topic("t").topic_streams("u", 2).join().await.unwrap();
    let mw = scala(&connect, group, w).whitelist("t|u|v").join().await.unwrap();
    let id = "multi_9d8c7b6a-1111-4222-8333-444455556666";
    let peer = ScalaLayoutPeer::connect(&connect, group, id, Duration::from_secs(30)).await.unwrap();
    peer.register(br#"{"version":1,"subscription":{"t":1},"pattern":"static","timestamp":"1"}"#).await.unwrap();
    let want = expected(
        &[(a, &[("t", 1), ("u", 2)]), (w, &[("t", 1), ("u", 1)]), (id, &[("t", 1)])],
        &[("t", 6), ("u", 4)],
        &[id],
    );
    peer_claims(&peer, &want).await;
    let observer = zkbalance::testkit::connect(&connect, SESSION).await.unwrap();
    converge(&observer, group, &want, Duration::from_secs(10)).await;

    // A new topic matching the whitelist: only the whitelist member takes it.
    kafka.create_topic("v", 3, 1).await.unwrap();
    let mut with_v = want.clone();
    with_v.insert("v".into(), (0..3).map(|p| (p, format!("{w}-0"))).collect());
    converge(&observer, group, &with_v, Duration::from_secs(10)).await;
    peer.close();
    ma.stop().await.unwrap();
    mw.stop().await.unwrap();
}

/// Garbage in a member znode: the group keeps consuming what it owns,
/// claims nothing a reading of the garbage might give someone else, says
/// so (events, metrics, describe), rebalances the moment the znode goes,
/// and loses nothing.
#[tokio::test]
async fn garbage_in_a_member_znode_blocks_the_rebalance_loudly_and_loses_nothing() {
    use common::consumer::{consumer, Ledger, Running};
    let (zk, mut kafka) = common::group::topic_cluster("t", 4).await;
    let connect = zk.connect_string();
    let group = "garbage";
    let start = |id: &str| {
        consumer(&connect, group, "t")
            .flavour(Flavour::Scala)
            .member_id(id)
            .offset_reset("earliest".parse().unwrap())
            .auto_commit(Some(Duration::from_millis(200)))
            .start()
    };
    let ledger = Ledger::default();
    let a = Running::spawn("a", start("garbage_a-1-0000000a").await.unwrap(), ledger.clone(), "t");
    kafka.produce_generated("t", 200, 16).await.unwrap();
    ledger.wait_for(200, Duration::from_secs(20)).await;

    let junk = ScalaLayoutPeer::connect(&connect, group, "garbage_junk", Duration::from_secs(30)).await.unwrap();
    junk.register(b"\xff\xfe{not json").await.unwrap();
    let b_consumer = start("garbage_b-1-0000000b").await.unwrap();
    let mut b_view = b_consumer.assignment();
    let b = Running::spawn("b", b_consumer, ledger.clone(), "t");
    within("member b to report the garbage", Duration::from_secs(5), async {
        while b_view.borrow().blocked_by.is_empty() {
            b_view.changed().await.expect("member running");
        }
    })
    .await;
    let observer = zkbalance::inspect::connect(&connect, &Default::default(), Duration::from_secs(5)).await.unwrap();
    let storage = zkbalance::offsets::OffsetStorage::Zookeeper;
    let d = zkbalance::inspect::describe_group(&observer, group, storage, None, &[])
        .await
        .expect("describe tolerates the garbage");
    let junk_row = d.members.iter().find(|m| m.id == "garbage_junk").expect("the garbage member is listed");
    assert!(junk_row.problem.is_some(), "{junk_row:?}");
    assert!(d.problems.iter().any(|p| p.znode.ends_with("/ids/garbage_junk")), "{:?}", d.problems);
    assert_eq!(d.partitions.iter().filter(|p| p.owner.is_some()).count(), 4, "a still owns everything");

    // Consumption goes on while blocked: a delivers all it owns.
    kafka.produce_generated("t", 200, 16).await.unwrap();
    ledger.wait_for(400, Duration::from_secs(20)).await;
    assert!(b_view.borrow().partitions.is_empty(), "b claimed nothing while the group was blocked");

    junk.close();
    within("b to get its share once the garbage is gone", Duration::from_secs(10), async {
        while b_view.borrow().partitions.len() != 2 {
            b_view.changed().await.expect("member running");
        }
    })
    .await;
    kafka.produce_generated("t", 200, 16).await.unwrap();
    ledger.wait_for(600, Duration::from_secs(20)).await;
    let (ma, mb) = (a.stop().await, b.stop().await);
    assert_eq!(ledger.missing(600), Vec::<u64>::new(), "nothing lost");
    assert!(ma.group.blocked_reports >= 1 && mb.group.blocked_reports >= 1, "{:?} {:?}", ma.group, mb.group);
    assert!(ledger.all().iter().any(|(_, d)| d.who == "b"), "b consumed after the rebalance");
}

/// pykafka reads a member znode's payload as the topic it consumes, so an
/// unreadable one is simply not a participant. Our members in a pykafka
/// group wait for it up to `unreadable_bound`, then count it out as pykafka
/// does — and say so (an error event, a counter).
#[tokio::test]
async fn past_the_bound_a_pykafka_group_counts_an_unreadable_member_out_loudly() {
    let (zk, _kafka) = common::group::topic_cluster("t", 4).await;
    let connect = zk.connect_string();
    let group = "leftout";
    let member = || fast(&connect, group).topic("t").unreadable_bound(Duration::from_millis(600));
    let mut a = member().join().await.unwrap();
    let mut events = a.events();
    let junk = ScalaLayoutPeer::connect(&connect, group, "junk", Duration::from_secs(30)).await.unwrap();
    junk.register(b"\xff\xfe").await.unwrap();
    let b = member().join().await.unwrap();
    within("member a to report the unreadable member counted out", Duration::from_secs(10), async {
        loop {
            match events.recv().await.expect("member running") {
                GroupEvent::Error(BalanceError::UnreadableLeftOut { znode, .. }) => {
                    assert_eq!(znode.member, "junk");
                    return;
                }
                _ => continue,
            }
        }
    })
    .await;
    drop(events);
    let observer = zkbalance::testkit::connect(&connect, SESSION).await.unwrap();
    let want = common::group::expected(&[a.id(), b.id()], "t", &[(0, 1), (1, 1), (2, 1), (3, 1)].into());
    common::group::converge(&observer, group, "t", &want, Duration::from_secs(10)).await;
    assert!(a.metrics().unreadable_left_out >= 1 && b.metrics().unreadable_left_out >= 1);
    assert_eq!((a.metrics().blocked_by, b.metrics().blocked_by), (0, 0), "no longer waiting");
    junk.close();
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
