//! Group coordination against a real ZooKeeper, with topics registered by
//! the mock Kafka cluster's registrar.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::group::{self, by_member, converge, expected, join, partitions, Sampler, SESSION};
use common::{kafka, ok, within, zookeeper};
use zkbalance::coord::{CoordError, Ending, GroupEvent, GroupMember};
use zkbalance::testkit::{KafkaCluster, ZkLink};

fn leaders(kafka: &KafkaCluster, topic: &str) -> BTreeMap<i32, i32> {
    kafka.partitions(topic).unwrap().iter().map(|(p, m)| (p.0, m.leader.unwrap().0)).collect()
}

/// Waits for the member's assignment to have `n` partitions.
async fn owns(member: &GroupMember, n: usize, what: &str) {
    let mut view = member.assignment();
    within(what, Duration::from_secs(10), view.wait_for(|v| v.partitions.len() == n)).await.expect("member alive");
}

#[tokio::test]
async fn pykafka_701_a_waiting_member_does_not_stall_a_newcomer() {
    let (zk, kafka) = group::topic_cluster("idle", 8).await;
    let mut a = join(&zk.connect_string(), "g701", "idle").await;
    let mut a_events = a.events();
    // A's application: one worker per lease, each waiting for messages that
    // never come (the topic is idle), and for the lease to end.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let workers = tokio::spawn(async move {
        while let Some(event) = a_events.recv().await {
            if let GroupEvent::Assigned { leases, .. } = event {
                for mut lease in leases {
                    let (done, started) = (done_tx.clone(), started_tx.clone());
                    tokio::spawn(async move {
                        let waiting_since = Instant::now();
                        let _ = started.send(());
                        let ending = tokio::select! {
                            () = std::future::pending::<()>() => unreachable!(),
                            ending = lease.ended() => ending,
                        };
                        let _ = done.send((lease.topic_partition().partition.0, ending, waiting_since));
                    });
                }
            }
        }
    });
    owns(&a, 8, "A to own all 8 partitions").await;
    for _ in 0..8 {
        within("A's 8 workers to be waiting", Duration::from_secs(5), started_rx.recv()).await.unwrap();
    }

    let joined_at = Instant::now();
    let b = join(&zk.connect_string(), "g701", "idle").await;
    owns(&b, 4, "B to own its share").await;
    let took = joined_at.elapsed();
    eprintln!("pykafka #701: B owned its share {took:?} after joining");
    assert!(took < Duration::from_secs(1), "B owned its share after {took:?}; must be under 1 s");
    owns(&a, 4, "A to keep the other half").await;
    for _ in 0..4 {
        let (p, ending, since) = within("A's revoked workers", Duration::from_secs(2), done_rx.recv()).await.unwrap();
        assert_eq!(ending, Ending::Revoked, "partition {p}");
        assert!(since < joined_at, "A's worker for {p} was waiting all through B's join");
    }
    let c = zk.connect_string();
    let client = zkbalance::testkit::connect(&c, SESSION).await.unwrap();
    let want = expected(&[a.id(), b.id()], "idle", &leaders(&kafka, "idle"));
    converge(&client, "g701", "idle", &want, Duration::from_secs(5)).await;
    b.stop().await.unwrap();
    a.stop().await.unwrap();
    workers.abort();
}

#[tokio::test]
async fn churn_from_one_to_eight_members_never_double_owns_and_converges() {
    let zk = zookeeper().await;
    let mut kafka = kafka(&zk.connect_string(), 3).await;
    kafka.create_topic("busy", 32, 2).await.unwrap();
    let leaders = leaders(&kafka, "busy");
    let observer = zkbalance::testkit::connect(&zk.connect_string(), SESSION).await.unwrap();
    let sampler = Sampler::start(observer.clone(), "churn", "busy");
    let check =
        |members: &[GroupMember]| expected(&members.iter().map(|m| m.id()).collect::<Vec<_>>(), "busy", &leaders);

    // Members 0..4 connect directly; 4..8 through links so they can be killed.
    let mut members: Vec<GroupMember> = Vec::new();
    let mut links: Vec<Option<ZkLink>> = Vec::new();
    for i in 0..8 {
        let (connect, link) = if i < 4 {
            (zk.connect_string(), None)
        } else {
            let link = ok(ZkLink::new(&zk).await);
            (link.connect_string(), Some(link))
        };
        let member = join(&connect, "churn", "busy").await;
        sampler.watch(&member);
        members.push(member);
        links.push(link);
        converge(&observer, "churn", "busy", &check(&members), Duration::from_secs(10)).await;
    }
    // Graceful leaves.
    for _ in 0..2 {
        members.remove(0).stop().await.unwrap();
        links.remove(0);
        converge(&observer, "churn", "busy", &check(&members), Duration::from_secs(10)).await;
    }
    // Kills: the link is cut, so the session lingers until it expires, as
    // after a kill -9; the dead member's owner znodes hold until then. The
    // dead member stays in the sampler: it must suspend delivery before its
    // peers can take over.
    let mut dead = Vec::new();
    for _ in 0..2 {
        let victim = members.len() - 1;
        links[victim].as_ref().unwrap().cut();
        dead.push((members.remove(victim), links.remove(victim)));
        converge(&observer, "churn", "busy", &check(&members), SESSION * 3 + Duration::from_secs(5)).await;
    }
    let (samples, violations) = sampler.finish().await;
    eprintln!("churn: {samples} samples of owners and deliveries, {} violations", violations.len());
    assert!(samples > 50, "the sampler looked often ({samples} samples)");
    assert!(violations.is_empty(), "partitions with two owners: {violations:?}");
    for m in members {
        m.stop().await.unwrap();
    }
}

#[tokio::test]
async fn an_expired_member_drops_everything_at_once_and_rejoins() {
    let (zk, kafka) = group::topic_cluster("exp", 8).await;
    let link = ok(ZkLink::new(&zk).await);
    let mut a = join(&link.connect_string(), "gexp", "exp").await;
    let mut events = a.events();
    let b = join(&zk.connect_string(), "gexp", "exp").await;
    owns(&a, 4, "A's share").await;
    owns(&b, 4, "B's share").await;
    // Keep A's leases alive, as a worker would (and let go of those B's
    // arrival revoked, if A owned everything first).
    let mut leases = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let GroupEvent::Assigned { leases: l, .. } = e {
            leases.extend(l);
        }
    }
    leases.retain(|l| l.ending() == Ending::Held);
    assert_eq!(leases.len(), 4, "A holds a lease per partition");

    let session = {
        // The session A's driver uses: read its member znode's owner.
        let c = zkbalance::testkit::connect(&zk.connect_string(), SESSION).await.unwrap();
        let (_, stat) = c.get_data(&format!("/consumers/gexp/ids/{}", a.id())).await.unwrap();
        stat.ephemeral_owner
    };
    assert_ne!(session, 0);
    link.cut();
    // While cut, A is disconnected; expiry happens on the server side.
    let started = Instant::now();
    let client = zkbalance::testkit::connect(&zk.connect_string(), SESSION).await.unwrap();
    // Wait for the server to expire A's session (its member znode vanishes).
    let id = a.id().to_string();
    ok(zkbalance::testkit::wait_until("A's session to expire", SESSION * 4, || async {
        client.check_stat(&format!("/consumers/gexp/ids/{id}")).await.ok().flatten().is_none().then_some(())
    })
    .await);
    link.restore();
    let lost = within("A to hear its partitions are lost", Duration::from_secs(5), async {
        loop {
            match events.recv().await.expect("events") {
                GroupEvent::Lost { partitions } => return partitions,
                _ => continue,
            }
        }
    })
    .await;
    assert_eq!(lost.len(), 4, "every partition A held is dropped at once");
    assert!(leases.iter().all(|l| l.ending() == Ending::Lost), "A's leases ended as lost");
    owns(&a, 4, "A rejoined with a balanced share").await;
    assert_eq!(a.metrics().session_expirations, 1);
    let want = expected(&[a.id(), b.id()], "exp", &leaders(&kafka, "exp"));
    converge(&client, "gexp", "exp", &want, Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn members_ride_out_an_ensemble_leader_loss_without_rebalancing() {
    common::init_tracing();
    let mut zk = ok(zkbalance::testkit::ZooKeeper::start(3).await);
    let mut kafka = kafka(&zk.connect_string(), 1).await;
    kafka.create_topic("ens", 6, 1).await.unwrap();
    let connect = zk.connect_string();
    let mut a = group::builder(&connect, "gens", "ens").session_timeout(Duration::from_secs(6)).join().await.unwrap();
    let mut b = group::builder(&connect, "gens", "ens").session_timeout(Duration::from_secs(6)).join().await.unwrap();
    owns(&a, 3, "A's share").await;
    owns(&b, 3, "B's share").await;
    let (gen_a, gen_b) = (a.assignment().borrow().generation, b.assignment().borrow().generation);
    let (mut ev_a, mut ev_b) = (a.events(), b.events());
    // Only what happens from here on counts.
    while ev_a.try_recv().is_ok() {}
    while ev_b.try_recv().is_ok() {}

    let leader = zk.leader().await.expect("a leader");
    zk.kill(leader);
    ok(zkbalance::testkit::wait_until("a new leader", Duration::from_secs(15), || async {
        zk.leader().await.filter(|l| *l != leader)
    })
    .await);
    // Both members must have reconnected (a reconcile read follows each
    // reconnect) and stayed put.
    let observer = zkbalance::testkit::connect(&zk.connect_string(), Duration::from_secs(6)).await.unwrap();
    let want = expected(&[a.id(), b.id()], "ens", &leaders(&kafka, "ens"));
    converge(&observer, "gens", "ens", &want, Duration::from_secs(10)).await;
    let settle = a.metrics().group_reads + b.metrics().group_reads + 2;
    ok(zkbalance::testkit::wait_until(
        "both members to re-read the group after reconnecting",
        Duration::from_secs(10),
        || async { (a.metrics().group_reads + b.metrics().group_reads >= settle).then_some(()) },
    )
    .await);
    assert_eq!(a.assignment().borrow().generation, gen_a, "A's assignment never changed");
    assert_eq!(b.assignment().borrow().generation, gen_b, "B's assignment never changed");
    for events in [&mut ev_a, &mut ev_b] {
        while let Ok(e) = events.try_recv() {
            assert!(
                !matches!(e, GroupEvent::Revoked { .. } | GroupEvent::Lost { .. } | GroupEvent::Assigned { .. }),
                "needless rebalance: {e:?}"
            );
        }
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// Run only as a child of `a_killed_member_process_is_replaced_within_the_session_timeout`.
#[tokio::test]
#[ignore = "helper: runs only when re-executed by another test"]
async fn helper_member_until_killed() {
    let connect = std::env::var("ZKB_HELPER_ZK").expect("ZKB_HELPER_ZK");
    let member = join(&connect, "gkill", "k").await;
    owns(&member, 3, "the helper's share").await;
    println!("OWNS {}", member.id());
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test]
async fn a_killed_member_process_is_replaced_within_the_session_timeout() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (zk, _kafka) = group::topic_cluster("k", 6).await;
    let survivor = join(&zk.connect_string(), "gkill", "k").await;
    let mut helper = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_member_until_killed", "--ignored", "--nocapture"])
        .env("ZKB_HELPER_ZK", zk.connect_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    within("the helper member to own its share", Duration::from_secs(30), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("helper exited early");
            if line.starts_with("OWNS ") {
                return;
            }
        }
    })
    .await;
    owns(&survivor, 3, "the survivor's share").await;
    helper.start_kill().unwrap(); // SIGKILL: no cleanup at all
    helper.wait().await.unwrap();
    let killed_at = Instant::now();
    owns(&survivor, 6, "the survivor to own everything").await;
    let took = killed_at.elapsed();
    eprintln!("kill -9: the survivor owned everything {took:?} after the kill (session timeout {SESSION:?})");
    assert!(took < SESSION + Duration::from_millis(1500), "took {took:?}; session timeout is {SESSION:?}");
    survivor.stop().await.unwrap();
}

#[tokio::test]
async fn a_static_member_restarting_within_the_session_timeout_keeps_its_partitions_and_no_peer_moves() {
    let (zk, _kafka) = group::topic_cluster("st", 6).await;
    let link = ok(ZkLink::new(&zk).await);
    let first = group::builder(&link.connect_string(), "gst", "st").member_id("worker-1:static").join().await.unwrap();
    let other = join(&zk.connect_string(), "gst", "st").await;
    owns(&first, 3, "the static member's share").await;
    owns(&other, 3, "the other's share").await;
    let before = partitions(&first.assignment().borrow());
    let other_gen = other.assignment().borrow().generation;
    // The process dies without cleanup; its session lingers.
    link.cut();
    drop(first);
    let restarted = std::time::Instant::now();
    let second = group::builder(&zk.connect_string(), "gst", "st").member_id("worker-1:static").join().await.unwrap();
    // The same member id replaces its member znode at once, so the member
    // set never changes; its partitions are claimed again once the earlier
    // incarnation's owner znodes expire with its session (no transaction
    // could safely take them over: a peer may recreate one the moment it
    // expires).
    owns(&second, 3, "the restarted member's share").await;
    let took = restarted.elapsed();
    assert_eq!(partitions(&second.assignment().borrow()), before, "same partitions after the restart");
    assert!(took < SESSION * 3, "claimed within the old session's expiry and a claim backoff ({took:?})");
    assert_eq!(other.assignment().borrow().generation, other_gen, "the peer never rebalanced");
    eprintln!("a static member restarted owned its partitions again after {took:?} (session {SESSION:?})");
    second.stop().await.unwrap();
    other.stop().await.unwrap();
}

#[tokio::test]
async fn stop_leaves_no_znode_and_peers_take_over_at_once() {
    let (zk, _kafka) = group::topic_cluster("stop", 4).await;
    let a = join(&zk.connect_string(), "gstop", "stop").await;
    let b = join(&zk.connect_string(), "gstop", "stop").await;
    owns(&a, 2, "A's share").await;
    let a_id = a.id().to_string();
    let stopped_at = Instant::now();
    a.stop().await.unwrap();
    owns(&b, 4, "B to own everything").await;
    eprintln!("stop: the peer owned everything {:?} after stop() began", stopped_at.elapsed());
    assert!(stopped_at.elapsed() < Duration::from_secs(1), "took {:?}", stopped_at.elapsed());
    let client = zkbalance::testkit::connect(&zk.connect_string(), SESSION).await.unwrap();
    assert!(client.check_stat(&format!("/consumers/gstop/ids/{a_id}")).await.unwrap().is_none());
    assert!(!by_member(&client, "gstop", "stop").await.contains_key(&a_id), "no owner znode of A remains");
    b.stop().await.unwrap();
}

#[tokio::test]
async fn bad_connections_and_settings_are_typed_errors() {
    let zk = zookeeper().await;
    let err = group::builder(&zk.connect_string_with_chroot("/missing"), "g", "t").join().await.unwrap_err();
    assert!(matches!(err, CoordError::BadChroot { .. }), "{err}");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let started = Instant::now();
    let err = group::builder(&dead, "g", "t").connect_timeout(Duration::from_millis(800)).join().await.unwrap_err();
    assert!(matches!(err, CoordError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let err = group::builder(&zk.connect_string(), "g", "bad topic").join().await.unwrap_err();
    assert!(matches!(err, CoordError::Config(ref c) if c.setting == "topic"), "{err}");
    let err = group::builder(&zk.connect_string(), "g", "t").claim_retries(1).join().await.unwrap_err();
    assert!(matches!(err, CoordError::Config(ref c) if c.setting == "claim_retries"), "{err}");
}

/// The test server grants no session shorter than 400 ms (its
/// `minSessionTimeout`): a member asking for 150 ms runs with what it got,
/// and explicit settings that only fit the request are refused, naming the
/// granted timeout.
#[tokio::test]
async fn timings_follow_the_session_timeout_the_server_grants() {
    let zk = zookeeper().await;
    let short = Duration::from_millis(150);
    let m = group::builder(&zk.connect_string(), "g", "t").session_timeout(short).join().await.unwrap();
    assert_eq!(m.session_timeout(), Duration::from_millis(400));
    m.stop().await.unwrap();
    // With backoff 50, 100, 200 ms, three attempts span 350 ms: longer than
    // the 150 ms asked for, shorter than the 400 ms granted.
    let err = group::builder(&zk.connect_string(), "g", "t")
        .session_timeout(short)
        .claim_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .claim_retries(3)
        .join()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoordError::Config(ref c) if c.setting == "claim_retries" && c.reason.contains("granted (400ms)")),
        "{err}"
    );
}

#[tokio::test]
async fn members_work_under_a_chroot() {
    let zk = zookeeper().await;
    let chrooted = zk.connect_string_with_chroot("/kafka");
    let mut kafka = kafka(&chrooted, 1).await;
    kafka.create_topic("cr", 4, 1).await.unwrap();
    let a = join(&chrooted, "gcr", "cr").await;
    let b = join(&chrooted, "gcr", "cr").await;
    owns(&a, 2, "A's share").await;
    owns(&b, 2, "B's share").await;
    let root = zkbalance::testkit::connect(&zk.connect_string(), SESSION).await.unwrap();
    assert_eq!(root.list_children("/kafka/consumers/gcr/ids").await.unwrap().len(), 2);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_long_disconnect_suspends_delivery_before_expiry_and_a_reconnect_resumes_it() {
    let (zk, _kafka) = group::topic_cluster("dis", 2).await;
    let link = ok(ZkLink::new(&zk).await);
    // zookeeper-client backs off reconnects exponentially (0.1, 0.2, 0.4,
    // 0.8, 1.6 s...), so a cut much longer than a third of the session often
    // ends in expiry. A 4 s margin on a 6 s session leaves a 2 s delivery
    // lease, renewed every 1.2 s: delivery stops 0.8–2 s into the cut, and
    // the test heals it at once.
    let session = Duration::from_secs(6);
    let margin = Duration::from_secs(4);
    let mut a = group::builder(&link.connect_string(), "gdis", "dis")
        .session_timeout(session)
        .suspend_margin(margin)
        .join()
        .await
        .unwrap();
    owns(&a, 2, "A's partitions").await;
    let mut events = a.events();
    while events.try_recv().is_ok() {}
    let generation = a.assignment().borrow().generation;

    let cut_at = Instant::now();
    link.cut();
    let event = within("A to suspend", session, events.recv()).await.unwrap();
    let suspended_after = cut_at.elapsed();
    assert!(matches!(event, GroupEvent::Suspended), "{event:?}");
    assert!(suspended_after < session, "suspended {suspended_after:?} after the cut: before the session could expire");
    let (lease, heartbeat) = (session - margin, session / 5);
    assert!(
        suspended_after >= lease - heartbeat - Duration::from_millis(100),
        "not before it had to: {suspended_after:?}"
    );
    assert!(suspended_after <= lease + Duration::from_millis(200), "no later than the lease: {suspended_after:?}");
    assert!(a.assignment().borrow().suspended);

    link.restore();
    let event = within("A to resume", Duration::from_secs(5), events.recv()).await.unwrap();
    assert!(matches!(event, GroupEvent::Resumed), "{event:?}");
    assert!(!a.assignment().borrow().suspended);
    assert_eq!(a.assignment().borrow().generation, generation, "ownership was kept through the disconnect");
    assert_eq!(a.metrics().session_expirations, 0);
    a.stop().await.unwrap();
}
