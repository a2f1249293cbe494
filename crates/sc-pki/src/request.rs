//! PKCS#10 certification requests (RFC 2986), so that a host's key never
//! leaves the host: [`make_request_pem`] signs a request with the host's key,
//! [`CertRequest::from_pem_or_der`] reads one (ours or OpenSSL's) and checks
//! its self-signature; the CA then issues a certificate for
//! [`CertRequest::public_key`] with names of its own choosing.

use std::net::IpAddr;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use ed25519_dalek::pkcs8::ALGORITHM_OID as ED25519;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use spki::AlgorithmIdentifierOwned;
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::request::{CertReq, ExtensionReq};

use crate::cert::{common_name, ed25519_public_key, split_names};
use crate::error::{ParseError, PkiError};
use crate::issue::{leaf_name, CertSignature, CertSigner, LeafSpec};
use crate::key::KeyPair;
use crate::pem::first_pem_label;
use crate::verify::verify_ed25519;

/// The PEM label of a PKCS#10 request.
const REQUEST_PEM_LABEL: &str = "CERTIFICATE REQUEST";

/// Why a certification request was refused.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The input is neither a PEM `CERTIFICATE REQUEST` nor DER.
    #[error("not a certificate request (neither PEM \"CERTIFICATE REQUEST\" nor DER)")]
    NotRequest,
    /// The input is PEM, but of something else (a key, a certificate).
    #[error("holds a PEM \"{0}\" block, not a \"CERTIFICATE REQUEST\"")]
    WrongPemLabel(String),
    /// The DER (or the PEM around it) does not parse as PKCS#10.
    #[error("the request does not parse as PKCS#10: {0}")]
    Malformed(String),
    /// The request's key is not Ed25519; names the algorithm (and curve).
    #[error("the request's key is {0}, not Ed25519")]
    UnsupportedKey(String),
    /// The request is signed with another algorithm than Ed25519.
    #[error("the request is signed with {0}, not Ed25519")]
    UnsupportedSignature(String),
    /// The self-signature does not verify with the request's key.
    #[error("the request's signature does not verify")]
    BadSignature,
}

/// A PKCS#10 request whose Ed25519 self-signature verified.
///
/// Its names are what the requester asked for: a CA shows them, and issues
/// the names of its own command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRequest {
    public_key: [u8; 32],
    common_name: Option<String>,
    dns_names: Vec<String>,
    ip_addrs: Vec<IpAddr>,
    uris: Vec<String>,
}

impl CertRequest {
    /// Reads a request in PEM (`CERTIFICATE REQUEST`; text around it is
    /// skipped) or DER, and checks it (see [`CertRequest::from_der`]).
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, RequestError> {
        if bytes.first() == Some(&0x30) {
            return Self::from_der(bytes);
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(RequestError::NotRequest);
        };
        match CertificateSigningRequestDer::from_pem_slice(bytes) {
            Ok(der) => Self::from_der(der.as_ref()),
            Err(rustls_pki_types::pem::Error::NoItemsFound) => match first_pem_label(text) {
                Some(label) => Err(RequestError::WrongPemLabel(label.to_owned())),
                None => Err(RequestError::NotRequest),
            },
            Err(e) => Err(RequestError::Malformed(format!("PEM: {e}"))),
        }
    }

    /// Parses a DER PKCS#10 request: its key must be Ed25519, its signature
    /// Ed25519 and valid (ed25519-dalek's `verify_strict`) over the
    /// request's information as decoded and re-encoded (DER has one
    /// encoding; anything that re-encodes differently fails to verify).
    pub fn from_der(der: &[u8]) -> Result<Self, RequestError> {
        let req = CertReq::from_der(der).map_err(|e| RequestError::Malformed(e.to_string()))?;
        let spki = &req.info.public_key;
        let public_key = ed25519_public_key(spki).map_err(|e| match e {
            ParseError::UnsupportedKey => RequestError::UnsupportedKey(describe(&spki.algorithm)),
            ParseError::Malformed(m) => RequestError::Malformed(m),
        })?;
        if req.algorithm.oid != ED25519 || req.algorithm.parameters.is_some() {
            return Err(RequestError::UnsupportedSignature(describe(&req.algorithm)));
        }
        let message = req
            .info
            .to_der()
            .map_err(|e| RequestError::Malformed(e.to_string()))?;
        let signature = req.signature.as_bytes().unwrap_or_default();
        if !verify_ed25519(&public_key, &message, signature) {
            return Err(RequestError::BadSignature);
        }
        let (dns_names, ip_addrs, uris) =
            split_names(requested_names(&req)?).map_err(|e| match e {
                ParseError::Malformed(m) => RequestError::Malformed(m),
                ParseError::UnsupportedKey => RequestError::Malformed("subjectAltName".into()),
            })?;
        Ok(Self {
            public_key,
            common_name: common_name(&req.info.subject),
            dns_names,
            ip_addrs,
            uris,
        })
    }

    /// The requester's Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The subject common name the requester asked for, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The DNS names of the requested subjectAltName.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The IP addresses of the requested subjectAltName.
    pub fn ip_addrs(&self) -> &[IpAddr] {
        &self.ip_addrs
    }

    /// The URIs of the requested subjectAltName.
    pub fn uris(&self) -> &[String] {
        &self.uris
    }
}

/// The general names of the request's subjectAltName extension (in its
/// extensionRequest attribute), if any.
fn requested_names(req: &CertReq) -> Result<Vec<GeneralName>, RequestError> {
    let malformed = |e: der::Error| RequestError::Malformed(format!("extensionRequest: {e}"));
    let mut names = Vec::new();
    for attr in req.info.attributes.iter() {
        if attr.oid != <ExtensionReq as der::oid::AssociatedOid>::OID {
            continue;
        }
        for value in attr.values.iter() {
            let extensions: Vec<Extension> = value.decode_as().map_err(malformed)?;
            for ext in extensions {
                if ext.extn_id == <SubjectAltName as der::oid::AssociatedOid>::OID {
                    let san =
                        SubjectAltName::from_der(ext.extn_value.as_bytes()).map_err(malformed)?;
                    names.extend(san.0);
                }
            }
        }
    }
    Ok(names)
}

/// An algorithm's name and OID, e.g. `id-ecPublicKey secp384r1
/// (1.2.840.10045.2.1)`.
fn describe(alg: &AlgorithmIdentifierOwned) -> String {
    let name = |oid: &ObjectIdentifier| der::oid::db::DB.by_oid(oid).map(str::to_owned);
    let curve = alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .map(|c| name(&c).unwrap_or_else(|| c.to_string()));
    match (name(&alg.oid), curve) {
        (Some(n), Some(c)) => format!("{n} {c} ({})", alg.oid),
        (Some(n), None) => format!("{n} ({})", alg.oid),
        (None, Some(c)) => format!("{} {c}", alg.oid),
        (None, None) => alg.oid.to_string(),
    }
}

/// A PKCS#10 request (PEM `CERTIFICATE REQUEST`, LF line endings) for
/// `key`, signed by it, asking for `spec`'s common name and subject
/// alternative names. `spec.usage` is not part of a request: the CA decides.
pub fn make_request_pem(key: &KeyPair, spec: &LeafSpec) -> Result<String, PkiError> {
    let builder_err = |e: x509_cert::builder::Error| PkiError::Encoding(e.to_string());
    let san = spec.subject_alt_name()?;
    let subject = leaf_name(&spec.common_name)?;
    let signer = CertSigner(key.signing_key());
    let mut builder = RequestBuilder::new(subject, &signer).map_err(builder_err)?;
    builder.add_extension(&san).map_err(builder_err)?;
    let req = builder.build::<CertSignature>().map_err(builder_err)?;
    let der = req
        .to_der()
        .map_err(|e| PkiError::Encoding(format!("request: {e}")))?;
    der::pem::encode_string(REQUEST_PEM_LABEL, der::pem::LineEnding::LF, &der)
        .map_err(|e| PkiError::Encoding(format!("PEM: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::rng;

    #[test]
    fn a_request_round_trips() {
        let mut rng = rng(60);
        let key = KeyPair::generate(&mut rng);
        let mut spec = LeafSpec::server("db.internal");
        spec.ip_addrs.push("10.0.0.7".parse().expect("ip"));
        spec.uris.push("spiffe://example/db".into());
        let pem = make_request_pem(&key, &spec).expect("request");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
        let req = CertRequest::from_pem_or_der(pem.as_bytes()).expect("parses");
        assert_eq!(req.public_key(), key.public_key());
        assert_eq!(req.common_name(), Some("db.internal"));
        assert_eq!(req.dns_names(), ["db.internal"]);
        assert_eq!(req.ip_addrs(), [spec.ip_addrs[0]]);
        assert_eq!(req.uris(), ["spiffe://example/db"]);
        // The same request as DER.
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).expect("pem");
        assert_eq!(CertRequest::from_pem_or_der(der.as_ref()), Ok(req));
    }

    #[test]
    fn a_changed_request_does_not_verify() {
        let mut rng = rng(61);
        let key = KeyPair::generate(&mut rng);
        let pem = make_request_pem(&key, &LeafSpec::client("app-1")).expect("request");
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).expect("pem");
        let mut bytes = der.as_ref().to_vec();
        // The last byte of the signature; then a byte of the subject's "app-1".
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            CertRequest::from_der(&bytes),
            Err(RequestError::BadSignature)
        );
        let mut bytes = der.as_ref().to_vec();
        let at = bytes
            .windows(5)
            .position(|w| w == b"app-1")
            .expect("the name is in the request");
        bytes[at + 4] = b'2';
        assert_eq!(
            CertRequest::from_der(&bytes),
            Err(RequestError::BadSignature)
        );
    }

    #[test]
    fn another_signature_algorithm_is_named() {
        let mut rng = rng(62);
        let key = KeyPair::generate(&mut rng);
        let pem = make_request_pem(&key, &LeafSpec::client("app-1")).expect("request");
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).expect("pem");
        let mut req = CertReq::from_der(der.as_ref()).expect("parses");
        // ecdsa-with-SHA256, over an Ed25519 key.
        req.algorithm.oid = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
        let der = req.to_der().expect("encodes");
        assert_eq!(
            CertRequest::from_der(&der),
            Err(RequestError::UnsupportedSignature(
                "ecdsa-with-SHA256 (1.2.840.10045.4.3.2)".into()
            ))
        );
    }

    #[test]
    fn other_input_is_named() {
        assert_eq!(
            CertRequest::from_pem_or_der(b"hello"),
            Err(RequestError::NotRequest)
        );
        assert_eq!(
            CertRequest::from_pem_or_der(&[0xff, 0x00]),
            Err(RequestError::NotRequest)
        );
        assert!(matches!(
            CertRequest::from_pem_or_der(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(RequestError::Malformed(_))
        ));
        assert_eq!(
            CertRequest::from_pem_or_der(crate::test_util::P256_KEY_PEM.as_bytes()),
            Err(RequestError::WrongPemLabel("PRIVATE KEY".into()))
        );
    }
}
