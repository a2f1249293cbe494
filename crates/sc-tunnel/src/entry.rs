//! The tunnel entry (what `sc-client --listen` runs): a local listener whose
//! every connection becomes a stream of a session to the server (SPEC
//! §12) — or, with a server that does not multiplex (or `multiplex` off),
//! gets a session of its own — with [`splice`] moving the bytes both ways,
//! half-close included. The local application needs no change: it talks
//! plaintext TCP (or a Unix socket) to the entry.
//!
//! ```text
//!  local app ──plain──▶ TunnelEntry ──stream of a kept session──▶ sc-server ──plain──▶ backend
//!              accept   (sc-net's listener lifecycle: ≤ max_connections,
//!                        more wait in the backlog; ≤ max_handshakes at a time)
//! ```
//!
//! The entry keeps `sessions` sessions: opened on the first local
//! connection, kept while idle with keepalives, and reopened by the next
//! local connection after one failed (connections that arrive meanwhile
//! share that one try); with `eager` they are opened at start and reopened
//! as soon as they fail, with a backoff (0.1 s doubling to 10 s). Each new
//! local connection becomes a stream of the live session carrying the
//! fewest: it costs no handshake and no round trip. When every kept session
//! carries as many streams as the server takes at once (its stream limit,
//! SPEC §14), the connection gets a session of its own, closed with it.
//!
//! A server that is down or refuses the handshake costs the local
//! connection only: it is closed, one (rate-limited) log line says why, and
//! the entry goes on accepting. One log line per connection when it ends
//! (`connection ended`): the local peer, the server's identity, the
//! cipher, the bytes each way, the duration and how it ended (and the
//! stream and service, for a stream: then at debug level, `-v`); one per
//! session of streams (`session of streams ended`), with the streams it
//! carried. A
//! stream or session that fails, or is cut at the end of a shutdown's grace
//! period, resets the local connection, so the application never takes a
//! cut for a clean end.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sc_net::service::{Bound, Conn, Handler, Limits, Service, WhenFull};
use sc_net::{warn_limited, Endpoint, Listener, Secs, Stream};
use sc_session::streams::StreamError;
use sc_session::{MuxSession, SecureStream};
use sc_status::Metrics;
use sc_wire::streams::ServiceName;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::connect::{ConnectError, ConnectFailure, Target};
use crate::splice;
use crate::SpliceEnd;

/// Most local connections a tunnel entry serves at once (100); further ones
/// wait in the listen backlog until a session ends.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// Most handshakes a tunnel entry runs at once (50); further connections
/// wait for one to finish.
pub const DEFAULT_MAX_HANDSHAKES: usize = 50;

/// How long a tunnel entry that is told to stop lets its sessions finish
/// (30 s) before it cuts them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How often a kept session of streams sends a KeepAlive (60 s): well
/// within `sc-server`'s default idle timeout (300 s).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(60);

/// At shutdown: longest wait for the server's answer to the kept sessions'
/// Close (at most the shutdown grace).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// With `eager`: first wait before a failed session is tried again; it
/// doubles up to [`MAX_BACKOFF`]. (Without, a new local connection tries
/// at once; connections that arrive during one try share its outcome.)
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before a failed session is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One tunnel: where to listen, where to go, and its limits.
#[derive(Clone, Debug)]
pub struct TunnelConfig {
    /// The local address applications connect to.
    pub listen: Endpoint,
    /// Where each local connection's session goes.
    pub target: Target,
    /// A session in which no byte moves either way for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Most local connections served at once ([`DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// Most handshakes at once ([`DEFAULT_MAX_HANDSHAKES`]).
    pub max_handshakes: usize,
    /// Map local connections to streams of kept sessions (when the server
    /// takes streams; the target's connector must offer them). Off: one
    /// session per local connection.
    pub multiplex: bool,
    /// Sessions kept at once (at least 1); streams go to the one carrying
    /// the fewest.
    pub sessions: usize,
    /// Open the kept sessions at start, not on the first connection.
    pub eager: bool,
    /// The service every stream asks the server for (`None`: its default).
    pub service: Option<ServiceName>,
    /// How often a kept session sends a KeepAlive.
    pub keepalive: Duration,
    /// Sessions shared with other tunnels to the same server (so one
    /// session carries a database, a cache and an API at once): made with
    /// [`SessionPool::new`] from one of their configurations. `None`: this
    /// tunnel keeps its own.
    pub pool: Option<Arc<SessionPool>>,
    /// Where to count connections, handshakes, sessions, streams and bytes
    /// (`--status`'s `/metrics`); `None`: nowhere.
    pub metrics: Option<Arc<Metrics>>,
}

impl TunnelConfig {
    /// A tunnel from `listen` to `target` with the default limits and no idle
    /// timeout.
    pub fn new(listen: Endpoint, target: Target) -> Self {
        Self {
            listen,
            target,
            idle_timeout: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            multiplex: true,
            sessions: 1,
            eager: false,
            service: None,
            keepalive: DEFAULT_KEEPALIVE,
            pool: None,
            metrics: None,
        }
    }
}

/// What a tunnel entry did, when it has stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelReport {
    /// Local connections accepted.
    pub accepted: u64,
    /// Of those, sessions that could not be opened.
    pub failed: u64,
    /// Sessions still running at the end of the grace period, and cut.
    pub cut: usize,
}

/// A bound tunnel entry; [`run`](Self::run) serves it.
#[derive(Debug)]
pub struct TunnelEntry {
    listener: Listener,
    local: Endpoint,
    config: Arc<TunnelConfig>,
}

impl TunnelEntry {
    /// Binds the local listener.
    pub async fn bind(config: TunnelConfig) -> io::Result<Self> {
        let (listener, local) = config.listen.bind().await?;
        Ok(Self {
            listener,
            local,
            config: Arc::new(config),
        })
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// The tunnel's configuration.
    pub fn config(&self) -> &TunnelConfig {
        &self.config
    }

    /// Accepts local connections and tunnels each through its own session
    /// until `shutdown` completes; then stops accepting (the listener is
    /// closed), lets the sessions finish for up to `grace`, and cuts those
    /// still running.
    pub async fn run<F>(self, shutdown: F, grace: Duration) -> TunnelReport
    where
        F: Future<Output = ()>,
    {
        let Self {
            listener,
            local,
            config,
        } = self;
        let target = &config.target;
        let name = target.server_name.to_str().into_owned();
        tracing::info!(
            listen = %local,
            server = %name,
            connect = %target.connect,
            service = config.service.as_ref().map(tracing::field::display),
            "listening on {local}, tunnelling to {name} at {}",
            target.connect,
        );
        let pool = config
            .pool
            .clone()
            .unwrap_or_else(|| SessionPool::new(&config));
        let entry = Arc::new(Entry {
            config: config.clone(),
            failed: AtomicU64::new(0),
            pool: pool.clone(),
        });
        let stop = CancellationToken::new();
        if config.eager {
            pool.keep_open(stop.clone());
        }
        let service = Service::start(vec![Bound {
            listener,
            local,
            limits: Limits {
                max_connections: config.max_connections,
                max_handshakes: Some(config.max_handshakes),
                when_full: WhenFull::Wait,
            },
            handler: entry.clone(),
        }]);
        shutdown.await;
        stop.cancel();
        let accepted = service.accepted();
        let report = service.shutdown(grace).await;
        // Every stream has ended or was cut: the kept sessions end with
        // their authenticated Close, so the server logs a clean end, not a
        // possible truncation.
        pool.close(grace.min(CLOSE_WAIT)).await;
        TunnelReport {
            accepted,
            failed: entry.failed.load(Ordering::Relaxed),
            cut: report.cut,
        }
    }
}

/// The entry's handler: a stream of a kept session, or a session of its
/// own, per local connection.
#[derive(Debug)]
struct Entry {
    config: Arc<TunnelConfig>,
    /// Sessions that could not be opened.
    failed: AtomicU64,
    pool: Arc<SessionPool>,
}

/// What a local connection gets.
enum Secure {
    /// A stream of this kept session.
    Stream(MuxSession),
    /// A stream of a session of its own (every kept one is at the
    /// server's stream limit): closed when the stream ends.
    Own(MuxSession),
    /// A session of its own (the server does not take streams, or
    /// multiplexing is off).
    Session(Box<SecureStream<Stream>>),
}

/// One kept session's place.
#[derive(Debug, Default)]
enum Slot {
    #[default]
    Empty,
    Live(MuxSession),
    /// The last try failed, and why.
    Failed(String),
}

/// The sessions a tunnel entry keeps to one server, shared by the tunnels
/// that go there.
#[derive(Debug)]
pub struct SessionPool {
    target: Target,
    keepalive: Duration,
    slots: Vec<Mutex<Slot>>,
    /// Tries made per slot: a caller that waited for a slot while another
    /// tried takes that try's outcome instead of trying again.
    tries: Vec<AtomicU64>,
    /// The server did not take streams: every connection gets its own
    /// session.
    single: AtomicBool,
    /// `keep_open` has started.
    kept: AtomicBool,
    /// The tasks that keep each session alive and log its end: awaited at
    /// shutdown, so every session's line is written before the process
    /// exits.
    keepers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Where handshakes and open sessions are counted (set once).
    metrics: std::sync::OnceLock<Arc<Metrics>>,
}

impl SessionPool {
    /// The pool of `config`'s tunnel: its target, `sessions` slots,
    /// `multiplex` and `keepalive` (the other fields are the tunnel's own).
    pub fn new(config: &TunnelConfig) -> Arc<Self> {
        let n = config.sessions.max(1);
        Arc::new(Self {
            target: config.target.clone(),
            keepalive: config.keepalive,
            slots: (0..n).map(|_| Mutex::new(Slot::Empty)).collect(),
            tries: (0..n).map(|_| AtomicU64::new(0)).collect(),
            single: AtomicBool::new(!config.multiplex),
            kept: AtomicBool::new(false),
            keepers: std::sync::Mutex::default(),
            metrics: config
                .metrics
                .clone()
                .map(std::sync::OnceLock::from)
                .unwrap_or_default(),
        })
    }

    /// Counts this pool's handshakes and open sessions in `metrics` from
    /// now on (a pool made before the metrics were; once: a second call
    /// changes nothing).
    pub fn count_in(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// A session to the target, its handshake counted in the metrics.
    async fn connect(&self) -> Result<SecureStream<Stream>, ConnectError> {
        let r = self.target.connect().await;
        if let Some(m) = self.metrics.get() {
            match &r {
                Ok(s) => m.handshake_completed(s.handshake_duration()),
                Err(e) => m.handshake_failed(match e.failure() {
                    ConnectFailure::Handshake(e) => crate::connect::failure_alert(e),
                    ConnectFailure::Timeout => Some(sc_wire::AlertCode::TIMEOUT),
                    _ => None,
                }),
            }
        }
        r
    }

    /// Whether a kept session to the server is up now (for a readiness
    /// check; a slot being opened right now does not count).
    pub fn is_up(&self) -> bool {
        self.slots.iter().any(|slot| {
            slot.try_lock()
                .is_ok_and(|s| matches!(&*s, Slot::Live(s) if s.ended().is_none()))
        })
    }

    /// Opens every slot's session now and reopens it as soon as it fails
    /// (with a backoff), until `stop` (once per pool).
    fn keep_open(self: &Arc<Self>, stop: CancellationToken) {
        if self.single.load(Ordering::Relaxed) || self.kept.swap(true, Ordering::Relaxed) {
            return;
        }
        for i in 0..self.slots.len() {
            let (pool, stop) = (self.clone(), stop.clone());
            tokio::spawn(async move { pool.maintain(i, stop).await });
        }
    }

    /// The live session carrying the fewest streams, opening one where a
    /// slot has none and every live one carries streams already.
    async fn acquire(&self) -> Result<Secure, String> {
        if self.single.load(Ordering::Relaxed) {
            return self
                .connect()
                .await
                .map(|s| Secure::Session(Box::new(s)))
                .map_err(|e| e.to_string());
        }
        let mut best: Option<(usize, MuxSession)> = None;
        let mut empty = None;
        let (mut full, mut opening) = (false, false);
        for (i, slot) in self.slots.iter().enumerate() {
            let Ok(guard) = slot.try_lock() else {
                opening = true;
                continue;
            };
            match &*guard {
                Slot::Live(s) if s.ended().is_none() => {
                    if !s.can_open_stream() {
                        full = true;
                        continue;
                    }
                    let n = s.stream_count();
                    if best.as_ref().is_none_or(|(m, _)| n < *m) {
                        best = Some((n, s.clone()));
                    }
                }
                _ => {
                    if empty.is_none() {
                        empty = Some(i);
                    }
                }
            }
        }
        match (best, empty) {
            (Some((n, s)), Some(i)) if n > 0 => match self.open(i).await {
                Ok(fresh) => Ok(fresh),
                // Spreading failed: the live one serves.
                Err(_) => Ok(Secure::Stream(s)),
            },
            (Some((_, s)), _) => Ok(Secure::Stream(s)),
            (None, Some(i)) => self.open(i).await,
            // Every live session is at the server's stream limit.
            (None, None) if full && !opening => self.overflow().await,
            // Every slot is opening a session: wait for the first.
            (None, None) => self.open(0).await,
        }
    }

    /// A session of its own for one connection: every kept session is at
    /// the server's stream limit.
    async fn overflow(&self) -> Result<Secure, String> {
        tracing::debug!(
            "every session to {} carries as many streams as the server takes: \
             this connection gets a session of its own",
            self.target.connect
        );
        let stream = self.connect().await.map_err(|e| e.to_string())?;
        Ok(match MuxSession::new(stream) {
            Ok(session) => Secure::Own(session),
            Err(stream) => Secure::Session(stream),
        })
    }

    /// Opens slot `i`'s session, or takes the one (or the failure) of a try
    /// made while this caller waited for the slot.
    async fn open(&self, i: usize) -> Result<Secure, String> {
        let seen = self.tries[i].load(Ordering::Acquire);
        let mut slot = self.slots[i].lock().await;
        match &*slot {
            Slot::Live(s) if s.ended().is_none() => return Ok(Secure::Stream(s.clone())),
            Slot::Failed(why) if self.tries[i].load(Ordering::Acquire) != seen => {
                return Err(why.clone())
            }
            _ => {}
        }
        let tried = self.connect().await;
        self.tries[i].fetch_add(1, Ordering::Release);
        match tried {
            Ok(stream) => match MuxSession::new(stream) {
                Ok(session) => {
                    tracing::info!(
                        server = %session.info().peer(),
                        version = %session.info().version(),
                        cipher = %session.info().cipher(),
                        "session of streams open to {}",
                        self.target.connect
                    );
                    let keeper = tokio::spawn(keep(
                        session.clone(),
                        self.keepalive,
                        self.metrics.get().cloned(),
                    ));
                    if let Ok(mut keepers) = self.keepers.lock() {
                        keepers.retain(|k| !k.is_finished());
                        keepers.push(keeper);
                    }
                    *slot = Slot::Live(session.clone());
                    Ok(Secure::Stream(session))
                }
                Err(stream) => {
                    // The server does not multiplex: one session per
                    // connection from now on.
                    self.single.store(true, Ordering::Relaxed);
                    tracing::info!(
                        "{} does not take streams: one session per connection",
                        self.target.connect
                    );
                    Ok(Secure::Session(stream))
                }
            },
            Err(e) => {
                let why = e.to_string();
                *slot = Slot::Failed(why.clone());
                Err(why)
            }
        }
    }

    /// Closes the kept sessions (each sends its Close once its streams are
    /// let go) and waits up to `within` for them to end.
    async fn close(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let mut live = Vec::new();
        for slot in &self.slots {
            // A slot that is opening a session holds its lock until the
            // handshake ends: bounded by the same deadline.
            let Ok(slot) = tokio::time::timeout_at(deadline, slot.lock()).await else {
                break;
            };
            if let Slot::Live(session) = &*slot {
                session.close();
                live.push(session.clone());
            }
        }
        for session in live {
            if tokio::time::timeout_at(deadline, session.closed())
                .await
                .is_err()
            {
                break;
            }
        }
        // Each session's end line is written by its keeper.
        let keepers = match self.keepers.lock() {
            Ok(mut k) => std::mem::take(&mut *k),
            Err(_) => Vec::new(),
        };
        for keeper in keepers {
            if tokio::time::timeout_at(deadline, keeper).await.is_err() {
                break;
            }
        }
    }

    /// `eager`: keeps slot `i` open, trying again after a failure with a
    /// backoff (0.1 s, doubling up to 10 s), until `stop`.
    async fn maintain(&self, i: usize, stop: CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let wait = match self.open(i).await {
                Ok(Secure::Stream(session)) => {
                    backoff = FIRST_BACKOFF;
                    tokio::select! {
                        _ = session.closed() => Duration::ZERO,
                        _ = stop.cancelled() => return,
                    }
                }
                // The server does not multiplex: nothing to keep.
                Ok(Secure::Session(_) | Secure::Own(_)) => return,
                Err(e) => {
                    tracing::warn!("session failed: {e} (next try in {})", Secs(backoff));
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Keeps a session alive while it is idle, and logs its end; in `metrics`
/// it counts as open while it lives, and its re-keys as they complete
/// (seen at each keepalive and at its end).
async fn keep(session: MuxSession, every: Duration, metrics: Option<Arc<Metrics>>) {
    let _open = metrics.as_ref().map(|m| m.session_open());
    let mut rekeys = 0;
    let started = Instant::now();
    let ended = loop {
        tokio::select! {
            e = session.closed() => break e,
            _ = tokio::time::sleep(every) => {
                session.send_keepalive();
                if let Some(m) = &metrics {
                    m.rekeys_so_far(&mut rekeys, session.rekeys_completed());
                }
            }
        }
    };
    let stats = session.stats();
    if let Some(m) = &metrics {
        m.rekeys_so_far(&mut rekeys, session.rekeys_completed());
    }
    let reason = match ended {
        sc_session::Error::PeerClosed => "closed by the server".to_owned(),
        e => e.to_string(),
    };
    tracing::info!(
        server = %session.info().peer(),
        streams = session.streams_carried(),
        sent = stats.bytes_sent,
        received = stats.bytes_received,
        duration = %Secs(started.elapsed()),
        reason = %reason,
        "session of streams ended"
    );
}

impl Handler for Entry {
    async fn serve(self: Arc<Self>, mut plain: Stream, peer: String, conn: Conn) {
        let started = Instant::now();
        let metrics = self.config.metrics.clone();
        if let Some(m) = &metrics {
            m.connection_accepted();
        }
        let connect = async {
            let _slot = conn.handshake_slot().await;
            self.pool.acquire().await
        };
        let secure = tokio::select! {
            biased;
            _ = conn.stop().cancelled() => return,
            r = connect => r,
        };
        let secure = match secure {
            Ok(s) => s,
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                warn_limited!(conn.log(), "session-failed", local = %peer, "session failed: {e}");
                // Dropping the local connection closes it.
                return;
            }
        };
        let idle = self.config.idle_timeout;
        let own_session = matches!(secure, Secure::Own(_));
        let (report, server, cipher, stream) = match secure {
            Secure::Session(secure) => {
                let server = secure.peer().to_string();
                let cipher = secure.cipher();
                tracing::debug!(
                    local = %peer,
                    server = %server,
                    version = %secure.version(),
                    cipher = %cipher,
                    order = %secure.step_order(),
                    handshake_ms = secure.handshake_duration().as_secs_f64() * 1e3,
                    "session open"
                );
                let _open = metrics.as_ref().map(|m| m.session_open());
                let report = splice(*secure, &mut plain, idle, Some(conn.stop())).await;
                (report, server, cipher, None)
            }
            Secure::Stream(session) | Secure::Own(session) => {
                let own = own_session;
                let service = self.config.service.clone();
                let opened = match session.open_stream(service.clone()) {
                    // Filled up since it was picked: a session of its own.
                    Err(StreamError::Limit(_)) if !own => match self.pool.overflow().await {
                        Ok(Secure::Own(fresh)) => fresh
                            .open_stream(service)
                            .map(|s| (s, fresh.clone(), true))
                            .map_err(|e| e.to_string()),
                        Ok(_) => Err("the server stopped taking streams".to_owned()),
                        Err(e) => Err(e),
                    },
                    r => r
                        .map(|s| (s, session.clone(), own))
                        .map_err(|e| e.to_string()),
                };
                let (stream, session, own) = match opened {
                    Ok(s) => s,
                    Err(e) => {
                        self.failed.fetch_add(1, Ordering::Relaxed);
                        warn_limited!(conn.log(), "session-failed", local = %peer, "stream failed: {e}");
                        return;
                    }
                };
                if own {
                    // Ends once its one stream is let go.
                    session.close();
                }
                let id = stream.id();
                let server = session.info().peer().to_string();
                let cipher = session.info().cipher();
                // A session of its own counts as open while its stream
                // lives; a kept one is counted by its keeper.
                let _open = metrics
                    .as_ref()
                    .map(|m| (m.stream_open(), own.then(|| m.session_open())));
                let report = splice(stream, &mut plain, idle, Some(conn.stop())).await;
                if let (true, Some(m)) = (own, &metrics) {
                    // A session of its own ends with its one stream.
                    m.rekeys(session.rekeys_completed());
                }
                (report, server, cipher, Some(id))
            }
        };
        if let Some(m) = &metrics {
            // Received: from the server to the application; sent: the
            // application's bytes to the server.
            m.bytes(report.secure_to_plain, report.plain_to_secure);
            m.rekeys(report.rekeys);
        }
        if report.end.is_cut() {
            // The session or stream failed (possibly cut) or was cut by the
            // shutdown: the application must not take it for a clean end.
            plain.reset_on_close();
        }
        let service = self.config.service.as_ref().map(tracing::field::display);
        // One line per connection: at the default level when it had a
        // session of its own (the session's line) or when its stream did
        // not end cleanly (a refused service, a backend that failed, a
        // lost session); at -v for a stream that closed (its session has
        // a line of its own, with the streams it carried).
        macro_rules! ended {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    local = %peer,
                    server = %server,
                    cipher = %cipher,
                    stream = stream.map(|s| s.0),
                    service,
                    sent = report.plain_to_secure,
                    received = report.secure_to_plain,
                    duration = %Secs(started.elapsed()),
                    reason = %report.end,
                    "connection ended"
                )
            };
        }
        if stream.is_some() && report.end == SpliceEnd::Closed {
            ended!(tracing::Level::DEBUG);
        } else {
            ended!(tracing::Level::INFO);
        }
    }
}
