//! Secured ZooKeeper servers, configured by the testkit from the Debian
//! package: SASL required of every session, a TLS client port with client
//! certificates, digest credentials with ACLs on our znodes.

mod common;

use std::time::Duration;

use common::consumer::{consumer, Ledger, Running};
use common::group::topic_cluster;
use common::{init_tracing, mock_binary, within};
use zkbalance::coord::{AclPolicy, Secret, ZkAccess, ZkSasl, ZkTls};
use zkbalance::testkit::{KafkaCluster, ServerSecurity, ZooKeeper};
use zkbalance::znode::Flavour;

const PASSWORD: &str = "correct-horse-battery";
const WRONG: &str = "wrong-staple-1234";
const KAFKA_SECRET: &str = "kafka-sasl-secret-999";

fn sasl(password: &str) -> ZkAccess {
    ZkAccess::new().with_sasl(ZkSasl::DigestMd5 { username: "zkb".into(), password: Secret::new(password) })
}

/// Two members, joined through sessions made as `access` says, split the
/// 4 partitions of `topic`; then `total` messages are produced and all of
/// them are consumed.
async fn two_members_consume_all(kafka: &mut KafkaCluster, connect: &str, access: &ZkAccess, topic: &str, total: u64) {
    let ledger = Ledger::default();
    let start = |name: &str| {
        let builder = consumer(connect, "g", topic)
            .zookeeper_access(access.clone())
            .flavour(Flavour::Scala)
            .offset_reset("earliest".parse().unwrap());
        let (name, ledger) = (name.to_owned(), ledger.clone());
        async move { Running::spawn(&name, builder.start().await.expect("a member starts"), ledger, topic) }
    };
    let (a, b) = tokio::join!(start("a"), start("b"));
    let observer = zkbalance::testkit::connect_with(connect, access, Duration::from_secs(6)).await.expect("observer");
    within("the two members to split the partitions", Duration::from_secs(20), async {
        loop {
            let dir = format!("/consumers/g/owners/{topic}");
            let mut owners = std::collections::BTreeSet::new();
            let children = observer.list_children(&dir).await.unwrap_or_default();
            for c in &children {
                if let Ok((data, _)) = observer.get_data(&format!("{dir}/{c}")).await {
                    // `<member id>-<thread>`
                    let payload = String::from_utf8_lossy(&data).into_owned();
                    owners.insert(payload.rsplit_once('-').map(|(m, _)| m.to_owned()));
                }
            }
            let members = observer.list_children("/consumers/g/ids").await.unwrap_or_default();
            if children.len() == 4 && members.len() == 2 && owners.len() == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    kafka.produce_generated(topic, total, 100).await.expect("produce");
    within("the members to consume every message", Duration::from_secs(30), async {
        while ledger.distinct() < total {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let (ma, mb) = (a.stop().await, b.stop().await);
    assert_eq!(ledger.distinct(), total, "0 lost");
    assert!(ma.messages > 0 && mb.messages > 0, "both members took a share: {} / {}", ma.messages, mb.messages);
}

/// A server requiring SASL of every session (user `zkb`), and the mock
/// cluster registered in it through an authenticated session.
async fn sasl_cluster() -> (ZooKeeper, KafkaCluster) {
    init_tracing();
    let security =
        ServerSecurity { sasl_users: vec![("zkb".into(), PASSWORD.into())], require_sasl: true, ..Default::default() };
    let zk = ZooKeeper::secured(security).await.expect("a SASL ZooKeeper");
    let kafka =
        KafkaCluster::start_secured(mock_binary(), &zk.connect_string(), &sasl(PASSWORD), 1).await.expect("mock Kafka");
    (zk, kafka)
}

/// `zkbc consume` against `connect` with extra arguments and environment;
/// its exit code and stderr.
async fn zkbc_consume(connect: &str, group: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"));
    cmd.args(["consume", "--zookeeper", connect, "--group", group, "--topic", "sec", "--flavour", "scala"])
        .args(["--timeout", "5s", "-c", "1"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = within("zkbc consume to exit", Duration::from_secs(30), cmd.output()).await.expect("zkbc runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_requiring_sasl_serves_the_group_and_refuses_wrong_credentials() {
    let (zk, mut kafka) = sasl_cluster().await;
    let connect = zk.connect_string();
    kafka.create_topic("sec", 4, 1).await.expect("topic");
    two_members_consume_all(&mut kafka, &connect, &sasl(PASSWORD), "sec", 2_000).await;

    let password_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(password_file.path(), format!("{WRONG}\n")).unwrap();
    let wrong_from_file = ["--zookeeper-sasl", "digest-md5:zkb", "--zookeeper-sasl-password-file"];
    let mut args = wrong_from_file.to_vec();
    let file = password_file.path().to_str().unwrap().to_owned();
    args.push(&file);
    for (args, env) in [
        (&["--zookeeper-sasl", "digest-md5:zkb"][..], &[("ZKB_ZOOKEEPER_SASL_PASSWORD", WRONG)][..]),
        (&args[..], &[][..]),
    ] {
        let (code, stderr) = zkbc_consume(&connect, "g", args, env).await;
        assert_eq!(code, 77, "wrong credentials exit 77 (EX_NOPERM); stderr: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("refused the session's credentials"), "{stderr}");
        assert!(!stderr.contains(WRONG) && !stderr.contains(PASSWORD), "no secret in {stderr}");
    }
    // Without SASL at all, the server lets nothing through either.
    let (code, stderr) = zkbc_consume(&connect, "g", &[], &[]).await;
    eprintln!("refused (no SASL): {stderr}");
    assert_ne!(code, 0, "an unauthenticated member is refused: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tls_port_serves_the_group_and_a_member_without_the_ca_is_refused() {
    init_tracing();
    let zk = ZooKeeper::secured(ServerSecurity { tls: true, ..Default::default() }).await.expect("a TLS ZooKeeper");
    let tls_connect = zk.tls_connect_string().expect("a TLS port");
    let certs = zk.certs().expect("certificates").clone();
    // The cluster registers on the plain port; the members use TLS only.
    let mut kafka = KafkaCluster::start_with_binary(mock_binary(), &zk.connect_string(), 1).await.expect("mock Kafka");
    kafka.create_topic("sec", 4, 1).await.expect("topic");
    let tls = ZkTls::from_files(&certs.ca, Some((&certs.client_cert, &certs.client_key))).expect("PEM files");
    two_members_consume_all(&mut kafka, &tls_connect, &ZkAccess::new().with_tls(tls), "sec", 2_000).await;

    let paths = |ca: &std::path::Path| {
        vec![
            "--zookeeper-tls-ca".to_owned(),
            ca.display().to_string(),
            "--zookeeper-tls-cert".to_owned(),
            certs.client_cert.display().to_string(),
            "--zookeeper-tls-key".to_owned(),
            certs.client_key.display().to_string(),
        ]
    };
    let other: Vec<String> = paths(&certs.other_ca);
    let args: Vec<&str> = other.iter().map(String::as_str).collect();
    let (code, stderr) = zkbc_consume(&tls_connect, "g", &args, &[]).await;
    eprintln!("refused (TLS): {stderr}");
    assert_ne!(code, 0, "a member trusting another CA is refused: {stderr}");
    assert!(stderr.contains(&tls_connect) && stderr.contains("TLS"), "the error names the server and TLS: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digest_acls_protect_our_znodes_from_writers_but_not_from_readers() {
    let (zk, _kafka) = topic_cluster("sec", 2).await;
    let connect = zk.connect_string();
    let access = ZkAccess::new()
        .with_auth_string(&Secret::new(format!("digest:zkb:{PASSWORD}")))
        .unwrap()
        .with_acl(AclPolicy::CreatorAllWorldRead);
    let ledger = Ledger::default();
    let builder = consumer(&connect, "acl", "sec").zookeeper_access(access).flavour(Flavour::Scala);
    let member = Running::spawn("a", builder.start().await.expect("start"), ledger, "sec");
    let observer = zkbalance::testkit::connect(&connect, Duration::from_secs(6)).await.expect("observer");
    let owners = within("both owner znodes", Duration::from_secs(10), async {
        loop {
            let owners = observer.list_children("/consumers/acl/owners/sec").await.unwrap_or_default();
            if owners.len() == 2 {
                return owners;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let ids = observer.list_children("/consumers/acl/ids").await.expect("ids");
    let ours = [format!("/consumers/acl/ids/{}", ids[0]), format!("/consumers/acl/owners/sec/{}", owners[0])];
    for path in &ours {
        let (acl, _) = observer.get_acl(path).await.expect("getACL");
        let text: Vec<String> = acl.iter().map(|a| format!("{}:{}:{}", a.scheme(), a.id(), a.permission())).collect();
        assert_eq!(acl.len(), 2, "{path}: {text:?}");
        assert!(text.iter().any(|t| t.starts_with("digest:zkb:")), "creator-all for our identity on {path}: {text:?}");
        assert!(text.iter().any(|t| t.starts_with("world:anyone:")), "world-read on {path}: {text:?}");
        // A writer without our credentials cannot delete it.
        assert_eq!(observer.delete(path, None).await, Err(zookeeper_client::Error::NoAuth), "{path}");
    }
    // A reader without credentials still describes the group.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"))
        .args(["group", "describe", "acl", "--zookeeper", &connect, "--format", "json"])
        .output()
        .await
        .expect("zkbc group describe");
    assert!(out.status.success(), "describe: {}", String::from_utf8_lossy(&out.stderr));
    let described = String::from_utf8_lossy(&out.stdout);
    assert!(described.contains(&ids[0]), "the member is described: {described}");
    // A member without the credentials is locked out of the restricted
    // `ids` directory, as docs/security.md warns: a typed NoAuth naming
    // the znode, exit 77.
    let (code, stderr) = zkbc_consume(&connect, "acl", &[], &[]).await;
    assert_eq!(code, 77, "{stderr}");
    assert!(stderr.contains("/consumers/acl/ids/") && stderr.contains("not authorized"), "{stderr}");
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_security_properties_reach_librdkafka_and_the_wanted_listener_must_exist() {
    let (zk, mut kafka) = topic_cluster("sec", 2).await;
    let connect = zk.connect_string();
    kafka.produce_generated("sec", 10, 100).await.expect("produce");
    // The mock registers PLAINTEXT only: asking for SSL endpoints, or for a
    // listener name nobody registers, is a clear Kafka error (exit 76).
    for (args, wanted) in [
        (&["-X", "security.protocol=SSL"][..], "a security protocol SSL endpoint"),
        (&["--listener", "EXTERNAL"][..], "a listener EXTERNAL endpoint"),
    ] {
        let (code, stderr) = zkbc_consume(&connect, "g", args, &[]).await;
        assert_eq!(code, 76, "{args:?}: {stderr}");
        assert!(stderr.contains(wanted) && stderr.contains("they offer: PLAINTEXT (PLAINTEXT)"), "{stderr}");
    }
    // The offset tool reaches Kafka the same way.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"))
        .args(["offsets", "reset", "g", "--topic", "sec", "--to-earliest", "--execute", "--zookeeper", &connect])
        .args(["--listener", "EXTERNAL"])
        .output()
        .await
        .expect("zkbc offsets reset");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(76), "{stderr}");
    assert!(stderr.contains("a listener EXTERNAL endpoint"), "{stderr}");
    // TLS asked of a plaintext broker, bootstrapped directly: librdkafka
    // (built with OpenSSL by the kafka-ssl feature) tries a handshake the
    // broker cannot answer, so nothing is delivered.
    let bootstrap = kafka.bootstrap_servers().to_owned();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"))
        .args(["consume", "--zookeeper", &connect, "--group", "tls", "--topic", "sec", "--flavour", "scala"])
        .args(["--offset-reset", "earliest", "--bootstrap-server", &bootstrap, "-X", "security.protocol=ssl"])
        .env("RUST_LOG", "warn,librdkafka=warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("zkbc consume");
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    within("librdkafka to report the failed TLS handshake", Duration::from_secs(20), async {
        use tokio::io::AsyncBufReadExt;
        while !seen.to_ascii_lowercase().contains("ssl") {
            let mut line = String::new();
            if stderr.read_line(&mut line).await.expect("stderr") == 0 {
                panic!("zkbc exited before reporting; stderr: {seen}");
            }
            seen.push_str(&line);
        }
    })
    .await;
    child.start_kill().expect("kill");
    let out = child.wait_with_output().await.expect("reap");
    assert!(out.stdout.is_empty(), "nothing consumed over a refused TLS connection: {:?}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_stay_out_of_help_logs_and_errors() {
    let (zk, mut kafka) = sasl_cluster().await;
    let connect = zk.connect_string();
    kafka.create_topic("sec", 1, 1).await.expect("topic");
    kafka.produce_generated("sec", 5, 100).await.expect("produce");
    let digest = format!("digest:zkb:{WRONG}");
    let env = [("ZKB_ZOOKEEPER_SASL_PASSWORD", PASSWORD), ("ZKB_ZOOKEEPER_AUTH", digest.as_str())];
    for sub in [&["consume", "--help"][..], &["group", "describe", "--help"][..]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_zkbc")).args(sub).envs(env).output().expect("help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--zookeeper-sasl"), "{sub:?} documents the flag");
        assert!(!help.contains(PASSWORD) && !help.contains(WRONG), "{sub:?} --help shows no secret");
    }
    // A full run at the most verbose level, with every secret in use.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"));
    cmd.args(["consume", "--zookeeper", &connect, "--group", "g", "--topic", "sec", "--flavour", "scala"])
        .args(["--offset-reset", "earliest", "-c", "5", "--zookeeper-sasl", "digest-md5:zkb"])
        .args(["-X", &format!("sasl.password={KAFKA_SECRET}"), "-X", "sasl.username=zkb"])
        .envs(env)
        .env("RUST_LOG", "trace")
        .kill_on_drop(true);
    let out = within("a traced run", Duration::from_secs(30), cmd.output()).await.expect("zkbc");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the run succeeds: {}", log.lines().rev().take(5).collect::<Vec<_>>().join("\n"));
    assert!(log.lines().count() > 100, "a trace log was written");
    assert!(!log.contains(PASSWORD) && !log.contains(WRONG), "no secret in the trace log");
    assert!(!log.contains(KAFKA_SECRET), "no Kafka secret in the trace log");
}
