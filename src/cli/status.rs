//! `--status ADDR` of the daemons: the status endpoint (`sc-status`) started
//! before the tunnel's listeners, so `/readyz` can say they are not bound
//! yet, and the readiness checks every daemon shares.

use std::sync::Arc;
use std::time::Duration;

use sc_net::{io_reason, Endpoint};
use sc_status::{Metrics, Status, StatusServer};

use super::CliError;

/// Longest a readiness check waits for a backend's TCP connection.
pub const BACKEND_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The name of the check that passes once the listeners are bound.
pub const LISTENERS: &str = "listeners";

/// A started status endpoint, with the metrics the daemon records into.
#[derive(Debug)]
pub struct Started {
    /// The endpoint (stops when dropped).
    pub server: StatusServer,
    /// Its readiness checks.
    pub status: Arc<Status>,
    /// The registry.
    pub metrics: Arc<Metrics>,
}

/// Binds `addr` and serves the status there; `/readyz` says `listeners`
/// are not ready until [`listeners_bound`] is called. A bind failure is one
/// line, exit status 1.
pub async fn start(addr: &Endpoint) -> Result<Started, CliError> {
    let metrics = Arc::new(Metrics::new());
    let status = Status::new(metrics.clone());
    status.add_check(LISTENERS, || async { Err("not bound yet".to_owned()) });
    let server = StatusServer::bind(addr, status.clone())
        .await
        .map_err(|e| match e.hint() {
            Some(hint) => CliError::new(format!("{e} ({hint})")),
            None => CliError::new(e.to_string()),
        })?;
    tracing::info!(
        "status on {}: GET /healthz, /readyz, /metrics",
        server.local_endpoint()
    );
    Ok(Started {
        server,
        status,
        metrics,
    })
}

/// The listeners are bound: the `listeners` check passes from now on.
pub fn listeners_bound(status: &Status) {
    status.add_check(LISTENERS, || async { Ok(()) });
}

/// Adds the check `backend ADDR`: the backend accepts a TCP (or Unix
/// socket) connection within [`BACKEND_CHECK_TIMEOUT`], tried on every
/// `/readyz`.
pub fn backend_check(status: &Status, backend: Endpoint) {
    let name = format!("backend {backend}");
    status.add_check(name, move || {
        let backend = backend.clone();
        async move {
            match tokio::time::timeout(BACKEND_CHECK_TIMEOUT, backend.connect()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(io_reason(&e)),
                Err(_) => Err(format!(
                    "no connection within {} s",
                    BACKEND_CHECK_TIMEOUT.as_secs()
                )),
            }
        }
    });
}
