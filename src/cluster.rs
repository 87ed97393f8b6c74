//! The cluster as ZooKeeper describes it: live brokers, topics, partitions,
//! leaders and ISRs, read through the [`znode`](crate::znode) codecs.
//!
//! A malformed znode does not make the whole view fail: it is logged, kept in
//! [`ClusterView::skipped`] and counted, and the rest is read. Only failures
//! of ZooKeeper itself are errors.

use std::collections::BTreeMap;

use zookeeper_client::Client;

use crate::coord::ZkClient;
use crate::ids::{BrokerId, PartitionId, TopicName};
use crate::zk_call::ZkCallError;
use crate::znode::{layout, BrokerRegistration, Codec, PartitionState, TopicRegistration, ZnodeError};

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Replica brokers, from the topic registration.
    pub replicas: Vec<BrokerId>,
    /// Leader and ISR, when the partition's `state` znode exists and parses.
    pub state: Option<PartitionState>,
}

/// What ZooKeeper says about the cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Live brokers by id.
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
    /// Topics and their partitions.
    pub topics: BTreeMap<TopicName, BTreeMap<PartitionId, PartitionView>>,
    /// Znodes that were present but malformed, and were skipped.
    pub skipped: Vec<ZnodeError>,
}

impl ClusterView {
    /// `host:port` of every live broker's PLAINTEXT listener, for
    /// `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.brokers
            .values()
            .filter_map(|b| b.endpoint_for("PLAINTEXT"))
            .map(|e| e.address())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The current leader of a partition, if known.
    pub fn leader(&self, topic: &TopicName, partition: PartitionId) -> Option<BrokerId> {
        self.topics.get(topic)?.get(&partition)?.state.as_ref()?.leader
    }
}

pub(crate) async fn get(zk: &Client, path: &str) -> Result<Option<Vec<u8>>, ZkCallError> {
    match zk.get_data(path).await {
        Ok((data, _)) => Ok(Some(data)),
        // Gone between listing and reading: not an error, just not there.
        Err(zookeeper_client::Error::NoNode) => Ok(None),
        Err(source) => Err(crate::coord::zk::call("read", path)(source)),
    }
}

pub(crate) async fn children(zk: &Client, path: &str) -> Result<Vec<String>, ZkCallError> {
    match zk.list_children(path).await {
        Ok(mut c) => {
            c.sort();
            Ok(c)
        }
        Err(zookeeper_client::Error::NoNode) => Ok(Vec::new()),
        Err(source) => Err(crate::coord::zk::call("read", path)(source)),
    }
}

impl ClusterView {
    fn skip(&mut self, e: ZnodeError) {
        tracing::warn!(error = %e, "skipping a malformed znode");
        self.skipped.push(e);
    }
}

/// Reads brokers, topics and partition states.
///
/// # Errors
/// [`ZkCallError`] when a request fails (the session lost, or a znode not
/// readable with the session's rights); malformed znodes are skipped.
pub async fn read(zk: &ZkClient) -> Result<ClusterView, ZkCallError> {
    read_all(zk.raw()).await
}

/// Reads the broker registrations only (no topics): what bootstrapping and
/// following brokers need, without a read per partition.
///
/// # Errors
/// As [`read`].
pub async fn read_brokers(zk: &ZkClient) -> Result<ClusterView, ZkCallError> {
    brokers(zk.raw()).await
}

pub(crate) async fn read_all(zk: &Client) -> Result<ClusterView, ZkCallError> {
    let mut view = brokers(zk).await?;
    read_topics(zk, &mut view).await?;
    Ok(view)
}

pub(crate) async fn brokers(zk: &Client) -> Result<ClusterView, ZkCallError> {
    let mut view = ClusterView::default();
    for id in children(zk, layout::BROKER_IDS).await? {
        let path = format!("{}/{id}", layout::BROKER_IDS);
        let Some(bytes) = get(zk, &path).await? else { continue };
        let Some(n) = id.parse::<i32>().ok().filter(|n| *n >= 0) else {
            view.skip(ZnodeError { path, problem: crate::znode::Problem::BadText("broker id is not a number".into()) });
            continue;
        };
        match BrokerRegistration::decode(&path, &bytes) {
            Ok(reg) => {
                view.brokers.insert(BrokerId(n), reg);
            }
            Err(e) => view.skip(e),
        }
    }
    Ok(view)
}

async fn read_topics(zk: &Client, view: &mut ClusterView) -> Result<(), ZkCallError> {
    for name in children(zk, layout::BROKER_TOPICS).await? {
        let topic = match TopicName::new(name.as_str()) {
            Ok(t) => t,
            Err(e) => {
                view.skip(ZnodeError { path: format!("{}/{name}", layout::BROKER_TOPICS), problem: e.into() });
                continue;
            }
        };
        let path = layout::topic(&topic);
        let Some(bytes) = get(zk, &path).await? else { continue };
        let registration = match TopicRegistration::decode(&path, &bytes) {
            Ok(r) => r,
            Err(e) => {
                view.skip(e);
                continue;
            }
        };
        let mut partitions = BTreeMap::new();
        for (p, replicas) in registration.partitions {
            let state_path = layout::partition_state(&topic, p);
            let state = match get(zk, &state_path).await? {
                None => None,
                Some(bytes) => match PartitionState::decode(&state_path, &bytes) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        view.skip(e);
                        None
                    }
                },
            };
            partitions.insert(p, PartitionView { replicas, state });
        }
        view.topics.insert(topic, partitions);
    }
    Ok(())
}
