//! Verifying a peer's certificates with rustls-webpki.
//!
//! * `anchors`: the trusted CAs ([`TrustAnchors`]).
//! * `ed25519`: the signature algorithm for rustls-webpki ([`SUPPORTED_SIG_ALGS`]).
//! * `cache`: the successful chain and CRL signature checks a verifier
//!   remembers across verifications ([`DEFAULT_SIGNATURE_CACHE`] of them).
//! * `chain`: what both sides check: the path to an anchor, validity within
//!   the clock skew ([`DEFAULT_CLOCK_SKEW`]), revocation, the leaf's purpose.
//! * `server`: a server's chain ([`WebPkiServerVerifier`]): its name and key
//!   pins.
//! * `client`: a client's chain ([`WebPkiClientVerifier`]): the
//!   [`ClientPolicy`] allow-list, and anonymous clients.

mod anchors;
mod cache;
mod chain;
mod client;
mod ed25519;
mod server;

#[cfg(test)]
mod tests;

pub use anchors::TrustAnchors;
pub use cache::DEFAULT_SIGNATURE_CACHE;
pub use chain::DEFAULT_CLOCK_SKEW;
pub use client::{
    ClientCertVerifier, ClientPolicy, WebPkiClientVerifier, ANONYMOUS_MAX_LIFETIME_SECS,
};
pub(crate) use ed25519::verify_ed25519;
pub use ed25519::SUPPORTED_SIG_ALGS;
pub use server::{ServerCertVerifier, WebPkiServerVerifier};
