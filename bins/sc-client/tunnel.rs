//! Tunnel mode: bind every tunnel, serve them until SIGTERM or SIGINT, then
//! drain (the runtime is `sc_relay::client::TunnelEntry`).

use std::time::Duration;

use sc_relay::client::{io_reason, TunnelConfig, TunnelEntry};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use sc_relay::ops::CliError;

/// Runs the tunnels until a signal, then lets their sessions finish for up
/// to `grace`.
pub(crate) async fn run(tunnels: Vec<TunnelConfig>, grace: Duration) -> Result<(), CliError> {
    // Handlers first: a signal that comes while binding still drains.
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| CliError::new(format!("cannot handle SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| CliError::new(format!("cannot handle SIGINT: {e}")))?;

    let mut entries = Vec::with_capacity(tunnels.len());
    for config in tunnels {
        let listen = config.listen.clone();
        let entry = TunnelEntry::bind(config).await.map_err(|e| {
            let err = CliError::new(format!("cannot listen on {listen}: {}", io_reason(&e)));
            match e.kind() {
                std::io::ErrorKind::AddrInUse => err.hint(
                    "another program (or another tunnel) listens there; pick another --listen",
                ),
                _ => err,
            }
        })?;
        entries.push(entry);
    }

    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!("{name}: stopping (a second signal exits at once)");
        let _ = stop.send(true);
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second signal: exiting without waiting for sessions");
        std::process::exit(1);
    });

    let mut running = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        running.push(tokio::spawn(entry.run(shutdown, grace)));
    }
    for task in running {
        if let Ok(report) = task.await {
            if report.cut > 0 {
                tracing::warn!(
                    cut = report.cut,
                    "sessions cut at the end of the grace period"
                );
            }
        }
    }
    tracing::info!("all tunnels stopped");
    Ok(())
}
