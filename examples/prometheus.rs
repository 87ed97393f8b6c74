//! A consumer whose metrics Prometheus scrapes: the `metrics` facade with
//! `metrics-exporter-prometheus` serving `/metrics` (feature `prometheus`).
//!
//! `cargo run --features prometheus --example prometheus -- ZK_CONNECT GROUP TOPIC ADDR:PORT MESSAGES`
//!
//! then `curl http://ADDR:PORT/metrics`: lag, owned partitions,
//! rebalances and their durations, commit latency and failures, fetch
//! errors and outstanding acknowledgements, labelled by group, topic and
//! partition.

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_util::MetricKindMask;
use zkbalance::consumer::BalancedConsumer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [zk, group, topic, addr, n] = args.as_slice() else {
        return Err("usage: prometheus ZK_CONNECT GROUP TOPIC ADDR:PORT MESSAGES".into());
    };
    let addr: SocketAddr = addr.parse()?;
    let limit: u64 = n.parse()?;
    // The recorder first: the consumer publishes as soon as it runs.
    // Gauges left unset for a while go: those of a partition another member
    // took over are not published any more.
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .idle_timeout(MetricKindMask::GAUGE, Some(zkbalance::consumer::GAUGE_IDLE_TIMEOUT))
        .install()?;
    let mut consumer =
        BalancedConsumer::builder().zookeeper(zk.as_str()).group(group.as_str()).topic(topic.as_str()).start().await?;
    let mut done = 0;
    while done < limit {
        let Some(item) = consumer.recv().await else { break };
        match item {
            Ok(message) => {
                message.ack();
                done += 1;
            }
            Err(e) => eprintln!("consumer: {e}"),
        }
    }
    consumer.commit().await?;
    // Serves until killed: the scraper reads the final figures.
    println!("processed {done}; serving http://{addr}/metrics");
    std::future::pending::<()>().await;
    Ok(())
}
