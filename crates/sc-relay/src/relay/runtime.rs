//! The relay at run time: an accept loop per listener, the first bytes of
//! each connection, the choice of a backend (retries included), the pipe,
//! the log line at its end; health probes; drain.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sc_wire::{AlertCode, RouteName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hello::{alert_record, classify, Verdict, MAX_HELLO_RECORD};
use super::pipe::{pipe, PipeOptions, PipeReport};
use super::pool::{Backend, Claim, Pool};
use super::settings::{RelayLimits, RelaySettings, DEFAULT_CONNECT_TIMEOUT};
use crate::client::io_reason;
use crate::ops::RateLimiter;
use crate::proxy_protocol::ProxyHeader;
use crate::server::ShutdownReport;
use crate::{Endpoint, Listener, Stream};

/// How long a refused connection is kept to get its alert out and read
/// what the client sent (so the close does not reset the connection before
/// the client has read the alert).
const REFUSE_LINGER: Duration = Duration::from_secs(1);
/// Connections refused over the connection limit that linger at once;
/// beyond that they are closed at once.
const MAX_REFUSING: usize = 64;
/// After the grace period, how long cut sessions get to log their end.
const CUT_WAIT: Duration = Duration::from_secs(3);
/// Log lines per kind of problem per [`LOG_PERIOD`].
const LOG_BURST: u32 = 5;
const LOG_PERIOD: Duration = Duration::from_secs(10);

/// Why the relay could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RelayStartError {
    /// No listener was configured.
    #[error("no listener configured")]
    NoListeners,
    /// A listener's routes or limits are not usable.
    #[error("listener {listen}: {reason}")]
    Invalid {
        /// The listener's address.
        listen: Endpoint,
        /// What is wrong.
        reason: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {listen}: {reason}")]
    Bind {
        /// The address.
        listen: Endpoint,
        /// Why, in a few words ("address already in use").
        reason: String,
        /// The error's kind.
        kind: io::ErrorKind,
    },
}

impl RelayStartError {
    /// What the user can do about it, where there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoListeners => {
                Some("give --listen ADDR, or a [[listener]] in the config file".into())
            }
            Self::Invalid { .. } => None,
            Self::Bind { kind, listen, .. } => match (kind, listen) {
                (io::ErrorKind::AddrInUse, _) => {
                    Some("another process listens there: stop it or choose another port".into())
                }
                (io::ErrorKind::PermissionDenied, Endpoint::Tcp(_)) => {
                    Some("ports below 1024 need privileges: choose a port above 1023".into())
                }
                (io::ErrorKind::AddrNotAvailable, _) => Some(
                    "this machine has no such address: use 127.0.0.1, [::1], 0.0.0.0 or [::]"
                        .into(),
                ),
                (_, Endpoint::Unix(_)) => {
                    Some("check that the socket's directory exists and is writable".into())
                }
                _ => None,
            },
        }
    }
}

/// A backend as the relay sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendStatus {
    /// Its address.
    pub endpoint: Endpoint,
    /// Whether new sessions go to it.
    pub healthy: bool,
    /// Sessions relayed to it now.
    pub active: usize,
}

#[derive(Debug)]
struct ListenerState {
    local: Endpoint,
    routes: HashMap<RouteName, Pool>,
    default: Option<Pool>,
    fallback: Option<Endpoint>,
    send_proxy_v2: bool,
    limits: RelayLimits,
    connections: Arc<Semaphore>,
}

impl ListenerState {
    fn active(&self) -> usize {
        self.limits
            .max_connections
            .saturating_sub(self.connections.available_permits())
    }
}

#[derive(Debug)]
struct Shared {
    /// Ends the accept loops and the health probes.
    stop_accepting: CancellationToken,
    /// Ends every connection (the grace period is over).
    hard_stop: CancellationToken,
    tracker: TaskTracker,
    limiter: RateLimiter,
    refusing: Arc<Semaphore>,
}

/// A running relay: one accept loop per listener and one health-probe loop
/// on the current tokio runtime.
///
/// * [`bind`](Self::bind) checks every listener, binds every address and
///   starts; it fails (with nothing left running) on the first listener
///   that cannot start.
/// * [`shutdown`](Self::shutdown) stops accepting and lets sessions finish
///   within a grace period, then closes the rest.
///
/// Dropping it stops everything at once.
#[derive(Debug)]
pub struct Relay {
    listeners: Vec<Arc<ListenerState>>,
    backends: Vec<Arc<Backend>>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts every listener and the health probes. Must be called within a
    /// tokio runtime with time and I/O enabled.
    pub async fn bind(settings: RelaySettings) -> Result<Self, RelayStartError> {
        if settings.listeners.is_empty() {
            return Err(RelayStartError::NoListeners);
        }
        // One Backend per address, shared by every route that names it, so
        // its session count and health are one.
        let mut backends: Vec<Arc<Backend>> = Vec::new();
        let mut backend = |e: &Endpoint| -> Arc<Backend> {
            if let Some(b) = backends.iter().find(|b| &b.endpoint == e) {
                return b.clone();
            }
            let b = Arc::new(Backend::new(e.clone()));
            backends.push(b.clone());
            b
        };
        let mut bound = Vec::new();
        for s in &settings.listeners {
            s.check().map_err(|reason| RelayStartError::Invalid {
                listen: s.listen.clone(),
                reason,
            })?;
            let routes = s
                .routes
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        Pool::new(r.backends.iter().map(&mut backend).collect()),
                    )
                })
                .collect();
            let default = (!s.default.is_empty())
                .then(|| Pool::new(s.default.iter().map(&mut backend).collect()));
            let bind_error = |e: io::Error| RelayStartError::Bind {
                listen: s.listen.clone(),
                reason: io_reason(&e),
                kind: e.kind(),
            };
            let listener = s.listen.listen().await.map_err(bind_error)?;
            let local = listener.local_endpoint().map_err(bind_error)?;
            let state = ListenerState {
                local,
                routes,
                default,
                fallback: s.fallback.clone(),
                send_proxy_v2: s.send_proxy_v2,
                connections: Arc::new(Semaphore::new(s.limits.max_connections)),
                limits: s.limits.clone(),
            };
            bound.push((listener, Arc::new(state), s));
        }
        let shared = Arc::new(Shared {
            stop_accepting: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            limiter: RateLimiter::new(LOG_BURST, LOG_PERIOD),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        });
        let mut listeners = Vec::new();
        let mut tasks = Vec::new();
        for (listener, state, s) in bound {
            tracing::info!(
                "listening on {} ({}; at most {} connections)",
                state.local,
                describe_routes(s),
                s.limits.max_connections
            );
            tasks.push(tokio::spawn(accept_loop(
                listener,
                state.clone(),
                shared.clone(),
            )));
            listeners.push(state);
        }
        match settings.health_interval {
            Some(every) if !backends.is_empty() => {
                tracing::info!(
                    "health probes: a TCP connect to each of {} backend(s) every {}",
                    backends.len(),
                    secs(every)
                );
                tasks.push(tokio::spawn(health_loop(
                    backends.clone(),
                    every,
                    shared.clone(),
                )));
            }
            _ => {}
        }
        Ok(Self {
            listeners,
            backends,
            shared,
            tasks,
        })
    }

    /// The bound addresses, in the order given (with the real port where 0
    /// was asked for).
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        self.listeners.iter().map(|l| l.local.clone()).collect()
    }

    /// Every backend (each address once), its health and its sessions.
    pub fn backends(&self) -> Vec<BackendStatus> {
        self.backends
            .iter()
            .map(|b| BackendStatus {
                endpoint: b.endpoint.clone(),
                healthy: b.is_healthy(),
                active: b.active(),
            })
            .collect()
    }

    /// Connections open now over all listeners (reading a ClientHello or
    /// relaying).
    pub fn active_connections(&self) -> usize {
        self.listeners.iter().map(|l| l.active()).sum()
    }

    /// Stops accepting (listening sockets close at once) and probing, lets
    /// open sessions finish within `grace`, then closes the rest and returns
    /// when every session has ended.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        self.shared.stop_accepting.cancel();
        for handle in self.tasks.drain(..) {
            let _ = handle.await;
        }
        let open_at_start = self.active_connections();
        tracing::info!(
            "shutting down: no longer accepting; {open_at_start} open sessions have {} to finish",
            secs(grace)
        );
        self.shared.tracker.close();
        let mut cut = 0;
        if tokio::time::timeout(grace, self.shared.tracker.wait())
            .await
            .is_err()
        {
            cut = self.active_connections();
            tracing::warn!("grace period over: closing {cut} open sessions");
            self.shared.hard_stop.cancel();
            let _ = tokio::time::timeout(CUT_WAIT, self.shared.tracker.wait()).await;
        }
        tracing::info!("shut down");
        ShutdownReport { open_at_start, cut }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop_accepting.cancel();
        self.shared.hard_stop.cancel();
    }
}

fn describe_routes(s: &super::RelayListenerSettings) -> String {
    let list = |v: &[Endpoint]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts: Vec<String> = s
        .routes
        .iter()
        .map(|r| format!("route {} -> {}", r.name, list(&r.backends)))
        .collect();
    if !s.default.is_empty() {
        parts.push(format!("default -> {}", list(&s.default)));
    }
    if let Some(f) = &s.fallback {
        parts.push(format!("fallback -> {f}"));
    }
    if s.send_proxy_v2 {
        parts.push("PROXY v2 to backends".into());
    }
    parts.join("; ")
}

/// `5s`, `0.25s`.
fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A warning, if the rate limiter lets it through (with the number held
/// back since the last one).
macro_rules! limited {
    ($shared:expr, $key:literal, $($arg:tt)+) => {
        if let Some(held) = $shared.limiter.admit($key) {
            if held > 0 {
                tracing::warn!(suppressed = held, $($arg)+);
            } else {
                tracing::warn!($($arg)+);
            }
        }
    };
}

async fn accept_loop(listener: Listener, state: Arc<ListenerState>, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shared.stop_accepting.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((io, peer)) => match state.connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    shared.tracker.spawn(connection(
                        io,
                        peer,
                        permit,
                        state.clone(),
                        shared.clone(),
                    ));
                }
                Err(_) => {
                    limited!(
                        shared,
                        "limit",
                        listener = %state.local,
                        client = %peer,
                        "connection limit reached ({} open): connection refused",
                        state.limits.max_connections
                    );
                    // A fallback client would not understand an alert.
                    if state.fallback.is_none() {
                        if let Ok(permit) = shared.refusing.clone().try_acquire_owned() {
                            shared.tracker.spawn(async move {
                                refuse(io, AlertCode::GOING_AWAY).await;
                                drop(permit);
                            });
                        }
                    }
                }
            },
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather
                // than spin.
                limited!(shared, "accept", listener = %state.local, "cannot accept: {e}");
                tokio::select! {
                    _ = shared.stop_accepting.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    drop(listener);
}

/// An accept error that concerns one connection only.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::NotConnected
    )
}

/// Writes a plaintext alert record, shuts our side, and reads (and drops)
/// what the client still sends until it closes, all within
/// [`REFUSE_LINGER`].
async fn refuse(mut io: Stream, code: AlertCode) {
    let linger = async {
        io.write_all(&alert_record(code)).await?;
        io.shutdown().await?;
        let mut sink = [0u8; 1024];
        while io.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSE_LINGER, linger).await;
}

/// What the first bytes of a connection turned out to be.
enum First {
    /// A whole ClientHello record (and anything that came with it).
    Hello {
        bytes: Vec<u8>,
        route: Option<RouteName>,
    },
    /// Not Sovereign-Chain: the bytes read so far.
    Foreign {
        bytes: Vec<u8>,
        reason: String,
        alert: AlertCode,
    },
    /// With a fallback: nothing came within the peek timeout.
    Silent,
    /// A ClientHello that does not decode.
    Malformed { reason: String, alert: AlertCode },
    /// No whole ClientHello within the timeout; `got` bytes came.
    TimedOut { got: usize },
    /// The client closed after `got` bytes.
    Closed { got: usize },
    /// Reading failed.
    Failed(String),
}

/// Reads until the first bytes can be classified: at most one plaintext
/// record (4 + 2,048 bytes), within the ClientHello timeout; with a
/// fallback, a client that sends nothing within the peek timeout is
/// `Silent`.
async fn read_first(io: &mut Stream, l: &ListenerState) -> First {
    let start = tokio::time::Instant::now();
    let hello_deadline = start + l.limits.hello_timeout;
    let peek_deadline = l.fallback.as_ref().map(|_| start + l.limits.peek_timeout);
    let mut buf = vec![0u8; MAX_HELLO_RECORD];
    let mut got = 0;
    loop {
        match classify(&buf[..got]) {
            Verdict::NeedMore if got < buf.len() => {}
            Verdict::NeedMore => {
                // Cannot happen: a whole record always decides. Stay bounded.
                return First::Malformed {
                    reason: "ClientHello record too large".into(),
                    alert: AlertCode::TOO_LARGE,
                };
            }
            Verdict::Hello { route, .. } => {
                buf.truncate(got);
                return First::Hello { bytes: buf, route };
            }
            Verdict::Foreign { reason, alert } => {
                buf.truncate(got);
                return First::Foreign {
                    bytes: buf,
                    reason,
                    alert,
                };
            }
            Verdict::Malformed { reason, alert } => return First::Malformed { reason, alert },
        }
        let deadline = match peek_deadline {
            Some(peek) if got == 0 => peek,
            _ => hello_deadline,
        };
        match tokio::time::timeout_at(deadline, io.read(&mut buf[got..])).await {
            Err(_) if got == 0 && peek_deadline.is_some() => return First::Silent,
            Err(_) => return First::TimedOut { got },
            Ok(Ok(0)) => return First::Closed { got },
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => return First::Failed(io_reason(&e)),
        }
    }
}

/// One connection: its first bytes, then a relayed session, a fallback
/// passthrough, or a refusal; one log line at its end.
async fn connection(
    mut io: Stream,
    peer: String,
    _permit: OwnedSemaphorePermit,
    l: Arc<ListenerState>,
    shared: Arc<Shared>,
) {
    let started = Instant::now();
    let first = tokio::select! {
        biased;
        _ = shared.hard_stop.cancelled() => return,
        first = read_first(&mut io, &l) => first,
    };
    let bad = |reason: &str| {
        limited!(
            shared,
            "client",
            listener = %l.local,
            client = %peer,
            reason = %reason,
            "connection refused"
        );
    };
    match first {
        First::Hello { bytes, route } => {
            session(io, &peer, bytes, route, &l, &shared, started).await
        }
        First::Foreign {
            bytes,
            reason,
            alert,
        } => match &l.fallback {
            Some(to) => passthrough(io, &peer, bytes, to, &l, &shared, started).await,
            None => {
                bad(&reason);
                refuse(io, alert).await;
            }
        },
        First::Silent => {
            if let Some(to) = &l.fallback {
                passthrough(io, &peer, Vec::new(), to, &l, &shared, started).await;
            }
        }
        First::Malformed { reason, alert } => {
            bad(&reason);
            refuse(io, alert).await;
        }
        First::TimedOut { got } => {
            bad(&format!(
                "no whole ClientHello within {} ({got} bytes came)",
                secs(l.limits.hello_timeout)
            ));
            refuse(io, AlertCode::TIMEOUT).await;
        }
        First::Closed { got: 0 } => {
            tracing::debug!(listener = %l.local, client = %peer, "closed before sending anything");
        }
        First::Closed { got } => bad(&format!(
            "the client closed the connection inside its ClientHello ({got} bytes came)"
        )),
        First::Failed(reason) => bad(&reason),
    }
}

/// A ClientHello is in: choose the route's backend, connect (retrying the
/// next backend while none has taken a byte), forward the PROXY header and
/// the ClientHello, then pipe.
async fn session(
    io: Stream,
    peer: &str,
    hello: Vec<u8>,
    route: Option<RouteName>,
    l: &ListenerState,
    shared: &Shared,
    started: Instant,
) {
    let name = route.as_ref().map_or("-", RouteName::as_str);
    let (pool, via) = match route.as_ref().and_then(|r| l.routes.get(r)) {
        Some(pool) => (pool, "route"),
        None => match &l.default {
            Some(pool) => (pool, "default"),
            None => {
                limited!(
                    shared,
                    "no-route",
                    listener = %l.local,
                    client = %peer,
                    route = %name,
                    "no route for '{name}': refused with the no route alert"
                );
                refuse(io, AlertCode::NO_ROUTE).await;
                return;
            }
        },
    };
    let mut preamble = if l.send_proxy_v2 {
        proxy_header(&io)
    } else {
        Vec::new()
    };
    preamble.extend_from_slice(&hello);
    let connected = tokio::select! {
        biased;
        _ = shared.hard_stop.cancelled() => return,
        c = connect_backend(pool, &l.limits, &preamble) => c,
    };
    drop(preamble);
    let (claim, backend) = match connected {
        Ok(c) => c,
        Err(why) => {
            limited!(
                shared,
                "backend",
                listener = %l.local,
                client = %peer,
                route = %name,
                "no backend reachable ({why}): refused with the no route alert"
            );
            refuse(io, AlertCode::NO_ROUTE).await;
            return;
        }
    };
    let backend_name = claim.backend().endpoint.to_string();
    let trace = tracing::enabled!(tracing::Level::DEBUG).then_some(peer);
    let report = pipe(
        io,
        backend,
        PipeOptions {
            sent_ahead: &hello,
            idle: l.limits.idle_timeout,
            answer: l.limits.answer_timeout,
            trace,
        },
        &shared.hard_stop,
    )
    .await;
    drop(claim);
    log_end(l, peer, name, via, &backend_name, &report, started);
}

/// Not a Sovereign-Chain client: to the fallback, unchanged (the bytes read
/// so far first).
async fn passthrough(
    io: Stream,
    peer: &str,
    first: Vec<u8>,
    to: &Endpoint,
    l: &ListenerState,
    shared: &Shared,
    started: Instant,
) {
    let connect = async {
        let mut s = to.connect().await?;
        s.write_all(&first).await?;
        Ok::<Stream, io::Error>(s)
    };
    let connected = tokio::select! {
        biased;
        _ = shared.hard_stop.cancelled() => return,
        c = tokio::time::timeout(l.limits.connect_timeout, connect) => c,
    };
    let fallback = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            limited!(shared, "fallback", listener = %l.local, client = %peer, "fallback {to}: {}", io_reason(&e));
            return;
        }
        Err(_) => {
            limited!(
                shared,
                "fallback",
                listener = %l.local,
                client = %peer,
                "fallback {to} did not accept within {}",
                secs(l.limits.connect_timeout)
            );
            return;
        }
    };
    let report = pipe(
        io,
        fallback,
        PipeOptions {
            sent_ahead: &first,
            idle: l.limits.idle_timeout,
            answer: None,
            trace: None,
        },
        &shared.hard_stop,
    )
    .await;
    log_end(l, peer, "-", "fallback", &to.to_string(), &report, started);
}

fn log_end(
    l: &ListenerState,
    peer: &str,
    route: &str,
    via: &str,
    backend: &str,
    report: &PipeReport,
    started: Instant,
) {
    tracing::info!(
        listener = %l.local,
        client = %peer,
        route = %route,
        via = %via,
        backend = %backend,
        bytes_up = report.up,
        bytes_down = report.down,
        duration = %format_args!("{:.3}s", started.elapsed().as_secs_f64()),
        reason = %report.end,
        "session end"
    );
}

/// The PROXY v2 header for this client: its address and the one it
/// connected to (a Unix socket client: the LOCAL command, no addresses).
fn proxy_header(io: &Stream) -> Vec<u8> {
    let header = match io {
        Stream::Tcp(s) => match (s.peer_addr(), s.local_addr()) {
            (Ok(src), Ok(dst)) => ProxyHeader::tcp(src, dst),
            _ => ProxyHeader {
                source: None,
                destination: None,
                tlvs: Vec::new(),
            },
        },
        Stream::Unix(_) => ProxyHeader {
            source: None,
            destination: None,
            tlvs: Vec::new(),
        },
    };
    // Without TLVs a header is at most 52 bytes: encoding cannot fail.
    header.encode().unwrap_or_default()
}

/// Connects to the pool's best backend and writes `preamble` (PROXY header
/// and ClientHello). A backend that refuses, does not accept within the
/// connect timeout, or fails the write is marked down and the next one is
/// tried: nothing has reached the client yet, so the retry is invisible to
/// it. Each backend is tried at most once.
async fn connect_backend(
    pool: &Pool,
    limits: &RelayLimits,
    preamble: &[u8],
) -> Result<(Claim, Stream), String> {
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    while let Some(claim) = pool.claim(&tried) {
        let b = claim.backend().clone();
        tried.push(b.clone());
        let attempt = async {
            let mut s = b.endpoint.connect().await?;
            s.write_all(preamble).await?;
            Ok::<Stream, io::Error>(s)
        };
        let why = match tokio::time::timeout(limits.connect_timeout, attempt).await {
            Ok(Ok(s)) => {
                if b.mark_up() {
                    tracing::info!(backend = %b.endpoint, "backend {} is up again (a session connected)", b.endpoint);
                }
                return Ok((claim, s));
            }
            Ok(Err(e)) => io_reason(&e),
            Err(_) => format!("did not accept within {}", secs(limits.connect_timeout)),
        };
        if b.mark_down() {
            tracing::warn!(
                backend = %b.endpoint,
                "backend {} is down ({why}): no new sessions until it passes a probe",
                b.endpoint
            );
        }
        failures.push(format!("{} {why}", b.endpoint));
    }
    Err(if failures.is_empty() {
        "no backend".into()
    } else {
        failures.join("; ")
    })
}

/// Every `every`, a TCP connect to every backend at once: one that accepts
/// within the probe timeout is up, one that does not is down. Changes are
/// logged.
async fn health_loop(backends: Vec<Arc<Backend>>, every: Duration, shared: Arc<Shared>) {
    let probe_timeout = every.min(DEFAULT_CONNECT_TIMEOUT);
    loop {
        tokio::select! {
            _ = shared.stop_accepting.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let mut probes = JoinSet::new();
        for b in &backends {
            let b = b.clone();
            probes.spawn(async move {
                let r = tokio::time::timeout(probe_timeout, b.endpoint.connect()).await;
                let result = match r {
                    // The probe connection closes at once.
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(io_reason(&e)),
                    Err(_) => Err(format!("no answer within {}", secs(probe_timeout))),
                };
                (b, result)
            });
        }
        let all = async {
            while let Some(done) = probes.join_next().await {
                let Ok((b, result)) = done else { continue };
                match result {
                    Ok(()) => {
                        if b.mark_up() {
                            tracing::info!(backend = %b.endpoint, "backend {} is up (probe passed)", b.endpoint);
                        }
                    }
                    Err(why) => {
                        if b.mark_down() {
                            tracing::warn!(
                                backend = %b.endpoint,
                                "backend {} is down (probe: {why}): no new sessions until it passes a probe",
                                b.endpoint
                            );
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = shared.stop_accepting.cancelled() => return,
            () = all => {}
        }
    }
}
