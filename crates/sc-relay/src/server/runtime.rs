//! The server at run time: an accept loop per listener, the limits, the
//! handshake, the session, the log line at its end; reload and drain.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sc_handshake::ServerConfig;
use sc_pki::{CredentialStore, UnixTime};
use sc_session::{Acceptor, SessionConfig};
use sc_wire::{Alert, AlertCode, Codec, RecordHeader, RecordKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::credentials::{io_reason, load, CredentialError};
use super::proxy::{
    read_header, sends_something, HeaderRead, Inbound, Origin, ProxyProtocol, PROXY_HEADER_TIMEOUT,
};
use super::session::{echo, forward, secs, Counts, SessionEnd};
use super::settings::{Credentials, LimitError, Limits, ListenerSettings, Mode};
use crate::ops::RateLimiter;
use crate::{Endpoint, Listener, Stream};

/// How long a refused connection is kept to get its alert out and read what
/// the client sent (so closing does not reset the connection before the
/// client has read the alert).
const REFUSE_LINGER: Duration = Duration::from_secs(1);
/// Refused connections lingering at once; beyond that they are closed at once.
const MAX_REFUSING: usize = 64;
/// After the grace period, how long closed sessions get to write their
/// alert and log their end.
const CUT_WAIT: Duration = Duration::from_secs(3);
/// Longest a credential load may take (reading files, decrypting the key)
/// before it is given up (a FIFO in place of a file would block forever).
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// On shutdown, the accept backlog is drained until it has been empty this
/// long (so connections the kernel completed are served, not reset)…
const BACKLOG_QUIET: Duration = Duration::from_millis(20);
/// …or for at most this long.
const BACKLOG_DRAIN_MAX: Duration = Duration::from_secs(1);
/// Log lines per kind of problem per [`LOG_PERIOD`].
const LOG_BURST: u32 = 5;
const LOG_PERIOD: Duration = Duration::from_secs(10);

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

/// What a shutdown did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Sessions open when the server stopped accepting.
    pub open_at_start: usize,
    /// Sessions still open at the end of the grace period, then closed.
    pub cut: usize,
}

/// The credentials a listener uses now, and where they came from.
#[derive(Debug)]
struct Snapshot {
    config: Arc<ServerConfig>,
    source: Credentials,
}

#[derive(Debug)]
struct ListenerState {
    /// The address as configured (what reloads match on).
    listen: Endpoint,
    /// The address as bound (the real port when 0 was asked for).
    local: Endpoint,
    mode: Mode,
    limits: Limits,
    proxy: ProxyProtocol,
    store: CredentialStore<Snapshot>,
    connections: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
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
    /// Ends the accept loops.
    stop_accepting: CancellationToken,
    /// Ends every connection (the grace period is over).
    hard_stop: CancellationToken,
    /// Every connection task.
    tracker: TaskTracker,
    limiter: RateLimiter,
    refusing: Arc<Semaphore>,
}

/// A running server: one accept loop per listener on the current tokio
/// runtime.
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
    listeners: Vec<Arc<ListenerState>>,
    shared: Arc<Shared>,
    accept_loops: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts every listener. Must be called within a tokio runtime with
    /// time and I/O enabled.
    pub async fn bind(settings: Vec<ListenerSettings>) -> Result<Self, StartError> {
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
            let (config, description, warnings) =
                build(&s.credentials)
                    .await
                    .map_err(|source| StartError::Credentials {
                        listen: s.listen.clone(),
                        source,
                    })?;
            let listener = s.listen.listen().await.map_err(|e| StartError::Bind {
                listen: s.listen.clone(),
                reason: io_reason(&e),
                kind: e.kind(),
            })?;
            let local = listener.local_endpoint().map_err(|e| StartError::Bind {
                listen: s.listen.clone(),
                reason: io_reason(&e),
                kind: e.kind(),
            })?;
            let state = ListenerState {
                listen: s.listen,
                local,
                mode: s.mode,
                connections: Arc::new(Semaphore::new(s.limits.max_connections)),
                handshakes: Arc::new(Semaphore::new(s.limits.max_handshakes)),
                limits: s.limits,
                proxy: s.proxy_protocol,
                store: CredentialStore::new(Snapshot {
                    config,
                    source: s.credentials,
                }),
            };
            bound.push((listener, Arc::new(state), description, warnings));
        }
        let shared = Arc::new(Shared {
            stop_accepting: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            limiter: RateLimiter::new(LOG_BURST, LOG_PERIOD),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        });
        let mut listeners = Vec::new();
        let mut accept_loops = Vec::new();
        for (listener, state, description, warnings) in bound {
            let l = &state.limits;
            tracing::info!(
                "listening on {} ({}); certificate {description}; at most {} connections, {} handshakes at once",
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
            for w in warnings {
                tracing::warn!("{w}");
            }
            accept_loops.push(tokio::spawn(accept_loop(
                listener,
                state.clone(),
                shared.clone(),
            )));
            listeners.push(state);
        }
        Ok(Self {
            listeners,
            shared,
            accept_loops,
        })
    }

    /// The bound addresses, in the order given (with the real port where 0
    /// was asked for).
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        self.listeners.iter().map(|l| l.local.clone()).collect()
    }

    /// Connections open now (handshaking or established), over all listeners.
    pub fn active_connections(&self) -> usize {
        self.listeners.iter().map(|l| l.active()).sum()
    }

    /// Rebuilds every listener's credentials from the same files (new
    /// certificate, key, CA bundle, CRL). Sessions that exist keep what they
    /// started with; new ones get the new credentials. A listener whose
    /// reload fails keeps its credentials; each outcome is logged in one line.
    pub async fn reload(&self) -> Vec<ReloadOutcome> {
        let mut out = Vec::new();
        for l in &self.listeners {
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
        for l in &self.listeners {
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
            if !self.listeners.iter().any(|l| l.listen == s.listen) {
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
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        self.shared.stop_accepting.cancel();
        for handle in self.accept_loops.drain(..) {
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

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop_accepting.cancel();
        self.shared.hard_stop.cancel();
    }
}

/// Builds a listener's configuration (file reads and key decryption on a
/// blocking thread).
async fn build(
    source: &Credentials,
) -> Result<(Arc<ServerConfig>, String, Vec<String>), CredentialError> {
    match source {
        Credentials::Fixed(config) => {
            let fp = config.credential().fingerprint();
            let short: String = fp[..8].iter().map(|b| format!("{b:02x}")).collect();
            Ok((
                config.clone(),
                format!("sha256:{short}… (in memory)"),
                Vec::new(),
            ))
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
                        secs(LOAD_TIMEOUT)
                    )))
                }
            };
            Ok((Arc::new(loaded.config), loaded.description, loaded.warnings))
        }
    }
}

async fn reload_listener(l: &ListenerState, source: Credentials) -> ReloadOutcome {
    let result = match build(&source).await {
        Ok((config, description, warnings)) => {
            l.store.replace(Snapshot { config, source });
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
    ReloadOutcome {
        listen: l.listen.clone(),
        result,
    }
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
            Ok((io, peer)) => admit(io, peer, &state, &shared),
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
    // Connections the kernel has already completed wait in the backlog, and
    // closing the listener would reset them: a load balancer that has sent
    // a client's first bytes there could not retry them elsewhere. Take
    // them as sessions to drain (until the backlog stays empty for
    // BACKLOG_QUIET); only later connections are refused, and a balancer
    // retries those on another server.
    let until = Instant::now() + BACKLOG_DRAIN_MAX;
    for _ in 0..state.limits.max_connections {
        if Instant::now() >= until {
            break;
        }
        match tokio::time::timeout(BACKLOG_QUIET, listener.accept()).await {
            Ok(Ok((io, peer))) => admit(io, peer, &state, &shared),
            Ok(Err(e)) if is_per_connection(&e) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    drop(listener);
}

/// A new connection: a session task if the connection limit allows,
/// else refused with `going away`.
fn admit(io: Stream, peer: String, state: &Arc<ListenerState>, shared: &Arc<Shared>) {
    match state.connections.clone().try_acquire_owned() {
        Ok(permit) => {
            shared
                .tracker
                .spawn(connection(io, peer, permit, state.clone(), shared.clone()));
        }
        Err(_) => {
            limited!(
                shared,
                "limit",
                listener = %state.local,
                peer = %peer,
                "connection limit reached ({} open): refused with going away",
                state.limits.max_connections
            );
            refuse(io, AlertCode::GOING_AWAY, shared);
        }
    }
}

/// An accept error that concerns one connection only (it was reset before
/// we got to it).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::NotConnected
    )
}

/// Refuses a connection with a plaintext alert, in the background and with a
/// bounded linger.
fn refuse(io: Stream, code: AlertCode, shared: &Shared) {
    if let Ok(permit) = shared.refusing.clone().try_acquire_owned() {
        shared.tracker.spawn(async move {
            let _ = tokio::time::timeout(REFUSE_LINGER, send_plain_alert(io, code)).await;
            drop(permit);
        });
    }
}

/// Writes a plaintext alert record, shuts our side, and reads (and drops)
/// what the client sent until it closes.
async fn send_plain_alert<IO>(mut io: IO, code: AlertCode) -> io::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut record = RecordHeader {
        kind: RecordKind::ALERT,
        len: sc_wire::record::ALERT_LEN,
    }
    .to_bytes()
    .to_vec();
    Alert { code }.encode(&mut record);
    io.write_all(&record).await?;
    io.shutdown().await?;
    let mut sink = [0u8; 1024];
    while io.read(&mut sink).await? > 0 {}
    Ok(())
}

/// How often a partly arrived ClientHello is looked at again.
const HELLO_POLL: Duration = Duration::from_millis(10);

/// Waits until the connection's first record, the ClientHello, has fully
/// arrived (peeked, not read), so that a connection takes a handshake slot
/// only then: slow or silent clients (slowloris) hold a connection slot,
/// never a handshake slot. Bytes that do not start a handshake record go on
/// to the handshake, which refuses them at once. A ClientHello not complete
/// by the deadline gets the `timeout` alert (logged as a failed handshake);
/// `None` then, or when the server stops.
async fn hello_arrived(
    io: Stream,
    deadline: Instant,
    state: &ListenerState,
    shared: &Shared,
    peer: &str,
) -> Option<Stream> {
    let Stream::Tcp(tcp) = &io else {
        return Some(io);
    };
    const HEADER: usize = sc_wire::record::RECORD_HEADER_LEN;
    const MAX: usize = sc_wire::record::MAX_PLAIN_HANDSHAKE_LEN;
    let mut head = [0u8; HEADER + MAX];
    loop {
        let peeked = tokio::select! {
            biased;
            _ = shared.hard_stop.cancelled() => return None,
            r = tokio::time::timeout_at(deadline.into(), tcp.peek(&mut head)) => r,
        };
        let n = match peeked {
            Ok(Ok(n)) if n > 0 => n,
            // The end or an error: the handshake reports it.
            Ok(_) => return Some(io),
            Err(_) => break,
        };
        if head[0] != RecordKind::HANDSHAKE.0 {
            return Some(io);
        }
        if n >= HEADER {
            let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
            if len > MAX || n >= HEADER + len {
                return Some(io);
            }
        }
        // Part of it: peek returns at once while bytes wait, so look again
        // a little later.
        let again = deadline.min(Instant::now() + HELLO_POLL);
        tokio::select! {
            biased;
            _ = shared.hard_stop.cancelled() => return None,
            _ = tokio::time::sleep_until(again.into()) => {}
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    limited!(
        shared,
        "handshake",
        listener = %state.local,
        peer = %peer,
        reason = %format!("timeout: no complete ClientHello within {}", secs(state.limits.handshake_timeout)),
        "handshake failed"
    );
    let _ = tokio::time::timeout(REFUSE_LINGER, send_plain_alert(io, AlertCode::TIMEOUT)).await;
    None
}

/// One connection: its PROXY header (from a trusted source) or the check
/// that it sends none (from any other), a handshake slot, the handshake,
/// then the session; log its end.
async fn connection(
    mut io: Stream,
    tcp_peer: String,
    _permit: OwnedSemaphorePermit,
    state: Arc<ListenerState>,
    shared: Arc<Shared>,
) {
    let started = Instant::now();
    let deadline = started + state.limits.handshake_timeout;
    let local = match &io {
        Stream::Tcp(tcp) => tcp.local_addr().ok(),
        Stream::Unix(_) => None,
    };
    let mut origin = Origin {
        tcp_peer,
        client: None,
        destination: None,
    };
    let tripped = Arc::new(AtomicBool::new(false));
    let io = if state
        .proxy
        .trusts(origin.tcp_peer.parse::<SocketAddr>().ok())
    {
        let within = PROXY_HEADER_TIMEOUT.min(state.limits.handshake_timeout);
        let read = tokio::select! {
            biased;
            _ = shared.hard_stop.cancelled() => return,
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
                    _ = shared.hard_stop.cancelled() => return,
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
                limited!(
                    shared,
                    "proxy",
                    listener = %state.local,
                    peer = %origin.tcp_peer,
                    reason = %reason,
                    "connection refused"
                );
                return;
            }
        }
        let Some(io) = hello_arrived(io, deadline, &state, &shared, &origin.peer()).await else {
            return;
        };
        Inbound::plain(io)
    } else {
        let Some(io) = hello_arrived(io, deadline, &state, &shared, &origin.peer()).await else {
            return;
        };
        Inbound::watched(io, tripped.clone())
    };
    let peer = origin.peer();
    let via = origin.via().map(tracing::field::display);

    let slot = tokio::select! {
        biased;
        _ = shared.hard_stop.cancelled() => return,
        slot = state.handshakes.clone().acquire_owned() => slot,
        _ = tokio::time::sleep_until(deadline.into()) => {
            limited!(
                shared,
                "busy",
                listener = %state.local,
                peer = %peer,
                via,
                "no handshake slot free within the handshake timeout ({} handshakes running): refused with going away",
                state.limits.max_handshakes
            );
            let _ = tokio::time::timeout(REFUSE_LINGER, send_plain_alert(io, AlertCode::GOING_AWAY)).await;
            return;
        }
    };
    // The semaphore is never closed.
    let Ok(slot) = slot else { return };
    let config = state.store.current().config.clone();
    let acceptor = Acceptor::new(config).with_session_config(SessionConfig {
        max_message_len: state.limits.max_message,
        handshake_timeout: deadline.saturating_duration_since(Instant::now()),
        ..SessionConfig::default()
    });
    let accepted = tokio::select! {
        biased;
        _ = shared.hard_stop.cancelled() => return,
        r = acceptor.accept(io) => r,
    };
    drop(slot);
    let mut stream = match accepted {
        Ok(stream) => stream,
        Err(_) if tripped.load(Ordering::Relaxed) => {
            limited!(
                shared,
                "untrusted",
                listener = %state.local,
                peer = %peer,
                reason = "PROXY v2 header from a source not trusted to send one (not in --accept-proxy-protocol)",
                "connection refused"
            );
            return;
        }
        Err(e) => {
            let reason = e.to_string();
            let reason = reason.strip_prefix("handshake failed: ").unwrap_or(&reason);
            limited!(
                shared,
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
    tracing::debug!(
        listener = %state.local,
        peer = %peer,
        via,
        id = %info.peer(),
        cipher = %info.cipher(),
        handshake_ms = info.handshake_duration().as_millis() as u64,
        "session start"
    );
    let established = Instant::now();
    let mut counts = Counts::default();
    let end = match &state.mode {
        Mode::Echo => echo(&mut stream, &state.limits, &shared.hard_stop, &mut counts).await,
        Mode::Forward(backend) => {
            let header = state.proxy.send.then(|| {
                origin
                    .header_for_backend(local, &info.peer().to_string())
                    .map_err(|e| format!("cannot make the PROXY header for backend {backend}: {e}"))
            });
            let end = forward(
                stream,
                backend,
                header,
                &state.limits,
                &shared.hard_stop,
                &mut counts,
            )
            .await;
            if let SessionEnd::Backend(why) = &end {
                limited!(shared, "backend", listener = %state.local, "{why}");
            }
            end
        }
    };
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
        cipher = %info.cipher(),
        order = %order.join(","),
        bytes_in = counts.bytes_in,
        bytes_out = counts.bytes_out,
        duration = %secs_ms(established.elapsed()),
        reason = %end,
        "session end"
    );
}

fn secs_ms(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}
