//! The mock Kafka cluster, registered in a real ZooKeeper as ZooKeeper-mode
//! brokers register, read back through our codecs and consumed by hand.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{kafka, within, zookeeper};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use zkbalance::testkit::protocol::parse_generated_value;
use zkbalance::znode::{layout, BrokerRegistration, Codec, PartitionState, TopicRegistration};
use zkbalance::{BrokerId, PartitionId, TopicName};
use zookeeper_client::Client;

async fn read<C: Codec>(zk: &Client, path: &str) -> C {
    let (bytes, _) = zk.get_data(path).await.unwrap_or_else(|e| panic!("reading {path}: {e}"));
    C::decode(path, &bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// Broker id → `host:port`, from ZooKeeper through the codecs.
async fn registered_brokers(zk: &Client) -> BTreeMap<BrokerId, String> {
    let mut out = BTreeMap::new();
    for id in zk.list_children(layout::BROKER_IDS).await.expect("list brokers") {
        let reg: BrokerRegistration = read(zk, &format!("{}/{id}", layout::BROKER_IDS)).await;
        assert_eq!(reg.version, 4);
        out.insert(
            BrokerId(id.parse().expect("numeric id")),
            reg.endpoint_for("PLAINTEXT").expect("plaintext").address(),
        );
    }
    out
}

async fn state(zk: &Client, topic: &str, p: i32) -> PartitionState {
    read(zk, &layout::partition_state(&TopicName::new(topic).unwrap(), PartitionId(p))).await
}

#[tokio::test]
async fn brokers_topics_and_states_are_registered_and_read_back() {
    let zk = zookeeper().await;
    let mut kafka = kafka(&zk.connect_string(), 3).await;
    kafka.create_topic("orders", 6, 2).await.expect("create topic");
    let client = kafka.zk().clone();

    let brokers = registered_brokers(&client).await;
    let mut from_zk: Vec<String> = brokers.values().cloned().collect();
    let mut from_mock: Vec<String> = kafka.bootstrap_servers().split(',').map(str::to_owned).collect();
    from_zk.sort();
    from_mock.sort();
    assert_eq!(from_zk, from_mock, "every mock broker is registered with its real port");
    assert_eq!(brokers.keys().copied().collect::<Vec<_>>(), [BrokerId(1), BrokerId(2), BrokerId(3)]);

    let topic: TopicRegistration = read(&client, "/brokers/topics/orders").await;
    assert_eq!(topic.partition_ids().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
    for (p, replicas) in &topic.partitions {
        assert_eq!(replicas.len(), 2, "replication factor of partition {p}");
        let s = state(&client, "orders", p.0).await;
        let leader = s.leader.expect("a leader");
        assert!(replicas.contains(&leader), "partition {p}: leader {leader} is a replica");
        assert_eq!(s.leader_epoch, 0);
    }
}

#[tokio::test]
async fn registration_follows_broker_outages_and_leader_moves() {
    let zk = zookeeper().await;
    let mut kafka = kafka(&zk.connect_string(), 3).await;
    kafka.create_topic("events", 6, 2).await.expect("create topic");
    let client = kafka.zk().clone();
    // The mock places leaders at random: take down whoever leads partition 0.
    let victim = kafka.partitions("events").unwrap()[&PartitionId(0)].leader.expect("a leader");
    let led: Vec<PartitionId> =
        kafka.partitions("events").unwrap().iter().filter(|(_, m)| m.leader == Some(victim)).map(|(p, _)| *p).collect();

    kafka.broker_down(victim).await.expect("broker down");
    assert!(!registered_brokers(&client).await.contains_key(&victim), "a downed broker's registration is gone");
    assert_eq!(kafka.live_brokers().len(), 2);
    for p in &led {
        let s = state(&client, "events", p.0).await;
        let leader = s.leader.expect("a new leader from the ISR");
        assert_ne!(leader, victim);
        assert!(!s.isr.contains(&victim), "the ISR shrank");
        assert_eq!(s.leader_epoch, 1, "leader epoch bumped");
    }

    kafka.broker_up(victim).await.expect("broker up");
    assert!(registered_brokers(&client).await.contains_key(&victim), "re-registered");
    let s = state(&client, "events", 0).await;
    assert!(s.isr.contains(&victim), "rejoined the ISR");

    kafka.move_leader("events", PartitionId(0), victim).await.expect("move leader");
    let s = state(&client, "events", 0).await;
    assert_eq!((s.leader, s.leader_epoch), (Some(victim), 2));
    assert!(
        kafka.move_leader("events", PartitionId(0), BrokerId(9)).await.is_err(),
        "only a live in-sync replica can lead"
    );
}

#[tokio::test]
async fn a_consumer_assigned_a_partition_by_hand_reads_what_was_produced() {
    let zk = zookeeper().await;
    let mut kafka = kafka(&zk.connect_string(), 3).await;
    kafka.create_topic("payments", 4, 1).await.expect("create topic");
    let produced = kafka.produce_generated("payments", 2000, 100).await.expect("produce");
    assert_eq!(produced.total(), 2000);
    let expected = produced.counts[&PartitionId(2)];
    assert_eq!(expected, 500);

    let bootstrap = registered_brokers(kafka.zk()).await.into_values().collect::<Vec<_>>().join(",");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "zkbalance-testkit")
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("payments", 2, Offset::Beginning).unwrap();
    consumer.assign(&tpl).expect("assign");

    let mut seqs = Vec::new();
    within("partition 2's messages", Duration::from_secs(30), async {
        while (seqs.len() as u64) < expected {
            let m = consumer.recv().await.expect("a message");
            assert_eq!((m.topic(), m.partition()), ("payments", 2));
            assert_eq!(m.offset(), seqs.len() as i64, "offsets are contiguous from 0");
            let seq = parse_generated_value("payments", m.payload().expect("a value")).expect("a generated value");
            assert_eq!(m.key(), Some(seq.to_string().as_bytes()));
            assert_eq!(m.payload().unwrap().len(), 100);
            seqs.push(seq);
        }
    })
    .await;
    let want: Vec<u64> = (0..2000).filter(|s| s % 4 == 2).collect();
    assert_eq!(seqs, want, "exactly partition 2's records, in order");
}

#[tokio::test]
async fn a_cluster_registers_under_a_chroot() {
    let zk = zookeeper().await;
    let chrooted = zk.connect_string_with_chroot("/kafka/prod");
    let mut kafka = kafka(&chrooted, 1).await;
    kafka.create_topic("t", 2, 1).await.expect("create topic");
    let root = zkbalance::testkit::connect(&zk.connect_string(), Duration::from_secs(6)).await.unwrap();
    assert_eq!(root.list_children("/kafka/prod/brokers/ids").await.unwrap(), ["1"]);
    let topic: TopicRegistration = read(&root, "/kafka/prod/brokers/topics/t").await;
    assert_eq!(topic.partitions.len(), 2);
    assert!(root.check_stat("/brokers").await.unwrap().is_none(), "nothing outside the chroot");
}

#[tokio::test]
async fn bad_requests_are_typed_errors_not_crashes() {
    let zk = zookeeper().await;
    let mut kafka = kafka(&zk.connect_string(), 2).await;
    assert!(kafka.create_topic("bad topic", 1, 1).await.is_err());
    assert!(kafka.create_topic("t", 1, 3).await.is_err(), "replication factor above broker count");
    assert!(kafka.produce_generated("missing", 1, 10).await.is_err(), "unknown topic");
    kafka.create_topic("t", 1, 1).await.expect("the cluster still works");
    assert_eq!(kafka.produce_generated("t", 10, 10).await.expect("produce").total(), 10);
}

#[tokio::test]
async fn the_cluster_view_skips_and_counts_malformed_znodes() {
    let zk = zookeeper().await;
    let mut kafka = kafka(&zk.connect_string(), 2).await;
    kafka.create_topic("good", 3, 2).await.expect("create topic");
    let client = kafka.zk().clone();
    let persistent = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client.create("/brokers/ids/99", b"{not json", &persistent).await.unwrap();
    client.create("/brokers/topics/broken", br#"{"version":1,"partitions":{"x":[1]}}"#, &persistent).await.unwrap();
    client.set_data("/brokers/topics/good/partitions/1/state", br#"{"leader":"one"}"#, None).await.unwrap();

    let view = zkbalance::cluster::read(&client.clone().into()).await.expect("ZooKeeper answers");
    assert_eq!(view.brokers.len(), 2, "the two real brokers are read");
    assert_eq!(view.bootstrap_servers().split(',').count(), 2);
    let good = &view.topics[&TopicName::new("good").unwrap()];
    assert_eq!(good.len(), 3);
    assert!(good[&PartitionId(1)].state.is_none(), "the malformed state is skipped");
    assert!(good[&PartitionId(0)].state.is_some());
    let mut skipped: Vec<&str> = view.skipped.iter().map(|e| e.path.as_str()).collect();
    skipped.sort();
    assert_eq!(skipped, ["/brokers/ids/99", "/brokers/topics/broken", "/brokers/topics/good/partitions/1/state"]);
}
