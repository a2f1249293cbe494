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
