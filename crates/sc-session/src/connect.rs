//! [`Connector`] and [`Acceptor`]: run the handshake over a tokio transport
//! and hand back a [`SecureStream`].
//!
//! The handshake timeout is kept with tokio's timer, to the millisecond
//! (the core's own [`Connection::handle_timeout`] counts whole seconds and
//! at least one), so the runtime must have its time driver enabled
//! (`enable_time`/`enable_all`, as `#[tokio::main]` does). Randomness comes
//! from the operating system (`OsRng`) and the time from the system clock.
//!
//! A server processes what its clients send during the handshake (parsing,
//! key agreement, checking the client's certificate chain) on tokio's
//! blocking pool, at most [`Acceptor::handshake_threads`] connections at a
//! time, so clients with expensive chains cannot hold up the async workers
//! that serve everyone else. After the handshake everything runs on the
//! task that drives the stream.

use std::future::{poll_fn, Future};
use std::io;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Instant;

use rand_core::OsRng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::{ServerName, UnixTime};
use sc_wire::RouteName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::stream::{SecureStream, SessionInfo, State};
use crate::{Connection, Error, SessionConfig, Side};

/// Opens client sessions: an [`Arc<ClientConfig>`] (whom to trust, whom to
/// present) and the [`SessionConfig`] tuning. Cheap to clone.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use sc_session::Connector;
/// # async fn f(config: Arc<sc_handshake::ClientConfig>) -> Result<(), Box<dyn std::error::Error>> {
/// let connector = Connector::new(config);
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:7000").await?;
/// let name = sc_pki::ServerName::try_from("db.internal")?.to_owned();
/// let mut stream = connector.connect(name, None, tcp).await?;
/// stream.send_message(b"hello").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Connector {
    config: Arc<ClientConfig>,
    session: SessionConfig,
}

/// Accepts server sessions: an [`Arc<ServerConfig>`] (own credential, whom
/// to accept), the [`SessionConfig`] tuning and the bound on handshakes
/// processed at once ([`with_handshake_threads`](Self::with_handshake_threads)).
/// Cheap to clone; clones share the bound.
#[derive(Clone, Debug)]
pub struct Acceptor {
    config: Arc<ServerConfig>,
    session: SessionConfig,
    pool: HandshakePool,
}

/// Where a server processes handshake messages: tokio's blocking pool, at
/// most `threads` connections at a time.
#[derive(Clone, Debug)]
struct HandshakePool {
    threads: usize,
    permits: Arc<Semaphore>,
}

impl HandshakePool {
    fn new(threads: usize) -> Self {
        let threads = threads.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            threads,
            permits: Arc::new(Semaphore::new(threads)),
        }
    }
}

impl Connector {
    /// A connector with the default [`SessionConfig`].
    pub fn new(config: Arc<ClientConfig>) -> Self {
        Self {
            config,
            session: SessionConfig::default(),
        }
    }

    /// Uses `session` (maximum message, padding, handshake timeout…).
    pub fn with_session_config(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// The client configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The session tuning.
    pub fn session_config(&self) -> &SessionConfig {
        &self.session
    }

    /// Runs the client handshake with `server_name` over `io` and returns the
    /// session once it is complete (the server's SecureAck verified).
    ///
    /// `route` is sent in plaintext in the ClientHello, for a relay. The whole
    /// handshake must complete within the session's handshake timeout,
    /// counted from this call; on expiry the timeout alert is sent if the
    /// transport takes it and [`Error::Timeout`] is returned. Transport
    /// failures are [`Error::Io`].
    pub async fn connect<IO>(
        &self,
        server_name: ServerName<'static>,
        route: Option<RouteName>,
        io: IO,
    ) -> Result<SecureStream<IO>, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.start(server_name, route, io, None).await
    }

    /// As [`connect`](Self::connect), with `early_data` (one message) sent in
    /// the client's flight 5, right behind ClientAuth: the server reads it
    /// 2 round trips after the first byte, instead of 3 when it is written
    /// after `connect` returns. At most the maximum message length. The
    /// server has authenticated itself (step 9) before this data is
    /// encrypted and sent.
    ///
    /// The call returns when the handshake is complete; early data the
    /// transport has not yet taken then goes out with the next read, write or
    /// flush.
    pub async fn connect_with_early_data<IO>(
        &self,
        server_name: ServerName<'static>,
        route: Option<RouteName>,
        io: IO,
        early_data: &[u8],
    ) -> Result<SecureStream<IO>, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.start(server_name, route, io, Some(early_data)).await
    }

    async fn start<IO>(
        &self,
        server_name: ServerName<'static>,
        route: Option<RouteName>,
        io: IO,
        early_data: Option<&[u8]>,
    ) -> Result<SecureStream<IO>, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let started = Instant::now();
        let mut conn = Connection::client(
            self.config.clone(),
            server_name,
            route,
            self.session.clone(),
            UnixTime::now(),
            &mut OsRng,
        )?;
        if let Some(data) = early_data {
            conn.send_message(data)?;
        }
        handshake(conn, io, &self.session, started).await
    }
}

impl From<Arc<ClientConfig>> for Connector {
    fn from(config: Arc<ClientConfig>) -> Self {
        Self::new(config)
    }
}

impl Acceptor {
    /// An acceptor with the default [`SessionConfig`], processing at most as
    /// many handshakes at once as the machine has CPUs.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self {
            config,
            session: SessionConfig::default(),
            pool: HandshakePool::new(cpus),
        }
    }

    /// Processes the handshake messages of at most `threads` connections at
    /// once (default: the number of CPUs), on tokio's blocking pool; the
    /// others wait their turn without holding up an async worker. Clones
    /// made after this call share the new bound.
    pub fn with_handshake_threads(mut self, threads: NonZeroUsize) -> Self {
        self.pool = HandshakePool::new(threads.get());
        self
    }

    /// The most connections whose handshake messages are processed at once.
    pub fn handshake_threads(&self) -> usize {
        self.pool.threads
    }

    /// Uses `session` (maximum message, padding, handshake timeout…).
    pub fn with_session_config(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// The server configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// The session tuning.
    pub fn session_config(&self) -> &SessionConfig {
        &self.session
    }

    /// Runs the server handshake over `io` and returns the session once it
    /// is complete and the server's last flight (ServerAuth, SecureAck) has
    /// been written. Application data the client sent in its flight 5 is
    /// already waiting to be read.
    ///
    /// The whole handshake must complete within the session's handshake
    /// timeout, counted from this call; on expiry the timeout alert is sent
    /// if the transport takes it and [`Error::Timeout`] is returned.
    ///
    /// The client's handshake messages are processed on tokio's blocking
    /// pool (see [`with_handshake_threads`](Self::with_handshake_threads)),
    /// so the runtime must be one that has it (any tokio runtime).
    pub async fn accept<IO>(&self, mut io: IO) -> Result<SecureStream<IO>, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let started = Instant::now();
        let conn = Connection::server(self.config.clone(), self.session.clone(), UnixTime::now());
        let mut server = ServerHandshake {
            conn: Some(conn),
            out: Vec::new(),
            out_pos: 0,
            permits: self.pool.permits.clone(),
            work: None,
            started,
        };
        let driven = tokio::time::timeout(
            self.session.handshake_timeout,
            poll_fn(|cx| server.poll_handshake(&mut io, cx)),
        )
        .await;
        match driven {
            Ok(Ok(())) => {
                let conn = server
                    .conn
                    .take()
                    .ok_or(Error::Internal("handshake complete without the connection"))?;
                // Everything sealed has been written (the server is done
                // only then): the stream starts with empty buffers.
                established(State::new(conn), io, started)
            }
            Ok(Err(e)) => Err(e),
            Err(_elapsed) => {
                let Some(conn) = server.conn.as_mut() else {
                    // Its messages are being processed: the connection is
                    // dropped when that is done, without an alert.
                    return Err(Error::Timeout {
                        after: self.session.handshake_timeout,
                    });
                };
                let error = timed_out(conn, &self.session);
                // One try to get the alert out; never wait for it.
                let mut cx = Context::from_waker(Waker::noop());
                let _ = server.poll_write_out(&mut io, &mut cx);
                Err(error)
            }
        }
    }
}

impl From<Arc<ServerConfig>> for Acceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        Self::new(config)
    }
}

/// Drives `conn` over `io` until its handshake completes, within the
/// handshake timeout.
async fn handshake<IO>(
    conn: Connection,
    mut io: IO,
    session: &SessionConfig,
    started: Instant,
) -> Result<SecureStream<IO>, Error>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut state = State::new(conn);
    let driven = tokio::time::timeout(
        session.handshake_timeout,
        poll_fn(|cx| poll_handshake(&mut state, &mut io, cx, started)),
    )
    .await;
    match driven {
        Ok(Ok(())) => established(state, io, started),
        Ok(Err(e)) => Err(e),
        Err(_elapsed) => {
            let error = timed_out(&mut state.conn, session);
            // One try to get the alert out; never wait for it.
            let mut cx = Context::from_waker(Waker::noop());
            let _ = state.poll_write_out(&mut io, &mut cx);
            Err(error)
        }
    }
}

/// The session over `io` once the handshake of `state` is complete.
fn established<IO>(mut state: State, io: IO, started: Instant) -> Result<SecureStream<IO>, Error> {
    let summary = state
        .conn
        .summary()
        .cloned()
        .ok_or(Error::Internal("handshake complete without a summary"))?;
    let side = state.conn.side();
    let took = started.elapsed();
    tracing::debug!(
        target: "sc_session",
        ?side,
        handshake_us = took.as_micros() as u64,
        "session established"
    );
    let trace = state.conn.take_handshake_trace();
    let info = SessionInfo::new(side, summary, took, trace);
    Ok(SecureStream::new(io, state, info))
}

/// The handshake timer has fired: tells the core its deadline has come, so
/// it fails with its timeout error and queues the alert, and returns the
/// error to report.
fn timed_out(conn: &mut Connection, session: &SessionConfig) -> Error {
    // The timer here is the clock.
    let error = match conn.handshake_deadline() {
        Some(deadline) => conn.handle_timeout(deadline).err(),
        None => conn.error().cloned(),
    };
    // Report the timeout this layer measured (to the millisecond); the core
    // counts whole seconds, at least one.
    match error {
        None | Some(Error::Timeout { .. }) => Error::Timeout {
            after: session.handshake_timeout,
        },
        Some(e) => e,
    }
}

/// The server's side of the handshake: as [`poll_handshake`], but what the
/// client sends is processed on the blocking pool, one batch of received
/// bytes at a time, while the connection waits here for its turn.
struct ServerHandshake {
    /// `None` while its received bytes are being processed.
    conn: Option<Connection>,
    /// Sealed bytes not yet taken by the transport: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    permits: Arc<Semaphore>,
    work: Option<Work>,
    /// When `accept` was called: the trace's times count from it.
    started: Instant,
}

/// Received bytes on their way through the blocking pool.
enum Work {
    /// Waiting for a turn (the connection is still here).
    Queued(Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, Error>> + Send>>),
    /// Being processed.
    Running(JoinHandle<(Connection, Result<(), Error>)>),
}

impl ServerHandshake {
    /// Writes everything sealed so far: `Ready(Ok)` once all of it is
    /// written, `Pending` when the transport takes no more for now.
    fn poll_write_out<IO: AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        if let Some(conn) = self.conn.as_mut() {
            conn.write_outgoing(&mut self.out);
        }
        while self.out_pos < self.out.len() {
            match ready!(Pin::new(&mut *io).poll_write(cx, &self.out[self.out_pos..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.out_pos += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// One step: write what is ready, move received bytes through the pool,
    /// read what has come. Done once the handshake is complete and the last
    /// flight written and flushed.
    fn poll_handshake<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        loop {
            if let Some(conn) = self.conn.as_mut() {
                trace_time(conn, self.started);
            }
            let written = self.poll_write_out(io, cx).map_err(Error::from)?;
            match self.work.take() {
                Some(Work::Queued(mut turn)) => {
                    let Poll::Ready(permit) = turn.as_mut().poll(cx) else {
                        self.work = Some(Work::Queued(turn));
                        return Poll::Pending;
                    };
                    let permit = permit?;
                    let mut conn = self
                        .conn
                        .take()
                        .ok_or(Error::Internal("handshake queued without the connection"))?;
                    self.work = Some(Work::Running(tokio::task::spawn_blocking(move || {
                        let result = conn.process_received(UnixTime::now(), &mut OsRng);
                        drop(permit);
                        (conn, result)
                    })));
                    continue;
                }
                Some(Work::Running(mut job)) => {
                    let Poll::Ready(done) = Pin::new(&mut job).poll(cx) else {
                        self.work = Some(Work::Running(job));
                        return Poll::Pending;
                    };
                    let (mut conn, result) =
                        done.map_err(|_| Error::Internal("handshake processing panicked"))?;
                    let result = result.and_then(|()| drive_rekey(&mut conn));
                    self.conn = Some(conn);
                    if let Err(e) = result {
                        // Best effort: the alert the core queued.
                        let _ = self.poll_write_out(io, cx);
                        return Poll::Ready(Err(e));
                    }
                    continue;
                }
                None => {}
            }
            let conn = self
                .conn
                .as_mut()
                .ok_or(Error::Internal("handshake without the connection"))?;
            if !conn.is_handshaking() {
                return match written {
                    Poll::Ready(()) => Pin::new(&mut *io).poll_flush(cx).map_err(Error::from),
                    Poll::Pending => Poll::Pending,
                };
            }
            // What is read now arrives now (the write above may have taken
            // a while).
            trace_time(conn, self.started);
            let buf = conn.receive_buffer();
            let n = match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::from(e))),
                Poll::Pending => {
                    conn.shrink_buffers();
                    return Poll::Pending;
                }
            };
            if n == 0 {
                // A clean end cannot come before the handshake completes.
                let error = conn.receive_eof().err().unwrap_or(Error::Truncated);
                let _ = self.poll_write_out(io, cx);
                return Poll::Ready(Err(error));
            }
            let permits = self.permits.clone();
            self.work = Some(Work::Queued(Box::pin(async move {
                permits
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Internal("handshake pool closed"))
            })));
        }
    }
}

/// Re-keying on the connection's activity, as the stream does after
/// processing received bytes (nothing is due during a handshake).
fn drive_rekey(conn: &mut Connection) -> Result<(), Error> {
    if !conn.has_rekey() {
        return Ok(());
    }
    let now = tokio::time::Instant::now().into_std();
    conn.poll_rekey(now, &mut OsRng).map(drop)
}

/// One step of the handshake: write what is ready, read what has come.
///
/// Reading goes on while a write waits, so neither side can block the other
/// by filling a small transport with a flight (or the client's early data).
/// The client is done as soon as its handshake completes (early data still
/// waiting goes with the next write or flush); the server once its last
/// flight is written too, because the client waits for it.
fn poll_handshake<IO>(
    state: &mut State,
    io: &mut IO,
    cx: &mut Context<'_>,
    started: Instant,
) -> Poll<Result<(), Error>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        trace_time(&mut state.conn, started);
        let written = state.poll_write_out(io, cx).map_err(Error::from)?;
        if !state.conn.is_handshaking() {
            match (state.conn.side(), written) {
                (Side::Client, _) => return Poll::Ready(Ok(())),
                (Side::Server, Poll::Ready(())) => {
                    return std::pin::Pin::new(&mut *io)
                        .poll_flush(cx)
                        .map_err(Error::from);
                }
                (Side::Server, Poll::Pending) => return Poll::Pending,
            }
        }
        // What is read now arrives now (the write above may have taken a
        // while, or the thread been preempted).
        trace_time(&mut state.conn, started);
        match state.poll_fill(io, cx) {
            // A clean end cannot come before the handshake completes (a
            // Close is refused until then); never spin on it.
            Poll::Ready(Ok(0)) if state.conn.is_handshaking() => {
                return Poll::Ready(Err(Error::Truncated))
            }
            Poll::Ready(Ok(_)) => {}
            // The client's handshake completed and the same read brought
            // the session's end (an alert sealed under the new keys right
            // behind SecureAck, say): the session was established, and its
            // first read or write reports the error (the core keeps it).
            // So a caller tells "the handshake failed" from "the server
            // ended the session" however the bytes were cut into reads.
            // (A transport error leaves no error in the core: it fails the
            // connect as before.)
            Poll::Ready(Err(_))
                if state.conn.side() == Side::Client
                    && !state.conn.is_handshaking()
                    && state.conn.summary().is_some()
                    && state.conn.error().is_some() =>
            {
                return Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::from(e))),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// The trace's clock (when the session records one): what was sealed since
/// the last call goes to the transport now, what is read next arrives now.
/// Called before each write and before each read.
fn trace_time(conn: &mut Connection, started: Instant) {
    if conn.handshake_trace().is_some() {
        conn.set_trace_time(started.elapsed());
    }
}
