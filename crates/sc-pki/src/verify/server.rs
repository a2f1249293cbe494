//! A server's chain, as a client checks it: `ServerCertVerifier` and
//! `WebPkiServerVerifier`, the chain checks and then the dialled name and the
//! key pins.

use std::fmt;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};

use super::anchors::TrustAnchors;
use super::chain::{ChainPolicy, SERVER_AUTH};
use crate::error::{CertError, PkiError};
use crate::identity::{KeyPin, VerifiedPeer};

/// Verifies the certificate chain a server presents.
pub trait ServerCertVerifier: Send + Sync + fmt::Debug {
    /// Verifies `chain` (leaf first) for EKU serverAuth, at `now`, and that the
    /// leaf is valid for `server_name`.
    fn verify_server(
        &self,
        chain: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError>;
}

/// Verifies server chains with rustls-webpki: path to one of the anchors,
/// validity (within the clock skew), revocation (if CRLs are given), EKU
/// serverAuth (required), the server name (DNS or IP SAN), and the key pins
/// (if any).
#[derive(Clone, Debug)]
pub struct WebPkiServerVerifier {
    pub(super) chain: ChainPolicy,
    pins: Vec<KeyPin>,
}

impl WebPkiServerVerifier {
    /// A verifier trusting `anchors`, without CRLs or pins, with the
    /// [`DEFAULT_CLOCK_SKEW`](crate::DEFAULT_CLOCK_SKEW).
    pub fn new(anchors: TrustAnchors) -> Self {
        Self {
            chain: ChainPolicy::new(anchors),
            pins: Vec::new(),
        }
    }

    /// Also checks revocation against `crls` (added to any given before).
    ///
    /// Every certificate of the chain below the trust anchor is looked up in
    /// the CRL of its issuer: a revoked one fails with [`CertError::Revoked`].
    /// A certificate whose issuer has no CRL here is accepted (unknown status
    /// is allowed, so a CA bundle may have CRLs for some of its CAs only). A
    /// CRL past its `nextUpdate` (beyond the clock skew) fails verification of
    /// the certificates it covers with [`CertError::CrlExpired`]; one that
    /// names the issuer but does not verify with its key fails with
    /// [`CertError::CrlBadSignature`].
    ///
    /// The CRLs are parsed once, here: one rustls-webpki cannot use is
    /// [`PkiError::MalformedCrl`]. Their signatures are checked during
    /// verification, against the issuer found in the path.
    pub fn with_crls(
        mut self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Self, PkiError> {
        self.chain.add_crls(crls)?;
        Ok(self)
    }

    /// Sets the clock-skew allowance (default
    /// [`DEFAULT_CLOCK_SKEW`](crate::DEFAULT_CLOCK_SKEW), 60 s).
    ///
    /// The chain is accepted if it is valid at some time within `now ± skew`:
    /// a certificate not yet valid by at most the skew, or expired (or a CRL
    /// past its `nextUpdate`) by at most the skew, passes. `Duration::ZERO`
    /// checks at `now` exactly. Only whole seconds count. The chain is
    /// checked at `now` and at most once more, at the time within the skew
    /// that takes in every such bound of its certificates on that side of
    /// `now`, both checks under one signature budget.
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.chain.clock_skew = skew;
        self
    }

    /// Replaces the signature cache with an empty one of at most `capacity`
    /// entries (default [`DEFAULT_SIGNATURE_CACHE`](crate::DEFAULT_SIGNATURE_CACHE),
    /// 4096; 0 remembers nothing).
    ///
    /// The cache holds the Ed25519 checks of chains and CRLs that succeeded,
    /// each as the SHA-256 of (key, message, signature), so a chain seen
    /// again (the same intermediate for every peer it issued, the same CRL
    /// every time) is not checked again. A check is a pure function of the
    /// three and a failure is never remembered, so the cache changes no
    /// decision. It holds at most `capacity` entries of 32 bytes (when full,
    /// a new one takes the place of one not used lately), shared by clones
    /// of this verifier; a new verifier (a reload) starts empty.
    pub fn with_signature_cache(mut self, capacity: usize) -> Self {
        self.chain.set_cache_capacity(capacity);
        self
    }

    /// Pins the server's key: if `pins` (with any given before) is non-empty,
    /// the leaf's key must match one of them, on top of the chain checks, or
    /// verification fails with [`CertError::PinMismatch`].
    pub fn with_pins(mut self, pins: Vec<KeyPin>) -> Self {
        self.pins.extend(pins);
        self
    }

    /// The clock-skew allowance.
    pub fn clock_skew(&self) -> Duration {
        self.chain.clock_skew
    }

    /// The pinned keys (empty: no pinning).
    pub fn pins(&self) -> &[KeyPin] {
        &self.pins
    }

    /// The number of CRLs checked.
    pub fn crl_count(&self) -> usize {
        self.chain.crls.len()
    }
}

impl ServerCertVerifier for WebPkiServerVerifier {
    fn verify_server(
        &self,
        chain: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError> {
        let peer = self
            .chain
            .verify(chain, now, SERVER_AUTH, Some(server_name))?;
        if !self.pins.is_empty() && !self.pins.contains(&peer.identity.spki_pin) {
            return Err(CertError::PinMismatch {
                presented: peer.identity.spki_pin,
            });
        }
        Ok(peer)
    }
}
