//! Session errors, their alerts, and their place inside [`std::io::Error`].

use std::io;
use std::sync::Arc;

use sc_wire::{AlertCode, InvalidMessage};

/// Why a session failed or refused a call.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] sc_handshake::Error),
    /// A record or its content does not decode.
    #[error("{0}")]
    InvalidMessage(#[from] InvalidMessage),
    /// A sealed record failed to authenticate: it was tampered with, replayed,
    /// reordered, or a record before it was dropped.
    #[error("bad record: authentication failed (tampered, replayed, reordered or dropped record)")]
    DecryptFailed,
    /// A record that is not allowed at this point.
    #[error("unexpected {what}")]
    UnexpectedRecord {
        /// What arrived.
        what: &'static str,
    },
    /// A message larger than the configured maximum.
    #[error("too large: message of {len}+ bytes, the maximum is {max}")]
    MessageTooLarge {
        /// Bytes of the message so far.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The peer ended the session with an alert.
    #[error("peer sent alert: {0}")]
    PeerAlert(AlertCode),
    /// The connection ended without the peer's authenticated close: data may
    /// have been cut off.
    #[error("connection closed by peer without an authenticated close (possible truncation)")]
    Truncated,
    /// The handshake did not complete in time.
    #[error("timeout: handshake not complete after {after:?}")]
    Timeout {
        /// The configured timeout.
        after: std::time::Duration,
    },
    /// A send after our own close.
    #[error("session already closed for sending")]
    Closed,
    /// The peer closed a session of streams (its authenticated Close): the
    /// session's clean end, and a cut for every stream still open then.
    #[error("closed by the peer (streams still open were cut)")]
    PeerClosed,
    /// More data queued before the handshake completed than allowed.
    #[error("too large: {max} bytes already queued before the handshake completed")]
    QueueFull {
        /// The limit.
        max: usize,
    },
    /// We ended the session ourselves with this alert (see
    /// [`Connection::abort`](crate::Connection::abort)).
    #[error("session ended locally: {0}")]
    Aborted(AlertCode),
    /// A failure on our side.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// The peer broke the rules of a session's streams (SPEC §14); the
    /// session ends with `alert`.
    #[error("stream protocol violation: {what}")]
    StreamViolation {
        /// The alert that names the fault (flow control, stream state, too
        /// large, malformed).
        alert: AlertCode,
        /// What happened.
        what: String,
    },
    /// A re-key failed or was refused (SPEC §15).
    #[error("re-key failed: {0}")]
    Rekey(RekeyError),
    /// The transport failed (a socket error). Reported by the I/O layer; the
    /// sans-I/O core never produces it.
    #[error("I/O error: {0}")]
    Io(IoError),
}

/// Why a re-key failed (SPEC §15.5).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RekeyError {
    /// The peer's RekeyInit or RekeyReply signature does not verify under
    /// its identity key.
    #[error("the peer's re-key signature does not verify")]
    BadSignature,
    /// The peer's X25519 share or ML-KEM-768 key is invalid.
    #[error("the peer's re-key share is invalid")]
    BadShare,
    /// Our RekeyInit went unanswered.
    #[error("timeout: the peer left our re-key unanswered for {after:?}")]
    Unanswered {
        /// How long we waited.
        after: std::time::Duration,
    },
    /// The peer's RekeySwitch did not follow our RekeyReply.
    #[error("timeout: no RekeySwitch from the peer {after:?} after our RekeyReply")]
    NoSwitch {
        /// How long we waited.
        after: std::time::Duration,
    },
    /// The peer went on past twice the volume limit of an epoch without
    /// re-keying.
    #[error("re-key required: the peer sent {records} records ({bytes} bytes) in one epoch, over twice the limit")]
    Required {
        /// Records the peer sent in the epoch.
        records: u64,
        /// Bytes the peer sent in the epoch.
        bytes: u64,
    },
}

impl RekeyError {
    /// The alert that names this failure.
    pub fn alert(&self) -> AlertCode {
        match self {
            Self::BadSignature => AlertCode::HANDSHAKE_FAILURE,
            Self::BadShare => AlertCode::ILLEGAL_PARAMETER,
            Self::Unanswered { .. } | Self::NoSwitch { .. } => AlertCode::TIMEOUT,
            Self::Required { .. } => AlertCode::REKEY_REQUIRED,
        }
    }
}

/// An [`io::Error`] of the transport, shareable so that [`Error`] stays
/// `Clone + PartialEq`. Two are equal when their kinds and messages are.
#[derive(Clone, Debug)]
pub struct IoError(Arc<io::Error>);

impl IoError {
    /// The kind of the underlying error.
    pub fn kind(&self) -> io::ErrorKind {
        self.0.kind()
    }

    /// The underlying error.
    pub fn get_ref(&self) -> &io::Error {
        &self.0
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for IoError {}

impl core::fmt::Display for IoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<io::Error> for IoError {
    fn from(e: io::Error) -> Self {
        Self(Arc::new(e))
    }
}

impl Error {
    /// The alert that tells the peer why we end the session, or `None` when
    /// no alert is due (the peer already ended it).
    pub fn alert(&self) -> Option<AlertCode> {
        Some(match self {
            Self::Handshake(sc_handshake::Error::AlertReceived(_)) | Self::PeerAlert(_) => {
                return None
            }
            Self::Truncated | Self::Closed | Self::PeerClosed | Self::Aborted(_) | Self::Io(_) => {
                return None
            }
            Self::Handshake(e) => e.alert(),
            Self::InvalidMessage(InvalidMessage::TooLong { .. }) => AlertCode::TOO_LARGE,
            Self::InvalidMessage(_) => AlertCode::MALFORMED,
            Self::DecryptFailed => AlertCode::BAD_RECORD,
            Self::UnexpectedRecord { .. } => AlertCode::UNEXPECTED_MESSAGE,
            Self::MessageTooLarge { .. } | Self::QueueFull { .. } => AlertCode::TOO_LARGE,
            Self::Timeout { .. } => AlertCode::TIMEOUT,
            Self::Internal(_) => AlertCode::INTERNAL_ERROR,
            Self::StreamViolation { alert, .. } => *alert,
            Self::Rekey(e) => e.alert(),
        })
    }

    /// The [`io::ErrorKind`] this error has inside an [`io::Error`]:
    /// `UnexpectedEof` for [`Truncated`](Self::Truncated),
    /// `ConnectionAborted` for an alert (the peer's or ours), `TimedOut` for
    /// the handshake timeout, `BrokenPipe` for a send after our own close,
    /// the transport's own kind for [`Io`](Self::Io), `Other` for an internal
    /// error and `InvalidData` for every protocol failure.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Self::Truncated => io::ErrorKind::UnexpectedEof,
            Self::PeerAlert(_)
            | Self::Handshake(sc_handshake::Error::AlertReceived(_))
            | Self::Aborted(_) => io::ErrorKind::ConnectionAborted,
            Self::Timeout { .. }
            | Self::Rekey(RekeyError::Unanswered { .. } | RekeyError::NoSwitch { .. }) => {
                io::ErrorKind::TimedOut
            }
            Self::Closed => io::ErrorKind::BrokenPipe,
            Self::PeerClosed => io::ErrorKind::ConnectionReset,
            Self::Io(e) => e.kind(),
            Self::Internal(_) => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidData,
        }
    }

    /// The session error inside an [`io::Error`] returned by the I/O layer
    /// (for example by `AsyncRead::poll_read` of a secure stream), if it
    /// carries one.
    ///
    /// ```
    /// # use sc_session::Error;
    /// let io_err = std::io::Error::from(Error::Truncated);
    /// assert_eq!(io_err.kind(), std::io::ErrorKind::UnexpectedEof);
    /// assert_eq!(Error::from_io_error(&io_err), Some(&Error::Truncated));
    /// ```
    pub fn from_io_error(e: &io::Error) -> Option<&Error> {
        e.get_ref()?.downcast_ref::<Error>()
    }
}

/// An [`io::Error`] of kind [`Error::io_kind`] carrying the session error:
/// get it back with [`Error::from_io_error`], `get_ref`/`into_inner` and
/// `downcast`, or `Error::from`. A transport error ([`Error::Io`]) becomes the
/// original `io::Error` again where it is not shared.
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(IoError(inner)) => match Arc::try_unwrap(inner) {
                Ok(original) => original,
                Err(shared) => io::Error::new(shared.kind(), Error::Io(IoError(shared))),
            },
            other => io::Error::new(other.io_kind(), other),
        }
    }
}

/// The session error an [`io::Error`] carries, or [`Error::Io`] for a plain
/// transport error.
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match Error::from_io_error(&e) {
            Some(inner) => inner.clone(),
            None => Error::Io(IoError::from(e)),
        }
    }
}
