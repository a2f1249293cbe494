//! A tunnel's data path: bytes both ways between a secure session (or one
//! stream of a session of streams) and a plaintext stream, over the one
//! byte pump of `sc-net` (half-close carried through each way, an idle
//! timeout, byte counts, the reason it ended).
//!
//! ```text
//!  plain read ──▶ the record, sealed in place ──▶ transport   (poll_write_from)
//!  plain write ◀── opened in place (a stream's buffer) ◀── transport   (poll_read_into)
//! ```
//!
//! No copy buffer of the pump's either way: the plaintext socket is read
//! straight into the record that is sealed, and written straight from
//! where the record was opened (for a stream of a session of streams, from
//! the stream's buffer).

use core::fmt;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use sc_net::pump::{self, CloseErrors, DrainInto, End, FillFrom, MoveError, Options, Side};
use sc_net::{io_reason, Secs};
use sc_session::mux::{stream_error, StreamReadHalf, StreamWriteHalf};
use sc_session::streams::StreamError;
use sc_session::{CopyError, IoError, ReadHalf, SecureStream, SessionStream, WriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// How a tunnel ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpliceEnd {
    /// Both directions ended cleanly (end of stream on the plaintext side,
    /// the authenticated close on the secure side).
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle(Duration),
    /// The secure side failed.
    Secure(sc_session::Error),
    /// The stream (of a session of streams) failed: reset, or its session
    /// lost.
    Stream(StreamError),
    /// The plaintext side failed.
    Plain(IoError),
    /// The caller stopped it (a shutdown's grace period ran out).
    Stopped,
}

impl SpliceEnd {
    /// Whether the tunnel was cut rather than closed: the plaintext side must
    /// then not take the end for a clean one (reset it).
    pub fn is_cut(&self) -> bool {
        matches!(self, Self::Secure(_) | Self::Stream(_) | Self::Stopped)
    }
}

impl fmt::Display for SpliceEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("closed"),
            Self::Idle(d) => write!(f, "idle timeout ({})", Secs(*d)),
            Self::Secure(e) | Self::Stream(StreamError::Session(e)) => match e {
                sc_session::Error::Io(io) => {
                    write!(f, "session error: {}", io_reason(io.get_ref()))
                }
                e => write!(f, "session error: {e}"),
            },
            Self::Stream(e) => write!(f, "{e}"),
            Self::Plain(e) => write!(f, "plaintext side error: {}", io_reason(e.get_ref())),
            Self::Stopped => f.write_str("stopped (grace period over)"),
        }
    }
}

/// What a finished tunnel moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpliceReport {
    /// Bytes from the plaintext side into the session.
    pub plain_to_secure: u64,
    /// Bytes from the session to the plaintext side.
    pub secure_to_plain: u64,
    /// How it ended.
    pub end: SpliceEnd,
    /// Re-keys the session completed, for a whole session; 0 for one
    /// stream of a session of streams (the session's keeper counts them).
    pub rekeys: u64,
}

/// The secure side of a tunnel: a whole session, or one stream of a
/// session of streams.
pub trait SecureSide {
    /// Its read half.
    type Read: AsyncRead + Unpin;
    /// Its write half (shutting it down ends our direction: the
    /// authenticated Close, or the stream's Fin).
    type Write: AsyncWrite + Unpin;
    /// Splits it for the two directions of the pump.
    fn into_halves(self) -> (Self::Read, Self::Write);
    /// How a failure of its halves ends the tunnel.
    fn end(error: std::io::Error) -> SpliceEnd;
    /// Re-keys the session completed (0 for a stream: see
    /// [`SpliceReport::rekeys`]).
    fn rekeys(read: &Self::Read) -> u64;
    /// Writes what it opened straight to `to` (its `poll_read_into`).
    fn poll_read_into<W: AsyncWrite + Unpin>(
        read: &mut Self::Read,
        cx: &mut Context<'_>,
        to: &mut W,
    ) -> Poll<Result<usize, CopyError>>;
    /// Reads `from` straight into the record it seals (its
    /// `poll_write_from`).
    fn poll_write_from<R: AsyncRead + Unpin>(
        write: &mut Self::Write,
        cx: &mut Context<'_>,
        from: &mut R,
    ) -> Poll<Result<usize, CopyError>>;
}

impl<S> SecureSide for SecureStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Read = ReadHalf<S>;
    type Write = WriteHalf<S>;

    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }

    fn end(error: std::io::Error) -> SpliceEnd {
        SpliceEnd::Secure(sc_session::Error::from(error))
    }

    fn rekeys(read: &Self::Read) -> u64 {
        read.rekeys_completed()
    }

    fn poll_read_into<W: AsyncWrite + Unpin>(
        read: &mut Self::Read,
        cx: &mut Context<'_>,
        to: &mut W,
    ) -> Poll<Result<usize, CopyError>> {
        read.poll_read_into(cx, to)
    }

    fn poll_write_from<R: AsyncRead + Unpin>(
        write: &mut Self::Write,
        cx: &mut Context<'_>,
        from: &mut R,
    ) -> Poll<Result<usize, CopyError>> {
        write.poll_write_from(cx, from)
    }
}

impl SecureSide for SessionStream {
    type Read = StreamReadHalf;
    type Write = StreamWriteHalf;

    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }

    fn end(error: std::io::Error) -> SpliceEnd {
        match stream_error(&error) {
            Some(e) => SpliceEnd::Stream(e.clone()),
            None => SpliceEnd::Secure(sc_session::Error::from(error)),
        }
    }

    fn rekeys(_: &Self::Read) -> u64 {
        0
    }

    fn poll_read_into<W: AsyncWrite + Unpin>(
        read: &mut Self::Read,
        cx: &mut Context<'_>,
        to: &mut W,
    ) -> Poll<Result<usize, CopyError>> {
        read.poll_read_into(cx, to)
    }

    fn poll_write_from<R: AsyncRead + Unpin>(
        write: &mut Self::Write,
        cx: &mut Context<'_>,
        from: &mut R,
    ) -> Poll<Result<usize, CopyError>> {
        write.poll_write_from(cx, from)
    }
}

/// Which side failed, in the pump's terms (the plaintext side is `a`).
fn moved(e: CopyError) -> MoveError {
    match e {
        CopyError::Plain(e) => MoveError::Passed(e),
        CopyError::Secure(e) => MoveError::Own(e),
    }
}

/// A secure side's read half, as the pump's direct reader.
struct DirectRead<'a, S: SecureSide>(&'a mut S::Read);

/// A secure side's write half, as the pump's direct writer.
struct DirectWrite<'a, S: SecureSide>(&'a mut S::Write);

impl<S: SecureSide> AsyncRead for DirectRead<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: SecureSide> DrainInto for DirectRead<'_, S> {
    fn poll_drain_into<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut W,
    ) -> Poll<Result<usize, MoveError>> {
        S::poll_read_into(self.0, cx, to).map_err(moved)
    }
}

impl<S: SecureSide> AsyncWrite for DirectWrite<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

impl<S: SecureSide> FillFrom for DirectWrite<'_, S> {
    fn poll_fill_from<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
    ) -> Poll<Result<usize, MoveError>> {
        S::poll_write_from(self.0, cx, from).map_err(moved)
    }
}

/// Splices `secure` and `plain` until both directions are done, one side
/// fails, nothing moves for `idle` (if set), or `stop` (if given) is
/// cancelled; the counts are exact in every case.
pub async fn splice<S, P>(
    secure: S,
    plain: P,
    idle: Option<Duration>,
    stop: Option<&CancellationToken>,
) -> SpliceReport
where
    S: SecureSide,
    P: AsyncRead + AsyncWrite + Unpin,
{
    // a = the plaintext side, b = the secure side.
    let (mut read, mut write) = secure.into_halves();
    let report = pump::pump_direct(
        tokio::io::split(plain),
        (DirectRead::<S>(&mut read), DirectWrite::<S>(&mut write)),
        Options {
            idle,
            // The secure side's half-close is its authenticated Close (or
            // its Fin): a failure to send it is a failure of the tunnel.
            close_errors: CloseErrors::Report,
            stop,
            ..Options::default()
        },
    )
    .await;
    let end = match report.end {
        End::Closed { .. } => SpliceEnd::Closed,
        End::Idle(d) => SpliceEnd::Idle(d),
        End::Failed {
            side: Side::A,
            error,
        } => SpliceEnd::Plain(IoError::from(error)),
        End::Failed {
            side: Side::B,
            error,
        } => S::end(error),
        // No answer timeout is set.
        End::NoAnswer(_) | End::Stopped => SpliceEnd::Stopped,
    };
    SpliceReport {
        plain_to_secure: report.a_to_b,
        secure_to_plain: report.b_to_a,
        end,
        rekeys: S::rekeys(&read),
    }
}
