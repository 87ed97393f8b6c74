//! The consumer against a real ZooKeeper and the mock Kafka cluster.

mod common;

use std::time::Duration;

use common::consumer::{consumer, Ledger, Running};
use common::group::topic_cluster;
use common::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_joining_and_leaving_mid_stream_deliver_every_message_exactly_once() {
    let (zk, mut kafka) = topic_cluster("stream", 12).await;
    let connect = zk.connect_string();
    let ledger = Ledger::default();
    let start = |name: &str| {
        let (connect, ledger) = (connect.clone(), ledger.clone());
        let name = name.to_owned();
        async move {
            let c = consumer(&connect, "eo", "stream").start().await.expect("start a consumer");
            Running::spawn(&name, c, ledger, "stream")
        }
    };
    let a = start("a").await;
    let b = start("b").await;
    let mut total = 0;
    let mut produce = async |n: u64| {
        kafka.produce_generated("stream", n, 100).await.expect("produce");
        total += n;
        total
    };
    let t = produce(25_000).await;
    ledger.wait_for(t * 4 / 5, Duration::from_secs(30)).await;
    let c = start("c").await;
    let t = produce(25_000).await;
    ledger.wait_for(t * 4 / 5, Duration::from_secs(30)).await;
    let a_metrics = a.stop().await;
    let t = produce(25_000).await;
    ledger.wait_for(t * 4 / 5, Duration::from_secs(30)).await;
    let d = start("d").await;
    let t = produce(25_000).await;
    ledger.wait_for(t, Duration::from_secs(30)).await;
    let mut metrics = vec![a_metrics];
    for r in [b, c, d] {
        metrics.push(r.stop().await);
    }
    let duplicates = ledger.duplicates();
    assert!(ledger.missing(t).is_empty(), "lost messages: {:?}", &ledger.missing(t)[..10.min(ledger.missing(t).len())]);
    assert!(
        duplicates.is_empty(),
        "{} messages delivered twice, e.g. {:?}",
        duplicates.len(),
        &duplicates[..3.min(duplicates.len())]
    );
    let delivered: u64 = metrics.iter().map(|m| m.messages).sum();
    assert_eq!(delivered, 100_000, "each message delivered once across the group");
    assert!(metrics.iter().all(|m| m.late_acks == 0 && m.unacked_at_revoke == 0), "{metrics:#?}");
    assert!(metrics.iter().all(|m| m.commit_failures == 0), "{metrics:#?}");
    eprintln!(
        "100,000 messages over 4 members: rebalances {:?}, dropped after revoke {}",
        metrics.iter().map(|m| m.group.rebalances.count()).collect::<Vec<_>>(),
        metrics.iter().map(|m| m.dropped_revoked).sum::<u64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_handler_with_a_tiny_buffer_pauses_fetching_and_never_rebalances() {
    let (zk, mut kafka) = topic_cluster("slow", 4).await;
    kafka.produce_generated("slow", 2_000, 100).await.expect("produce");
    let mut c = consumer(&zk.connect_string(), "slow", "slow").buffer(8).start().await.expect("start");
    let ledger = Ledger::default();
    // The handler hands messages to a worker through a queue of 4 and blocks
    // when it is full; the worker takes 2 ms a message, so consuming all
    // takes twice the 2 s session timeout.
    let (queue, mut work) = tokio::sync::mpsc::channel::<zkbalance::consumer::Message>(4);
    let worker_ledger = ledger.clone();
    let worker = tokio::spawn(async move {
        while let Some(m) = work.recv().await {
            tokio::time::sleep(Duration::from_millis(2)).await;
            worker_ledger.record("slow", "slow", &m);
            m.ack();
        }
    });
    let first = within("the first message", Duration::from_secs(10), common::recv(&mut c)).await.expect("a message");
    // Partitions start as their claims complete, so the first message may
    // come before the last of the four claims: the initial assignment is
    // the one holding all four.
    let mut view = c.assignment();
    let generation = within("all four partitions owned", Duration::from_secs(10), async {
        view.wait_for(|v| v.partitions.len() == 4).await.expect("the member is alive").generation
    })
    .await;
    queue.send(first).await.expect("worker alive");
    let started = std::time::Instant::now();
    let mut max_buffered = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut received = 1;
    while received < 2_000 {
        assert!(tokio::time::Instant::now() < deadline, "only {} of 2000 consumed in 60 s", ledger.distinct());
        let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(10), common::recv(&mut c)).await else {
            panic!("no message within 10 s after {}", ledger.distinct());
        };
        queue.send(m).await.expect("worker alive");
        received += 1;
        max_buffered = max_buffered.max(c.metrics().buffered);
    }
    drop(queue);
    worker.await.unwrap();
    ledger.wait_for(2_000, Duration::from_secs(5)).await;
    let m = c.metrics();
    assert!(ledger.duplicates().is_empty(), "duplicates: {:?}", ledger.duplicates().len());
    assert!(m.backpressure_pauses > 0, "fetching must have paused: {m:#?}");
    // The buffer bound holds up to one poll's overshoot.
    assert!(max_buffered <= 8, "buffered {max_buffered} > 8");
    assert_eq!(m.group.rebalances.count(), 1, "only the initial assignment: {m:#?}");
    assert_eq!(m.group.session_expirations + m.group.partitions_lost, 0, "{m:#?}");
    assert_eq!(c.assignment().borrow().generation, generation, "the assignment never changed");
    eprintln!(
        "slow handler: 2000 messages in {:.1} s, {} backpressure pauses, max buffered {max_buffered}",
        started.elapsed().as_secs_f64(),
        m.backpressure_pauses
    );
    c.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unacknowledged_message_holds_back_only_itself_and_what_follows() {
    let (zk, mut kafka) = topic_cluster("batch", 1).await;
    kafka.produce_generated("batch", 500, 100).await.expect("produce");
    let connect = zk.connect_string();
    let mut first = consumer(&connect, "lw", "batch").auto_commit(None).start().await.expect("start");
    let mut held = None;
    for i in 0..500u64 {
        let m = within("a message", Duration::from_secs(10), common::recv(&mut first)).await.expect("a message");
        assert_eq!(m.offset(), i);
        if i == 123 {
            held = Some(m); // never acknowledged
        } else {
            m.ack();
        }
    }
    first.commit().await.expect("commit");
    let m = first.metrics();
    assert_eq!(m.partitions[0].committed, Some(123), "the low watermark stops at the unacknowledged message");
    assert_eq!(m.partitions[0].acknowledged, Some(123));
    assert_eq!(m.partitions[0].log_end, Some(500), "log end as last fetched");
    assert_eq!(m.partitions[0].lag, Some(377), "lag = log end − committed");
    assert_eq!((m.messages, m.bytes), (500, 500 * 100 + (0..500u64).map(|s| s.to_string().len() as u64).sum::<u64>()));
    let stopped = first.metrics();
    first.stop().await.expect("stop");
    drop(held);
    assert_eq!(stopped.commit_failures, 0);

    let mut second = consumer(&connect, "lw", "batch").start().await.expect("restart");
    let mut offsets = Vec::new();
    while offsets.len() < 377 {
        let m = within("a redelivered message", Duration::from_secs(10), common::recv(&mut second))
            .await
            .expect("a message");
        offsets.push(m.offset());
        m.ack();
    }
    assert_eq!(offsets, (123..500).collect::<Vec<_>>(), "redelivered from the low watermark on, not the batch");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), common::recv(&mut second)).await.is_err(),
        "nothing before offset 123 is delivered again"
    );
    eprintln!("redelivered {} of 500 after one unacknowledged message", offsets.len());
    second.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_hands_partitions_over_at_once_at_the_committed_offsets() {
    use zkbalance::znode::{layout, Codec, Flavour, ZkOffset};
    let (zk, mut kafka) = topic_cluster("handover", 6).await;
    kafka.produce_generated("handover", 6_000, 100).await.expect("produce");
    let connect = zk.connect_string();
    let scala = |group: &str| {
        consumer(&connect, group, "handover").flavour(Flavour::Scala).offset_reset("earliest".parse().unwrap())
    };
    let ledger = Ledger::default();
    // A is slow (1 ms a message), so it still has work when it stops.
    let a = scala("ho").start().await.expect("start a");
    let (a_id, a_view) = (a.id().expect("joined").clone(), a.assignment());
    let a = Running::paced("a", a, ledger.clone(), "handover", Duration::from_millis(1));
    let b = scala("ho").start().await.expect("start b");
    let b_view = b.assignment();
    let b = Running::spawn("b", b, ledger.clone(), "handover");
    let observer = zkbalance::testkit::connect(&connect, Duration::from_secs(6)).await.expect("observer");
    ledger.wait_for(300, Duration::from_secs(20)).await;
    within("A and B to split the partitions", Duration::from_secs(10), async {
        while a_view.borrow().partitions.len() != 3 || b_view.borrow().partitions.len() != 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within("A to get going on its partitions", Duration::from_secs(20), async {
        while ledger.all().iter().filter(|(_, d)| d.who == "a").count() < 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let a_parts = a_view.borrow().partitions.clone();
    let mark = ledger.deliveries();
    let started = std::time::Instant::now();
    let mut b_watch = b_view.clone();
    let (a_metrics, took) = tokio::join!(a.stop(), async {
        within("B to own A's partitions", Duration::from_secs(1), b_watch.wait_for(|v| v.partitions.len() == 6))
            .await
            .unwrap();
        started.elapsed()
    });
    assert_eq!(a_metrics.commit_failures, 0);
    // The committed offsets A left in ZooKeeper (Scala layout).
    let g = zkbalance::GroupId::new("ho").unwrap();
    let mut committed = std::collections::BTreeMap::new();
    for tp in &a_parts {
        let path = layout::offset(&g, &tp.topic, tp.partition);
        // A partition A never delivered from has nothing to commit: the
        // next owner starts it at the reset point (earliest, 0).
        let offset = match observer.get_data(&path).await {
            Ok((bytes, _)) => ZkOffset::decode(&path, &bytes).expect("a decimal offset").0,
            Err(zookeeper_client::Error::NoNode) => 0,
            Err(e) => panic!("reading {path}: {e}"),
        };
        committed.insert(tp.partition.0, offset);
    }
    assert!(committed.values().any(|&o| o > 0), "A committed what it consumed: {committed:?}");
    assert!(committed.values().all(|&o| o < 1_000), "A stopped mid-stream: {committed:?}");
    // Nothing of A's remains.
    let member_path = layout::member(&g, &a_id);
    assert_eq!(observer.check_stat(&member_path).await.expect("stat"), None, "{member_path} remains");
    let owners_dir =
        layout::owner_dir(&g, &zkbalance::TopicName::new("handover").unwrap(), zkbalance::znode::TopicSpelling::Plain);
    for child in observer.list_children(&owners_dir).await.expect("owners") {
        let (data, _) = observer.get_data(&format!("{owners_dir}/{child}")).await.expect("owner");
        assert!(!String::from_utf8_lossy(&data).starts_with(a_id.as_str()), "owner znode {child} of A remains");
    }
    ledger.wait_for(6_000, Duration::from_secs(20)).await;
    let b_metrics = b.stop().await;
    // B resumed each of A's partitions exactly at A's committed offset.
    for (p, offset) in &committed {
        let first = ledger
            .all()
            .into_iter()
            .filter(|(_, d)| d.who == "b" && d.partition == *p && d.index >= mark)
            .map(|(_, d)| d.offset)
            .min();
        assert_eq!(first, Some(*offset), "partition {p}: B's first offset after the hand-over");
    }
    assert!(ledger.duplicates().is_empty(), "duplicates: {:?}", ledger.duplicates());
    assert!(ledger.missing(6_000).is_empty());
    assert_eq!(b_metrics.commit_failures, 0);
    eprintln!("stop: B owned A's partitions {took:?} after stop() began; resumed at {committed:?}");
}

/// Records listener calls.
#[derive(Clone, Default)]
struct Calls(std::sync::Arc<parking_lot::Mutex<Vec<String>>>);

impl zkbalance::consumer::RebalanceListener for Calls {
    fn on_assigned(
        &self,
        generation: u64,
        partitions: &[zkbalance::TopicPartition],
    ) -> zkbalance::consumer::StartOffsets {
        self.0.lock().push(format!("assigned {generation} {partitions:?}"));
        Default::default()
    }
    fn on_revoked(&self, partitions: &[zkbalance::TopicPartition]) {
        self.0.lock().push(format!("revoked {partitions:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dual_storage_writes_both_and_reads_the_larger_and_listeners_bracket_ownership() {
    use zkbalance::offsets::OffsetStorage;
    let (zk, mut kafka) = topic_cluster("dual", 1).await;
    kafka.produce_generated("dual", 300, 50).await.expect("produce");
    let connect = zk.connect_string();
    let calls = Calls::default();
    let mut c = consumer(&connect, "dual", "dual")
        .offset_storage(OffsetStorage::Dual)
        .auto_commit(None)
        .listener(calls.clone())
        .start()
        .await
        .expect("start");
    for _ in 0..100 {
        within("a message", Duration::from_secs(10), common::recv(&mut c)).await.expect("a message").ack();
    }
    c.commit().await.expect("commit");
    assert!(calls.0.lock().iter().any(|c| c.starts_with("assigned")), "{:?}", calls.0.lock());
    c.stop().await.expect("stop");
    let log = calls.0.lock().clone();
    assert_eq!(log.len(), 2, "one assignment, one revoke: {log:?}");
    assert!(log[0].starts_with("assigned") && log[1].starts_with("revoked"), "{log:?}");

    // Both stores hold 100.
    let observer = zkbalance::testkit::connect(&connect, Duration::from_secs(5)).await.expect("observer");
    let view = zkbalance::cluster::read(&observer.clone().into()).await.expect("view");
    let kafka_side =
        zkbalance::inspect::KafkaSide::new(&view, "dual", Duration::from_secs(5), &Default::default()).expect("kafka");
    assert_eq!(kafka_side.committed("dual", 0).await.expect("OffsetFetch"), Some(100));
    let (bytes, _) = observer.get_data("/consumers/dual/offsets/dual/0").await.expect("ZooKeeper offset");
    assert_eq!(bytes, b"100");

    // ZooKeeper ahead of Kafka: the larger wins.
    observer.set_data("/consumers/dual/offsets/dual/0", b"150", None).await.expect("move ZooKeeper's offset");
    let mut c = consumer(&connect, "dual", "dual").offset_storage(OffsetStorage::Dual).start().await.expect("restart");
    let m = within("a message", Duration::from_secs(10), common::recv(&mut c)).await.expect("a message");
    assert_eq!(m.offset(), 150, "dual mode starts from the larger committed offset");
    m.ack();
    c.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_partition_delivers_nothing_new_and_resumes_where_it_stopped() {
    let (zk, mut kafka) = topic_cluster("pause", 1).await;
    kafka.produce_generated("pause", 100, 50).await.expect("produce");
    let mut c = consumer(&zk.connect_string(), "pause", "pause").start().await.expect("start");
    let mut last = 0;
    {
        // The same messages as a Stream.
        use futures_util::StreamExt;
        let mut stream = Box::pin(c.stream().take(100));
        while let Some(m) = within("a message", Duration::from_secs(10), stream.next()).await {
            let m = m.expect("no consumer error");
            last = m.offset();
            m.ack();
        }
    }
    assert_eq!(last, 99);
    let tp = zkbalance::TopicPartition::new(zkbalance::TopicName::new("pause").unwrap(), 0);
    within("pause", Duration::from_secs(5), c.pause(std::slice::from_ref(&tp))).await;
    kafka.produce_generated("pause", 100, 50).await.expect("produce more");
    assert!(
        tokio::time::timeout(Duration::from_millis(700), common::recv(&mut c)).await.is_err(),
        "nothing is fetched while paused"
    );
    within("resume", Duration::from_secs(5), c.resume(std::slice::from_ref(&tp))).await;
    let m = within("a message after resume", Duration::from_secs(10), common::recv(&mut c)).await.expect("a message");
    assert_eq!(m.offset(), last + 1, "resumes right after the last delivered offset");
    m.ack();
    c.stop().await.expect("stop");
}

#[test]
fn the_blocking_consumer_iterates_messages() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (zk, mut kafka) = rt.block_on(topic_cluster("blocking", 2));
    rt.block_on(kafka.produce_generated("blocking", 20, 50)).expect("produce");
    let mut c = zkbalance::consumer::BlockingConsumer::start(consumer(&zk.connect_string(), "blocking", "blocking"))
        .expect("start");
    let offsets: Vec<(i32, u64)> = c
        .by_ref()
        .take(20)
        .map(|m| {
            let m = m.expect("no consumer error");
            m.ack();
            (m.partition().0, m.offset())
        })
        .collect();
    assert_eq!(offsets.len(), 20);
    assert!(c.recv_timeout(Duration::from_millis(300)).is_none(), "exactly the 20 produced");
    assert_eq!(c.metrics().messages, 20);
    c.stop().expect("stop");
    drop(kafka);
    drop(zk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brokers_are_followed_through_zookeeper_and_an_outage_loses_nothing() {
    let zk = common::zookeeper().await;
    let mut kafka = common::kafka(&zk.connect_string(), 3).await;
    kafka.create_topic("ha", 6, 2).await.expect("topic");
    kafka.produce_generated("ha", 3_000, 100).await.expect("produce");
    let ledger = Ledger::default();
    let c = consumer(&zk.connect_string(), "ha", "ha").start().await.expect("start");
    let brokers = |c: &zkbalance::consumer::BalancedConsumer| c.metrics().brokers;
    let mut c = c;
    let mut n = 0;
    while n < 1_000 {
        let m = within("a message", Duration::from_secs(10), common::recv(&mut c)).await.expect("a message");
        ledger.record("c", "ha", &m);
        m.ack();
        n += 1;
    }
    assert_eq!(brokers(&c), 3, "the three registered brokers are followed");
    let victim = kafka.live_brokers()[0];
    kafka.broker_down(victim).await.expect("broker down");
    kafka.produce_generated("ha", 1_000, 100).await.expect("produce while a broker is down");
    let mut errors = Vec::new();
    while ledger.distinct() < 4_000 {
        let Ok(Some(item)) = tokio::time::timeout(Duration::from_secs(20), c.recv()).await else {
            panic!("stalled at {} of 4000 with broker {victim} down", ledger.distinct());
        };
        match item {
            Ok(m) => {
                ledger.record("c", "ha", &m);
                m.ack();
            }
            Err(e) => {
                assert!(!e.is_fatal(), "a broker outage is not fatal: {e}");
                errors.push(e.to_string());
            }
        }
    }
    // The outage reached the application, not only the logs.
    assert!(!errors.is_empty(), "no error surfaced while broker {victim} was down");
    eprintln!("broker outage: the application saw {} errors, e.g. {:?}", errors.len(), errors.first());
    assert_eq!(brokers(&c), 2, "the down broker's registration is gone");
    kafka.broker_up(victim).await.expect("broker up");
    zkbalance::testkit::wait_until("the broker to be followed again", Duration::from_secs(10), || async {
        (brokers(&c) == 3).then_some(())
    })
    .await
    .expect("followed");
    assert!(ledger.missing(4_000).is_empty());
    assert!(ledger.duplicates().is_empty(), "{:?}", ledger.duplicates().len());
    eprintln!(
        "broker outage: {} fetch errors tolerated, {} rebalances",
        c.metrics().fetch_errors,
        c.metrics().group.rebalances.count()
    );
    c.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_consumer_stops_before_its_successor_starts_and_loses_nothing() {
    let (zk, mut kafka) = topic_cluster("expiry", 4).await;
    kafka.produce_generated("expiry", 8_000, 100).await.expect("produce");
    let link = zkbalance::testkit::ZkLink::new(&zk).await.expect("link");
    let ledger = Ledger::default();
    // A goes through the cuttable link and works slowly, so it has work
    // in hand when it is cut off; B is direct.
    let a = consumer(&link.connect_string(), "exp", "expiry").auto_commit(Some(Duration::from_millis(100)));
    let a = a.start().await.expect("start a");
    let a_id = a.id().expect("joined").to_string();
    let a = Running::paced("a", a, ledger.clone(), "expiry", Duration::from_millis(1));
    let b = consumer(&zk.connect_string(), "exp", "expiry").auto_commit(Some(Duration::from_millis(100)));
    let b = Running::paced("b", b.start().await.expect("start b"), ledger.clone(), "expiry", Duration::from_millis(1));
    ledger.wait_for(1_000, Duration::from_secs(20)).await;

    link.cut();
    let observer = zkbalance::testkit::connect(&zk.connect_string(), Duration::from_secs(6)).await.expect("observer");
    zkbalance::testkit::wait_until("A's session to expire", Duration::from_secs(10), || async {
        observer.check_stat(&format!("/consumers/exp/ids/{a_id}")).await.ok().flatten().is_none().then_some(())
    })
    .await
    .expect("expired");
    ledger.wait_for(5_000, Duration::from_secs(30)).await;
    link.restore();
    ledger.wait_for(8_000, Duration::from_secs(30)).await;
    let (ma, mb) = (a.stop().await, b.stop().await);

    assert!(ledger.missing(8_000).is_empty(), "lost: {:?}", ledger.missing(8_000).len());
    // Per partition, in delivery order: the owner changes only at hand-overs
    // (never interleaved), and within one ownership (member, generation)
    // offsets only grow.
    let mut by_partition: std::collections::BTreeMap<i32, Vec<common::consumer::Delivery>> = Default::default();
    for (_, d) in ledger.all() {
        by_partition.entry(d.partition).or_default().push(d);
    }
    for (p, mut ds) in by_partition {
        ds.sort_by_key(|d| d.index);
        let changes = ds.windows(2).filter(|w| w[0].who != w[1].who).count();
        let same = |a: &common::consumer::Delivery, b: &common::consumer::Delivery| {
            a.who == b.who && a.generation == b.generation
        };
        assert!(changes <= 3, "partition {p}: delivered by turns {changes} times — concurrent owners?");
        for w in ds.windows(2).filter(|w| same(&w[0], &w[1])) {
            assert!(
                w[1].offset > w[0].offset,
                "partition {p}: {} went back from {} to {}",
                w[0].who,
                w[0].offset,
                w[1].offset
            );
        }
    }
    let duplicates = ledger.duplicates().len();
    eprintln!(
        "expiry: {duplicates} duplicates (A's uncommitted window), A lost {} partitions, {} fenced commits, 0 lost",
        ma.group.partitions_lost, ma.fenced_commits
    );
    assert!(ma.group.session_expirations >= 1 && ma.group.partitions_lost >= 1, "{ma:#?}");
    assert_eq!(mb.commit_failures, 0);
}

/// `recv_many` hands over what is already fetched, in each partition's
/// order, never more than asked and never an empty batch while running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_many_hands_over_what_is_ready_in_order_and_never_more_than_asked() {
    let (zk, mut kafka) = topic_cluster("many", 3).await;
    kafka.produce_generated("many", 3000, 50).await.expect("produce");
    let mut c = consumer(&zk.connect_string(), "many", "many").start().await.expect("start");
    let mut next = [0u64; 3];
    let (mut got, mut largest) = (0, 0);
    within("3000 messages in batches", Duration::from_secs(30), async {
        while got < 3000 {
            let batch = c.recv_many(256).await.expect("running").expect("no consumer error");
            assert!((1..=256).contains(&batch.len()), "a batch of {}", batch.len());
            largest = largest.max(batch.len());
            for m in &batch {
                let p = m.partition().0 as usize;
                assert_eq!(m.offset(), next[p], "partition {p} in order, nothing skipped or repeated");
                next[p] += 1;
                m.ack();
            }
            got += batch.len();
        }
    })
    .await;
    assert_eq!(next.iter().sum::<u64>(), 3000);
    assert!(largest > 1, "batches hold what was fetched together");
    c.stop().await.expect("stop");
}
