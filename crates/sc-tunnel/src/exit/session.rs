//! What happens to an established session: echo, or a tunnel to a backend.

use core::fmt;
use std::io;
use std::time::{Duration, Instant};

use sc_net::{Endpoint, Replay, Secs, Stream};
use sc_session::SecureStream;
use sc_wire::AlertCode;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::settings::{Limits, BACKEND_CONNECT_TIMEOUT};
use crate::splice::{splice, SpliceEnd};

/// A client's connection as the server has it: the bytes read while
/// waiting for the ClientHello come first again.
pub(crate) type Inbound = Replay<Stream>;

/// Longest wait for a closing alert or Close to be written.
pub(crate) const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the echo server puts before each message.
const ECHO_PREFIX: &[u8] = b"echo: ";

/// Why a session ended (the `reason` of its log line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    /// The client closed (authenticated Close) and we answered with ours.
    Closed,
    /// Nothing came for the idle timeout.
    Idle(Duration),
    /// The grace period of a shutdown ran out.
    Shutdown,
    /// The client stopped reading our answers.
    WriteStalled(Duration),
    /// The backend could not be reached or failed.
    Backend(String),
    /// The session failed (the client's alert, a protocol error, a cut
    /// connection).
    Failed(String),
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("closed"),
            Self::Idle(d) => write!(f, "idle timeout ({})", Secs(*d)),
            Self::Shutdown => f.write_str("server shutting down (grace period over)"),
            Self::WriteStalled(d) => {
                write!(f, "client stopped reading (nothing taken for {})", Secs(*d))
            }
            Self::Backend(why) | Self::Failed(why) => f.write_str(why),
        }
    }
}

/// Application bytes a session moved.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    /// From the client (to the backend, for a tunnel).
    pub(crate) bytes_in: u64,
    /// To the client.
    pub(crate) bytes_out: u64,
    /// Re-keys the session completed (a single stream's; a session of
    /// streams counts its own).
    pub(crate) rekeys: u64,
}

fn failed(e: &sc_session::Error) -> SessionEnd {
    SessionEnd::Failed(match e {
        sc_session::Error::PeerAlert(code) => format!("client sent alert: {code}"),
        sc_session::Error::Truncated => {
            "client disconnected without closing the session (possible truncation)".into()
        }
        sc_session::Error::Io(io) => {
            format!("connection lost: {}", sc_net::io_reason(io.get_ref()))
        }
        other => other.to_string(),
    })
}

/// Sends an alert, waiting at most [`CLOSE_WRITE_TIMEOUT`].
pub(crate) async fn abort(stream: &mut SecureStream<Inbound>, code: AlertCode) {
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, stream.abort(code)).await;
}

/// Answers every message `m` with `echo: m` until the client closes, goes
/// quiet for the idle timeout, or the server shuts down. Sends a KeepAlive
/// when it has sent nothing for the keepalive interval.
pub(crate) async fn echo(
    stream: &mut SecureStream<Inbound>,
    limits: &Limits,
    hard_stop: &CancellationToken,
    counts: &mut Counts,
) -> SessionEnd {
    enum Event {
        Stop,
        Message(Result<Option<Vec<u8>>, sc_session::Error>),
        Timer,
    }
    let mut seen_rx = stream.stats().bytes_received;
    let mut last_rx = Instant::now();
    let mut last_tx = Instant::now();
    loop {
        let wake = [
            limits.idle_timeout.map(|d| last_rx + d),
            limits.keepalive.map(|d| last_tx + d),
        ]
        .into_iter()
        .flatten()
        .min();
        let timer = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            biased;
            _ = hard_stop.cancelled() => Event::Stop,
            r = stream.recv_message() => Event::Message(r),
            _ = timer => Event::Timer,
        };
        match event {
            Event::Stop => {
                abort(stream, AlertCode::GOING_AWAY).await;
                return SessionEnd::Shutdown;
            }
            Event::Message(Ok(Some(msg))) => {
                counts.bytes_in += msg.len() as u64;
                last_rx = Instant::now();
                seen_rx = stream.stats().bytes_received;
                let max = limits.max_message;
                if msg.len() + ECHO_PREFIX.len() > max {
                    abort(stream, AlertCode::TOO_LARGE).await;
                    return SessionEnd::Failed(format!(
                        "message of {} bytes too large to echo (the answer may be at most {max} bytes)",
                        msg.len()
                    ));
                }
                let answer = [ECHO_PREFIX, &msg[..]].concat();
                drop(msg);
                if let Err(end) =
                    bounded_write(stream.send_message(&answer), limits, hard_stop).await
                {
                    return end;
                }
                counts.bytes_out += answer.len() as u64;
                last_tx = Instant::now();
            }
            Event::Message(Ok(None)) => {
                // The client's Close: answer with ours (its reader ends cleanly).
                let _ = tokio::time::timeout(
                    CLOSE_WRITE_TIMEOUT,
                    tokio::io::AsyncWriteExt::shutdown(stream),
                )
                .await;
                return SessionEnd::Closed;
            }
            Event::Message(Err(e)) => return failed(&e),
            Event::Timer => {
                let rx = stream.stats().bytes_received;
                if rx != seen_rx {
                    // A KeepAlive (or part of a message) came in: not idle.
                    seen_rx = rx;
                    last_rx = Instant::now();
                }
                if let Some(idle) = limits.idle_timeout {
                    if last_rx.elapsed() >= idle {
                        abort(stream, AlertCode::TIMEOUT).await;
                        return SessionEnd::Idle(idle);
                    }
                }
                if let Some(every) = limits.keepalive {
                    if last_tx.elapsed() >= every {
                        if let Err(end) =
                            bounded_write(stream.send_keepalive(), limits, hard_stop).await
                        {
                            return end;
                        }
                        last_tx = Instant::now();
                    }
                }
            }
        }
    }
}

/// A write to the client, ended by a shutdown and, if the client stops
/// reading for the idle timeout, given up.
async fn bounded_write(
    write: impl core::future::Future<Output = Result<(), sc_session::Error>>,
    limits: &Limits,
    hard_stop: &CancellationToken,
) -> Result<(), SessionEnd> {
    let bounded = async {
        match limits.idle_timeout {
            Some(d) => tokio::time::timeout(d, write)
                .await
                .map_err(|_| SessionEnd::WriteStalled(d)),
            None => Ok(write.await),
        }
    };
    tokio::select! {
        biased;
        _ = hard_stop.cancelled() => Err(SessionEnd::Shutdown),
        r = bounded => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(failed(&e)),
            Err(end) => Err(end),
        },
    }
}

/// The tunnel exit: connects to `backend`, sends it `proxy_header` if there
/// is one (an error: the session fails), and splices the session with it. If the backend cannot be
/// reached the client gets the `no route` alert.
pub(crate) async fn forward(
    mut stream: SecureStream<Inbound>,
    backend: &Endpoint,
    proxy_header: Option<Result<Vec<u8>, String>>,
    limits: &Limits,
    hard_stop: &CancellationToken,
    counts: &mut Counts,
) -> SessionEnd {
    let proxy_header = match proxy_header.transpose() {
        Ok(h) => h,
        Err(why) => {
            abort(&mut stream, AlertCode::INTERNAL_ERROR).await;
            return SessionEnd::Failed(why);
        }
    };
    let connected = tokio::select! {
        biased;
        _ = hard_stop.cancelled() => {
            abort(&mut stream, AlertCode::GOING_AWAY).await;
            return SessionEnd::Shutdown;
        }
        r = connect_backend(backend, proxy_header.as_deref()) => r,
    };
    let plain = match connected {
        Ok(plain) => plain,
        Err(why) => {
            abort(&mut stream, AlertCode::NO_ROUTE).await;
            return SessionEnd::Backend(why);
        }
    };
    let mut plain = plain;
    let report = splice(stream, &mut plain, limits.idle_timeout, Some(hard_stop)).await;
    counts.bytes_in = report.secure_to_plain;
    counts.bytes_out = report.plain_to_secure;
    counts.rekeys = report.rekeys;
    // A session that failed (possibly cut) or was cut by the shutdown: the
    // backend must not take it for a clean end.
    if report.end.is_cut() {
        plain.reset_on_close();
    }
    match report.end {
        SpliceEnd::Stopped => SessionEnd::Shutdown,
        SpliceEnd::Closed => SessionEnd::Closed,
        SpliceEnd::Idle(d) => SessionEnd::Idle(d),
        SpliceEnd::Plain(e) => SessionEnd::Backend(format!(
            "backend {backend}: {}",
            sc_net::io_reason(e.get_ref())
        )),
        SpliceEnd::Secure(e) => failed(&e),
        SpliceEnd::Stream(e) => SessionEnd::Failed(e.to_string()),
    }
}

/// Connects to `backend` (within [`BACKEND_CONNECT_TIMEOUT`]) and sends it
/// `proxy_header`, if any; the error is one line naming the backend.
pub(crate) async fn connect_backend(
    backend: &Endpoint,
    proxy_header: Option<&[u8]>,
) -> Result<Stream, String> {
    let connect = tokio::time::timeout(BACKEND_CONNECT_TIMEOUT, async {
        let mut plain = backend.connect().await?;
        if let Some(header) = proxy_header {
            plain.write_all(header).await?;
        }
        Ok::<_, io::Error>(plain)
    });
    match connect.await {
        Ok(Ok(plain)) => Ok(plain),
        Ok(Err(e)) => Err(backend_failure(backend, &e)),
        Err(_) => Err(format!(
            "backend {backend} did not accept the connection within {}",
            Secs(BACKEND_CONNECT_TIMEOUT)
        )),
    }
}

/// `backend 127.0.0.1:6379 refused the connection`, and the like.
pub(crate) fn backend_failure(backend: &Endpoint, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => format!("backend {backend} refused the connection"),
        io::ErrorKind::NotFound => format!("backend {backend} does not exist (no such socket)"),
        io::ErrorKind::PermissionDenied => {
            format!("backend {backend}: permission denied")
        }
        io::ErrorKind::TimedOut => format!("backend {backend} did not answer (timed out)"),
        _ => format!("backend {backend}: {}", sc_net::io_reason(e)),
    }
}
