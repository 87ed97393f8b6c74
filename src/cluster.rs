//! The cluster as ZooKeeper describes it: live brokers, topics, partitions,
//! leaders and ISRs, read through the [`znode`](crate::znode) codecs.
//!
//! A malformed znode does not make the whole view fail: it is logged, kept in
//! [`ClusterView::skipped`] and counted, and the rest is read. Only failures
//! of ZooKeeper itself are errors.

use std::collections::BTreeMap;

use zookeeper_client::Client;

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

/// Which of a broker's endpoints a client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Listener {
    /// The first endpoint speaking this security protocol (`PLAINTEXT`,
    /// `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`), by the registration's
    /// `listener_security_protocol_map`.
    Protocol(String),
    /// The endpoint of this listener name (as in `listeners=NAME://…`).
    Named(String),
}

impl Listener {
    /// The listener for a client configured with `security.protocol`
    /// (`None`: librdkafka's default, PLAINTEXT).
    pub fn for_protocol(security_protocol: Option<&str>) -> Self {
        Listener::Protocol(security_protocol.unwrap_or("PLAINTEXT").to_ascii_uppercase())
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listener::Protocol(p) => write!(f, "security protocol {p}"),
            Listener::Named(n) => write!(f, "listener {n}"),
        }
    }
}

/// No live broker offers the wanted listener.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no registered broker offers a {wanted} endpoint (they offer: {})", if offered.is_empty() { "none".to_owned() } else { offered.join(", ") })]
pub struct NoListener {
    /// What was asked for.
    pub wanted: Listener,
    /// `NAME (PROTOCOL)` of every endpoint the brokers register.
    pub offered: Vec<String>,
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

    /// `host:port` of every live broker's endpoint for `choice`, for
    /// `bootstrap.servers`. Brokers without such an endpoint are left out;
    /// when none has one, the error says what the brokers do offer.
    pub fn bootstrap_for(&self, choice: &Listener) -> Result<String, NoListener> {
        let servers: Vec<String> = self
            .brokers
            .values()
            .filter_map(|b| match choice {
                Listener::Protocol(p) => b.endpoint_for(p),
                Listener::Named(n) => b.endpoints.iter().find(|e| e.listener.eq_ignore_ascii_case(n)).cloned(),
            })
            .map(|e| e.address())
            .collect();
        if servers.is_empty() && !self.brokers.is_empty() {
            let mut offered: Vec<String> = self
                .brokers
                .values()
                .flat_map(|b| {
                    let legacy = b.endpoint_for("PLAINTEXT").filter(|_| b.endpoints.is_empty());
                    b.endpoints
                        .iter()
                        .chain(legacy.as_ref())
                        .map(|e| format!("{} ({})", e.listener, b.protocol_of(&e.listener)))
                        .collect::<Vec<_>>()
                })
                .collect();
            offered.sort();
            offered.dedup();
            return Err(NoListener { wanted: choice.clone(), offered });
        }
        Ok(servers.join(","))
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
pub async fn read(zk: &Client) -> Result<ClusterView, ZkCallError> {
    let mut view = read_brokers(zk).await?;
    read_topics(zk, &mut view).await?;
    Ok(view)
}

/// Reads the broker registrations only (no topics): what bootstrapping and
/// following brokers need, without a read per partition.
pub async fn read_brokers(zk: &Client) -> Result<ClusterView, ZkCallError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view(registrations: &[&str]) -> ClusterView {
        let mut view = ClusterView::default();
        for (i, json) in registrations.iter().enumerate() {
            let path = format!("/brokers/ids/{i}");
            let reg = BrokerRegistration::decode(&path, json.as_bytes()).expect("a registration");
            view.brokers.insert(BrokerId(i as i32), reg);
        }
        view
    }

    const SSL_ONLY: &str = r#"{"listener_security_protocol_map":{"SSL":"SSL"},"endpoints":["SSL://b0:9093"],"jmx_port":-1,"host":null,"timestamp":"1700000000000","port":-1,"version":4}"#;
    const NAMED: &str = r#"{"listener_security_protocol_map":{"INTERNAL":"SASL_SSL","EXTERNAL":"SSL"},"endpoints":["INTERNAL://b1.internal:9094","EXTERNAL://b1.example.com:9093"],"jmx_port":-1,"host":null,"timestamp":"1700000000000","port":-1,"version":4}"#;

    #[test]
    fn endpoints_are_chosen_by_protocol_or_listener_name() {
        let v = view(&[SSL_ONLY, NAMED]);
        let ssl = Listener::for_protocol(Some("ssl"));
        assert_eq!(v.bootstrap_for(&ssl).unwrap(), "b0:9093,b1.example.com:9093");
        assert_eq!(v.bootstrap_for(&Listener::for_protocol(Some("SASL_SSL"))).unwrap(), "b1.internal:9094");
        assert_eq!(v.bootstrap_for(&Listener::Named("internal".into())).unwrap(), "b1.internal:9094");
        // The legacy spelling reads PLAINTEXT only, and these brokers have none.
        assert_eq!(v.bootstrap_servers(), "");
    }

    #[test]
    fn a_listener_nobody_offers_is_a_clear_error() {
        let v = view(&[SSL_ONLY, NAMED]);
        let err = v.bootstrap_for(&Listener::for_protocol(None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no registered broker offers a security protocol PLAINTEXT endpoint \
             (they offer: EXTERNAL (SSL), INTERNAL (SASL_SSL), SSL (SSL))"
        );
        let err = v.bootstrap_for(&Listener::Named("REPLICATION".into())).unwrap_err();
        assert!(err.to_string().starts_with("no registered broker offers a listener REPLICATION endpoint"), "{err}");
    }
}
