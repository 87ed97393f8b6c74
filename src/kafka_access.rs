//! How a client reaches Kafka in a secured or multi-listener cluster:
//! which endpoint of each registered broker it uses (by security protocol
//! or listener name), or the brokers it is given instead, and the
//! librdkafka properties it passes through (`security.protocol`, `ssl.*`,
//! `sasl.*`).

use crate::cluster::ClusterView;

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

/// How a client reaches Kafka: the registered brokers' endpoints of one
/// listener, or given brokers; and librdkafka properties, applied last.
/// `Debug` hides the values of properties that hold secrets.
#[derive(Clone, Default)]
pub struct KafkaAccess {
    /// `host:port,...` to bootstrap from instead of the registrations.
    pub bootstrap: Option<String>,
    /// The listener name to use; `None`: the endpoint speaking the
    /// `security.protocol` property (PLAINTEXT when unset).
    pub listener: Option<String>,
    /// librdkafka properties.
    pub properties: Vec<(String, String)>,
}

/// Whether a librdkafka property holds a secret (its value is never shown).
pub(crate) fn is_secret(key: &str) -> bool {
    ["password", "secret", "key.pem", "keystore", "token", "sasl.jaas"].iter().any(|s| key.contains(s))
}

impl std::fmt::Debug for KafkaAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<(&str, &str)> =
            self.properties.iter().map(|(k, v)| (k.as_str(), if is_secret(k) { "***" } else { v.as_str() })).collect();
        f.debug_struct("KafkaAccess")
            .field("bootstrap", &self.bootstrap)
            .field("listener", &self.listener)
            .field("properties", &shown)
            .finish()
    }
}

impl KafkaAccess {
    /// The endpoint choice these settings make.
    pub fn listener(&self) -> Listener {
        match self.listener.as_ref().filter(|l| !l.trim().is_empty()) {
            Some(name) => Listener::Named(name.clone()),
            None => Listener::for_protocol(
                self.properties.iter().rev().find(|(k, _)| k == "security.protocol").map(|(_, v)| v.as_str()),
            ),
        }
    }

    /// `bootstrap.servers` for a client: the given brokers, else the chosen
    /// endpoints of those registered in `view`.
    ///
    /// # Errors
    /// [`NoListener`] when brokers are registered but none offers the
    /// wanted endpoint; `Ok(None)` when none is registered at all.
    pub fn bootstrap(&self, view: &ClusterView) -> Result<Option<String>, NoListener> {
        if let Some(given) = &self.bootstrap {
            return Ok(Some(given.clone()));
        }
        if view.brokers.is_empty() {
            return Ok(None);
        }
        bootstrap_for(view, &self.listener()).map(Some)
    }
}

/// `host:port` of every live broker's endpoint for `choice`, for
/// `bootstrap.servers`. Brokers without such an endpoint are left out;
/// when none has one, the error says what the brokers do offer.
pub fn bootstrap_for(view: &ClusterView, choice: &Listener) -> Result<String, NoListener> {
    let servers: Vec<String> = view
        .brokers
        .values()
        .filter_map(|b| match choice {
            Listener::Protocol(p) => b.endpoint_for(p),
            Listener::Named(n) => b.endpoints.iter().find(|e| e.listener.eq_ignore_ascii_case(n)).cloned(),
        })
        .map(|e| e.address())
        .collect();
    if servers.is_empty() && !view.brokers.is_empty() {
        let mut offered: Vec<String> = view
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BrokerId;
    use crate::znode::{BrokerRegistration, Codec};

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
        assert_eq!(bootstrap_for(&v, &ssl).unwrap(), "b0:9093,b1.example.com:9093");
        assert_eq!(bootstrap_for(&v, &Listener::for_protocol(Some("SASL_SSL"))).unwrap(), "b1.internal:9094");
        assert_eq!(bootstrap_for(&v, &Listener::Named("internal".into())).unwrap(), "b1.internal:9094");
        // The legacy spelling reads PLAINTEXT only, and these brokers have none.
        assert_eq!(v.bootstrap_servers(), "");
    }

    #[test]
    fn a_listener_nobody_offers_is_a_clear_error() {
        let v = view(&[SSL_ONLY, NAMED]);
        let err = bootstrap_for(&v, &Listener::for_protocol(None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no registered broker offers a security protocol PLAINTEXT endpoint \
             (they offer: EXTERNAL (SSL), INTERNAL (SASL_SSL), SSL (SSL))"
        );
        let err = bootstrap_for(&v, &Listener::Named("REPLICATION".into())).unwrap_err();
        assert!(err.to_string().starts_with("no registered broker offers a listener REPLICATION endpoint"), "{err}");
    }
}
