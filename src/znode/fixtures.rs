//! Payloads as the real systems write them, byte for byte.

use super::*;
use crate::ids::{BrokerId, MemberId, PartitionId, TopicName};

const KAFKA2_BROKER_V4: &[u8] = br#"{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://kafka1:9092"],"jmx_port":-1,"host":"kafka1","timestamp":"1587561622934","port":9092,"version":4}"#;
const SSL_ONLY_BROKER_V4: &[u8] = br#"{"listener_security_protocol_map":{"SSL":"SSL"},"endpoints":["SSL://broker1:9093"],"jmx_port":-1,"host":null,"timestamp":"1587561622934","port":-1,"version":4}"#;
const KAFKA08_BROKER_V1: &[u8] =
    br#"{"jmx_port":-1,"timestamp":"1428512949385","host":"10.0.0.1","version":1,"port":9092}"#;
const KAFKA09_BROKER_V2: &[u8] = br#"{"jmx_port":9999,"timestamp":"1446745434520","endpoints":["PLAINTEXT://10.0.0.2:9092"],"host":"10.0.0.2","version":2,"port":9092}"#;
const KAFKA010_BROKER_V3: &[u8] = br#"{"jmx_port":-1,"timestamp":"1481735300812","endpoints":["PLAINTEXT://b3:9092","SSL://b3:9093"],"rack":"us-east-1a","host":"b3","version":3,"port":9092}"#;
const KAFKA27_BROKER_V5: &[u8] = br#"{"features":{},"listener_security_protocol_map":{"INTERNAL":"PLAINTEXT","EXTERNAL":"SASL_SSL"},"endpoints":["INTERNAL://10.1.2.3:19092","EXTERNAL://[2001:db8::1]:9094"],"jmx_port":-1,"host":"10.1.2.3","timestamp":"1612864826131","port":19092,"version":5}"#;
const KAFKA1_TOPIC_V1: &[u8] = br#"{"version":1,"partitions":{"2":[1,2],"1":[2,1],"0":[1,2]}}"#;
const KAFKA24_TOPIC_V2: &[u8] = br#"{"version":2,"partitions":{"0":[1]},"adding_replicas":{},"removing_replicas":{}}"#;
const KAFKA28_TOPIC_V3: &[u8] = br#"{"removing_replicas":{},"partitions":{"1":[2],"0":[1]},"topic_id":"MbBq4uPAQ9CEw5l7a0nKZA","adding_replicas":{},"version":3}"#;
const PARTITION_STATE: &[u8] = br#"{"controller_epoch":1,"leader":0,"version":1,"leader_epoch":0,"isr":[0]}"#;
const SCALA_MEMBER: &[u8] =
    br#"{"version":1,"subscription":{"orders":1},"pattern":"static","timestamp":"1465512345678"}"#;
const SCALA_WHITELIST_MEMBER: &[u8] =
    br#"{"version":1,"subscription":{"orders\\..*":2},"pattern":"white_list","timestamp":"1465512345678"}"#;

fn t(s: &str) -> TopicName {
    TopicName::new(s).unwrap()
}

/// Decodes, checks, re-encodes and demands the original bytes.
fn exact<C: Codec + std::fmt::Debug + PartialEq>(bytes: &[u8]) -> C {
    let v = C::decode("/fixture", bytes).unwrap();
    assert_eq!(String::from_utf8(v.encode()).unwrap(), String::from_utf8(bytes.to_vec()).unwrap());
    v
}

#[test]
fn kafka2_broker_registration_is_byte_exact() {
    let reg: BrokerRegistration = exact(KAFKA2_BROKER_V4);
    assert_eq!(reg, BrokerRegistration::plaintext_v4("kafka1", 9092, 1587561622934));
}

#[test]
fn ssl_only_broker_has_no_legacy_host_and_no_plaintext() {
    let reg: BrokerRegistration = exact(SSL_ONLY_BROKER_V4);
    assert_eq!((reg.host.as_deref(), reg.port), (None, None));
    assert_eq!(reg.endpoint_for("PLAINTEXT"), None);
    assert_eq!(reg.endpoint_for("SSL").unwrap().address(), "broker1:9093");
}

#[test]
fn every_broker_version_yields_an_address() {
    let cases: [(&[u8], i32, &str); 4] = [
        (KAFKA08_BROKER_V1, 1, "10.0.0.1:9092"),
        (KAFKA09_BROKER_V2, 2, "10.0.0.2:9092"),
        (KAFKA010_BROKER_V3, 3, "b3:9092"),
        (KAFKA27_BROKER_V5, 5, "10.1.2.3:19092"),
    ];
    for (bytes, version, addr) in cases {
        let reg = BrokerRegistration::decode("/brokers/ids/1", bytes).unwrap();
        assert_eq!(reg.version, version);
        assert_eq!(reg.endpoint_for("PLAINTEXT").unwrap().address(), addr, "v{version}");
    }
    let v3 = BrokerRegistration::decode("/b", KAFKA010_BROKER_V3).unwrap();
    assert_eq!(v3.rack.as_deref(), Some("us-east-1a"));
    let v5 = BrokerRegistration::decode("/b", KAFKA27_BROKER_V5).unwrap();
    assert_eq!(v5.endpoint_for("SASL_SSL").unwrap().address(), "[2001:db8::1]:9094");
}

#[test]
fn topic_registrations_of_every_version() {
    let v1 = TopicRegistration::decode("/t", KAFKA1_TOPIC_V1).unwrap();
    assert_eq!(v1.partition_ids().collect::<Vec<_>>(), [PartitionId(0), PartitionId(1), PartitionId(2)]);
    assert_eq!(v1.partitions[&PartitionId(1)], [BrokerId(2), BrokerId(1)]);
    let v2: TopicRegistration = exact(KAFKA24_TOPIC_V2);
    assert_eq!(v2.partitions.len(), 1);
    let v3 = TopicRegistration::decode("/t", KAFKA28_TOPIC_V3).unwrap();
    assert_eq!(v3.topic_id.as_deref(), Some("MbBq4uPAQ9CEw5l7a0nKZA"));
    assert_eq!(v3.partitions.len(), 2);
}

#[test]
fn partition_state_is_byte_exact() {
    let s: PartitionState = exact(PARTITION_STATE);
    assert_eq!((s.leader, s.isr.as_slice()), (Some(BrokerId(0)), &[BrokerId(0)][..]));
    let leaderless =
        PartitionState::decode("/s", br#"{"controller_epoch":5,"leader":-1,"version":1,"leader_epoch":7,"isr":[2]}"#)
            .unwrap();
    assert_eq!(leaderless.leader, None);
}

#[test]
fn member_registrations_of_both_flavours() {
    assert_eq!(
        MemberRegistration::decode("/m", b"orders").unwrap(),
        MemberRegistration::Pykafka { topic: t("orders") }
    );
    let MemberRegistration::Scala(reg) = exact(SCALA_MEMBER) else { panic!("not scala") };
    assert_eq!(reg.subscription, Subscription::Static(vec![(t("orders"), 1)]));
    assert_eq!(reg.timestamp_ms, Some(1465512345678));
    let MemberRegistration::Scala(wl) = exact(SCALA_WHITELIST_MEMBER) else { panic!("not scala") };
    assert_eq!(wl.subscription, Subscription::Whitelist { regex: "orders\\..*".into(), streams: 2 });
}

#[test]
fn wildcards_with_several_keys_read_as_the_scala_consumer_reads_them() {
    // kafka-node 3.0.1 given topics t and u: the first key is the filter,
    // its value the stream count; the rest is ignored (Scala's topMap.head).
    let MemberRegistration::Scala(reg) = MemberRegistration::decode_payload(
        br#"{"version":1,"subscription":{"u":3,"t":1},"pattern":"white_list","timestamp":"1","extra":[1]}"#,
    )
    .unwrap() else {
        panic!("not scala")
    };
    assert_eq!(reg.subscription, Subscription::Whitelist { regex: "u".into(), streams: 3 });
    let MemberRegistration::Scala(reg) =
        MemberRegistration::decode_payload(br#"{"version":1,"subscription":{"x.*":2,"y":1},"pattern":"black_list"}"#)
            .unwrap()
    else {
        panic!("not scala")
    };
    assert_eq!(reg.subscription, Subscription::Blacklist { regex: "x.*".into(), streams: 2 });
}

#[test]
fn member_ids_of_both_flavours() {
    let uuid = uuid::Uuid::parse_str("5e6f7a1c-1d2b-4c3d-9e8f-0a1b2c3d4e5f").unwrap();
    assert_eq!(pykafka_member_id("worker-3", uuid).unwrap().as_str(), "worker-3:5e6f7a1c-1d2b-4c3d-9e8f-0a1b2c3d4e5f");
    let g = crate::ids::GroupId::new("billing").unwrap();
    assert_eq!(
        scala_member_id(&g, "host1", 1465512345678, uuid).unwrap().as_str(),
        "billing_host1-1465512345678-5e6f7a1c"
    );
    // Java's toHexString drops leading zeros before the 8 digits are taken.
    let small = uuid::Uuid::parse_str("00000abc-def0-4123-8456-789abcdef012").unwrap();
    assert_eq!(scala_member_id(&g, "h", 1, small).unwrap().as_str(), "billing_h-1-abcdef04");
}

#[test]
fn owner_payloads_of_both_flavours() {
    let scala: ScalaOwner = exact(b"billing_host1-1465512345678-5e6f7a1c-0");
    assert_eq!(scala.member, MemberId::new("billing_host1-1465512345678-5e6f7a1c").unwrap());
    assert_eq!(scala.thread, 0);
    let py: PykafkaOwner = exact(b"worker-3:5e6f7a1c-1d2b-4c3d-9e8f-012345678901");
    assert_eq!(py.0.as_str(), "worker-3:5e6f7a1c-1d2b-4c3d-9e8f-012345678901");
    assert_eq!(exact::<ZkOffset>(b"1234567"), ZkOffset(1234567));
}

#[test]
fn malformed_payloads_are_typed_errors_naming_the_znode() {
    let p = "/brokers/ids/9";
    let cases: Vec<(&[u8], Problem)> = vec![
        (b"\xff", Problem::NotUtf8),
        (b"[]", Problem::Json("expected an object, found an array".into())),
        (br#"{"version":4,"host":"h","port":1}"#, Problem::MissingField("endpoints")),
        (br#"{"version":0,"host":"h","port":1}"#, error::bad_field("version", "0 is outside 1..=2147483647")),
        (br#"{"version":1,"host":"h","port":70000}"#, error::bad_field("port", "70000 is outside -1..=65535")),
        (
            br#"{"version":2,"endpoints":["PLAINTEXT:/h:1"],"host":"h","port":1}"#,
            error::bad_field("endpoints", "\"PLAINTEXT:/h:1\" lacks '://'"),
        ),
        (
            br#"{"version":1,"host":null,"port":-1}"#,
            error::bad_field("endpoints", "no endpoints and no host/port: the broker is unreachable"),
        ),
        (
            br#"{"version":1,"host":"h","port":1,"timestamp":"12x"}"#,
            error::bad_field("timestamp", "\"12x\" is not a decimal millisecond timestamp"),
        ),
    ];
    for (bytes, problem) in cases {
        let err = BrokerRegistration::decode(p, bytes).unwrap_err();
        assert_eq!(err, ZnodeError { path: p.into(), problem }, "{}", String::from_utf8_lossy(bytes));
    }
    assert!(matches!(
        TopicRegistration::decode_payload(br#"{"version":1,"partitions":{"01":[1]}}"#),
        Err(Problem::BadField { field: "partitions", .. })
    ));
    assert!(matches!(
        PartitionState::decode_payload(br#"{"version":1,"leader":-2,"leader_epoch":0,"controller_epoch":0,"isr":[]}"#),
        Err(Problem::BadField { field: "leader", .. })
    ));
    assert!(matches!(MemberRegistration::decode_payload(b"bad topic"), Err(Problem::Name(_))));
    assert!(matches!(
        MemberRegistration::decode_payload(br#"{"version":1,"subscription":{},"pattern":"white_list"}"#),
        Err(Problem::BadField { field: "subscription", .. })
    ));
    assert!(MemberRegistration::decode_payload(b"").is_err());
    assert!(matches!(
        MemberRegistration::decode_payload(br#"{"version":1,"subscription":{"a":0},"pattern":"static"}"#),
        Err(Problem::BadField { field: "subscription", .. })
    ));
    assert!(matches!(ScalaOwner::decode_payload(b"member-x"), Err(Problem::BadText(_))));
    for bad in [&b""[..], b"-1", b" 1", b"01", b"1.5", b"99999999999999999999"] {
        assert!(ZkOffset::decode_payload(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}
