//! The legacy consumers' strategies, ordered exactly as they order.

use std::cmp::Ordering;

use super::{range_of, AssignError, Assignment, GroupShape, Slot};
use crate::ids::TopicPartition;

#[derive(Debug, Clone, Copy)]
pub(super) enum Deal {
    Range,
    RoundRobin,
}

/// pykafka decides per topic among the members whose registration names that
/// topic, one stream each. Members sort as Python sorts `bytes`; partitions by
/// `"<topic>-<leader>-<id>"` as a string, so `1-10` comes before `1-2`.
pub(super) fn pykafka(shape: &GroupShape, deal: Deal) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partitions) in shape.subscribed_topics() {
        let mut members: Vec<_> = shape.members.iter().filter(|(_, s)| s.contains_key(topic)).map(|(m, _)| m).collect();
        members.sort_by(|a, b| a.as_str().as_bytes().cmp(b.as_str().as_bytes()));
        let mut parts: Vec<(String, _)> =
            partitions.iter().map(|(p, leader)| (format!("{topic}-{}-{p}", leader.map_or(-1, |l| l.0)), *p)).collect();
        parts.sort();
        let (k, n) = (members.len(), parts.len());
        for (i, (_, p)) in parts.iter().enumerate() {
            let owner = match deal {
                Deal::RoundRobin => i % k,
                Deal::Range => (0..k).find(|&m| range_of(m, k, n).contains(&i)).expect("ranges cover every index"),
            };
            out.insert(TopicPartition::new(topic.clone(), *p), Slot::new(members[owner].clone(), 0));
        }
    }
    out
}

/// Java's `String.compareTo`: UTF-16 code unit order.
fn java_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Java's `String.hashCode`.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

fn sorted_threads(mut slots: Vec<Slot>) -> Vec<Slot> {
    slots.sort_by(|a, b| java_cmp(&a.to_string(), &b.to_string()));
    slots
}

/// Scala `RangeAssignor`: per topic, threads sorted by `"<member>-<thread>"`,
/// partitions numerically, the first threads taking one extra.
pub(super) fn scala_range(shape: &GroupShape) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partitions) in shape.subscribed_topics() {
        let threads = sorted_threads(shape.slots_for(topic));
        let parts: Vec<_> = partitions.keys().copied().collect();
        for (i, slot) in threads.iter().enumerate() {
            for idx in range_of(i, threads.len(), parts.len()) {
                out.insert(TopicPartition::new(topic.clone(), parts[idx]), slot.clone());
            }
        }
    }
    out
}

/// Scala `RoundRobinAssignor` (0.10): all threads of all topics, deduplicated
/// and sorted, walked as a circle; topic-partitions ordered by the Java hash
/// of `"[topic,partition]"` (ties, which Scala leaves to map order, broken by
/// topic and partition); each takes the next thread subscribed to its topic.
pub(super) fn scala_round_robin(shape: &GroupShape) -> Result<Assignment, AssignError> {
    let topics: Vec<_> = shape.subscribed_topics().collect();
    let Some((head, _)) = topics.first() else { return Ok(Assignment::new()) };
    let names = |t| {
        let mut v: Vec<String> = sorted_threads(shape.slots_for(t)).iter().map(ToString::to_string).collect();
        v.dedup();
        v
    };
    let expected = names(head);
    for (t, _) in &topics[1..] {
        let found = names(t);
        if found != expected {
            return Err(AssignError::MixedSubscriptions { topic: (*t).clone(), found, expected });
        }
    }
    let threads = sorted_threads(shape.slots_for(head));
    let mut tps: Vec<TopicPartition> =
        topics.iter().flat_map(|(t, ps)| ps.keys().map(|p| TopicPartition::new((*t).clone(), *p))).collect();
    tps.sort_by_key(|tp| (java_hash(&format!("[{},{}]", tp.topic, tp.partition)), tp.clone()));
    // Subscriptions are identical, so every thread is subscribed to every
    // topic and the "next subscribed thread" is simply the next thread.
    Ok(tps.into_iter().enumerate().map(|(i, tp)| (tp, threads[i % threads.len()].clone())).collect())
}

#[cfg(test)]
pub(super) mod java {
    pub(crate) fn hash(s: &str) -> i32 {
        super::java_hash(s)
    }
}
