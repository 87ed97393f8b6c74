//! Every codec: decode(encode(v)) == v, and decode never panics.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use super::*;
use crate::ids::{BrokerId, MemberId, PartitionId, TopicName};

fn topic() -> impl Strategy<Value = TopicName> {
    "[A-Za-z0-9._-]{1,40}".prop_filter_map("reserved", |s| TopicName::new(s).ok())
}

fn member_id() -> impl Strategy<Value = MemberId> {
    "[A-Za-z0-9._:-]{1,60}".prop_filter_map("reserved", |s| MemberId::new(s).ok())
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9.-]{0,30}", "[0-9a-f:]{2,20}"]
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    ("[A-Z_]{1,12}", host(), any::<u16>()).prop_map(|(listener, host, port)| Endpoint { listener, host, port })
}

fn broker() -> impl Strategy<Value = BrokerRegistration> {
    (1..=5i32, proptest::option::of("[a-z0-9.-]{1,30}"), proptest::option::of(any::<u16>()), -1..=65535i32)
        .prop_flat_map(|(version, host, port, jmx_port)| {
            let needs_legacy = version < 2;
            let endpoints = if needs_legacy { vec(endpoint(), 0..=0).boxed() } else { vec(endpoint(), 1..4).boxed() };
            (
                Just(version),
                Just(if needs_legacy { Some(host.unwrap_or_default()) } else { host }),
                Just(if needs_legacy { Some(port.unwrap_or(9092)) } else { port }),
                Just(jmx_port),
                proptest::option::of(0..=i64::MAX as u64),
                endpoints,
                proptest::option::of("[a-z0-9-]{1,12}"),
                btree_map("[A-Z_]{1,10}", "[A-Z_]{1,10}", 0..3),
                btree_map("[a-z.]{1,10}", (any::<i16>(), any::<i16>()), 0..3),
            )
        })
        .prop_map(|(version, host, port, jmx_port, timestamp_ms, endpoints, rack, lsp, features)| BrokerRegistration {
            version,
            host,
            port,
            jmx_port,
            timestamp_ms,
            endpoints,
            // Fields are not tied to their version: real registrations can
            // carry fields beyond the version they declare.
            rack,
            listener_security_protocol_map: lsp.into_iter().collect(),
            features: features
                .into_iter()
                .map(|(name, (min_version, max_version))| FeatureRange { name, min_version, max_version })
                .collect(),
        })
}

fn assignment() -> impl Strategy<Value = ReplicaAssignment> {
    btree_map((0..5000i32).prop_map(PartitionId), vec((0..2000i32).prop_map(BrokerId), 0..5), 0..20)
}

fn topic_registration() -> impl Strategy<Value = TopicRegistration> {
    (1..=3i32, assignment(), assignment(), assignment(), proptest::option::of("[A-Za-z0-9_-]{22}")).prop_map(
        |(version, partitions, adding, removing, id)| TopicRegistration {
            version,
            partitions,
            adding_replicas: adding,
            removing_replicas: removing,
            topic_id: id,
        },
    )
}

fn member_registration() -> impl Strategy<Value = MemberRegistration> {
    let streams = 1..=64u32;
    let subscription = prop_oneof![
        btree_map(topic(), streams.clone(), 0..5).prop_map(|m| Subscription::Static(m.into_iter().collect())),
        (".{0,20}", streams.clone()).prop_map(|(regex, streams)| Subscription::Whitelist { regex, streams }),
        (".{0,20}", streams).prop_map(|(regex, streams)| Subscription::Blacklist { regex, streams }),
    ];
    prop_oneof![
        topic().prop_map(|topic| MemberRegistration::Pykafka { topic }),
        (subscription, proptest::option::of(0..=i64::MAX as u64)).prop_map(|(subscription, timestamp_ms)| {
            MemberRegistration::Scala(ScalaRegistration { subscription, timestamp_ms })
        }),
    ]
}

fn round_trips<C: Codec + PartialEq + std::fmt::Debug>(v: C) -> Result<(), TestCaseError> {
    let bytes = v.encode();
    let back = C::decode("/roundtrip", &bytes);
    prop_assert_eq!(back.as_ref(), Ok(&v), "{}", String::from_utf8_lossy(&bytes));
    Ok(())
}

proptest! {
    #[test]
    fn broker_registrations_round_trip(v in broker()) { round_trips(v)?; }

    #[test]
    fn topic_registrations_round_trip(v in topic_registration()) { round_trips(v)?; }

    #[test]
    fn partition_states_round_trip(
        leader in proptest::option::of((0..1000i32).prop_map(BrokerId)),
        leader_epoch in 0..=i32::MAX, controller_epoch in 0..=i32::MAX,
        isr in vec((0..1000i32).prop_map(BrokerId), 0..6),
    ) {
        round_trips(PartitionState { version: 1, leader, leader_epoch, controller_epoch, isr })?;
    }

    #[test]
    fn member_registrations_round_trip(v in member_registration()) { round_trips(v)?; }

    #[test]
    fn owner_payloads_and_offsets_round_trip(member in member_id(), thread in 0..=i32::MAX as u32, offset in 0..=i64::MAX as u64) {
        round_trips(PykafkaOwner(member.clone()))?;
        round_trips(ScalaOwner { member, thread })?;
        round_trips(ZkOffset(offset))?;
    }

    #[test]
    fn owner_names_round_trip(leader in -1..=i32::MAX, partition in 0..=i32::MAX) {
        let py = OwnerName::Pykafka { leader: BrokerId(leader), partition: PartitionId(partition) };
        prop_assert_eq!(OwnerName::parse(Flavour::Pykafka, "/d", &py.to_string()), Ok(py));
        let sc = OwnerName::Scala { partition: PartitionId(partition) };
        prop_assert_eq!(OwnerName::parse(Flavour::Scala, "/d", &sc.to_string()), Ok(sc));
    }

    #[test]
    fn decoders_are_total(bytes in vec(any::<u8>(), 0..200)) {
        crate::fuzzing::check_all(&bytes);
    }

    #[test]
    fn decoders_are_total_on_near_json(s in r#"\{("[a-z_]{1,12}":(-?[0-9]{1,12}|"[^"]{0,10}"|null|\[[0-9,]{0,8}\]|\{\}),?){0,6}\}"#) {
        crate::fuzzing::check_all(s.as_bytes());
    }
}
