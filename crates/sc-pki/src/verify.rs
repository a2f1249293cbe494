//! Verifying a peer's certificates with rustls-webpki.

use std::fmt;
use std::net::IpAddr;

use ed25519_dalek::{Signature, VerifyingKey};
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, ServerName,
    SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use webpki::{EndEntityCert, KeyUsage};

use crate::cert::CertInfo;
use crate::error::{CertError, PkiError};
use crate::issue::{ANONYMOUS_LIFETIME_SECS, VALIDITY_BACKDATE_SECS};
use crate::pem::certs_from_pem;
use crate::util::Hex;

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
    /// Checks the path with webpki, then insists that the leaf itself lists
    /// the purpose.
    ///
    /// webpki applies the EKU check to every certificate of the path, so it
    /// must be "required if present" (CA certificates carry no EKU); an EKU
    /// extension on the leaf is required here, on top.
    fn verify<'p>(
        self,
        ee: &'p EndEntityCert<'p>,
        info: &CertInfo,
        anchors: &'p [TrustAnchor<'_>],
        intermediates: &'p [CertificateDer<'p>],
        now: UnixTime,
    ) -> Result<(), CertError> {
        ee.verify_for_usage(
            SUPPORTED_SIG_ALGS,
            anchors,
            intermediates,
            now,
            self.webpki,
            None,
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

/// What a successful verification proves about the peer.
///
/// For a CA-issued certificate the names are the leaf's. For an anonymous
/// certificate all names are empty: its names are self-asserted, so only the
/// key (and its fingerprint) is authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The leaf's subject common name, if any.
    pub common_name: Option<String>,
    /// The leaf's DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// The leaf's IP address subject alternative names.
    pub ip_addrs: Vec<IpAddr>,
    /// The leaf's URI subject alternative names.
    pub uris: Vec<String>,
    /// SHA-256 of the leaf certificate's DER encoding.
    pub fingerprint: [u8; 32],
    /// Whether the peer authenticated with an anonymous (self-signed) certificate.
    pub anonymous: bool,
}

impl PeerIdentity {
    fn from_info(info: CertInfo, anonymous: bool) -> Self {
        if anonymous {
            return Self {
                common_name: None,
                dns_names: Vec::new(),
                ip_addrs: Vec::new(),
                uris: Vec::new(),
                fingerprint: info.fingerprint,
                anonymous,
            };
        }
        Self {
            common_name: info.common_name,
            dns_names: info.dns_names,
            ip_addrs: info.ip_addrs,
            uris: info.uris,
            fingerprint: info.fingerprint,
            anonymous,
        }
    }
}

impl fmt::Display for PeerIdentity {
    /// `anonymous:<first 16 hex digits of the fingerprint>` for an anonymous
    /// peer; else the first DNS name, else the first URI, else the first IP
    /// address, else the common name, else `sha256:<16 hex digits>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = Hex(&self.fingerprint[..8]);
        if self.anonymous {
            return write!(f, "anonymous:{short}");
        }
        if let Some(dns) = self.dns_names.first() {
            f.write_str(dns)
        } else if let Some(uri) = self.uris.first() {
            f.write_str(uri)
        } else if let Some(ip) = self.ip_addrs.first() {
            write!(f, "{ip}")
        } else if let Some(cn) = &self.common_name {
            f.write_str(cn)
        } else {
            write!(f, "sha256:{short}")
        }
    }
}

/// The result of a successful verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPeer {
    /// The leaf's Ed25519 public key: the handshake checks the peer's
    /// signatures with it.
    pub public_key: [u8; 32],
    /// Who the peer is.
    pub identity: PeerIdentity,
}

impl VerifiedPeer {
    fn new(info: CertInfo, anonymous: bool) -> Self {
        Self {
            public_key: info.public_key,
            identity: PeerIdentity::from_info(info, anonymous),
        }
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
            let info = CertInfo::parse(cert)?;
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

/// Verifies server chains with rustls-webpki: path to one of the anchors,
/// validity, EKU serverAuth (required), and the server name (DNS or IP SAN).
#[derive(Clone, Debug)]
pub struct WebPkiServerVerifier {
    anchors: TrustAnchors,
}

impl WebPkiServerVerifier {
    /// A verifier trusting `anchors`.
    pub fn new(anchors: TrustAnchors) -> Self {
        Self { anchors }
    }
}

impl ServerCertVerifier for WebPkiServerVerifier {
    fn verify_server(
        &self,
        chain: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError> {
        verify_chain(
            &self.anchors.anchors,
            chain,
            now,
            SERVER_AUTH,
            Some(server_name),
        )
    }
}

/// Verifies client chains with rustls-webpki: path to one of the anchors,
/// validity and EKU clientAuth (required). Anonymous clients are refused
/// unless [`allow_anonymous`](Self::allow_anonymous) is set.
#[derive(Clone, Debug)]
pub struct WebPkiClientVerifier {
    anchors: TrustAnchors,
    anonymous: bool,
}

impl WebPkiClientVerifier {
    /// A verifier trusting `anchors`, refusing anonymous clients.
    pub fn new(anchors: TrustAnchors) -> Self {
        Self {
            anchors,
            anonymous: false,
        }
    }

    /// Whether to accept anonymous clients (off by default).
    pub fn allow_anonymous(mut self, yes: bool) -> Self {
        self.anonymous = yes;
        self
    }
}

impl ClientCertVerifier for WebPkiClientVerifier {
    fn anonymous_allowed(&self) -> bool {
        self.anonymous
    }

    fn ca_names(&self) -> &[Vec<u8>] {
        self.anchors.subject_names()
    }

    fn verify_client(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError> {
        verify_chain(&self.anchors.anchors, chain, now, CLIENT_AUTH, None)
    }

    fn verify_anonymous(
        &self,
        cert: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError> {
        if !self.anonymous {
            return Err(CertError::AnonymousNotAllowed);
        }
        verify_anonymous_cert(cert, now)
    }
}

fn verify_chain(
    anchors: &[TrustAnchor<'_>],
    chain: &[CertificateDer<'_>],
    now: UnixTime,
    purpose: Purpose,
    server_name: Option<&ServerName<'_>>,
) -> Result<VerifiedPeer, CertError> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| CertError::Malformed("empty certificate chain".into()))?;
    // Ed25519 leaf check first: webpki does not look at the leaf's key type.
    let info = CertInfo::parse(leaf)?;
    let ee = EndEntityCert::try_from(leaf).map_err(map_webpki_error)?;
    purpose.verify(&ee, &info, anchors, intermediates, now)?;
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
    Ok(VerifiedPeer::new(info, false))
}

/// Checks an anonymous certificate as itself: it must be self-issued and
/// self-signed, not a CA, valid at `now` with EKU clientAuth, and live no
/// longer than [`ANONYMOUS_MAX_LIFETIME_SECS`].
fn verify_anonymous_cert(
    cert: &CertificateDer<'_>,
    now: UnixTime,
) -> Result<VerifiedPeer, CertError> {
    let info = CertInfo::parse(cert)?;
    if !info.is_self_issued() {
        return Err(CertError::InvalidAnonymous(
            "certificate is not self-signed (issuer differs from subject)".into(),
        ));
    }
    // The certificate is its own (only) trust anchor: webpki then checks the
    // self-signature, validity at `now`, basicConstraints and EKU.
    let anchor = webpki::anchor_from_trusted_cert(cert).map_err(map_webpki_error)?;
    let ee = EndEntityCert::try_from(cert).map_err(map_webpki_error)?;
    CLIENT_AUTH.verify(&ee, &info, &[anchor], &[], now)?;
    let (not_before, not_after) = info.validity_secs();
    let lifetime = not_after.saturating_sub(not_before);
    if lifetime > ANONYMOUS_MAX_LIFETIME_SECS {
        return Err(CertError::InvalidAnonymous(format!(
            "lifetime of {lifetime} s exceeds the {ANONYMOUS_MAX_LIFETIME_SECS} s allowed"
        )));
    }
    Ok(VerifiedPeer::new(info, true))
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
    use std::net::{Ipv4Addr, Ipv6Addr};

    use der::Decode;
    use x509_cert::Certificate;

    use super::*;
    use crate::issue::{issue_leaf_with_spki, issue_self_signed_leaf};
    use crate::test_util::{at, chain_of, now, rng, Ca, DAY, NOW_SECS, P256_CERT_PEM};
    use crate::{anonymous_credential, certs_from_pem, KeyPair, LeafSpec, Usage, Validity};

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
        let verifier = client_verifier(&[&root]).allow_anonymous(true);
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
}
