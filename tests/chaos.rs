//! The standing fault suite: real member processes (`zkbc consume`), a real
//! ZooKeeper (standalone or a 3-node ensemble), the mock Kafka cluster,
//! continuous production, and real faults — a cut link, SIGSTOP, ZooKeeper
//! killed, an ensemble leader killed, a rolling restart, a broker down,
//! kill -9 and graceful churn, every member killed at once. After each run
//! the checker judges every delivery (see `zkbalance::testkit::chaos`).
//!
//! Short by default (one fault cycle per scenario); `ZKB_CHAOS_SECS=N`
//! repeats each scenario's faults for N seconds.

mod common;

use std::time::{Duration, Instant};

use zkbalance::testkit::chaos::checker::{History, Verdict};
use zkbalance::testkit::chaos::{ChaosRig, RigSpec};
use zkbalance::znode::Flavour;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Member 0 cut off from ZooKeeper past its session.
    CutLong,
    /// Member 0 cut off for a quarter of its session.
    CutShort,
    /// Member 0 SIGSTOPped past its session.
    PauseLong,
    /// Member 0 SIGSTOPped for a quarter of its session.
    PauseShort,
    /// Member 0 SIGSTOPped past its session while partitioned from
    /// ZooKeeper (packets dropped), waking into the partition: a frozen VM
    /// resuming behind a network fault. It cannot learn that its session is
    /// gone until its own timeouts fire.
    PauseInPartition,
    /// ZooKeeper killed, restarted past the session timeout.
    ZkOutageLong,
    /// ZooKeeper killed, restarted at once.
    ZkOutageShort,
    /// The ensemble's leader killed, restarted.
    LeaderKill,
    /// Every ensemble node restarted in turn.
    RollingRestart,
    /// A broker down, then back.
    BrokerOutage,
    /// A member killed with SIGKILL and replaced.
    Kill9Churn,
    /// A member stopped cleanly and replaced.
    GracefulChurn,
    /// Every member killed at once, then as many started.
    AllKilled,
}

impl Fault {
    /// Faults short enough that nothing may change: no rebalance, no
    /// duplicate.
    fn is_short(self) -> bool {
        matches!(self, Fault::CutShort | Fault::PauseShort | Fault::ZkOutageShort)
    }
}

fn spec(flavour: Flavour, ensemble: usize) -> RigSpec {
    let mut spec = RigSpec::new(env!("CARGO_BIN_EXE_zkbc").into(), common::mock_binary().to_owned());
    spec.flavour = flavour;
    spec.ensemble = ensemble;
    spec
}

fn chaos_secs() -> u64 {
    std::env::var("ZKB_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// One cycle of a fault; `round` picks which member churns.
async fn inflict(rig: &mut ChaosRig, fault: Fault, round: usize, t: Duration) {
    let long = t * 3 / 2 + Duration::from_secs(1);
    let short = t / 4;
    let running = |rig: &ChaosRig| rig.member_ids().len();
    match fault {
        Fault::CutLong | Fault::CutShort => {
            rig.cut(0);
            tokio::time::sleep(if fault == Fault::CutLong { long } else { short }).await;
            rig.restore(0);
        }
        Fault::PauseLong | Fault::PauseShort => {
            // The pause hits a busy member: blocked on its output, with
            // messages fetched and not yet handed over.
            rig.hold_output(0, true);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            rig.pause(0);
            rig.hold_output(0, false);
            tokio::time::sleep(if fault == Fault::PauseLong { long } else { short }).await;
            rig.resume(0);
        }
        Fault::PauseInPartition => {
            rig.hold_output(0, true);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            rig.blackhole(0);
            rig.pause(0);
            rig.hold_output(0, false);
            // Past the server's expiry of its session (timeout plus a tick)
            // and the peers' claims; within its client's own deadline
            // (1.4 × the timeout from the last reply), so it has to try.
            tokio::time::sleep(t + Duration::from_millis(1100)).await;
            rig.resume(0);
            tokio::time::sleep(Duration::from_secs(1)).await;
            rig.restore(0);
        }
        Fault::ZkOutageLong | Fault::ZkOutageShort => {
            rig.zookeeper().kill(0);
            tokio::time::sleep(if fault == Fault::ZkOutageLong { long } else { short }).await;
            rig.zookeeper().restart(0).await.expect("restart ZooKeeper");
        }
        Fault::LeaderKill => {
            let leader = rig.zookeeper().leader().await.expect("an ensemble leader");
            rig.zookeeper().kill(leader);
            tokio::time::sleep(t / 2).await;
            rig.zookeeper().restart(leader).await.expect("restart the old leader");
        }
        Fault::RollingRestart => {
            for node in 0..3 {
                rig.zookeeper().restart(node).await.expect("restart a node");
            }
        }
        Fault::BrokerOutage => {
            rig.broker_down(1).await.expect("broker down");
            tokio::time::sleep(t).await;
            rig.broker_up(1).await.expect("broker up");
        }
        Fault::Kill9Churn | Fault::GracefulChurn => {
            // The oldest member still running goes; a new one comes.
            let victim = running(rig) - 3 + round % 3;
            if fault == Fault::Kill9Churn {
                rig.kill(victim).await;
            } else {
                rig.stop(victim).await.expect("a clean stop");
            }
            rig.add_member().await.expect("a new member");
        }
        Fault::AllKilled => {
            let n = running(rig);
            for i in n - 3..n {
                rig.kill(i).await;
            }
            for _ in 0..3 {
                rig.add_member().await.expect("a new member");
            }
        }
    }
}

async fn scenario(fault: Fault, spec: RigSpec) -> (History, Verdict) {
    let t = spec.session_timeout;
    let settle = t * 6 + Duration::from_secs(20);
    let started = Instant::now();
    let mut rig = ChaosRig::start(spec).await.expect("start the rig");
    rig.settle(settle).await.expect("the group settles");
    let warm = Duration::from_millis(1500);
    tokio::time::sleep(warm).await;
    let budget = Duration::from_secs(chaos_secs());
    let mut round = 0;
    loop {
        inflict(&mut rig, fault, round, t).await;
        round += 1;
        rig.settle(settle).await.unwrap_or_else(|e| panic!("{fault:?}, round {round}: {e}"));
        tokio::time::sleep(warm).await;
        if started.elapsed() >= budget {
            break;
        }
    }
    let (history, verdict) = rig.finish().await.expect("finish the run");
    eprintln!("{fault:?}: {round} round(s) in {:.1} s: {}", started.elapsed().as_secs_f64(), verdict.summary());
    (history, verdict)
}

/// The session timeout a scenario's members use: 3 s, or 6 s where the
/// fault's timing needs wide margins.
fn session_for(fault: Fault) -> Duration {
    match fault {
        Fault::PauseInPartition => Duration::from_secs(6),
        _ => Duration::from_secs(3),
    }
}

async fn holds(fault: Fault, flavour: Flavour, ensemble: usize) {
    common::init_tracing();
    let mut spec = spec(flavour, ensemble);
    spec.session_timeout = session_for(fault);
    let (_, v) = scenario(fault, spec).await;
    assert!(v.violations().is_empty(), "{fault:?}: {}\n{}", v.summary(), v.violations().join("\n"));
    assert!(v.lost.is_empty() && v.produced > 0, "{fault:?}: {}", v.summary());
    if fault.is_short() {
        assert_eq!(v.duplicates, 0, "{fault:?}: a short fault redelivered: {}", v.summary());
        assert_eq!(v.owner_changes, 0, "{fault:?}: a short fault moved partitions: {}", v.summary());
    }
}

/// As [`holds`], on a secured server: what differs is that every new
/// session (after an expiry, after the server comes back) must
/// authenticate, or shake hands, again.
async fn holds_secured(fault: Fault, flavour: Flavour, sasl: bool, tls: bool) {
    common::init_tracing();
    let mut spec = spec(flavour, 1);
    spec.session_timeout = session_for(fault);
    (spec.sasl, spec.tls) = (sasl, tls);
    let (_, v) = scenario(fault, spec).await;
    let mode = format!("{fault:?} (SASL {sasl}, TLS {tls})");
    assert!(v.violations().is_empty(), "{mode}: {}\n{}", v.summary(), v.violations().join("\n"));
    assert!(v.lost.is_empty() && v.produced > 0, "{mode}: {}", v.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_outage_past_the_session_with_sasl_and_tls() {
    holds_secured(Fault::ZkOutageLong, Flavour::Scala, true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_past_the_session_with_sasl() {
    holds_secured(Fault::CutLong, Flavour::Pykafka, true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_past_the_session_over_tls() {
    holds_secured(Fault::CutLong, Flavour::Scala, false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_past_the_session() {
    holds(Fault::CutLong, Flavour::Pykafka, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_cut() {
    holds(Fault::CutShort, Flavour::Scala, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_past_the_session() {
    holds(Fault::PauseLong, Flavour::Scala, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_pause() {
    holds(Fault::PauseShort, Flavour::Pykafka, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_past_the_session_waking_into_a_partition() {
    holds(Fault::PauseInPartition, Flavour::Pykafka, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_outage_past_the_session() {
    holds(Fault::ZkOutageLong, Flavour::Pykafka, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_zookeeper_outage() {
    holds(Fault::ZkOutageShort, Flavour::Scala, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ensemble_leader_killed() {
    holds(Fault::LeaderKill, Flavour::Scala, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_the_ensemble() {
    holds(Fault::RollingRestart, Flavour::Pykafka, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage() {
    holds(Fault::BrokerOutage, Flavour::Pykafka, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_churn() {
    holds(Fault::Kill9Churn, Flavour::Scala, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_churn() {
    holds(Fault::GracefulChurn, Flavour::Pykafka, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_killed_then_restarted() {
    holds(Fault::AllKilled, Flavour::Scala, 1).await;
}

/// The checker is tested too: members that deliver without checking their
/// lease (the `IgnoreLease` mutant) must fail it on a cut and a pause.
async fn caught(fault: Fault, flavour: Flavour) {
    common::init_tracing();
    let mut spec = spec(flavour, 1);
    spec.session_timeout = session_for(fault);
    spec.mutant = Some("ignore-lease".into());
    let (_, v) = scenario(fault, spec).await;
    assert!(
        !v.concurrent.is_empty() || !v.non_owner.is_empty(),
        "{fault:?}: the checker did not catch a consumer that ignores its lease: {}",
        v.summary()
    );
    eprintln!("{fault:?} with the IgnoreLease mutant: caught: {}", v.violations().join(" | "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_ignoring_its_lease_is_caught_on_a_cut() {
    caught(Fault::CutLong, Flavour::Pykafka).await;
}

/// A pure pause past the session gives such a consumer about a millisecond
/// after waking (the client declares the session expired at once, its own
/// deadline long gone), a race it wins in some runs only; waking into a
/// partition it has hundreds of milliseconds, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_ignoring_its_lease_is_caught_on_a_pause() {
    caught(Fault::PauseInPartition, Flavour::Scala).await;
}

/// A debugging aid: `ZKB_CHAOS_TIMELINE=CutShort[,scala][,mutant] cargo test
/// --all-features --test chaos timeline -- --ignored --nocapture` prints a
/// scenario's deliveries per ownership, owner znodes and member events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a debugging aid, run by hand"]
async fn timeline() {
    common::init_tracing();
    let what = std::env::var("ZKB_CHAOS_TIMELINE").unwrap_or_else(|_| "CutLong".into());
    let fault = [
        Fault::CutLong,
        Fault::CutShort,
        Fault::PauseLong,
        Fault::PauseShort,
        Fault::PauseInPartition,
        Fault::ZkOutageLong,
        Fault::ZkOutageShort,
        Fault::LeaderKill,
        Fault::RollingRestart,
        Fault::BrokerOutage,
        Fault::Kill9Churn,
        Fault::GracefulChurn,
        Fault::AllKilled,
    ]
    .into_iter()
    .find(|f| what.starts_with(&format!("{f:?}")))
    .expect("a fault name");
    let flavour = if what.contains("scala") { Flavour::Scala } else { Flavour::Pykafka };
    let ensemble = if matches!(fault, Fault::LeaderKill | Fault::RollingRestart) { 3 } else { 1 };
    let mut spec = spec(flavour, ensemble);
    spec.session_timeout = session_for(fault);
    if what.contains("mutant") {
        spec.mutant = Some("ignore-lease".into());
    }
    let (h, v) = scenario(fault, spec).await;
    let t0 = h.events.first().map_or(0, |e| e.0);
    let rel = |t: u64| (t as f64 - t0 as f64) / 1e6;
    let short = |m: &str| m[m.len().saturating_sub(6)..].to_owned();
    // (partition, member, session, generation) → (first, last, low, high, count).
    type Span = (u64, u64, u64, u64, usize);
    let mut by: std::collections::BTreeMap<(i32, String, u64, u64), Span> = Default::default();
    for d in &h.deliveries {
        let e =
            by.entry((d.partition, short(&d.member), d.session, d.generation)).or_insert((u64::MAX, 0, u64::MAX, 0, 0));
        (e.0, e.1, e.2, e.3, e.4) = (e.0.min(d.at_us), e.1.max(d.at_us), e.2.min(d.offset), e.3.max(d.offset), e.4 + 1);
    }
    for ((p, m, s, g), (a, b, lo, hi, n)) in by {
        eprintln!("p{p} {m} s{s} g{g}: {:.3}..{:.3} s, offsets {lo}..{hi} ({n})", rel(a), rel(b));
    }
    for z in &h.owners {
        eprintln!(
            "owner p{} {} czxid {} created {:.3} last seen {:.3} gone {:?}",
            z.partition,
            short(&z.member),
            z.czxid,
            rel(z.created_us),
            rel(z.last_seen_us),
            z.gone_us.map(rel)
        );
    }
    for (t, m, e) in &h.events {
        eprintln!("event {:.3} {} {e:?}", rel(*t), short(m));
    }
    eprintln!("steady from {:.3}; {}\n{}", rel(h.steady_from_us), v.summary(), v.violations().join("\n"));
}
