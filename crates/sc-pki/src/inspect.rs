//! Describing certificates, CRLs and keys for people (`sc-ca inspect`,
//! `sc-ca list`). Parsing is x509-cert's and pkcs8's; nothing here verifies a
//! signature or a chain.

use std::net::IpAddr;

use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use ed25519_dalek::pkcs8::ALGORITHM_OID as ED25519_OID;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::ext::pkix::crl::{CrlNumber, CrlReason};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::time::Time;

use crate::cert::{common_name, parse_certificate, subject_alt_names};
use crate::crl::{
    crls_from_pem, parse_crl, serial_hex, unsigned_serial, RevocationReason, RevokedEntry,
};
use crate::error::PkiError;
use crate::identity::KeyPin;
use crate::key::{describe_encryption, KeyPair, ENCRYPTED_PKCS8_PEM_LABEL, PKCS8_PEM_LABEL};
use crate::pem::{certs_from_pem, first_pem_label};
use crate::util::fingerprint;

const SECS_PER_DAY: i128 = 24 * 60 * 60;

/// What a PEM document holds, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemContents {
    /// One or more certificates (a chain or a bundle), in file order.
    Certificates(Vec<CertInfo>),
    /// A CRL (the first one, if there are several).
    Crl(CrlInfo),
    /// A private key.
    Key(KeyInfo),
}

/// A certificate, described. Nothing about it has been verified.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject name, RFC 4514 style (`CN=api.internal`; empty if none).
    pub subject: String,
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// The issuer name, RFC 4514 style.
    pub issuer: String,
    /// The serial number in lower-case hex (unsigned, as `sc-ca revoke --serial` takes it).
    pub serial_hex: String,
    /// Start of the validity period.
    pub not_before: UnixTime,
    /// End of the validity period.
    pub not_after: UnixTime,
    /// Whole days from `now` until `not_after`, rounded down: 0 on the last
    /// day, negative once expired.
    pub expires_in_days: i64,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP address subject alternative names.
    pub ip_addrs: Vec<IpAddr>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// Extended key usages: `serverAuth`, `clientAuth`, `codeSigning`,
    /// `emailProtection`, `timeStamping`, `OCSPSigning`, or the dotted OID.
    pub ekus: Vec<String>,
    /// Whether basicConstraints marks it as a CA.
    pub is_ca: bool,
    /// The CA's pathLenConstraint, if any.
    pub path_len: Option<u8>,
    /// `Ed25519`, or another algorithm's name (`RSA`, `EC P-256`, …) or OID.
    pub key_type: String,
    /// SHA-256 of the certificate's DER encoding.
    pub fingerprint: [u8; 32],
    /// The pin of its key (SHA-256 of the `SubjectPublicKeyInfo`, whatever the
    /// algorithm); `None` only if the key info cannot be re-encoded.
    pub pin: Option<KeyPin>,
    /// The Ed25519 public key, when the key is one (what a renewal signs
    /// again when the private key is not at hand).
    pub public_key: Option<[u8; 32]>,
}

/// A CRL, described. Its signature has not been verified.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlInfo {
    /// The issuer name, RFC 4514 style.
    pub issuer: String,
    /// When it was issued.
    pub this_update: UnixTime,
    /// When the next one is due (verifiers refuse it after that).
    pub next_update: Option<UnixTime>,
    /// Whole days from `now` until `next_update`, rounded down (negative once
    /// out of date).
    pub next_update_in_days: Option<i64>,
    /// The CRL number, if present and below 2⁶⁴.
    pub number: Option<u64>,
    /// The revoked certificates, in CRL order. An entry whose reason code is
    /// not a [`RevocationReason`] (e.g. `certificateHold`) has `reason: None`.
    pub revoked: Vec<RevokedEntry>,
}

/// A private key, described.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// `Ed25519`, another algorithm's name or OID, or `unknown (encrypted)`.
    pub key_type: String,
    /// Whether the key is encrypted under a passphrase.
    pub encrypted: bool,
    /// How it is encrypted, e.g. `PBES2 (scrypt N=16384, r=8, p=1; AES-256-CBC)`.
    pub encryption: Option<String>,
    /// The pin of its public key (Ed25519 keys only; `None` if encrypted).
    pub pin: Option<KeyPin>,
}

/// Describes the contents of a PEM document; `now` is used for the
/// "expires in" fields.
///
/// The first PEM block's label decides what the document is:
/// `CERTIFICATE` (every certificate block is described), `X509 CRL` (the first
/// CRL), `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, or the legacy `EC`/`RSA`/`DSA
/// PRIVATE KEY`. Any other label is [`PkiError::UnsupportedPem`]; no PEM block
/// at all is [`PkiError::Malformed`].
pub fn inspect_pem(pem: &str, now: UnixTime) -> Result<PemContents, PkiError> {
    let label =
        first_pem_label(pem).ok_or_else(|| PkiError::Malformed("no PEM block found".into()))?;
    match label {
        "CERTIFICATE" => certs_from_pem(pem)?
            .iter()
            .map(|cert| cert_info(cert, now))
            .collect::<Result<_, _>>()
            .map(PemContents::Certificates),
        "X509 CRL" => {
            let crls = crls_from_pem(pem)?;
            let first = crls.first().ok_or(PkiError::NoCrl)?;
            crl_info(first, now).map(PemContents::Crl)
        }
        PKCS8_PEM_LABEL
        | ENCRYPTED_PKCS8_PEM_LABEL
        | "EC PRIVATE KEY"
        | "RSA PRIVATE KEY"
        | "DSA PRIVATE KEY" => key_info(label, first_pem_block(pem)).map(PemContents::Key),
        other => Err(PkiError::UnsupportedPem(other.to_owned())),
    }
}

/// Describes a DER certificate (any key algorithm); `now` is used for
/// [`CertInfo::expires_in_days`].
pub fn cert_info(cert: &CertificateDer<'_>, now: UnixTime) -> Result<CertInfo, PkiError> {
    let parsed = parse_certificate(cert)?;
    let tbs = &parsed.tbs_certificate;
    let (dns_names, ip_addrs, uris) = subject_alt_names(tbs)?;
    let basic_constraints = tbs
        .get::<BasicConstraints>()
        .map_err(|e| PkiError::Malformed(format!("basicConstraints: {e}")))?
        .map(|(_, bc)| bc);
    let ekus = tbs
        .get::<ExtendedKeyUsage>()
        .map_err(|e| PkiError::Malformed(format!("extendedKeyUsage: {e}")))?
        .map(|(_, eku)| eku.0.iter().map(eku_name).collect())
        .unwrap_or_default();
    let serial = tbs.serial_number.as_bytes();
    let not_after = unix_time(tbs.validity.not_after);
    let spki = &tbs.subject_public_key_info;
    Ok(CertInfo {
        subject: tbs.subject.to_string(),
        common_name: common_name(&tbs.subject),
        issuer: tbs.issuer.to_string(),
        // A (non-conforming) negative serial is shown as its raw bytes.
        serial_hex: serial_hex(&unsigned_serial(serial).unwrap_or_else(|_| serial.to_vec())),
        not_before: unix_time(tbs.validity.not_before),
        not_after,
        expires_in_days: days_until(not_after, now),
        dns_names,
        ip_addrs,
        uris,
        ekus,
        is_ca: basic_constraints.as_ref().is_some_and(|bc| bc.ca),
        path_len: basic_constraints.and_then(|bc| bc.path_len_constraint),
        key_type: key_type(&spki.algorithm),
        fingerprint: fingerprint(cert),
        pin: spki.to_der().ok().map(|der| KeyPin::of_spki_der(&der)),
        public_key: crate::cert::ed25519_public_key(spki).ok(),
    })
}

fn crl_info(crl: &[u8], now: UnixTime) -> Result<CrlInfo, PkiError> {
    let list = parse_crl(crl)?;
    let tbs = &list.tbs_cert_list;
    let number = tbs
        .crl_extensions
        .iter()
        .flatten()
        .find(|ext| ext.extn_id == der::oid::db::rfc5280::ID_CE_CRL_NUMBER)
        .map(|ext| CrlNumber::from_der(ext.extn_value.as_bytes()))
        .transpose()
        .map_err(|e| PkiError::MalformedCrl(format!("cRLNumber: {e}")))?
        .and_then(|number| {
            let bytes = number.0.as_bytes();
            let mut be = [0u8; 8];
            let start = be.len().checked_sub(bytes.len())?;
            be[start..].copy_from_slice(bytes);
            Some(u64::from_be_bytes(be))
        });
    let mut revoked = Vec::new();
    for entry in tbs.revoked_certificates.iter().flatten() {
        let serial = entry.serial_number.as_bytes();
        let reason = entry
            .crl_entry_extensions
            .iter()
            .flatten()
            .find(|ext| ext.extn_id == der::oid::db::rfc5280::ID_CE_CRL_REASONS)
            .map(|ext| CrlReason::from_der(ext.extn_value.as_bytes()))
            .transpose()
            .map_err(|e| PkiError::MalformedCrl(format!("reasonCode: {e}")))?
            .and_then(RevocationReason::from_x509);
        revoked.push(RevokedEntry {
            serial: unsigned_serial(serial).unwrap_or_else(|_| serial.to_vec()),
            revoked_at: unix_time(entry.revocation_date),
            reason,
        });
    }
    let next_update = tbs.next_update.map(unix_time);
    Ok(CrlInfo {
        issuer: tbs.issuer.to_string(),
        this_update: unix_time(tbs.this_update),
        next_update,
        next_update_in_days: next_update.map(|next| days_until(next, now)),
        number,
        revoked,
    })
}

fn key_info(label: &str, block: Option<&str>) -> Result<KeyInfo, PkiError> {
    let legacy = |key_type: &str| KeyInfo {
        key_type: key_type.to_owned(),
        encrypted: false,
        encryption: None,
        pin: None,
    };
    match label {
        "EC PRIVATE KEY" => return Ok(legacy("EC")),
        "RSA PRIVATE KEY" => return Ok(legacy("RSA")),
        "DSA PRIVATE KEY" => return Ok(legacy("DSA")),
        _ => {}
    }
    let block = block.ok_or_else(|| PkiError::Malformed("PEM block is not terminated".into()))?;
    let (_, der) = der::pem::decode_vec(block.as_bytes())
        .map_err(|e| PkiError::Malformed(format!("PEM private key: {e}")))?;
    let der = zeroize::Zeroizing::new(der);
    if label == ENCRYPTED_PKCS8_PEM_LABEL {
        return Ok(KeyInfo {
            key_type: "unknown (encrypted)".to_owned(),
            encrypted: true,
            encryption: Some(describe_encryption(&der)?),
            pin: None,
        });
    }
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| PkiError::Malformed(format!("PKCS#8 private key: {e}")))?;
    let key_type = key_type(&AlgorithmIdentifierOwned {
        oid: info.algorithm.oid,
        parameters: None,
    });
    let pin = if info.algorithm.oid == ED25519_OID {
        Some(KeyPin::of_key(&KeyPair::from_pkcs8_der(&der)?.public_key()))
    } else {
        None
    };
    Ok(KeyInfo {
        key_type,
        encrypted: false,
        encryption: None,
        pin,
    })
}

/// The text of the first PEM block, from its BEGIN line through its END line.
fn first_pem_block(pem: &str) -> Option<&str> {
    let begin = pem.find("-----BEGIN ")?;
    let rest = &pem[begin..];
    let end = rest.find("-----END ")?;
    let tail = &rest[end + "-----END ".len()..];
    let close = tail.find("-----")? + "-----".len();
    Some(&rest[..end + "-----END ".len() + close])
}

fn unix_time(time: Time) -> UnixTime {
    UnixTime::since_unix_epoch(time.to_unix_duration())
}

fn days_until(time: UnixTime, now: UnixTime) -> i64 {
    let secs = i128::from(time.as_secs()) - i128::from(now.as_secs());
    i64::try_from(secs.div_euclid(SECS_PER_DAY)).unwrap_or(i64::MAX)
}

fn eku_name(oid: &ObjectIdentifier) -> String {
    use der::oid::db::rfc5280 as r;
    let name = match *oid {
        r::ID_KP_SERVER_AUTH => "serverAuth",
        r::ID_KP_CLIENT_AUTH => "clientAuth",
        r::ID_KP_CODE_SIGNING => "codeSigning",
        r::ID_KP_EMAIL_PROTECTION => "emailProtection",
        r::ID_KP_TIME_STAMPING => "timeStamping",
        r::ID_KP_OCSP_SIGNING => "OCSPSigning",
        _ => return oid.to_string(),
    };
    name.to_owned()
}

/// A key algorithm's usual name (with the curve for EC keys), or its OID.
fn key_type(algorithm: &AlgorithmIdentifierOwned) -> String {
    const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
    const X448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.111");
    const ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
    const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
    match algorithm.oid {
        ED25519_OID => "Ed25519".to_owned(),
        ED448 => "Ed448".to_owned(),
        X25519 => "X25519".to_owned(),
        X448 => "X448".to_owned(),
        RSA => "RSA".to_owned(),
        EC => {
            let curve = algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            match curve {
                Some(P256) => "EC P-256".to_owned(),
                Some(P384) => "EC P-384".to_owned(),
                Some(P521) => "EC P-521".to_owned(),
                Some(other) => format!("EC {other}"),
                None => "EC".to_owned(),
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::test_util::{at, now, rng, Ca, DAY, NOW_SECS, P256_CERT_PEM, P256_KEY_PEM};
    use crate::{cert_serial, cert_to_pem, crl_to_pem, issue_crl, LeafSpec, Usage};

    #[test]
    fn certificate_chain_is_described() {
        let mut rng = rng(100);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        let spec = LeafSpec {
            ip_addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))],
            uris: vec!["spiffe://sc/server/api".into()],
            usage: Usage::ServerAndClient,
            ..LeafSpec::server("api.internal")
        };
        let leaf = inter.leaf(&spec, &mut rng);
        let pem = format!(
            "{}{}",
            cert_to_pem(&leaf.chain()[0]).expect("pem"),
            cert_to_pem(&inter.cert).expect("pem")
        );
        let PemContents::Certificates(certs) =
            inspect_pem(&pem, at(NOW_SECS + 10 * DAY)).expect("inspect")
        else {
            panic!("not certificates");
        };
        assert_eq!(certs.len(), 2);
        let (leaf_info, inter_info) = (&certs[0], &certs[1]);
        assert_eq!(leaf_info.subject, "CN=api.internal");
        assert_eq!(leaf_info.common_name.as_deref(), Some("api.internal"));
        assert_eq!(leaf_info.issuer, "CN=Test Intermediate");
        assert_eq!(
            leaf_info.serial_hex,
            serial_hex(&cert_serial(&leaf.chain()[0]).expect("serial"))
        );
        assert_eq!(leaf_info.serial_hex.len(), 32);
        assert_eq!(leaf_info.not_before, at(NOW_SECS - 300));
        assert_eq!(leaf_info.not_after, at(NOW_SECS + 90 * DAY));
        assert_eq!(leaf_info.expires_in_days, 80);
        assert_eq!(leaf_info.dns_names, ["api.internal"]);
        assert_eq!(leaf_info.ip_addrs, [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))]);
        assert_eq!(leaf_info.uris, ["spiffe://sc/server/api"]);
        assert_eq!(leaf_info.ekus, ["serverAuth", "clientAuth"]);
        assert!(!leaf_info.is_ca);
        assert_eq!(leaf_info.key_type, "Ed25519");
        assert_eq!(leaf_info.fingerprint, leaf.fingerprint());
        assert_eq!(leaf_info.pin, Some(KeyPin::of_key(&leaf.public_key())));

        assert!(inter_info.is_ca);
        assert_eq!(inter_info.path_len, Some(0));
        assert!(inter_info.ekus.is_empty());
        assert_eq!(inter_info.subject, "CN=Test Intermediate");
        assert_eq!(inter_info.issuer, "CN=Test Root");

        // Expiry counts down, and goes negative.
        let expired = cert_info(&leaf.chain()[0], at(NOW_SECS + 90 * DAY + 1)).expect("info");
        assert_eq!(expired.expires_in_days, -1);
        let last_day = cert_info(&leaf.chain()[0], at(NOW_SECS + 90 * DAY - 1)).expect("info");
        assert_eq!(last_day.expires_in_days, 0);
    }

    #[test]
    fn foreign_certificate_and_keys_are_described() {
        let PemContents::Certificates(certs) = inspect_pem(P256_CERT_PEM, now()).expect("p256")
        else {
            panic!("not certificates");
        };
        assert_eq!(certs[0].key_type, "EC P-256");
        assert_eq!(certs[0].ekus, ["serverAuth", "clientAuth"]);
        assert!(certs[0].pin.is_some());

        let PemContents::Key(key) = inspect_pem(P256_KEY_PEM, now()).expect("key") else {
            panic!("not a key");
        };
        assert_eq!(key.key_type, "EC");
        assert!(!key.encrypted && key.pin.is_none());
    }

    #[test]
    fn keys_are_described() {
        let mut rng = rng(101);
        let key = KeyPair::generate(&mut rng);
        let plain = key.to_pkcs8_pem().expect("pem");
        assert_eq!(
            inspect_pem(&plain, now()),
            Ok(PemContents::Key(KeyInfo {
                key_type: "Ed25519".into(),
                encrypted: false,
                encryption: None,
                pin: Some(KeyPin::of_key(&key.public_key())),
            }))
        );
        let encrypted = key
            .to_encrypted_pkcs8_pem(b"correct horse", &mut rng)
            .expect("encrypt");
        assert_eq!(
            inspect_pem(&encrypted, now()),
            Ok(PemContents::Key(KeyInfo {
                key_type: "unknown (encrypted)".into(),
                encrypted: true,
                encryption: Some("PBES2 (scrypt N=16384, r=8, p=1; AES-256-CBC)".into()),
                pin: None,
            }))
        );
        // A key followed by a certificate: the key decides.
        let mut rng2 = crate::test_util::rng(102);
        let root = Ca::root("Test Root", &mut rng2);
        let both = format!("{}{}", &*plain, cert_to_pem(&root.cert).expect("pem"));
        assert!(matches!(
            inspect_pem(&both, now()),
            Ok(PemContents::Key(KeyInfo {
                encrypted: false,
                ..
            }))
        ));
    }

    #[test]
    fn crl_is_described() {
        let mut rng = rng(103);
        let root = Ca::root("Test Root", &mut rng);
        let entries = vec![
            RevokedEntry {
                serial: vec![0x40, 1, 2, 3],
                revoked_at: at(NOW_SECS - DAY),
                reason: Some(RevocationReason::KeyCompromise),
            },
            RevokedEntry {
                serial: vec![0x80, 9],
                revoked_at: at(NOW_SECS - 60),
                reason: None,
            },
        ];
        let crl =
            issue_crl(&root.issuer(), &entries, now(), at(NOW_SECS + 7 * DAY), 12).expect("crl");
        let pem = crl_to_pem(&crl).expect("pem");
        assert_eq!(
            inspect_pem(&pem, at(NOW_SECS + DAY)),
            Ok(PemContents::Crl(CrlInfo {
                issuer: "CN=Test Root".into(),
                this_update: now(),
                next_update: Some(at(NOW_SECS + 7 * DAY)),
                next_update_in_days: Some(6),
                number: Some(12),
                revoked: entries,
            }))
        );
    }

    #[test]
    fn unknown_and_missing_blocks_are_errors() {
        let csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(
            inspect_pem(csr, now()),
            Err(PkiError::UnsupportedPem("CERTIFICATE REQUEST".into()))
        );
        assert_eq!(
            PkiError::UnsupportedPem("CERTIFICATE REQUEST".into()).to_string(),
            "unsupported PEM block \"CERTIFICATE REQUEST\" (expected CERTIFICATE, X509 CRL, \
             PRIVATE KEY or ENCRYPTED PRIVATE KEY)"
        );
        assert_eq!(
            inspect_pem("hello", now()),
            Err(PkiError::Malformed("no PEM block found".into()))
        );
        let bad_cert = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            inspect_pem(bad_cert, now()),
            Err(PkiError::Malformed(_))
        ));
        let bad_key = "-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            inspect_pem(bad_key, now()),
            Err(PkiError::Malformed(_))
        ));
    }
}
