//! What both verifiers check a chain against (`ChainPolicy`): a path to a
//! trust anchor with rustls-webpki, validity within the clock skew (checked
//! once more at a shifted time when only a validity bound is off),
//! revocation against CRLs, and the leaf's purpose (EKU), all under one
//! signature budget, answered from the verifier's signature cache where it
//! can be; and how rustls-webpki's errors map onto `CertError`.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, ServerName, SignatureVerificationAlgorithm,
    TrustAnchor, UnixTime,
};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, RevocationCheckDepth,
    RevocationOptions, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use super::anchors::TrustAnchors;
use super::cache::{SignatureCache, DEFAULT_SIGNATURE_CACHE};
use super::ed25519::SignatureBudget;
use crate::cert::{parse_certificate, ParsedCert};
use crate::crl::Crls;
use crate::error::{CertError, PkiError};
use crate::identity::{KeyPin, PeerIdentity, VerifiedPeer};

/// The clock-skew allowance of a new verifier (60 seconds); see
/// [`WebPkiServerVerifier::with_clock_skew`](crate::WebPkiServerVerifier::with_clock_skew).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The most distinct Ed25519 signature checks one verification makes, over
/// the check at `now` and the one re-check within the clock skew together.
/// A chain of this PKI needs one per certificate below the anchor (one or
/// two) and one per CRL consulted; the rest is room for several anchors of
/// the same name and deeper chains from other CAs.
pub(super) const MAX_SIGNATURE_CHECKS: usize = 16;

/// A purpose a leaf certificate must carry in its extended key usage.
#[derive(Clone, Copy)]
pub(super) struct Purpose {
    pub(super) oid: der::oid::ObjectIdentifier,
    /// The same purpose for rustls-webpki ("required if present").
    pub(super) webpki: KeyUsage,
}

/// id-kp-serverAuth (1.3.6.1.5.5.7.3.1).
pub(super) const SERVER_AUTH: Purpose = Purpose {
    oid: der::oid::db::rfc5280::ID_KP_SERVER_AUTH,
    webpki: KeyUsage::server_auth(),
};

/// id-kp-clientAuth (1.3.6.1.5.5.7.3.2).
pub(super) const CLIENT_AUTH: Purpose = Purpose {
    oid: der::oid::db::rfc5280::ID_KP_CLIENT_AUTH,
    webpki: KeyUsage::client_auth(),
};

impl Purpose {
    /// Checks the path with webpki (and revocation, if `revocation` is given),
    /// then insists that the leaf itself lists the purpose; with a budget of
    /// its own ([`MAX_SIGNATURE_CHECKS`]).
    pub(super) fn verify<'p>(
        self,
        ee: &'p EndEntityCert<'p>,
        info: &ParsedCert,
        anchors: &'p [TrustAnchor<'_>],
        intermediates: &'p [CertificateDer<'p>],
        now: UnixTime,
        revocation: Option<RevocationOptions<'_>>,
    ) -> Result<(), CertError> {
        let budget = SignatureBudget::new(MAX_SIGNATURE_CHECKS);
        self.verify_within(ee, info, anchors, intermediates, now, revocation, &budget)
    }

    /// [`verify`](Self::verify), with its signature checks counted against
    /// `budget` (shared with other checks of the same chain).
    ///
    /// webpki applies the EKU check to every certificate of the path, so it
    /// must be "required if present" (CA certificates carry no EKU); an EKU
    /// extension on the leaf is required here, on top.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn verify_within<'p>(
        self,
        ee: &'p EndEntityCert<'p>,
        info: &ParsedCert,
        anchors: &'p [TrustAnchor<'_>],
        intermediates: &'p [CertificateDer<'p>],
        now: UnixTime,
        revocation: Option<RevocationOptions<'_>>,
        budget: &SignatureBudget<'_>,
    ) -> Result<(), CertError> {
        let algorithms: [&dyn SignatureVerificationAlgorithm; 1] = [budget];
        let verified = ee.verify_for_usage(
            &algorithms,
            anchors,
            intermediates,
            now,
            self.webpki,
            revocation,
            None,
        );
        if let Err(err) = verified {
            // A path found within the budget is as good as any; failing
            // with the budget spent, the search was cut short.
            return Err(if budget.exhausted() {
                CertError::Other(format!(
                    "more than {} signature checks needed",
                    budget.limit()
                ))
            } else {
                map_webpki_error(err)
            });
        }
        if !info.has_purpose(self.oid) {
            return Err(CertError::WrongPurpose);
        }
        Ok(())
    }
}

/// What a verified certificate proves: for an anonymous one only its key
/// (its names are self-asserted), else its key and its names.
pub(super) fn verified_peer(info: ParsedCert, anonymous: bool) -> VerifiedPeer {
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
            matched: None,
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
            matched: None,
        }
    };
    VerifiedPeer {
        public_key,
        identity,
    }
}

/// What both verifiers check a chain against: trust anchors, CRLs and the
/// clock-skew allowance; and the signature checks of chains and CRLs that
/// succeeded before (shared by clones: a policy tied to fewer anchors, made
/// from this one, answers from the same cache).
#[derive(Clone, Debug)]
pub(super) struct ChainPolicy {
    pub(super) anchors: TrustAnchors,
    pub(super) crls: Crls,
    pub(super) clock_skew: Duration,
    pub(super) cache: Arc<SignatureCache>,
}

impl ChainPolicy {
    pub(super) fn new(anchors: TrustAnchors) -> Self {
        Self {
            anchors,
            crls: Crls::default(),
            clock_skew: DEFAULT_CLOCK_SKEW,
            cache: Arc::new(SignatureCache::new(DEFAULT_SIGNATURE_CACHE)),
        }
    }

    /// A new, empty signature cache of at most `capacity` entries (0: none).
    pub(super) fn set_cache_capacity(&mut self, capacity: usize) {
        self.cache = Arc::new(SignatureCache::new(capacity));
    }

    pub(super) fn add_crls(
        &mut self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<(), PkiError> {
        self.crls = self.crls.extended(crls)?;
        Ok(())
    }

    /// Path to an anchor, validity (within the skew), revocation, the
    /// leaf's purpose and, for a server, its name.
    pub(super) fn verify(
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
        let intermediates = path_candidates(intermediates);
        // One budget for the check at `now` and the re-check within the
        // skew; checks that succeeded before are answered from the cache.
        let budget = SignatureBudget::with_cache(MAX_SIGNATURE_CHECKS, &self.cache);
        within_skew_of(chain, now, self.clock_skew, |time| {
            purpose.verify_within(
                &ee,
                &info,
                &self.anchors.anchors,
                &intermediates,
                time,
                revocation,
                &budget,
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

/// The certificates after the leaf that rustls-webpki may build a path
/// through: all but self-issued ones (issuer = subject).
///
/// A self-issued certificate is a root, or a key roll-over link between two
/// keys of one CA, which this PKI never issues (roots roll over as several
/// trust anchors). A root the peer sends along is no help: rustls-webpki
/// tries the trust anchors first at every step. But self-issued
/// certificates named like a trust anchor each make a dead end that costs a
/// signature check, for every order of them rustls-webpki tries.
fn path_candidates<'c>(intermediates: &'c [CertificateDer<'c>]) -> Vec<CertificateDer<'c>> {
    intermediates
        .iter()
        .filter(|der| {
            // Names compared as rustls-webpki does, byte for byte; one that
            // does not parse is left to rustls-webpki to refuse.
            EndEntityCert::try_from(*der).map_or(true, |cert| cert.issuer() != cert.subject())
        })
        .map(|der| CertificateDer::from(der.as_ref()))
        .collect()
}

/// Runs `check` at `now`. If it fails only because a certificate is not yet
/// valid, or a certificate or CRL has expired, by no more than `skew`, checks
/// once more at the nearest time within `now ± skew` where that one is
/// valid. So a chain is accepted if it is valid at `now`, or at that time.
///
/// Errors report `now`, not the shifted time.
pub(super) fn within_skew(
    now: UnixTime,
    skew: Duration,
    check: impl FnMut(UnixTime) -> Result<(), CertError>,
) -> Result<(), CertError> {
    within_skew_of(&[], now, skew, check)
}

/// [`within_skew`] for `chain`: the one re-check is at the time that also
/// takes in every other validity bound of the chain's certificates within
/// the skew on the same side of `now` (the latest `notBefore` when moving
/// forward, the earliest `notAfter` when moving back), so a chain with
/// several certificates just out of date is also accepted if they are all
/// valid at that time.
fn within_skew_of(
    chain: &[CertificateDer<'_>],
    now: UnixTime,
    skew: Duration,
    mut check: impl FnMut(UnixTime) -> Result<(), CertError>,
) -> Result<(), CertError> {
    let first = match check(now) {
        Ok(()) => return Ok(()),
        Err(err) => at_time(err, now),
    };
    let now_secs = now.as_secs();
    let earliest = now_secs.saturating_sub(skew.as_secs());
    let latest = now_secs.saturating_add(skew.as_secs());
    let ahead = now_secs.saturating_add(1)..=latest;
    let behind = earliest..=now_secs.saturating_sub(1);
    let time = match &first {
        CertError::NotYetValid { not_before, .. } if ahead.contains(&not_before.as_secs()) => {
            validity_bounds(chain)
                .map(|(not_before, _)| not_before)
                .filter(|secs| ahead.contains(secs))
                .fold(not_before.as_secs(), u64::max)
        }
        CertError::Expired { not_after, .. } if behind.contains(&not_after.as_secs()) => {
            validity_bounds(chain)
                .map(|(_, not_after)| not_after)
                .filter(|secs| behind.contains(secs))
                .fold(not_after.as_secs(), u64::min)
        }
        // webpki refuses a CRL at its nextUpdate instant.
        CertError::CrlExpired { next_update, .. }
            if behind.contains(&next_update.as_secs().saturating_sub(1)) =>
        {
            validity_bounds(chain)
                .map(|(_, not_after)| not_after)
                .filter(|secs| behind.contains(secs))
                .fold(next_update.as_secs().saturating_sub(1), u64::min)
        }
        // Out of range everywhere in `now ± skew`, or no validity error.
        _ => return Err(first),
    };
    let err = match check(unix(time)) {
        Ok(()) => return Ok(()),
        Err(err) => at_time(err, now),
    };
    // Out of range everywhere in `now ± skew`: that is the reason. Otherwise
    // the validity periods conflict; report what was wrong at `now`.
    let out_of_range = match &err {
        CertError::NotYetValid { not_before, .. } => not_before.as_secs() > latest,
        CertError::Expired { not_after, .. } => not_after.as_secs() < earliest,
        CertError::CrlExpired { next_update, .. } => next_update.as_secs() <= earliest,
        _ => true,
    };
    Err(if out_of_range { err } else { first })
}

/// `(notBefore, notAfter)` of each certificate of `chain` that parses, in
/// seconds since the Unix epoch.
fn validity_bounds<'a>(chain: &'a [CertificateDer<'_>]) -> impl Iterator<Item = (u64, u64)> + 'a {
    chain.iter().filter_map(|der| {
        let validity = parse_certificate(der).ok()?.tbs_certificate.validity;
        Some((
            validity.not_before.to_unix_duration().as_secs(),
            validity.not_after.to_unix_duration().as_secs(),
        ))
    })
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

/// Maps a rustls-webpki error onto [`CertError`].
#[allow(deprecated)] // RequiredEkuNotFound and UnsupportedSignatureAlgorithm* still exist.
pub(super) fn map_webpki_error(err: webpki::Error) -> CertError {
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
