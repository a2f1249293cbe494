//! Handshake errors, by who is at fault, and the one place that maps them to
//! alerts.

use sc_pki::CertError;
use sc_wire::{AlertCode, CipherSuite, HandshakeType, InvalidMessage, ProtocolVersion};

/// Why a handshake failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The peer sent bytes that do not decode.
    #[error("{0}")]
    InvalidMessage(#[from] InvalidMessage),
    /// The peer broke the protocol.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// The peer and we have nothing in common.
    #[error("{0}")]
    PeerIncompatible(#[from] PeerIncompatible),
    /// The peer's certificate was refused.
    #[error("{0}")]
    Certificate(#[from] CertError),
    /// The peer ended the handshake with an alert.
    #[error("peer sent alert: {0}")]
    AlertReceived(AlertCode),
    /// Our own configuration or credential could not be used.
    #[error("local error: {0}")]
    Local(String),
}

/// The peer broke the protocol: what it sent cannot come from a correct peer
/// that saw what we sent (tampering, reordering, replay or a bug).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerMisbehaved {
    /// A message of the wrong type, or one that is out of order.
    #[error("unexpected {got} where {expected} was expected")]
    UnexpectedMessage {
        /// What the state machine expected.
        expected: &'static str,
        /// What arrived.
        got: HandshakeType,
    },
    /// Handshake messages under the wrong protection (e.g. a plaintext record
    /// where an encrypted one was due).
    #[error("{expected} arrived in a {level:?} record")]
    WrongProtection {
        /// What the state machine expected.
        expected: &'static str,
        /// The protection it arrived under.
        level: crate::Level,
    },
    /// A record ended before the flight was complete.
    #[error("flight ended early: {expected} is missing")]
    MissingMessage {
        /// What the state machine expected.
        expected: &'static str,
    },
    /// A record carried more than its flight.
    #[error("extra data after the {after} flight")]
    ExtraMessages {
        /// The last message of the flight.
        after: &'static str,
    },
    /// The server chose a cipher suite the client did not offer (a downgrade attempt).
    #[error("server chose {0}, which was not offered")]
    SuiteNotOffered(CipherSuite),
    /// The server turned on a capability (streams, re-keying) the client
    /// did not offer.
    #[error("server turned on a capability (streams or re-keying) that was not offered")]
    UnofferedCapability,
    /// An X25519 share gave an all-zero secret.
    #[error("invalid X25519 key share")]
    InvalidKeyShare,
    /// An ML-KEM-768 encapsulation key failed the FIPS 203 modulus check.
    #[error("invalid ML-KEM-768 encapsulation key")]
    InvalidEncapsulationKey,
    /// The client certificate hash in SeedCode (step 6) is not ours.
    #[error("SeedCode is bound to a different client certificate")]
    CertificateBindingMismatch,
    /// The server's ClientCertRequest signature (step 4, version 2) did not
    /// verify: the server did not prove it holds its certificate's key, so
    /// the client sends it nothing of its own.
    #[error("ClientCertRequest (step 4) signature is invalid: the server did not prove it holds its certificate's key")]
    ClientCertRequestInvalid,
    /// The server's KeyConfirm1 (step 9: a signature in version 1, a MAC in
    /// version 2) did not verify.
    #[error("KeyConfirm1 (step 9) is invalid")]
    KeyConfirm1Invalid,
    /// The client's KeyConfirm2 MAC (step 10) did not verify.
    #[error("KeyConfirm2 (step 10) MAC is invalid")]
    KeyConfirm2Invalid,
    /// The client's ClientAuth signature (step 11) did not verify.
    #[error("ClientAuth (step 11) signature is invalid")]
    ClientAuthInvalid,
    /// The server's ServerAuth signature (step 12) did not verify.
    #[error("ServerAuth (step 12) signature is invalid")]
    ServerAuthInvalid,
    /// The SecureAck MAC (step 13) did not verify.
    #[error("SecureAck (step 13) is invalid")]
    SecureAckInvalid,
    /// A certified chain in the anonymous slot or the reverse.
    #[error("client certificate kind does not match its content")]
    CertificateKindMismatch,
}

/// The peer and we cannot agree.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerIncompatible {
    /// The peer speaks a protocol version this side does not (or a client
    /// got a version 2 ServerHello without having offered version 2).
    #[error("peer speaks protocol version {0}, which this side does not speak")]
    Version(ProtocolVersion),
    /// The peer speaks only a version older than this side's `min_version`
    /// (a client that does not offer version 2; a server that answers
    /// version 1).
    #[error("peer speaks protocol version {peer}, below this side's minimum {min} (min_version)")]
    VersionBelowMinimum {
        /// The version the peer speaks.
        peer: ProtocolVersion,
        /// This side's configured minimum.
        min: ProtocolVersion,
    },
    /// None of the offered cipher suites is enabled here.
    #[error("no cipher suite in common (offered: {offered:?}, enabled: {enabled:?})")]
    NoCommonCipher {
        /// What the client offered.
        offered: Vec<CipherSuite>,
        /// What this side enables.
        enabled: Vec<CipherSuite>,
    },
    /// We are an anonymous client and the server does not accept anonymous clients.
    #[error("the server does not accept anonymous clients; use a client certificate")]
    AnonymousNotAllowed,
}

impl Error {
    /// The alert that tells the peer why we are ending the connection.
    pub fn alert(&self) -> AlertCode {
        match self {
            Self::InvalidMessage(InvalidMessage::TooLong { .. }) => AlertCode::TOO_LARGE,
            Self::InvalidMessage(_) => AlertCode::MALFORMED,
            Self::PeerMisbehaved(p) => match p {
                PeerMisbehaved::UnexpectedMessage { .. }
                | PeerMisbehaved::WrongProtection { .. }
                | PeerMisbehaved::MissingMessage { .. }
                | PeerMisbehaved::ExtraMessages { .. } => AlertCode::UNEXPECTED_MESSAGE,
                PeerMisbehaved::SuiteNotOffered(_)
                | PeerMisbehaved::UnofferedCapability
                | PeerMisbehaved::InvalidKeyShare
                | PeerMisbehaved::InvalidEncapsulationKey
                | PeerMisbehaved::CertificateKindMismatch => AlertCode::ILLEGAL_PARAMETER,
                _ => AlertCode::HANDSHAKE_FAILURE,
            },
            Self::PeerIncompatible(p) => match p {
                PeerIncompatible::Version(_) | PeerIncompatible::VersionBelowMinimum { .. } => {
                    AlertCode::PROTOCOL_VERSION
                }
                PeerIncompatible::NoCommonCipher { .. } => AlertCode::NO_COMMON_CIPHER,
                PeerIncompatible::AnonymousNotAllowed => AlertCode::ANONYMOUS_NOT_ALLOWED,
            },
            Self::Certificate(c) => cert_alert(c),
            Self::AlertReceived(_) | Self::Local(_) => AlertCode::INTERNAL_ERROR,
        }
    }
}

/// The alert for a refused certificate.
pub fn cert_alert(e: &CertError) -> AlertCode {
    match e {
        CertError::UnknownIssuer => AlertCode::UNKNOWN_ISSUER,
        CertError::Expired { .. } => AlertCode::CERTIFICATE_EXPIRED,
        CertError::NotYetValid { .. } => AlertCode::CERTIFICATE_NOT_YET_VALID,
        CertError::Revoked => AlertCode::CERTIFICATE_REVOKED,
        CertError::NameMismatch { .. } => AlertCode::NAME_MISMATCH,
        CertError::WrongPurpose => AlertCode::WRONG_PURPOSE,
        CertError::UnsupportedKey => AlertCode::UNSUPPORTED_CERTIFICATE,
        CertError::NotAuthorised(_) | CertError::PinMismatch { .. } => AlertCode::NOT_AUTHORISED,
        CertError::AnonymousNotAllowed => AlertCode::ANONYMOUS_NOT_ALLOWED,
        _ => AlertCode::BAD_CERTIFICATE,
    }
}
