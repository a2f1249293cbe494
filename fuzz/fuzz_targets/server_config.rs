#![no_main]
//! sc-server's config file parser (`config::load`: TOML into the listener
//! tables with `deny_unknown_fields`, and the error lines with line numbers
//! and "did you mean" hints), compiled from the binary's own source file:
//! the binaries are not libraries, so the file is included as it is.
#![allow(dead_code)]

#[path = "../../bins/sc-server/config.rs"]
mod config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::with_config_file(data, |path| {
    let _ = config::load(path);
}));
