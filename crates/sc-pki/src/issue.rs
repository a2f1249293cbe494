//! Certificate issuance with x509-cert's `CertificateBuilder`.

use std::net::IpAddr;
use std::time::Duration;

use der::asn1::{Any, BitString, GeneralizedTime, Ia5String, OctetString, SetOfVec};
use der::{Encode, Tag};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use rustls_pki_types::{CertificateDer, DnsName, UnixTime};
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SignatureBitStringEncoding,
    SubjectPublicKeyInfoOwned,
};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use crate::cert::ParsedCert;
use crate::credential::Credential;
use crate::error::PkiError;
use crate::key::KeyPair;

/// How far `notBefore` is set before `now` by [`Validity::days_from`] and
/// [`anonymous_credential`], to tolerate clocks that are a little behind.
pub const VALIDITY_BACKDATE_SECS: u64 = 5 * 60;

/// How long an anonymous certificate is valid after `now` (30 minutes).
///
/// Its full lifetime (`notAfter - notBefore`) is
/// `ANONYMOUS_LIFETIME_SECS + VALIDITY_BACKDATE_SECS`, because `notBefore` is
/// back-dated like every other certificate's.
pub const ANONYMOUS_LIFETIME_SECS: u64 = 30 * 60;

/// The common name of anonymous certificates.
pub const ANONYMOUS_COMMON_NAME: &str = "anonymous";

/// RFC 5280's upper bound on the length of a common name.
const MAX_COMMON_NAME_LEN: usize = 64;

const SECS_PER_DAY: u64 = 24 * 60 * 60;

/// A certificate's validity period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// The first instant the certificate is valid.
    pub not_before: UnixTime,
    /// The last instant the certificate is valid.
    pub not_after: UnixTime,
}

impl Validity {
    /// Valid from `now` minus [`VALIDITY_BACKDATE_SECS`] (5 minutes, for clock
    /// skew) until `now` plus `days` days.
    pub fn days_from(now: UnixTime, days: u32) -> Self {
        Self::backdated(now, u64::from(days).saturating_mul(SECS_PER_DAY))
    }

    /// Valid from `now` minus [`VALIDITY_BACKDATE_SECS`] until `now` plus `secs`.
    pub(crate) fn backdated(now: UnixTime, secs: u64) -> Self {
        let now = now.as_secs();
        Self {
            not_before: unix(now.saturating_sub(VALIDITY_BACKDATE_SECS)),
            not_after: unix(now.saturating_add(secs)),
        }
    }

    fn to_x509(self) -> Result<x509_cert::time::Validity, PkiError> {
        if self.not_after <= self.not_before {
            return Err(PkiError::InvalidValidity(
                "notAfter must be later than notBefore".into(),
            ));
        }
        Ok(x509_cert::time::Validity {
            not_before: x509_time(self.not_before)?,
            not_after: x509_time(self.not_after)?,
        })
    }
}

fn unix(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

fn x509_time(time: UnixTime) -> Result<Time, PkiError> {
    // The builder turns this into a UTCTime before 2050, as RFC 5280 asks.
    GeneralizedTime::from_unix_duration(Duration::from_secs(time.as_secs()))
        .map(Time::GeneralTime)
        .map_err(|e| PkiError::InvalidValidity(e.to_string()))
}

/// Who signs a certificate: a CA certificate and its key.
#[derive(Clone, Copy, Debug)]
pub struct Issuer<'a> {
    /// The issuing CA's certificate.
    pub cert: &'a CertificateDer<'a>,
    /// The issuing CA's key; must match `cert`.
    pub key: &'a KeyPair,
}

/// What a leaf certificate may be used for (its extended key usage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Usage {
    /// EKU serverAuth only.
    #[default]
    Server,
    /// EKU clientAuth only.
    Client,
    /// EKU serverAuth and clientAuth.
    ServerAndClient,
}

impl Usage {
    fn eku(self) -> ExtendedKeyUsage {
        use der::oid::db::rfc5280::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};
        ExtendedKeyUsage(match self {
            Self::Server => vec![ID_KP_SERVER_AUTH],
            Self::Client => vec![ID_KP_CLIENT_AUTH],
            Self::ServerAndClient => vec![ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH],
        })
    }
}

/// The contents of a leaf (end-entity) certificate.
///
/// At least one DNS name, IP address or URI is required: peers are identified
/// by their subject alternative names, never by the common name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeafSpec {
    /// Subject common name; may be empty (the subject is then empty and the SAN
    /// extension is marked critical, as RFC 5280 requires).
    pub common_name: String,
    /// DNS subject alternative names (a leading `*.` wildcard label is allowed).
    pub dns_names: Vec<String>,
    /// IP address subject alternative names.
    pub ip_addrs: Vec<IpAddr>,
    /// URI subject alternative names (e.g. `spiffe://example/client/alice`).
    pub uris: Vec<String>,
    /// Extended key usage. Defaults to [`Usage::Server`].
    pub usage: Usage,
}

impl LeafSpec {
    /// A server certificate for `name`: common name `name`, and `name` as an IP
    /// SAN if it parses as an IP address, else as a DNS SAN.
    pub fn server(name: &str) -> Self {
        Self::named(name, Usage::Server)
    }

    /// A client certificate for `name`: common name `name`, and `name` as an IP
    /// SAN if it parses as an IP address, as a URI SAN if it contains `:`, else
    /// as a DNS SAN.
    pub fn client(name: &str) -> Self {
        Self::named(name, Usage::Client)
    }

    fn named(name: &str, usage: Usage) -> Self {
        let mut spec = Self {
            common_name: name.to_owned(),
            usage,
            ..Self::default()
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            spec.ip_addrs.push(ip);
        } else if name.contains(':') {
            spec.uris.push(name.to_owned());
        } else {
            spec.dns_names.push(name.to_owned());
        }
        spec
    }

    pub(crate) fn subject_alt_name(&self) -> Result<SubjectAltName, PkiError> {
        let mut names = Vec::new();
        for dns in &self.dns_names {
            check_dns_name(dns)?;
            names.push(GeneralName::DnsName(ia5(dns)?));
        }
        for ip in &self.ip_addrs {
            let octets = match ip {
                IpAddr::V4(v4) => OctetString::new(v4.octets().to_vec()),
                IpAddr::V6(v6) => OctetString::new(v6.octets().to_vec()),
            }
            .map_err(|e| PkiError::Encoding(e.to_string()))?;
            names.push(GeneralName::IpAddress(octets));
        }
        for uri in &self.uris {
            check_uri(uri)?;
            names.push(GeneralName::UniformResourceIdentifier(ia5(uri)?));
        }
        if names.is_empty() {
            return Err(PkiError::NoSubjectAltName);
        }
        Ok(SubjectAltName(names))
    }
}

/// Issues a self-signed root CA certificate for `key` (basicConstraints cA,
/// no path length limit; keyUsage keyCertSign + cRLSign; SKI).
pub fn issue_root<R: CryptoRngCore + ?Sized>(
    key: &KeyPair,
    common_name: &str,
    validity: Validity,
    rng: &mut R,
) -> Result<CertificateDer<'static>, PkiError> {
    let subject = ca_name(common_name)?;
    let spki = ed25519_spki(&key.public_key())?;
    build(Profile::Root, subject, spki, validity, key, None, None, rng)
}

/// Issues an intermediate CA certificate for `subject_public_key`, signed by
/// `issuer` (basicConstraints cA with pathLenConstraint 0; keyUsage keyCertSign
/// + cRLSign; SKI and AKI).
pub fn issue_intermediate<R: CryptoRngCore + ?Sized>(
    issuer: &Issuer<'_>,
    subject_public_key: &[u8; 32],
    common_name: &str,
    validity: Validity,
    rng: &mut R,
) -> Result<CertificateDer<'static>, PkiError> {
    let issuer_info = check_issuer(issuer)?;
    if issuer_info
        .basic_constraints
        .is_some_and(|bc| bc.path_len_constraint == Some(0))
    {
        return Err(PkiError::PathLenConstraint);
    }
    let profile = Profile::SubCA {
        issuer: issuer_info.cert.tbs_certificate.subject,
        path_len_constraint: Some(0),
    };
    let subject = ca_name(common_name)?;
    let spki = ed25519_spki(subject_public_key)?;
    build(
        profile, subject, spki, validity, issuer.key, None, None, rng,
    )
}

/// Issues a leaf certificate for `subject_public_key`, signed by `issuer`
/// (SAN, EKU from `spec.usage`, basicConstraints not-a-CA, keyUsage
/// digitalSignature (+ contentCommitment, which x509-cert's leaf profile always
/// sets), SKI and AKI).
pub fn issue_leaf<R: CryptoRngCore + ?Sized>(
    issuer: &Issuer<'_>,
    subject_public_key: &[u8; 32],
    spec: &LeafSpec,
    validity: Validity,
    rng: &mut R,
) -> Result<CertificateDer<'static>, PkiError> {
    issue_leaf_with_spki(
        issuer,
        ed25519_spki(subject_public_key)?,
        spec,
        validity,
        rng,
    )
}

/// [`issue_leaf`] for any SPKI (tests use it to make a CA-signed P-256 leaf).
pub(crate) fn issue_leaf_with_spki<R: CryptoRngCore + ?Sized>(
    issuer: &Issuer<'_>,
    spki: SubjectPublicKeyInfoOwned,
    spec: &LeafSpec,
    validity: Validity,
    rng: &mut R,
) -> Result<CertificateDer<'static>, PkiError> {
    let issuer_info = check_issuer(issuer)?;
    let san = spec.subject_alt_name()?;
    let subject = leaf_name(&spec.common_name)?;
    let profile = leaf_profile(issuer_info.cert.tbs_certificate.subject);
    build(
        profile,
        subject,
        spki,
        validity,
        issuer.key,
        Some(san),
        Some(spec.usage.eku()),
        rng,
    )
}

/// A fresh Ed25519 key and a self-signed certificate for it, as a client
/// presents when it has no certificate and the server allows anonymous clients.
///
/// The certificate has common name `"anonymous"`, no SAN, EKU clientAuth, is
/// not a CA, and is valid from `now` minus [`VALIDITY_BACKDATE_SECS`] until
/// `now` plus [`ANONYMOUS_LIFETIME_SECS`] (30 minutes).
pub fn anonymous_credential<R: CryptoRngCore + ?Sized>(
    rng: &mut R,
    now: UnixTime,
) -> Result<Credential, PkiError> {
    let key = KeyPair::generate(rng);
    let validity = Validity::backdated(now, ANONYMOUS_LIFETIME_SECS);
    let cert = issue_self_signed_leaf(&key, ANONYMOUS_COMMON_NAME, Usage::Client, validity, rng)?;
    Credential::anonymous(cert, key)
}

/// A self-signed, self-issued end-entity certificate without SAN.
pub(crate) fn issue_self_signed_leaf<R: CryptoRngCore + ?Sized>(
    key: &KeyPair,
    common_name: &str,
    usage: Usage,
    validity: Validity,
    rng: &mut R,
) -> Result<CertificateDer<'static>, PkiError> {
    let subject = ca_name(common_name)?;
    let spki = ed25519_spki(&key.public_key())?;
    let profile = leaf_profile(subject.clone());
    build(
        profile,
        subject,
        spki,
        validity,
        key,
        None,
        Some(usage.eku()),
        rng,
    )
}

fn leaf_profile(issuer: Name) -> Profile {
    Profile::Leaf {
        issuer,
        enable_key_agreement: false,
        enable_key_encipherment: false,
    }
}

/// Parses the issuer certificate and checks it against the issuer key.
pub(crate) fn check_issuer(issuer: &Issuer<'_>) -> Result<ParsedCert, PkiError> {
    let info = ParsedCert::parse(issuer.cert)?;
    if info.public_key != issuer.key.public_key() {
        return Err(PkiError::KeyMismatch);
    }
    if !info.is_ca() {
        return Err(PkiError::NotCa);
    }
    Ok(info)
}

#[allow(clippy::too_many_arguments)]
fn build<R: CryptoRngCore + ?Sized>(
    profile: Profile,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    validity: Validity,
    signer: &KeyPair,
    san: Option<SubjectAltName>,
    eku: Option<ExtendedKeyUsage>,
    rng: &mut R,
) -> Result<CertificateDer<'static>, PkiError> {
    let builder_err = |e: x509_cert::builder::Error| PkiError::Encoding(e.to_string());
    let serial = random_serial(rng)?;
    let signer = CertSigner(signer.signing_key());
    let mut builder =
        CertificateBuilder::new(profile, serial, validity.to_x509()?, subject, spki, &signer)
            .map_err(builder_err)?;
    if let Some(san) = san {
        builder.add_extension(&san).map_err(builder_err)?;
    }
    if let Some(eku) = eku {
        builder.add_extension(&eku).map_err(builder_err)?;
    }
    let cert = builder.build::<CertSignature>().map_err(builder_err)?;
    let der = cert
        .to_der()
        .map_err(|e| PkiError::Encoding(e.to_string()))?;
    Ok(CertificateDer::from(der))
}

/// 16 random bytes, top bit cleared (positive) and the next bit set (so the
/// DER encoding is always 16 bytes and never zero): 126 random bits.
fn random_serial<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(|e| PkiError::Encoding(e.to_string()))
}

fn ed25519_spki(public_key: &[u8; 32]) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
    let key = VerifyingKey::from_bytes(public_key)
        .map_err(|_| PkiError::Malformed("invalid Ed25519 public key".into()))?;
    SubjectPublicKeyInfoOwned::from_key(key).map_err(|e| PkiError::Encoding(e.to_string()))
}

/// A CA (or self-signed) subject: `CN=<common_name>`, which must be non-empty.
fn ca_name(common_name: &str) -> Result<Name, PkiError> {
    if common_name.is_empty() {
        return Err(invalid(common_name, "a CA needs a non-empty common name"));
    }
    leaf_name(common_name)
}

/// `CN=<common_name>` (UTF8String), or the empty name for an empty string.
pub(crate) fn leaf_name(common_name: &str) -> Result<Name, PkiError> {
    if common_name.is_empty() {
        return Ok(RdnSequence::default());
    }
    if common_name.chars().count() > MAX_COMMON_NAME_LEN {
        return Err(invalid(common_name, "longer than 64 characters"));
    }
    if common_name.chars().any(char::is_control) {
        return Err(invalid(common_name, "contains control characters"));
    }
    let value = Any::new(Tag::Utf8String, common_name.as_bytes())
        .map_err(|e| PkiError::Encoding(e.to_string()))?;
    let atv = AttributeTypeAndValue {
        oid: der::oid::db::rfc4519::CN,
        value,
    };
    let rdn = SetOfVec::try_from(vec![atv]).map_err(|e| PkiError::Encoding(e.to_string()))?;
    Ok(RdnSequence(vec![RelativeDistinguishedName(rdn)]))
}

fn check_dns_name(name: &str) -> Result<(), PkiError> {
    let base = name.strip_prefix("*.").unwrap_or(name);
    match DnsName::try_from(base) {
        Ok(_) if !base.contains('*') => Ok(()),
        _ => Err(invalid(name, "not a valid DNS name")),
    }
}

/// A URI needs a scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`) and
/// only printable ASCII without spaces.
fn check_uri(uri: &str) -> Result<(), PkiError> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(invalid(uri, "a URI needs a scheme"));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return Err(invalid(uri, "not a valid URI"));
    }
    if !uri.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(uri, "a URI must be printable ASCII without spaces"));
    }
    Ok(())
}

fn ia5(s: &str) -> Result<Ia5String, PkiError> {
    Ia5String::new(s).map_err(|_| invalid(s, "not ASCII"))
}

fn invalid(name: &str, reason: &'static str) -> PkiError {
    PkiError::InvalidName {
        name: name.to_owned(),
        reason,
    }
}

/// Adapts an Ed25519 `SigningKey` to x509-cert's builder, which needs a
/// signature type with a BIT STRING encoding.
pub(crate) struct CertSigner<'k>(pub(crate) &'k SigningKey);

/// An Ed25519 signature as x509-cert's builder wants it.
pub(crate) struct CertSignature(ed25519_dalek::Signature);

impl SignatureBitStringEncoding for CertSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0.to_bytes())
    }
}

impl signature::Keypair for CertSigner<'_> {
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }
}

impl DynSignatureAlgorithmIdentifier for CertSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        self.0.signature_algorithm_identifier()
    }
}

impl signature::Signer<CertSignature> for CertSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<CertSignature, signature::Error> {
        Ok(CertSignature(ed25519_dalek::Signer::sign(self.0, msg)))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;
    use std::process::Command;

    use der::Decode;
    use x509_cert::ext::pkix::{
        AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
    };
    use x509_cert::Certificate;

    use super::*;
    use crate::test_util::{at, now, rng, Ca, NOW_SECS};
    use crate::{
        cert_to_pem, CertError, ServerCertVerifier, ServerName, TrustAnchors, WebPkiServerVerifier,
    };

    fn parse(cert: &CertificateDer<'_>) -> Certificate {
        Certificate::from_der(cert).expect("certificate parses")
    }

    fn ext<'a, T: Decode<'a> + der::oid::AssociatedOid>(
        cert: &'a Certificate,
    ) -> Option<(bool, T)> {
        cert.tbs_certificate.get::<T>().expect("extension decodes")
    }

    fn ski(cert: &Certificate) -> Vec<u8> {
        ext::<SubjectKeyIdentifier>(cert)
            .expect("SKI present")
            .1
             .0
            .as_bytes()
            .to_vec()
    }

    fn aki(cert: &Certificate) -> Vec<u8> {
        ext::<AuthorityKeyIdentifier>(cert)
            .expect("AKI present")
            .1
            .key_identifier
            .expect("AKI keyIdentifier")
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn extensions_are_set() {
        let mut rng = rng(60);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        let leaf = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let (root, inter, leaf) = (
            parse(&root.cert),
            parse(&inter.cert),
            parse(&leaf.chain()[0]),
        );

        let (critical, bc) = ext::<BasicConstraints>(&root).expect("BC");
        assert!(critical && bc.ca && bc.path_len_constraint.is_none());
        let (critical, bc) = ext::<BasicConstraints>(&inter).expect("BC");
        assert!(critical && bc.ca && bc.path_len_constraint == Some(0));
        let (_, bc) = ext::<BasicConstraints>(&leaf).expect("BC");
        assert!(!bc.ca);

        for ca in [&root, &inter] {
            let (critical, ku) = ext::<KeyUsage>(ca).expect("KU");
            assert!(critical);
            assert_eq!(ku.0, KeyUsages::KeyCertSign | KeyUsages::CRLSign);
        }
        let (_, ku) = ext::<KeyUsage>(&leaf).expect("KU");
        assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());

        assert!(ext::<AuthorityKeyIdentifier>(&root).is_none());
        assert_eq!(aki(&inter), ski(&root));
        assert_eq!(aki(&leaf), ski(&inter));
        assert_ne!(ski(&leaf), ski(&inter));

        let (critical, san) = ext::<SubjectAltName>(&leaf).expect("SAN");
        assert!(!critical, "the subject is not empty");
        assert_eq!(san.0.len(), 1);
        let (_, eku) = ext::<ExtendedKeyUsage>(&leaf).expect("EKU");
        assert_eq!(eku.0, vec![der::oid::db::rfc5280::ID_KP_SERVER_AUTH]);
        assert!(ext::<ExtendedKeyUsage>(&root).is_none());

        assert_eq!(leaf.tbs_certificate.issuer, inter.tbs_certificate.subject);
        assert_eq!(leaf.tbs_certificate.subject.to_string(), "CN=api.internal");
        assert_eq!(
            leaf.signature_algorithm.oid,
            ed25519_dalek::pkcs8::ALGORITHM_OID
        );
    }

    #[test]
    fn empty_common_name_makes_san_critical() {
        let mut rng = rng(61);
        let root = Ca::root("Test Root", &mut rng);
        let spec = LeafSpec {
            dns_names: vec!["api.internal".into()],
            ..LeafSpec::default()
        };
        let leaf = parse(&root.leaf(&spec, &mut rng).chain()[0]);
        assert!(leaf.tbs_certificate.subject.is_empty());
        let (critical, _) = ext::<SubjectAltName>(&leaf).expect("SAN");
        assert!(critical);
    }

    #[test]
    fn serials_are_random_positive_and_16_bytes() {
        let mut rng = rng(62);
        let root = Ca::root("Test Root", &mut rng);
        let mut serials = Vec::new();
        for _ in 0..20 {
            let leaf = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
            let serial = parse(&leaf.chain()[0]).tbs_certificate.serial_number;
            let bytes = serial.as_bytes().to_vec();
            assert_eq!(bytes.len(), 16, "{bytes:02x?}");
            assert_eq!(bytes[0] & 0xc0, 0x40);
            serials.push(bytes);
        }
        serials.sort();
        serials.dedup();
        assert_eq!(serials.len(), 20);
    }

    #[test]
    fn issuance_is_deterministic_for_a_seed() {
        let issue = || {
            let mut rng = rng(63);
            let root = Ca::root("Test Root", &mut rng);
            let leaf = root.leaf(&LeafSpec::client("alice.clients"), &mut rng);
            (root.cert, leaf.chain()[0].clone())
        };
        assert_eq!(issue(), issue());
    }

    #[test]
    fn validity_days_from_backdates_five_minutes() {
        let v = Validity::days_from(now(), 10);
        assert_eq!(v.not_before, at(NOW_SECS - 300));
        assert_eq!(v.not_after, at(NOW_SECS + 10 * 86_400));
        let mut rng = rng(64);
        let root = Ca::root("Test Root", &mut rng);
        let validity = parse(&root.cert).tbs_certificate.validity;
        assert_eq!(
            validity.not_before.to_unix_duration().as_secs(),
            NOW_SECS - 300
        );
        // Before 2050: UTCTime, as RFC 5280 requires.
        assert!(matches!(validity.not_before, Time::UtcTime(_)));
    }

    #[test]
    fn empty_validity_is_rejected() {
        let mut rng = rng(65);
        let key = KeyPair::generate(&mut rng);
        let validity = Validity {
            not_before: now(),
            not_after: now(),
        };
        assert!(matches!(
            issue_root(&key, "Root", validity, &mut rng),
            Err(PkiError::InvalidValidity(_))
        ));
    }

    #[test]
    fn leaf_without_san_is_an_error() {
        let mut rng = rng(66);
        let root = Ca::root("Test Root", &mut rng);
        let key = KeyPair::generate(&mut rng);
        let spec = LeafSpec {
            common_name: "api.internal".into(),
            ..LeafSpec::default()
        };
        assert_eq!(
            issue_leaf(
                &root.issuer(),
                &key.public_key(),
                &spec,
                Validity::days_from(now(), 1),
                &mut rng
            ),
            Err(PkiError::NoSubjectAltName)
        );
    }

    #[test]
    fn invalid_names_are_rejected() {
        let mut rng = rng(67);
        let root = Ca::root("Test Root", &mut rng);
        let key = KeyPair::generate(&mut rng);
        let mut issue = |spec: LeafSpec| {
            issue_leaf(
                &root.issuer(),
                &key.public_key(),
                &spec,
                Validity::days_from(now(), 1),
                &mut rng,
            )
        };
        for dns in ["bad name", "a..b", "", "*", "a.*.b", "ünicode.example"] {
            let spec = LeafSpec {
                dns_names: vec![dns.into()],
                ..LeafSpec::default()
            };
            assert!(
                matches!(issue(spec), Err(PkiError::InvalidName { .. })),
                "{dns:?}"
            );
        }
        for uri in ["no-scheme", "1http://x", "spiffe://a b", "http:"] {
            let spec = LeafSpec {
                uris: vec![uri.into()],
                ..LeafSpec::default()
            };
            assert!(
                matches!(issue(spec), Err(PkiError::InvalidName { .. })),
                "{uri:?}"
            );
        }
        let spec = LeafSpec {
            common_name: "evil\nname".into(),
            ..LeafSpec::server("api.internal")
        };
        assert!(matches!(issue(spec), Err(PkiError::InvalidName { .. })));
        let spec = LeafSpec {
            common_name: "x".repeat(65),
            ..LeafSpec::server("api.internal")
        };
        assert!(matches!(issue(spec), Err(PkiError::InvalidName { .. })));
        assert!(matches!(
            issue_root(&key, "", Validity::days_from(now(), 1), &mut rng),
            Err(PkiError::InvalidName { .. })
        ));
    }

    #[test]
    fn issuer_must_be_a_matching_ca() {
        let mut rng = rng(68);
        let root = Ca::root("Test Root", &mut rng);
        let other_key = KeyPair::generate(&mut rng);
        let subject = KeyPair::generate(&mut rng).public_key();
        let validity = Validity::days_from(now(), 1);
        let spec = LeafSpec::server("api.internal");

        let wrong_key = Issuer {
            cert: &root.cert,
            key: &other_key,
        };
        assert_eq!(
            issue_leaf(&wrong_key, &subject, &spec, validity, &mut rng),
            Err(PkiError::KeyMismatch)
        );

        let leaf_key = KeyPair::generate(&mut rng);
        let leaf = issue_leaf(
            &root.issuer(),
            &leaf_key.public_key(),
            &spec,
            validity,
            &mut rng,
        )
        .expect("leaf");
        let leaf_issuer = Issuer {
            cert: &leaf,
            key: &leaf_key,
        };
        assert_eq!(
            issue_leaf(&leaf_issuer, &subject, &spec, validity, &mut rng),
            Err(PkiError::NotCa)
        );

        let inter = root.intermediate("Test Intermediate", &mut rng);
        assert_eq!(
            issue_intermediate(&inter.issuer(), &subject, "Sub", validity, &mut rng),
            Err(PkiError::PathLenConstraint)
        );

        // Some 32-byte strings are not curve points.
        let not_a_point = (0..=255u8)
            .map(|i| {
                let mut bytes = [0u8; 32];
                bytes[0] = i;
                bytes
            })
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .expect("some y coordinate is off the curve");
        assert!(matches!(
            issue_leaf(&root.issuer(), &not_a_point, &spec, validity, &mut rng),
            Err(PkiError::Malformed(_))
        ));
    }

    #[test]
    fn leaf_without_eku_is_wrong_purpose() {
        let mut rng = rng(69);
        let root = Ca::root("Test Root", &mut rng);
        let key = KeyPair::generate(&mut rng);
        let spec = LeafSpec::server("api.internal");
        let issuer = parse(&root.cert).tbs_certificate.subject;
        let cert = build(
            leaf_profile(issuer),
            leaf_name("api.internal").expect("name"),
            ed25519_spki(&key.public_key()).expect("spki"),
            Validity::days_from(now(), 1),
            &root.key,
            Some(spec.subject_alt_name().expect("san")),
            None,
            &mut rng,
        )
        .expect("issue");
        let verifier =
            WebPkiServerVerifier::new(TrustAnchors::from_der(&[root.cert]).expect("anchors"));
        let name = ServerName::try_from("api.internal").expect("name");
        assert_eq!(
            verifier.verify_server(&[cert], &name, now()),
            Err(CertError::WrongPurpose)
        );
    }

    /// Runs `openssl` with `args`; `None` if openssl is not installed.
    fn openssl(args: &[&str]) -> Option<std::process::Output> {
        match Command::new("openssl").args(args).output() {
            Ok(output) => Some(output),
            Err(err) => {
                eprintln!(
                    "NOTE: openssl not available ({err}); this independent check did NOT run"
                );
                None
            }
        }
    }

    fn write_pem(dir: &Path, name: &str, cert: &CertificateDer<'_>) -> String {
        let path = dir.join(name);
        std::fs::write(&path, cert_to_pem(cert).expect("pem")).expect("write");
        path.to_str().expect("utf-8 path").to_owned()
    }

    /// An independent implementation (OpenSSL) reads our certificates and
    /// validates the chain, with `-x509_strict`.
    #[test]
    #[ignore = "needs the openssl CLI; .ci/run installs it and runs this with --ignored"]
    fn openssl_accepts_issued_chain() {
        assert!(
            openssl(&["version"]).is_some(),
            "the openssl CLI is not installed"
        );
        let mut rng = rng(70);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        let spec = LeafSpec {
            ip_addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))],
            uris: vec!["spiffe://sc/server/api".into()],
            ..LeafSpec::server("api.internal")
        };
        let leaf = inter.leaf(&spec, &mut rng);
        let client = inter.leaf(&LeafSpec::client("alice.clients"), &mut rng);

        let dir = std::env::temp_dir().join(format!("sc-pki-openssl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let root_pem = write_pem(&dir, "root.pem", &root.cert);
        let inter_pem = write_pem(&dir, "inter.pem", &inter.cert);
        let leaf_pem = write_pem(&dir, "leaf.pem", &leaf.chain()[0]);
        let client_pem = write_pem(&dir, "client.pem", &client.chain()[0]);

        let text = openssl(&["x509", "-in", &leaf_pem, "-noout", "-text"]).expect("openssl");
        let stdout = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.status.success(),
            "{}",
            String::from_utf8_lossy(&text.stderr)
        );
        for needle in [
            "Version: 3 (0x2)",
            "Signature Algorithm: ED25519",
            "Public Key Algorithm: ED25519",
            "Issuer: CN = Test Intermediate",
            "Subject: CN = api.internal",
            "DNS:api.internal",
            "IP Address:10.0.0.7",
            "URI:spiffe://sc/server/api",
            "TLS Web Server Authentication",
            "CA:FALSE",
            "Digital Signature",
            "X509v3 Subject Key Identifier",
            "X509v3 Authority Key Identifier",
        ] {
            assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
        }

        let attime = NOW_SECS.to_string();
        let verify = |leaf: &str, purpose: &str, extra: &[&str]| {
            let mut args = vec![
                "verify",
                "-x509_strict",
                "-CAfile",
                &root_pem,
                "-untrusted",
                &inter_pem,
                "-attime",
                &attime,
                "-purpose",
                purpose,
            ];
            args.extend_from_slice(extra);
            args.push(leaf);
            let out = openssl(&args).expect("openssl");
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        };
        let (ok, out) = verify(
            &leaf_pem,
            "sslserver",
            &["-verify_hostname", "api.internal"],
        );
        assert!(ok, "{out}");
        let (ok, out) = verify(&leaf_pem, "sslserver", &["-verify_ip", "10.0.0.7"]);
        assert!(ok, "{out}");
        let (ok, out) = verify(&client_pem, "sslclient", &[]);
        assert!(ok, "{out}");
        // And OpenSSL agrees on the failures.
        let (ok, out) = verify(&leaf_pem, "sslserver", &["-verify_hostname", "db.internal"]);
        assert!(!ok, "{out}");
        let (ok, out) = verify(&client_pem, "sslserver", &[]);
        assert!(!ok, "{out}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// A fresh temporary directory for one OpenSSL test.
    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sc-pki-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn write_text(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8 path").to_owned()
    }

    /// Runs openssl and returns (success, stdout + stderr).
    fn run_openssl(args: &[&str]) -> (bool, String) {
        let out = openssl(args).expect("openssl");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// OpenSSL reads our CRLs (`openssl crl -text`, signature check) and
    /// `openssl verify -crl_check` reports a revoked leaf as revoked and a good
    /// one as OK, for root → leaf and root → intermediate → leaf.
    #[test]
    #[ignore = "needs the openssl CLI; .ci/run installs it and runs this with --ignored"]
    fn openssl_reads_our_crl() {
        use crate::{cert_serial, crl_to_pem, issue_crl, RevocationReason, RevokedEntry};
        assert!(
            openssl(&["version"]).is_some(),
            "the openssl CLI is not installed"
        );
        let mut rng = rng(71);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        let dir = temp_dir("openssl-crl");
        let root_pem = write_pem(&dir, "root.pem", &root.cert);
        let inter_pem = write_pem(&dir, "inter.pem", &inter.cert);
        let attime = NOW_SECS.to_string();

        for (label, ca, untrusted) in [("root", &root, None), ("inter", &inter, Some(&inter_pem))] {
            let bad = ca.leaf(&LeafSpec::server("api.internal"), &mut rng);
            let good = ca.leaf(&LeafSpec::server("api.internal"), &mut rng);
            let bad_serial = cert_serial(&bad.chain()[0]).expect("serial");
            let entries = [RevokedEntry {
                serial: bad_serial.clone(),
                revoked_at: at(NOW_SECS - 3600),
                reason: Some(RevocationReason::KeyCompromise),
            }];
            let crl = issue_crl(&ca.issuer(), &entries, now(), at(NOW_SECS + 7 * 86_400), 5)
                .expect("crl");
            let crl_pem = write_text(
                &dir,
                &format!("{label}-crl.pem"),
                &crl_to_pem(&crl).expect("pem"),
            );
            let bad_pem = write_pem(&dir, &format!("{label}-bad.pem"), &bad.chain()[0]);
            let good_pem = write_pem(&dir, &format!("{label}-good.pem"), &good.chain()[0]);

            // OpenSSL parses it...
            let (ok, text) = run_openssl(&["crl", "-in", &crl_pem, "-noout", "-text"]);
            assert!(ok, "{text}");
            let issuer = if label == "root" {
                "Test Root"
            } else {
                "Test Intermediate"
            };
            let serial_upper = crate::util::Hex(&bad_serial).to_string().to_uppercase();
            for needle in [
                "Version 2 (0x1)",
                "Signature Algorithm: ED25519",
                &format!("Issuer: CN = {issuer}"),
                "X509v3 Authority Key Identifier",
                "X509v3 CRL Number",
                "5",
                &format!("Serial Number: {serial_upper}"),
                "X509v3 CRL Reason Code",
                "Key Compromise",
                "Next Update",
            ] {
                assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
            }
            // ...and checks its signature with the issuer's key.
            let ca_pem = if label == "root" {
                &root_pem
            } else {
                &inter_pem
            };
            let (ok, out) = run_openssl(&["crl", "-in", &crl_pem, "-CAfile", ca_pem, "-noout"]);
            assert!(ok && out.contains("verify OK"), "{out}");

            let verify = |leaf: &str| {
                let mut args = vec![
                    "verify",
                    "-x509_strict",
                    "-crl_check",
                    "-CRLfile",
                    &crl_pem,
                    "-CAfile",
                    &root_pem,
                    "-attime",
                    &attime,
                    "-purpose",
                    "sslserver",
                ];
                if let Some(untrusted) = untrusted {
                    args.extend_from_slice(&["-untrusted", untrusted]);
                }
                args.push(leaf);
                run_openssl(&args)
            };
            let (ok, out) = verify(&good_pem);
            assert!(ok && out.contains("OK"), "{label} good: {out}");
            let (ok, out) = verify(&bad_pem);
            assert!(
                !ok && out.contains("certificate revoked"),
                "{label} bad: {out}"
            );
        }

        // With CRLs for every level (-crl_check_all), a good chain still verifies.
        let good = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let good_pem = write_pem(&dir, "all-good.pem", &good.chain()[0]);
        let crls = [&root, &inter]
            .iter()
            .map(|ca| {
                crl_to_pem(
                    &issue_crl(&ca.issuer(), &[], now(), at(NOW_SECS + 86_400), 1).expect("crl"),
                )
                .expect("pem")
            })
            .collect::<String>();
        let crls_pem = write_text(&dir, "all-crls.pem", &crls);
        let (ok, out) = run_openssl(&[
            "verify",
            "-x509_strict",
            "-crl_check_all",
            "-CRLfile",
            &crls_pem,
            "-CAfile",
            &root_pem,
            "-untrusted",
            &inter_pem,
            "-attime",
            &attime,
            &good_pem,
        ]);
        assert!(ok, "{out}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// OpenSSL decrypts our encrypted private keys (`openssl pkey -passin`),
    /// reads our plain ones, and we read what it encrypts.
    #[test]
    #[ignore = "needs the openssl CLI; .ci/run installs it and runs this with --ignored"]
    fn openssl_reads_our_encrypted_key() {
        assert!(
            openssl(&["version"]).is_some(),
            "the openssl CLI is not installed"
        );
        let mut rng = rng(72);
        let key = KeyPair::generate(&mut rng);
        let pem = key
            .to_encrypted_pkcs8_pem(b"s3cret passphrase", &mut rng)
            .expect("encrypt");
        let dir = temp_dir("openssl-key");
        let path = write_text(&dir, "key.pem", &pem);
        let out = openssl(&[
            "pkey",
            "-in",
            &path,
            "-passin",
            "pass:s3cret passphrase",
            "-pubout",
            "-outform",
            "DER",
        ])
        .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The RFC 8410 SPKI: 12 bytes of header, then the key.
        assert_eq!(out.stdout.len(), 44);
        assert_eq!(&out.stdout[12..], &key.public_key());
        let (ok, text) = run_openssl(&[
            "pkey",
            "-in",
            &path,
            "-passin",
            "pass:s3cret passphrase",
            "-noout",
            "-text",
        ]);
        assert!(ok && text.contains("ED25519 Private-Key"), "{text}");
        // The plain PKCS#8 form too.
        let plain = write_text(&dir, "plain.pem", &key.to_pkcs8_pem().expect("pem"));
        let out = openssl(&["pkey", "-in", &plain, "-pubout", "-outform", "DER"]).expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(&out.stdout[12..], &key.public_key());
        // A wrong passphrase fails there too.
        let (ok, out) = run_openssl(&["pkey", "-in", &path, "-passin", "pass:wrong", "-noout"]);
        assert!(!ok, "{out}");
        // And what OpenSSL re-encrypts, we read.
        let reencrypted = dir.join("again.pem");
        let reencrypted = reencrypted.to_str().expect("utf-8 path");
        let (ok, out) = run_openssl(&[
            "pkcs8",
            "-topk8",
            "-in",
            &path,
            "-passin",
            "pass:s3cret passphrase",
            "-v2",
            "aes-128-cbc",
            "-passout",
            "pass:other",
            "-out",
            reencrypted,
        ]);
        assert!(ok, "{out}");
        let again = std::fs::read_to_string(reencrypted).expect("read");
        let back = KeyPair::from_pem(&again, Some(b"other")).expect("decrypt");
        assert_eq!(back.public_key(), key.public_key());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
