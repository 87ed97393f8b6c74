//! A worker pool leasing partitions with `GroupMember`, without Kafka: the
//! group hands this process leases on partitions, one worker task works on
//! each until its lease ends (revoked in a rebalance, or lost), and the
//! rebalance never waits on anything but the worker letting go.
//!
//! `cargo run --example worker_pool -- ZK_CONNECT GROUP TOPIC SECONDS`
//!
//! Run it in two terminals with the same group: the partitions split
//! between them, and move back when one stops.

use std::time::Duration;

use zkbalance::coord::{Ending, GroupBuilder, GroupEvent, Lease};

/// One worker: "works" on its partition in ticks until the lease ends.
async fn work(mut lease: Lease) {
    let tp = lease.topic_partition().clone();
    println!("leased {tp} (generation {})", lease.generation());
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let ending = loop {
        tokio::select! {
            ending = lease.ended() => break ending,
            _ = tick.tick() => {
                // Check right before an effect that must not happen twice.
                if !lease.is_valid() {
                    continue;
                }
            }
        }
    };
    match ending {
        Ending::Revoked => println!("released {tp}"),
        other => println!("{tp} ended: {other:?}"),
    }
    // Dropping the lease lets the group hand the partition over.
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [zk, group, topic, seconds] = args.as_slice() else {
        return Err("usage: worker_pool ZK_CONNECT GROUP TOPIC SECONDS".into());
    };
    let run_for = Duration::from_secs(seconds.parse()?);
    let mut member =
        GroupBuilder::default().zookeeper(zk.as_str()).group(group.as_str()).topic(topic.as_str()).join().await?;
    println!("joined as {}", member.id());
    let mut events = member.events();
    let mut workers = tokio::task::JoinSet::new();
    let deadline = tokio::time::sleep(run_for);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            event = events.recv() => match event {
                Some(GroupEvent::Assigned { leases, .. }) => {
                    for lease in leases {
                        workers.spawn(work(lease));
                    }
                }
                Some(_) => {}
                None => break,
            },
            Some(_) = workers.join_next(), if !workers.is_empty() => {}
        }
    }
    // Revokes every lease (the workers let go), deletes the owner znodes
    // and the member znode: peers take over at once.
    member.stop().await?;
    while workers.join_next().await.is_some() {}
    println!("stopped");
    Ok(())
}
