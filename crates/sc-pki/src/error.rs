//! Error types: [`PkiError`] for key handling and issuance, [`CertError`] for
//! verifying a peer's certificates.

use std::time::Duration;

use rustls_pki_types::UnixTime;

use crate::identity::KeyPin;

/// Why a peer's certificate (chain) was rejected.
///
/// Returned by the [`ServerCertVerifier`](crate::ServerCertVerifier) and
/// [`ClientCertVerifier`](crate::ClientCertVerifier) implementations. Errors
/// from rustls-webpki are mapped onto these variants; anything without a
/// dedicated variant ends up in [`CertError::Other`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The certificate (or the chain) could not be parsed, or the chain is empty.
    #[error("certificate is malformed: {0}")]
    Malformed(String),

    /// The end-entity certificate does not carry an Ed25519 key.
    #[error("only Ed25519 keys are supported")]
    UnsupportedKey,

    /// No path from the certificate to a trusted root was found.
    #[error("certificate issued by an unknown CA")]
    UnknownIssuer,

    /// A certificate of the chain is past its `notAfter` time.
    #[error("certificate expired (valid until {}, now {})", fmt_time(.not_after), fmt_time(.now))]
    Expired {
        /// The `notAfter` time of the expired certificate.
        not_after: UnixTime,
        /// The time the chain was verified at.
        now: UnixTime,
    },

    /// A certificate of the chain is before its `notBefore` time.
    #[error("certificate not valid yet (valid from {}, now {})", fmt_time(.not_before), fmt_time(.now))]
    NotYetValid {
        /// The `notBefore` time of the certificate.
        not_before: UnixTime,
        /// The time the chain was verified at.
        now: UnixTime,
    },

    /// The certificate is not valid for this use: its extended key usage does
    /// not allow it (e.g. a client certificate presented by a server), or a CA
    /// certificate was presented as an end-entity certificate.
    #[error("certificate is not valid for this purpose")]
    WrongPurpose,

    /// The server certificate does not name the server that was dialled.
    #[error("certificate is not valid for '{expected}' (it names: {})", join_names(.presented))]
    NameMismatch {
        /// The name the client expected.
        expected: String,
        /// The DNS and IP subject alternative names of the certificate.
        presented: Vec<String>,
    },

    /// The certificate, or one of its issuers, has been revoked.
    #[error("certificate has been revoked")]
    Revoked,

    /// A signature in the chain does not verify.
    #[error("certificate signature is invalid")]
    BadSignature,

    /// The client presented an anonymous certificate, but the server does not
    /// allow anonymous clients.
    #[error("anonymous clients are not allowed")]
    AnonymousNotAllowed,

    /// A certificate presented as anonymous is not a valid anonymous
    /// certificate (not self-signed, or lifetime too long).
    #[error("invalid anonymous certificate: {0}")]
    InvalidAnonymous(String),

    /// The peer's certificate is valid but the peer is not authorised (for a
    /// client: it is not in the server's allow-list, see
    /// [`ClientPolicy`](crate::ClientPolicy)).
    #[error("peer is not authorised: {0}")]
    NotAuthorised(String),

    /// The server's certificate is valid, but its key is not one of the
    /// pinned keys (see [`WebPkiServerVerifier::with_pins`](crate::WebPkiServerVerifier::with_pins)).
    #[error("certificate key {presented} matches none of the pinned keys")]
    PinMismatch {
        /// The pin of the key the peer presented.
        presented: KeyPin,
    },

    /// The CRL of a certificate's issuer is past its `nextUpdate` time (by
    /// more than the clock-skew allowance): publish a fresh CRL.
    #[error("the issuer's CRL is out of date (next update was due {}, now {})", fmt_time(.next_update), fmt_time(.now))]
    CrlExpired {
        /// The CRL's `nextUpdate` time.
        next_update: UnixTime,
        /// The time the chain was verified at.
        now: UnixTime,
    },

    /// A CRL names a certificate's issuer but its signature does not verify
    /// with the issuer's key (a CRL from another CA of the same name, or a
    /// damaged CRL).
    #[error("the CRL's signature does not verify with its issuer's key")]
    CrlBadSignature,

    /// A CRL for a certificate's issuer cannot be used (e.g. the issuer's key
    /// usage does not allow signing CRLs).
    #[error("the issuer's CRL cannot be used: {0}")]
    CrlInvalid(String),

    /// Any other validation failure; carries the rustls-webpki error's `Debug` text.
    #[error("certificate rejected: {0}")]
    Other(String),
}

/// Errors from key handling, certificate issuance, PEM handling and
/// trust-anchor loading.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    /// The input (key, certificate, PEM) could not be parsed.
    #[error("malformed input: {0}")]
    Malformed(String),

    /// The key is not an Ed25519 key.
    #[error("only Ed25519 keys are supported")]
    UnsupportedKey,

    /// A certificate and a key that should belong together do not.
    #[error("certificate does not match its key")]
    KeyMismatch,

    /// Encoding a certificate, key or PEM document failed.
    #[error("encoding failed: {0}")]
    Encoding(String),

    /// A leaf certificate was requested without any DNS, IP or URI name.
    #[error("a leaf certificate needs at least one subject alternative name (DNS, IP or URI)")]
    NoSubjectAltName,

    /// A name (common name, DNS name, URI) is not acceptable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// No certificate was given or found (empty chain, empty PEM bundle, empty
    /// trust-anchor list).
    #[error("no certificates found")]
    NoCertificates,

    /// A certificate used as an issuer or trust anchor is not a CA certificate.
    #[error("certificate is not a CA certificate (basicConstraints cA is not set)")]
    NotCa,

    /// The issuer's path length constraint forbids issuing another CA below it.
    #[error("the issuer's pathLenConstraint does not allow issuing another CA certificate")]
    PathLenConstraint,

    /// The validity period is empty or not representable in a certificate.
    #[error("invalid validity period: {0}")]
    InvalidValidity(String),

    /// The private key is encrypted and no passphrase was given.
    #[error("the key is encrypted: a passphrase is needed")]
    PassphraseRequired,

    /// An empty passphrase was given to encrypt a private key.
    #[error("the passphrase is empty")]
    EmptyPassphrase,

    /// The passphrase does not decrypt the private key.
    ///
    /// Password-based decryption cannot tell a wrong passphrase from a damaged
    /// ciphertext.
    #[error("wrong passphrase (or damaged key)")]
    WrongPassphrase,

    /// The private key is encrypted with a scheme or parameters this crate does
    /// not support (only PBES2 with PBKDF2 or scrypt and AES-CBC; scrypt
    /// parameters that need more than 1 GiB of memory are refused).
    #[error("unsupported key encryption: {0}")]
    UnsupportedKeyEncryption(String),

    /// A CRL could not be parsed, or uses features rustls-webpki does not
    /// support (e.g. delta CRLs, no `nextUpdate`).
    #[error("malformed CRL: {0}")]
    MalformedCrl(String),

    /// No CRL was found in a PEM document.
    #[error("no CRL found (expected a PEM \"X509 CRL\" block)")]
    NoCrl,

    /// A CA bundle holds no certificate.
    #[error("the CA bundle holds no certificates")]
    EmptyCaBundle,

    /// A key pin is not written as `sha256:<64 hex digits>` or `sha256//<base64>`.
    #[error("invalid key pin {0:?}: expected sha256:<64 hex digits> or sha256//<base64>")]
    InvalidPin(String),

    /// A certificate serial number is not usable (empty, negative, longer than
    /// 20 bytes, or not hexadecimal).
    #[error("invalid serial number: {0}")]
    InvalidSerial(String),

    /// A revocation reason name is not one of [`RevocationReason`](crate::RevocationReason)'s.
    #[error(
        "unknown revocation reason {given:?} (valid: {})",
        crate::RevocationReason::names()
    )]
    UnknownRevocationReason {
        /// The name that was given.
        given: String,
    },

    /// A PEM document holds no block this crate can read.
    #[error("unsupported PEM block {0:?} (expected CERTIFICATE, X509 CRL, PRIVATE KEY or ENCRYPTED PRIVATE KEY)")]
    UnsupportedPem(String),
}

/// Formats a `UnixTime` as an RFC 3339 UTC time, falling back to seconds.
fn fmt_time(time: &UnixTime) -> String {
    match der::DateTime::from_unix_duration(Duration::from_secs(time.as_secs())) {
        Ok(dt) => dt.to_string(),
        Err(_) => format!("{} s after the Unix epoch", time.as_secs()),
    }
}

fn join_names(names: &[String]) -> String {
    if names.is_empty() {
        "no DNS or IP names".to_owned()
    } else {
        names.join(", ")
    }
}

/// Internal result of parsing a certificate: shared by issuance (→ [`PkiError`])
/// and verification (→ [`CertError`]).
#[derive(Debug)]
pub(crate) enum ParseError {
    Malformed(String),
    UnsupportedKey,
}

impl From<ParseError> for PkiError {
    fn from(err: ParseError) -> Self {
        match err {
            ParseError::Malformed(msg) => Self::Malformed(msg),
            ParseError::UnsupportedKey => Self::UnsupportedKey,
        }
    }
}

impl From<ParseError> for CertError {
    fn from(err: ParseError) -> Self {
        match err {
            ParseError::Malformed(msg) => Self::Malformed(msg),
            ParseError::UnsupportedKey => Self::UnsupportedKey,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well() {
        let err = CertError::NameMismatch {
            expected: "db.internal".into(),
            presented: vec!["api.internal".into(), "10.0.0.1".into()],
        };
        assert_eq!(
            err.to_string(),
            "certificate is not valid for 'db.internal' (it names: api.internal, 10.0.0.1)"
        );
        let err = CertError::Expired {
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(0)),
            now: UnixTime::since_unix_epoch(Duration::from_secs(86_400)),
        };
        assert_eq!(
            err.to_string(),
            "certificate expired (valid until 1970-01-01T00:00:00Z, now 1970-01-02T00:00:00Z)"
        );
        assert_eq!(
            PkiError::UnsupportedKey.to_string(),
            "only Ed25519 keys are supported"
        );
        assert_eq!(
            PkiError::KeyMismatch.to_string(),
            "certificate does not match its key"
        );
    }
}
