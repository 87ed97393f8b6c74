//! Prints the brokers and topics a ZooKeeper-mode Kafka cluster has
//! registered, read through zkbalance's codecs.
//!
//! `cargo run --example cluster_view -- 127.0.0.1:2181[/chroot]`

use std::time::Duration;

use zkbalance::coord::{ZkAccess, ZkClient};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let connect = std::env::args().nth(1).ok_or("usage: cluster_view HOST:PORT[,HOST:PORT][/chroot]")?;
    let zk = ZkClient::connect(&connect, &ZkAccess::default(), Duration::from_secs(10)).await?;
    let view = zkbalance::cluster::read(&zk).await?;
    for (id, broker) in &view.brokers {
        let plaintext = broker.endpoint_for("PLAINTEXT").map(|e| e.address()).unwrap_or_else(|| "-".into());
        println!("broker {id}: {plaintext} (registration v{})", broker.version);
    }
    for (topic, partitions) in &view.topics {
        println!("topic {topic}: {} partitions", partitions.len());
    }
    for skipped in &view.skipped {
        eprintln!("skipped: {skipped}");
    }
    Ok(())
}
