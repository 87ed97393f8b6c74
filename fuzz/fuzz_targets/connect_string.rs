#![no_main]
//! Fuzzes the ZooKeeper connect-string check; the check itself lives in
//! `zkbalance::fuzzing` so the corpus-replay test runs exactly the same code.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zkbalance::fuzzing::run("connect_string", data);
});
