//! The testkit's real ZooKeeper: standalone, ensemble, session expiry, and
//! the guarantee that no server outlives its test.

mod common;

use std::time::Duration;

use common::{ok, within, zookeeper};
use zkbalance::testkit::{connect, wait_until, Mode, ZkLink, ZooKeeper};
use zookeeper_client::{Acls, CreateMode, EventType, SessionState};

const SESSION: Duration = Duration::from_millis(2000);

#[tokio::test]
async fn session_expiry_removes_an_ephemeral_znode() {
    let zk = zookeeper().await;
    let link = ok(ZkLink::new(&zk).await);
    let victim = ok(connect(&link.connect_string(), SESSION).await);
    let observer = ok(connect(&zk.connect_string(), SESSION).await);
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    victim.create("/probe", b"alive", &ephemeral).await.expect("create ephemeral");
    let (stat, watch) = observer.check_and_watch_stat("/probe").await.expect("watch");
    assert!(stat.is_some(), "the ephemeral exists before expiry");
    let mut states = victim.state_watcher();

    ok(link.expire(victim.session(), SESSION).await);

    let event = within("the ephemeral's deletion", Duration::from_secs(5), watch.changed()).await;
    assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeDeleted, "/probe"));
    let terminal = within("the victim to learn it expired", Duration::from_secs(10), async {
        loop {
            let s = states.changed().await;
            if s.is_terminated() {
                return s;
            }
        }
    })
    .await;
    assert_eq!(terminal, SessionState::Expired);
    assert!(matches!(victim.get_data("/").await, Err(zookeeper_client::Error::SessionExpired)));
}

#[tokio::test]
async fn a_cut_link_disconnects_without_expiring_a_session() {
    let zk = zookeeper().await;
    let link = ok(ZkLink::new(&zk).await);
    let client = ok(connect(&link.connect_string(), Duration::from_secs(4)).await);
    let mut states = client.state_watcher();
    link.cut();
    let s = within("Disconnected", Duration::from_secs(5), states.changed()).await;
    assert_eq!(s, SessionState::Disconnected);
    link.restore();
    let s = within("SyncConnected", Duration::from_secs(5), states.changed()).await;
    assert_eq!(s, SessionState::SyncConnected, "a short cut keeps the session");
    client.get_data("/").await.expect("the session still works");
}

#[tokio::test]
async fn ensemble_keeps_serving_after_its_leader_is_killed() {
    common::init_tracing();
    let mut zk = ok(ZooKeeper::start(3).await);
    let modes = zk.modes().await;
    assert_eq!(modes.iter().filter(|m| **m == Some(Mode::Leader)).count(), 1, "one leader: {modes:?}");
    let leader = zk.leader().await.expect("a leader");
    let client = ok(connect(&zk.connect_string(), Duration::from_secs(6)).await);
    let session = client.session_id();
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/survives", b"before", &persistent).await.expect("create");

    zk.kill(leader);
    let new_leader = ok(wait_until("a new leader among the survivors", Duration::from_secs(15), || async {
        zk.leader().await.filter(|l| *l != leader)
    })
    .await);
    assert_ne!(new_leader, leader);

    // The client reconnects to a survivor and keeps its session.
    let wrote = ok(wait_until("a write through the surviving quorum", Duration::from_secs(15), || async {
        client.set_data("/survives", b"after", None).await.ok()
    })
    .await);
    assert_eq!(wrote.version, 1);
    assert_eq!(client.session_id(), session, "the session survives a leader loss");
    let (data, _) = client.get_data("/survives").await.expect("read");
    assert_eq!(data, b"after");

    ok(zk.restart(leader).await);
    assert_eq!(zk.modes().await[leader], Some(Mode::Follower), "the old leader rejoins as a follower");
}

/// Run only as a child of `a_killed_test_process_leaves_no_zookeeper_behind`.
#[tokio::test]
#[ignore = "helper: runs only when re-executed by another test"]
async fn helper_hold_zookeeper_until_killed() {
    let zk = ZooKeeper::standalone().await.expect("start");
    println!("ZKPID={}", zk.pid(0).expect("running"));
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test]
async fn a_killed_test_process_leaves_no_zookeeper_behind() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut helper = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_hold_zookeeper_until_killed", "--ignored", "--nocapture"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("re-executing this test binary");
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    let jvm: u32 = within("the helper to report its ZooKeeper pid", Duration::from_secs(60), async {
        loop {
            let line =
                lines.next_line().await.expect("helper output").expect("helper exited before starting ZooKeeper");
            if let Some(pid) = line.strip_prefix("ZKPID=") {
                return pid.trim().parse().expect("a pid");
            }
        }
    })
    .await;
    assert!(std::path::Path::new(&format!("/proc/{jvm}")).exists(), "the JVM runs while its owner lives");

    helper.start_kill().expect("SIGKILL the helper");
    helper.wait().await.expect("reap the helper");

    ok(wait_until("the orphaned JVM to die with its owner", Duration::from_secs(10), || async {
        let stat = std::fs::read_to_string(format!("/proc/{jvm}/stat")).ok();
        // Gone, or a zombie awaiting its reaper: either way it no longer runs.
        stat.is_none_or(|s| s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'))).then_some(())
    })
    .await);
}

#[tokio::test]
async fn sweep_kills_processes_whose_owner_is_gone() {
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_owner = gone.id();
    gone.wait().unwrap();
    let marker = format!("{}{dead_owner}", zkbalance::testkit::OWNER_MARKER);
    // `cat - <marker>` blocks on its open stdin and carries the marker in argv.
    let mut orphan =
        std::process::Command::new("cat").args(["-", &marker]).stdin(std::process::Stdio::piped()).spawn().unwrap();
    // Until the child has exec'ed, its /proc cmdline is still ours and shows
    // no marker; a concurrent test's sweep (every spawn sweeps) may also have
    // killed it already. Wait for either, then sweep.
    let pid = orphan.id();
    ok(wait_until("the orphan to show its marker", Duration::from_secs(5), || {
        let found = zkbalance::testkit::orphans().iter().any(|(p, _)| *p == pid);
        let gone = !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"));
        async move { (found || gone).then_some(()) }
    })
    .await);
    zkbalance::testkit::sweep_orphans();
    let status = within("the orphan to die", Duration::from_secs(5), async {
        loop {
            if let Some(s) = orphan.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc_sigkill()), "killed by a sweep, not finished on its own: {status}");
}

#[tokio::test]
async fn a_standalone_server_reports_standalone_mode() {
    let zk = zookeeper().await;
    assert_eq!(zk.modes().await, vec![Some(Mode::Standalone)]);
}

fn libc_sigkill() -> i32 {
    9
}
