//! At-least-once consumption: each message is acknowledged once its work
//! is done, so commits never pass work that a crash would lose. Errors are
//! printed and the consumer goes on; a fatal one ends the loop.
//!
//! `cargo run --example at_least_once -- ZK_CONNECT GROUP TOPIC [MESSAGES]`

use std::time::Duration;

use zkbalance::consumer::BalancedConsumer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [zk, group, topic, rest @ ..] = args.as_slice() else {
        return Err("usage: at_least_once ZK_CONNECT GROUP TOPIC [MESSAGES]".into());
    };
    let limit: u64 = rest.first().map(|n| n.parse()).transpose()?.unwrap_or(u64::MAX);
    let mut consumer = BalancedConsumer::builder()
        .zookeeper(zk.as_str())
        .group(group.as_str())
        .topic(topic.as_str())
        .auto_commit(Some(Duration::from_secs(1)))
        .start()
        .await?;
    let mut done = 0;
    while done < limit {
        let Some(item) = consumer.recv().await else { break };
        match item {
            Ok(message) => {
                // The work: here, counting bytes. Acknowledge after it.
                let bytes = message.payload().map_or(0, <[u8]>::len);
                done += 1;
                if done % 100 == 0 {
                    println!("{done} messages, last {}@{} ({bytes} B)", message.topic_partition(), message.offset());
                }
                message.ack();
            }
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => eprintln!("consumer: {e}"),
        }
    }
    // Commits what was acknowledged, releases the partitions, leaves.
    consumer.stop().await?;
    println!("processed {done}");
    Ok(())
}
