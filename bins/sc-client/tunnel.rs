//! Tunnel mode: bind every tunnel, serve them until SIGTERM or SIGINT, then
//! drain (the runtime is `sc_tunnel::entry::TunnelEntry`).

use std::time::Duration;

use sc_net::io_reason;
use sc_tunnel::entry::{TunnelConfig, TunnelEntry};
use sovereign_chain::cli::{CliError, Signals};
use tokio::sync::watch;

/// Runs the tunnels until a signal, then lets their sessions finish for up
/// to `grace`.
pub(crate) async fn run(tunnels: Vec<TunnelConfig>, grace: Duration) -> Result<(), CliError> {
    // Handlers first: a signal that comes while binding still drains.
    let mut signals = Signals::install()?;

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
    let mut running = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        running.push(tokio::spawn(entry.run(shutdown, grace)));
    }
    signals.until_any().await;
    let _ = stop.send(true);
    let drain = async {
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
    };
    signals.drain(drain).await;
    Ok(())
}
