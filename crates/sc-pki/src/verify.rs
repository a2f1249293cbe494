//! Verifying a peer's certificates with rustls-webpki.

use std::fmt;
use std::time::Duration;

use ed25519_dalek::{Signature, VerifyingKey};
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, CertificateDer, CertificateRevocationListDer, InvalidSignature,
    ServerName, SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, RevocationCheckDepth,
    RevocationOptions, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use crate::cert::ParsedCert;
use crate::crl::Crls;
use crate::error::{CertError, PkiError};
use crate::identity::{KeyPin, PeerIdentity, VerifiedPeer};
use crate::issue::{ANONYMOUS_LIFETIME_SECS, VALIDITY_BACKDATE_SECS};
use crate::pem::certs_from_pem;

/// The clock-skew allowance of a new verifier (60 seconds); see
/// [`WebPkiServerVerifier::with_clock_skew`].
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// A purpose a leaf certificate must carry in its extended key usage.
#[derive(Clone, Copy)]
struct Purpose {
    oid: der::oid::ObjectIdentifier,
    /// The same purpose for rustls-webpki ("required if present").
    webpki: KeyUsage,
}

/// id-kp-serverAuth (1.3.6.1.5.5.7.3.1).
const SERVER_AUTH: Purpose = Purpose {
    oid: der::oid::db::rfc5280::ID_KP_SERVER_AUTH,
    webpki: KeyUsage::server_auth(),
};

/// id-kp-clientAuth (1.3.6.1.5.5.7.3.2).
const CLIENT_AUTH: Purpose = Purpose {
    oid: der::oid::db::rfc5280::ID_KP_CLIENT_AUTH,
    webpki: KeyUsage::client_auth(),
};

impl Purpose {
    /// Checks the path with webpki (and revocation, if `revocation` is given),
    /// then insists that the leaf itself lists the purpose.
    ///
    /// webpki applies the EKU check to every certificate of the path, so it
    /// must be "required if present" (CA certificates carry no EKU); an EKU
    /// extension on the leaf is required here, on top.
    fn verify<'p>(
        self,
        ee: &'p EndEntityCert<'p>,
        info: &ParsedCert,
        anchors: &'p [TrustAnchor<'_>],
        intermediates: &'p [CertificateDer<'p>],
        now: UnixTime,
        revocation: Option<RevocationOptions<'_>>,
    ) -> Result<(), CertError> {
        ee.verify_for_usage(
            SUPPORTED_SIG_ALGS,
            anchors,
            intermediates,
            now,
            self.webpki,
            revocation,
            None,
        )
        .map_err(map_webpki_error)?;
        if !info.has_purpose(self.oid) {
            return Err(CertError::WrongPurpose);
        }
        Ok(())
    }
}

/// The longest `notAfter - notBefore` accepted for an anonymous certificate:
/// [`ANONYMOUS_LIFETIME_SECS`] plus the [`VALIDITY_BACKDATE_SECS`] back-dating
/// that [`anonymous_credential`](crate::anonymous_credential) applies (35 minutes).
pub const ANONYMOUS_MAX_LIFETIME_SECS: u64 = ANONYMOUS_LIFETIME_SECS + VALIDITY_BACKDATE_SECS;

/// Ed25519 (RFC 8410) signature verification for rustls-webpki, on
/// ed25519-dalek's `verify_strict`.
#[derive(Debug)]
struct Ed25519Verify;

impl SignatureVerificationAlgorithm for Ed25519Verify {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let public_key = <&[u8; 32]>::try_from(public_key).map_err(|_| InvalidSignature)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature = Signature::from_slice(signature).map_err(|_| InvalidSignature)?;
        key.verify_strict(message, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}

/// The signature algorithms accepted in certificate chains (and CRLs): Ed25519 only.
pub static SUPPORTED_SIG_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[&Ed25519Verify];

/// What a verified certificate proves: for an anonymous one only its key
/// (its names are self-asserted), else its key and its names.
fn verified_peer(info: ParsedCert, anonymous: bool) -> VerifiedPeer {
    let public_key = info.public_key;
    let spki_pin = KeyPin::of_key(&info.public_key);
    let identity = if anonymous {
        PeerIdentity {
            common_name: None,
            dns_names: Vec::new(),
            ip_addrs: Vec::new(),
            uris: Vec::new(),
            fingerprint: info.fingerprint,
            spki_pin,
            anonymous,
        }
    } else {
        PeerIdentity {
            common_name: info.common_name,
            dns_names: info.dns_names,
            ip_addrs: info.ip_addrs,
            uris: info.uris,
            fingerprint: info.fingerprint,
            spki_pin,
            anonymous,
        }
    };
    VerifiedPeer {
        public_key,
        identity,
    }
}

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

/// One or more trust anchors (a CA bundle; several roots are allowed, for
/// roll-over).
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
    subjects: Vec<Vec<u8>>,
}

impl TrustAnchors {
    /// Trusts each of `certs`. Each must parse, carry an Ed25519 key and be a
    /// CA certificate; at least one is required.
    pub fn from_der(certs: &[CertificateDer<'_>]) -> Result<Self, PkiError> {
        if certs.is_empty() {
            return Err(PkiError::NoCertificates);
        }
        let mut anchors = Vec::with_capacity(certs.len());
        let mut subjects = Vec::with_capacity(certs.len());
        for cert in certs {
            let info = ParsedCert::parse(cert)?;
            if !info.is_ca() {
                return Err(PkiError::NotCa);
            }
            subjects.push(info.subject_der()?);
            let anchor = webpki::anchor_from_trusted_cert(cert)
                .map_err(|e| PkiError::Malformed(format!("trust anchor: {e:?}")))?;
            anchors.push(anchor.to_owned());
        }
        Ok(Self { anchors, subjects })
    }

    /// Trusts every `CERTIFICATE` in a PEM bundle (see [`TrustAnchors::from_der`]).
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::from_der(&certs_from_pem(pem)?)
    }

    /// DER-encoded subject Names of the anchors, in order.
    pub fn subject_names(&self) -> &[Vec<u8>] {
        &self.subjects
    }

    /// The number of anchors.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Always false: a `TrustAnchors` holds at least one anchor.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// What both verifiers check a chain against: trust anchors, CRLs and the
/// clock-skew allowance.
#[derive(Clone, Debug)]
struct ChainPolicy {
    anchors: TrustAnchors,
    crls: Crls,
    clock_skew: Duration,
}

impl ChainPolicy {
    fn new(anchors: TrustAnchors) -> Self {
        Self {
            anchors,
            crls: Crls::default(),
            clock_skew: DEFAULT_CLOCK_SKEW,
        }
    }

    fn add_crls(
        &mut self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<(), PkiError> {
        self.crls = self.crls.extended(crls)?;
        Ok(())
    }

    /// Path to an anchor, validity (within the skew), revocation, the
    /// leaf's purpose and, for a server, its name.
    fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
        purpose: Purpose,
        server_name: Option<&ServerName<'_>>,
    ) -> Result<VerifiedPeer, CertError> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| CertError::Malformed("empty certificate chain".into()))?;
        // Ed25519 leaf check first: webpki does not look at the leaf's key type.
        let info = ParsedCert::parse(leaf)?;
        let ee = EndEntityCert::try_from(leaf).map_err(map_webpki_error)?;
        let crls = self.crls.as_refs();
        let revocation = revocation_options(&crls);
        within_skew(now, self.clock_skew, |time| {
            purpose.verify(
                &ee,
                &info,
                &self.anchors.anchors,
                intermediates,
                time,
                revocation,
            )
        })?;
        if let Some(name) = server_name {
            ee.verify_is_valid_for_subject_name(name)
                .map_err(|err| match err {
                    webpki::Error::CertNotValidForName(_) => CertError::NameMismatch {
                        expected: name.to_str().into_owned(),
                        presented: info.server_names(),
                    },
                    other => map_webpki_error(other),
                })?;
        }
        Ok(verified_peer(info, false))
    }
}

/// How CRLs are applied (`None` without CRLs):
///
/// * every certificate of the chain below the anchor is checked (the leaf
///   against its issuer's CRL, an intermediate against the root's CRL);
/// * a certificate whose issuer has no CRL here is accepted (unknown status:
///   allow), so CRLs can be deployed for one CA of a bundle at a time;
/// * a CRL past its `nextUpdate` (beyond the clock skew) fails verification
///   with [`CertError::CrlExpired`]: a stale CRL could hide a revocation.
fn revocation_options<'a>(crls: &'a [&'a CertRevocationList<'a>]) -> Option<RevocationOptions<'a>> {
    Some(
        RevocationOptionsBuilder::new(crls)
            .ok()?
            .with_depth(RevocationCheckDepth::Chain)
            .with_status_policy(UnknownStatusPolicy::Allow)
            .with_expiration_policy(ExpirationPolicy::Enforce)
            .build(),
    )
}

/// At most this many re-checks at a time shifted within the clock skew.
const MAX_SKEW_RETRIES: usize = 8;

/// Runs `check` at `now`. If it fails only because a certificate is not yet
/// valid, or a certificate or CRL has expired, by no more than `skew`, checks
/// again at the nearest time within `now ± skew` where that one is valid
/// (repeatedly, in one direction, for several such certificates). So the chain
/// is accepted if it is valid at some single time within `now ± skew`.
///
/// Errors report `now`, not the shifted time.
fn within_skew(
    now: UnixTime,
    skew: Duration,
    mut check: impl FnMut(UnixTime) -> Result<(), CertError>,
) -> Result<(), CertError> {
    let now_secs = now.as_secs();
    let earliest = now_secs.saturating_sub(skew.as_secs());
    let latest = now_secs.saturating_add(skew.as_secs());
    let mut time = now_secs;
    // +1 once moved forward (for a notBefore), -1 once moved back.
    let mut direction = 0i8;
    let mut first_error: Option<CertError> = None;
    for _ in 0..MAX_SKEW_RETRIES {
        let err = match check(unix(time)) {
            Ok(()) => return Ok(()),
            Err(err) => at_time(err, now),
        };
        let retry = match &err {
            CertError::NotYetValid { not_before, .. } if direction >= 0 => {
                Some((not_before.as_secs(), 1))
            }
            CertError::Expired { not_after, .. } if direction <= 0 => {
                Some((not_after.as_secs(), -1))
            }
            // webpki refuses a CRL at its nextUpdate instant.
            CertError::CrlExpired { next_update, .. } if direction <= 0 => {
                Some((next_update.as_secs().saturating_sub(1), -1))
            }
            _ => None,
        };
        match retry {
            Some((to, dir)) if (earliest..=latest).contains(&to) && to != time => {
                first_error.get_or_insert(err);
                direction = dir;
                time = to;
            }
            _ => {
                // Out of range everywhere in `now ± skew`: that is the reason.
                // Otherwise the validity periods conflict; report what was
                // wrong at `now`.
                let out_of_range = match &err {
                    CertError::NotYetValid { not_before, .. } => not_before.as_secs() > latest,
                    CertError::Expired { not_after, .. } => not_after.as_secs() < earliest,
                    CertError::CrlExpired { next_update, .. } => next_update.as_secs() <= earliest,
                    _ => true,
                };
                return Err(match first_error {
                    Some(first) if !out_of_range => first,
                    _ => err,
                });
            }
        }
    }
    Err(first_error.unwrap_or_else(|| CertError::Other("clock skew: too many retries".into())))
}

/// `err` with its time fields set to `now`.
fn at_time(err: CertError, now: UnixTime) -> CertError {
    match err {
        CertError::Expired { not_after, .. } => CertError::Expired { not_after, now },
        CertError::NotYetValid { not_before, .. } => CertError::NotYetValid { not_before, now },
        CertError::CrlExpired { next_update, .. } => CertError::CrlExpired { next_update, now },
        other => other,
    }
}

fn unix(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// Verifies server chains with rustls-webpki: path to one of the anchors,
/// validity (within the clock skew), revocation (if CRLs are given), EKU
/// serverAuth (required), the server name (DNS or IP SAN), and the key pins
/// (if any).
#[derive(Clone, Debug)]
pub struct WebPkiServerVerifier {
    chain: ChainPolicy,
    pins: Vec<KeyPin>,
}

impl WebPkiServerVerifier {
    /// A verifier trusting `anchors`, without CRLs or pins, with the
    /// [`DEFAULT_CLOCK_SKEW`].
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

    /// Sets the clock-skew allowance (default [`DEFAULT_CLOCK_SKEW`], 60 s).
    ///
    /// The chain is accepted if it is valid at some time within `now ± skew`:
    /// a certificate not yet valid by at most the skew, or expired (or a CRL
    /// past its `nextUpdate`) by at most the skew, passes. `Duration::ZERO`
    /// checks at `now` exactly. Only whole seconds count.
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.chain.clock_skew = skew;
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
    /// [`DEFAULT_CLOCK_SKEW`].
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
    /// [`WebPkiServerVerifier::with_crls`].
    pub fn with_crls(
        mut self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Self, PkiError> {
        self.chain.add_crls(crls)?;
        Ok(self)
    }

    /// Sets the clock-skew allowance; see [`WebPkiServerVerifier::with_clock_skew`].
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

/// Maps a rustls-webpki error onto [`CertError`].
#[allow(deprecated)] // RequiredEkuNotFound and UnsupportedSignatureAlgorithm* still exist.
fn map_webpki_error(err: webpki::Error) -> CertError {
    use webpki::Error as E;
    match err {
        E::UnknownIssuer => CertError::UnknownIssuer,
        E::CertExpired { time, not_after } => CertError::Expired {
            not_after,
            now: time,
        },
        E::CertNotValidYet { time, not_before } => CertError::NotYetValid {
            not_before,
            now: time,
        },
        E::RequiredEkuNotFound
        | E::RequiredEkuNotFoundContext(_)
        | E::EmptyEkuExtension
        | E::CaUsedAsEndEntity => CertError::WrongPurpose,
        E::CertNotValidForName(ctx) => CertError::NameMismatch {
            expected: ctx.expected.to_str().into_owned(),
            presented: ctx.presented,
        },
        E::CertRevoked => CertError::Revoked,
        E::CrlExpired { time, next_update } => CertError::CrlExpired {
            next_update,
            now: time,
        },
        E::InvalidCrlSignatureForPublicKey
        | E::UnsupportedCrlSignatureAlgorithm
        | E::UnsupportedCrlSignatureAlgorithmContext(_)
        | E::UnsupportedCrlSignatureAlgorithmForPublicKey
        | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => CertError::CrlBadSignature,
        E::IssuerNotCrlSigner => CertError::CrlInvalid(
            "the issuer's key usage does not allow signing CRLs (cRLSign)".into(),
        ),
        E::UnknownRevocationStatus => CertError::CrlInvalid("no CRL covers the certificate".into()),
        E::InvalidSignatureForPublicKey
        | E::SignatureAlgorithmMismatch
        | E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => CertError::BadSignature,
        E::BadDer
        | E::BadDerTime
        | E::TrailingData(_)
        | E::MalformedExtensions
        | E::ExtensionValueInvalid
        | E::InvalidSerialNumber
        | E::InvalidCertValidity
        | E::UnsupportedCertVersion => CertError::Malformed(format!("{err:?}")),
        other => CertError::Other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use der::Decode;
    use x509_cert::Certificate;

    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::issue::{issue_leaf_with_spki, issue_self_signed_leaf};
    use crate::test_util::{at, chain_of, now, rng, Ca, DAY, NOW_SECS, P256_CERT_PEM};
    use crate::{
        anonymous_credential, cert_serial, certs_from_pem, issue_crl, Credential, KeyPair,
        LeafSpec, RevocationReason, RevokedEntry, Usage, Validity,
    };

    fn server_verifier(roots: &[&Ca]) -> WebPkiServerVerifier {
        let certs: Vec<_> = roots.iter().map(|ca| ca.cert.clone()).collect();
        WebPkiServerVerifier::new(TrustAnchors::from_der(&certs).expect("anchors"))
    }

    fn client_verifier(roots: &[&Ca]) -> WebPkiClientVerifier {
        let certs: Vec<_> = roots.iter().map(|ca| ca.cert.clone()).collect();
        WebPkiClientVerifier::new(TrustAnchors::from_der(&certs).expect("anchors"))
    }

    fn dns(name: &str) -> ServerName<'static> {
        ServerName::try_from(name.to_owned()).expect("valid DNS name")
    }

    #[test]
    fn purposes_agree_with_webpki() {
        for purpose in [SERVER_AUTH, CLIENT_AUTH] {
            let arcs: Vec<usize> = purpose.webpki.oid_values().collect();
            let expected: Vec<usize> = purpose.oid.arcs().map(|arc| arc as usize).collect();
            assert_eq!(arcs, expected);
        }
    }

    #[test]
    fn root_to_leaf_server_chain_verifies() {
        let mut rng = rng(10);
        let root = Ca::root("Test Root", &mut rng);
        let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let peer = server_verifier(&[&root])
            .verify_server(server.chain(), &dns("api.internal"), now())
            .expect("valid chain");
        assert_eq!(peer.public_key, server.public_key());
        assert_eq!(peer.identity.dns_names, vec!["api.internal".to_owned()]);
        assert_eq!(peer.identity.common_name.as_deref(), Some("api.internal"));
        assert_eq!(peer.identity.fingerprint, server.fingerprint());
        assert!(!peer.identity.anonymous);
        assert_eq!(peer.identity.to_string(), "api.internal");
    }

    #[test]
    fn root_to_intermediate_to_leaf_chain_verifies() {
        let mut rng = rng(11);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        let server = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let chain = chain_of(&server, &[&inter.cert]);
        let peer = server_verifier(&[&root])
            .verify_server(&chain, &dns("api.internal"), now())
            .expect("valid chain");
        assert_eq!(peer.public_key, server.public_key());

        // Without the intermediate there is no path.
        assert_eq!(
            server_verifier(&[&root]).verify_server(server.chain(), &dns("api.internal"), now()),
            Err(CertError::UnknownIssuer)
        );

        let client = inter.leaf(&LeafSpec::client("spiffe://sc/client/alice"), &mut rng);
        let chain = chain_of(&client, &[&inter.cert]);
        let peer = client_verifier(&[&root])
            .verify_client(&chain, now())
            .expect("valid client chain");
        assert_eq!(
            peer.identity.uris,
            vec!["spiffe://sc/client/alice".to_owned()]
        );
        assert_eq!(peer.identity.to_string(), "spiffe://sc/client/alice");
    }

    #[test]
    fn ip_address_server_names_verify() {
        let mut rng = rng(12);
        let root = Ca::root("Test Root", &mut rng);
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let spec = LeafSpec {
            common_name: "node7".into(),
            ip_addrs: vec![v4, v6],
            ..LeafSpec::default()
        };
        let server = root.leaf(&spec, &mut rng);
        let verifier = server_verifier(&[&root]);
        for ip in [v4, v6] {
            let peer = verifier
                .verify_server(server.chain(), &ServerName::IpAddress(ip.into()), now())
                .expect("valid for its IP");
            assert_eq!(peer.identity.ip_addrs, vec![v4, v6]);
            assert_eq!(peer.identity.to_string(), "10.0.0.7");
        }
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8));
        assert_eq!(
            verifier.verify_server(server.chain(), &ServerName::IpAddress(other.into()), now()),
            Err(CertError::NameMismatch {
                expected: "10.0.0.8".into(),
                presented: vec!["10.0.0.7".into(), "::1".into()],
            })
        );
        // A DNS name is not matched against IP SANs (nor the common name).
        assert!(matches!(
            verifier.verify_server(server.chain(), &dns("node7"), now()),
            Err(CertError::NameMismatch { .. })
        ));
        // A leaf from LeafSpec::server with an IP puts it in an IP SAN.
        let server = root.leaf(&LeafSpec::server("192.0.2.1"), &mut rng);
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert!(verifier
            .verify_server(server.chain(), &ServerName::IpAddress(ip.into()), now())
            .is_ok());
    }

    #[test]
    fn unknown_ca_is_rejected() {
        let mut rng = rng(13);
        let root = Ca::root("Test Root", &mut rng);
        let other = Ca::root("Other Root", &mut rng);
        let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        assert_eq!(
            server_verifier(&[&other]).verify_server(server.chain(), &dns("api.internal"), now()),
            Err(CertError::UnknownIssuer)
        );
        let client = root.leaf(&LeafSpec::client("alice.clients"), &mut rng);
        assert_eq!(
            client_verifier(&[&other]).verify_client(client.chain(), now()),
            Err(CertError::UnknownIssuer)
        );
    }

    #[test]
    fn impostor_root_with_the_same_name_is_rejected() {
        // Same subject name, different key: webpki reports the signature
        // failure, which it ranks above "unknown issuer".
        let mut rng = rng(14);
        let root = Ca::root("Test Root", &mut rng);
        let impostor = Ca::root("Test Root", &mut rng);
        let server = impostor.leaf(&LeafSpec::server("api.internal"), &mut rng);
        assert_eq!(
            server_verifier(&[&root]).verify_server(server.chain(), &dns("api.internal"), now()),
            Err(CertError::BadSignature)
        );
    }

    #[test]
    fn several_roots_allow_roll_over() {
        let mut rng = rng(15);
        let old = Ca::root("Root 2024", &mut rng);
        let new = Ca::root("Root 2025", &mut rng);
        let verifier = server_verifier(&[&old, &new]);
        for ca in [&old, &new] {
            let server = ca.leaf(&LeafSpec::server("api.internal"), &mut rng);
            assert!(verifier
                .verify_server(server.chain(), &dns("api.internal"), now())
                .is_ok());
        }
    }

    #[test]
    fn expired_and_not_yet_valid_are_distinct() {
        let mut rng = rng(16);
        let root = Ca::root("Test Root", &mut rng);
        let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let verifier = server_verifier(&[&root]);
        let name = dns("api.internal");

        let later = at(NOW_SECS + 91 * DAY);
        assert_eq!(
            verifier.verify_server(server.chain(), &name, later),
            Err(CertError::Expired {
                not_after: at(NOW_SECS + 90 * DAY),
                now: later,
            })
        );
        let earlier = at(NOW_SECS - 3600);
        assert_eq!(
            verifier.verify_server(server.chain(), &name, earlier),
            Err(CertError::NotYetValid {
                not_before: at(NOW_SECS - 300),
                now: earlier,
            })
        );
        // The back-dating covers 5 minutes of clock skew.
        assert!(verifier
            .verify_server(server.chain(), &name, at(NOW_SECS - 299))
            .is_ok());

        // A leaf valid only in the future.
        let future = Validity {
            not_before: at(NOW_SECS + DAY),
            not_after: at(NOW_SECS + 2 * DAY),
        };
        let server = root.leaf_with_validity(&LeafSpec::server("api.internal"), future, &mut rng);
        assert!(matches!(
            verifier.verify_server(server.chain(), &name, now()),
            Err(CertError::NotYetValid { .. })
        ));
    }

    #[test]
    fn wrong_eku_is_wrong_purpose() {
        let mut rng = rng(17);
        let root = Ca::root("Test Root", &mut rng);
        let client = root.leaf(&LeafSpec::client("api.internal"), &mut rng);
        let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        assert_eq!(
            server_verifier(&[&root]).verify_server(client.chain(), &dns("api.internal"), now()),
            Err(CertError::WrongPurpose)
        );
        assert_eq!(
            client_verifier(&[&root]).verify_client(server.chain(), now()),
            Err(CertError::WrongPurpose)
        );

        // A certificate for both works for both.
        let spec = LeafSpec {
            usage: Usage::ServerAndClient,
            ..LeafSpec::server("api.internal")
        };
        let both = root.leaf(&spec, &mut rng);
        assert!(server_verifier(&[&root])
            .verify_server(both.chain(), &dns("api.internal"), now())
            .is_ok());
        assert!(client_verifier(&[&root])
            .verify_client(both.chain(), now())
            .is_ok());
    }

    #[test]
    fn ca_certificate_as_leaf_is_wrong_purpose() {
        let mut rng = rng(18);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        assert_eq!(
            client_verifier(&[&root]).verify_client(std::slice::from_ref(&inter.cert), now()),
            Err(CertError::WrongPurpose)
        );
    }

    #[test]
    fn wrong_name_lists_the_presented_names() {
        let mut rng = rng(19);
        let root = Ca::root("Test Root", &mut rng);
        let spec = LeafSpec {
            dns_names: vec!["api.internal".into(), "api2.internal".into()],
            ip_addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))],
            ..LeafSpec::server("api.internal")
        };
        let server = root.leaf(&spec, &mut rng);
        let err = server_verifier(&[&root])
            .verify_server(server.chain(), &dns("db.internal"), now())
            .expect_err("wrong name");
        assert_eq!(
            err,
            CertError::NameMismatch {
                expected: "db.internal".into(),
                presented: vec![
                    "api.internal".into(),
                    "api2.internal".into(),
                    "10.1.2.3".into()
                ],
            }
        );
        assert_eq!(
            err.to_string(),
            "certificate is not valid for 'db.internal' \
             (it names: api.internal, api2.internal, 10.1.2.3)"
        );
    }

    #[test]
    fn wildcard_names_match_one_label() {
        let mut rng = rng(20);
        let root = Ca::root("Test Root", &mut rng);
        let spec = LeafSpec {
            dns_names: vec!["*.svc.internal".into()],
            ..LeafSpec::default()
        };
        let server = root.leaf(&spec, &mut rng);
        let verifier = server_verifier(&[&root]);
        assert!(verifier
            .verify_server(server.chain(), &dns("a.svc.internal"), now())
            .is_ok());
        assert!(matches!(
            verifier.verify_server(server.chain(), &dns("a.b.svc.internal"), now()),
            Err(CertError::NameMismatch { .. })
        ));
    }

    #[test]
    fn tampered_signature_never_verifies() {
        let mut rng = rng(21);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        let server = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let verifier = server_verifier(&[&root]);
        let name = dns("api.internal");

        // The signature BIT STRING is the last element: flip its last byte.
        let mut leaf = server.chain()[0].to_vec();
        let last = leaf.len() - 1;
        leaf[last] ^= 0x01;
        let chain = vec![CertificateDer::from(leaf), inter.cert.clone()];
        assert_eq!(
            verifier.verify_server(&chain, &name, now()),
            Err(CertError::BadSignature)
        );

        // Every single-byte change of the leaf signature fails.
        let good = server.chain()[0].to_vec();
        for i in good.len() - 64..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x80;
            let chain = vec![CertificateDer::from(bad), inter.cert.clone()];
            let result = verifier.verify_server(&chain, &name, now());
            assert!(
                matches!(
                    result,
                    Err(CertError::BadSignature | CertError::Malformed(_))
                ),
                "byte {i}: {result:?}"
            );
        }

        // A tampered intermediate signature fails too.
        let mut bad_inter = inter.cert.to_vec();
        let last = bad_inter.len() - 1;
        bad_inter[last] ^= 0x01;
        let chain = vec![server.chain()[0].clone(), CertificateDer::from(bad_inter)];
        assert_eq!(
            verifier.verify_server(&chain, &name, now()),
            Err(CertError::BadSignature)
        );

        // A changed to-be-signed part (here: the DNS name) breaks the signature.
        let good = server.chain()[0].to_vec();
        let pos = good
            .windows(b"api.internal".len())
            .rposition(|w| w == b"api.internal")
            .expect("SAN present");
        let mut bad = good.clone();
        bad[pos] = b'x';
        let chain = vec![CertificateDer::from(bad), inter.cert.clone()];
        let result = verifier.verify_server(&chain, &dns("xpi.internal"), now());
        assert!(
            matches!(
                result,
                Err(CertError::BadSignature | CertError::Malformed(_))
            ),
            "{result:?}"
        );
    }

    #[test]
    fn garbage_and_empty_chains_are_malformed() {
        let mut rng = rng(22);
        let root = Ca::root("Test Root", &mut rng);
        let verifier = server_verifier(&[&root]);
        assert!(matches!(
            verifier.verify_server(&[], &dns("api.internal"), now()),
            Err(CertError::Malformed(_))
        ));
        assert!(matches!(
            verifier.verify_server(
                &[CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01])],
                &dns("api.internal"),
                now()
            ),
            Err(CertError::Malformed(_))
        ));
        assert!(matches!(
            client_verifier(&[&root]).verify_client(&[], now()),
            Err(CertError::Malformed(_))
        ));
    }

    #[test]
    fn non_ed25519_leaf_is_unsupported_key() {
        let mut rng = rng(23);
        let root = Ca::root("Test Root", &mut rng);
        // The openssl-made P-256 certificate, as is...
        let p256 = certs_from_pem(P256_CERT_PEM).expect("fixture");
        assert_eq!(
            server_verifier(&[&root]).verify_server(&p256, &dns("p256.test"), now()),
            Err(CertError::UnsupportedKey)
        );
        // ...and its P-256 key in a leaf our root signs: webpki alone would
        // accept this chain (it does not check the leaf's key type).
        let spki = Certificate::from_der(&p256[0])
            .expect("fixture parses")
            .tbs_certificate
            .subject_public_key_info;
        let cert = issue_leaf_with_spki(
            &root.issuer(),
            spki,
            &LeafSpec {
                usage: Usage::ServerAndClient,
                ..LeafSpec::server("p256.test")
            },
            Validity::days_from(now(), 30),
            &mut rng,
        )
        .expect("issue");
        let chain = [cert];
        assert_eq!(
            server_verifier(&[&root]).verify_server(&chain, &dns("p256.test"), now()),
            Err(CertError::UnsupportedKey)
        );
        assert_eq!(
            client_verifier(&[&root]).verify_client(&chain, now()),
            Err(CertError::UnsupportedKey)
        );
        assert_eq!(
            client_verifier(&[&root])
                .allow_anonymous(true)
                .verify_anonymous(&p256[0], now()),
            Err(CertError::UnsupportedKey)
        );
    }

    #[test]
    fn anonymous_credential_verifies_when_allowed() {
        let mut rng = rng(24);
        let root = Ca::root("Test Root", &mut rng);
        let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
        assert!(anon.is_anonymous());
        assert_eq!(anon.chain().len(), 1);

        let verifier = client_verifier(&[&root]).allow_anonymous(true);
        assert!(verifier.anonymous_allowed());
        let peer = verifier
            .verify_anonymous(&anon.chain()[0], now())
            .expect("valid anonymous");
        assert_eq!(peer.public_key, anon.public_key());
        assert!(peer.identity.anonymous);
        assert_eq!(peer.identity.common_name, None);
        assert!(peer.identity.dns_names.is_empty());
        let fp = crate::util::hex(&anon.fingerprint());
        assert_eq!(
            peer.identity.to_string(),
            format!("anonymous:{}", &fp[..16])
        );

        // It is no CA-issued certificate.
        assert_eq!(
            verifier.verify_client(anon.chain(), now()),
            Err(CertError::UnknownIssuer)
        );
    }

    #[test]
    fn anonymous_not_allowed_by_default() {
        let mut rng = rng(25);
        let root = Ca::root("Test Root", &mut rng);
        let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
        let verifier = client_verifier(&[&root]);
        assert!(!verifier.anonymous_allowed());
        assert_eq!(
            verifier.verify_anonymous(&anon.chain()[0], now()),
            Err(CertError::AnonymousNotAllowed)
        );
        assert_eq!(
            verifier
                .allow_anonymous(false)
                .verify_anonymous(&anon.chain()[0], now()),
            Err(CertError::AnonymousNotAllowed)
        );
    }

    #[test]
    fn anonymous_expires_after_30_minutes() {
        let mut rng = rng(26);
        let root = Ca::root("Test Root", &mut rng);
        let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
        let verifier = client_verifier(&[&root])
            .allow_anonymous(true)
            .with_clock_skew(Duration::ZERO);
        let cert = &anon.chain()[0];
        assert!(verifier
            .verify_anonymous(cert, at(NOW_SECS + 30 * 60))
            .is_ok());
        assert_eq!(
            verifier.verify_anonymous(cert, at(NOW_SECS + 30 * 60 + 1)),
            Err(CertError::Expired {
                not_after: at(NOW_SECS + 30 * 60),
                now: at(NOW_SECS + 30 * 60 + 1),
            })
        );
        // Back-dated by 5 minutes for clock skew, no more.
        assert!(verifier.verify_anonymous(cert, at(NOW_SECS - 300)).is_ok());
        assert!(matches!(
            verifier.verify_anonymous(cert, at(NOW_SECS - 301)),
            Err(CertError::NotYetValid { .. })
        ));
        // The default skew (60 s) applies to anonymous certificates too.
        let verifier = verifier.with_clock_skew(DEFAULT_CLOCK_SKEW);
        assert!(verifier
            .verify_anonymous(cert, at(NOW_SECS + 31 * 60))
            .is_ok());
        assert!(verifier.verify_anonymous(cert, at(NOW_SECS - 360)).is_ok());
        assert_eq!(
            verifier.verify_anonymous(cert, at(NOW_SECS + 31 * 60 + 1)),
            Err(CertError::Expired {
                not_after: at(NOW_SECS + 30 * 60),
                now: at(NOW_SECS + 31 * 60 + 1),
            })
        );
    }

    #[test]
    fn ca_issued_certificate_is_not_anonymous() {
        let mut rng = rng(27);
        let root = Ca::root("Test Root", &mut rng);
        let client = root.leaf_with_validity(
            &LeafSpec::client("alice.clients"),
            Validity::backdated(now(), 30 * 60),
            &mut rng,
        );
        let verifier = client_verifier(&[&root]).allow_anonymous(true);
        assert!(matches!(
            verifier.verify_anonymous(&client.chain()[0], now()),
            Err(CertError::InvalidAnonymous(_))
        ));
        // Nor is the (self-signed, but CA) root.
        assert_eq!(
            verifier.verify_anonymous(&root.cert, now()),
            Err(CertError::WrongPurpose)
        );
    }

    #[test]
    fn long_lived_self_signed_certificate_is_not_anonymous() {
        let mut rng = rng(28);
        let root = Ca::root("Test Root", &mut rng);
        let key = KeyPair::generate(&mut rng);
        let cert = issue_self_signed_leaf(
            &key,
            "anonymous",
            Usage::Client,
            Validity::days_from(now(), 365),
            &mut rng,
        )
        .expect("issue");
        let verifier = client_verifier(&[&root]).allow_anonymous(true);
        assert_eq!(
            verifier.verify_anonymous(&cert, now()),
            Err(CertError::InvalidAnonymous(
                "lifetime of 31536300 s exceeds the 2100 s allowed".into()
            ))
        );
        // 35 minutes is the limit; one second more is refused.
        let validity = Validity {
            not_before: at(NOW_SECS - 300),
            not_after: at(NOW_SECS + 30 * 60 + 1),
        };
        let cert = issue_self_signed_leaf(&key, "anonymous", Usage::Client, validity, &mut rng)
            .expect("issue");
        assert!(matches!(
            verifier.verify_anonymous(&cert, now()),
            Err(CertError::InvalidAnonymous(_))
        ));
    }

    #[test]
    fn anonymous_needs_client_auth_and_its_own_signature() {
        let mut rng = rng(29);
        let root = Ca::root("Test Root", &mut rng);
        let verifier = client_verifier(&[&root]).allow_anonymous(true);
        let key = KeyPair::generate(&mut rng);
        let validity = Validity::backdated(now(), 30 * 60);
        let server_only =
            issue_self_signed_leaf(&key, "anonymous", Usage::Server, validity, &mut rng)
                .expect("issue");
        assert_eq!(
            verifier.verify_anonymous(&server_only, now()),
            Err(CertError::WrongPurpose)
        );

        let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
        let mut bad = anon.chain()[0].to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert_eq!(
            verifier.verify_anonymous(&CertificateDer::from(bad), now()),
            Err(CertError::BadSignature)
        );
    }

    #[test]
    fn trust_anchors_and_ca_names() {
        let mut rng = rng(30);
        let a = Ca::root("Root A", &mut rng);
        let b = Ca::root("Root B", &mut rng);
        let pem = format!(
            "{}{}",
            crate::cert_to_pem(&a.cert).expect("pem"),
            crate::cert_to_pem(&b.cert).expect("pem")
        );
        let anchors = TrustAnchors::from_pem(&pem).expect("bundle");
        assert_eq!(anchors.len(), 2);
        let verifier = WebPkiClientVerifier::new(anchors);
        let names: Vec<Vec<u8>> = [&a, &b]
            .iter()
            .map(|ca| {
                der::Encode::to_der(
                    &Certificate::from_der(&ca.cert)
                        .expect("parses")
                        .tbs_certificate
                        .subject,
                )
                .expect("encodes")
            })
            .collect();
        assert_eq!(verifier.ca_names(), names.as_slice());
        let name = x509_cert::name::Name::from_der(&verifier.ca_names()[0]).expect("a Name");
        assert_eq!(name.to_string(), "CN=Root A");

        assert_eq!(
            TrustAnchors::from_der(&[]).map(|a| a.len()),
            Err(PkiError::NoCertificates)
        );
        let leaf = a.leaf(&LeafSpec::server("api.internal"), &mut rng);
        assert_eq!(
            TrustAnchors::from_der(leaf.chain()).map(|a| a.len()),
            Err(PkiError::NotCa)
        );
        let p256 = certs_from_pem(P256_CERT_PEM).expect("fixture");
        assert_eq!(
            TrustAnchors::from_der(&p256).map(|a| a.len()),
            Err(PkiError::UnsupportedKey)
        );
    }

    #[test]
    fn verifiers_are_shareable() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<WebPkiServerVerifier>();
        assert_send_sync::<WebPkiClientVerifier>();
        let mut rng = rng(31);
        let root = Ca::root("Test Root", &mut rng);
        let _: std::sync::Arc<dyn ServerCertVerifier> =
            std::sync::Arc::new(server_verifier(&[&root]));
        let _: std::sync::Arc<dyn ClientCertVerifier> =
            std::sync::Arc::new(client_verifier(&[&root]));
    }

    // ---- CRLs, clock skew, pins and the client policy ----

    fn crl_of(
        ca: &Ca,
        revoked: &[&Credential],
        this_update: UnixTime,
        next_update: UnixTime,
    ) -> CertificateRevocationListDer<'static> {
        let entries: Vec<RevokedEntry> = revoked
            .iter()
            .map(|cred| RevokedEntry {
                serial: cert_serial(&cred.chain()[0]).expect("serial"),
                revoked_at: at(NOW_SECS - 60),
                reason: Some(RevocationReason::KeyCompromise),
            })
            .collect();
        issue_crl(&ca.issuer(), &entries, this_update, next_update, 1).expect("crl")
    }

    /// A CRL issued now, due again in a week.
    fn fresh_crl(ca: &Ca, revoked: &[&Credential]) -> CertificateRevocationListDer<'static> {
        crl_of(ca, revoked, now(), at(NOW_SECS + 7 * DAY))
    }

    fn ca_with_validity(parent: &Ca, name: &str, validity: Validity, rng: &mut ChaCha20Rng) -> Ca {
        let key = KeyPair::generate(rng);
        let cert =
            crate::issue_intermediate(&parent.issuer(), &key.public_key(), name, validity, rng)
                .expect("intermediate");
        Ca { key, cert }
    }

    #[test]
    fn revoked_leaf_of_a_root_is_refused() {
        let mut rng = rng(110);
        let root = Ca::root("Test Root", &mut rng);
        let bad = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let good = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let verifier = server_verifier(&[&root])
            .with_crls(vec![fresh_crl(&root, &[&bad])])
            .expect("crl");
        assert_eq!(verifier.crl_count(), 1);
        let name = dns("api.internal");
        assert_eq!(
            verifier.verify_server(bad.chain(), &name, now()),
            Err(CertError::Revoked)
        );
        assert!(verifier.verify_server(good.chain(), &name, now()).is_ok());

        let bad_client = root.leaf(&LeafSpec::client("alice.clients"), &mut rng);
        let good_client = root.leaf(&LeafSpec::client("bob.clients"), &mut rng);
        let verifier = client_verifier(&[&root])
            .with_crls(vec![fresh_crl(&root, &[&bad_client])])
            .expect("crl");
        assert_eq!(
            verifier.verify_client(bad_client.chain(), now()),
            Err(CertError::Revoked)
        );
        assert!(verifier.verify_client(good_client.chain(), now()).is_ok());
        assert_eq!(
            CertError::Revoked.to_string(),
            "certificate has been revoked"
        );
    }

    #[test]
    fn revoked_leaf_of_an_intermediate_is_refused() {
        let mut rng = rng(111);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        let bad = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let good = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let name = dns("api.internal");
        let (bad_chain, good_chain) = (
            chain_of(&bad, &[&inter.cert]),
            chain_of(&good, &[&inter.cert]),
        );

        // The intermediate's CRL covers its leaves.
        let verifier = server_verifier(&[&root])
            .with_crls(vec![fresh_crl(&inter, &[&bad])])
            .expect("crl");
        assert_eq!(
            verifier.verify_server(&bad_chain, &name, now()),
            Err(CertError::Revoked)
        );
        assert!(verifier.verify_server(&good_chain, &name, now()).is_ok());

        // The root's CRL does not: it lists serials of the root's certificates.
        let root_crl = crl_of(&root, &[&bad], now(), at(NOW_SECS + DAY));
        let verifier = server_verifier(&[&root])
            .with_crls(vec![root_crl])
            .expect("crl");
        assert!(verifier.verify_server(&bad_chain, &name, now()).is_ok());

        // A revoked intermediate (in the root's CRL) takes its leaves with it.
        let entry = RevokedEntry {
            serial: cert_serial(&inter.cert).expect("serial"),
            revoked_at: at(NOW_SECS - 60),
            reason: Some(RevocationReason::CaCompromise),
        };
        let root_crl =
            issue_crl(&root.issuer(), &[entry], now(), at(NOW_SECS + DAY), 2).expect("crl");
        let verifier = server_verifier(&[&root])
            .with_crls(vec![root_crl, fresh_crl(&inter, &[])])
            .expect("crls");
        assert_eq!(verifier.crl_count(), 2);
        assert_eq!(
            verifier.verify_server(&good_chain, &name, now()),
            Err(CertError::Revoked)
        );
    }

    #[test]
    fn crl_of_another_ca_is_ignored_and_an_impostor_crl_refused() {
        let mut rng = rng(112);
        let root = Ca::root("Test Root", &mut rng);
        let other = Ca::root("Other Root", &mut rng);
        let leaf = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let name = dns("api.internal");

        // Another CA's CRL, even listing this serial, says nothing about it:
        // the leaf's issuer has no CRL, and unknown status is allowed.
        let verifier = server_verifier(&[&root])
            .with_crls(vec![fresh_crl(&other, &[&leaf])])
            .expect("crl");
        assert!(verifier.verify_server(leaf.chain(), &name, now()).is_ok());
        // Also when that CRL is out of date.
        let stale = crl_of(&other, &[], at(NOW_SECS - 9 * DAY), at(NOW_SECS - 2 * DAY));
        let verifier = server_verifier(&[&root])
            .with_crls(vec![stale])
            .expect("crl");
        assert!(verifier.verify_server(leaf.chain(), &name, now()).is_ok());

        // A CA with the same name but another key: its CRL names the leaf's
        // issuer, so it is used, and its signature fails.
        let impostor = Ca::root("Test Root", &mut rng);
        let verifier = server_verifier(&[&root])
            .with_crls(vec![fresh_crl(&impostor, &[])])
            .expect("crl");
        assert_eq!(
            verifier.verify_server(leaf.chain(), &name, now()),
            Err(CertError::CrlBadSignature)
        );
    }

    #[test]
    fn expired_crl_is_refused_unless_within_the_skew() {
        let mut rng = rng(113);
        let root = Ca::root("Test Root", &mut rng);
        let leaf = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let name = dns("api.internal");
        let this_update = at(NOW_SECS - 8 * DAY);

        let next_update = at(NOW_SECS - DAY);
        let verifier = server_verifier(&[&root])
            .with_crls(vec![crl_of(&root, &[], this_update, next_update)])
            .expect("crl");
        let err = verifier
            .verify_server(leaf.chain(), &name, now())
            .expect_err("stale CRL");
        assert_eq!(
            err,
            CertError::CrlExpired {
                next_update,
                now: now()
            }
        );
        assert_eq!(
            err.to_string(),
            "the issuer's CRL is out of date (next update was due 2025-06-14T15:06:40Z, \
             now 2025-06-15T15:06:40Z)"
        );

        // Due 30 s ago: within the default 60 s skew.
        let next_update = at(NOW_SECS - 30);
        let verifier = server_verifier(&[&root])
            .with_crls(vec![crl_of(&root, &[], this_update, next_update)])
            .expect("crl");
        assert!(verifier.verify_server(leaf.chain(), &name, now()).is_ok());
        // ...and a revocation in it still counts.
        let bad = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let verifier = server_verifier(&[&root])
            .with_crls(vec![crl_of(&root, &[&bad], this_update, next_update)])
            .expect("crl");
        assert_eq!(
            verifier.verify_server(bad.chain(), &name, now()),
            Err(CertError::Revoked)
        );
        // Without skew, a CRL is out of date at its nextUpdate instant.
        let verifier = server_verifier(&[&root])
            .with_clock_skew(Duration::ZERO)
            .with_crls(vec![crl_of(&root, &[], this_update, now())])
            .expect("crl");
        assert_eq!(
            verifier.verify_server(leaf.chain(), &name, now()),
            Err(CertError::CrlExpired {
                next_update: now(),
                now: now()
            })
        );
    }

    #[test]
    fn malformed_crls_are_refused_when_loaded() {
        let mut rng = rng(114);
        let root = Ca::root("Test Root", &mut rng);
        for bad in [vec![0x30, 0x00], vec![1, 2, 3], root.cert.to_vec()] {
            let crl = CertificateRevocationListDer::from(bad);
            assert!(matches!(
                server_verifier(&[&root]).with_crls(vec![crl.clone()]),
                Err(PkiError::MalformedCrl(_))
            ));
            assert!(matches!(
                client_verifier(&[&root]).with_crls(vec![crl]),
                Err(PkiError::MalformedCrl(_))
            ));
        }
    }

    #[test]
    fn clock_skew_accepts_small_differences_only() {
        let mut rng = rng(115);
        let root = Ca::root("Test Root", &mut rng);
        let name = dns("api.internal");
        let spec = LeafSpec::server("api.internal");
        let verifier = server_verifier(&[&root]);
        assert_eq!(verifier.clock_skew(), Duration::from_secs(60));
        let strict = server_verifier(&[&root]).with_clock_skew(Duration::ZERO);
        let lenient = server_verifier(&[&root]).with_clock_skew(Duration::from_secs(120));
        let valid = |from: u64, to: u64| Validity {
            not_before: at(from),
            not_after: at(to),
        };

        // Not yet valid by 60 s: accepted; by 61 s: refused (reported at now).
        let soon = root.leaf_with_validity(&spec, valid(NOW_SECS + 60, NOW_SECS + DAY), &mut rng);
        assert!(verifier.verify_server(soon.chain(), &name, now()).is_ok());
        assert_eq!(
            strict.verify_server(soon.chain(), &name, now()),
            Err(CertError::NotYetValid {
                not_before: at(NOW_SECS + 60),
                now: now()
            })
        );
        let later = root.leaf_with_validity(&spec, valid(NOW_SECS + 61, NOW_SECS + DAY), &mut rng);
        assert_eq!(
            verifier.verify_server(later.chain(), &name, now()),
            Err(CertError::NotYetValid {
                not_before: at(NOW_SECS + 61),
                now: now()
            })
        );
        assert!(lenient.verify_server(later.chain(), &name, now()).is_ok());

        // Expired 60 s ago: accepted; 61 s ago: refused.
        let just = root.leaf_with_validity(&spec, valid(NOW_SECS - DAY, NOW_SECS - 60), &mut rng);
        assert!(verifier.verify_server(just.chain(), &name, now()).is_ok());
        assert_eq!(
            strict.verify_server(just.chain(), &name, now()),
            Err(CertError::Expired {
                not_after: at(NOW_SECS - 60),
                now: now()
            })
        );
        let gone = root.leaf_with_validity(&spec, valid(NOW_SECS - DAY, NOW_SECS - 61), &mut rng);
        assert_eq!(
            verifier.verify_server(gone.chain(), &name, now()),
            Err(CertError::Expired {
                not_after: at(NOW_SECS - 61),
                now: now()
            })
        );
        assert!(lenient.verify_server(gone.chain(), &name, now()).is_ok());

        // The skew covers the whole chain at one time: an intermediate that
        // expired 30 s ago and a leaf valid only from 30 s from now have no
        // time in common.
        let inter = ca_with_validity(
            &root,
            "Old Intermediate",
            valid(NOW_SECS - DAY, NOW_SECS - 30),
            &mut rng,
        );
        let leaf = inter.leaf_with_validity(&spec, valid(NOW_SECS - DAY, NOW_SECS + DAY), &mut rng);
        let chain = chain_of(&leaf, &[&inter.cert]);
        assert!(verifier.verify_server(&chain, &name, now()).is_ok());
        let leaf = inter.leaf_with_validity(&spec, valid(NOW_SECS + 30, NOW_SECS + DAY), &mut rng);
        let chain = chain_of(&leaf, &[&inter.cert]);
        let err = verifier
            .verify_server(&chain, &name, now())
            .expect_err("no common time");
        assert!(
            matches!(
                err,
                CertError::NotYetValid { now: t, .. } | CertError::Expired { now: t, .. } if t == now()
            ),
            "{err:?}"
        );
        // Client verifiers have the same allowance.
        let client = root.leaf_with_validity(
            &LeafSpec::client("alice.clients"),
            valid(NOW_SECS + 30, NOW_SECS + DAY),
            &mut rng,
        );
        assert!(client_verifier(&[&root])
            .verify_client(client.chain(), now())
            .is_ok());
        assert!(matches!(
            client_verifier(&[&root])
                .with_clock_skew(Duration::ZERO)
                .verify_client(client.chain(), now()),
            Err(CertError::NotYetValid { .. })
        ));
    }

    #[test]
    fn server_key_pins() {
        let mut rng = rng(116);
        let root = Ca::root("Test Root", &mut rng);
        let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let other = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let name = dns("api.internal");
        let pin = KeyPin::of_cert(&server.chain()[0]).expect("pin");

        let pinned = server_verifier(&[&root]).with_pins(vec![pin]);
        assert_eq!(pinned.pins(), &[pin]);
        let peer = pinned
            .verify_server(server.chain(), &name, now())
            .expect("pinned key");
        assert_eq!(peer.identity.spki_pin, pin);
        let other_pin = KeyPin::of_key(&other.public_key());
        assert_eq!(
            pinned.verify_server(other.chain(), &name, now()),
            Err(CertError::PinMismatch {
                presented: other_pin
            })
        );
        assert_eq!(
            CertError::PinMismatch {
                presented: other_pin
            }
            .to_string(),
            format!("certificate key {other_pin} matches none of the pinned keys")
        );
        // Either of several pins; pins parsed from text.
        let both = server_verifier(&[&root])
            .with_pins(vec![other_pin])
            .with_pins(vec![pin.to_string().parse().expect("pin")]);
        assert!(both.verify_server(server.chain(), &name, now()).is_ok());
        assert!(both.verify_server(other.chain(), &name, now()).is_ok());
        // A pin does not replace the chain: a pinned key under an unknown CA fails.
        let stranger = Ca::root("Stranger", &mut rng);
        let rogue = stranger.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let rogue_pinned =
            server_verifier(&[&root]).with_pins(vec![KeyPin::of_key(&rogue.public_key())]);
        assert_eq!(
            rogue_pinned.verify_server(rogue.chain(), &name, now()),
            Err(CertError::UnknownIssuer)
        );
        // No pins: no pinning.
        assert!(server_verifier(&[&root])
            .with_pins(Vec::new())
            .verify_server(other.chain(), &name, now())
            .is_ok());
    }

    #[test]
    fn client_policy_admits_by_name_or_pin() {
        let mut rng = rng(117);
        let root = Ca::root("Test Root", &mut rng);
        let dns_client = root.leaf(&LeafSpec::client("alice.clients"), &mut rng);
        let uri_client = root.leaf(&LeafSpec::client("spiffe://sc/client/bob"), &mut rng);
        let cn_client = root.leaf(
            &LeafSpec {
                common_name: "Carol".into(),
                dns_names: vec!["carol-laptop.clients".into()],
                ..LeafSpec::client("x")
            },
            &mut rng,
        );
        let pinned_client = root.leaf(&LeafSpec::client("dave.clients"), &mut rng);
        let stranger = root.leaf(&LeafSpec::client("mallory.clients"), &mut rng);
        let policy = ClientPolicy {
            allow_names: vec![
                "ALICE.clients".into(),
                "spiffe://sc/client/bob".into(),
                "Carol".into(),
            ],
            allow_pins: vec![KeyPin::of_key(&pinned_client.public_key())],
        };
        let verifier = client_verifier(&[&root]).with_policy(policy.clone());
        assert_eq!(verifier.policy(), &policy);
        for client in [&dns_client, &uri_client, &cn_client, &pinned_client] {
            assert!(
                verifier.verify_client(client.chain(), now()).is_ok(),
                "{:?}",
                client
            );
        }
        let err = verifier
            .verify_client(stranger.chain(), now())
            .expect_err("not allowed");
        assert_eq!(
            err,
            CertError::NotAuthorised("client 'mallory.clients' is not in the allow-list".into())
        );
        assert_eq!(
            err.to_string(),
            "peer is not authorised: client 'mallory.clients' is not in the allow-list"
        );
        // URIs and common names are matched exactly (case-sensitively).
        let strict = client_verifier(&[&root]).with_policy(ClientPolicy {
            allow_names: vec!["SPIFFE://sc/client/bob".into(), "carol".into()],
            allow_pins: Vec::new(),
        });
        assert!(matches!(
            strict.verify_client(uri_client.chain(), now()),
            Err(CertError::NotAuthorised(_))
        ));
        assert!(matches!(
            strict.verify_client(cn_client.chain(), now()),
            Err(CertError::NotAuthorised(_))
        ));
        // The policy comes after the chain: an allowed name from an unknown CA fails.
        let other = Ca::root("Other Root", &mut rng);
        let fake_alice = other.leaf(&LeafSpec::client("alice.clients"), &mut rng);
        assert_eq!(
            verifier.verify_client(fake_alice.chain(), now()),
            Err(CertError::UnknownIssuer)
        );
        // An empty policy admits every valid client.
        assert!(client_verifier(&[&root])
            .with_policy(ClientPolicy::default())
            .verify_client(stranger.chain(), now())
            .is_ok());
    }

    #[test]
    fn anonymous_clients_and_the_policy() {
        let mut rng = rng(118);
        let root = Ca::root("Test Root", &mut rng);
        let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
        let policy = ClientPolicy {
            allow_names: vec!["anonymous".into(), "alice.clients".into()],
            allow_pins: vec![KeyPin::of_key(&anon.public_key())],
        };
        // Refused unless allowed, whatever the policy says...
        let refusing = client_verifier(&[&root]).with_policy(policy.clone());
        assert_eq!(
            refusing.verify_anonymous(&anon.chain()[0], now()),
            Err(CertError::AnonymousNotAllowed)
        );
        // ...admitted when allowed, whatever the policy says.
        let allowing = client_verifier(&[&root])
            .with_policy(ClientPolicy {
                allow_names: vec!["alice.clients".into()],
                allow_pins: Vec::new(),
            })
            .allow_anonymous(true);
        let peer = allowing
            .verify_anonymous(&anon.chain()[0], now())
            .expect("anonymous allowed");
        assert!(peer.identity.anonymous);
        assert_eq!(peer.identity.spki_pin, KeyPin::of_key(&anon.public_key()));
        // The policy never matches an anonymous identity's self-asserted names.
        assert!(!policy.admits(&peer.identity));
        assert!(ClientPolicy::default().admits(&peer.identity));
    }
}
