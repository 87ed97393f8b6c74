//! `/brokers/ids/<id>`: what a ZooKeeper-mode broker writes about itself.

use std::fmt;

use serde_json::{json, Map, Value};

use super::error::{bad_field, Problem};
use super::json::{self, Object};
use super::Codec;

/// One listener a broker advertises: `<LISTENER>://<host>:<port>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, `SSL`, or a custom name mapped to a
    /// protocol by `listener_security_protocol_map`).
    pub listener: String,
    /// Host or IP; empty means "all interfaces" as Kafka allows.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `NAME://host:port`, with IPv6 hosts in brackets.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (listener, rest) = s.split_once("://").ok_or_else(|| format!("{s:?} lacks '://'"))?;
        if listener.is_empty() || !listener.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(format!("{s:?} has an invalid listener name"));
        }
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("{s:?} lacks ':<port>'"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(|| format!("{s:?} has an unclosed '['"))?,
            None if host.contains(':') => return Err(format!("{s:?}: an IPv6 host needs brackets")),
            None => host,
        };
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("{s:?} has an invalid host"));
        }
        let port = json::parse_decimal_u64(port)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("{s:?} has an invalid port"))?;
        Ok(Endpoint { listener: listener.to_owned(), host: host.to_owned(), port })
    }

    /// `host:port`, bracketing IPv6 hosts, as client bootstrap lists want it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.listener, self.address())
    }
}

/// A feature range a v5 registration advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRange {
    /// The feature's name.
    pub name: String,
    /// Lowest supported version.
    pub min_version: i16,
    /// Highest supported version.
    pub max_version: i16,
}

/// A broker's registration, every version Kafka wrote (v1–v5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// Registration format version (1–5 known; later ones are read for the
    /// fields we know).
    pub version: i32,
    /// Legacy host field; `None` when the broker wrote `null` (SSL-only).
    pub host: Option<String>,
    /// Legacy port field; `None` when the broker wrote `-1` (SSL-only).
    pub port: Option<u16>,
    /// JMX port, `-1` when disabled.
    pub jmx_port: i32,
    /// Registration time in ms since the epoch.
    pub timestamp_ms: Option<u64>,
    /// v2+: every listener.
    pub endpoints: Vec<Endpoint>,
    /// v3+: the broker's rack.
    pub rack: Option<String>,
    /// v4+: listener name → security protocol, in written order.
    pub listener_security_protocol_map: Vec<(String, String)>,
    /// v5+: supported features.
    pub features: Vec<FeatureRange>,
}

impl BrokerRegistration {
    /// The security protocol a listener speaks: from the v4 map, else the
    /// listener name itself (before v4 listener names were protocol names).
    pub fn protocol_of<'a>(&'a self, listener: &'a str) -> &'a str {
        self.listener_security_protocol_map
            .iter()
            .find(|(l, _)| l == listener)
            .map(|(_, p)| p.as_str())
            .unwrap_or(listener)
    }

    /// The first endpoint speaking `protocol` (e.g. `PLAINTEXT`), falling back
    /// to the legacy host/port for PLAINTEXT on v1 registrations.
    pub fn endpoint_for(&self, protocol: &str) -> Option<Endpoint> {
        if let Some(e) = self.endpoints.iter().find(|e| self.protocol_of(&e.listener) == protocol) {
            return Some(e.clone());
        }
        match (&self.host, self.port, protocol) {
            (Some(host), Some(port), "PLAINTEXT") if self.endpoints.is_empty() => {
                Some(Endpoint { listener: "PLAINTEXT".into(), host: host.clone(), port })
            }
            _ => None,
        }
    }

    /// A v4 registration as a Kafka 2.x broker with one PLAINTEXT listener
    /// writes it.
    pub fn plaintext_v4(host: &str, port: u16, timestamp_ms: u64) -> Self {
        BrokerRegistration {
            version: 4,
            host: Some(host.to_owned()),
            port: Some(port),
            jmx_port: -1,
            timestamp_ms: Some(timestamp_ms),
            endpoints: vec![Endpoint { listener: "PLAINTEXT".into(), host: host.to_owned(), port }],
            rack: None,
            listener_security_protocol_map: vec![("PLAINTEXT".into(), "PLAINTEXT".into())],
            features: Vec::new(),
        }
    }
}

fn decode_host(obj: &Object) -> Result<Option<String>, Problem> {
    match obj.get("host") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(h)) => Ok(Some(h.clone())),
        Some(v) => Err(bad_field("host", format!("expected a string or null, found {}", json::kind(v)))),
    }
}

fn decode_port(obj: &Object) -> Result<Option<u16>, Problem> {
    match obj.get("port") {
        None => Ok(None),
        Some(v) => match json::int_in(v, "port", -1, 65535)? {
            -1 => Ok(None),
            p => Ok(Some(p as u16)),
        },
    }
}

fn decode_features(obj: &Object) -> Result<Vec<FeatureRange>, Problem> {
    let Some(v) = obj.get("features") else { return Ok(Vec::new()) };
    let map =
        v.as_object().ok_or_else(|| bad_field("features", format!("expected an object, found {}", json::kind(v))))?;
    map.iter()
        .map(|(name, range)| {
            let range =
                range.as_object().ok_or_else(|| bad_field("features", format!("{name}: expected an object")))?;
            let version = |f: &'static str| {
                json::int_in(json::required(range, f)?, f, i16::MIN.into(), i16::MAX.into()).map(|n| n as i16)
            };
            Ok(FeatureRange {
                name: name.clone(),
                min_version: version("min_version")?,
                max_version: version("max_version")?,
            })
        })
        .collect()
}

fn decode(obj: &Object) -> Result<BrokerRegistration, Problem> {
    let version = json::i32_field(obj, "version", 1)?;
    let endpoints = match obj.get("endpoints") {
        None if version < 2 => Vec::new(),
        None => return Err(Problem::MissingField("endpoints")),
        Some(_) => json::array_field(obj, "endpoints")?
            .iter()
            .map(|e| {
                let s = e.as_str().ok_or_else(|| bad_field("endpoints", "expected strings"))?;
                Endpoint::parse(s).map_err(|why| bad_field("endpoints", why))
            })
            .collect::<Result<_, _>>()?,
    };
    let host = decode_host(obj)?;
    let port = decode_port(obj)?;
    if endpoints.is_empty() && (host.is_none() || port.is_none()) {
        return Err(bad_field("endpoints", "no endpoints and no host/port: the broker is unreachable"));
    }
    let jmx_port = match obj.get("jmx_port") {
        None => -1,
        Some(v) => json::int_in(v, "jmx_port", -1, 65535)? as i32,
    };
    let rack = match obj.get("rack") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(v) => return Err(bad_field("rack", format!("expected a string, found {}", json::kind(v)))),
    };
    let listener_security_protocol_map = match obj.get("listener_security_protocol_map") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(l, p)| match p {
                Value::String(p) => Ok((l.clone(), p.clone())),
                _ => Err(bad_field("listener_security_protocol_map", format!("{l}: expected a string"))),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(bad_field(
                "listener_security_protocol_map",
                format!("expected an object, found {}", json::kind(v)),
            ))
        }
    };
    Ok(BrokerRegistration {
        version,
        host,
        port,
        jmx_port,
        timestamp_ms: json::timestamp_field(obj, "timestamp")?,
        endpoints,
        rack,
        listener_security_protocol_map,
        features: decode_features(obj)?,
    })
}

impl Codec for BrokerRegistration {
    fn decode_payload(bytes: &[u8]) -> Result<Self, Problem> {
        decode(&json::parse_object(bytes)?)
    }

    /// Keys in the order a Kafka 2.x broker writes them, so a registration we
    /// write for a test cluster is byte-identical to a real one. A field is
    /// written when its version requires it or when it has content, so a
    /// registration with fields beyond its version survives a round trip.
    fn encode(&self) -> Vec<u8> {
        let mut m = Map::new();
        if self.version >= 5 || !self.features.is_empty() {
            let features: Map<String, Value> = self
                .features
                .iter()
                .map(|f| (f.name.clone(), json!({"min_version": f.min_version, "max_version": f.max_version})))
                .collect();
            m.insert("features".into(), Value::Object(features));
        }
        if self.version >= 4 || !self.listener_security_protocol_map.is_empty() {
            let lsp: Map<String, Value> = self
                .listener_security_protocol_map
                .iter()
                .map(|(l, p)| (l.clone(), Value::String(p.clone())))
                .collect();
            m.insert("listener_security_protocol_map".into(), Value::Object(lsp));
        }
        if self.version >= 2 || !self.endpoints.is_empty() {
            let eps = self.endpoints.iter().map(|e| Value::String(e.to_string())).collect();
            m.insert("endpoints".into(), Value::Array(eps));
        }
        if let Some(rack) = &self.rack {
            m.insert("rack".into(), Value::String(rack.clone()));
        }
        m.insert("jmx_port".into(), json!(self.jmx_port));
        m.insert("host".into(), self.host.clone().map_or(Value::Null, Value::String));
        if let Some(ts) = self.timestamp_ms {
            m.insert("timestamp".into(), Value::String(ts.to_string()));
        }
        m.insert("port".into(), json!(self.port.map_or(-1, i32::from)));
        m.insert("version".into(), json!(self.version));
        serde_json::to_vec(&Value::Object(m)).expect("a JSON value always serializes")
    }
}
