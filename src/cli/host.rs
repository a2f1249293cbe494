//! The daemons on their Linux host (`sc-host`), as the three daemons use it:
//! the Landlock sandbox before the runtime starts, socket activation before
//! binding, and systemd's readiness protocol from then on.
//!
//! ```text
//!  sandbox(enabled, paths)      before the async runtime (its threads inherit it)
//!  Host::start()                NOTIFY_SOCKET checked (a warning), LISTEN_FDS taken
//!  … bind, load credentials …
//!  host.ready()                 passed sockets left over? error; READY=1; watchdog
//!  SIGHUP: host.reloading() … host.ready_again()
//!  SIGTERM: host.stopping()     STOPPING=1, then the drain
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sc_host::notify::Notifier;
use sc_host::sandbox::{Sandbox, SandboxStatus};

use super::CliError;

/// The sandbox's log line, said once the daemon runs ([`Host::ready`]),
/// so a daemon that cannot start says only why.
static SANDBOX_LINE: std::sync::Mutex<Option<(bool, String)>> = std::sync::Mutex::new(None);

/// Enforces the sandbox (unless `enabled` is false) and keeps the one line
/// that says which — enforced fully, partially, not supported by this
/// kernel, or off — for [`Host::ready`] to log. Call it before the async
/// runtime starts its threads.
pub fn sandbox(enabled: bool, sandbox: &Sandbox) -> Result<SandboxStatus, CliError> {
    let status = if enabled {
        sandbox.enforce().map_err(|e| {
            CliError::new(e.to_string()).hint("run with --no-sandbox to start without it")
        })?
    } else {
        SandboxStatus::Off
    };
    let line = match &status {
        SandboxStatus::Full { .. } | SandboxStatus::Partial { .. } => {
            let dirs: Vec<String> = sandbox
                .readable()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let what = if dirs.is_empty() {
                "no files readable but what name resolution reads".to_owned()
            } else {
                format!(
                    "files readable only in {} and what name resolution reads",
                    dirs.join(", ")
                )
            };
            (false, format!("{status}: {what}"))
        }
        SandboxStatus::NotSupported { .. } => (true, status.to_string()),
        SandboxStatus::Off => (false, status.to_string()),
    };
    *SANDBOX_LINE.lock().unwrap_or_else(|e| e.into_inner()) = Some(line);
    Ok(status)
}

/// Logs the sandbox's line, once.
fn log_sandbox() {
    if let Some((warn, line)) = SANDBOX_LINE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        if warn {
            tracing::warn!("{line}");
        } else {
            tracing::info!("{line}");
        }
    }
}

/// The daemon's relation to systemd while it runs; see the [module](self).
#[derive(Debug)]
pub struct Host {
    notifier: Notifier,
    watchdog: Option<tokio::task::JoinHandle<()>>,
    warned: Arc<AtomicBool>,
}

impl Host {
    /// Within the runtime, before binding: checks `NOTIFY_SOCKET` (one
    /// warning line if it cannot be used; the daemon runs on) and takes the
    /// sockets of `LISTEN_FDS`, which every bind then uses (a broken
    /// variable: an error, exit status 1).
    pub fn start() -> Result<Self, CliError> {
        let (notifier, problem) = Notifier::from_env();
        if let Some(problem) = problem {
            tracing::warn!("{problem}");
        }
        match sc_host::activation::from_env() {
            Ok(Some(sockets)) => {
                let names: Vec<String> = sockets
                    .iter()
                    .map(|s| format!("fd {} ({})", s.fd, s.name))
                    .collect();
                tracing::info!(
                    "socket activation: {} passed sockets: {}",
                    sockets.len(),
                    names.join(", ")
                );
                sc_net::inherited::inherit(sockets);
            }
            Ok(None) => {}
            Err(e) => {
                return Err(CliError::new(e.to_string()).hint(
                    "these variables come from systemd (or systemd-socket-activate): start the daemon from its socket unit, or unset them",
                ))
            }
        }
        Ok(Self {
            notifier,
            watchdog: None,
            warned: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A host that tells systemd nothing and takes no sockets.
    pub fn detached() -> Self {
        Self {
            notifier: Notifier::disabled(),
            watchdog: None,
            warned: Arc::new(AtomicBool::new(false)),
        }
    }

    fn sent(warned: &AtomicBool, what: &str, r: std::io::Result<()>) {
        if let Err(e) = r {
            if !warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "cannot tell systemd {what} through NOTIFY_SOCKET: {}",
                    sc_net::io_reason(&e)
                );
            }
        }
    }

    /// Listeners bound and credentials loaded: a passed socket that no
    /// listener took is an error (exit status 1); else `READY=1`, and the
    /// watchdog pings start when `WATCHDOG_USEC` asks for them.
    pub fn ready(&mut self, status: &str) -> Result<(), CliError> {
        let left = sc_net::inherited::leftover();
        if !left.is_empty() {
            return Err(CliError::new(format!(
                "socket activation (LISTEN_FDS): {} matches no listener",
                left.join(", ")
            ))
            .hint("a passed socket must be bound to a --listen address (or be named status, for --status)"));
        }
        log_sandbox();
        Self::sent(&self.warned, "READY=1", self.notifier.ready(status));
        if let (None, Some(every)) = (&self.watchdog, self.notifier.watchdog_interval()) {
            tracing::info!("systemd watchdog: a ping every {}", sc_net::Secs(every));
            let notifier = self.notifier.clone();
            let warned = self.warned.clone();
            self.watchdog = Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    Self::sent(&warned, "WATCHDOG=1", notifier.watchdog());
                }
            }));
        }
        Ok(())
    }

    /// `RELOADING=1`: a reload begins.
    pub fn reloading(&self) {
        Self::sent(&self.warned, "RELOADING=1", self.notifier.reloading());
    }

    /// `READY=1` after a reload.
    pub fn reloaded(&self, status: &str) {
        Self::sent(&self.warned, "READY=1", self.notifier.ready(status));
    }

    /// `STOPPING=1`: the drain begins.
    pub fn stopping(&self) {
        Self::sent(&self.warned, "STOPPING=1", self.notifier.stopping());
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
    }
}
