//! Entry points shared by the `fuzz/` targets and the corpus-replay test, so
//! both exercise exactly the same checks. Not a stable API.

use crate::znode::{
    BrokerRegistration, Codec, Flavour, MemberRegistration, OwnerName, PartitionState, PykafkaOwner, ScalaOwner,
    TopicRegistration, TopicSpelling, ZkOffset,
};

/// Decodes arbitrary bytes; whatever decodes must re-encode to something that
/// decodes to the same value. Panics only on a real bug.
fn check<C: Codec + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(v) = C::decode("/fuzz", data) {
        let again = C::decode("/fuzz", &v.encode());
        assert_eq!(again.as_ref(), Ok(&v), "re-encoding changed the value");
    }
}

/// Owner znode names and owner directory names of both flavours.
pub fn check_names(data: &[u8]) {
    let Ok(name) = std::str::from_utf8(data) else { return };
    for flavour in [Flavour::Pykafka, Flavour::Scala] {
        if let Ok(parsed) = OwnerName::parse(flavour, "/fuzz", name) {
            assert_eq!(parsed.to_string(), name, "owner names are canonical");
        }
    }
    if let Ok((topic, spelling)) = TopicSpelling::parse_dir_name("/fuzz", name) {
        assert_eq!(spelling.dir_name(&topic), name);
    }
}

/// ZooKeeper connect strings: never a panic, and what is accepted has a
/// host in every entry.
pub fn check_connect_string(data: &[u8]) {
    let Ok(connect) = std::str::from_utf8(data) else { return };
    if crate::coord::connect::check(connect).is_ok() {
        let hosts = connect.split('/').next().unwrap_or("");
        assert!(hosts.split(',').all(|h| !h.trim().is_empty() && !h.trim().starts_with(':')), "{connect:?}");
    }
}

/// A fuzz target's check.
pub type Check = fn(&[u8]);

/// One fuzz target per parser: `(name, check)`. `fuzz/fuzz_targets/<name>.rs`
/// calls the check, and the replay test runs `fuzz/corpus/<name>/*` through it.
pub const TARGETS: &[(&str, Check)] = &[
    ("broker_registration", check::<BrokerRegistration>),
    ("topic_registration", check::<TopicRegistration>),
    ("partition_state", check::<PartitionState>),
    ("member_registration", check::<MemberRegistration>),
    ("pykafka_owner", check::<PykafkaOwner>),
    ("scala_owner", check::<ScalaOwner>),
    ("zk_offset", check::<ZkOffset>),
    ("znode_names", check_names),
    ("connect_string", check_connect_string),
];

/// Runs `data` through every target.
pub fn check_all(data: &[u8]) {
    for (_, check) in TARGETS {
        check(data);
    }
}

/// Runs the check registered as `target`. Panics on an unknown name, which
/// is a bug in a fuzz target, not in its input.
pub fn run(target: &str, data: &[u8]) {
    let (_, check) =
        TARGETS.iter().find(|(name, _)| *name == target).unwrap_or_else(|| panic!("no fuzz target {target}"));
    check(data);
}
