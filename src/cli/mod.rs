//! What the four binaries share, so they speak one dialect: the error they
//! end with (exit status 1, or 2 for a usage mistake), the config file and
//! its one-line errors, flag-over-file layering, durations and sizes with
//! the same units everywhere, logging set up from the binary's own name,
//! the signal loop of the daemons, and the man pages and shell completions
//! made from their clap definitions.

pub mod config;
mod error;
pub mod generate;
pub mod host;
mod logging;
mod signals;
pub mod status;
pub mod units;

pub use error::CliError;
pub use host::Host;
pub use logging::{init_logging, LogFormat};
pub use signals::Signals;

use std::process::ExitCode;

/// The end of a binary's `main`: its exit status, and for an error its one
/// line (and hint) on standard error.
pub fn finish(result: Result<ExitCode, CliError>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}

/// The protocol version `n` that `key` (`min_version` or `max_version`,
/// set at `origin`: its flag or a config file) names: 1 or 2; anything else
/// is one usage error naming the key and where it was set.
pub fn protocol_version(
    n: u8,
    origin: config::Origin<'_>,
    key: &str,
) -> Result<sc_wire::ProtocolVersion, CliError> {
    match n {
        1 => Ok(sc_wire::ProtocolVersion::V1),
        2 => Ok(sc_wire::ProtocolVersion::V2),
        _ => Err(origin.bad(key, &format!("unknown protocol version {n} (use 1 or 2)"))),
    }
}

/// The usage error for a `--max-version` below the `--min-version` (flags
/// or keys, each with where it was set): no protocol version is left.
pub fn versions_crossed(min: (u8, config::Origin<'_>), max: (u8, config::Origin<'_>)) -> CliError {
    // Both in the same place of a file: the key alone says where.
    let min_key = if min.1 == max.1 && min.1 != config::Origin::Flag {
        "min_version".to_owned()
    } else {
        min.1.key("min_version")
    };
    max.1.bad(
        "max_version",
        &format!(
            "{} is below {min_key} {}: no protocol version left",
            max.0, min.0
        ),
    )
}

/// The async runtime a daemon runs on (every core, time and I/O).
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))
}
