#![no_main]
//! The server's cookie check (SPEC §4.5) fed attacker first flights, and its own cookie echoed with attacker edits.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::cookie_first_flight(data));
