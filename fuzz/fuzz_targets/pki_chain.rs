#![no_main]
//! Certificate chain verification and inspection of fuzzed DER.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::chain(data));
