//! Operations glue shared by the binaries: logging setup and rate-limited
//! error logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Installs the global log subscriber, writing to stderr.
///
/// `verbosity` 0 logs sessions and problems (info), 1 adds the 13 steps of
/// every handshake with their order and timing (debug), 2 and more everything
/// (trace). `RUST_LOG` overrides it.
pub fn init_logging(verbosity: u8, format: LogFormat) {
    let level = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,sc_handshake={level},sc_session={level},sc_relay={level},sc_server={level},sc_client={level}")));
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

/// Lets through at most `burst` messages per key per `period`, and says how
/// many it held back when the next one gets through — so a flood of bad
/// connections cannot flood the log.
#[derive(Debug)]
pub struct RateLimiter {
    burst: u32,
    period: Duration,
    state: Mutex<HashMap<&'static str, Window>>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    passed: u32,
    held: u64,
}

impl RateLimiter {
    /// `burst` messages per `period` and key.
    pub fn new(burst: u32, period: Duration) -> Self {
        Self {
            burst,
            period,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)` if a message with `key` may be logged now, `n` being how
    /// many were held back since the last one; `None` to stay quiet.
    pub fn admit(&self, key: &'static str) -> Option<u64> {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let w = state.entry(key).or_insert(Window {
            start: now,
            passed: 0,
            held: 0,
        });
        if now.duration_since(w.start) >= self.period {
            w.start = now;
            w.passed = 0;
        }
        if w.passed < self.burst {
            w.passed += 1;
            let held = w.held;
            w.held = 0;
            Some(held)
        } else {
            w.held += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_holds_back_and_then_counts() {
        let l = RateLimiter::new(2, Duration::from_millis(50));
        assert_eq!(l.admit("bad"), Some(0));
        assert_eq!(l.admit("bad"), Some(0));
        assert_eq!(l.admit("bad"), None);
        assert_eq!(l.admit("bad"), None);
        assert_eq!(l.admit("other"), Some(0));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.admit("bad"), Some(2));
    }
}

/// The one error a binary ends with: a line naming the reason, and where it
/// helps, a line saying what to do (`error: …` / `hint: …`, the style of
/// `sc-ca`). Usage mistakes (flags, config file) exit with 2 as clap's own,
/// everything else with 1.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    usage: bool,
}

impl CliError {
    /// A failure at run time (files, addresses, the peer): exit status 1.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            usage: false,
        }
    }

    /// A mistake in the flags or the config file: exit status 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            usage: true,
            ..Self::new(message)
        }
    }

    /// A file that cannot be read: `what` names it ("cannot read the CA
    /// bundle ca.pem").
    pub fn io(what: String, e: &std::io::Error) -> Self {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => crate::client::io_reason(e),
        };
        Self::new(format!("{what}: {reason}"))
    }

    /// Adds what to do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The reason alone, for a log line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> std::process::ExitCode {
        if self.usage {
            std::process::ExitCode::from(2)
        } else {
            std::process::ExitCode::FAILURE
        }
    }
}

impl core::fmt::Display for CliError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl From<crate::server::StartError> for CliError {
    fn from(e: crate::server::StartError) -> Self {
        let usage = matches!(
            e,
            crate::server::StartError::Limits { .. } | crate::server::StartError::NoListeners
        );
        Self {
            message: e.to_string(),
            hint: e.hint(),
            usage,
        }
    }
}

impl From<crate::client::ConnectError> for CliError {
    fn from(e: crate::client::ConnectError) -> Self {
        let hint = e.hint();
        let err = Self::new(e.to_string());
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}
