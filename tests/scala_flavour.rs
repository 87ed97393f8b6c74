//! A Scala-flavour group: JSON member registrations, owner znodes named by
//! partition holding `<member>-<thread>`, threads assigned by Scala range.

mod common;

use std::time::Duration;

use common::group::{self, SESSION};
use common::within;
use zkbalance::assign::{assign, Assignment, GroupShape, Strategy};
use zkbalance::coord::GroupBuilder;
use zkbalance::znode::{Codec, Flavour, MemberRegistration, ScalaOwner, Subscription};
use zkbalance::{PartitionId, TopicName};

fn member(zk: &str, id: &str) -> GroupBuilder {
    GroupBuilder::default()
        .zookeeper(zk)
        .group("gscala")
        .flavour(Flavour::Scala)
        .topic_streams("events", 2)
        .member_id(id)
        .session_timeout(SESSION)
        .coalesce(Duration::from_millis(20))
        .claim_backoff(Duration::from_millis(50), Duration::from_millis(500))
}

#[tokio::test]
async fn scala_members_write_what_the_scala_consumer_reads() {
    let (zk, _kafka) = group::topic_cluster("events", 5).await;
    let c1 = member(&zk.connect_string(), "gscala_host1-1465512345678-5e6f7a1c").join().await.unwrap();
    let c2 = member(&zk.connect_string(), "gscala_host2-1465512345679-0a1b2c3d").join().await.unwrap();
    let observer = zkbalance::testkit::connect(&zk.connect_string(), SESSION).await.unwrap();

    let topic = TopicName::new("events").unwrap();
    let mut shape = GroupShape::default();
    for m in [c1.id(), c2.id()] {
        shape.add_member(m.clone(), [(topic.clone(), 2)]);
    }
    shape.add_topic(topic.clone(), (0..5).map(|p| (PartitionId(p), None)));
    let want = assign(Strategy::ScalaRange, &shape, &Assignment::new()).unwrap();

    within("owner znodes to match Scala range", Duration::from_secs(10), async {
        loop {
            let mut got = Assignment::new();
            for child in observer.list_children("/consumers/gscala/owners/events").await.unwrap_or_default() {
                let path = format!("/consumers/gscala/owners/events/{child}");
                if let Ok((data, _)) = observer.get_data(&path).await {
                    let owner = ScalaOwner::decode(&path, &data).expect("a Scala owner payload");
                    let p = child.parse::<i32>().expect("Scala owner znodes are named by partition");
                    got.insert(
                        zkbalance::TopicPartition::new(topic.clone(), p),
                        zkbalance::assign::Slot::new(owner.member, owner.thread),
                    );
                }
            }
            if got == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await;
    // Two streams each over five partitions: the first thread takes two.
    let first = want.values().filter(|s| s.member == *c1.id() && s.thread == 0).count();
    assert_eq!(first, 2);

    let (data, _) = observer.get_data(&format!("/consumers/gscala/ids/{}", c1.id())).await.unwrap();
    let text = String::from_utf8(data.clone()).unwrap();
    assert!(text.starts_with(r#"{"version":1,"subscription":{"events":2},"pattern":"static","timestamp":""#), "{text}");
    let MemberRegistration::Scala(reg) = MemberRegistration::decode("/m", &data).unwrap() else {
        panic!("not Scala JSON")
    };
    assert_eq!(reg.subscription, Subscription::Static(vec![(topic.clone(), 2)]));
    assert!(
        observer.check_stat("/consumers/gscala/offsets/events").await.unwrap().is_some(),
        "the offsets directory exists"
    );
    c1.stop().await.unwrap();
    c2.stop().await.unwrap();
}
