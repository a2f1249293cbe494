//! [`Connector`] and [`Acceptor`]: run the handshake over a tokio transport
//! and hand back a [`SecureStream`].
//!
//! The handshake timeout is kept with tokio's timer, to the millisecond
//! (the core's own [`Connection::handle_timeout`] counts whole seconds and
//! at least one), so the runtime must have its time driver enabled
//! (`enable_time`/`enable_all`, as `#[tokio::main]` does). Randomness comes
//! from the operating system (`OsRng`) and the time from the system clock.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use rand_core::OsRng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::{ServerName, UnixTime};
use sc_wire::RouteName;
use tokio::io::{AsyncRead, AsyncWrite};

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
/// to accept) and the [`SessionConfig`] tuning. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Acceptor {
    config: Arc<ServerConfig>,
    session: SessionConfig,
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
    /// An acceptor with the default [`SessionConfig`].
    pub fn new(config: Arc<ServerConfig>) -> Self {
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
    pub async fn accept<IO>(&self, io: IO) -> Result<SecureStream<IO>, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let started = Instant::now();
        let conn = Connection::server(self.config.clone(), self.session.clone(), UnixTime::now());
        handshake(conn, io, &self.session, started).await
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
        poll_fn(|cx| poll_handshake(&mut state, &mut io, cx)),
    )
    .await;
    match driven {
        Ok(Ok(())) => {
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
            let info = SessionInfo::new(side, summary, took);
            Ok(SecureStream::new(io, state, info))
        }
        Ok(Err(e)) => Err(e),
        Err(_elapsed) => {
            // The timer here is the clock: tell the core its deadline has
            // come, so it fails with its timeout error and queues the alert.
            let error = match state.conn.handshake_deadline() {
                Some(deadline) => state.conn.handle_timeout(deadline).err(),
                None => state.conn.error().cloned(),
            };
            // Report the timeout this layer measured (to the millisecond);
            // the core counts whole seconds, at least one.
            let error = match error {
                None | Some(Error::Timeout { .. }) => Error::Timeout {
                    after: session.handshake_timeout,
                },
                Some(e) => e,
            };
            // One try to get the alert out; never wait for it.
            let mut cx = Context::from_waker(Waker::noop());
            let _ = state.poll_write_out(&mut io, &mut cx);
            Err(error)
        }
    }
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
) -> Poll<Result<(), Error>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    loop {
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
        match state.poll_fill(io, cx) {
            // A clean end cannot come before the handshake completes (a
            // Close is refused until then); never spin on it.
            Poll::Ready(Ok(0)) if state.conn.is_handshaking() => {
                return Poll::Ready(Err(Error::Truncated))
            }
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::from(e))),
            Poll::Pending => return Poll::Pending,
        }
    }
}
