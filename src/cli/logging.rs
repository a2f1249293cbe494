//! Logging set up from the binary's own name.

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format '{other}' (use text or json)")),
        }
    }
}

/// The workspace's crates whose lines the binaries log (the binary's own
/// crate is added by [`init_logging`]).
const LOGGING_CRATES: &[&str] = &[
    "sc_handshake",
    "sc_session",
    "sc_net",
    "sc_tunnel",
    "sc_relay",
    "sovereign_chain",
];

/// The default filter for the binary `bin` (its crate name is `bin` with
/// `_` for `-`) at `level`: warnings from everything, `level` from the
/// workspace's crates and the binary itself.
fn default_filter(bin: &str, level: &str) -> String {
    let mut filter = String::from("warn");
    let own = bin.replace('-', "_");
    for krate in LOGGING_CRATES.iter().copied().chain([own.as_str()]) {
        filter.push_str(&format!(",{krate}={level}"));
    }
    filter
}

/// Installs the global log subscriber of the binary `bin` (`sc-server`),
/// writing to stderr.
///
/// `verbosity` 0 logs sessions and problems (info), 1 adds the 13 steps of
/// every handshake with their order and timing (debug), 2 and more everything
/// (trace); `quiet` logs only warnings at verbosity 0 (an interactive
/// client prints its own summary). `RUST_LOG` overrides it.
pub fn init_logging(bin: &str, verbosity: u8, quiet: bool, format: LogFormat) {
    let level = match (verbosity, quiet) {
        (0, true) => "warn",
        (0, false) => "info",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter(bin, level)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary_logs_its_own_lines() {
        for bin in ["sc-server", "sc-client", "sc-proxy", "sc-ca"] {
            let f = default_filter(bin, "info");
            assert!(f.starts_with("warn,"), "{f}");
            assert!(
                f.contains(&format!("{}=info", bin.replace('-', "_"))),
                "{f}"
            );
            assert!(
                f.contains("sc_relay=info") && f.contains("sc_net=info"),
                "{f}"
            );
        }
    }
}
