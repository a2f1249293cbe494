#![no_main]
//! The client state machine fed attacker bytes as the next record in each state (INSECURE fuzzing provider).

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::handshake_client(data));
