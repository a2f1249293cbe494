//! The HTTP side: a small accept loop of its own (its own connection limit
//! and timeouts, in its own task, so a flood on it reaches neither the
//! tunnel's listeners nor their limits) and three routes. hyper parses and
//! writes all of HTTP/1.1; this module only routes.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sc_net::{io_reason, Endpoint, Listener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, CONTENT_TYPE as METRICS_CONTENT_TYPE};

/// Status connections held at once; one more is closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest wait for a request's headers (a silent connection is closed).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one status connection, requests included (a scraper
/// reconnects; a slow reader cannot hold a place longer).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Longest a readiness check may take; then it counts as not ready.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest request head hyper buffers.
const MAX_BUFFER: usize = 16 * 1024;

/// What a readiness check returns: `Err` says, in a few words, what is not
/// ready.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

type Probe = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// What the endpoint serves: the metrics, and the readiness checks the
/// binary registers.
pub struct Status {
    metrics: Arc<Metrics>,
    checks: Mutex<Vec<(String, Probe)>>,
}

impl core::fmt::Debug for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names: Vec<String> = self
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        f.debug_struct("Status").field("checks", &names).finish()
    }
}

/// One check that did not pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    /// The check's name (`listeners`, `credentials`, `backend 127.0.0.1:6379`).
    pub check: String,
    /// Why.
    pub reason: String,
}

impl Status {
    /// A status with no readiness check yet (ready).
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            checks: Mutex::new(Vec::new()),
        })
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Adds a readiness check, run on every `GET /readyz` (within
    /// [`CHECK_TIMEOUT`]). A check of the same name is replaced.
    pub fn add_check<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let name = name.into();
        let probe: Probe = Arc::new(move || Box::pin(check()) as CheckFuture);
        let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        checks.retain(|(n, _)| *n != name);
        checks.push((name, probe));
    }

    /// Runs every check at once; the ones that fail, in the order added.
    pub async fn not_ready(&self) -> Vec<NotReady> {
        let checks: Vec<(String, Probe)> = self
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let running: Vec<_> = checks
            .into_iter()
            .map(|(name, probe)| {
                let task = tokio::spawn(tokio::time::timeout(CHECK_TIMEOUT, probe()));
                (name, task)
            })
            .collect();
        let mut failed = Vec::new();
        for (check, task) in running {
            let reason = match task.await {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(reason))) => reason,
                Ok(Err(_)) => format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
                Err(_) => "the check failed".to_owned(),
            };
            failed.push(NotReady { check, reason });
        }
        failed
    }
}

/// Why the status endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve status on {addr}: {reason}")]
pub struct BindError {
    /// The address.
    pub addr: Endpoint,
    /// Why, in a few words ("address already in use").
    pub reason: String,
    /// The error's kind.
    pub kind: io::ErrorKind,
}

impl BindError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match (self.kind, &self.addr) {
            (io::ErrorKind::AddrInUse, _) => {
                Some("another process listens there: choose another --status address")
            }
            (io::ErrorKind::PermissionDenied, Endpoint::Tcp(_)) => {
                Some("ports below 1024 need privileges: choose a port above 1023")
            }
            (io::ErrorKind::PermissionDenied, Endpoint::Unix(_)) => {
                Some("check the permissions of the socket's directory")
            }
            (io::ErrorKind::NotFound, Endpoint::Unix(_)) => {
                Some("the socket's directory must exist")
            }
            (io::ErrorKind::AddrNotAvailable, _) => {
                Some("this machine has no such address: use 127.0.0.1, [::1], 0.0.0.0 or [::]")
            }
            _ => None,
        }
    }
}

/// The running endpoint; dropping it stops it.
#[derive(Debug)]
pub struct StatusServer {
    local: Endpoint,
    stop: CancellationToken,
}

impl StatusServer {
    /// Binds `addr` and serves `status` from a task of its own on the
    /// current tokio runtime.
    pub async fn bind(addr: &Endpoint, status: Arc<Status>) -> Result<Self, BindError> {
        let err = |e: io::Error| BindError {
            addr: addr.clone(),
            reason: io_reason(&e),
            kind: e.kind(),
        };
        let (listener, local) = addr
            .bind_as(sc_net::inherited::STATUS_NAME)
            .await
            .map_err(err)?;
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, status, stop.clone()));
        Ok(Self { local, stop })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(listener: Listener, status: Arc<Status>, stop: CancellationToken) {
    let places = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (io, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or a connection reset in the backlog:
                // go on after a pause rather than spin.
                tracing::debug!("status: accept failed: {}", io_reason(&e));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Full: closed at once (the scraper retries).
        let Ok(place) = places.clone().try_acquire_owned() else {
            drop(io);
            continue;
        };
        let status = status.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _place = place;
            let service = service_fn(move |req| {
                let status = status.clone();
                async move { Ok::<_, Infallible>(route(req, &status).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_BUFFER)
                .serve_connection(TokioIo::new(io), service);
            tokio::select! {
                _ = conn => {}
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

fn text(
    code: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const PLAIN: &str = "text/plain; charset=utf-8";

async fn route(req: Request<Incoming>, status: &Status) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return text(
            StatusCode::NOT_FOUND,
            "not found: /healthz, /readyz, /metrics\n",
            PLAIN,
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: GET\n",
            PLAIN,
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n", PLAIN),
        "/readyz" => {
            let failed = status.not_ready().await;
            if failed.is_empty() {
                return text(StatusCode::OK, "ready\n", PLAIN);
            }
            let body = serde_json::json!({
                "ready": false,
                "not_ready": failed
                    .iter()
                    .map(|f| serde_json::json!({ "check": f.check, "reason": f.reason }))
                    .collect::<Vec<_>>(),
            });
            let mut body = body.to_string();
            body.push('\n');
            text(StatusCode::SERVICE_UNAVAILABLE, body, "application/json")
        }
        _ => text(
            StatusCode::OK,
            status.metrics.encode(),
            METRICS_CONTENT_TYPE,
        ),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn start() -> StatusServer {
        let addr: Endpoint = "127.0.0.1:0".parse().expect("address");
        StatusServer::bind(&addr, Status::new(Arc::new(Metrics::new())))
            .await
            .expect("bind")
    }

    /// Reads until the server closes; how long that took.
    async fn closed_within(io: &mut sc_net::Stream, within: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        let mut buf = [0u8; 256];
        loop {
            match tokio::time::timeout(within, io.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => continue,
                Err(_) => return None,
            }
        }
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_header_timeout() {
        let server = start().await;
        let mut io = server.local_endpoint().connect().await.expect("connect");
        let took = closed_within(&mut io, HEADER_TIMEOUT + CONNECTION_LIFETIME)
            .await
            .expect("closed");
        assert!(took < HEADER_TIMEOUT + Duration::from_secs(2), "{took:?}");
    }

    #[tokio::test]
    async fn one_connection_over_the_limit_is_closed_at_once() {
        let server = start().await;
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(server.local_endpoint().connect().await.expect("connect"));
        }
        let mut extra = server.local_endpoint().connect().await.expect("connect");
        assert!(closed_within(&mut extra, Duration::from_secs(2))
            .await
            .is_some());
    }

    #[tokio::test]
    async fn readiness_names_what_is_not_ready() {
        let status = Status::new(Arc::new(Metrics::new()));
        assert!(status.not_ready().await.is_empty());
        status.add_check("a", || async { Ok(()) });
        status.add_check("b", || async { Err("down".to_owned()) });
        assert_eq!(
            status.not_ready().await,
            vec![NotReady {
                check: "b".into(),
                reason: "down".into()
            }]
        );
        status.add_check("b", || async { Ok(()) });
        assert!(status.not_ready().await.is_empty());
    }
}
