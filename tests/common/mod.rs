//! Shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use zkbalance::testkit::{KafkaCluster, TestkitError, ZooKeeper};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

pub fn mock_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zkbalance-mock-kafka"))
}

/// A standalone ZooKeeper; panics (fails the test) when it cannot start.
pub async fn zookeeper() -> ZooKeeper {
    init_tracing();
    ZooKeeper::standalone().await.expect("starting the real ZooKeeper server (Debian package `zookeeper`)")
}

pub async fn kafka(zk_connect: &str, brokers: i32) -> KafkaCluster {
    KafkaCluster::start_with_binary(mock_binary(), zk_connect, brokers).await.expect("starting the mock Kafka cluster")
}

/// Awaits `fut` or fails the test naming `what`.
pub async fn within<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

pub fn ok<T>(r: Result<T, TestkitError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}
/// The next message of `c`, failing the test on an error (none is
/// expected on a healthy cluster); `None` once it stopped.
pub async fn recv(c: &mut zkbalance::consumer::BalancedConsumer) -> Option<zkbalance::consumer::Message> {
    c.recv().await.map(|r| r.unwrap_or_else(|e| panic!("unexpected consumer error: {e}")))
}

/// GET `/metrics` of a Prometheus exporter at `addr`: the response, or
/// `None` while it is not up.
pub async fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    body.starts_with("HTTP/1.1 200").then_some(body)
}

/// A loopback address nobody listens on now.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr")
}

#[cfg(feature = "cli")]
pub mod cli;
pub mod consumer;
pub mod group;
pub mod peer_process;
