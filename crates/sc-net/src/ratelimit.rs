//! Rate-limited warnings: a flood of bad connections cannot flood the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets through at most `burst` messages per key per `period`, and says how
/// many it held back when the next one gets through.
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

impl Default for RateLimiter {
    /// Five lines per kind of problem per ten seconds.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(10))
    }
}

/// `tracing::warn!` through a [`RateLimiter`]: the line is logged if the
/// limiter admits its key, with `suppressed = N` when N lines of that key
/// were held back since the last one.
///
/// ```
/// let limiter = sc_net::RateLimiter::default();
/// sc_net::warn_limited!(limiter, "handshake", peer = "192.0.2.7:5000", "handshake failed");
/// ```
#[macro_export]
macro_rules! warn_limited {
    ($limiter:expr, $key:literal, $($arg:tt)+) => {
        if let Some(held) = $limiter.admit($key) {
            if held > 0 {
                $crate::__tracing::warn!(suppressed = held, $($arg)+);
            } else {
                $crate::__tracing::warn!($($arg)+);
            }
        }
    };
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
