//! The server at run time: each listener is a [`Handler`] of `sc-net`'s
//! listener lifecycle; per connection: its PROXY header or the check that it
//! sends none, the ClientHello, a handshake slot, the handshake, the
//! session, the log line at its end. Reload and drain.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::OsRng;
use sc_handshake::cookie::{CookieJar, CookieSource, Decision};
use sc_handshake::ServerConfig;
use sc_net::proxy_protocol::{self, read_header, sends_something, HeaderRead, Signature};
use sc_net::service::{self, Bound, Conn, Handler, Refusal, Service, WhenFull};
use sc_net::{io_reason, warn_limited, Endpoint, PerSource, Replay, Secs, SourceSlot, Stream};
use sc_pki::{CredentialStore, UnixTime};
use sc_session::{Acceptor, MuxSession, RekeyPolicy, SessionConfig};
use sc_status::{Metrics, RefusalReason};
use sc_wire::first::{classify, Verdict, MAX_HELLO_RECORD};
use sc_wire::{Alert, AlertCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use sc_net::service::ShutdownReport;

use super::credentials::{load, CredentialError};
use super::proxy::{Origin, ProxyProtocol, PROXY_HEADER_TIMEOUT};
use super::quota::Quota;
use super::session::{abort, echo, forward, Counts, Inbound, SessionEnd};
use super::settings::{CookieMode, Credentials, LimitError, Limits, ListenerSettings, Mode};
use super::streams::{self, StreamContext};

/// Longest a credential load may take (reading files, decrypting the key)
/// before it is given up (a FIFO in place of a file would block forever).
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No listener was configured.
    #[error("no listener configured")]
    NoListeners,
    /// A limit is out of range.
    #[error("listener {listen}: {source}")]
    Limits {
        /// The listener's address.
        listen: Endpoint,
        /// What is wrong.
        source: LimitError,
    },
    /// The PROXY protocol settings do not fit the listener.
    #[error("listener {listen}: {reason}")]
    ProxyProtocol {
        /// The listener's address.
        listen: Endpoint,
        /// What is wrong.
        reason: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// The credentials could not be built.
    #[error("{source}")]
    Credentials {
        /// The listener's address.
        listen: Endpoint,
        /// What is wrong.
        source: CredentialError,
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

impl StartError {
    /// What the user can do about it, where there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoListeners => Some("give --listen ADDR, or a [[listener]] in the config file".into()),
            Self::Limits { .. } => None,
            Self::ProxyProtocol { hint, .. } => Some((*hint).into()),
            Self::Credentials { source, .. } => source.hint(),
            Self::Bind { kind, listen, .. } => match (kind, listen) {
                (io::ErrorKind::AddrInUse, _) => Some(
                    "another process listens there (a running sc-server?): stop it or choose another port".into(),
                ),
                (io::ErrorKind::PermissionDenied, Endpoint::Tcp(_)) => Some(
                    "ports below 1024 need privileges: choose a port above 1023".into(),
                ),
                (io::ErrorKind::PermissionDenied, Endpoint::Unix(_)) => Some(
                    "check the permissions of the socket's directory".into(),
                ),
                (io::ErrorKind::NotFound, Endpoint::Unix(_)) => Some(
                    "the socket's directory must exist".into(),
                ),
                (io::ErrorKind::AddrNotAvailable, _) => Some(
                    "this machine has no such address: use 127.0.0.1, [::1], 0.0.0.0 or [::]".into(),
                ),
                _ => None,
            },
        }
    }
}

/// What one reload did for one listener.
#[derive(Debug)]
pub struct ReloadOutcome {
    /// The listener's address.
    pub listen: Endpoint,
    /// `Ok` with the new certificate's description, or why the reload failed
    /// (the listener keeps the credentials it had).
    pub result: Result<String, String>,
}

/// The credentials a listener uses now, and where they came from.
#[derive(Debug)]
struct Snapshot {
    config: Arc<ServerConfig>,
    source: Credentials,
    /// The certificate's notAfter (Unix time), where it is known.
    not_after: Option<u64>,
}

/// A listener's configuration as [`build`] made it.
struct Built {
    config: Arc<ServerConfig>,
    description: String,
    warnings: Vec<String>,
    not_after: Option<u64>,
    crl_next_update: Option<u64>,
}

/// One listener: what it was told, and the credentials in force.
#[derive(Debug)]
struct ListenerState {
    /// The address as configured (what reloads match on).
    listen: Endpoint,
    /// The address as bound (the real port when 0 was asked for).
    local: Endpoint,
    mode: Mode,
    limits: Limits,
    proxy: ProxyProtocol,
    services: Vec<super::settings::Service>,
    store: CredentialStore<Snapshot>,
    /// Connections each source holds ([`Limits::max_connections_per_source`]).
    per_source_connections: Arc<PerSource>,
    /// Handshakes each source runs ([`Limits::max_handshakes_per_source`]).
    per_source_handshakes: Arc<PerSource>,
    /// The rotating keys of the cookie retry (SPEC §4.5): held only for
    /// one HMAC at a time.
    cookies: Mutex<CookieJar>,
    /// Established anonymous sessions ([`Limits::anonymous_quota`]).
    anonymous: Arc<Quota>,
    /// Where to count (`--status`); `None`: nothing is counted.
    metrics: Option<Arc<Metrics>>,
}

impl ListenerState {
    /// Records into the metrics, if there are any.
    fn count(&self, record: impl FnOnce(&Metrics)) {
        if let Some(m) = &self.metrics {
            record(m);
        }
    }

    /// Sets the certificate and CRL gauges from freshly built credentials.
    fn count_credentials(&self, built: &Built) {
        self.count(|m| {
            let listener = self.listen.to_string();
            if let Some(t) = built.not_after {
                m.certificate_not_after(&listener, t);
            }
            m.crl_next_update(&listener, built.crl_next_update);
        });
    }
}

/// A running server: `sc-net`'s listener lifecycle with one handler per
/// listener, on the current tokio runtime.
///
/// * [`bind`](Self::bind) loads every listener's credentials, binds every
///   address and starts accepting; it fails (with nothing left running) on
///   the first listener that cannot start.
/// * [`reload`](Self::reload) / [`reload_from`](Self::reload_from) rebuild
///   the credentials from their files; sessions that exist keep theirs.
/// * [`shutdown`](Self::shutdown) stops accepting and lets sessions finish
///   within a grace period, then closes the rest.
///
/// Dropping it stops everything at once.
#[derive(Debug)]
pub struct Server {
    service: Service<ListenerState>,
}

impl Server {
    /// Starts every listener. Must be called within a tokio runtime with
    /// time and I/O enabled.
    pub async fn bind(settings: Vec<ListenerSettings>) -> Result<Self, StartError> {
        Self::bind_with_metrics(settings, None).await
    }

    /// As [`bind`](Self::bind), counting connections, handshakes, sessions,
    /// bytes, re-keys, reloads and the credentials' expiry into `metrics`
    /// (one atomic operation per event; bytes once per session or stream).
    pub async fn bind_with_metrics(
        settings: Vec<ListenerSettings>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self, StartError> {
        if settings.is_empty() {
            return Err(StartError::NoListeners);
        }
        let mut bound = Vec::new();
        for s in settings {
            s.limits.check().map_err(|source| StartError::Limits {
                listen: s.listen.clone(),
                source,
            })?;
            if s.proxy_protocol.send && s.mode == Mode::Echo {
                return Err(StartError::ProxyProtocol {
                    listen: s.listen.clone(),
                    reason:
                        "a PROXY header can be sent only to a backend, and this listener echoes",
                    hint: "sending a PROXY header to the backend needs forward mode (--forward)",
                });
            }
            if !s.proxy_protocol.trusted.is_empty() && matches!(s.listen, Endpoint::Unix(_)) {
                return Err(StartError::ProxyProtocol {
                    listen: s.listen.clone(),
                    reason: "a Unix socket's peer has no address, so no source can be trusted to send a PROXY header",
                    hint: "let the balancer connect to a TCP listener",
                });
            }
            let built = build(&s.credentials)
                .await
                .map_err(|source| StartError::Credentials {
                    listen: s.listen.clone(),
                    source,
                })?;
            let (listener, local) = s.listen.bind().await.map_err(|e| StartError::Bind {
                listen: s.listen.clone(),
                reason: io_reason(&e),
                kind: e.kind(),
            })?;
            let state = ListenerState {
                listen: s.listen,
                local: local.clone(),
                mode: s.mode,
                per_source_connections: PerSource::new(s.limits.max_connections_per_source),
                per_source_handshakes: PerSource::new(s.limits.max_handshakes_per_source),
                cookies: Mutex::new(CookieJar::new()),
                anonymous: Quota::new(s.limits.anonymous_quota()),
                limits: s.limits,
                proxy: s.proxy_protocol,
                services: s.services,
                store: CredentialStore::new(Snapshot {
                    config: built.config.clone(),
                    source: s.credentials,
                    not_after: built.not_after,
                }),
                metrics: metrics.clone(),
            };
            state.count_credentials(&built);
            let Built {
                description,
                warnings,
                ..
            } = built;
            bound.push((listener, local, Arc::new(state), description, warnings));
        }
        let mut listeners = Vec::with_capacity(bound.len());
        for (listener, local, state, description, warnings) in bound {
            let l = &state.limits;
            let cookies = match l.cookies {
                CookieMode::Auto => format!(
                    "a cookie retry when {} handshakes run",
                    l.max_handshakes.div_ceil(2)
                ),
                CookieMode::Always => "a cookie retry for every client".to_owned(),
                CookieMode::Off => "no cookie retry".to_owned(),
            };
            tracing::info!(
                "listening on {} ({}); certificate {description}; at most {} connections, {} handshakes at once, {cookies}",
                state.local,
                state.mode,
                l.max_connections,
                l.max_handshakes,
            );
            let p = &state.proxy;
            if !p.trusted.is_empty() {
                let from: Vec<String> = p.trusted.iter().map(ToString::to_string).collect();
                tracing::info!(
                    "{}: connections from {} must start with a PROXY v2 header (the client's real address); a PROXY header from any other source is refused",
                    state.local,
                    from.join(", ")
                );
            }
            if p.send {
                tracing::info!(
                    "{}: every backend connection starts with a PROXY v2 header (client address and verified identity)",
                    state.local
                );
            }
            if let Credentials::Files(f) = &state.store.current().source {
                if f.access.allow_anonymous {
                    tracing::info!(
                        "{}: anonymous clients allowed, at most {} anonymous sessions at once",
                        state.local,
                        state.anonymous.max()
                    );
                }
            }
            for w in warnings {
                tracing::warn!("{w}");
            }
            listeners.push(Bound {
                listener,
                local,
                limits: service::Limits {
                    max_connections: state.limits.max_connections,
                    max_handshakes: Some(state.limits.max_handshakes),
                    when_full: WhenFull::Refuse,
                },
                handler: state,
            });
        }
        Ok(Self {
            service: Service::start(listeners),
        })
    }

    /// The bound addresses, in the order given (with the real port where 0
    /// was asked for).
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        self.service.local_endpoints()
    }

    /// What a readiness check (`/readyz`) needs to know of this server,
    /// as a handle that lives on its own.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            listeners: self.service.handlers().cloned().collect(),
        }
    }

    /// Connections open now (handshaking or established), over all listeners.
    pub fn active_connections(&self) -> usize {
        self.service.active_connections()
    }

    /// Rebuilds every listener's credentials from the same files (new
    /// certificate, key, CA bundle, CRL). Sessions that exist keep what they
    /// started with; new ones get the new credentials. A listener whose
    /// reload fails keeps its credentials; each outcome is logged in one line.
    pub async fn reload(&self) -> Vec<ReloadOutcome> {
        let mut out = Vec::new();
        for l in self.service.handlers() {
            let source = l.store.current().source.clone();
            out.push(reload_listener(l, source).await);
        }
        out
    }

    /// As [`reload`](Self::reload), with new settings (a re-read config
    /// file): each running listener takes the credentials, allow-list and
    /// cipher of the listener with the same address. Changes that need a
    /// restart (listeners added or removed, another mode or limits) are
    /// logged and otherwise ignored.
    pub async fn reload_from(&self, settings: Vec<ListenerSettings>) -> Vec<ReloadOutcome> {
        let mut out = Vec::new();
        for l in self.service.handlers() {
            let Some(new) = settings.iter().find(|s| s.listen == l.listen) else {
                tracing::warn!(
                    "listener {} is no longer in the configuration: restart the server to remove it",
                    l.listen
                );
                let source = l.store.current().source.clone();
                out.push(reload_listener(l, source).await);
                continue;
            };
            if new.mode != l.mode || new.limits != l.limits || new.proxy_protocol != l.proxy {
                tracing::warn!(
                    "listener {}: a new mode, new limits or new PROXY protocol settings take effect only after a restart",
                    l.listen
                );
            }
            out.push(reload_listener(l, new.credentials.clone()).await);
        }
        for s in &settings {
            if !self.service.handlers().any(|l| l.listen == s.listen) {
                tracing::warn!(
                    "listener {} is new in the configuration: restart the server to start it",
                    s.listen
                );
            }
        }
        out
    }

    /// Stops accepting (listening sockets are closed as soon as the
    /// connections already waiting in their backlog have been taken, so a
    /// load balancer's connection is served or refused, never reset), lets
    /// open sessions finish within `grace`, then closes the rest (an echo session
    /// gets the `going away` alert; a tunnel's connections are closed) and
    /// returns when every session has ended.
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        self.service.shutdown(grace).await
    }
}

/// A running server's state as a readiness check sees it
/// ([`Server::readiness`]).
#[derive(Clone, Debug)]
pub struct Readiness {
    listeners: Vec<Arc<ListenerState>>,
}

impl Readiness {
    /// `Ok` when every listener's certificate in force is valid at Unix
    /// time `now`, else which one expired and when.
    pub fn credentials(&self, now: u64) -> Result<(), String> {
        let expired: Vec<String> = self
            .listeners
            .iter()
            .filter_map(|l| {
                let not_after = l.store.current().not_after?;
                (not_after < now).then(|| {
                    format!(
                        "the certificate of {} expired {} s ago",
                        l.listen,
                        now - not_after
                    )
                })
            })
            .collect();
        if expired.is_empty() {
            Ok(())
        } else {
            Err(expired.join("; "))
        }
    }

    /// The backends of the listeners that forward (`--forward`), each once,
    /// in listener order.
    pub fn backends(&self) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = Vec::new();
        for l in &self.listeners {
            if let Mode::Forward(backend) = &l.mode {
                if !out.contains(backend) {
                    out.push(backend.clone());
                }
            }
        }
        out
    }
}

/// Builds a listener's configuration (file reads and key decryption on a
/// blocking thread).
async fn build(source: &Credentials) -> Result<Built, CredentialError> {
    match source {
        Credentials::Fixed(config) => {
            let fp = config.credential().fingerprint();
            let short: String = fp[..8].iter().map(|b| format!("{b:02x}")).collect();
            Ok(Built {
                config: config.clone(),
                description: format!("sha256:{short}… (in memory)"),
                warnings: Vec::new(),
                not_after: None,
                crl_next_update: None,
            })
        }
        Credentials::Files(files) => {
            let files = files.clone();
            let loading = tokio::task::spawn_blocking(move || load(&files, UnixTime::now()));
            let loaded = match tokio::time::timeout(LOAD_TIMEOUT, loading).await {
                Ok(Ok(loaded)) => loaded?,
                Ok(Err(e)) => return Err(CredentialError::LoadFailed(e.to_string())),
                Err(_) => {
                    return Err(CredentialError::LoadFailed(format!(
                        "the files were not read within {}",
                        Secs(LOAD_TIMEOUT)
                    )))
                }
            };
            Ok(Built {
                config: Arc::new(loaded.config),
                description: loaded.description,
                warnings: loaded.warnings,
                not_after: loaded.not_after,
                crl_next_update: loaded.crl_next_update,
            })
        }
    }
}

async fn reload_listener(l: &ListenerState, source: Credentials) -> ReloadOutcome {
    let result = match build(&source).await {
        Ok(built) => {
            l.count_credentials(&built);
            let Built {
                config,
                description,
                warnings,
                not_after,
                ..
            } = built;
            l.store.replace(Snapshot {
                config,
                source,
                not_after,
            });
            tracing::info!(
                "reloaded credentials of {}: certificate {description}",
                l.local
            );
            for w in warnings {
                tracing::warn!("{w}");
            }
            Ok(description)
        }
        Err(e) => {
            tracing::warn!(
                "reload failed for {}: {e}; keeping the credentials in force",
                l.local
            );
            Err(e.to_string())
        }
    };
    l.count(|m| m.reload(result.is_ok(), UnixTime::now().as_secs()));
    ReloadOutcome {
        listen: l.listen.clone(),
        result,
    }
}

impl Handler for ListenerState {
    async fn serve(self: Arc<Self>, io: Stream, peer: String, conn: Conn) {
        connection(io, peer, &self, &conn).await;
    }

    fn refusal(&self) -> Option<Refusal> {
        Some(Refusal {
            bytes: alert_record(AlertCode::GOING_AWAY),
            name: "going away",
        })
    }

    fn refused_at_limit(&self) {
        self.count(|m| m.connection_refused(RefusalReason::connection_limit));
    }
}

/// The alert a failed handshake ended with: the one received, else the
/// one sent (`None`: it ended without one).
fn alert_record(code: AlertCode) -> Vec<u8> {
    Alert { code }.plaintext_record().to_vec()
}

/// What the first bytes of a connection came to.
enum Hello {
    /// The whole first record has come (a ClientHello, or bytes the
    /// handshake refuses at once): the bytes read, for the handshake.
    Ready(Vec<u8>),
    /// An untrusted source sent a PROXY header.
    UntrustedProxyHeader,
    /// No whole ClientHello by the deadline.
    TimedOut,
    /// The server is stopping.
    Stopped,
}

/// Reads until the connection's first record, the ClientHello, has fully
/// come (at most one plaintext record, 4 + 2,048 bytes, classified by
/// `sc-wire`), so that a connection takes a handshake slot only then: slow
/// or silent clients hold a connection slot, never a handshake slot. Bytes
/// that are not a handshake record go on to the handshake, which refuses
/// them at once, except the start of a PROXY header from a source that may
/// not send one (`watch`): that is refused here, before any handshake.
async fn read_hello(
    io: &mut Stream,
    deadline: Instant,
    watch: bool,
    stop: &tokio_util::sync::CancellationToken,
) -> Hello {
    let mut buf = vec![0u8; MAX_HELLO_RECORD];
    let mut got = 0;
    loop {
        let decided = match classify(&buf[..got]) {
            Verdict::NeedMore => got == buf.len(),
            Verdict::Hello { .. } => true,
            Verdict::Foreign { .. } | Verdict::Malformed { .. } if watch => {
                match proxy_protocol::signature(&buf[..got]) {
                    Signature::Present => return Hello::UntrustedProxyHeader,
                    Signature::Partial => false,
                    Signature::Absent => true,
                }
            }
            Verdict::Foreign { .. } | Verdict::Malformed { .. } => true,
        };
        if decided {
            buf.truncate(got);
            return Hello::Ready(buf);
        }
        let read = tokio::select! {
            biased;
            _ = stop.cancelled() => return Hello::Stopped,
            r = tokio::time::timeout_at(deadline.into(), io.read(&mut buf[got..])) => r,
        };
        match read {
            Ok(Ok(n)) if n > 0 => got += n,
            // The end or an error: the handshake reports it.
            Ok(_) => {
                buf.truncate(got);
                return Hello::Ready(buf);
            }
            Err(_) => return Hello::TimedOut,
        }
    }
}

/// A place for `source` in `caps` (`Some(None)` for a source that is not
/// capped: a Unix socket's peer), or `None`, logged, when it holds its share.
fn take_source(
    caps: &Arc<PerSource>,
    source: Option<std::net::IpAddr>,
    what: &str,
    state: &ListenerState,
    log: &sc_net::RateLimiter,
    peer: &str,
) -> Option<Option<SourceSlot>> {
    let Some(ip) = source else {
        return Some(None);
    };
    match caps.try_take(ip) {
        Some(slot) => Some(Some(slot)),
        None => {
            warn_limited!(
                log,
                "per-source",
                listener = %state.local,
                peer = %peer,
                "per-source limit: {ip} already holds {} {what} here: refused with going away",
                caps.max()
            );
            None
        }
    }
}

/// One connection: its PROXY header (from a trusted source) or the check
/// that it sends none (from any other), the ClientHello, a handshake slot,
/// the handshake, then the session; log its end.
async fn connection(mut io: Stream, tcp_peer: String, state: &ListenerState, conn: &Conn) {
    let stop = conn.stop();
    let log = conn.log();
    let started = Instant::now();
    state.count(Metrics::connection_accepted);
    let deadline = started + state.limits.handshake_timeout;
    let local = io.local_addr();
    let mut origin = Origin {
        tcp_peer,
        client: None,
        destination: None,
    };
    let trusted = state
        .proxy
        .trusts(origin.tcp_peer.parse::<SocketAddr>().ok());
    if trusted {
        let within = PROXY_HEADER_TIMEOUT.min(state.limits.handshake_timeout);
        let read = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            r = read_header(&mut io, within) => r,
        };
        match read {
            HeaderRead::Header(header) if header.source.is_some() => {
                origin.client = header.source;
                origin.destination = header.destination;
                tracing::debug!(
                    listener = %state.local,
                    peer = %origin.peer(),
                    via = %origin.tcp_peer,
                    "PROXY v2 header accepted"
                );
            }
            HeaderRead::Header(_) => {
                // LOCAL (or no address family): the connection is the
                // balancer's own. A health check closes it without a byte.
                let wait = deadline.saturating_duration_since(Instant::now());
                let sends = tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    sends = sends_something(&io, wait) => sends,
                };
                if !sends {
                    tracing::debug!(
                        listener = %state.local,
                        peer = %origin.tcp_peer,
                        "health check: PROXY v2 header without a client address (LOCAL), then closed"
                    );
                    return;
                }
            }
            HeaderRead::Silent => {
                tracing::debug!(
                    listener = %state.local,
                    peer = %origin.tcp_peer,
                    "closed before sending anything (a connect probe or health check)"
                );
                return;
            }
            HeaderRead::Refused(reason) => {
                state.count(|m| m.connection_refused(RefusalReason::bad_proxy_header));
                warn_limited!(
                    log,
                    "proxy",
                    listener = %state.local,
                    peer = %origin.tcp_peer,
                    reason = %reason,
                    "connection refused"
                );
                return;
            }
        }
    }
    let peer = origin.peer();
    let via = origin.via().map(tracing::field::display);
    // One source (the balancer's report, else the TCP peer; a Unix socket's
    // peers are one local source, not capped here) holds at most its share.
    let source = origin
        .client
        .map(|a| a.ip())
        .or_else(|| origin.tcp_peer.parse::<SocketAddr>().ok().map(|a| a.ip()));
    let Some(_source_connection) = take_source(
        &state.per_source_connections,
        source,
        "connections",
        state,
        log,
        &peer,
    ) else {
        state.count(|m| m.connection_refused(RefusalReason::source_connection_limit));
        service::refuse(io, &alert_record(AlertCode::GOING_AWAY)).await;
        return;
    };
    let hello_deadline = deadline.min(started + state.limits.hello_timeout);
    // The cookie binds the client's address and port (SPEC §4.5).
    let cookie_source = match origin
        .client
        .or_else(|| origin.tcp_peer.parse::<SocketAddr>().ok())
    {
        Some(a) => CookieSource::Ip(a),
        None => CookieSource::Local,
    };
    let mut retried = false;
    // At most two rounds: a retry is sent only when none was yet.
    let head = loop {
        let head = match read_hello(&mut io, hello_deadline, !trusted, stop).await {
            Hello::Ready(head) => head,
            Hello::Stopped => return,
            Hello::UntrustedProxyHeader => {
                state.count(|m| m.connection_refused(RefusalReason::untrusted_proxy_header));
                warn_limited!(
                    log,
                    "untrusted",
                    listener = %state.local,
                    peer = %peer,
                    reason = "PROXY v2 header from a source not trusted to send one (not in --accept-proxy-protocol)",
                    "connection refused"
                );
                return;
            }
            Hello::TimedOut => {
                state.count(|m| m.handshake_failed(Some(AlertCode::TIMEOUT)));
                warn_limited!(
                    log,
                    "handshake",
                    listener = %state.local,
                    peer = %peer,
                    reason = %format!("timeout: no complete ClientHello within {}", Secs(state.limits.hello_timeout.min(state.limits.handshake_timeout))),
                    "handshake failed"
                );
                service::refuse(io, &alert_record(AlertCode::TIMEOUT)).await;
                return;
            }
        };
        let busy = match state.limits.cookies {
            CookieMode::Off => false,
            CookieMode::Always => true,
            CookieMode::Auto => conn
                .handshake_slots_free()
                .is_some_and(|free| free * 2 <= state.limits.max_handshakes),
        };
        let decision = state
            .cookies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .first_flight(
                &head,
                &cookie_source,
                UnixTime::now(),
                busy,
                retried,
                &mut OsRng,
            );
        match decision {
            Decision::Proceed { retried: valid } => {
                if valid {
                    tracing::debug!(listener = %state.local, peer = %peer, "cookie valid: the handshake starts");
                }
                break head;
            }
            Decision::Retry(record) if !retried => {
                retried = true;
                tracing::debug!(listener = %state.local, peer = %peer, "busy: asked the client for a cookie (HelloRetry)");
                let wrote =
                    tokio::time::timeout_at(hello_deadline.into(), io.write_all(&record)).await;
                if !matches!(wrote, Ok(Ok(()))) {
                    return;
                }
            }
            Decision::PeerAlert(code) => {
                state.count(|m| m.handshake_failed(Some(code)));
                warn_limited!(
                    log,
                    "handshake",
                    listener = %state.local,
                    peer = %peer,
                    reason = %format!("the client sent alert {code}"),
                    "handshake failed"
                );
                return;
            }
            Decision::Retry(_) | Decision::Refuse { .. } => {
                let (alert, reason) = match decision {
                    Decision::Refuse { alert, reason } => (alert, reason),
                    _ => (AlertCode::HANDSHAKE_FAILURE, "a second cookie retry"),
                };
                state.count(|m| m.handshake_failed(Some(alert)));
                warn_limited!(
                    log,
                    "cookie",
                    listener = %state.local,
                    peer = %peer,
                    reason = %reason,
                    "handshake failed"
                );
                service::refuse(io, &alert_record(alert)).await;
                return;
            }
        }
    };
    let io: Inbound = Replay::new(head, io);

    // A source over its handshake share is refused at once: its ClientHellos
    // cost ML-KEM and X25519 work each, and waiting would hold slots.
    let Some(source_handshake) = take_source(
        &state.per_source_handshakes,
        source,
        "handshakes",
        state,
        log,
        &peer,
    ) else {
        state.count(|m| m.connection_refused(RefusalReason::source_handshake_limit));
        service::refuse(io, &alert_record(AlertCode::GOING_AWAY)).await;
        return;
    };
    let slot = tokio::select! {
        biased;
        _ = stop.cancelled() => return,
        slot = conn.handshake_slot() => slot,
        _ = tokio::time::sleep_until(deadline.into()) => {
            state.count(|m| m.connection_refused(RefusalReason::handshake_slots_busy));
            warn_limited!(
                log,
                "busy",
                listener = %state.local,
                peer = %peer,
                via,
                "no handshake slot free within the handshake timeout ({} handshakes running): refused with going away",
                state.limits.max_handshakes
            );
            service::refuse(io, &alert_record(AlertCode::GOING_AWAY)).await;
            return;
        }
    };
    let config = state.store.current().config.clone();
    let acceptor = Acceptor::new(config).with_session_config(SessionConfig {
        max_message_len: state.limits.max_message,
        max_streams: state.limits.max_streams,
        handshake_timeout: deadline.saturating_duration_since(Instant::now()),
        rekey: RekeyPolicy {
            interval: state.limits.rekey_interval,
            ..RekeyPolicy::default()
        },
        ..SessionConfig::default()
    });
    let accepted = tokio::select! {
        biased;
        _ = stop.cancelled() => return,
        r = acceptor.accept(io) => r,
    };
    drop(slot);
    drop(source_handshake);
    let mut stream = match accepted {
        Ok(stream) => stream,
        Err(e) => {
            state.count(|m| m.handshake_failed(crate::connect::failure_alert(&e)));
            let reason = e.to_string();
            let reason = reason.strip_prefix("handshake failed: ").unwrap_or(&reason);
            warn_limited!(
                log,
                "handshake",
                listener = %state.local,
                peer = %peer,
                via,
                reason = %reason,
                "handshake failed"
            );
            return;
        }
    };
    let info = stream.info().clone();
    state.count(|m| m.handshake_completed(info.handshake_duration()));
    // An anonymous client holds one of the listener's anonymous places for
    // the whole session (certified clients are not counted); none free:
    // closed at once, sealed, with `going away`.
    let _anonymous = if info.peer().anonymous {
        match state.anonymous.try_take() {
            Some(place) => Some(place),
            None => {
                state.count(|m| m.connection_refused(RefusalReason::anonymous_quota));
                warn_limited!(
                    log,
                    "anonymous",
                    listener = %state.local,
                    peer = %peer,
                    via,
                    id = %info.peer(),
                    "anonymous-session quota: {} anonymous sessions already open: refused with going away",
                    state.anonymous.max()
                );
                abort(&mut stream, AlertCode::GOING_AWAY).await;
                return;
            }
        }
    } else {
        None
    };
    tracing::debug!(
        listener = %state.local,
        peer = %peer,
        via,
        id = %info.peer(),
        version = %info.version(),
        cipher = %info.cipher(),
        handshake_ms = info.handshake_duration().as_millis() as u64,
        "session start"
    );
    let established = Instant::now();
    let _open = state.metrics.as_ref().map(|m| m.session_open());
    let mut counts = Counts::default();
    let mut streams: Option<u64> = None;
    let end = match MuxSession::new(stream) {
        Ok(session) => {
            // A session of streams: every stream names its service.
            let ctx = Arc::new(StreamContext {
                local: state.local.clone(),
                peer: peer.clone(),
                identity: info.peer().clone(),
                mode: state.mode.clone(),
                services: state.services.clone(),
                limits: state.limits.clone(),
                proxy_header: state.proxy.send.then(|| {
                    origin
                        .header_for_backend(local, &info.peer().to_string())
                        .map_err(|e| format!("cannot make the PROXY header for a backend: {e}"))
                }),
                stop: stop.clone(),
                log: conn.log_handle(),
                metrics: state.metrics.clone(),
            });
            let mut n = 0;
            let end = streams::serve(session, ctx, &mut counts, &mut n).await;
            streams = Some(n);
            end
        }
        Err(stream) => {
            let mut stream = *stream;
            match &state.mode {
                Mode::Echo => {
                    let end = echo(&mut stream, &state.limits, stop, &mut counts).await;
                    counts.rekeys = stream.connection().rekeys_completed();
                    end
                }
                Mode::Forward(backend) => {
                    let header = state.proxy.send.then(|| {
                        origin
                            .header_for_backend(local, &info.peer().to_string())
                            .map_err(|e| {
                                format!("cannot make the PROXY header for backend {backend}: {e}")
                            })
                    });
                    let end =
                        forward(stream, backend, header, &state.limits, stop, &mut counts).await;
                    if let SessionEnd::Backend(why) = &end {
                        warn_limited!(log, "backend", listener = %state.local, "{why}");
                    }
                    end
                }
            }
        }
    };
    state.count(|m| {
        m.bytes(counts.bytes_in, counts.bytes_out);
        m.rekeys(counts.rekeys);
    });
    let order: Vec<String> = info
        .step_order()
        .steps()
        .iter()
        .map(|t| t.step().to_string())
        .collect();
    tracing::info!(
        listener = %state.local,
        peer = %peer,
        via,
        id = %info.peer(),
        version = %info.version(),
        cipher = %info.cipher(),
        order = %order.join(","),
        bytes_in = counts.bytes_in,
        bytes_out = counts.bytes_out,
        streams,
        duration = %Secs(established.elapsed()),
        reason = %end,
        "session end"
    );
}
