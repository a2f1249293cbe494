//! What the four binaries share, so they speak one dialect: the error they
//! end with (exit status 1, or 2 for a usage mistake), the config file and
//! its one-line errors, flag-over-file layering, durations and sizes with
//! the same units everywhere, logging set up from the binary's own name,
//! and the signal loop of the daemons.

pub mod config;
mod error;
mod logging;
mod signals;
pub mod units;

pub use error::CliError;
pub use logging::{init_logging, LogFormat};
pub use signals::Signals;
