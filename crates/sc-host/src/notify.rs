//! systemd's readiness protocol, `sd_notify(3)`.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use sd_notify::NotifyState;

/// Why `NOTIFY_SOCKET` cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifySocketError {
    /// The path does not exist.
    #[error("NOTIFY_SOCKET={0}: no such socket; systemd will not hear that the service is ready")]
    Missing(String),
    /// The path is not a socket.
    #[error("NOTIFY_SOCKET={0}: not a socket; systemd will not hear that the service is ready")]
    NotASocket(String),
    /// An abstract (`@…`) or otherwise unusable address.
    #[error("NOTIFY_SOCKET={0}: {1}; systemd will not hear that the service is ready")]
    Unusable(String, &'static str),
    /// The path cannot be examined.
    #[error("NOTIFY_SOCKET={0}: {1}; systemd will not hear that the service is ready")]
    Io(String, String),
}

/// Sends the daemon's state to systemd, or does nothing (no
/// `NOTIFY_SOCKET`, or one that cannot be used).
#[derive(Clone, Debug)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`: unset, a notifier that does nothing; set to
    /// something that is not a socket, a notifier that does nothing and the
    /// reason, for one warning line (the daemon runs on: without systemd it
    /// works as it should, and under systemd the unit's start times out
    /// with that line in its log).
    pub fn from_env() -> (Self, Option<NotifySocketError>) {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
            return (Self { enabled: false }, None);
        };
        let shown = value.to_string_lossy().into_owned();
        let problem = if shown.is_empty() {
            Some(NotifySocketError::Unusable(shown, "empty"))
        } else if shown.starts_with('@') {
            Some(NotifySocketError::Unusable(
                shown,
                "an abstract socket, which this build does not support (use a path)",
            ))
        } else if !shown.starts_with('/') {
            Some(NotifySocketError::Unusable(shown, "not an absolute path"))
        } else {
            match std::fs::metadata(&value) {
                Ok(m) if m.file_type().is_socket() => None,
                Ok(_) => Some(NotifySocketError::NotASocket(shown)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    Some(NotifySocketError::Missing(shown))
                }
                Err(e) => Some(NotifySocketError::Io(shown, e.to_string())),
            }
        };
        (
            Self {
                enabled: problem.is_none(),
            },
            problem,
        )
    }

    /// A notifier that never sends.
    pub fn disabled() -> Self {
        Self { enabled: false }
    }

    /// Whether it sends.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn send(&self, states: &[NotifyState<'_>]) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        sd_notify::notify(false, states)
    }

    /// `READY=1` and a status line: listeners bound, credentials loaded
    /// (after a reload: the reload is over).
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)])
    }

    /// `RELOADING=1` with `MONOTONIC_USEC` (which `Type=notify-reload`
    /// needs), before a reload; [`ready`](Self::ready) ends it.
    pub fn reloading(&self) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let now = NotifyState::monotonic_usec_now()?;
        self.send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading"),
        ])
    }

    /// `STOPPING=1`: the drain has begun.
    pub fn stopping(&self) -> io::Result<()> {
        self.send(&[NotifyState::Stopping, NotifyState::Status("draining")])
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) -> io::Result<()> {
        self.send(&[NotifyState::Watchdog])
    }

    /// How often to send [`watchdog`](Self::watchdog): half of
    /// `WATCHDOG_USEC` when it is set for this process (`WATCHDOG_PID`),
    /// else `None`.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let mut usec = 0;
        if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
            Some(Duration::from_micros(usec / 2))
        } else {
            None
        }
    }
}
