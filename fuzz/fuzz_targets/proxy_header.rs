#![no_main]
//! The PROXY v2 header parser (`ProxyHeader::decode`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::proxy_header(data));
