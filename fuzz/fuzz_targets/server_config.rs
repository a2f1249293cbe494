#![no_main]
//! sc-server's config file parser (`config::load`: TOML into the listener
//! tables with `deny_unknown_fields`, and the error lines with line numbers
//! and "did you mean" hints), compiled from the binary's own source file:
//! the binaries are not libraries, so the file is included as it is.
#![allow(dead_code)]

#[path = "../../bins/sc-server/config.rs"]
mod config;

/// What config.rs needs from bins/sc-server/settings.rs, which itself needs
/// the binary's clap types and so cannot be included.
mod settings {
    /// A copy of sc-server's `parse_size` (byte counts with KiB/MiB units),
    /// used by config.rs for `max_message` strings. Keep it in step.
    pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: usize = digits.parse().map_err(|_| {
            format!("'{s}' is not a size (use bytes, or KiB/MiB: 65536, 64KiB, 1MiB)")
        })?;
        let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" | "kb" => 1024,
            "m" | "mib" | "mb" => 1024 * 1024,
            _ => return Err(format!("'{s}': unknown unit (use KiB or MiB)")),
        };
        n.checked_mul(factor)
            .ok_or_else(|| format!("'{s}' is too large"))
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| sc_fuzz::with_config_file(data, |path| {
    let _ = config::load(path);
}));
