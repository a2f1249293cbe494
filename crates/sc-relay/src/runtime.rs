//! The relay at run time: each listener is a [`Handler`] of `sc-net`'s
//! listener lifecycle; per connection: the first bytes, the choice of a
//! backend (retries included), the byte pump, the log line at its end.
//! Health probes; drain.

use core::fmt;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sc_net::proxy_protocol::ProxyHeader;
use sc_net::pump::{pump, CloseErrors, End, Observer, Options, Report, Side};
use sc_net::service::{self, Bound, Conn, Handler, Refusal, Service, ShutdownReport, WhenFull};
use sc_net::{io_reason, warn_limited, Endpoint, PerSource, Replay, Secs, Stream};
use sc_wire::first::{classify, Verdict, MAX_HELLO_RECORD};
use sc_wire::{Alert, AlertCode, RouteName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::pool::{Backend, Claim, Pool};
use crate::settings::{RelayLimits, RelaySettings, DEFAULT_CONNECT_TIMEOUT};
use crate::trace::{Direction, RecordTrace};

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
    /// Connections each client address holds.
    per_source: Arc<PerSource>,
    /// Where to count (`--status`); `None`: nothing is counted.
    metrics: Option<Arc<sc_status::Metrics>>,
}

impl ListenerState {
    /// Records into the metrics, if there are any.
    fn count(&self, record: impl FnOnce(&sc_status::Metrics)) {
        if let Some(m) = &self.metrics {
            record(m);
        }
    }
}

impl Handler for ListenerState {
    async fn serve(self: Arc<Self>, io: Stream, peer: String, conn: Conn) {
        connection(io, peer, &self, &conn).await;
    }

    fn refusal(&self) -> Option<Refusal> {
        // A fallback client would not understand an alert.
        self.fallback.is_none().then(|| Refusal {
            bytes: Alert {
                code: AlertCode::GOING_AWAY,
            }
            .plaintext_record()
            .to_vec(),
            name: "going away",
        })
    }

    fn refused_at_limit(&self) {
        self.count(|m| m.connection_refused(sc_status::RefusalReason::connection_limit));
    }
}

/// A running relay: `sc-net`'s listener lifecycle with one handler per
/// listener, and one health-probe loop, on the current tokio runtime.
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
    service: Service<ListenerState>,
    backends: Vec<Arc<Backend>>,
    health: Option<JoinHandle<()>>,
    routes: RelayHealth,
}

/// The route name [`RelayHealth`] gives the default backends (no route
/// name can be `*`).
pub const DEFAULT_ROUTE: &str = "*";

/// Every configured route and the health of its backends, as a handle
/// that lives on its own ([`Relay::health`]): for a status endpoint.
#[derive(Clone, Debug)]
pub struct RelayHealth {
    routes: Vec<(String, Vec<Arc<Backend>>)>,
}

/// One route's backends and whether each is healthy now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteHealth {
    /// The configured route name ([`DEFAULT_ROUTE`] for the default
    /// backends).
    pub route: String,
    /// Each backend and whether it is healthy.
    pub backends: Vec<(Endpoint, bool)>,
}

impl RelayHealth {
    /// Every route of every listener, in configuration order.
    pub fn routes(&self) -> Vec<RouteHealth> {
        self.routes
            .iter()
            .map(|(route, backends)| RouteHealth {
                route: route.clone(),
                backends: backends
                    .iter()
                    .map(|b| (b.endpoint.clone(), b.is_healthy()))
                    .collect(),
            })
            .collect()
    }
}

impl Relay {
    /// Starts every listener and the health probes. Must be called within a
    /// tokio runtime with time and I/O enabled.
    pub async fn bind(settings: RelaySettings) -> Result<Self, RelayStartError> {
        Self::bind_with_metrics(settings, None).await
    }

    /// As [`bind`](Self::bind), counting connections (accepted, refused by
    /// reason), relayed sessions and their bytes into `metrics`.
    pub async fn bind_with_metrics(
        settings: RelaySettings,
        metrics: Option<Arc<sc_status::Metrics>>,
    ) -> Result<Self, RelayStartError> {
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
        let mut health_routes: Vec<(String, Vec<Arc<Backend>>)> = Vec::new();
        for s in &settings.listeners {
            for r in &s.routes {
                health_routes.push((
                    r.name.to_string(),
                    r.backends.iter().map(&mut backend).collect(),
                ));
            }
            if !s.default.is_empty() {
                health_routes.push((
                    DEFAULT_ROUTE.to_owned(),
                    s.default.iter().map(&mut backend).collect(),
                ));
            }
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
            let (listener, local) = s.listen.bind().await.map_err(|e| RelayStartError::Bind {
                listen: s.listen.clone(),
                reason: io_reason(&e),
                kind: e.kind(),
            })?;
            let state = ListenerState {
                local: local.clone(),
                routes,
                default,
                fallback: s.fallback.clone(),
                send_proxy_v2: s.send_proxy_v2,
                per_source: PerSource::new(s.limits.max_connections_per_source),
                limits: s.limits.clone(),
                metrics: metrics.clone(),
            };
            bound.push((listener, local, Arc::new(state), s));
        }
        let mut listeners = Vec::with_capacity(bound.len());
        for (listener, local, state, s) in bound {
            tracing::info!(
                "listening on {} ({}; at most {} connections)",
                state.local,
                describe_routes(s),
                s.limits.max_connections
            );
            listeners.push(Bound {
                listener,
                local,
                limits: service::Limits {
                    max_connections: s.limits.max_connections,
                    max_handshakes: None,
                    when_full: WhenFull::Refuse,
                },
                handler: state,
            });
        }
        let service = Service::start(listeners);
        let health = match settings.health_interval {
            Some(every) if !backends.is_empty() => {
                tracing::info!(
                    "health probes: a TCP connect to each of {} backend(s) every {}",
                    backends.len(),
                    Secs(every)
                );
                Some(tokio::spawn(health_loop(
                    backends.clone(),
                    every,
                    service.stopping(),
                )))
            }
            _ => None,
        };
        Ok(Self {
            service,
            backends,
            health,
            routes: RelayHealth {
                routes: health_routes,
            },
        })
    }

    /// Every route's backends and their health, as a handle of its own.
    pub fn health(&self) -> RelayHealth {
        self.routes.clone()
    }

    /// The bound addresses, in the order given (with the real port where 0
    /// was asked for).
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        self.service.local_endpoints()
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
        self.service.active_connections()
    }

    /// Stops accepting (a listener closes once the connections already in
    /// its backlog have been taken) and probing, lets open sessions finish
    /// within `grace`, then closes the rest and returns when every session
    /// has ended.
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        let Self {
            service, health, ..
        } = self;
        let report = service.shutdown(grace).await;
        if let Some(health) = health {
            let _ = health.await;
        }
        report
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

/// Refuses a client with a plaintext alert (and a bounded linger).
async fn refuse(io: Stream, code: AlertCode) {
    service::refuse(io, &Alert { code }.plaintext_record()).await;
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
async fn connection(mut io: Stream, peer: String, l: &ListenerState, conn: &Conn) {
    let started = Instant::now();
    l.count(sc_status::Metrics::connection_accepted);
    // One client address holds at most its share (a Unix socket's peers are
    // one local source, not capped here).
    let source = peer.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
    let _source_slot = match source.map(|ip| (ip, l.per_source.try_take(ip))) {
        Some((ip, None)) => {
            l.count(|m| m.connection_refused(sc_status::RefusalReason::source_connection_limit));
            warn_limited!(
                conn.log(),
                "per-source",
                listener = %l.local,
                client = %peer,
                "per-source limit: {ip} already holds {} connections here: {}",
                l.per_source.max(),
                if l.fallback.is_none() { "refused with going away" } else { "closed" }
            );
            if l.fallback.is_none() {
                refuse(io, AlertCode::GOING_AWAY).await;
            }
            return;
        }
        Some((_, slot)) => slot,
        None => None,
    };
    let first = tokio::select! {
        biased;
        _ = conn.stop().cancelled() => return,
        first = read_first(&mut io, l) => first,
    };
    let bad = |reason: &str| {
        warn_limited!(
            conn.log(),
            "client",
            listener = %l.local,
            client = %peer,
            reason = %reason,
            "connection refused"
        );
    };
    match first {
        First::Hello { bytes, route } => session(io, &peer, bytes, route, l, conn, started).await,
        First::Foreign {
            bytes,
            reason,
            alert,
        } => match &l.fallback {
            Some(to) => passthrough(io, &peer, bytes, to, l, conn, started).await,
            None => {
                l.count(|m| m.connection_refused(sc_status::RefusalReason::malformed_hello));
                bad(&reason);
                refuse(io, alert).await;
            }
        },
        First::Silent => {
            if let Some(to) = &l.fallback {
                passthrough(io, &peer, Vec::new(), to, l, conn, started).await;
            }
        }
        First::Malformed { reason, alert } => {
            l.count(|m| m.connection_refused(sc_status::RefusalReason::malformed_hello));
            bad(&reason);
            refuse(io, alert).await;
        }
        First::TimedOut { got } => {
            l.count(|m| m.connection_refused(sc_status::RefusalReason::hello_timeout));
            bad(&format!(
                "no whole ClientHello within {} ({got} bytes came)",
                Secs(l.limits.hello_timeout)
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

/// A ClientHello is in: choose the route's backend, connect, forward the
/// PROXY header and the ClientHello and wait for the backend's first byte
/// (retrying the next backend while nothing has reached the client), then
/// pump bytes both ways.
async fn session(
    io: Stream,
    peer: &str,
    hello: Vec<u8>,
    route: Option<RouteName>,
    l: &ListenerState,
    conn: &Conn,
    started: Instant,
) {
    let name = route.as_ref().map_or("-", RouteName::as_str);
    let (pool, via) = match route.as_ref().and_then(|r| l.routes.get(r)) {
        Some(pool) => (pool, "route"),
        None => match &l.default {
            Some(pool) => (pool, "default"),
            None => {
                l.count(|m| m.connection_refused(sc_status::RefusalReason::no_route));
                warn_limited!(
                    conn.log(),
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
        _ = conn.stop().cancelled() => return,
        c = connect_backend(pool, &l.limits, &preamble, &io) => c,
    };
    drop(preamble);
    let Connected {
        claim,
        stream: backend,
        answer,
    } = match connected {
        Ok(c) => c,
        Err(why) => {
            l.count(|m| m.connection_refused(sc_status::RefusalReason::no_route));
            warn_limited!(
                conn.log(),
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
    let _open = l.metrics.as_ref().map(|m| m.session_open());
    // The backend's first byte, read while waiting for it, goes to the
    // client first; the pump still waits for an answer only if the client
    // moved before the backend did.
    let (head, answer_left) = match answer {
        Answer::Byte(b) => (vec![b], None),
        Answer::ClientFirst { left } => (Vec::new(), left),
        Answer::Silent(limit) => {
            drop(claim);
            let report = Report {
                a_to_b: 0,
                b_to_a: 0,
                end: End::NoAnswer(limit),
            };
            log_end(
                l,
                peer,
                name,
                via,
                &backend_name,
                hello.len(),
                &report,
                started,
            );
            return;
        }
    };
    // The record trace (debug level only) sees the ClientHello first.
    let mut traces = tracing::enabled!(tracing::Level::DEBUG).then(|| {
        let mut up = RecordTrace::new(peer, Direction::Up);
        up.feed(&hello);
        (up, RecordTrace::new(peer, Direction::Down))
    });
    let (observe_a, observe_b): (Option<&mut dyn Observer>, Option<&mut dyn Observer>) =
        match traces.as_mut() {
            Some((up, down)) => (Some(up), Some(down)),
            None => (None, None),
        };
    let (backend_read, backend_write) = backend.into_split();
    let report = pump(
        io.into_split(),
        (Replay::new(head, backend_read), backend_write),
        Options {
            idle: l.limits.idle_timeout,
            answer: answer_left,
            // The other direction tells how a raw connection ended.
            close_errors: CloseErrors::Ignore,
            stop: Some(conn.stop()),
            observe_a,
            observe_b,
        },
    )
    .await;
    drop(claim);
    log_end(
        l,
        peer,
        name,
        via,
        &backend_name,
        hello.len(),
        &report,
        started,
    );
}

/// Not a Sovereign-Chain client: to the fallback, unchanged (the bytes read
/// so far first).
async fn passthrough(
    io: Stream,
    peer: &str,
    first: Vec<u8>,
    to: &Endpoint,
    l: &ListenerState,
    conn: &Conn,
    started: Instant,
) {
    let connect = async {
        let mut s = to.connect().await?;
        s.write_all(&first).await?;
        Ok::<Stream, io::Error>(s)
    };
    let connected = tokio::select! {
        biased;
        _ = conn.stop().cancelled() => return,
        c = tokio::time::timeout(l.limits.connect_timeout, connect) => c,
    };
    let fallback = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            warn_limited!(conn.log(), "fallback", listener = %l.local, client = %peer, "fallback {to}: {}", io_reason(&e));
            return;
        }
        Err(_) => {
            warn_limited!(
                conn.log(),
                "fallback",
                listener = %l.local,
                client = %peer,
                "fallback {to} did not accept within {}",
                Secs(l.limits.connect_timeout)
            );
            return;
        }
    };
    let report = pump(
        io.into_split(),
        fallback.into_split(),
        Options {
            idle: l.limits.idle_timeout,
            close_errors: CloseErrors::Ignore,
            stop: Some(conn.stop()),
            ..Options::default()
        },
    )
    .await;
    log_end(
        l,
        peer,
        "-",
        "fallback",
        &to.to_string(),
        first.len(),
        &report,
        started,
    );
}

/// The `session end` line. `sent_ahead`: bytes read from the client and
/// written to the backend before the pump started (the ClientHello).
#[allow(clippy::too_many_arguments)]
fn log_end(
    l: &ListenerState,
    peer: &str,
    route: &str,
    via: &str,
    backend: &str,
    sent_ahead: usize,
    report: &Report,
    started: Instant,
) {
    l.count(|m| m.bytes(sent_ahead as u64 + report.a_to_b, report.b_to_a));
    tracing::info!(
        listener = %l.local,
        client = %peer,
        route = %route,
        via = %via,
        backend = %backend,
        bytes_up = sent_ahead as u64 + report.a_to_b,
        bytes_down = report.b_to_a,
        duration = %Secs(started.elapsed()),
        reason = %Ended(&report.end),
        "session end"
    );
}

/// How a relayed connection ended, for its log line (`a` is the client,
/// `b` the backend or fallback).
struct Ended<'a>(&'a End);

impl fmt::Display for Ended<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |s: &Side| match s {
            Side::A => "client",
            Side::B => "backend",
        };
        match self.0 {
            End::Closed { first } => write!(f, "closed ({} first)", side(first)),
            End::Idle(d) => write!(f, "idle timeout ({})", Secs(*d)),
            End::NoAnswer(d) => write!(
                f,
                "backend accepted but sent nothing within {} of the ClientHello",
                Secs(*d)
            ),
            End::Failed { side: s, error } => write!(f, "{} failed: {}", side(s), io_reason(error)),
            End::Stopped => f.write_str("relay shutting down (grace period over)"),
        }
    }
}

/// The PROXY v2 header for this client: its address and the one it
/// connected to (a Unix socket client: the LOCAL command, no addresses).
fn proxy_header(io: &Stream) -> Vec<u8> {
    let header = match (io.peer_addr(), io.local_addr()) {
        (Some(src), Some(dst)) => ProxyHeader::tcp(src, dst),
        _ => ProxyHeader {
            source: None,
            destination: None,
            tlvs: Vec::new(),
        },
    };
    // Without TLVs a header is at most 52 bytes: encoding cannot fail.
    header.encode().unwrap_or_default()
}

/// A backend that took the preamble and did not fail before answering.
struct Connected {
    /// The session's claim on it.
    claim: Claim,
    /// The connection to it.
    stream: Stream,
    /// What happened first once it had the preamble.
    answer: Answer,
}

/// What happened first once a backend had the preamble.
enum Answer {
    /// It sent its first byte (read, not yet forwarded to the client).
    Byte(u8),
    /// The client sent more, closed or failed before the backend answered:
    /// the session is this backend's now; `left` of the answer timeout
    /// remains.
    ClientFirst { left: Option<Duration> },
    /// It sent nothing within the answer timeout.
    Silent(Duration),
}

/// Connects to the pool's best backend, writes `preamble` (PROXY header
/// and ClientHello) and waits for its first byte. A backend that refuses,
/// does not accept within the connect timeout, fails the write, or closes
/// or resets the connection before its first byte (a dead server behind an
/// L4 forwarder that still accepts) is marked down and the next one is
/// tried with the same bytes: nothing has reached the client yet, so the
/// retry is invisible to it. Each backend is tried at most once.
async fn connect_backend(
    pool: &Pool,
    limits: &RelayLimits,
    preamble: &[u8],
    client: &Stream,
) -> Result<Connected, String> {
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    while let Some(claim) = pool.claim(&tried) {
        let b = claim.backend().clone();
        tried.push(b.clone());
        let why = match attempt(&b.endpoint, limits, preamble, client).await {
            Ok((stream, answer)) => {
                if b.mark_up() {
                    tracing::info!(backend = %b.endpoint, "backend {} is up again (a session connected)", b.endpoint);
                }
                return Ok(Connected {
                    claim,
                    stream,
                    answer,
                });
            }
            Err(why) => why,
        };
        if b.mark_down() {
            tracing::warn!(
                backend = %b.endpoint,
                "backend {} is down ({why}): no new sessions until it passes a probe",
                b.endpoint
            );
        } else {
            tracing::debug!(backend = %b.endpoint, "backend {} failed again ({why})", b.endpoint);
        }
        failures.push(format!("{} {why}", b.endpoint));
    }
    Err(if failures.is_empty() {
        "no backend".into()
    } else {
        failures.join("; ")
    })
}

/// One try of one backend: connect and write `preamble` within the connect
/// timeout, then wait for the first of: the backend's first byte, a move of
/// the client, the answer timeout. `Err`: why the backend failed before
/// answering.
async fn attempt(
    to: &Endpoint,
    limits: &RelayLimits,
    preamble: &[u8],
    client: &Stream,
) -> Result<(Stream, Answer), String> {
    let connect = async {
        let mut s = to.connect().await?;
        s.write_all(preamble).await?;
        Ok::<Stream, io::Error>(s)
    };
    let mut s = match tokio::time::timeout(limits.connect_timeout, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(io_reason(&e)),
        Err(_) => {
            return Err(format!(
                "did not accept within {}",
                Secs(limits.connect_timeout)
            ))
        }
    };
    let since = tokio::time::Instant::now();
    let first = async {
        let mut byte = [0u8; 1];
        // Both are cancel-safe: the loser has taken nothing.
        tokio::select! {
            read = s.read(&mut byte) => match read {
                Ok(0) => Err("closed the connection before answering".to_owned()),
                Ok(_) => Ok(Answer::Byte(byte[0])),
                Err(e) => Err(format!("{} before answering", io_reason(&e))),
            },
            () = client_moves(client) => Ok(Answer::ClientFirst {
                left: limits.answer_timeout.map(|limit| limit.saturating_sub(since.elapsed())),
            }),
        }
    };
    let answer = match limits.answer_timeout {
        Some(limit) => match tokio::time::timeout(limit, first).await {
            Ok(answer) => answer,
            Err(_) => Ok(Answer::Silent(limit)),
        },
        None => first.await,
    }?;
    Ok((s, answer))
}

/// Returns once the client has sent more bytes, closed or failed — seen
/// without taking a byte, so they still reach the backend in order. A
/// Sovereign-Chain client sends nothing after its ClientHello until the
/// server answers, so this only ends the wait for one that gives up (or
/// does not follow the protocol). A Unix socket cannot be peeked at: such
/// a client is not watched (the backend's answer or the answer timeout
/// ends the wait).
async fn client_moves(client: &Stream) {
    match client {
        Stream::Tcp(tcp) => {
            let mut byte = [0u8; 1];
            let _ = tcp.peek(&mut byte).await;
        }
        Stream::Unix(_) => std::future::pending().await,
    }
}

/// Every `every`, a TCP connect to every backend at once: one that accepts
/// within the probe timeout is up, one that does not is down. Changes are
/// logged.
async fn health_loop(backends: Vec<Arc<Backend>>, every: Duration, stopping: CancellationToken) {
    let probe_timeout = every.min(DEFAULT_CONNECT_TIMEOUT);
    loop {
        tokio::select! {
            _ = stopping.cancelled() => return,
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
                    Err(_) => Err(format!("no answer within {}", Secs(probe_timeout))),
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
            _ = stopping.cancelled() => return,
            () = all => {}
        }
    }
}
