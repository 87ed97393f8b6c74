//! The checker on histories written by hand: each rule fires on the
//! history that breaks it and stays silent on a clean hand-over.

use super::*;

const MS: u64 = 1_000;

fn d(member: &str, session: u64, generation: u64, partition: i32, offset: u64, at_ms: u64) -> Delivery {
    Delivery { member: member.into(), session, generation, partition, offset, at_us: at_ms * MS, seq: at_ms }
}

fn owner(member: &str, czxid: i64, from_ms: u64, last_ms: u64, gone_ms: Option<u64>) -> OwnerZnode {
    OwnerZnode {
        partition: 0,
        member: member.into(),
        czxid,
        created_us: from_ms * MS,
        last_seen_us: last_ms * MS,
        gone_us: gone_ms.map(|g| g * MS),
    }
}

fn started(members: &[&str]) -> Vec<(u64, String, MemberEvent)> {
    members.iter().map(|m| (0, m.to_string(), MemberEvent::Started)).collect()
}

/// A owns partition 0 and delivers 0..5, releases it at 55 ms; B claims at
/// 58 ms and delivers 5..10.
fn clean_handover() -> History {
    let mut deliveries: Vec<Delivery> = (0..5).map(|o| d("a", 0, 1, 0, o, 10 + o * 10)).collect();
    deliveries.extend((5..10).map(|o| d("b", 0, 1, 0, o, 60 + (o - 5) * 10)));
    History {
        deliveries,
        owners: vec![owner("a", 10, 5, 50, Some(60)), owner("b", 20, 58, 200, None)],
        events: started(&["a", "b"]),
        produced: BTreeMap::from([(0, 10)]),
        steady_from_us: 0,
        wind_down_us: 200 * MS,
        end_us: 200 * MS,
        ..History::default()
    }
}

const T: Duration = Duration::from_millis(3000);

#[test]
fn a_clean_handover_passes() {
    let v = check(&clean_handover(), T);
    assert!(v.violations().is_empty(), "{:?}", v.violations());
    assert_eq!((v.deliveries, v.produced, v.duplicates), (10, 10, 0));
    assert_eq!(v.owner_changes, 2, "both owner znodes were created after the start");
}

#[test]
fn a_zombie_delivering_after_the_handover_is_concurrent_and_not_the_owner() {
    let mut h = clean_handover();
    // A keeps delivering (new offsets) after B claimed and started.
    h.deliveries.push(d("a", 0, 1, 0, 10, 75));
    h.produced.insert(0, 11);
    let v = check(&h, T);
    assert_eq!(v.concurrent.len(), 1, "{:?}", v.concurrent);
    assert_eq!(v.non_owner.len(), 1, "{:?}", v.non_owner);
    assert!(v.non_owner[0].contains("while b's owner znode"), "{}", v.non_owner[0]);
}

#[test]
fn a_delivery_after_the_own_owner_znode_is_gone_is_by_a_non_owner() {
    let mut h = clean_handover();
    h.owners.retain(|z| z.member == "a");
    h.deliveries.retain(|x| x.member == "a");
    h.deliveries.push(d("a", 0, 1, 0, 5, 80));
    h.produced.insert(0, 6);
    let v = check(&h, T);
    assert!(v.non_owner.iter().any(|x| x.contains("without an owner znode")), "{:?}", v.non_owner);
}

#[test]
fn repeats_after_a_kill_or_an_expiry_are_attributed_and_others_are_flagged() {
    let mut h = clean_handover();
    // B redelivers 3 and 4: nothing ended A's ownership uncleanly.
    h.deliveries.push(d("b", 0, 1, 0, 3, 150));
    h.deliveries.push(d("b", 0, 1, 0, 4, 160));
    let v = check(&h, T);
    assert_eq!((v.duplicates, v.attributed, v.unattributed.len()), (2, 0, 2), "{:?}", v.unattributed);
    // The same repeats after A was killed are explained by the kill.
    let mut killed = h.clone();
    killed.events.push((55 * MS, "a".into(), MemberEvent::Killed));
    let v = check(&killed, T);
    assert_eq!((v.duplicates, v.attributed), (2, 2), "{:?}", v.unattributed);
    // Or by A's session ending: A delivers again under a newer session.
    let mut expired = h.clone();
    expired.deliveries.push(d("a", 1, 3, 0, 10, 190));
    expired.produced.insert(0, 11);
    let v = check(&expired, T);
    assert_eq!(v.attributed, 2, "{:?}", v.unattributed);
    // Or its member znode vanishing before any clean stop.
    let mut vanished = h;
    vanished.members.push(MemberZnode {
        member: "a".into(),
        ephemeral_owner: 7,
        created_us: 0,
        gone_us: Some(56 * MS),
    });
    let v = check(&vanished, T);
    assert_eq!(v.attributed, 2, "{:?}", v.unattributed);
    // But not if it vanished because A was asked to stop.
    vanished.events.push((50 * MS, "a".into(), MemberEvent::Stopping));
    assert_eq!(check(&vanished, T).attributed, 0);
}

#[test]
fn a_lost_offset_a_rewind_and_a_double_owner_are_found() {
    let mut h = clean_handover();
    h.produced.insert(0, 12);
    h.deliveries.push(d("b", 0, 1, 0, 7, 120));
    h.owners.push(owner("c", 30, 85, 110, Some(130)));
    let v = check(&h, T);
    assert_eq!(v.lost, ["0@10", "0@11"]);
    assert_eq!(v.non_monotonic.len(), 1, "{:?}", v.non_monotonic);
    assert_eq!(v.double_owners.len(), 1, "{:?}", v.double_owners);
    assert!(v.non_owner.iter().any(|x| x.contains("c's owner znode")), "{:?}", v.non_owner);
}

#[test]
fn a_partition_unowned_past_twice_the_session_is_reported_only_while_members_run() {
    let mut h = clean_handover();
    h.owners.retain(|z| z.member == "a");
    h.deliveries.retain(|x| x.member == "a");
    h.produced.insert(0, 5);
    h.end_us = 10_000 * MS;
    let v = check(&h, T);
    assert_eq!(v.unowned.len(), 1, "{:?}", v.unowned);
    // Nobody was up after 100 ms: nobody could have owned it.
    h.events.push((100 * MS, "a".into(), MemberEvent::Gone));
    h.events.push((100 * MS, "b".into(), MemberEvent::Gone));
    assert!(check(&h, T).unowned.is_empty());
}

#[test]
fn an_owner_znode_nobody_could_read_neither_credits_nor_accuses() {
    let mut h = clean_handover();
    // An unread owner znode over B's whole span, and one over A's delivery
    // at 80 ms after A's own znode went.
    h.owners.push(owner("", -1, 58, 200, None));
    h.deliveries.retain(|x| x.member == "a");
    h.owners.retain(|z| z.member != "b");
    h.deliveries.push(d("a", 0, 1, 0, 5, 80));
    h.produced.insert(0, 6);
    let v = check(&h, T);
    assert!(v.double_owners.is_empty(), "{:?}", v.double_owners);
    assert_eq!(v.non_owner.len(), 1, "{:?}", v.non_owner);
    assert!(v.non_owner[0].contains("without an owner znode"), "{}", v.non_owner[0]);
    // It does count as an owner for the unowned check.
    h.end_us = 10_000 * MS;
    assert!(check(&h, T).unowned.is_empty());
}
