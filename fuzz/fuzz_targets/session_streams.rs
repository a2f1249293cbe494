#![no_main]
//! The streams of a session: stream frames from the peer and what the
//! application does, on the sans-I/O state machine.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::streams(data));
