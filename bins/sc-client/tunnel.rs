//! Tunnel mode: bind every tunnel, serve them until SIGTERM or SIGINT, then
//! drain (the runtime is `sc_tunnel::entry::TunnelEntry`).

use std::time::Duration;

use sc_net::io_reason;
use sc_tunnel::entry::{TunnelConfig, TunnelEntry};
use sovereign_chain::cli::{CliError, Host, Signals};
use tokio::sync::watch;

/// Runs the tunnels until a signal, then lets their sessions finish for up
/// to `grace`.
pub(crate) async fn run(
    tunnels: Vec<TunnelConfig>,
    grace: Duration,
    status: Option<sc_net::Endpoint>,
) -> Result<(), CliError> {
    // Handlers first: a signal that comes while binding still drains.
    let mut signals = Signals::install()?;
    // Socket activation's sockets, before any bind.
    let mut host = Host::start()?;

    // The status endpoint first: /readyz then tells "not bound yet".
    let status = match &status {
        Some(addr) => Some(sovereign_chain::cli::status::start(addr).await?),
        None => None,
    };
    let mut tunnels = tunnels;
    if let Some(s) = &status {
        for config in &mut tunnels {
            server_check(&s.status, config);
            config.metrics = Some(s.metrics.clone());
            if let Some(pool) = &config.pool {
                pool.count_in(s.metrics.clone());
            }
        }
    }
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
    if let Some(s) = &status {
        sovereign_chain::cli::status::listeners_bound(&s.status);
    }
    host.ready("tunnels listening")?;

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
    host.stopping();
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

/// `/readyz`: a session to the tunnel's server is up (a kept one), or one
/// can be made now (a handshake, then a clean close), within the check's
/// time limit. One check per server address.
fn server_check(status: &sc_status::Status, config: &TunnelConfig) {
    let target = config.target.clone();
    let pool = config.pool.clone();
    status.add_check(format!("server {}", target.connect), move || {
        let (target, pool) = (target.clone(), pool.clone());
        async move {
            if pool.is_some_and(|p| p.is_up()) {
                return Ok(());
            }
            match target.connect().await {
                Ok(mut session) => {
                    use tokio::io::AsyncWriteExt;
                    let _ = session.shutdown().await;
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        }
    });
}
