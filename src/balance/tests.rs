//! Scripted scenarios: each feeds inputs and checks the exact actions.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::assign::{GroupShape, Strategy};
use crate::ids::{BrokerId, MemberId, PartitionId, TopicName};
use crate::zk_call::{ZkCallError, ZkCode};
use crate::znode::Flavour;

fn ms(n: u64) -> Time {
    Duration::from_millis(n)
}

fn m(s: &str) -> MemberId {
    MemberId::new(s).unwrap()
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(TopicName::new("t").unwrap(), p)
}

fn cfg(me: &str) -> BalanceConfig {
    let mut c = BalanceConfig::new(m(me), Flavour::Pykafka, Strategy::PykafkaRange);
    c.session_timeout = ms(1000);
    c.suspend_margin = ms(100);
    c.backoff_initial = ms(50);
    c.backoff_max = ms(400);
    c.claim_retries = 6;
    c.reconcile_interval = ms(10_000);
    c.validate().unwrap();
    c
}

/// A group of `members` on topic `t` with `parts` partitions led by broker 1,
/// and the given owners.
fn snapshot(members: &[&str], parts: i32, owners: &[(i32, &str)]) -> GroupSnapshot {
    let mut shape = GroupShape::default();
    for id in members {
        shape.add_member(m(id), [(TopicName::new("t").unwrap(), 1)]);
    }
    shape.add_topic(TopicName::new("t").unwrap(), (0..parts).map(|p| (PartitionId(p), Some(BrokerId(1)))));
    let owners = owners
        .iter()
        .map(|(p, who)| {
            let name = crate::znode::OwnerName::Pykafka { leader: BrokerId(1), partition: PartitionId(*p) };
            (tp(*p), vec![OwnerRecord { member: Some(m(who)), thread: 0, name, czxid: 1 }])
        })
        .collect();
    GroupSnapshot { shape, owners, unreadable: Vec::new() }
}

fn claims(actions: &[Action]) -> BTreeSet<i32> {
    actions.iter().filter_map(|a| if let Action::Claim { tp, .. } = a { Some(tp.partition.0) } else { None }).collect()
}

fn set(ps: &[i32]) -> BTreeSet<TopicPartition> {
    ps.iter().map(|p| tp(*p)).collect()
}

/// Registers `b` and answers its first read with `snap`; returns the actions.
fn joined(b: &mut Balancer, snap: GroupSnapshot) -> Vec<Action> {
    assert_eq!(b.handle(ms(0), Input::Start), [Action::Register]);
    assert!(b.handle(ms(0), Input::Heartbeat { sent_at: ms(0) }).is_empty());
    assert_eq!(b.handle(ms(1), Input::Registered), [Action::ReadGroup]);
    b.handle(ms(2), Input::Snapshot(snap))
}

fn claim_all(b: &mut Balancer, at: u64, ps: &[i32]) -> Vec<Action> {
    let mut out = Vec::new();
    for p in ps {
        out.extend(b.handle(
            ms(at),
            Input::ClaimResult { tp: tp(*p), outcome: ClaimOutcome::Claimed { czxid: 10 + *p as i64 } },
        ));
    }
    out
}

fn machine(member: &str) -> Balancer {
    Balancer::new(cfg(member)).expect("valid settings")
}

#[test]
fn a_lone_member_claims_everything_and_publishes_one_generation_per_change() {
    let mut b = machine("a");
    let actions = joined(&mut b, snapshot(&["a"], 3, &[]));
    assert_eq!(claims(&actions), [0, 1, 2].into());
    let out = claim_all(&mut b, 3, &[0, 1, 2]);
    let gens: Vec<u64> = out
        .iter()
        .filter_map(|a| if let Action::Assigned { generation, .. } = a { Some(*generation) } else { None })
        .collect();
    assert_eq!(gens, [1, 2, 3]);
    assert_eq!(b.deliverable(), set(&[0, 1, 2]));
    assert!(b.is_settled());
}

#[test]
fn an_isolated_change_is_read_at_once_and_a_burst_after_it_is_one_read() {
    let mut b = machine("a");
    joined(&mut b, snapshot(&["a"], 1, &[]));
    claim_all(&mut b, 3, &[0]);
    // The last read went out at 1 ms: a change at 100 ms is acted on at once.
    assert_eq!(b.handle(ms(100), Input::Changed), [Action::ReadGroup], "no wait for an isolated change");
    // A burst while that read is in flight and within its window...
    for t in 101..120 {
        assert!(b.handle(ms(t), Input::Changed).is_empty(), "no second read inside the window");
    }
    b.handle(ms(110), Input::Snapshot(snapshot(&["a"], 1, &[(0, "a")])));
    // ...is one read, at the end of the window that began at 100 ms.
    assert_eq!(b.next_deadline(), Some(ms(150)));
    assert!(b.handle(ms(149), Input::Tick).is_empty());
    assert_eq!(b.handle(ms(150), Input::Tick), [Action::ReadGroup]);
    assert!(b.handle(ms(151), Input::Tick).is_empty(), "only one read in flight");
}

#[test]
fn leaving_partitions_are_revoked_then_deleted_and_only_then_gone() {
    let mut b = machine("a");
    joined(&mut b, snapshot(&["a"], 4, &[]));
    claim_all(&mut b, 3, &[0, 1, 2, 3]);
    b.handle(ms(10), Input::Changed);
    b.handle(ms(60), Input::Tick);
    let out = b.handle(ms(61), Input::Snapshot(snapshot(&["a", "b"], 4, &[(0, "a"), (1, "a"), (2, "a"), (3, "a")])));
    // pykafka range: a keeps 0,1; b gets 2,3.
    assert_eq!(out[0], Action::Revoke(set(&[2, 3])));
    assert!(matches!(&out[1], Action::Assigned { partitions, .. } if partitions.len() == 2), "{out:?}");
    assert_eq!(b.held(), set(&[0, 1, 2, 3]), "still held until deleted");
    let out = b.handle(ms(70), Input::Released(tp(2)));
    assert!(matches!(&out[..], [Action::DeleteOwner { tp: t, .. }] if *t == tp(2)));
    b.handle(ms(71), Input::OwnerDeleted(tp(2)));
    assert_eq!(b.held(), set(&[0, 1, 3]));
    assert!(claims(&b.handle(ms(72), Input::Tick)).is_empty(), "kept partitions are never re-claimed");
}

#[test]
fn a_held_partition_is_watched_and_claimed_once_its_owner_is_gone() {
    let mut b = machine("b");
    let out = joined(&mut b, snapshot(&["a", "b"], 2, &[(1, "a")]));
    assert!(out.contains(&Action::WatchOwner(tp(1))), "{out:?}");
    assert!(claims(&out).is_empty(), "no blind create on a held partition");
    let out = b.handle(ms(20), Input::OwnerGone(tp(1)));
    assert_eq!(claims(&out), [1].into());
    let out = b.handle(ms(21), Input::ClaimResult { tp: tp(1), outcome: ClaimOutcome::Taken });
    assert_eq!(out, [Action::WatchOwner(tp(1))], "raced: wait again");
}

#[test]
fn claims_give_up_after_bounded_retries_and_roll_back_the_round() {
    let mut b = machine("b");
    // b's share of 4 partitions among a, b is 2 and 3; 3 is held by a.
    let out = joined(&mut b, snapshot(&["a", "b"], 4, &[(3, "a")]));
    assert_eq!(claims(&out), [2].into());
    claim_all(&mut b, 3, &[2]);
    let mut now = ms(3);
    let mut gave_up = None;
    let mut claims_sent = 0;
    for _ in 0..100 {
        let Some(next) = b.next_deadline() else { break };
        now = now.max(next);
        let out = b.handle(now, Input::Tick);
        for a in &out {
            match a {
                Action::Claim { .. } => {
                    claims_sent += 1;
                    b.handle(now, Input::ClaimResult { tp: tp(3), outcome: ClaimOutcome::Taken });
                }
                Action::Error(BalanceError::ClaimGaveUp { attempts, .. }) => gave_up = Some((*attempts, out.clone())),
                _ => {}
            }
        }
        if gave_up.is_some() {
            break;
        }
    }
    let (attempts, out) = gave_up.expect("gives up");
    assert_eq!(attempts, 6);
    assert_eq!(claims_sent, 5, "bounded: the first wait plus 5 retries");
    assert!(out.contains(&Action::Revoke(set(&[2]))), "the round's successful claim is rolled back: {out:?}");
    assert!(now >= cfg("b").claim_window(), "the retries outlast the claim window");
    // No spinning: the next read is a full backoff away.
    assert!(b.next_deadline().unwrap() >= now + ms(400));
}

#[test]
fn delivery_stops_when_the_lease_runs_out_and_resumes_on_a_fresh_heartbeat() {
    let mut b = machine("a");
    joined(&mut b, snapshot(&["a"], 1, &[]));
    claim_all(&mut b, 3, &[0]);
    assert!(b.handle(ms(100), Input::Session(SessionEvent::Disconnected)).is_empty(), "a report alone changes nothing");
    // Heartbeat sent at 0: the session cannot expire before 1000; the
    // margin is 100.
    assert_eq!(b.next_deadline(), Some(ms(900)));
    assert_eq!(b.deliverable_at(ms(899)), set(&[0]));
    assert!(b.deliverable_at(ms(900)).is_empty(), "a paused process stops delivering at once on waking");
    assert_eq!(b.handle(ms(900), Input::Tick), [Action::Suspend]);
    assert!(b.deliverable().is_empty());
    let out = b.handle(ms(950), Input::Heartbeat { sent_at: ms(940) });
    assert_eq!(out, [Action::Resume]);
    assert_eq!(b.deliverable(), set(&[0]), "ownership was kept");
    assert_eq!(b.lease_until(), Some(ms(1840)));
    assert_eq!(b.handle(ms(950), Input::Tick), [Action::ReadGroup], "re-read after resuming");
}

#[test]
fn expiry_drops_everything_at_once_and_rejoins() {
    let mut b = machine("a");
    joined(&mut b, snapshot(&["a"], 2, &[]));
    claim_all(&mut b, 3, &[0, 1]);
    let out = b.handle(ms(10), Input::Session(SessionEvent::Expired));
    assert_eq!(out[0], Action::Lost(set(&[0, 1])));
    assert!(out.contains(&Action::NewSession));
    assert!(matches!(out.last(), Some(Action::Assigned { partitions, .. }) if partitions.is_empty()));
    assert!(b.held().is_empty());
    assert_eq!(b.handle(ms(20), Input::Session(SessionEvent::Established)), [Action::Register]);
    assert_eq!(b.handle(ms(21), Input::Registered), [Action::ReadGroup]);
}

#[test]
fn stop_revokes_deletes_then_deregisters_and_closes() {
    let mut b = machine("a");
    joined(&mut b, snapshot(&["a"], 2, &[]));
    claim_all(&mut b, 3, &[0, 1]);
    let out = b.handle(ms(10), Input::Stop);
    assert_eq!(out[0], Action::Revoke(set(&[0, 1])));
    b.handle(ms(11), Input::Released(tp(0)));
    b.handle(ms(11), Input::Released(tp(1)));
    assert!(b.handle(ms(12), Input::OwnerDeleted(tp(0))).is_empty());
    assert_eq!(b.handle(ms(12), Input::OwnerDeleted(tp(1))), [Action::Deregister]);
    assert_eq!(b.handle(ms(13), Input::Deregistered), [Action::Close]);
    assert!(b.is_stopped());
}

#[test]
fn a_claim_that_lands_after_stop_is_deleted_undelivered() {
    let mut b = machine("a");
    joined(&mut b, snapshot(&["a"], 1, &[]));
    b.handle(ms(5), Input::Stop);
    let out = b.handle(ms(6), Input::ClaimResult { tp: tp(0), outcome: ClaimOutcome::Claimed { czxid: 5 } });
    assert!(matches!(&out[..], [Action::DeleteOwner { .. }]), "{out:?}");
    assert_eq!(b.handle(ms(7), Input::OwnerDeleted(tp(0))), [Action::Deregister]);
}

#[test]
fn drift_is_repaired_when_a_read_shows_our_znode_gone() {
    let mut b = machine("a");
    joined(&mut b, snapshot(&["a"], 1, &[]));
    claim_all(&mut b, 3, &[0]);
    b.handle(ms(10), Input::Changed);
    b.handle(ms(60), Input::Tick);
    let out = b.handle(ms(61), Input::Snapshot(snapshot(&["a"], 1, &[])));
    assert_eq!(out[0], Action::Lost(set(&[0])));
    assert_eq!(claims(&out), [0].into(), "and claims it again");
}

#[test]
fn a_snapshot_without_us_re_registers() {
    let mut b = machine("a");
    let out = joined(&mut b, snapshot(&["z"], 1, &[]));
    assert_eq!(out, [Action::Error(BalanceError::MemberVanished), Action::Register]);
}

#[test]
fn the_claim_window_must_outlast_the_session_timeout() {
    let mut c = cfg("a");
    c.claim_retries = 2;
    let err = c.validate().unwrap_err();
    assert_eq!(err.setting, "claim_retries");
    let mut c = cfg("a");
    c.suspend_margin = ms(950);
    assert_eq!(
        c.validate().unwrap_err().setting,
        "suspend_margin",
        "a 50 ms lease is shorter than the 100 ms heartbeat"
    );
}

#[test]
fn a_stop_while_registration_failed_or_fails_leaves_at_once() {
    let failure = || ZkCallError::new("create", "/consumers/g/ids/a", ZkCode::ConnectionLoss);
    // Waiting to retry: nothing to delete, close now.
    let mut b = machine("a");
    b.handle(ms(0), Input::Start);
    b.handle(ms(1), Input::RegisterFailed(failure()));
    assert_eq!(b.handle(ms(2), Input::Stop), [Action::Close]);
    assert!(b.is_stopped());
    // Stopped with the registration in flight: its failure ends it.
    let mut b = machine("a");
    b.handle(ms(0), Input::Start);
    assert!(b.handle(ms(1), Input::Stop).is_empty(), "waits for the registration's answer");
    assert_eq!(b.handle(ms(2), Input::RegisterFailed(failure())), [Action::Close]);
    assert!(b.is_stopped());
    // And its success is undone before closing.
    let mut b = machine("a");
    b.handle(ms(0), Input::Start);
    b.handle(ms(1), Input::Stop);
    assert_eq!(b.handle(ms(2), Input::Registered), [Action::Deregister]);
}

#[test]
fn a_registration_refused_for_want_of_rights_leaves_for_good() {
    let refused = || ZkCallError::new("create", "/consumers/g/ids/a", ZkCode::NoAuth);
    // Nothing held: the member ends at once, saying why.
    let mut b = machine("a");
    b.handle(ms(0), Input::Start);
    assert_eq!(
        b.handle(ms(1), Input::RegisterFailed(refused())),
        [Action::Error(BalanceError::RegistrationRefused(refused())), Action::Close]
    );
    assert!(b.is_stopped() && b.next_deadline().is_none(), "no retry");
    // Refused when registering again with partitions held (our member
    // znode vanished): they are released as at a stop, then it ends.
    let mut b = machine("a");
    joined(&mut b, snapshot(&["a"], 2, &[]));
    claim_all(&mut b, 20, &[0, 1]);
    let out = b.handle(ms(30), Input::Snapshot(snapshot(&[], 2, &[(0, "a"), (1, "a")])));
    assert!(out.contains(&Action::Register), "re-registers: {out:?}");
    let out = b.handle(ms(40), Input::RegisterFailed(refused()));
    assert_eq!(out[0], Action::Error(BalanceError::RegistrationRefused(refused())));
    assert!(out.contains(&Action::Revoke(set(&[0, 1]))), "{out:?}");
    assert!(!b.is_stopped(), "waits for the releases");
    let mut out = Vec::new();
    for p in 0..2 {
        b.handle(ms(50), Input::Released(tp(p)));
        out.extend(b.handle(ms(60), Input::OwnerDeleted(tp(p))));
    }
    assert!(out.contains(&Action::Deregister), "{out:?}");
    assert_eq!(b.handle(ms(70), Input::Deregistered), [Action::Close]);
    assert!(b.is_stopped());
}

#[test]
fn identical_inputs_give_identical_actions() {
    let run = || {
        let mut b = machine("b");
        let mut log = joined(&mut b, snapshot(&["a", "b"], 6, &[(4, "a")]));
        log.extend(b.handle(ms(30), Input::ClaimResult { tp: tp(3), outcome: ClaimOutcome::Taken }));
        (log, b.next_deadline())
    };
    assert_eq!(run(), run());
}

fn unreadable(name: &str) -> Unreadable {
    Unreadable { member: name.into(), path: format!("/consumers/g/ids/{name}"), reason: "empty".into() }
}

fn blocked(actions: &[Action]) -> Option<(Vec<String>, bool)> {
    actions.iter().find_map(|a| match a {
        Action::Blocked { by, past_bound, .. } => Some((by.iter().map(|u| u.member.clone()).collect(), *past_bound)),
        _ => None,
    })
}

/// Reads again at `at` (past any backoff) and answers with `snap`.
fn reread(b: &mut Balancer, at: u64, snap: GroupSnapshot) -> Vec<Action> {
    let mut issued = b.handle(ms(at), Input::Changed);
    b.handle(ms(at + 1000), Input::Heartbeat { sent_at: ms(at + 1000) });
    issued.extend(b.handle(ms(at + 1000), Input::Tick));
    assert!(issued.contains(&Action::ReadGroup), "{issued:?}");
    b.handle(ms(at + 1001), Input::Snapshot(snap))
}

#[test]
fn an_unreadable_member_holds_the_rebalance_until_it_can_be_read() {
    let mut b = machine("a");
    joined(&mut b, snapshot(&["a"], 4, &[]));
    claim_all(&mut b, 3, &[0, 1, 2, 3]);
    let all = [(0, "a"), (1, "a"), (2, "a"), (3, "a")];
    let mut snap = snapshot(&["a"], 4, &all);
    snap.unreadable.push(unreadable("p"));
    let out = reread(&mut b, 10, snap);
    assert_eq!(blocked(&out), Some((vec!["p".to_string()], false)));
    assert!(!out.iter().any(|a| matches!(a, Action::Revoke(_) | Action::Claim { .. })), "{out:?}");
    assert_eq!(b.deliverable(), set(&[0, 1, 2, 3]), "what is owned is kept and delivered");
    assert!(b.is_blocked() && b.next_deadline().is_some(), "a re-read is scheduled");

    // Readable: p counts, and takes the second half (pykafka range).
    let out = reread(&mut b, 2000, snapshot(&["a", "p"], 4, &all));
    assert!(out.contains(&Action::Unblocked), "{out:?}");
    assert!(out.contains(&Action::Revoke(set(&[2, 3]))), "{out:?}");
    assert!(!b.is_blocked());
}

#[test]
fn a_member_joining_a_blocked_group_claims_nothing() {
    let mut b = machine("b");
    let mut snap = snapshot(&["a", "b"], 4, &[(0, "a"), (1, "a")]);
    snap.unreadable.push(unreadable("p"));
    let out = joined(&mut b, snap);
    assert!(claims(&out).is_empty(), "{out:?}");
    assert_eq!(blocked(&out), Some((vec!["p".to_string()], false)));
}

#[test]
fn past_the_bound_pykafka_leaves_the_member_out_and_scala_stays_blocked() {
    for flavour in [Flavour::Pykafka, Flavour::Scala] {
        let mut c = cfg("a");
        c.flavour = flavour;
        c.strategy = if flavour == Flavour::Pykafka { Strategy::PykafkaRange } else { Strategy::ScalaRange };
        c.unreadable_bound = ms(1500);
        let mut b = Balancer::new(c).unwrap();
        joined(&mut b, snapshot(&["a"], 2, &[]));
        claim_all(&mut b, 3, &[0, 1]);
        let mut snap = snapshot(&["a"], 2, &[(0, "a"), (1, "a")]);
        snap.unreadable.push(unreadable("p"));
        // First seen at 1011; still within the bound at 2011.
        assert_eq!(blocked(&reread(&mut b, 10, snap.clone())), Some((vec!["p".into()], false)));
        let out = reread(&mut b, 1010, snap.clone());
        assert_eq!(blocked(&out), None, "nothing new to report: {out:?}");
        let out = reread(&mut b, 2010, snap);
        match flavour {
            Flavour::Pykafka => {
                assert!(
                    out.iter().any(|a| matches!(a, Action::Error(BalanceError::UnreadableLeftOut { .. }))),
                    "{out:?}"
                );
                assert!(out.contains(&Action::Unblocked) && !b.is_blocked(), "{out:?}");
            }
            Flavour::Scala => {
                assert_eq!(blocked(&out), Some((vec!["p".into()], true)), "reported past the bound: {out:?}");
                assert!(b.is_blocked());
            }
        }
        assert_eq!(b.deliverable(), set(&[0, 1]), "{flavour}: still delivering what it owns");
    }
}
