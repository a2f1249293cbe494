#![no_main]
//! `Connection::receive` on the client, fed raw bytes at each handshake round and after it.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::session(sc_session::Side::Client, data));
