//! Replays every fuzz corpus (seeds and anything `cargo fuzz` saved) through
//! the same checks the fuzz targets run, so a crash once found stays fixed.

use std::path::Path;

#[test]
fn every_fuzz_target_has_a_corpus_and_it_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (target, check) in zkbalance::fuzzing::TARGETS {
        let source = root.join("fuzz_targets").join(format!("{target}.rs"));
        assert!(source.is_file(), "fuzz target {target} has no {}", source.display());
        let dir = root.join("corpus").join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            check(&data);
            n += 1;
        }
        assert!(n > 0, "corpus of {target} is empty");
        replayed += n;
    }
    assert!(replayed >= zkbalance::fuzzing::TARGETS.len());
}

#[test]
fn seed_payloads_decode() {
    use zkbalance::znode::{BrokerRegistration, Codec, MemberRegistration, TopicRegistration};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    // Seeds are the named files (`cargo fuzz` adds hash-named ones): real
    // payloads, each of which must decode, or the corpus is not what it
    // claims to be.
    let all = |t: &str| {
        std::fs::read_dir(root.join(t))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some())
            .map(|p| std::fs::read(p).unwrap())
            .collect::<Vec<_>>()
    };
    for b in all("broker_registration") {
        BrokerRegistration::decode("/seed", &b).unwrap();
    }
    for b in all("topic_registration") {
        TopicRegistration::decode("/seed", &b).unwrap();
    }
    for b in all("member_registration") {
        MemberRegistration::decode("/seed", &b).unwrap();
    }
}
