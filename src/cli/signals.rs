//! The signal loop of the daemons: SIGHUP asks for a reload, SIGTERM or
//! SIGINT for a drain, and a second SIGTERM or SIGINT during the drain ends
//! it at once.

use std::future::Future;

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::CliError;

/// The signals a daemon handles. Install them before binding, so a signal
/// sent as soon as the daemon listens is not lost (nor kills the process).
#[derive(Debug)]
pub struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installs the handlers (within a tokio runtime).
    pub fn install() -> Result<Self, CliError> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| CliError::new(format!("cannot handle {name}: {e}")))
        };
        Ok(Self {
            hangup: install(SignalKind::hangup(), "SIGHUP")?,
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    /// Runs until SIGTERM or SIGINT, calling `on_hangup` for every SIGHUP
    /// on the way; logs which stop signal came.
    pub async fn until_stop<F, Fut>(&mut self, mut on_hangup: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let name = loop {
            tokio::select! {
                _ = self.hangup.recv() => on_hangup().await,
                _ = self.terminate.recv() => break "SIGTERM",
                _ = self.interrupt.recv() => break "SIGINT",
            }
        };
        tracing::info!("{name}: stopping (a second signal closes every session at once)");
    }

    /// Runs until SIGTERM, SIGINT or SIGHUP, for a program that has nothing
    /// to reload (a hang-up stops it, as it would without a handler, but
    /// with a drain); logs which came.
    pub async fn until_any(&mut self) {
        let name = tokio::select! {
            _ = self.hangup.recv() => "SIGHUP",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        };
        tracing::info!("{name}: stopping (a second signal closes every session at once)");
    }

    /// Runs `drain` to its end, or until a second SIGTERM or SIGINT.
    pub async fn drain<F: Future>(&mut self, drain: F) {
        tokio::select! {
            _ = drain => {}
            _ = self.terminate.recv() => tracing::warn!("second signal: closing every session now"),
            _ = self.interrupt.recv() => tracing::warn!("second signal: closing every session now"),
        }
    }
}
