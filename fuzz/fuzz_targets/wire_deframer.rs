#![no_main]
//! The record deframer and the inner-record and alert decoders.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::deframer(data));
