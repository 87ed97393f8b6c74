#![no_main]
//! Fuzzes the `zk_offset` parser; the check itself lives in `zkbalance::fuzzing`
//! so the corpus-replay test runs exactly the same code.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zkbalance::fuzzing::run("zk_offset", data);
});
