//! Sovereign-Chain PKI: Ed25519 keys, certificate issuance and peer
//! certificate verification.
//!
//! * Issuance ([`issue_root`], [`issue_intermediate`], [`issue_leaf`],
//!   [`anonymous_credential`]) uses x509-cert's certificate builder.
//! * Verification ([`WebPkiServerVerifier`], [`WebPkiClientVerifier`]) uses
//!   rustls-webpki for path building, validity, EKU and name checks, with an
//!   Ed25519 signature algorithm on ed25519-dalek (`verify_strict`).
//! * Revocation: [`issue_crl`] makes RFC 5280 v2 CRLs (x509-cert's `crl`
//!   types); the verifiers check them with rustls-webpki
//!   ([`WebPkiServerVerifier::with_crls`]).
//! * Policy: a clock-skew allowance ([`DEFAULT_CLOCK_SKEW`], 60 s), server key
//!   pins ([`KeyPin`], [`WebPkiServerVerifier::with_pins`]) and the server's
//!   client allow-list ([`ClientPolicy`] of typed [`AllowEntry`]s: `dns:`,
//!   `uri:`, `ip:`, `cn:`, optionally tied to one trust anchor).
//! * Keys: PKCS#8, plain or encrypted under a passphrase (PBES2, scrypt +
//!   AES-256-CBC; [`KeyPair::to_encrypted_pkcs8_pem`], [`KeyPair::from_pem`]).
//! * Requests: [`make_request_pem`] makes a PKCS#10 request on the host that
//!   keeps the key; [`CertRequest::from_pem_or_der`] checks one (OpenSSL's
//!   too) for the CA, which issues for its key with names of its own.
//! * Inspection for people ([`inspect_pem`], [`cert_info`]) and credential
//!   snapshots a server can rebuild on reload ([`ServerCredentials`],
//!   [`ClientCredentials`]).
//! * Everything is a pure function of its inputs: the caller passes the time
//!   (`now`) and a random number generator; this crate never reads the clock,
//!   the environment or files.
//!
//! # Validation policy
//!
//! A peer's chain is accepted if it leads to one of the trust anchors, every
//! certificate is valid at some one time within `now ± clock skew`, the leaf
//! carries the purpose (EKU serverAuth / clientAuth) and, for a server, the
//! name that was dialled. With CRLs, every certificate below the anchor is
//! looked up in its issuer's CRL: revoked is refused; no CRL for that issuer
//! is allowed (unknown status); a CRL past its `nextUpdate` is refused. Then
//! a server's key must match a pin, if pins are set, and a client must pass
//! the [`ClientPolicy`]. Anonymous clients are refused unless allowed, and are
//! then authenticated only as their key.
//!
//! A verifier remembers the chain and CRL signature checks that succeeded
//! (at most [`DEFAULT_SIGNATURE_CACHE`] by default; see
//! [`WebPkiServerVerifier::with_signature_cache`]), so a chain seen again
//! costs no Ed25519 verification. A check is a pure function of key,
//! message and signature and a failure is never remembered, so this changes
//! no decision.
//!
//! ```text
//!  issue_root ──► root ──► TrustAnchors ──► WebPki{Server,Client}Verifier
//!                   │                                 ▲
//!  issue_leaf ◄─────┘ (Issuer)                        │ chain, name, now
//!      │                                              │
//!      └──► Credential { chain, key } ── handshake ───┘──► VerifiedPeer
//! ```
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use rand_chacha::rand_core::SeedableRng;
//! use sc_pki::{
//!     issue_leaf, issue_root, Credential, Issuer, KeyPair, LeafSpec, ServerCertVerifier,
//!     ServerName, TrustAnchors, UnixTime, Validity, WebPkiServerVerifier,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
//! let now = UnixTime::since_unix_epoch(Duration::from_secs(1_750_000_000));
//!
//! // A root CA.
//! let ca_key = KeyPair::generate(&mut rng);
//! let root = issue_root(&ca_key, "Example Root CA", Validity::days_from(now, 3650), &mut rng)?;
//!
//! // A server certificate for api.internal, signed by the root.
//! let server_key = KeyPair::generate(&mut rng);
//! let issuer = Issuer { cert: &root, key: &ca_key };
//! let leaf = issue_leaf(
//!     &issuer,
//!     &server_key.public_key(),
//!     &LeafSpec::server("api.internal"),
//!     Validity::days_from(now, 90),
//!     &mut rng,
//! )?;
//! let server = Credential::new(vec![leaf], server_key)?;
//!
//! // The client verifies the chain the server presents.
//! let verifier = WebPkiServerVerifier::new(TrustAnchors::from_der(&[root])?);
//! let name = ServerName::try_from("api.internal")?;
//! let peer = verifier.verify_server(server.chain(), &name, now)?;
//! assert_eq!(peer.public_key, server.public_key());
//! assert_eq!(peer.identity.to_string(), "dns:api.internal");
//!
//! // The same chain does not prove another name.
//! let other = ServerName::try_from("db.internal")?;
//! assert!(verifier.verify_server(server.chain(), &other, now).is_err());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod cert;
mod credential;
mod crl;
mod error;
mod identity;
mod inspect;
mod issue;
mod key;
mod pem;
mod pin;
mod request;
mod snapshot;
pub mod throwaway;
mod util;
mod verify;

#[cfg(test)]
mod test_util;

pub use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};

pub use crate::credential::Credential;
pub use crate::crl::{
    cert_serial, crl_to_pem, crls_from_pem, issue_crl, serial_from_hex, RevocationReason,
    RevokedEntry,
};
pub use crate::error::{CertError, PkiError};
pub use crate::identity::{AllowEntry, AllowedName, KeyPin, NameKind, PeerIdentity, VerifiedPeer};
pub use crate::inspect::{cert_info, inspect_pem, CertInfo, CrlInfo, KeyInfo, PemContents};
pub use crate::issue::{
    anonymous_credential, issue_intermediate, issue_leaf, issue_root, Issuer, LeafSpec, Usage,
    Validity, ANONYMOUS_COMMON_NAME, ANONYMOUS_LIFETIME_SECS, VALIDITY_BACKDATE_SECS,
};
pub use crate::key::{KeyPair, KEY_SCRYPT_LOG_N, KEY_SCRYPT_P, KEY_SCRYPT_R};
pub use crate::pem::{cert_to_pem, certs_from_pem};
pub use crate::request::{make_request_pem, CertRequest, RequestError};
pub use crate::snapshot::{ClientCredentials, CredentialStore, ServerCredentials};
pub use crate::verify::{
    ClientCertVerifier, ClientPolicy, ServerCertVerifier, TrustAnchors, WebPkiClientVerifier,
    WebPkiServerVerifier, ANONYMOUS_MAX_LIFETIME_SECS, DEFAULT_CLOCK_SKEW, DEFAULT_SIGNATURE_CACHE,
    SUPPORTED_SIG_ALGS,
};
