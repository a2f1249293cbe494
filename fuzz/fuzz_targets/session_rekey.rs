#![no_main]
//! Re-keying on the sans-I/O connection: a session that re-keys, at one of
//! its re-key states, fed raw bytes as the peer's next records.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::session_rekey(data));
