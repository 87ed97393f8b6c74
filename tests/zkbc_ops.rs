//! `zkbc` as operators use it, against the test cluster: kcat's consume
//! flags and output, kafka-consumer-groups' offset resets and group views,
//! `group delete`, `group watch`, and the conventions every subcommand
//! shares.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use common::cli::{fails, json, ok, run, text, zkbc};
use common::group::topic_cluster;
use common::within;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Bytes no text encoding survives.
const BINARY: &[u8] = &[0, 255, 10, 13, 0xc3, 0x28, b'"', b'\\', 7];

/// Produces to partition 0 what generated records lack: a binary payload
/// with a key and headers (one null), and a tombstone.
async fn produce_odd_records(bootstrap: &str, topic: &str) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("a producer");
    let headers = OwnedHeaders::new()
        .insert(Header { key: "h1", value: Some("v1") })
        .insert(Header { key: "h2", value: None::<&str> });
    let binary = FutureRecord::to(topic).partition(0).key("k1").payload(BINARY).headers(headers);
    producer.send(binary, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("binary record");
    let tombstone = FutureRecord::<str, [u8]>::to(topic).partition(0).key("gone");
    producer.send(tombstone, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("tombstone");
}

/// Each partition's log end, as `group describe` reads it.
async fn log_ends(z: &str, group: &str, topic: &str) -> BTreeMap<i64, u64> {
    let d = json(&ok(&["group", "describe", group, "-z", z, "-t", topic, "--format", "json"]).await);
    d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["partition"].as_i64().unwrap(), r["log_end"].as_u64().unwrap()))
        .collect()
}

/// Committed offsets by partition, as `group describe` reads them.
async fn committed(z: &str, group: &str) -> BTreeMap<i64, Option<u64>> {
    let d = json(&ok(&["group", "describe", group, "-z", z, "--format", "json"]).await);
    d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["partition"].as_i64().unwrap(), r["committed"].as_u64()))
        .collect()
}

fn lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(json).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consume_speaks_kcat() {
    let (zk, mut kafka) = topic_cluster("kc", 3).await;
    kafka.produce_generated("kc", 60, 20).await.expect("produce");
    produce_odd_records(kafka.bootstrap_servers(), "kc").await;
    let z = &zk.connect_string();
    let consume = |group: &'static str, more: &'static [&'static str]| {
        let mut args = vec!["consume", "-z", z, "-G", group, "-t", "kc"];
        args.extend_from_slice(more);
        args
    };

    // -o beginning -e: everything, then exit 0 with a summary on stderr.
    let out = run(&consume("all", &["-o", "beginning", "-e", "-J"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = lines(&text(&out.stdout));
    assert_eq!(all.len(), 62, "every message once, then -e exits");
    let summary = text(&out.stderr).lines().find(|l| l.starts_with("zkbc: consumed")).map(str::to_owned);
    let summary = summary.unwrap_or_else(|| panic!("no summary line:\n{}", text(&out.stderr)));
    assert!(summary.contains("consumed 62 messages") && summary.contains("stopped cleanly"), "{summary}");
    // kcat's -J envelope: the same names, the same types.
    for m in &all {
        let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
        let expected: &[&str] = if m.get("headers").is_some() {
            &["topic", "partition", "offset", "tstype", "ts", "broker", "headers", "key", "payload"]
        } else {
            &["topic", "partition", "offset", "tstype", "ts", "broker", "key", "payload"]
        };
        assert_eq!(keys, expected, "{m}");
        assert!(m["topic"].is_string() && m["partition"].is_i64() && m["offset"].is_u64(), "{m}");
        assert!(m["tstype"] == "create" && m["ts"].as_i64().unwrap() > 1_600_000_000_000, "{m}");
        assert!(m["broker"].as_i64().unwrap() >= 0, "the broker that served it: {m}");
        assert!(m["key"].is_string() || m["key"].is_null(), "{m}");
        assert!(m["payload"].is_string() || m["payload"].is_null(), "{m}");
    }
    let tombstone = all.iter().find(|m| m["key"] == "gone").expect("the tombstone");
    assert!(tombstone["payload"].is_null(), "a tombstone's payload is null: {tombstone}");
    let odd = all.iter().find(|m| m["key"] == "k1").expect("the binary record");
    assert_eq!(odd["headers"], serde_json::json!(["h1", "v1", "h2", null]), "kcat's header list");

    // -o -5: the last five of each partition, and nothing else.
    // Offsets in Kafka and no member left: the topic is named.
    let ends = log_ends(z, "all", "kc").await;
    assert_eq!(ends.len(), 3);
    let out = ok(&consume("last5", &["-o", "-5", "-e", "-J"])).await;
    let mut per: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for m in lines(&out) {
        per.entry(m["partition"].as_i64().unwrap()).or_default().push(m["offset"].as_u64().unwrap());
    }
    for (p, end) in &ends {
        assert_eq!(per[p], ((end - 5)..*end).collect::<Vec<_>>(), "partition {p}: the last five");
    }
    // -o <n>, -o end, -c, and -o stored resuming where a group committed.
    let from3 = lines(&ok(&consume("from3", &["-o", "3", "-e", "-J"])).await);
    let expected: u64 = ends.values().map(|e| e - 3).sum();
    assert_eq!(from3.len() as u64, expected, "offset 3 on in every partition: {ends:?}");
    assert!(ok(&consume("atend", &["-o", "end", "-e"])).await.is_empty(), "nothing after the end");
    // -o s@<ms>: the mock's time lookup answers "no message at or after" for
    // any time (rdkafka_mock_handlers.c), as Kafka does for a time to come;
    // only that branch can be checked here: the log end, nothing printed.
    let year_3000 = consume("attime", &["-e", "-J", "-o", "s@32503680000000"]);
    assert!(ok(&year_3000).await.is_empty(), "no message after a time to come");
    fails(&consume("badtime", &["-o", "s@soon"]), 2, "s@ wants milliseconds").await;
    assert_eq!(ok(&consume("three", &["-c", "3"])).await.lines().count(), 3);
    assert!(ok(&consume("all", &["-e"])).await.is_empty(), "the group committed everything it consumed");

    // Binary-safe: base64 and hex give the bytes back; format tokens.
    let b64 = lines(&ok(&consume("b64", &["-o", "beginning", "-e", "-J", "--encoding", "base64"])).await);
    let odd = b64.iter().find(|m| m["key"] == "azE=").expect("the key in base64");
    let payload = base64::engine::general_purpose::STANDARD.decode(odd["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, BINARY, "the payload round-trips");
    assert_eq!(odd["headers"], serde_json::json!(["h1", "djE=", "h2", null]));
    let hex = lines(&ok(&consume("hex", &["-o", "beginning", "-e", "-J", "--encoding", "hex"])).await);
    assert!(hex.iter().any(|m| m["payload"] == hex::encode(BINARY)), "hex too");
    const FORMAT: &str = "%t|%p|%o|%k|%K|%S|%T|%h|%s\\n";
    let out = ok(&consume("fmt", &["-o", "beginning", "-e", "-f", FORMAT, "--encoding", "base64"])).await;
    let odd = out.lines().find(|l| l.contains("|azE=|")).expect("the binary record's line");
    let fields: Vec<&str> = odd.split('|').collect();
    assert_eq!(&fields[..3], ["kc", "0", fields[2]], "{odd}");
    assert_eq!((fields[4], fields[5]), ("2", &*BINARY.len().to_string()), "key and payload lengths: {odd}");
    assert!(fields[6].parse::<i64>().unwrap() > 0, "a timestamp: {odd}");
    assert_eq!(fields[7], "h1=djE=,h2=null", "{odd}");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(fields[8]).unwrap(), BINARY);
    let gone = out.lines().find(|l| l.contains("|Z29uZQ==|")).expect("the tombstone's line");
    assert!(gone.ends_with("|-1|") || gone.contains("|4|-1|"), "a null payload's length is -1: {gone}");
    assert!(gone.ends_with("|null"), "a null payload prints as null: {gone}");
    // The default format: payloads one per line, tombstones as null.
    let plain = ok(&consume("plain", &["-o", "beginning", "-e"])).await;
    assert_eq!(plain.lines().filter(|l| *l == "null").count(), 1, "the tombstone");

    // Lag per partition on demand: SIGUSR1. JSON keeps one message a line.
    let mut member = zkbc(&consume("usr1", &["-o", "beginning", "-J", "--encoding", "base64"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(member.stdout.take().unwrap()).lines();
    within("the member's output", Duration::from_secs(20), async {
        for _ in 0..62 {
            out.next_line().await.unwrap().expect("zkbc consume is running");
        }
    })
    .await;
    let pid = member.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-USR1", &pid]).status().unwrap().success());
    let mut err = BufReader::new(member.stderr.take().unwrap()).lines();
    let mut table = Vec::new();
    within("the partition table on stderr", Duration::from_secs(10), async {
        while table.len() < 4 {
            let line = err.next_line().await.unwrap().expect("zkbc consume is running");
            if line.starts_with("TOPIC") || !table.is_empty() {
                table.push(line);
            }
        }
    })
    .await;
    let header: Vec<&str> = table[0].split_whitespace().collect();
    assert_eq!(header, ["TOPIC", "PARTITION", "COMMITTED", "ACKNOWLEDGED", "LOG-END-OFFSET", "LAG", "OUTSTANDING"]);
    for row in &table[1..] {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[0], "kc", "{row}");
        assert_eq!(cells[3], cells[4], "everything written was acknowledged, up to the log end: {row}");
    }
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(within("the member to stop", Duration::from_secs(20), member.wait()).await.unwrap().success());
}

/// Real kcat (Debian's `kcat`, installed by scripts/test) reads the same
/// topic: our `-J` lines must equal its lines, field for field, message for
/// message, payloads kcat can print as text included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_lines_equal_real_kcats() {
    let (zk, mut kafka) = topic_cluster("kj", 2).await;
    kafka.produce_generated("kj", 20, 10).await.expect("produce");
    produce_odd_records(kafka.bootstrap_servers(), "kj").await;
    let kcat = tokio::process::Command::new("kcat")
        .args(["-C", "-b", kafka.bootstrap_servers(), "-t", "kj", "-o", "beginning", "-e", "-q", "-J"])
        .kill_on_drop(true)
        .output();
    let kcat =
        within("kcat", Duration::from_secs(60), kcat).await.expect("kcat is installed (scripts/test installs it)");
    assert!(kcat.status.success(), "kcat: {}", text(&kcat.stderr));
    let z = &zk.connect_string();
    let ours = ok(&["consume", "-z", z, "-G", "j", "-t", "kj", "-o", "beginning", "-e", "-J"]).await;
    let by_position = |out: &str| -> BTreeMap<(i64, u64), serde_json::Value> {
        lines(out).into_iter().map(|m| ((m["partition"].as_i64().unwrap(), m["offset"].as_u64().unwrap()), m)).collect()
    };
    let (theirs, ours) = (by_position(&text(&kcat.stdout)), by_position(&ours));
    assert_eq!(theirs.len(), 22, "kcat read everything");
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "the same messages");
    for (at, theirs) in &theirs {
        let mine = &ours[at];
        let names = |m: &serde_json::Value| m.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(mine), names(theirs), "field names and order at {at:?}");
        if theirs["key"] == "k1" {
            // Bytes that are not UTF-8: kcat writes them raw (invalid JSON
            // text, read here lossily), we replace them; --encoding exists.
            assert_eq!(mine["headers"], theirs["headers"], "{mine} vs {theirs}");
            continue;
        }
        assert_eq!(mine, theirs, "message {at:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_reset_plans_first_and_executes_exactly_what_it_names() {
    let (zk, mut kafka) = topic_cluster("rs", 3).await;
    kafka.produce_generated("rs", 90, 20).await.expect("produce");
    let z = &zk.connect_string();
    ok(&["consume", "-z", z, "-G", "r", "-t", "rs", "-o", "beginning", "-e"]).await;
    let before = committed(z, "r").await;
    assert!(before.values().all(|c| *c == Some(30)), "consumed and committed: {before:?}");
    let reset = |more: &[&str]| {
        let mut args = vec!["offsets", "reset", "r", "-z", z];
        args.extend_from_slice(more);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let call = |args: Vec<String>| async move { run(&args.iter().map(String::as_str).collect::<Vec<_>>()).await };

    // A dry run prints the plan and changes nothing.
    let out = call(reset(&["-t", "rs", "--to-earliest"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    let header: Vec<&str> = plan.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"], "{plan}");
    assert_eq!(plan.lines().filter(|l| l.split_whitespace().last() == Some("0")).count(), 3, "{plan}");
    assert!(text(&out.stderr).contains("dry run: nothing changed"), "{}", text(&out.stderr));
    assert_eq!(committed(z, "r").await, before, "the dry run changed nothing");

    // A time to come: the log end (the only time lookup the mock answers).
    let plan = text(&call(reset(&["-t", "rs", "--to-datetime", "3000-01-01T00:00:00Z"])).await.stdout);
    assert_eq!(plan.lines().filter(|l| l.split_whitespace().last() == Some("30")).count(), 3, "{plan}");
    fails(&["offsets", "reset", "r", "-z", z, "-t", "rs", "--to-datetime", "yesterday"], 2, "RFC 3339").await;

    // --execute changes exactly the partitions named.
    assert!(call(reset(&["-t", "rs:0,2", "--to-offset", "7", "--execute"])).await.status.success());
    assert_eq!(committed(z, "r").await, [(0, Some(7)), (1, Some(30)), (2, Some(7))].into());
    assert!(call(reset(&["-t", "rs", "--partitions", "1", "--shift-by", "-4", "--execute"])).await.status.success());
    assert_eq!(committed(z, "r").await, [(0, Some(7)), (1, Some(26)), (2, Some(7))].into());

    // Export, move everything, import: the exported offsets are back.
    let out = call(reset(&["-t", "rs", "--to-current", "--export"])).await;
    let csv = text(&out.stdout);
    assert_eq!(csv, "rs,0,7\nrs,1,26\nrs,2,7\n", "kafka-consumer-groups' CSV");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &csv).unwrap();
    assert!(call(reset(&["-t", "rs", "--to-latest", "--execute"])).await.status.success());
    assert!(committed(z, "r").await.values().all(|c| *c == Some(30)));
    let path = file.path().to_str().unwrap();
    assert!(call(reset(&["--from-file", path, "--execute"])).await.status.success());
    assert_eq!(committed(z, "r").await, [(0, Some(7)), (1, Some(26)), (2, Some(7))].into(), "restored");

    // What is refused, with the reason.
    fails(&["offsets", "reset", "r", "-z", z, "-t", "rs:9", "--to-earliest"], 64, "no partition 9").await;
    fails(
        &["offsets", "reset", "r", "-z", z, "-t", "rs", "-t", "x", "--partitions", "1", "--to-earliest"],
        64,
        "--partitions",
    )
    .await;
    std::fs::write(file.path(), "rs,zero,1\n").unwrap();
    fails(&["offsets", "reset", "r", "-z", z, "--from-file", path, "--to-earliest"], 2, "cannot be used").await;
    fails(&["offsets", "reset", "r", "-z", z, "--from-file", path], 64, "line 1").await;
}

/// Reads `lines` until one contains `needle`, within 10 s.
async fn line_with(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>, needle: &str) -> String {
    within(&format!("a line with {needle:?}"), Duration::from_secs(10), async {
        loop {
            let line = lines.next_line().await.expect("read").expect("zkbc group watch is running");
            if line.contains(needle) {
                return line;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_views_delete_and_watch() {
    let (zk, mut kafka) = topic_cluster("gv", 3).await;
    kafka.produce_generated("gv", 30, 20).await.expect("produce");
    let z = &zk.connect_string();

    // A live member (pykafka: its id names its host).
    let mut member = zkbc(&["consume", "-z", z, "-G", "gv", "-t", "gv", "--commit-interval", "100ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let d = zkbalance::testkit::wait_until("the member to own every partition", Duration::from_secs(20), || async {
        let out = run(&["group", "describe", "gv", "-z", z, "--format", "json"]).await;
        let d = out.status.success().then(|| json(&text(&out.stdout)))?;
        let rows = d["partitions"].as_array().unwrap().clone();
        rows.iter().all(|r| !r["consumer_id"].is_null() && r["committed"] == 10).then_some(d)
    })
    .await
    .expect("owned");
    let id = d["members"][0]["id"].as_str().unwrap().to_owned();
    let host = id.split(':').next().unwrap().to_owned();
    let table = ok(&["group", "describe", "gv", "-z", z]).await;
    let header: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(header, ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"]);
    let rows: Vec<Vec<&str>> = table.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows.iter().all(|r| r[3] == "10" && r[5] == id && r[6] == host), "{table}");
    let members = ok(&["group", "describe", "gv", "-z", z, "--members"]).await;
    let header: Vec<&str> = members.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(header, ["CONSUMER-ID", "HOST", "FLAVOUR", "#PARTITIONS", "SUBSCRIPTION"]);
    let row: Vec<&str> = members.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(row, [id.as_str(), &host, "pykafka", "3", "gv"], "{members}");

    // A live group is not deleted.
    fails(&["group", "delete", "gv", "-z", z], 75, "active member").await;

    // watch: the member leaving is seen, each change on its own line.
    let mut watch = zkbc(&["group", "watch", "gv", "-z", z]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = line_with(&mut out, "group gv: 1 member(s), 3 partition(s) owned").await;
    assert!(humantime::parse_rfc3339(first.split_whitespace().next().unwrap()).is_ok(), "timestamped: {first}");
    let pid = member.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(within("the member to stop", Duration::from_secs(20), member.wait()).await.unwrap().success());
    // Released in any order, then the member leaves.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let line = line_with(&mut out, " ").await;
        if line.starts_with("  ") {
            assert_eq!(line.trim(), format!("{id}: gv 0-2"), "the view at the start");
            continue;
        }
        assert!(line.contains(&id), "only the member's changes: {line}");
        seen.push(line.split_whitespace().skip(1).collect::<Vec<_>>().join(" "));
    }
    seen[..3].sort();
    let released: Vec<String> = (0..3).map(|p| format!("released gv/{p} by {id}")).collect();
    assert_eq!(seen, [&released[..], &[format!("left {id}")]].concat(), "each change once, in ZooKeeper's order");
    // Any client's znodes, as they come: the line follows the change.
    let observer = zkbalance::testkit::connect(z, Duration::from_secs(6)).await.unwrap();
    let persistent = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    let mut waits = Vec::new();
    for round in 0..5 {
        let created = Instant::now();
        observer.create("/consumers/gv/owners/gv/1", b"other_host-1-0000000a-0", &persistent).await.unwrap();
        line_with(&mut out, "owned     gv/1 by other_host-1-0000000a").await;
        waits.push(created.elapsed());
        observer.delete("/consumers/gv/owners/gv/1", None).await.unwrap();
        line_with(&mut out, "released  gv/1").await;
        tracing::info!(round, "watch line after {:?}", waits.last());
    }
    eprintln!("group watch: a line {waits:?} after each ownership change (the bound is measured in benches/watch.rs)");
    watch.kill().await.unwrap();

    // A dead group goes; its offsets stay unless asked.
    let deleted = ok(&["group", "delete", "gv", "-z", z]).await;
    assert!(deleted.starts_with("deleted group gv: ") && deleted.contains("offsets are kept"), "{deleted}");
    assert!(observer.check_stat("/consumers/gv/ids").await.unwrap().is_none());
    assert!(observer.check_stat("/consumers/gv/owners").await.unwrap().is_none());
    assert!(observer.check_stat("/consumers/gv/offsets/gv/0").await.unwrap().is_none(), "pykafka commits to Kafka");
    let d = json(&ok(&["group", "describe", "gv", "-z", z, "--format", "json"]).await);
    assert!(d["partitions"].as_array().unwrap().iter().all(|r| r["committed"] == 10), "offsets kept: {d}");
    ok(&[
        "offsets",
        "reset",
        "gv",
        "-z",
        z,
        "-t",
        "gv",
        "--to-offset",
        "4",
        "--execute",
        "--offset-storage",
        "zookeeper",
    ])
    .await;
    ok(&["group", "delete", "gv", "-z", z, "--include-offsets"]).await;
    assert!(observer.check_stat("/consumers/gv").await.unwrap().is_none(), "the whole group went");
    fails(&["group", "delete", "gv", "-z", z], 66, "does not exist").await;

    // Kafka unreachable: the ZooKeeper side is shown, lag as -, with a warning.
    observer.mkdir("/consumers/gv/ids", &persistent).await.unwrap();
    drop(kafka);
    let dead = r#"{"version":4,"host":"127.0.0.1","port":9,"jmx_port":-1,"timestamp":"1","endpoints":["PLAINTEXT://127.0.0.1:9"],"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"}}"#;
    zkbalance::testkit::wait_until("the mock's brokers to go", Duration::from_secs(30), || async {
        observer.list_children("/brokers/ids").await.unwrap().is_empty().then_some(())
    })
    .await
    .expect("brokers gone");
    let ephemeral = zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all());
    observer.create("/brokers/ids/9", dead.as_bytes(), &ephemeral).await.unwrap();
    let out = run(&["group", "describe", "gv", "-z", z, "-t", "gv", "--timeout", "1s"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let warning = stderr.lines().find(|l| l.starts_with("zkbc: warning: Kafka did not answer"));
    assert!(warning.is_some_and(|w| w.contains("LAG are not shown")), "{stderr}");
    let rows: Vec<Vec<&str>> = stdout.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "every partition still listed:\n{stdout}");
    assert!(rows.iter().all(|r| r[3] == "-" && r[4] == "-"), "log end and lag as -:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_set_of_conventions_across_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]).await;
        assert!(script.contains("zkbc") && script.contains("consume") && script.len() > 1000, "{shell}");
    }
    fails(&["completions", "tcsh"], 2, "tcsh").await;
    // --timeout everywhere ZooKeeper is reached; no *-ms spellings left.
    for sub in [
        &["consume"][..],
        &["brokers"],
        &["topics"],
        &["group", "list"],
        &["group", "describe"],
        &["group", "delete"],
        &["group", "watch"],
        &["offsets", "reset"],
    ] {
        let help = ok(&[sub, &["--help"]].concat()).await;
        assert!(help.contains("--timeout <DURATION>") && help.contains("-z, --zookeeper"), "{sub:?}:\n{help}");
        assert!(!help.contains("-ms") && help.contains("--log-level"), "{sub:?}:\n{help}");
    }
    fails(&["brokers", "-z", "127.0.0.1:1", "--log-level", "foo=nolevel"], 64, "--log-level").await;

    // librdkafka's warnings are shown by default: a consumer whose given
    // broker refuses connections says so on stderr.
    let zk = common::zookeeper().await;
    let z = zk.connect_string();
    let observer = zkbalance::testkit::connect(&z, Duration::from_secs(6)).await.unwrap();
    let persistent = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    observer.mkdir("/brokers/topics", &persistent).await.unwrap();
    observer.create("/brokers/topics/lone", br#"{"version":1,"partitions":{"0":[1]}}"#, &persistent).await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut consumer = zkbc(&["consume", "-z", &z, "-G", "g", "-t", "lone", "--bootstrap-server", &closed])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(consumer.stderr.take().unwrap()).lines();
    let warning = within("a librdkafka warning", Duration::from_secs(20), async {
        loop {
            let line = err.next_line().await.unwrap().expect("zkbc consume is running");
            if line.contains("librdkafka") {
                return line;
            }
        }
    })
    .await;
    assert!(warning.contains("WARN") && warning.contains("Connection refused"), "{warning}");
    consumer.kill().await.unwrap();
}
