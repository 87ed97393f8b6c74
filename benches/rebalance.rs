//! Rebalance latency with member processes over a real ZooKeeper, timed
//! from ZooKeeper's own znode stats, with ZooKeeper's request counts.
//!
//! ```text
//! cargo bench --features cli --bench rebalance
//! ZKB_BENCH_TRIALS=30 ZKB_BENCH_SESSION_MS=6000 cargo bench --features cli --bench rebalance
//! ZKB_BENCH_CASES=join6,at8 cargo bench --features cli --bench rebalance   # a subset
//! ZKB_BENCH_LOG=zkbalance=debug ...   # keep member logs in target/bench-logs
//! ```
//!
//! Ten join-and-leave trials on a group of their own run first and are not
//! counted (`ZKB_BENCH_WARMUP`): they warm the fresh ZooKeeper's JVM.
//!
//! Every member is a `zkbc consume` process (release build, Scala layout,
//! output to /dev/null) on a private standalone ZooKeeper and the mock
//! Kafka cluster. A rebalance is settled when the owner znodes equal the
//! Scala range split of the members then registered; its end is the
//! largest `ctime` among them (ZooKeeper's clock). Cases:
//!
//! - **join**: one member runs; another starts. From the `ctime` of the
//!   newcomer's member znode to the end.
//! - **leave**: that newcomer gets SIGTERM. From the moment an observer's
//!   watch saw its member znode deleted to the end (same host clock).
//! - **kill -9**: the newcomer is SIGKILLed. Reported twice: from the kill
//!   to the deletion of its member znode (the session expiry, the server's
//!   business) and from that deletion to the end (ours).
//! - **N at once**: N members start together on a fresh group. From the
//!   last member znode's `ctime` to the end.
//!
//! - **pykafka side by side** (`peers`): join and graceful leave on 6
//!   partitions in pykafka's layout, once with real pykafka 2.8 members
//!   (`tests/peers/pykafka_member.py`, from the virtualenv the test command
//!   installs in `target/peers/py`) and once with ours in the same layout;
//!   settled when every partition has one owner znode and the members hold
//!   an even split. A pykafka member leaves when its stdin closes (its
//!   `stop()`), ours on SIGTERM.
//!
//! ZooKeeper packets: `zk_packets_received` from `mntr` before and after,
//! less the requests of the bench's own observer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zkbalance::testkit::peer::scala_range;
use zkbalance::testkit::{KafkaCluster, Supervised, ZooKeeper};
use zookeeper_client::Client;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

struct Rig {
    zk: ZooKeeper,
    _kafka: KafkaCluster,
    observer: Client,
    /// Requests the observer has sent: subtracted from the server's packet
    /// counts, so the figures are the members' own.
    observed: std::sync::atomic::AtomicU64,
    session_ms: u64,
}

impl Rig {
    async fn count<T>(&self, request: impl std::future::Future<Output = T>) -> T {
        self.observed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        request.await
    }

    fn member(&self, group: &str, topic: &str) -> Supervised {
        self.member_in(group, topic, "scala")
    }

    fn member_in(&self, group: &str, topic: &str, flavour: &str) -> Supervised {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zkbc"));
        cmd.args(["consume", "--zookeeper", &self.zk.connect_string(), "--group", group, "--topic", topic])
            .args(["--flavour", flavour, "--commit-interval", "1s"])
            .arg(format!("--session-timeout={}ms", self.session_ms))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // ZKB_BENCH_LOG=<filter> keeps each member's log in target/bench-logs,
        // to find where a slow trial spent its time.
        match std::env::var("ZKB_BENCH_LOG") {
            Ok(filter) => {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-logs");
                std::fs::create_dir_all(&dir).expect("log dir");
                let file = dir.join(format!("{group}-{}.log", wall_ms()));
                cmd.env("RUST_LOG", filter).stderr(std::fs::File::create(file).expect("log file"));
            }
            Err(_) => {
                cmd.env("RUST_LOG", "error").stderr(Stdio::null());
            }
        }
        Supervised::spawn(cmd, "zkbc consume").expect("zkbc starts")
    }

    /// Waits until `n` members are registered; returns them.
    async fn registered(&self, group: &str, n: usize) -> BTreeSet<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (ids, change) = self.children(&format!("/consumers/{group}/ids")).await;
            if ids.len() == n {
                return ids.into_iter().collect();
            }
            assert!(Instant::now() < deadline, "{n} members did not register: {ids:?}");
            change.await;
        }
    }

    /// The children of `dir` (none while it is missing), and a future that
    /// resolves when they may have changed. The observer waits on watches
    /// rather than polling, so it adds no load while members rebalance (its
    /// requests still count in the packet figures: a handful per change).
    async fn children(&self, dir: &str) -> (Vec<String>, BoxFuture<'static, ()>) {
        // A fallback bound: the owner znodes' data never changes in place,
        // but a missed watch must cost time, not the run.
        let fallback = tokio::time::sleep(Duration::from_millis(250));
        match self.count(self.observer.list_and_watch_children(dir)).await {
            Ok((children, watcher)) => {
                let change = async move {
                    tokio::select! {
                        _ = watcher.changed() => {}
                        () = fallback => {}
                    }
                };
                (children, change.boxed())
            }
            Err(_) => match self.count(self.observer.check_and_watch_stat(dir)).await {
                Ok((None, watcher)) => {
                    let change = async move {
                        tokio::select! {
                            _ = watcher.changed() => {}
                            () = fallback => {}
                        }
                    };
                    (Vec::new(), change.boxed())
                }
                // Created in between, or the session is in trouble: look again soon.
                _ => (Vec::new(), tokio::time::sleep(Duration::from_millis(2)).boxed()),
            },
        }
    }

    async fn ctime(&self, path: &str) -> i64 {
        self.count(self.observer.check_stat(path)).await.ok().flatten().map_or(0, |s| s.ctime)
    }

    /// Waits until the owner znodes of `topic` are the Scala range split of
    /// `ids`; returns the largest owner `ctime`.
    async fn settled(&self, group: &str, topic: &str, partitions: i32, ids: &BTreeSet<String>) -> i64 {
        let subs: BTreeMap<String, BTreeMap<String, u32>> =
            ids.iter().map(|m| (m.clone(), [(topic.to_string(), 1)].into_iter().collect())).collect();
        let want = scala_range(&subs, &[(topic.to_string(), partitions)].into_iter().collect())
            .remove(topic)
            .unwrap_or_default();
        let dir = format!("/consumers/{group}/owners/{topic}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut got = BTreeMap::new();
            let mut last = 0;
            let (children, change) = self.children(&dir).await;
            for child in children {
                if let (Ok(p), Ok((data, stat))) =
                    (child.parse::<i32>(), self.count(self.observer.get_data(&format!("{dir}/{child}"))).await)
                {
                    got.insert(p, String::from_utf8_lossy(&data).into_owned());
                    last = last.max(stat.ctime);
                }
            }
            if got == want {
                return last;
            }
            assert!(Instant::now() < deadline, "no convergence: want {want:?}, got {got:?}");
            change.await;
        }
    }

    /// A pykafka 2.8 member, or `None` when the virtualenv is missing.
    fn pykafka(&self, group: &str, topic: &str) -> Option<tokio::process::Child> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = root.join("target/peers/py/bin/python");
        if !python.exists() {
            return None;
        }
        let child = tokio::process::Command::new(python)
            .arg(root.join("tests/peers/pykafka_member.py"))
            .args([self.zk.connect_string().as_str(), group, topic])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("pykafka member starts");
        Some(child)
    }

    /// Waits until every partition of `topic` has one owner znode and the
    /// members `ids` (owner payloads, pykafka's layout) hold an even split;
    /// returns the largest owner `ctime`.
    async fn settled_evenly(&self, group: &str, topic: &str, partitions: i32, ids: &BTreeSet<String>) -> i64 {
        let n = ids.len() as i32;
        let mut want: Vec<i32> = (0..n).map(|i| partitions / n + i32::from(i < partitions % n)).collect();
        want.sort_unstable();
        // pykafka on Python 3 spells the topic's owner directory `b'<topic>'`.
        let dirs = [format!("/consumers/{group}/owners/{topic}"), format!("/consumers/{group}/owners/b'{topic}'")];
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Partition (owner znode name) -> owner; a member writing both
            // spellings owns the partition once.
            let (mut owners, mut last) = (BTreeMap::<String, String>::new(), 0);
            let mut changes = Vec::new();
            for dir in &dirs {
                let (children, change) = self.children(dir).await;
                changes.push(change);
                for child in children {
                    if let Ok((data, stat)) = self.count(self.observer.get_data(&format!("{dir}/{child}"))).await {
                        owners.insert(child, String::from_utf8_lossy(&data).into_owned());
                        last = last.max(stat.ctime);
                    }
                }
            }
            let owned = owners.len() as i32;
            let mut counts = BTreeMap::<&String, i32>::new();
            for owner in owners.values() {
                *counts.entry(owner).or_default() += 1;
            }
            let mut got: Vec<i32> = counts.values().copied().collect();
            got.sort_unstable();
            if owned == partitions && counts.keys().all(|k| ids.contains(*k)) && got == want {
                return last;
            }
            assert!(Instant::now() < deadline, "no even split of {topic} among {ids:?}: {counts:?}");
            futures_util::future::select_all(changes).await;
        }
    }

    /// Waits for `path` to be deleted; returns the wall time the watch fired.
    async fn deleted(&self, path: &str) -> i64 {
        loop {
            match self.count(self.observer.check_and_watch_stat(path)).await {
                Ok((None, _)) => return wall_ms(),
                Ok((Some(_), watcher)) => {
                    let event = tokio::time::timeout(Duration::from_secs(60), watcher.changed())
                        .await
                        .unwrap_or_else(|_| panic!("{path} was not deleted within 60 s"));
                    if event.event_type == zookeeper_client::EventType::NodeDeleted {
                        return wall_ms();
                    }
                }
                Err(e) => panic!("watching {path}: {e}"),
            }
        }
    }

    /// ZooKeeper's `zk_packets_received` less the observer's own requests.
    async fn packets(&self) -> u64 {
        let ask = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.zk.client_port(0))).await.ok()?;
            s.write_all(b"mntr").await.ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).await.ok()?;
            out.lines().find_map(|l| l.strip_prefix("zk_packets_received")).and_then(|v| v.trim().parse().ok())
        };
        let received: u64 =
            tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten().expect("mntr answers");
        received - self.observed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Stops a member with SIGTERM and waits for it to exit.
async fn terminate(mut m: Supervised) {
    m.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !m.has_exited() {
        assert!(Instant::now() < deadline, "a member did not exit on SIGTERM");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Default)]
struct Figures(Vec<f64>);

impl Figures {
    fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    fn line(&mut self, what: &str, unit: &str) {
        let v = &mut self.0;
        if v.is_empty() {
            return;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "  {what:<44} median {:>7.1} {unit}  p90 {:>7.1}  p99 {:>7.1}  max {:>7.1}  (n = {})",
            at(0.5),
            at(0.9),
            at(0.99),
            v[v.len() - 1],
            v.len()
        );
    }
}

/// Join and leave (or kill) trials; `warm_up` runs them on a group of its
/// own and prints nothing.
async fn join_and_leave(rig: &Rig, partitions: i32, trials: u64, kill: bool, warm_up: bool) {
    let prefix = if warm_up { "warm" } else { "jl" };
    let (group, topic) = (format!("{prefix}{partitions}{}", if kill { "k" } else { "" }), format!("t{partitions}"));
    let _base = rig.member(&group, &topic);
    let ids = rig.registered(&group, 1).await;
    rig.settled(&group, &topic, partitions, &ids).await;
    let (mut join, mut join_packets, mut leave, mut leave_packets) =
        (Figures::default(), Figures::default(), Figures::default(), Figures::default());
    let (mut expiry, mut takeover) = (Figures::default(), Figures::default());
    for _ in 0..trials {
        // A quiet group at the start of every trial.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rig.packets().await;
        let newcomer = rig.member(&group, &topic);
        let all = rig.registered(&group, 2).await;
        let id = all.difference(&ids).next().expect("the newcomer").clone();
        let member_path = format!("/consumers/{group}/ids/{id}");
        let registered = rig.ctime(&member_path).await;
        let end = rig.settled(&group, &topic, partitions, &all).await;
        if std::env::var_os("ZKB_BENCH_LOG").is_some() {
            println!("    join {id}: registered {registered}, settled {end}: {} ms", end - registered);
        }
        join.push((end - registered) as f64);
        join_packets.push((rig.packets().await - before) as f64);

        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rig.packets().await;
        let gone = if kill {
            let mut newcomer = newcomer;
            let killed = wall_ms();
            newcomer.kill();
            let gone = rig.deleted(&member_path).await;
            expiry.push((gone - killed) as f64);
            gone
        } else {
            let watching = rig.deleted(&member_path);
            let (gone, ()) = tokio::join!(watching, terminate(newcomer));
            gone
        };
        let end = rig.settled(&group, &topic, partitions, &ids).await;
        if std::env::var_os("ZKB_BENCH_LOG").is_some() {
            println!("    gone {id}: at {gone}, settled {end}: {} ms", end - gone);
        }
        if kill {
            takeover.push((end - gone).max(0) as f64);
        } else {
            leave.push((end - gone).max(0) as f64);
            leave_packets.push((rig.packets().await - before) as f64);
        }
    }
    if warm_up {
        return;
    }
    if !kill {
        join.line(&format!("join, {partitions} partitions (ms)"), "ms");
        join_packets.line(&format!("join, {partitions} partitions (ZooKeeper packets)"), "");
    }
    if kill {
        expiry.line("kill -9: kill -> member znode gone (ms)", "ms");
        takeover.line(&format!("kill -9: gone -> survivor owns all, {partitions} p (ms)"), "ms");
    } else {
        leave.line(&format!("leave, {partitions} partitions (ms)"), "ms");
        leave_packets.line(&format!("leave, {partitions} partitions (ZooKeeper packets)"), "");
    }
}

async fn at_once(rig: &Rig, n: usize, partitions: i32, trials: u64) {
    let topic = format!("t{partitions}");
    let (mut settle, mut packets) = (Figures::default(), Figures::default());
    for trial in 0..trials {
        let group = format!("n{n}-{trial}");
        let before = rig.packets().await;
        let members: Vec<Supervised> = (0..n).map(|_| rig.member(&group, &topic)).collect();
        let ids = rig.registered(&group, n).await;
        let mut last = 0;
        for id in &ids {
            last = last.max(rig.ctime(&format!("/consumers/{group}/ids/{id}")).await);
        }
        let end = rig.settled(&group, &topic, partitions, &ids).await;
        settle.push((end - last).max(0) as f64);
        packets.push((rig.packets().await - before) as f64);
        for m in members {
            terminate(m).await;
        }
    }
    settle.line(&format!("{n} at once, {partitions} p: last registration -> settled (ms)"), "ms");
    packets.line(&format!("{n} at once, {partitions} p (ZooKeeper packets, incl. joins)"), "");
}

enum Peer {
    Ours(Supervised),
    Pykafka(tokio::process::Child),
}

impl Peer {
    async fn leave(self) {
        match self {
            Peer::Ours(m) => terminate(m).await,
            Peer::Pykafka(mut child) => {
                drop(child.stdin.take());
                tokio::time::timeout(Duration::from_secs(30), child.wait())
                    .await
                    .expect("pykafka leaves within 30 s")
                    .expect("pykafka's exit");
            }
        }
    }
}

/// Join and graceful leave, 6 partitions, pykafka's layout: pykafka
/// members, then ours, in the same run.
async fn side_by_side(rig: &Rig, trials: u64) {
    let (partitions, topic) = (6, "t6");
    for pykafka in [true, false] {
        let who = if pykafka { "pykafka 2.8" } else { "ours, pykafka layout" };
        let group = format!("side-{}", if pykafka { "py" } else { "ours" });
        let spawn = || -> Option<Peer> {
            if pykafka {
                rig.pykafka(&group, topic).map(Peer::Pykafka)
            } else {
                Some(Peer::Ours(rig.member_in(&group, topic, "pykafka")))
            }
        };
        let Some(base) = spawn() else {
            println!("  {who}: not measured (no virtualenv at target/peers/py: run scripts/test once)");
            continue;
        };
        let ids = rig.registered(&group, 1).await;
        rig.settled_evenly(&group, topic, partitions, &ids).await;
        let (mut join, mut leave) = (Figures::default(), Figures::default());
        for _ in 0..trials {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let newcomer = spawn().expect("spawned before");
            let all = rig.registered(&group, 2).await;
            let id = all.difference(&ids).next().expect("the newcomer").clone();
            let member_path = format!("/consumers/{group}/ids/{id}");
            let registered = rig.ctime(&member_path).await;
            let end = rig.settled_evenly(&group, topic, partitions, &all).await;
            join.push((end - registered) as f64);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let watching = rig.deleted(&member_path);
            let (gone, ()) = tokio::join!(watching, newcomer.leave());
            let end = rig.settled_evenly(&group, topic, partitions, &ids).await;
            leave.push((end - gone).max(0) as f64);
        }
        join.line(&format!("join, 6 p, {who} (ms)"), "ms");
        leave.line(&format!("leave, 6 p, {who} (ms)"), "ms");
        base.leave().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let trials = env("ZKB_BENCH_TRIALS", 30);
    let session_ms = env("ZKB_BENCH_SESSION_MS", 6000);
    assert!(Path::new(env!("CARGO_BIN_EXE_zkbc")).exists(), "the zkbc binary is built");
    let zk = ZooKeeper::standalone().await.expect("ZooKeeper");
    let mut kafka = KafkaCluster::start(&zk.connect_string(), 1).await.expect("mock Kafka");
    for p in [6, 32] {
        kafka.create_topic(&format!("t{p}"), p, 1).await.expect("topic");
    }
    let observer = zkbalance::testkit::connect(&zk.connect_string(), Duration::from_secs(30)).await.expect("observer");
    let rig = Rig { zk, _kafka: kafka, observer, observed: Default::default(), session_ms };
    // A fresh ZooKeeper server runs its first few thousand requests in
    // the JVM's interpreter: the first trials of a run took 2-3x the
    // median (20-27 ms against 9), later ones did not. Production servers
    // are long warm, so warm-up trials run first and are not counted.
    let warm_ups = env("ZKB_BENCH_WARMUP", 10);
    join_and_leave(&rig, 6, warm_ups, false, true).await;
    println!(
        "zkbc consume members, Scala layout, {session_ms} ms sessions, {trials} trials per case \
         after {warm_ups} uncounted warm-up trials (release build)"
    );
    // ZKB_BENCH_CASES=join6,join32,kill,at8,at16,peers (default: all) runs a subset.
    let cases = std::env::var("ZKB_BENCH_CASES").unwrap_or_else(|_| "join6,join32,kill,at8,at16,peers".into());
    let on = |case: &str| cases.split(',').any(|c| c.trim() == case);
    if on("join6") {
        join_and_leave(&rig, 6, trials, false, false).await;
    }
    if on("join32") {
        join_and_leave(&rig, 32, trials, false, false).await;
    }
    if on("kill") {
        join_and_leave(&rig, 6, env("ZKB_BENCH_KILL_TRIALS", trials), true, false).await;
    }
    if on("at8") {
        at_once(&rig, 8, 32, trials).await;
    }
    if on("at16") {
        at_once(&rig, 16, 32, trials).await;
    }
    if on("peers") {
        side_by_side(&rig, env("ZKB_BENCH_PEER_TRIALS", trials)).await;
    }
}
