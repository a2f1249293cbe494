//! Sovereign-Chain PKI: Ed25519 keys, certificate issuance and peer
//! certificate verification.
//!
//! * Issuance ([`issue_root`], [`issue_intermediate`], [`issue_leaf`],
//!   [`anonymous_credential`]) uses x509-cert's certificate builder.
//! * Verification ([`WebPkiServerVerifier`], [`WebPkiClientVerifier`]) uses
//!   rustls-webpki for path building, validity, EKU and name checks, with an
//!   Ed25519 signature algorithm on ed25519-dalek (`verify_strict`).
//! * Everything is a pure function of its inputs: the caller passes the time
//!   (`now`) and a random number generator; this crate never reads the clock,
//!   the environment or files.
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
//! assert_eq!(peer.identity.to_string(), "api.internal");
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
mod error;
mod issue;
mod key;
mod pem;
pub mod throwaway;
mod util;
mod verify;

#[cfg(test)]
mod test_util;

pub use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

pub use crate::credential::Credential;
pub use crate::error::{CertError, PkiError};
pub use crate::issue::{
    anonymous_credential, issue_intermediate, issue_leaf, issue_root, Issuer, LeafSpec, Usage,
    Validity, ANONYMOUS_COMMON_NAME, ANONYMOUS_LIFETIME_SECS, VALIDITY_BACKDATE_SECS,
};
pub use crate::key::KeyPair;
pub use crate::pem::{cert_to_pem, certs_from_pem};
pub use crate::verify::{
    ClientCertVerifier, PeerIdentity, ServerCertVerifier, TrustAnchors, VerifiedPeer,
    WebPkiClientVerifier, WebPkiServerVerifier, ANONYMOUS_MAX_LIFETIME_SECS, SUPPORTED_SIG_ALGS,
};
