//! Every example in `examples/` that talks to a cluster, run as a process
//! against the test cluster, so none rots. `cargo test` builds the
//! examples beside the test binaries.

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::group::topic_cluster;
use common::within;

fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().expect("test binary").parent().expect("deps dir").to_owned();
    let path = deps.parent().expect("profile dir").join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built: `cargo test` builds examples, `--test examples` alone does not",
        path.display()
    );
    path
}

async fn run(name: &str, args: &[&str]) -> Output {
    let out = within(
        &format!("example {name}"),
        Duration::from_secs(60),
        tokio::process::Command::new(example(name)).args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("run the example");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "example {name} {args:?} failed: {:?}\n{stderr}", out.status);
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_processes_and_commits_everything() {
    let (zk, mut kafka) = topic_cluster("alo", 3).await;
    kafka.produce_generated("alo", 300, 50).await.expect("produce");
    let out = run("at_least_once", &[&zk.connect_string(), "alo", "alo", "300"]).await;
    assert!(stdout(&out).ends_with("processed 300\n"), "{}", stdout(&out));
    // Acknowledged, so committed at stop: the group's offsets cover all.
    let observer = zkbalance::inspect::connect(&zk.connect_string(), &Default::default(), Duration::from_secs(5))
        .await
        .expect("observer");
    let view = zkbalance::cluster::read(&observer).await.expect("view");
    let kafka_side =
        zkbalance::inspect::KafkaSide::new(&view, "alo", Duration::from_secs(5), &Default::default()).expect("kafka");
    let mut committed = 0;
    for p in 0..3 {
        committed += kafka_side.committed("alo", p).await.expect("OffsetFetch").unwrap_or(0);
    }
    assert_eq!(committed, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_example_iterates_messages() {
    let (zk, mut kafka) = topic_cluster("blk", 2).await;
    kafka.produce_generated("blk", 50, 50).await.expect("produce");
    let out = run("blocking", &[&zk.connect_string(), "blk", "blk", "50"]).await;
    assert_eq!(stdout(&out), "processed 50\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_pools_split_the_partitions_and_hand_them_back() {
    let (zk, _kafka) = topic_cluster("pool", 4).await;
    let connect = zk.connect_string();
    let first = {
        let connect = connect.clone();
        tokio::spawn(async move { run("worker_pool", &[&connect, "pool", "pool", "4"]).await })
    };
    // The second joins while the first holds all four, and leaves first.
    let observer = zkbalance::testkit::connect(&connect, Duration::from_secs(10)).await.expect("observer");
    zkbalance::testkit::wait_until("the first pool to own all four", Duration::from_secs(10), || async {
        let owners = observer.list_children("/consumers/pool/owners/pool").await.ok()?;
        (owners.len() == 4).then_some(())
    })
    .await
    .expect("owned");
    let second = run("worker_pool", &[&connect, "pool", "pool", "1"]).await;
    let first = within("the first pool", Duration::from_secs(30), first).await.expect("task");
    let (a, b) = (stdout(&first), stdout(&second));
    let leased = |s: &str| s.lines().filter(|l| l.starts_with("leased ")).count();
    assert!(leased(&b) >= 1, "the second pool got partitions:\n{b}");
    assert!(a.lines().any(|l| l.starts_with("released ")), "the first handed some over:\n{a}");
    assert_eq!(leased(&a), 4 + leased(&b), "the first took back what the second had:\n{a}\n--\n{b}");
    assert!(a.ends_with("stopped\n") && b.ends_with("stopped\n"));
}

#[cfg(feature = "prometheus")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_example_serves_the_consumers_metrics() {
    use tokio::io::AsyncBufReadExt;
    let (zk, mut kafka) = topic_cluster("prom", 1).await;
    kafka.produce_generated("prom", 20, 50).await.expect("produce");
    let addr = common::free_addr();
    let mut child = tokio::process::Command::new(example("prometheus"))
        .args([&zk.connect_string(), "prom", "prom", &addr.to_string(), "20"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the example");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = within("the example's report", Duration::from_secs(30), lines.next_line()).await.expect("read");
    assert!(line.as_deref().is_some_and(|l| l.starts_with("processed 20")), "{line:?}");
    let body = zkbalance::testkit::wait_until("the figures of 20 messages", Duration::from_secs(10), || async {
        common::scrape(addr).await.filter(|b| b.contains(r#"zkbalance_messages_total{group="prom"} 20"#))
    })
    .await
    .expect("scraped");
    assert!(body.contains("zkbalance_commit_seconds"), "{body}");
}
