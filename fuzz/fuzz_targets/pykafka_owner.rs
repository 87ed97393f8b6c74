#![no_main]
//! Fuzzes the `pykafka_owner` parser; the check itself lives in `zkbalance::fuzzing`
//! so the corpus-replay test runs exactly the same code.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zkbalance::fuzzing::run("pykafka_owner", data);
});
