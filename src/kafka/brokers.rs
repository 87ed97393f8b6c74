//! Brokers found through ZooKeeper: bootstrapped from their registrations,
//! and followed for the client's life.

use super::KafkaClient;
use crate::kafka_access::{bootstrap_for, Listener};

/// Follows the broker registrations in ZooKeeper for the consumer's life:
/// brokers that appear are added to librdkafka, so a cluster whose brokers
/// were all replaced is still reachable. `known` counts the brokers
/// registered at the last look.
pub(crate) async fn follow_brokers(
    mut sessions: crate::offsets::Sessions,
    listener: Listener,
    client: std::sync::Arc<KafkaClient>,
    known: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    loop {
        let Some((_, zk)) = sessions.borrow_and_update().clone() else { return };
        // The watch is set before the read, so no change falls between them.
        let read = match zk.get_and_watch_children(crate::znode::layout::BROKER_IDS).await {
            Ok((_, _, watcher)) => crate::cluster::brokers(&zk).await.map(|view| (view, watcher)),
            Err(source) => Err(crate::coord::zk::call("read", crate::znode::layout::BROKER_IDS)(source)),
        };
        match read {
            Ok((view, watcher)) => {
                known.store(view.brokers.len(), std::sync::atomic::Ordering::Relaxed);
                let added = super::ffi::add_brokers(&client, &bootstrap_for(&view, &listener).unwrap_or_default());
                if added > 0 {
                    tracing::info!(added, "brokers from ZooKeeper added");
                }
                tokio::select! {
                    _ = watcher.changed() => {}
                    changed = sessions.changed() => if changed.is_err() { return },
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading the broker registrations");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    changed = sessions.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}
