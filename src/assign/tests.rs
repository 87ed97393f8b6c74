use std::collections::BTreeMap;

use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};
use proptest::strategy::Strategy as Generator;

use super::*;

fn t(s: &str) -> TopicName {
    TopicName::new(s).unwrap()
}

fn m(s: &str) -> MemberId {
    MemberId::new(s).unwrap()
}

fn shape(members: &[(&str, &[(&str, u32)])], topics: &[(&str, i32, i32)]) -> GroupShape {
    let mut g = GroupShape::default();
    for (id, subs) in members {
        g.add_member(m(id), subs.iter().map(|(topic, n)| (t(topic), *n)));
    }
    for (topic, n, leader) in topics {
        g.add_topic(t(topic), (0..*n).map(|p| (PartitionId(p), Some(BrokerId(*leader)))));
    }
    g
}

/// Partitions of `topic` owned by `member`, in partition order.
fn owned(a: &Assignment, topic: &str, member: &str) -> Vec<i32> {
    a.iter()
        .filter(|(tp, s)| tp.topic.as_str() == topic && s.member.as_str() == member)
        .map(|(tp, _)| tp.partition.0)
        .collect()
}

#[test]
fn pykafka_range_sorts_partitions_as_strings() {
    let g = shape(&[("a", &[("t", 1)]), ("b", &[("t", 1)])], &[("t", 12, 1)]);
    let a = assign(Strategy::PykafkaRange, &g, &Assignment::new()).unwrap();
    // "t-1-0" < "t-1-1" < "t-1-10" < "t-1-11" < "t-1-2" < ...
    assert_eq!(owned(&a, "t", "a"), [0, 1, 2, 3, 10, 11]);
    assert_eq!(owned(&a, "t", "b"), [4, 5, 6, 7, 8, 9]);
}

#[test]
fn pykafka_range_orders_by_leader_first() {
    let mut g = shape(&[("a", &[("t", 1)]), ("b", &[("t", 1)])], &[]);
    g.add_topic(t("t"), [(PartitionId(0), Some(BrokerId(2))), (PartitionId(1), Some(BrokerId(1)))]);
    let a = assign(Strategy::PykafkaRange, &g, &Assignment::new()).unwrap();
    assert_eq!((owned(&a, "t", "a"), owned(&a, "t", "b")), (vec![1], vec![0]), "\"t-1-1\" sorts before \"t-2-0\"");
}

#[test]
fn pykafka_round_robin_deals_in_string_order() {
    let g = shape(&[("a", &[("t", 1)]), ("b", &[("t", 1)])], &[("t", 12, 1)]);
    let a = assign(Strategy::PykafkaRoundRobin, &g, &Assignment::new()).unwrap();
    // Order 0,1,10,11,2,3,...,9 dealt a,b,a,b...
    assert_eq!(owned(&a, "t", "a"), [0, 2, 4, 6, 8, 10]);
    assert_eq!(owned(&a, "t", "b"), [1, 3, 5, 7, 9, 11]);
}

#[test]
fn pykafka_members_only_share_their_own_topic() {
    let g = shape(&[("a", &[("x", 1)]), ("b", &[("y", 1)]), ("c", &[("y", 1)])], &[("x", 2, 1), ("y", 2, 1)]);
    let a = assign(Strategy::PykafkaRange, &g, &Assignment::new()).unwrap();
    assert_eq!(owned(&a, "x", "a"), [0, 1]);
    assert_eq!((owned(&a, "y", "b"), owned(&a, "y", "c")), (vec![0], vec![1]));
}

#[test]
fn scala_range_matches_the_kafka_documentation_example() {
    // Two consumers with two streams each and five partitions:
    // p0, p1 -> C1-0; p2 -> C1-1; p3 -> C2-0; p4 -> C2-1.
    let g = shape(&[("C1", &[("t", 2)]), ("C2", &[("t", 2)])], &[("t", 5, 1)]);
    let a = assign(Strategy::ScalaRange, &g, &Assignment::new()).unwrap();
    let slot = |p: i32| a[&TopicPartition::new(t("t"), p)].to_string();
    assert_eq!((0..5).map(slot).collect::<Vec<_>>(), ["C1-0", "C1-0", "C1-1", "C2-0", "C2-1"]);
}

#[test]
fn scala_threads_sort_as_strings() {
    let g = shape(&[("c", &[("t", 11)])], &[("t", 11, 1)]);
    let a = assign(Strategy::ScalaRange, &g, &Assignment::new()).unwrap();
    // Thread order c-0, c-1, c-10, c-2, ...: partition 2 goes to c-10.
    assert_eq!(a[&TopicPartition::new(t("t"), 2)].thread, 10);
    assert_eq!(a[&TopicPartition::new(t("t"), 3)].thread, 2);
}

#[test]
fn java_hash_code_matches_java() {
    assert_eq!(legacy::java::hash("hello"), 99162322);
    assert_eq!(legacy::java::hash(""), 0);
    assert_eq!(
        legacy::java::hash("[orders,10]"),
        "[orders,10]".bytes().fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(b as i32))
    );
}

#[test]
fn scala_round_robin_orders_by_hash_and_needs_identical_subscriptions() {
    let g = shape(&[("a", &[("t", 1)]), ("b", &[("t", 1)])], &[("t", 4, 1)]);
    let a = assign(Strategy::ScalaRoundRobin, &g, &Assignment::new()).unwrap();
    let mut order: Vec<i32> = (0..4).collect();
    order.sort_by_key(|p| legacy::java::hash(&format!("[t,{p}]")));
    for (i, p) in order.iter().enumerate() {
        assert_eq!(a[&TopicPartition::new(t("t"), *p)].member.as_str(), ["a", "b"][i % 2], "partition {p}");
    }
    let mixed = shape(&[("a", &[("t", 1), ("u", 1)]), ("b", &[("t", 1)])], &[("t", 2, 1), ("u", 2, 1)]);
    assert!(matches!(
        assign(Strategy::ScalaRoundRobin, &mixed, &Assignment::new()),
        Err(AssignError::MixedSubscriptions { .. })
    ));
}

#[test]
fn sticky_keeps_a_balanced_assignment_and_moves_only_excess() {
    let g = shape(&[("a", &[("t", 1)]), ("b", &[("t", 1)])], &[("t", 4, 1)]);
    let current: Assignment = [(0, "b"), (1, "a"), (2, "b"), (3, "a")]
        .iter()
        .map(|(p, o)| (TopicPartition::new(t("t"), *p), Slot::new(m(o), 0)))
        .collect();
    assert_eq!(assign(Strategy::Sticky, &g, &current).unwrap(), current, "balanced: nothing moves");
    let g3 = shape(&[("a", &[("t", 1)]), ("b", &[("t", 1)]), ("c", &[("t", 1)])], &[("t", 4, 1)]);
    let next = assign(Strategy::Sticky, &g3, &current).unwrap();
    let moved = next.iter().filter(|(tp, s)| current[*tp] != **s).count();
    assert_eq!(moved, 1, "a newcomer takes exactly one partition: {next:?}");
}

fn arb_shape() -> impl Generator<Value = (GroupShape, Assignment)> {
    (1..6usize, 1..4u64, proptest::collection::vec(1..40i32, 1..4), any::<u64>()).prop_map(
        |(members, streams, topics, seed)| {
            let mut rng = seed | 1;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut g = GroupShape::default();
            for i in 0..members {
                let subs: Vec<_> =
                    (0..topics.len()).map(|j| (t(&format!("t{j}")), 1 + (next() % streams) as u32)).collect();
                g.add_member(m(&format!("host-{}:{i}", next() % 100)), subs);
            }
            for (j, n) in topics.iter().enumerate() {
                g.add_topic(t(&format!("t{j}")), (0..*n).map(|p| (PartitionId(p), Some(BrokerId((p % 3) + 1)))));
            }
            // A random current ownership: some partitions unowned, the rest on
            // random subscribed threads.
            let mut current = Assignment::new();
            for (topic, ps) in &g.topics {
                let mut candidates = g.slots_for(topic);
                candidates.sort();
                for p in ps.keys() {
                    let r = next();
                    if r % 4 != 0 {
                        current.insert(
                            TopicPartition::new(topic.clone(), *p),
                            candidates[(r / 4) as usize % candidates.len()].clone(),
                        );
                    }
                }
            }
            (g, current)
        },
    )
}

/// Max minus min partitions per thread (`per_member` counts members, as
/// pykafka assigns to members).
fn spread(g: &GroupShape, a: &Assignment, topic: &TopicName, per_member: bool) -> usize {
    let mut counts: BTreeMap<Slot, usize> = BTreeMap::new();
    for s in g.slots_for(topic) {
        if !per_member || s.thread == 0 {
            counts.insert(s, 0);
        }
    }
    for (tp, s) in a.iter().filter(|(tp, _)| &tp.topic == topic) {
        let key = if per_member { Slot::new(s.member.clone(), 0) } else { s.clone() };
        *counts.get_mut(&key).unwrap_or_else(|| panic!("{tp} went to an unsubscribed thread {s}")) += 1;
    }
    counts.values().max().unwrap() - counts.values().min().unwrap()
}

proptest! {
    #[test]
    fn every_strategy_assigns_each_partition_once_balanced_and_deterministically((g, current) in arb_shape()) {
        let total: usize = g.topics.values().map(|p| p.len()).sum();
        for strategy in [Strategy::PykafkaRange, Strategy::PykafkaRoundRobin, Strategy::ScalaRange, Strategy::ScalaRoundRobin, Strategy::Sticky] {
            let a = match assign(strategy, &g, &current) {
                Ok(a) => a,
                Err(AssignError::MixedSubscriptions { .. }) => {
                    prop_assert_eq!(strategy, Strategy::ScalaRoundRobin);
                    continue;
                }
            };
            prop_assert_eq!(a.len(), total, "{:?}: every partition exactly once", strategy);
            let per_member = matches!(strategy, Strategy::PykafkaRange | Strategy::PykafkaRoundRobin);
            if strategy != Strategy::ScalaRoundRobin {
                for topic in g.topics.keys() {
                    prop_assert!(spread(&g, &a, topic, per_member) <= 1, "{:?} unbalanced on {}", strategy, topic);
                }
            }
            prop_assert_eq!(&assign(strategy, &g.clone(), &current.clone()).unwrap(), &a, "deterministic");
        }
    }

    #[test]
    fn sticky_keeps_every_partition_it_can((g, current) in arb_shape()) {
        let a = assign(Strategy::Sticky, &g, &current).unwrap();
        // Re-running on its own output changes nothing: a fixpoint, so
        // members reading owners at different moments converge.
        prop_assert_eq!(&assign(Strategy::Sticky, &g, &a).unwrap(), &a);
        for topic in g.topics.keys() {
            let mut threads = g.slots_for(topic);
            threads.sort();
            let n = g.topics[topic].len();
            let k = threads.len();
            let mut held: Vec<usize> = threads.iter().map(|s| current.iter().filter(|(tp, o)| &tp.topic == topic && *o == s).count()).collect();
            held.sort_unstable_by(|a, b| b.cmp(a));
            // The most any balanced assignment can keep: big quotas to the
            // biggest holders.
            let best: usize = held.iter().enumerate().map(|(i, h)| (*h).min(n / k + usize::from(i < n % k))).sum();
            let kept = a.iter().filter(|(tp, s)| &tp.topic == topic && current.get(*tp) == Some(*s)).count();
            prop_assert_eq!(kept, best, "sticky moved more than needed on {}", topic);
        }
    }
}
