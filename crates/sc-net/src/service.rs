//! The one listener lifecycle: what `sc-server`, `sc-proxy` and the tunnel
//! entry of `sc-client` each run, with their own [`Handler`] plugged in.
//!
//! ```text
//!  Service::start ──► per listener: accept loop
//!                        │
//!       over max_connections? ── Refuse: the handler's refusal (a plaintext
//!                        │         alert), written and lingered on in the
//!                        │         background (≤ 64 at once, ≤ 1 s each)
//!                        │       ── Wait: not accepted until a connection ends
//!                        │
//!                     Handler::serve(stream, peer, Conn) in its own task
//!                        │         (Conn: the connection's slot, a handshake
//!                        │         slot on demand, the stop token, the log)
//!  Service::shutdown(grace)
//!     stop accepting; take what the kernel already completed (the accept
//!     backlog) as connections to serve; close the listeners; let the
//!     connections finish within the grace period; then cancel the stop
//!     token and give them 3 s to end; report
//! ```
//!
//! Failures to accept that concern one connection are skipped; others (out
//! of file descriptors) are logged, rate-limited, and retried after 100 ms.
//! Dropping a [`Service`] stops everything at once.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{warn_limited, Endpoint, Listener, RateLimiter, Secs, Stream};

/// How long a refused connection is kept to get its refusal out and read
/// what the peer sent (so closing does not reset the connection before the
/// peer has read the refusal).
pub const REFUSE_LINGER: Duration = Duration::from_secs(1);
/// Refused connections lingering at once; beyond that they are closed at once.
const MAX_REFUSING: usize = 64;
/// After the grace period, how long stopped connections get to end.
const CUT_WAIT: Duration = Duration::from_secs(3);
/// On shutdown, the accept backlog is drained until it has been empty this
/// long (so connections the kernel completed are served, not reset)…
const BACKLOG_QUIET: Duration = Duration::from_millis(20);
/// …or for at most this long.
const BACKLOG_DRAIN_MAX: Duration = Duration::from_secs(1);
/// After an accept failure that is not one connection's, the pause before
/// the next try.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What a listener does with a connection beyond its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Accept it and refuse it at once ([`Handler::refusal`]).
    Refuse,
    /// Leave it in the listen backlog until a connection ends.
    Wait,
}

/// A listener's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Handshakes run at once ([`Conn::handshake_slot`]); `None`: no limit.
    pub max_handshakes: Option<usize>,
    /// What happens to one more connection.
    pub when_full: WhenFull,
}

/// What a connection refused over the limit gets before it is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Written before the close (a plaintext alert record).
    pub bytes: Vec<u8>,
    /// Its name in the log line (`going away`).
    pub name: &'static str,
}

/// A service: what to do with each connection a listener accepts.
pub trait Handler: Send + Sync + 'static {
    /// Serves one connection, in a task of its own. `conn` holds the
    /// connection's slot until it is dropped; its [`stop`](Conn::stop)
    /// token is cancelled when the grace period of a shutdown is over.
    fn serve(
        self: Arc<Self>,
        io: Stream,
        peer: String,
        conn: Conn,
    ) -> impl Future<Output = ()> + Send;

    /// With [`WhenFull::Refuse`]: what a connection over the limit is sent
    /// before it is closed (`None`: closed at once).
    fn refusal(&self) -> Option<Refusal> {
        None
    }

    /// Told of every connection refused (or closed) because the listener
    /// holds its maximum of connections: for a metric. It must be cheap.
    fn refused_at_limit(&self) {}
}

/// A listener bound for a [`Service`].
#[derive(Debug)]
pub struct Bound<H> {
    /// The listener.
    pub listener: Listener,
    /// Its address (with the real port when 0 was asked for).
    pub local: Endpoint,
    /// Its limits.
    pub limits: Limits,
    /// What it does with connections.
    pub handler: Arc<H>,
}

/// One accepted connection's place in the service.
#[derive(Debug)]
pub struct Conn {
    local: Endpoint,
    stop: CancellationToken,
    log: Arc<RateLimiter>,
    handshakes: Option<Arc<Semaphore>>,
    _slot: OwnedSemaphorePermit,
}

/// A handshake slot ([`Conn::handshake_slot`]), free again when dropped.
#[derive(Debug)]
pub struct HandshakeSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Conn {
    /// The listener's address.
    pub fn local(&self) -> &Endpoint {
        &self.local
    }

    /// Cancelled when the grace period of a shutdown is over: the handler
    /// ends the connection (an alert, a reset) and returns.
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// The service's rate limiter for warnings ([`warn_limited!`]).
    pub fn log(&self) -> &RateLimiter {
        &self.log
    }

    /// The same rate limiter, for tasks the connection spawns.
    pub fn log_handle(&self) -> Arc<RateLimiter> {
        self.log.clone()
    }

    /// The listener's handshake slots free now (`None` when it has no
    /// handshake limit): how busy it is, for a server that asks for a
    /// cookie under load.
    pub fn handshake_slots_free(&self) -> Option<usize> {
        self.handshakes.as_ref().map(|s| s.available_permits())
    }

    /// Waits for one of the listener's handshake slots (at once when it has
    /// no handshake limit).
    pub async fn handshake_slot(&self) -> HandshakeSlot {
        match &self.handshakes {
            // The semaphore is never closed.
            Some(s) => HandshakeSlot {
                _permit: s.clone().acquire_owned().await.ok(),
            },
            None => HandshakeSlot { _permit: None },
        }
    }
}

/// What a shutdown did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections open when the service stopped accepting.
    pub open_at_start: usize,
    /// Connections still open at the end of the grace period, then stopped.
    pub cut: usize,
}

#[derive(Debug)]
struct ListenerState<H> {
    local: Endpoint,
    limits: Limits,
    handler: Arc<H>,
    connections: Arc<Semaphore>,
    handshakes: Option<Arc<Semaphore>>,
}

impl<H> ListenerState<H> {
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
    /// Every connection's task, and every refusal's.
    tracker: TaskTracker,
    log: Arc<RateLimiter>,
    refusing: Arc<Semaphore>,
    accepted: AtomicU64,
}

/// Listeners accepting connections for a [`Handler`], on the current tokio
/// runtime; see the [module](self).
#[derive(Debug)]
pub struct Service<H> {
    listeners: Vec<Arc<ListenerState<H>>>,
    shared: Arc<Shared>,
    accept_loops: Vec<JoinHandle<()>>,
}

impl<H: Handler> Service<H> {
    /// Starts an accept loop on every listener. Must be called within a
    /// tokio runtime with time and I/O enabled.
    pub fn start(bound: Vec<Bound<H>>) -> Self {
        let shared = Arc::new(Shared {
            stop_accepting: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            log: Arc::new(RateLimiter::default()),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            accepted: AtomicU64::new(0),
        });
        let mut listeners = Vec::with_capacity(bound.len());
        let mut accept_loops = Vec::with_capacity(bound.len());
        for b in bound {
            let max = b.limits.max_connections.max(1);
            let state = Arc::new(ListenerState {
                local: b.local,
                limits: Limits {
                    max_connections: max,
                    ..b.limits
                },
                handler: b.handler,
                connections: Arc::new(Semaphore::new(max)),
                handshakes: b
                    .limits
                    .max_handshakes
                    .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            });
            accept_loops.push(tokio::spawn(accept_loop(
                b.listener,
                state.clone(),
                shared.clone(),
            )));
            listeners.push(state);
        }
        Self {
            listeners,
            shared,
            accept_loops,
        }
    }

    /// The bound addresses, in the order given.
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        self.listeners.iter().map(|l| l.local.clone()).collect()
    }

    /// The handlers, in the order of the listeners.
    pub fn handlers(&self) -> impl Iterator<Item = &Arc<H>> {
        self.listeners.iter().map(|l| &l.handler)
    }

    /// Connections being served now, over all listeners.
    pub fn active_connections(&self) -> usize {
        self.listeners.iter().map(|l| l.active()).sum()
    }

    /// Connections accepted and served so far (refused ones not counted).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// The service's rate limiter for warnings.
    pub fn log(&self) -> &Arc<RateLimiter> {
        &self.shared.log
    }

    /// Cancelled when the service stops accepting (for the service's own
    /// background tasks, such as health probes).
    pub fn stopping(&self) -> CancellationToken {
        self.shared.stop_accepting.clone()
    }

    /// Stops accepting (a listener closes once the connections already
    /// waiting in its backlog have been taken, so a load balancer's
    /// connection is served or refused, never reset), lets open connections
    /// finish within `grace`, then stops the rest and returns when every
    /// connection has ended.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        self.shared.stop_accepting.cancel();
        for handle in self.accept_loops.drain(..) {
            let _ = handle.await;
        }
        let open_at_start = self.active_connections();
        tracing::info!(
            "shutting down: no longer accepting; {open_at_start} open sessions have {} to finish",
            Secs(grace)
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

impl<H> Drop for Service<H> {
    fn drop(&mut self) {
        self.shared.stop_accepting.cancel();
        self.shared.hard_stop.cancel();
    }
}

async fn accept_loop<H: Handler>(
    listener: Listener,
    state: Arc<ListenerState<H>>,
    shared: Arc<Shared>,
) {
    loop {
        // Waiting listeners take a slot before they accept.
        let slot = match state.limits.when_full {
            WhenFull::Refuse => None,
            WhenFull::Wait => {
                let slot = match state.connections.clone().try_acquire_owned() {
                    Ok(slot) => Ok(slot),
                    Err(_) => {
                        warn_limited!(
                            shared.log,
                            "limit",
                            listener = %state.local,
                            "connection limit reached ({} open): new connections wait for a session to end",
                            state.limits.max_connections
                        );
                        tokio::select! {
                            biased;
                            _ = shared.stop_accepting.cancelled() => break,
                            slot = state.connections.clone().acquire_owned() => slot,
                        }
                    }
                };
                // The semaphore is never closed.
                let Ok(slot) = slot else { break };
                Some(slot)
            }
        };
        let accepted = tokio::select! {
            biased;
            _ = shared.stop_accepting.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((io, peer)) => admit(io, peer, slot, &state, &shared),
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather
                // than spin.
                warn_limited!(shared.log, "accept", listener = %state.local, "cannot accept: {e}");
                tokio::select! {
                    _ = shared.stop_accepting.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_RETRY) => {}
                }
            }
        }
    }
    // Connections the kernel has already completed wait in the backlog, and
    // closing the listener would reset them: a load balancer that has sent
    // a client's first bytes there could not retry them elsewhere. Take
    // them as connections to drain (until the backlog stays empty for
    // BACKLOG_QUIET); only later connections are refused, and a balancer
    // retries those elsewhere.
    let until = Instant::now() + BACKLOG_DRAIN_MAX;
    for _ in 0..state.limits.max_connections {
        if Instant::now() >= until {
            break;
        }
        match tokio::time::timeout(BACKLOG_QUIET, listener.accept()).await {
            Ok(Ok((io, peer))) => admit(io, peer, None, &state, &shared),
            Ok(Err(e)) if is_per_connection(&e) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    drop(listener);
}

/// A new connection: served in a task of its own if it has a slot, else
/// refused.
fn admit<H: Handler>(
    io: Stream,
    peer: String,
    slot: Option<OwnedSemaphorePermit>,
    state: &Arc<ListenerState<H>>,
    shared: &Arc<Shared>,
) {
    let slot = match slot.map_or_else(|| state.connections.clone().try_acquire_owned(), Ok) {
        Ok(slot) => slot,
        Err(_) => {
            state.handler.refused_at_limit();
            let refusal = match state.limits.when_full {
                WhenFull::Refuse => state.handler.refusal(),
                // Only while draining the backlog: no slot is free.
                WhenFull::Wait => None,
            };
            let what = refusal.as_ref().map_or_else(
                || "closed".to_owned(),
                |r| format!("refused with {}", r.name),
            );
            warn_limited!(
                shared.log,
                "limit",
                listener = %state.local,
                peer = %peer,
                "connection limit reached ({} open): {what}",
                state.limits.max_connections
            );
            if let Some(refusal) = refusal {
                if let Ok(permit) = shared.refusing.clone().try_acquire_owned() {
                    shared.tracker.spawn(async move {
                        refuse(io, &refusal.bytes).await;
                        drop(permit);
                    });
                }
            }
            return;
        }
    };
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    let conn = Conn {
        local: state.local.clone(),
        stop: shared.hard_stop.clone(),
        log: shared.log.clone(),
        handshakes: state.handshakes.clone(),
        _slot: slot,
    };
    shared
        .tracker
        .spawn(state.handler.clone().serve(io, peer, conn));
}

/// An accept error that concerns one connection only (it was reset before
/// it was taken).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::NotConnected
    )
}

/// Refuses a connection: writes `bytes` (a plaintext alert), shuts our side
/// down, and reads (and drops) what the peer still sends until it closes,
/// all within [`REFUSE_LINGER`], so the close does not reset the connection
/// before the peer has read the refusal.
pub async fn refuse<IO>(mut io: IO, bytes: &[u8])
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let linger = async {
        io.write_all(bytes).await?;
        io.shutdown().await?;
        let mut sink = [0u8; 1024];
        while io.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSE_LINGER, linger).await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::net::TcpStream;

    use super::*;

    /// Holds every connection until its peer closes or the stop token,
    /// counting those served.
    #[derive(Debug, Default)]
    struct Hold {
        served: AtomicUsize,
    }

    impl Handler for Hold {
        async fn serve(self: Arc<Self>, mut io: Stream, _peer: String, conn: Conn) {
            self.served.fetch_add(1, Ordering::Relaxed);
            drop(conn.handshake_slot().await);
            let mut sink = [0u8; 16];
            tokio::select! {
                _ = conn.stop().cancelled() => {}
                _ = async { while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {} } => {}
            }
        }

        fn refusal(&self) -> Option<Refusal> {
            Some(Refusal {
                bytes: b"full".to_vec(),
                name: "full",
            })
        }
    }

    async fn service(max: usize, when_full: WhenFull) -> (Service<Hold>, String) {
        let listener = "127.0.0.1:0"
            .parse::<Endpoint>()
            .expect("endpoint")
            .listen()
            .await
            .expect("bind");
        let local = listener.local_endpoint().expect("local");
        let addr = local.to_string();
        let service = Service::start(vec![Bound {
            listener,
            local,
            limits: Limits {
                max_connections: max,
                max_handshakes: Some(1),
                when_full,
            },
            handler: Arc::new(Hold::default()),
        }]);
        (service, addr)
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}: not within 5 s");
    }

    #[tokio::test]
    async fn one_over_the_limit_is_refused_and_the_shutdown_cuts_the_rest() {
        let (service, addr) = service(2, WhenFull::Refuse).await;
        let _a = TcpStream::connect(&addr).await.expect("a");
        let _b = TcpStream::connect(&addr).await.expect("b");
        until("two served", || service.active_connections() == 2).await;
        let mut c = TcpStream::connect(&addr).await.expect("c");
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got))
            .await
            .expect("refused in time")
            .expect("read");
        assert_eq!(got, b"full");
        assert_eq!(service.accepted(), 2);
        let report = service.shutdown(Duration::from_millis(50)).await;
        assert_eq!(
            report,
            ShutdownReport {
                open_at_start: 2,
                cut: 2
            }
        );
    }

    #[tokio::test]
    async fn a_waiting_listener_serves_the_next_when_one_ends() {
        let (service, addr) = service(1, WhenFull::Wait).await;
        let a = TcpStream::connect(&addr).await.expect("a");
        until("one served", || service.active_connections() == 1).await;
        // The second is connected by the kernel but not taken.
        let _b = TcpStream::connect(&addr).await.expect("b");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(service.accepted(), 1);
        // The first ends: its slot goes to the second.
        drop(a);
        until("the second served", || service.accepted() == 2).await;
        let report = service.shutdown(Duration::from_millis(50)).await;
        assert_eq!(report.cut, 1);
    }
}
