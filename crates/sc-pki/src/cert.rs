//! Reading the fields this crate needs out of a certificate, with x509-cert.
//!
//! This is not a validator: path validation is rustls-webpki's job. It only
//! extracts the key, names and constraints, and insists on an Ed25519 key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use der::asn1::{Any, Ia5StringRef, PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode, Tag, Tagged};
use ed25519_dalek::{pkcs8::ALGORITHM_OID, VerifyingKey};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::{Certificate, TbsCertificate};

use crate::error::ParseError;
use crate::util::fingerprint;

/// OID of the X.520 commonName attribute (2.5.4.3).
const COMMON_NAME: der::oid::ObjectIdentifier = der::oid::db::rfc4519::CN;

/// The parts of a certificate this crate looks at.
#[derive(Debug)]
pub(crate) struct ParsedCert {
    pub(crate) cert: Certificate,
    pub(crate) public_key: [u8; 32],
    pub(crate) fingerprint: [u8; 32],
    pub(crate) common_name: Option<String>,
    pub(crate) dns_names: Vec<String>,
    pub(crate) ip_addrs: Vec<IpAddr>,
    pub(crate) uris: Vec<String>,
    pub(crate) basic_constraints: Option<BasicConstraints>,
    /// The extended key usage purposes; `None` without the extension.
    pub(crate) extended_key_usage: Option<Vec<der::oid::ObjectIdentifier>>,
}

impl ParsedCert {
    /// Parses a DER certificate whose subject key must be Ed25519.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, ParseError> {
        let cert = parse_certificate(der)?;
        let public_key = ed25519_public_key(&cert.tbs_certificate.subject_public_key_info)?;
        let tbs = &cert.tbs_certificate;

        let (dns_names, ip_addrs, uris) = subject_alt_names(tbs)?;

        let basic_constraints = tbs
            .get::<BasicConstraints>()
            .map_err(|e| ParseError::Malformed(format!("basicConstraints: {e}")))?
            .map(|(_, bc)| bc);

        let extended_key_usage = tbs
            .get::<ExtendedKeyUsage>()
            .map_err(|e| ParseError::Malformed(format!("extendedKeyUsage: {e}")))?
            .map(|(_, eku)| eku.0);

        let common_name = common_name(&tbs.subject);

        Ok(Self {
            public_key,
            fingerprint: fingerprint(der),
            common_name,
            dns_names,
            ip_addrs,
            uris,
            basic_constraints,
            extended_key_usage,
            cert,
        })
    }

    pub(crate) fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|bc| bc.ca)
    }

    /// Whether the extended key usage extension is present and lists `purpose`.
    pub(crate) fn has_purpose(&self, purpose: der::oid::ObjectIdentifier) -> bool {
        self.extended_key_usage
            .as_ref()
            .is_some_and(|purposes| purposes.contains(&purpose))
    }

    /// Issuer and subject names are equal (a self-issued certificate).
    pub(crate) fn is_self_issued(&self) -> bool {
        self.cert.tbs_certificate.issuer == self.cert.tbs_certificate.subject
    }

    /// The DER encoding of the subject `Name`.
    pub(crate) fn subject_der(&self) -> Result<Vec<u8>, ParseError> {
        self.cert
            .tbs_certificate
            .subject
            .to_der()
            .map_err(|e| ParseError::Malformed(format!("subject name: {e}")))
    }

    /// `(notBefore, notAfter)` in seconds since the Unix epoch.
    pub(crate) fn validity_secs(&self) -> (u64, u64) {
        let validity = &self.cert.tbs_certificate.validity;
        (
            validity.not_before.to_unix_duration().as_secs(),
            validity.not_after.to_unix_duration().as_secs(),
        )
    }

    /// The names a server certificate can be matched against (DNS and IP SANs).
    pub(crate) fn server_names(&self) -> Vec<String> {
        self.dns_names
            .iter()
            .cloned()
            .chain(self.ip_addrs.iter().map(IpAddr::to_string))
            .collect()
    }
}

/// The DNS names, IP addresses and URIs of the subjectAltName extension.
#[allow(clippy::type_complexity)]
pub(crate) fn subject_alt_names(
    tbs: &TbsCertificate,
) -> Result<(Vec<String>, Vec<IpAddr>, Vec<String>), ParseError> {
    let san = tbs
        .get::<SubjectAltName>()
        .map_err(|e| ParseError::Malformed(format!("subjectAltName: {e}")))?;
    split_names(san.map(|(_, san)| san.0).unwrap_or_default())
}

/// The DNS names, IP addresses and URIs among `names` (others are skipped).
#[allow(clippy::type_complexity)]
pub(crate) fn split_names(
    names: Vec<GeneralName>,
) -> Result<(Vec<String>, Vec<IpAddr>, Vec<String>), ParseError> {
    let mut dns_names = Vec::new();
    let mut ip_addrs = Vec::new();
    let mut uris = Vec::new();
    for name in names {
        match name {
            GeneralName::DnsName(dns) => dns_names.push(dns.to_string()),
            GeneralName::UniformResourceIdentifier(uri) => uris.push(uri.to_string()),
            GeneralName::IpAddress(octets) => ip_addrs.push(ip_from_octets(octets.as_bytes())?),
            _ => {}
        }
    }
    Ok((dns_names, ip_addrs, uris))
}

/// The first common name of a `Name`, if it is a string.
pub(crate) fn common_name(name: &Name) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == COMMON_NAME)
        .and_then(|atv| directory_string(&atv.value))
}

pub(crate) fn parse_certificate(der: &[u8]) -> Result<Certificate, ParseError> {
    Certificate::from_der(der).map_err(|e| ParseError::Malformed(format!("X.509: {e}")))
}

/// The raw Ed25519 key of an SPKI; any other algorithm is `UnsupportedKey`.
pub(crate) fn ed25519_public_key(spki: &SubjectPublicKeyInfoOwned) -> Result<[u8; 32], ParseError> {
    // RFC 8410 §3: the parameters MUST be absent.
    if spki.algorithm.oid != ALGORITHM_OID || spki.algorithm.parameters.is_some() {
        return Err(ParseError::UnsupportedKey);
    }
    let key: [u8; 32] = spki
        .subject_public_key
        .as_bytes()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| ParseError::Malformed("Ed25519 public key is not 32 bytes".into()))?;
    VerifyingKey::from_bytes(&key)
        .map_err(|_| ParseError::Malformed("invalid Ed25519 public key".into()))?;
    Ok(key)
}

fn ip_from_octets(octets: &[u8]) -> Result<IpAddr, ParseError> {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        Ok(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(octets) {
        Ok(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        Err(ParseError::Malformed(format!(
            "IP address SAN of {} bytes",
            octets.len()
        )))
    }
}

/// The text of a DirectoryString-like attribute value, if it is one of the
/// string types in use today.
fn directory_string(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String => value
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::PrintableString => value
            .decode_as::<PrintableStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::Ia5String => value
            .decode_as::<Ia5StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        _ => None,
    }
}
