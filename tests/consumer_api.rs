//! What the application sees of failures and acknowledgements, against a
//! real ZooKeeper and the mock Kafka cluster: errors handed over by `recv`
//! (a refused commit, an unreadable offset), the overdue-ack warning and
//! its gauges, acknowledgement on receipt across a graceful rebalance,
//! `for_each`, and `reset_offset_on_start`.

mod common;

use std::time::Duration;

use common::consumer::{consumer, Ledger, Running};
use common::group::topic_cluster;
use common::within;
use zkbalance::consumer::{AckMode, BalancedConsumer, ConsumeError, Message};
use zkbalance::offsets::{OffsetError, OffsetReset};
use zkbalance::znode::Flavour;
use zookeeper_client::{Acls, CreateMode};

/// Offsets in ZooKeeper (the Scala flavour's storage), read from the start.
fn scala(zk: &str, group: &str, topic: &str) -> zkbalance::consumer::ConsumerBuilder {
    consumer(zk, group, topic).flavour(Flavour::Scala).offset_reset(OffsetReset::Earliest)
}

async fn zk_client(zk: &zkbalance::testkit::ZooKeeper) -> zookeeper_client::Client {
    zkbalance::testkit::connect(&zk.connect_string(), Duration::from_secs(10)).await.expect("connect")
}

/// Writes `/consumers/<group>/offsets/<topic>/<partition>` with `acls`.
async fn offset_znode(zk: &zookeeper_client::Client, group: &str, topic: &str, p: i32, data: &[u8], acls: Acls<'_>) {
    let dir = format!("/consumers/{group}/offsets/{topic}");
    zk.mkdir(&dir, &CreateMode::Persistent.with_acls(Acls::anyone_all())).await.expect("offsets dir");
    zk.create(&format!("{dir}/{p}"), data, &CreateMode::Persistent.with_acls(acls)).await.expect("offset znode");
}

/// The next item of `c` within 10 s.
async fn next(c: &mut BalancedConsumer) -> Result<Message, ConsumeError> {
    within("a message or an error", Duration::from_secs(10), c.recv()).await.expect("the consumer is running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_commit_reaches_the_application_with_its_partition() {
    let (zk, mut kafka) = topic_cluster("refused", 1).await;
    let client = zk_client(&zk).await;
    // Readable by anyone, writable by no one: the consumer starts from it
    // and every commit is refused.
    offset_znode(&client, "refused", "refused", 0, b"0", Acls::anyone_read()).await;
    kafka.produce_generated("refused", 20, 50).await.expect("produce");
    let mut c = scala(&zk.connect_string(), "refused", "refused")
        .auto_commit(Some(Duration::from_millis(100)))
        .start()
        .await
        .expect("start");
    let error = loop {
        match next(&mut c).await {
            Ok(m) => m.ack(),
            Err(e) => break e,
        }
    };
    let ConsumeError::Commit { partition, source } = &error else { panic!("expected a commit error, got {error}") };
    assert_eq!(partition.to_string(), "refused-0");
    assert!(matches!(source, OffsetError::ZooKeeper(_)), "{source}");
    assert!(!error.is_fatal(), "a refused commit does not end the stream");
    assert!(error.to_string().contains("refused-0"), "the message names the partition: {error}");
    // An explicit commit gets the error itself.
    assert!(c.commit().await.is_err(), "the explicit commit is refused too");
    assert!(c.metrics().commit_failures >= 2, "{:?}", c.metrics().commit_failures);
    c.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_offset_stops_only_its_partition_until_fixed() {
    let (zk, mut kafka) = topic_cluster("garbled", 2).await;
    let client = zk_client(&zk).await;
    offset_znode(&client, "garbled", "garbled", 0, b"not an offset", Acls::anyone_all()).await;
    kafka.produce_generated("garbled", 40, 50).await.expect("produce");
    let mut c = scala(&zk.connect_string(), "garbled", "garbled").start().await.expect("start");
    let (mut from, mut error) = ([0u32; 2], None);
    // Partition 1 delivers all of its messages while partition 0 reports.
    // One deadline for each loop: retries keep reporting, so a bound per
    // item alone would let a regression spin here forever.
    within("partition 1 drained and partition 0 reported", Duration::from_secs(30), async {
        while error.is_none() || from[1] < 20 {
            match next(&mut c).await {
                Ok(m) => {
                    from[m.partition().0 as usize] += 1;
                    m.ack();
                }
                Err(e) => error = Some(e),
            }
        }
    })
    .await;
    let error = error.expect("reported");
    let ConsumeError::StartOffset { partition, source } = &error else { panic!("expected a start error, got {error}") };
    assert_eq!(partition.to_string(), "garbled-0");
    assert!(matches!(source, OffsetError::Malformed(_)), "{source}");
    assert_eq!(from[0], 0, "nothing of the unreadable partition was delivered");
    // Fixed by hand: the retry picks it up and partition 0 starts there.
    client.set_data("/consumers/garbled/offsets/garbled/0", b"15", None).await.expect("fix the offset");
    let first = within("partition 0 to start after the fix", Duration::from_secs(30), async {
        loop {
            match next(&mut c).await {
                Ok(m) if m.partition().0 == 0 => break m,
                Ok(m) => m.ack(),
                Err(e) => assert!(matches!(e, ConsumeError::StartOffset { .. }), "only retries report: {e}"),
            }
        }
    })
    .await;
    assert_eq!(first.offset(), 15, "partition 0 starts at the offset written");
    c.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_never_acknowledged_raises_the_warning_and_the_gauges() {
    let (zk, mut kafka) = topic_cluster("stuck", 1).await;
    kafka.produce_generated("stuck", 10, 50).await.expect("produce");
    let bound = Duration::from_millis(300);
    let mut c = consumer(&zk.connect_string(), "stuck", "stuck").ack_warning(Some(bound)).start().await.expect("start");
    let held = next(&mut c).await.expect("the first message");
    let mut delivered = 1;
    let (offset, held_for) = loop {
        match next(&mut c).await {
            Ok(m) => {
                delivered += 1;
                m.ack();
            }
            Err(ConsumeError::AckOverdue { partition, offset, held_for }) => {
                assert_eq!(partition.to_string(), "stuck-0");
                break (offset, held_for);
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    };
    assert_eq!(offset, held.offset(), "the stuck message is named");
    assert!(held_for >= bound, "reported after the bound: {held_for:?}");
    // Reported once per stuck offset: three more bounds pass without a
    // second report (what else comes is acknowledged).
    while let Ok(item) = tokio::time::timeout(bound * 3, c.recv()).await {
        match item.expect("running") {
            Ok(m) => {
                delivered += 1;
                m.ack();
            }
            Err(e) => panic!("only one report for a stuck offset: {e}"),
        }
    }
    assert_eq!(delivered, 10);
    let m = c.metrics();
    let p = &m.partitions[0];
    assert_eq!(p.outstanding, 1, "only the held message is outstanding");
    assert!(p.oldest_unacked_for.is_some_and(|d| d >= bound * 3), "{:?}", p.oldest_unacked_for);
    assert_eq!(p.acknowledged, Some(held.offset()), "commits wait at the held message");
    assert_eq!(m.acks_overdue, 1);
    held.ack();
    let m = c.metrics();
    assert_eq!((m.partitions[0].outstanding, m.partitions[0].oldest_unacked_for), (0, None), "released by the ack");
    c.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledging_on_receipt_commits_everything_across_a_graceful_rebalance() {
    let (zk, mut kafka) = topic_cluster("onreceipt", 6).await;
    let connect = zk.connect_string();
    let ledger = Ledger::default();
    let start = |name: &'static str| {
        let (connect, ledger) = (connect.clone(), ledger.clone());
        async move {
            let c =
                scala(&connect, "onreceipt", "onreceipt").ack_mode(AckMode::OnReceipt).start().await.expect("start");
            Running::without_acks(name, c, ledger, "onreceipt")
        }
    };
    let a = start("a").await;
    kafka.produce_generated("onreceipt", 3_000, 50).await.expect("produce");
    ledger.wait_for(2_000, Duration::from_secs(30)).await;
    let b = start("b").await;
    kafka.produce_generated("onreceipt", 3_000, 50).await.expect("produce");
    ledger.wait_for(4_500, Duration::from_secs(30)).await;
    let a_metrics = a.stop().await;
    kafka.produce_generated("onreceipt", 3_000, 50).await.expect("produce");
    ledger.wait_for(9_000, Duration::from_secs(30)).await;
    let b_metrics = b.stop().await;
    assert!(ledger.missing(9_000).is_empty(), "lost: {:?}", ledger.missing(9_000).len());
    assert!(ledger.duplicates().is_empty(), "{} delivered twice", ledger.duplicates().len());
    for m in [&a_metrics, &b_metrics] {
        assert_eq!((m.unacked_at_revoke, m.late_acks, m.commit_failures), (0, 0, 0), "{m:#?}");
    }
    // Everything delivered was committed: the offsets are the log ends.
    let client = zk_client(&zk).await;
    let mut committed = 0;
    for p in 0..6 {
        let (data, _) = client.get_data(&format!("/consumers/onreceipt/offsets/onreceipt/{p}")).await.expect("offset");
        committed += String::from_utf8(data).expect("text").parse::<u64>().expect("an offset");
    }
    assert_eq!(committed, 9_000, "the committed offsets cover every message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn for_each_acknowledges_each_message_when_its_handler_returns() {
    let (zk, mut kafka) = topic_cluster("foreach", 2).await;
    kafka.produce_generated("foreach", 200, 50).await.expect("produce");
    let mut c = scala(&zk.connect_string(), "foreach", "foreach").auto_commit(None).start().await.expect("start");
    let ledger = Ledger::default();
    let seen = ledger.clone();
    tokio::select! {
        r = c.for_each(|m| {
            let seen = seen.clone();
            async move {
                tokio::task::yield_now().await;
                seen.record("c", "foreach", &m);
            }
        }) => panic!("for_each ended early: {r:?}"),
        _ = ledger.wait_for(200, Duration::from_secs(20)) => {}
    }
    // The last handler returned before the ledger saw 200, and its ack
    // came right after the handler; no message is outstanding.
    within("the last ack", Duration::from_secs(5), async {
        while c.metrics().partitions.iter().any(|p| p.outstanding > 0) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    c.commit().await.expect("commit");
    let committed: u64 = c.metrics().partitions.iter().filter_map(|p| p.committed).sum();
    assert_eq!(committed, 200, "every handled message was acknowledged and committed");
    c.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_offset_on_start_ignores_the_committed_offset() {
    let (zk, mut kafka) = topic_cluster("reset", 1).await;
    let client = zk_client(&zk).await;
    offset_znode(&client, "reset", "reset", 0, b"7", Acls::anyone_all()).await;
    kafka.produce_generated("reset", 10, 50).await.expect("produce");
    let mut c = scala(&zk.connect_string(), "reset", "reset").start().await.expect("start");
    assert_eq!(next(&mut c).await.expect("a message").offset(), 7, "without the reset: the committed offset");
    c.stop().await.expect("stop");
    let mut c = scala(&zk.connect_string(), "reset", "reset").reset_offset_on_start(true).start().await.expect("start");
    assert_eq!(next(&mut c).await.expect("a message").offset(), 0, "with it: the reset policy's end");
    c.stop().await.expect("stop");
}

/// (callback, partitions) of each call.
type Calls = std::sync::Arc<parking_lot::Mutex<Vec<(&'static str, Vec<i32>)>>>;

/// Records listener calls; chooses start offsets.
#[derive(Clone, Default)]
struct Listener {
    calls: Calls,
    start: zkbalance::consumer::StartOffsets,
    lost: std::sync::Arc<tokio::sync::Notify>,
}

impl zkbalance::consumer::RebalanceListener for Listener {
    fn on_assigned(&self, _: u64, partitions: &[zkbalance::TopicPartition]) -> zkbalance::consumer::StartOffsets {
        self.calls.lock().push(("assigned", partitions.iter().map(|tp| tp.partition.0).collect()));
        self.start.clone()
    }
    fn on_revoked(&self, partitions: &[zkbalance::TopicPartition]) {
        self.calls.lock().push(("revoked", partitions.iter().map(|tp| tp.partition.0).collect()));
    }
    fn on_lost(&self, partitions: &[zkbalance::TopicPartition]) {
        self.calls.lock().push(("lost", partitions.iter().map(|tp| tp.partition.0).collect()));
        self.lost.notify_one();
    }
}

fn tp(topic: &str, p: i32) -> zkbalance::TopicPartition {
    zkbalance::TopicPartition::new(zkbalance::TopicName::new(topic).expect("name"), p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_offsets_from_on_assigned_are_honoured_and_revokes_come_whole() {
    let (zk, mut kafka) = topic_cluster("chosen", 4).await;
    kafka.produce_generated("chosen", 400, 50).await.expect("produce");
    let listener = Listener { start: [(tp("chosen", 2), 17)].into(), ..Listener::default() };
    let mut c =
        consumer(&zk.connect_string(), "chosen", "chosen").listener(listener.clone()).start().await.expect("start");
    let mut first = std::collections::BTreeMap::new();
    while first.len() < 4 {
        let m = next(&mut c).await.expect("a message");
        first.entry(m.partition().0).or_insert(m.offset());
        m.ack();
    }
    assert_eq!(first, [(0, 0), (1, 0), (2, 17), (3, 0)].into(), "partition 2 starts where the listener said");
    // Four claims, completing one by one: one call with all four.
    assert_eq!(*listener.calls.lock(), [("assigned", vec![0, 1, 2, 3])], "the first rebalance in one call");

    // A second member joins: its claims wait for the first member's
    // releases, and still each side hears of the rebalance once, whole.
    let joiner = Listener::default();
    let d = consumer(&zk.connect_string(), "chosen", "chosen").listener(joiner.clone()).start().await.expect("start");
    zkbalance::testkit::wait_until("the newcomer to hear of its share", Duration::from_secs(20), || async {
        (!joiner.calls.lock().is_empty()).then_some(())
    })
    .await
    .expect("on_assigned of the newcomer");
    let (taken, kept) = (joiner.calls.lock()[0].clone(), c.assignment().borrow().partitions.clone());
    assert_eq!((taken.0, taken.1.len()), ("assigned", 2), "the newcomer's share in one call: {taken:?}");
    let calls = listener.calls.lock().clone();
    assert_eq!(calls.len(), 2, "the first member: assigned, then one revoke: {calls:?}");
    assert_eq!(calls[1], ("revoked", taken.1.clone()), "it gave up what the newcomer took");
    assert!(kept.iter().all(|tp| !taken.1.contains(&tp.partition.0)) && kept.len() == 2, "{kept:?} {taken:?}");

    c.stop().await.expect("stop");
    let calls = listener.calls.lock().clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[2].0, "revoked", "stop revokes what is left in one call: {calls:?}");
    assert_eq!(calls[2].1.len(), 2, "{calls:?}");
    d.stop().await.expect("stop");
}

/// A round held up by a claim waiting for a stale owner znode (a crashed
/// peer's, until its session expires) is announced in parts after the
/// bound, so the partitions already claimed do not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_round_that_does_not_settle_is_announced_in_parts_after_the_bound() {
    let (zk, mut kafka) = topic_cluster("stale", 3).await;
    kafka.produce_generated("stale", 300, 50).await.expect("produce");
    let client = zk_client(&zk).await;
    let stale = "/consumers/stale/owners/stale/1";
    client.mkdir("/consumers/stale/owners/stale", &CreateMode::Persistent.with_acls(Acls::anyone_all())).await.unwrap();
    client.create(stale, b"crashed-0", &CreateMode::Persistent.with_acls(Acls::anyone_all())).await.expect("owner");
    let listener = Listener::default();
    let mut c = scala(&zk.connect_string(), "stale", "stale")
        .membership(|g| g.claim_retries(50))
        .listener_round_wait(Duration::from_millis(300))
        .listener(listener.clone())
        .start()
        .await
        .expect("start");
    let m = next(&mut c).await.expect("a message of a partition claimed");
    assert_ne!(m.partition().0, 1, "partition 1 is held by the stale owner");
    m.ack();
    assert_eq!(*listener.calls.lock(), [("assigned", vec![0, 2])], "the claimed part, in one call");
    client.delete(stale, None).await.expect("the stale owner goes");
    zkbalance::testkit::wait_until("the held partition to be announced", Duration::from_secs(20), || async {
        (listener.calls.lock().len() == 2).then_some(())
    })
    .await
    .expect("a second on_assigned");
    assert_eq!(listener.calls.lock()[1], ("assigned", vec![1]), "the rest in a later call");
    c.stop().await.expect("stop");
}

/// The one failure a member cannot recover from by itself: its session
/// expired, and meanwhile an operator set an ACL on the group's `ids` that
/// its new session is not admitted by. Retrying cannot cure that, so the
/// stream ends with `Fatal`, naming the znode, instead of retrying forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_refused_when_it_registers_again_ends_the_stream_with_a_fatal_error() {
    let (zk, mut kafka) = topic_cluster("refusal", 2).await;
    kafka.produce_generated("refusal", 100, 50).await.expect("produce");
    let link = zkbalance::testkit::ZkLink::new(&zk).await.expect("link");
    let mut c = scala(&link.connect_string(), "refusal", "refusal").start().await.expect("start");
    let id = c.id().expect("joined").to_string();
    next(&mut c).await.expect("a message").ack();
    let client = zk_client(&zk).await;
    client.set_acl("/consumers/refusal/ids", &Acls::anyone_read(), None).await.expect("setAcl");
    link.cut();
    let znode = format!("/consumers/refusal/ids/{id}");
    zkbalance::testkit::wait_until("the session to expire", Duration::from_secs(20), || async {
        client.check_stat(&znode).await.expect("stat").is_none().then_some(())
    })
    .await
    .expect("expired");
    link.restore();
    // One deadline for the whole wait: a member retrying forever would
    // otherwise keep the loop fed with errors of its own.
    let mut others = Vec::new();
    let waiting = async {
        loop {
            match c.recv().await {
                Some(Err(e)) if e.is_fatal() => break e,
                Some(Err(e)) => others.push(e.to_string()),
                Some(Ok(m)) => m.ack(),
                None => panic!("the stream ended without an error"),
            }
        }
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), waiting).await;
    let Ok(fatal) = outcome else {
        panic!("no fatal error within 30 s; {} other errors meanwhile, first {:?}", others.len(), others.first())
    };
    assert!(others.iter().all(|e| !e.contains("refuses")), "reported once, as the fatal error: {others:?}");
    let text = fatal.to_string();
    assert!(text.contains(&znode) && text.contains("refuses this member's registration"), "{text}");
    assert!(within("the end of the stream", Duration::from_secs(5), c.recv()).await.is_none(), "nothing after Fatal");
    assert_eq!(c.metrics().group.session_expirations, 1);
    within("stop after the end", Duration::from_secs(10), c.stop()).await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_lost_is_called_on_expiry_and_no_commit_follows() {
    let (zk, mut kafka) = topic_cluster("lost", 2).await;
    kafka.produce_generated("lost", 2_000, 50).await.expect("produce");
    let link = zkbalance::testkit::ZkLink::new(&zk).await.expect("link");
    let listener = Listener::default();
    // Offsets in Kafka: reachable while ZooKeeper is cut off, so only the
    // fence stops a commit after the loss.
    let c = consumer(&link.connect_string(), "lost", "lost")
        .auto_commit(Some(Duration::from_millis(50)))
        .listener(listener.clone())
        .start()
        .await
        .expect("start");
    let id = c.id().expect("joined").to_string();
    let ledger = Ledger::default();
    let running = Running::spawn("a", c, ledger.clone(), "lost");
    ledger.wait_for(500, Duration::from_secs(20)).await;
    link.cut();
    within("on_lost", Duration::from_secs(20), listener.lost.notified()).await;
    let lost: Vec<_> = listener.calls.lock().iter().filter(|c| c.0 == "lost").cloned().collect();
    assert_eq!(lost.len(), 1, "one call for the whole loss: {lost:?}");
    assert_eq!(lost[0].1.len(), 2, "{lost:?}");
    let observer = zk_client(&zk).await;
    assert!(
        observer.check_stat(&format!("/consumers/lost/ids/{id}")).await.expect("stat").is_none(),
        "lost after the session expired"
    );
    let view = zkbalance::cluster::read(&observer.into()).await.expect("view");
    let kafka_side =
        zkbalance::inspect::KafkaSide::new(&view, "lost", Duration::from_secs(5), &Default::default()).expect("kafka");
    let committed = async || {
        let mut out = Vec::new();
        for p in 0..2 {
            out.push(kafka_side.committed("lost", p).await.expect("OffsetFetch"));
        }
        out
    };
    let at_loss = committed().await;
    // Twenty auto-commit intervals with the link still cut: nothing moves.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(committed().await, at_loss, "no commit after on_lost");
    link.restore();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seek_moves_delivery_and_a_handle_commits_while_a_stream_is_alive() {
    use futures_util::StreamExt;
    let (zk, mut kafka) = topic_cluster("seek", 1).await;
    kafka.produce_generated("seek", 100, 50).await.expect("produce");
    let mut c = scala(&zk.connect_string(), "seek", "seek").auto_commit(None).start().await.expect("start");
    let handle = c.handle();
    let p0 = tp("seek", 0);
    for expected in 0..10 {
        let m = next(&mut c).await.expect("a message");
        assert_eq!(m.offset(), expected);
        m.ack();
    }
    // Back: delivery resumes at 3, whatever was fetched ahead is dropped.
    c.seek(&p0, 3).await.expect("seek back");
    let m = next(&mut c).await.expect("a message");
    assert_eq!(m.offset(), 3, "the first message after the seek");
    m.ack();
    // Forward, from another task, while a stream borrows the consumer.
    let mut stream = Box::pin(c.stream());
    let m = within("a message", Duration::from_secs(10), stream.next()).await.expect("running").expect("no error");
    assert_eq!(m.offset(), 4);
    m.ack();
    let mover = {
        let handle = handle.clone();
        let p0 = p0.clone();
        tokio::spawn(async move { handle.seek(&p0, 60).await })
    };
    within("the seek", Duration::from_secs(10), mover).await.expect("task").expect("seek forward");
    // Messages fetched before the seek (5.. were buffered) are dropped.
    let m = within("a message", Duration::from_secs(10), stream.next()).await.expect("running").expect("no error");
    assert_eq!(m.offset(), 60, "delivery jumped to 60");
    m.ack();
    handle.commit().await.expect("commit while the stream is alive");
    assert_eq!(handle.committed(&p0).await.expect("read"), Some(61), "the commit follows the seek");
    drop(stream);
    // Not owned: refused with the partition named.
    let e = c.seek(&tp("seek", 7), 0).await.expect_err("not owned");
    assert!(matches!(e, zkbalance::consumer::ConsumerError::NotOwned { .. }), "{e}");
    c.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_consumer_refuses_to_start_inside_a_runtime() {
    let builder = BalancedConsumer::builder().zookeeper("127.0.0.1:1").group("g").topic("t");
    let e = zkbalance::consumer::BlockingConsumer::start(builder).expect_err("inside a runtime");
    assert!(matches!(e, zkbalance::consumer::ConsumerError::InsideRuntime), "{e}");
}

#[test]
fn a_blocking_consumer_dropped_inside_a_runtime_does_not_panic() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (zk, mut kafka) = rt.block_on(topic_cluster("dropped", 1));
    rt.block_on(kafka.produce_generated("dropped", 5, 50)).expect("produce");
    let mut c = zkbalance::consumer::BlockingConsumer::start(consumer(&zk.connect_string(), "dropped", "dropped"))
        .expect("start outside a runtime");
    c.next().expect("running").expect("a message").ack();
    // Dropped in async code (as an application's task might): its own
    // runtime goes down in the background instead of panicking.
    rt.block_on(async move { drop(c) });
}
