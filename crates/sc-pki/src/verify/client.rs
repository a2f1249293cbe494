//! A client's chain, as a server checks it: `ClientCertVerifier` and
//! `WebPkiClientVerifier`, the chain checks and then the `ClientPolicy`
//! allow-list; and anonymous clients, whose self-signed certificate is checked
//! as itself.

use std::fmt;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use webpki::EndEntityCert;

use super::anchors::TrustAnchors;
use super::chain::{map_webpki_error, verified_peer, within_skew, ChainPolicy, CLIENT_AUTH};
use crate::cert::ParsedCert;
use crate::error::{CertError, PkiError};
use crate::identity::{KeyPin, PeerIdentity, VerifiedPeer};
use crate::issue::{ANONYMOUS_LIFETIME_SECS, VALIDITY_BACKDATE_SECS};

/// The longest `notAfter - notBefore` accepted for an anonymous certificate:
/// [`ANONYMOUS_LIFETIME_SECS`] plus the [`VALIDITY_BACKDATE_SECS`] back-dating
/// that [`anonymous_credential`](crate::anonymous_credential) applies (35 minutes).
pub const ANONYMOUS_MAX_LIFETIME_SECS: u64 = ANONYMOUS_LIFETIME_SECS + VALIDITY_BACKDATE_SECS;

/// Verifies the certificate chain a client presents.
pub trait ClientCertVerifier: Send + Sync + fmt::Debug {
    /// Whether clients without a certificate may present an anonymous one.
    fn anonymous_allowed(&self) -> bool;

    /// DER-encoded subject Names of the accepted CAs (sent to the client in step 4).
    fn ca_names(&self) -> &[Vec<u8>];

    /// Verifies `chain` (leaf first) for EKU clientAuth at `now`.
    fn verify_client(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError>;

    /// A self-signed anonymous certificate: checked only as itself
    /// (self-signature, lifetime at most [`ANONYMOUS_MAX_LIFETIME_SECS`], EKU
    /// clientAuth, not a CA, validity at `now`). Error
    /// [`CertError::AnonymousNotAllowed`] when the verifier does not allow
    /// anonymous clients.
    fn verify_anonymous(
        &self,
        cert: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError>;
}

/// Which clients with a valid certificate chain a server admits.
///
/// * An empty policy (the default) admits every client whose chain verifies.
/// * Otherwise a client is admitted if one of its names is in `allow_names`
///   **or** its key's pin is in `allow_pins`; else verification fails with
///   [`CertError::NotAuthorised`](crate::CertError::NotAuthorised).
///
/// A name matches exactly: a DNS subject alternative name ASCII
/// case-insensitively, a URI subject alternative name or the subject common
/// name byte for byte, and an IP address subject alternative name when the
/// allowed name parses as the same address. Wildcards are not expanded.
///
/// Anonymous clients are not subject to this policy: they are admitted or
/// refused by [`WebPkiClientVerifier::allow_anonymous`](crate::WebPkiClientVerifier::allow_anonymous)
/// alone. Their names are self-asserted, so never matched, and their key is
/// fresh for every connection, so a pin could never name it in advance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientPolicy {
    /// Client names to admit (SAN DNS name, SAN URI, SAN IP address, or CN).
    pub allow_names: Vec<String>,
    /// Client keys to admit, whatever names their certificates carry.
    pub allow_pins: Vec<KeyPin>,
}

impl ClientPolicy {
    /// Whether the policy admits every client with a valid chain.
    pub fn is_empty(&self) -> bool {
        self.allow_names.is_empty() && self.allow_pins.is_empty()
    }

    /// Whether the policy admits the (CA-issued) peer `identity`.
    pub fn admits(&self, identity: &PeerIdentity) -> bool {
        if self.is_empty() {
            return true;
        }
        if identity.anonymous {
            return false;
        }
        self.allow_pins.contains(&identity.spki_pin)
            || self
                .allow_names
                .iter()
                .any(|name| name_matches(name, identity))
    }
}

fn name_matches(allowed: &str, identity: &PeerIdentity) -> bool {
    identity
        .dns_names
        .iter()
        .any(|dns| dns.eq_ignore_ascii_case(allowed))
        || identity.uris.iter().any(|uri| uri == allowed)
        || identity.common_name.as_deref() == Some(allowed)
        || allowed
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| identity.ip_addrs.contains(&ip))
}

/// Verifies client chains with rustls-webpki: path to one of the anchors,
/// validity (within the clock skew), revocation (if CRLs are given), EKU
/// clientAuth (required) and the [`ClientPolicy`]. Anonymous clients are
/// refused unless [`allow_anonymous`](Self::allow_anonymous) is set.
#[derive(Clone, Debug)]
pub struct WebPkiClientVerifier {
    chain: ChainPolicy,
    anonymous: bool,
    policy: ClientPolicy,
}

impl WebPkiClientVerifier {
    /// A verifier trusting `anchors`, refusing anonymous clients, admitting
    /// every client with a valid chain (empty policy), without CRLs, with the
    /// [`DEFAULT_CLOCK_SKEW`](crate::DEFAULT_CLOCK_SKEW).
    pub fn new(anchors: TrustAnchors) -> Self {
        Self {
            chain: ChainPolicy::new(anchors),
            anonymous: false,
            policy: ClientPolicy::default(),
        }
    }

    /// Whether to accept anonymous clients (off by default).
    ///
    /// Anonymous clients are admitted by this switch alone: the
    /// [`ClientPolicy`] applies to CA-issued client certificates only (an
    /// anonymous client's names are self-asserted and its key is fresh for
    /// every connection).
    pub fn allow_anonymous(mut self, yes: bool) -> Self {
        self.anonymous = yes;
        self
    }

    /// Also checks revocation against `crls`; see
    /// [`WebPkiServerVerifier::with_crls`](crate::WebPkiServerVerifier::with_crls).
    pub fn with_crls(
        mut self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Self, PkiError> {
        self.chain.add_crls(crls)?;
        Ok(self)
    }

    /// Sets the clock-skew allowance; see
    /// [`WebPkiServerVerifier::with_clock_skew`](crate::WebPkiServerVerifier::with_clock_skew).
    /// It applies to anonymous certificates too.
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.chain.clock_skew = skew;
        self
    }

    /// Sets (replaces) which clients are admitted; see [`ClientPolicy`].
    /// A client with a valid chain that the policy does not admit fails with
    /// [`CertError::NotAuthorised`].
    pub fn with_policy(mut self, policy: ClientPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The identity policy.
    pub fn policy(&self) -> &ClientPolicy {
        &self.policy
    }

    /// The clock-skew allowance.
    pub fn clock_skew(&self) -> Duration {
        self.chain.clock_skew
    }

    /// The number of CRLs checked.
    pub fn crl_count(&self) -> usize {
        self.chain.crls.len()
    }
}

impl ClientCertVerifier for WebPkiClientVerifier {
    fn anonymous_allowed(&self) -> bool {
        self.anonymous
    }

    fn ca_names(&self) -> &[Vec<u8>] {
        self.chain.anchors.subject_names()
    }

    fn verify_client(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError> {
        let peer = self.chain.verify(chain, now, CLIENT_AUTH, None)?;
        if !self.policy.admits(&peer.identity) {
            return Err(CertError::NotAuthorised(format!(
                "client '{}' is not in the allow-list",
                peer.identity
            )));
        }
        Ok(peer)
    }

    fn verify_anonymous(
        &self,
        cert: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError> {
        if !self.anonymous {
            return Err(CertError::AnonymousNotAllowed);
        }
        verify_anonymous_cert(cert, now, self.chain.clock_skew)
    }
}

/// Checks an anonymous certificate as itself: it must be self-issued and
/// self-signed, not a CA, valid at `now` (within `skew`) with EKU clientAuth,
/// and live no longer than [`ANONYMOUS_MAX_LIFETIME_SECS`].
fn verify_anonymous_cert(
    cert: &CertificateDer<'_>,
    now: UnixTime,
    skew: Duration,
) -> Result<VerifiedPeer, CertError> {
    let info = ParsedCert::parse(cert)?;
    if !info.is_self_issued() {
        return Err(CertError::InvalidAnonymous(
            "certificate is not self-signed (issuer differs from subject)".into(),
        ));
    }
    // The certificate is its own (only) trust anchor: webpki then checks the
    // self-signature, validity at `now`, basicConstraints and EKU.
    let anchor = webpki::anchor_from_trusted_cert(cert).map_err(map_webpki_error)?;
    let ee = EndEntityCert::try_from(cert).map_err(map_webpki_error)?;
    let anchors = [anchor];
    within_skew(now, skew, |time| {
        CLIENT_AUTH.verify(&ee, &info, &anchors, &[], time, None)
    })?;
    let (not_before, not_after) = info.validity_secs();
    let lifetime = not_after.saturating_sub(not_before);
    if lifetime > ANONYMOUS_MAX_LIFETIME_SECS {
        return Err(CertError::InvalidAnonymous(format!(
            "lifetime of {lifetime} s exceeds the {ANONYMOUS_MAX_LIFETIME_SECS} s allowed"
        )));
    }
    Ok(verified_peer(info, true))
}
