//! A tunnel's data path: bytes both ways between a secure session (or one
//! stream of a session of streams) and a plaintext stream, over the one
//! byte pump of `sc-net` (half-close carried through each way, an idle
//! timeout, byte counts, the reason it ended).
//!
//! ```text
//!  plain read ──▶ copy buffer ──▶ SecureStream::poll_write (sealed into records)
//!  plain write ◀── copy buffer ◀── SecureStream::poll_read (opened in place)
//! ```

use core::fmt;
use std::time::Duration;

use sc_net::pump::{self, CloseErrors, End, Options, Side};
use sc_net::{io_reason, Secs};
use sc_session::mux::{stream_error, StreamReadHalf, StreamWriteHalf};
use sc_session::streams::StreamError;
use sc_session::{IoError, ReadHalf, SecureStream, SessionStream, WriteHalf};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

pub use sc_net::pump::COPY_BUFFER;

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
    let report = pump::pump(
        tokio::io::split(plain),
        (&mut read, &mut write),
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
