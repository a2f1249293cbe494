//! What both verifiers check a chain against (`ChainPolicy`): a path to a
//! trust anchor with rustls-webpki, validity within the clock skew (checked
//! again at a shifted time when only a validity bound is off), revocation
//! against CRLs, and the leaf's purpose (EKU); and how rustls-webpki's errors
//! map onto `CertError`.

use std::time::Duration;

use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, ServerName, TrustAnchor, UnixTime,
};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, RevocationCheckDepth,
    RevocationOptions, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use super::anchors::TrustAnchors;
use super::ed25519::SUPPORTED_SIG_ALGS;
use crate::cert::ParsedCert;
use crate::crl::Crls;
use crate::error::{CertError, PkiError};
use crate::identity::{KeyPin, PeerIdentity, VerifiedPeer};

/// The clock-skew allowance of a new verifier (60 seconds); see
/// [`WebPkiServerVerifier::with_clock_skew`](crate::WebPkiServerVerifier::with_clock_skew).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

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
    /// then insists that the leaf itself lists the purpose.
    ///
    /// webpki applies the EKU check to every certificate of the path, so it
    /// must be "required if present" (CA certificates carry no EKU); an EKU
    /// extension on the leaf is required here, on top.
    pub(super) fn verify<'p>(
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

/// What both verifiers check a chain against: trust anchors, CRLs and the
/// clock-skew allowance.
#[derive(Clone, Debug)]
pub(super) struct ChainPolicy {
    pub(super) anchors: TrustAnchors,
    pub(super) crls: Crls,
    pub(super) clock_skew: Duration,
}

impl ChainPolicy {
    pub(super) fn new(anchors: TrustAnchors) -> Self {
        Self {
            anchors,
            crls: Crls::default(),
            clock_skew: DEFAULT_CLOCK_SKEW,
        }
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
pub(super) fn within_skew(
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
