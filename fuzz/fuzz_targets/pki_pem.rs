#![no_main]
//! Certificate, CRL and key loading from PEM (`certs_from_pem`, `crls_from_pem`, `inspect_pem`, `KeyPair::from_pem`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::pem(data));
