//! One way to say what went wrong with I/O, and one way to print a duration,
//! for every log line and error message of the binaries.

use core::fmt;
use std::io;
use std::time::Duration;

/// An I/O failure in a few words ("connection refused", "no such file or
/// directory"), without the operating system's error number.
pub fn io_reason(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let words = match e.kind() {
        K::NotFound => "no such file or directory",
        K::PermissionDenied => "permission denied",
        K::IsADirectory => "it is a directory",
        K::AlreadyExists => "it already exists",
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::NetworkDown => "network down",
        K::AddrInUse => "address already in use",
        K::AddrNotAvailable => "address not available on this machine",
        K::TimedOut => "timed out",
        K::BrokenPipe => "broken pipe",
        K::UnexpectedEof => "connection closed",
        _ => {
            let text = e.to_string();
            // std's resolver error: "failed to lookup address information: <gai_strerror>".
            return match text.strip_prefix("failed to lookup address information: ") {
                Some(why) => format!("name resolution failed ({why})"),
                None => text,
            };
        }
    };
    words.to_owned()
}

/// A duration as the binaries print it: seconds, to the millisecond, without
/// trailing zeros (`30s`, `1.5s`, `0.25s`, `0.004s`). The duration parser of
/// the command lines reads it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (whole, frac) = (ms / 1000, ms % 1000);
        if frac == 0 {
            return write!(f, "{whole}s");
        }
        let digits = format!("{frac:03}");
        write!(f, "{whole}.{}s", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_short() {
        let s = |ms| Secs(Duration::from_millis(ms)).to_string();
        assert_eq!(s(30_000), "30s");
        assert_eq!(s(1_500), "1.5s");
        assert_eq!(s(250), "0.25s");
        assert_eq!(s(4), "0.004s");
        assert_eq!(s(0), "0s");
        assert_eq!(Secs(Duration::from_micros(1_500_900)).to_string(), "1.5s");
    }

    #[test]
    fn io_errors_drop_the_os_number() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&e), "connection refused");
        let e = io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(
            io_reason(&e),
            "name resolution failed (Name or service not known)"
        );
    }
}
