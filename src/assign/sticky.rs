//! Minimal movement: keep what each thread owns up to its quota, deal the
//! rest to threads under quota.

use std::collections::{BTreeMap, BTreeSet};

use super::{Assignment, GroupShape, Slot};
use crate::ids::TopicPartition;

/// Per topic: every subscribed thread gets `n / k` or `n / k + 1`
/// partitions. The `n % k` larger quotas go to the threads that already own
/// the most (ties by thread order), so a balanced assignment is kept whole
/// and an unbalanced one moves only its excess.
pub(super) fn assign(shape: &GroupShape, current: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partitions) in shape.subscribed_topics() {
        let mut threads = shape.slots_for(topic);
        threads.sort();
        if threads.is_empty() {
            continue;
        }
        let (k, n) = (threads.len(), partitions.len());
        let mut held: BTreeMap<&Slot, Vec<TopicPartition>> = threads.iter().map(|s| (s, Vec::new())).collect();
        for p in partitions.keys() {
            let tp = TopicPartition::new(topic.clone(), *p);
            if let Some(list) = current.get(&tp).and_then(|owner| held.get_mut(owner)) {
                list.push(tp);
            }
        }
        let mut by_holding: Vec<&Slot> = threads.iter().collect();
        by_holding.sort_by_key(|s| std::cmp::Reverse(held[s].len()));
        let quota: BTreeMap<&Slot, usize> =
            by_holding.iter().enumerate().map(|(i, s)| (*s, n / k + usize::from(i < n % k))).collect();
        let mut free: BTreeSet<TopicPartition> =
            partitions.keys().map(|p| TopicPartition::new(topic.clone(), *p)).collect();
        let mut kept: BTreeMap<&Slot, usize> = BTreeMap::new();
        for (slot, list) in &held {
            for tp in list.iter().take(quota[slot]) {
                free.remove(tp);
                out.insert(tp.clone(), (*slot).clone());
            }
            kept.insert(slot, list.len().min(quota[slot]));
        }
        let mut free = free.into_iter();
        for slot in &threads {
            for tp in free.by_ref().take(quota[slot] - kept[slot]) {
                out.insert(tp, slot.clone());
            }
        }
    }
    out
}
