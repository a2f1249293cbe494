#![no_main]
//! Every handshake message decoder (`HandshakeMessage::decode_for`, both
//! protocol versions), strictness checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::handshake_message(data));
