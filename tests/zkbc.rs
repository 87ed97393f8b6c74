//! The built `zkbc` binary, each subcommand and each error case, against
//! the test cluster.

mod common;

use std::time::Duration;

use common::cli::{fails, json, ok, run, text, zkbc};
use common::group::topic_cluster;
use common::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_subcommand_against_the_test_cluster() {
    let (zk, mut kafka) = topic_cluster("cli", 4).await;
    kafka.produce_generated("cli", 200, 50).await.expect("produce");
    let z = zk.connect_string();
    let z = z.as_str();

    // brokers and topics
    let table = ok(&["brokers", "--zookeeper", z]).await;
    assert!(table.starts_with("ID") && table.contains("PLAINTEXT://127.0.0.1:"), "{table}");
    assert_eq!(json(&ok(&["brokers", "--zookeeper", z, "--format", "json"]).await).as_array().unwrap().len(), 1);
    let table = ok(&["topics", "--zookeeper", z]).await;
    assert_eq!(table.lines().filter(|l| l.starts_with("cli ")).count(), 4, "{table}");
    assert_eq!(json(&ok(&["topics", "--zookeeper", z, "--format", "json"]).await)["cli"].as_array().unwrap().len(), 4);

    // consume 50 as JSON, then stop cleanly (commit, release)
    let base = ["consume", "--zookeeper", z, "--group", "g1", "--topic", "cli", "--flavour", "scala"];
    let out = run(&[&base[..], &["--offset-reset", "earliest", "-J", "-c", "50"]].concat()).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout).lines().map(json).collect();
    assert_eq!(lines.len(), 50);
    // Fields in a fixed order, straight from the message.
    let first = text(&out.stdout).lines().next().unwrap().to_owned();
    assert!(first.starts_with(r#"{"topic":"cli","partition":"#), "{first}");
    for l in &lines {
        let value = l["payload"].as_str().expect("the payload as text");
        assert!(zkbalance::testkit::protocol::parse_generated_value("cli", value.as_bytes()).is_some(), "{value}");
        for key in ["key", "payload", "partition", "offset", "ts", "tstype", "broker", "topic"] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }
    assert!(text(&out.stderr).contains("stopped cleanly"), "{}", text(&out.stderr));

    // group list / describe
    let list = ok(&["group", "list", "--zookeeper", z]).await;
    assert!(list.lines().any(|l| l.starts_with("g1 ") && l.contains(" 0")), "{list}");
    let groups = json(&ok(&["group", "list", "--zookeeper", z, "--format", "json"]).await);
    assert!(groups.as_array().unwrap().iter().any(|g| g["group"] == "g1"));
    let describe = ok(&["group", "describe", "g1", "--zookeeper", z]).await;
    assert!(describe.contains("TOPIC") && describe.contains("LAG"), "{describe}");
    let d = json(&ok(&["group", "describe", "g1", "--zookeeper", z, "--format", "json"]).await);
    let rows = d["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let sum = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap_or(0)).sum::<u64>();
    assert_eq!(sum("committed"), 50, "the 50 consumed were committed: {d}");
    assert_eq!(sum("log_end"), 200);
    for r in rows {
        match r["committed"].as_u64() {
            Some(c) => assert_eq!(r["lag"].as_u64(), Some(r["log_end"].as_u64().unwrap() - c), "{r}"),
            None => assert!(r["lag"].is_null(), "no lag without a committed offset: {r}"),
        }
    }

    // offsets reset, no members
    ok(&["offsets", "reset", "g1", "--topic", "cli", "--to-earliest", "--execute", "--zookeeper", z]).await;
    let d = json(&ok(&["group", "describe", "g1", "--zookeeper", z, "--format", "json"]).await);
    assert!(d["partitions"].as_array().unwrap().iter().all(|r| r["committed"] == 0), "{d}");
    ok(&["offsets", "reset", "g1", "--topic", "cli", "--to-offset", "10", "--execute", "--zookeeper", z]).await;
    let d = json(&ok(&["group", "describe", "g1", "--zookeeper", z, "--format", "json"]).await);
    assert!(d["partitions"].as_array().unwrap().iter().all(|r| r["committed"] == 10), "{d}");

    // refused while a member is active, unless --force; SIGTERM stops it cleanly
    let mut member = zkbc(&[&base[..], &["--offset-reset", "earliest"]].concat());
    let mut member = member.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    zkbalance::testkit::wait_until("the member to register", Duration::from_secs(20), || async {
        let g = json(&ok(&["group", "list", "--zookeeper", z, "--format", "json"]).await);
        g.as_array().unwrap().iter().any(|g| g["group"] == "g1" && g["members"] == 1).then_some(())
    })
    .await
    .expect("member registered");
    let reset = ["offsets", "reset", "g1", "--topic", "cli", "--to-latest", "--execute", "--zookeeper", z];
    fails(&reset, 75, "active member").await;
    ok(&[&reset[..], &["--force"]].concat()).await;
    let pid = member.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = within("the member to stop on SIGTERM", Duration::from_secs(20), member.wait()).await.unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    let g = json(&ok(&["group", "list", "--zookeeper", z, "--format", "json"]).await);
    assert!(g.as_array().unwrap().iter().any(|g| g["group"] == "g1" && g["members"] == 0), "member znode gone: {g}");
    // SIGINT too.
    let mut member =
        zkbc(&base).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    zkbalance::testkit::wait_until("the member to register again", Duration::from_secs(20), || async {
        let g = json(&ok(&["group", "list", "--zookeeper", z, "--format", "json"]).await);
        g.as_array().unwrap().iter().any(|g| g["group"] == "g1" && g["members"] == 1).then_some(())
    })
    .await
    .expect("member registered");
    let pid = member.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = within("the member to stop on SIGINT", Duration::from_secs(20), member.wait()).await.unwrap();
    assert!(status.success(), "SIGINT exits 0: {status:?}");

    // a reset to a time: after every message (tomorrow) means the log end,
    // as with kafka-consumer-groups. (The mock does not look offsets up by
    // time, so "the first message after T" is not exercised here.)
    ok(&["offsets", "reset", "g1", "--topic", "cli", "--to-earliest", "--execute", "--zookeeper", z]).await;
    let future = ["offsets", "reset", "g1", "--topic", "cli", "--to-datetime", "2999-01-01T00:00:00Z", "--execute"];
    ok(&[&future[..], &["--zookeeper", z]].concat()).await;
    let d = json(&ok(&["group", "describe", "g1", "--zookeeper", z, "--format", "json"]).await);
    assert!(d["partitions"].as_array().unwrap().iter().all(|r| r["committed"] == r["log_end"]), "{d}");

    // error cases
    fails(&["group", "describe", "nosuch", "--zookeeper", z], 66, "does not exist").await;
    fails(&["consume", "--zookeeper", z, "--group", "g2", "--topic", "nosuch"], 66, "does not exist").await;
    fails(&["brokers", "--zookeeper", &format!("{z}/nochroot")], 68, "chroot").await;
    fails(
        &["offsets", "reset", "g1", "--topic", "cli", "--to-datetime", "yesterday", "--zookeeper", z],
        2,
        "yesterday",
    )
    .await;
    fails(&["offsets", "reset", "g1", "--topic", "cli", "--zookeeper", z], 2, "--to-earliest").await;
    fails(&["consume", "--zookeeper", z, "--group", "g1"], 2, "--topic").await;
    fails(&["consume", "--zookeeper", z, "--group", "g1", "--topic", "cli", "-o", "sideways"], 2, "sideways").await;
    fails(&["consume", "--zookeeper", z, "--group", "g1", "--topic", "cli", "-f", "%q"], 64, "%q").await;
    let observer = zkbalance::testkit::connect(z, Duration::from_secs(6)).await.unwrap();
    observer.set_data("/consumers/g1/offsets/cli/0", b"not-a-number", None).await.expect("corrupt an offset");
    let args = ["group", "describe", "g1", "--zookeeper", z, "--format", "json", "--offset-storage", "zookeeper"];
    let d = json(&ok(&args).await);
    assert_eq!(d["problems"][0]["znode"], "/consumers/g1/offsets/cli/0", "{d}");
    assert!(d["partitions"][0]["committed"].is_null() && !d["partitions"][1]["committed"].is_null(), "{d}");

    // no broker left: Kafka-side work fails with its own code
    drop(kafka);
    zkbalance::testkit::wait_until("the brokers' registrations to vanish", Duration::from_secs(30), || async {
        json(&ok(&["brokers", "--zookeeper", z, "--format", "json"]).await).as_array().unwrap().is_empty().then_some(())
    })
    .await
    .expect("brokers gone");
    fails(&["offsets", "reset", "g1", "--topic", "cli", "--to-earliest", "--zookeeper", z], 76, "no broker").await;
}

/// What other clients leave in a Scala-layout group, one oddity per group
/// beside a good member and owner: describe exits 0, shows the rest of the
/// table right, and lists the oddity with its reason.
#[tokio::test]
async fn describe_lists_what_other_clients_leave_in_a_group() {
    let (zk, _kafka) = topic_cluster("tol", 3).await;
    let z = &zk.connect_string();
    let observer = zkbalance::testkit::connect(z, Duration::from_secs(6)).await.unwrap();
    let good = br#"{"version":1,"subscription":{"tol":1},"pattern":"static","timestamp":"1"}"#;
    // (member znodes, owner znodes of tol, the problem znode if any)
    type Oddity =
        (&'static [(&'static str, &'static [u8])], &'static [(&'static str, &'static [u8])], Option<&'static str>);
    let cases: &[(&str, Oddity)] = &[
        (
            "bare",
            (
                &[("kn_peer", br#"{"version":1,"subscription":{"tol":1,"x":1},"pattern":"white_list"}"#)],
                &[("1", b"kn_peer")],
                None,
            ),
        ),
        ("garbage", (&[("junk", b"\xff\x00{")], &[], Some("ids/junk"))),
        ("empty", (&[("blank", b"")], &[], Some("ids/blank"))),
        ("pykafka", (&[("host:5e6f7a1c-1d2b-4c3d-9e8f-0a1b2c3d4e5f", b"tol")], &[], Some("ids/host:5e6f7a1c"))),
        ("badname", (&[], &[("x-y-z", b"who")], Some("owners/tol/x-y-z"))),
        ("nopartition", (&[], &[("7", b"ghost-0")], Some("owners/tol/7"))),
    ];
    for (name, (members, owners, problem)) in cases {
        let g = format!("odd_{name}");
        let persistent = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
        observer.mkdir(&format!("/consumers/{g}/ids"), &persistent).await.unwrap();
        observer.mkdir(&format!("/consumers/{g}/owners/tol"), &persistent).await.unwrap();
        let mut all_members = vec![("good_a", &good[..])];
        all_members.extend(members.iter().copied());
        for (id, payload) in all_members {
            observer.create(&format!("/consumers/{g}/ids/{id}"), payload, &persistent).await.unwrap();
        }
        let mut all_owners: Vec<(&str, &[u8])> = vec![("0", b"good_a-0")];
        all_owners.extend(owners.iter().copied());
        for (znode, payload) in all_owners {
            observer.create(&format!("/consumers/{g}/owners/tol/{znode}"), payload, &persistent).await.unwrap();
        }
        let table = ok(&["group", "describe", &g, "--zookeeper", z]).await;
        let d = json(&ok(&["group", "describe", &g, "--zookeeper", z, "--format", "json"]).await);
        let rows = d["partitions"].as_array().unwrap();
        assert_eq!(rows.len(), 3, "{name}: every partition of tol: {d}");
        assert_eq!(rows[0]["owner"], "good_a-0", "{name}: {d}");
        assert_eq!(d["members"].as_array().unwrap().len(), 1 + members.len(), "{name}: {d}");
        match problem {
            None => {
                assert_eq!(rows[1]["owner"], "kn_peer", "{name}: a bare-id owner shown as written: {d}");
                assert!(d["problems"].as_array().unwrap().is_empty(), "{name}: {d}");
            }
            Some(znode) => {
                let problems = d["problems"].as_array().unwrap();
                assert!(
                    problems.iter().any(|p| p["znode"].as_str().unwrap().contains(znode)),
                    "{name}: {znode} listed with its reason: {d}"
                );
                assert!(table.contains("cannot be used") && table.contains(znode), "{name}:\n{table}");
            }
        }
    }
}

#[tokio::test]
async fn demo_and_sim_run_and_report() {
    let out = run(&["demo", "--messages", "2000"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "demo failed: {}\n{stdout}", text(&out.stderr));
    assert!(stdout.contains("Member a stops cleanly") && stdout.contains("Member d joins"), "{stdout}");
    assert!(stdout.contains("consumed 8000") && stdout.contains("duplicated 0, lost 0"), "{stdout}");
    let sim = ok(&["sim", "--seed", "7", "--members", "3", "--partitions", "6", "--quiet"]).await;
    assert!(!sim.is_empty());
    fails(&["sim", "--members", "0"], 2, "--members").await;
}

#[tokio::test]
async fn a_scala_simulation_on_two_topics_replays_byte_for_byte() {
    let args = ["sim", "--flavour", "scala", "--topics", "2", "--seed", "7"];
    let (first, again) = (ok(&args).await, ok(&args).await);
    assert_eq!(first, again, "the same seed prints the same timeline");
    assert!(first.lines().count() > 100, "a whole timeline:\n{first}");
    // Both topics, Scala owner names and a whitelist member are in it.
    for needed in ["claim t-", "claim u-", "every invariant held"] {
        assert!(first.contains(needed), "no {needed:?} in:\n{first}");
    }
    let other = ok(&["sim", "--flavour", "scala", "--topics", "2", "--seed", "8"]).await;
    assert_ne!(first, other, "the seed matters");
}

#[tokio::test]
async fn unreachable_zookeeper_is_one_line_and_exit_69() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let z = format!("127.0.0.1:{port}");
    for args in [
        vec!["brokers", "--zookeeper", &z, "--timeout", "1500ms"],
        vec!["group", "list", "-z", &z, "--timeout", "1500ms"],
        vec!["consume", "-z", &z, "-G", "g", "-t", "t", "--timeout", "1500ms", "--session-timeout", "1s"],
    ] {
        // The line says how long it really waited: the whole bound, even
        // when one attempt of the client gives up sooner (the session
        // timeout).
        let started = std::time::Instant::now();
        fails(&args, 69, "unreachable (waited 1.").await;
        assert!(started.elapsed() >= Duration::from_millis(1500), "{args:?} waited the bound");
    }
    // A malformed address is a usage error, not an unreachable server.
    for bad in [":::", "host:port", "a:1,,b:2"] {
        fails(&["brokers", "-z", bad], 64, "is not HOST:PORT").await;
        fails(&["consume", "-z", bad, "-G", "g", "-t", "t"], 64, "is not HOST:PORT").await;
    }
}
