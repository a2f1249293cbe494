//! The tunnel entry (what `sc-client --listen` runs): a local listener whose
//! every connection gets its own secure session to the server, with
//! [`splice`] moving the bytes both ways, half-close included. The local
//! application needs no change: it talks plaintext TCP (or a Unix socket)
//! to the entry.
//!
//! ```text
//!  local app ──plain──▶ TunnelEntry ──Target::connect──▶ sc-server ──plain──▶ backend
//!              accept   (sc-net's listener lifecycle: ≤ max_connections,
//!                        more wait in the backlog; ≤ max_handshakes at a time)
//! ```
//!
//! A server that is down or refuses the handshake costs the local
//! connection only: it is closed, one (rate-limited) log line says why, and
//! the entry goes on accepting. One log line per session when it ends: the
//! local peer, the server's identity, the cipher, the bytes each way, the
//! duration and how it ended. A session that fails, or is cut at the end of
//! a shutdown's grace period, resets the local connection, so the
//! application never takes a cut for a clean end.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sc_net::service::{Bound, Conn, Handler, Limits, Service, WhenFull};
use sc_net::{warn_limited, Endpoint, Listener, Secs, Stream};

use crate::connect::Target;
use crate::splice;

/// Most local connections a tunnel entry serves at once (100); further ones
/// wait in the listen backlog until a session ends.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// Most handshakes a tunnel entry runs at once (50); further connections
/// wait for one to finish.
pub const DEFAULT_MAX_HANDSHAKES: usize = 50;

/// How long a tunnel entry that is told to stop lets its sessions finish
/// (30 s) before it cuts them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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
            "listening on {local}, tunnelling to {name} at {}",
            target.connect,
        );
        let entry = Arc::new(Entry {
            config: config.clone(),
            failed: AtomicU64::new(0),
        });
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
        let accepted = service.accepted();
        let report = service.shutdown(grace).await;
        TunnelReport {
            accepted,
            failed: entry.failed.load(Ordering::Relaxed),
            cut: report.cut,
        }
    }
}

/// The entry's handler: one session per local connection.
#[derive(Debug)]
struct Entry {
    config: Arc<TunnelConfig>,
    /// Sessions that could not be opened.
    failed: AtomicU64,
}

impl Handler for Entry {
    async fn serve(self: Arc<Self>, plain: Stream, peer: String, conn: Conn) {
        let started = Instant::now();
        let connect = async {
            let _slot = conn.handshake_slot().await;
            self.config.target.connect().await
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
        let server = secure.peer().to_string();
        let cipher = secure.cipher();
        tracing::debug!(
            local = %peer,
            server = %server,
            cipher = %cipher,
            order = %secure.step_order(),
            handshake_ms = secure.handshake_duration().as_secs_f64() * 1e3,
            "session open"
        );
        let reset = plain.reset_handle();
        let report = splice(secure, plain, self.config.idle_timeout, Some(conn.stop())).await;
        if let (true, Some(reset)) = (report.end.is_cut(), reset) {
            // The session failed (possibly cut) or was cut by the shutdown:
            // the application must not take it for a clean end.
            reset.reset();
        }
        tracing::info!(
            local = %peer,
            server = %server,
            cipher = %cipher,
            sent = report.plain_to_secure,
            received = report.secure_to_plain,
            duration = %Secs(started.elapsed()),
            reason = %report.end,
            "session ended"
        );
    }
}
