//! The consumer from plain threads: `BlockingConsumer` owns a small runtime
//! and is an `Iterator` of messages (and errors).
//!
//! `cargo run --example blocking -- ZK_CONNECT GROUP TOPIC MESSAGES`

use zkbalance::consumer::{BalancedConsumer, BlockingConsumer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [zk, group, topic, n] = args.as_slice() else {
        return Err("usage: blocking ZK_CONNECT GROUP TOPIC MESSAGES".into());
    };
    let limit: usize = n.parse()?;
    let builder = BalancedConsumer::builder().zookeeper(zk.as_str()).group(group.as_str()).topic(topic.as_str());
    let mut consumer = BlockingConsumer::start(builder)?;
    let mut done = 0;
    for item in consumer.by_ref() {
        match item {
            Ok(message) => {
                message.ack();
                done += 1;
                if done == limit {
                    break;
                }
            }
            Err(e) => eprintln!("consumer: {e}"),
        }
    }
    consumer.stop()?;
    println!("processed {done}");
    Ok(())
}
