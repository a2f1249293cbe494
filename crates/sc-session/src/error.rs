//! Session errors and their alerts.

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
    #[error("timeout: handshake not complete after {secs} s")]
    Timeout {
        /// The configured timeout.
        secs: u64,
    },
    /// A send after our own close.
    #[error("session already closed for sending")]
    Closed,
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
}

impl Error {
    /// The alert that tells the peer why we end the session, or `None` when
    /// no alert is due (the peer already ended it).
    pub fn alert(&self) -> Option<AlertCode> {
        Some(match self {
            Self::Handshake(sc_handshake::Error::AlertReceived(_)) | Self::PeerAlert(_) => {
                return None
            }
            Self::Truncated | Self::Closed | Self::Aborted(_) => return None,
            Self::Handshake(e) => e.alert(),
            Self::InvalidMessage(InvalidMessage::TooLong { .. }) => AlertCode::TOO_LARGE,
            Self::InvalidMessage(_) => AlertCode::MALFORMED,
            Self::DecryptFailed => AlertCode::BAD_RECORD,
            Self::UnexpectedRecord { .. } => AlertCode::UNEXPECTED_MESSAGE,
            Self::MessageTooLarge { .. } | Self::QueueFull { .. } => AlertCode::TOO_LARGE,
            Self::Timeout { .. } => AlertCode::TIMEOUT,
            Self::Internal(_) => AlertCode::INTERNAL_ERROR,
        })
    }
}
