//! Certificate revocation lists (RFC 5280 §5): issuance with x509-cert's
//! `crl` types, PEM handling, and the parsed form rustls-webpki checks against.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use der::asn1::{BitString, GeneralizedTime, Uint, UtcTime};
use der::pem::LineEnding;
use der::{Decode, Encode};
use ed25519_dalek::pkcs8::ALGORITHM_OID;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};
use webpki::{CertRevocationList, OwnedCertRevocationList};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::{CrlNumber, CrlReason};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use crate::cert::parse_certificate;
use crate::error::PkiError;
use crate::issue::{check_issuer, Issuer};
use crate::util::Hex;

/// The PEM label of a CRL.
const CRL_PEM_LABEL: &str = "X509 CRL";

/// Why a certificate was revoked (RFC 5280 §5.3.1 `CRLReason`, the values a
/// CA issuing end-entity certificates uses).
///
/// Text form (for [`FromStr`] and [`Display`](fmt::Display)): kebab-case,
/// e.g. `key-compromise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationReason {
    /// `unspecified` (0).
    Unspecified,
    /// `key-compromise` (1): the certificate's private key leaked.
    KeyCompromise,
    /// `ca-compromise` (2): the issuing CA's key leaked.
    CaCompromise,
    /// `affiliation-changed` (3): the subject's name or affiliation changed.
    AffiliationChanged,
    /// `superseded` (4): replaced by a new certificate.
    Superseded,
    /// `cessation-of-operation` (5): no longer needed.
    CessationOfOperation,
    /// `privilege-withdrawn` (9): the subject is no longer allowed to use it.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [Self; 7] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::PrivilegeWithdrawn,
    ];

    /// The kebab-case name, e.g. `"key-compromise"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key-compromise",
            Self::CaCompromise => "ca-compromise",
            Self::AffiliationChanged => "affiliation-changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation-of-operation",
            Self::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    fn to_x509(self) -> CrlReason {
        match self {
            Self::Unspecified => CrlReason::Unspecified,
            Self::KeyCompromise => CrlReason::KeyCompromise,
            Self::CaCompromise => CrlReason::CaCompromise,
            Self::AffiliationChanged => CrlReason::AffiliationChanged,
            Self::Superseded => CrlReason::Superseded,
            Self::CessationOfOperation => CrlReason::CessationOfOperation,
            Self::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        }
    }

    /// The reason for an RFC 5280 code, if it is one of ours (`certificateHold`,
    /// `removeFromCRL` and `aACompromise` are not).
    pub(crate) fn from_x509(code: CrlReason) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.to_x509() == code)
    }

    /// `"unspecified, key-compromise, …"`, for error messages.
    pub(crate) fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RevocationReason {
    type Err = PkiError;

    /// Parses a kebab-case name (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, PkiError> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| PkiError::UnknownRevocationReason {
                given: s.to_owned(),
            })
    }
}

/// One revoked certificate in a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial number: the big-endian unsigned value (as
    /// [`cert_serial`] returns it; a leading zero byte is ignored).
    pub serial: Vec<u8>,
    /// When the certificate was revoked.
    pub revoked_at: UnixTime,
    /// Why, if known; written as the `reasonCode` entry extension.
    pub reason: Option<RevocationReason>,
}

/// Issues a v2 CRL signed by `issuer` (RFC 5280 §5).
///
/// It carries `thisUpdate`, `nextUpdate` (verifiers refuse the CRL after that
/// time, so reissue it before), the CRL number and authority key identifier
/// extensions, and for each entry the serial, revocation date and, if given, a
/// `reasonCode` entry extension. The CRL's issuer name is the issuer
/// certificate's subject, so it covers the certificates that issuer signed
/// (with an intermediate CA, that is the intermediate's CRL).
///
/// Errors: the issuer key does not match its certificate
/// ([`PkiError::KeyMismatch`]), the issuer is not a CA ([`PkiError::NotCa`]),
/// `next_update` not after `this_update` ([`PkiError::InvalidValidity`]), an
/// unusable serial ([`PkiError::InvalidSerial`]).
pub fn issue_crl(
    issuer: &Issuer<'_>,
    revoked: &[RevokedEntry],
    this_update: UnixTime,
    next_update: UnixTime,
    crl_number: u64,
) -> Result<CertificateRevocationListDer<'static>, PkiError> {
    let issuer_info = check_issuer(issuer)?;
    if next_update <= this_update {
        return Err(PkiError::InvalidValidity(
            "a CRL's nextUpdate must be later than its thisUpdate".into(),
        ));
    }
    let tbs = &issuer_info.cert.tbs_certificate;
    let subject = tbs.subject.clone();
    let encoding = |e: der::Error| PkiError::Encoding(format!("CRL: {e}"));

    let key_identifier = match tbs
        .get::<SubjectKeyIdentifier>()
        .map_err(|e| PkiError::Malformed(format!("issuer subjectKeyIdentifier: {e}")))?
    {
        Some((_, ski)) => ski.0,
        // An issuer without SKI: the key identifier x509-cert's builder would
        // have given it (method 1 of RFC 5280 §4.2.1.2).
        None => {
            let spki_der = tbs.subject_public_key_info.to_der().map_err(encoding)?;
            let spki = SubjectPublicKeyInfoRef::from_der(&spki_der).map_err(encoding)?;
            AuthorityKeyIdentifier::try_from(spki)
                .map_err(encoding)?
                .key_identifier
                .ok_or_else(|| PkiError::Encoding("CRL: no key identifier".into()))?
        }
    };
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(key_identifier),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let number = CrlNumber(Uint::new(&crl_number.to_be_bytes()).map_err(encoding)?);
    let crl_extensions = vec![
        aki.to_extension(&subject, &[]).map_err(encoding)?,
        number.to_extension(&subject, &[]).map_err(encoding)?,
    ];

    let mut entries = Vec::with_capacity(revoked.len());
    for entry in revoked {
        let crl_entry_extensions = match entry.reason {
            Some(reason) => Some(vec![reason_extension(reason, &subject)?]),
            None => None,
        };
        entries.push(RevokedCert {
            serial_number: serial_number(&entry.serial)?,
            revocation_date: rfc5280_time(entry.revoked_at)?,
            crl_entry_extensions,
        });
    }

    let algorithm = AlgorithmIdentifierOwned {
        oid: ALGORITHM_OID,
        parameters: None,
    };
    let tbs_cert_list = TbsCertList {
        version: x509_cert::Version::V2,
        signature: algorithm.clone(),
        issuer: subject,
        this_update: rfc5280_time(this_update)?,
        next_update: Some(rfc5280_time(next_update)?),
        // RFC 5280 §5.1.2.6: absent, not empty, when nothing is revoked.
        revoked_certificates: (!entries.is_empty()).then_some(entries),
        crl_extensions: Some(crl_extensions),
    };
    let signature = issuer.key.sign(&tbs_cert_list.to_der().map_err(encoding)?);
    let crl = CertificateList {
        tbs_cert_list,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature).map_err(encoding)?,
    };
    Ok(CertificateRevocationListDer::from(
        crl.to_der().map_err(encoding)?,
    ))
}

fn reason_extension(
    reason: RevocationReason,
    subject: &x509_cert::name::Name,
) -> Result<Extension, PkiError> {
    reason
        .to_x509()
        .to_extension(subject, &[])
        .map_err(|e| PkiError::Encoding(format!("CRL reasonCode: {e}")))
}

fn serial_number(serial: &[u8]) -> Result<SerialNumber, PkiError> {
    if serial.is_empty() {
        return Err(PkiError::InvalidSerial("empty".into()));
    }
    SerialNumber::new(serial).map_err(|e| PkiError::InvalidSerial(format!("{}: {e}", Hex(serial))))
}

/// A time as RFC 5280 wants it: UTCTime through 2049, GeneralizedTime after.
pub(crate) fn rfc5280_time(time: UnixTime) -> Result<Time, PkiError> {
    let since_epoch = Duration::from_secs(time.as_secs());
    if let Ok(utc) = UtcTime::from_unix_duration(since_epoch) {
        return Ok(Time::UtcTime(utc));
    }
    GeneralizedTime::from_unix_duration(since_epoch)
        .map(Time::GeneralTime)
        .map_err(|e| PkiError::InvalidValidity(e.to_string()))
}

/// Every `X509 CRL` block of a PEM document, in order (other blocks are
/// skipped). Each must parse as an X.509 CRL ([`PkiError::MalformedCrl`]); no
/// CRL at all is [`PkiError::NoCrl`].
pub fn crls_from_pem(pem: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, PkiError> {
    let mut crls = Vec::new();
    for item in CertificateRevocationListDer::pem_slice_iter(pem.as_bytes()) {
        let crl = item.map_err(|e| PkiError::MalformedCrl(format!("PEM: {e}")))?;
        parse_crl(&crl)?;
        crls.push(crl);
    }
    if crls.is_empty() {
        return Err(PkiError::NoCrl);
    }
    Ok(crls)
}

/// Encodes a DER CRL as a PEM `X509 CRL` block (LF line endings).
pub fn crl_to_pem(crl: &CertificateRevocationListDer<'_>) -> Result<String, PkiError> {
    der::pem::encode_string(CRL_PEM_LABEL, LineEnding::LF, crl.as_ref())
        .map_err(|e| PkiError::Encoding(format!("PEM: {e}")))
}

/// Parses a DER CRL with x509-cert.
pub(crate) fn parse_crl(der: &[u8]) -> Result<CertificateList, PkiError> {
    CertificateList::from_der(der).map_err(|e| PkiError::MalformedCrl(format!("X.509: {e}")))
}

/// A certificate's serial number as [`RevokedEntry::serial`] wants it: the
/// big-endian unsigned value, without the leading zero byte DER adds when the
/// top bit is set. A negative serial (which RFC 5280 forbids) is
/// [`PkiError::InvalidSerial`].
pub fn cert_serial(cert: &CertificateDer<'_>) -> Result<Vec<u8>, PkiError> {
    let cert = parse_certificate(cert)?;
    unsigned_serial(cert.tbs_certificate.serial_number.as_bytes())
}

/// The unsigned value of a DER INTEGER's content bytes.
pub(crate) fn unsigned_serial(twos_complement: &[u8]) -> Result<Vec<u8>, PkiError> {
    match twos_complement {
        [] => Err(PkiError::InvalidSerial("empty".into())),
        [first, ..] if first & 0x80 != 0 => Err(PkiError::InvalidSerial(format!(
            "{} is negative",
            Hex(twos_complement)
        ))),
        [0, rest @ ..] if !rest.is_empty() => Ok(rest.to_vec()),
        bytes => Ok(bytes.to_vec()),
    }
}

/// Parses a serial number written in hex, as `sc-ca` prints it: either case,
/// optionally with a `0x` prefix and `:` separators (`40:1a:…`), as OpenSSL
/// prints serials. Leading zero bytes are dropped.
pub fn serial_from_hex(hex: &str) -> Result<Vec<u8>, PkiError> {
    let invalid = |why: &str| PkiError::InvalidSerial(format!("{hex:?} {why}"));
    let text = hex.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let digits: Vec<u32> = text
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_digit(16).ok_or_else(|| invalid("is not hexadecimal")))
        .collect::<Result<_, _>>()?;
    if digits.is_empty() {
        return Err(invalid("is empty"));
    }
    // An odd number of digits has an implicit leading zero.
    let pad = digits.len() % 2;
    let mut bytes: Vec<u8> = std::iter::repeat_n(0, pad)
        .chain(digits)
        .collect::<Vec<u32>>()
        .chunks_exact(2)
        .map(|pair| u8::try_from(pair[0] * 16 + pair[1]).unwrap_or(0))
        .collect();
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros.min(bytes.len() - 1));
    if bytes.len() > 20 {
        return Err(invalid("is longer than 20 bytes"));
    }
    Ok(bytes)
}

/// Lower-case hex of a serial (no separators).
pub(crate) fn serial_hex(serial: &[u8]) -> String {
    Hex(serial).to_string()
}

/// CRLs parsed once by rustls-webpki, shared by clones of a verifier.
#[derive(Clone, Default)]
pub(crate) struct Crls(Arc<Vec<CertRevocationList<'static>>>);

impl Crls {
    /// Adds `crls` to the ones held; each must be a CRL rustls-webpki can use.
    pub(crate) fn extended(
        &self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Self, PkiError> {
        let mut all: Vec<CertRevocationList<'static>> = Vec::with_capacity(self.0.len());
        for crl in self.0.iter() {
            // `CertRevocationList` is not `Clone`; every one held here is owned.
            if let CertRevocationList::Owned(owned) = crl {
                all.push(CertRevocationList::Owned(owned.clone()));
            }
        }
        for crl in crls {
            parse_crl(&crl)?;
            let owned = OwnedCertRevocationList::from_der(&crl).map_err(webpki_crl_error)?;
            all.push(owned.into());
        }
        Ok(Self(Arc::new(all)))
    }

    pub(crate) fn as_refs(&self) -> Vec<&CertRevocationList<'static>> {
        self.0.iter().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Crls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} CRL(s)", self.0.len())
    }
}

/// Why rustls-webpki refuses a CRL, in words.
#[allow(deprecated)] // UnsupportedCrlSignatureAlgorithm still exists.
fn webpki_crl_error(err: webpki::Error) -> PkiError {
    use webpki::Error as E;
    let why = match err {
        E::UnsupportedCrlVersion => "only version 2 CRLs are supported".to_owned(),
        E::UnsupportedDeltaCrl => "delta CRLs are not supported".to_owned(),
        E::UnsupportedIndirectCrl => "indirect CRLs are not supported".to_owned(),
        E::UnsupportedRevocationReason => "an entry has an unsupported reason code".to_owned(),
        E::UnsupportedRevocationReasonsPartitioning => {
            "CRLs partitioned by reason are not supported".to_owned()
        }
        E::UnsupportedCrlIssuingDistributionPoint => {
            "its issuing distribution point is not supported".to_owned()
        }
        E::InvalidCrlNumber => "its CRL number is invalid".to_owned(),
        E::MalformedExtensions => "its extensions are missing or malformed (the CRL number \
                                   and authority key identifier extensions are needed)"
            .to_owned(),
        E::BadDer | E::BadDerTime => "not a DER-encoded CRL (is nextUpdate missing?)".to_owned(),
        other => format!("{other:?}"),
    };
    PkiError::MalformedCrl(why)
}

#[cfg(test)]
mod tests {
    use x509_cert::ext::pkix::SubjectKeyIdentifier;

    use super::*;
    use crate::test_util::{at, now, rng, Ca, DAY, NOW_SECS, P256_CERT_PEM};
    use crate::{certs_from_pem, LeafSpec};

    fn entry(serial: Vec<u8>, reason: Option<RevocationReason>) -> RevokedEntry {
        RevokedEntry {
            serial,
            revoked_at: at(NOW_SECS - 3600),
            reason,
        }
    }

    #[test]
    fn reasons_have_kebab_names() {
        for reason in RevocationReason::ALL {
            assert_eq!(reason.to_string().parse(), Ok(reason));
            assert_eq!(RevocationReason::from_x509(reason.to_x509()), Some(reason));
        }
        assert_eq!(
            "Key-Compromise".parse(),
            Ok(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            RevocationReason::CessationOfOperation.to_string(),
            "cessation-of-operation"
        );
        let err = "stolen".parse::<RevocationReason>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown revocation reason \"stolen\" (valid: unspecified, key-compromise, \
             ca-compromise, affiliation-changed, superseded, cessation-of-operation, \
             privilege-withdrawn)"
        );
        assert_eq!(
            RevocationReason::from_x509(CrlReason::CertificateHold),
            None
        );
    }

    #[test]
    fn crl_has_the_rfc5280_fields() {
        let mut rng = rng(90);
        let root = Ca::root("Test Root", &mut rng);
        let leaf = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let serial = cert_serial(&leaf.chain()[0]).expect("serial");
        let crl = issue_crl(
            &root.issuer(),
            &[
                entry(serial.clone(), Some(RevocationReason::KeyCompromise)),
                entry(vec![0x7f, 1], None),
            ],
            now(),
            at(NOW_SECS + 7 * DAY),
            42,
        )
        .expect("crl");
        let list = parse_crl(&crl).expect("parses");
        let tbs = &list.tbs_cert_list;
        assert_eq!(tbs.version, x509_cert::Version::V2);
        assert_eq!(tbs.issuer.to_string(), "CN=Test Root");
        assert_eq!(tbs.this_update.to_unix_duration().as_secs(), NOW_SECS);
        assert!(matches!(tbs.this_update, Time::UtcTime(_)));
        let revoked = tbs.revoked_certificates.as_ref().expect("entries");
        assert_eq!(revoked.len(), 2);
        assert_eq!(revoked[0].serial_number.as_bytes(), serial.as_slice());
        let ext = &revoked[0].crl_entry_extensions.as_ref().expect("reason")[0];
        assert_eq!(ext.extn_id, der::oid::db::rfc5280::ID_CE_CRL_REASONS);
        assert_eq!(
            CrlReason::from_der(ext.extn_value.as_bytes()).expect("reason"),
            CrlReason::KeyCompromise
        );
        assert!(revoked[1].crl_entry_extensions.is_none());
        let exts = tbs.crl_extensions.as_ref().expect("extensions");
        let ids: Vec<_> = exts.iter().map(|e| e.extn_id).collect();
        assert_eq!(
            ids,
            [
                der::oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
                der::oid::db::rfc5280::ID_CE_CRL_NUMBER
            ]
        );
        let aki = AuthorityKeyIdentifier::from_der(exts[0].extn_value.as_bytes()).expect("aki");
        let root_cert = parse_certificate(&root.cert).expect("root");
        let (_, ski) = root_cert
            .tbs_certificate
            .get::<SubjectKeyIdentifier>()
            .expect("decodes")
            .expect("SKI");
        assert_eq!(aki.key_identifier, Some(ski.0));
        let number = CrlNumber::from_der(exts[1].extn_value.as_bytes()).expect("number");
        assert_eq!(number.0.as_bytes(), &[42]);
        // webpki accepts it.
        assert!(OwnedCertRevocationList::from_der(&crl).is_ok());
    }

    #[test]
    fn empty_crl_has_no_revoked_list() {
        let mut rng = rng(91);
        let root = Ca::root("Test Root", &mut rng);
        let crl = issue_crl(&root.issuer(), &[], now(), at(NOW_SECS + DAY), 1).expect("crl");
        let list = parse_crl(&crl).expect("parses");
        assert!(list.tbs_cert_list.revoked_certificates.is_none());
        assert!(OwnedCertRevocationList::from_der(&crl).is_ok());
    }

    #[test]
    fn crl_issuance_errors() {
        let mut rng = rng(92);
        let root = Ca::root("Test Root", &mut rng);
        assert!(matches!(
            issue_crl(&root.issuer(), &[], now(), now(), 1),
            Err(PkiError::InvalidValidity(_))
        ));
        assert_eq!(
            issue_crl(
                &root.issuer(),
                &[entry(Vec::new(), None)],
                now(),
                at(NOW_SECS + DAY),
                1
            ),
            Err(PkiError::InvalidSerial("empty".into()))
        );
        assert!(matches!(
            issue_crl(
                &root.issuer(),
                &[entry(vec![0x55; 21], None)],
                now(),
                at(NOW_SECS + DAY),
                1
            ),
            Err(PkiError::InvalidSerial(_))
        ));
        let other = crate::KeyPair::generate(&mut rng);
        let wrong_key = Issuer {
            cert: &root.cert,
            key: &other,
        };
        assert_eq!(
            issue_crl(&wrong_key, &[], now(), at(NOW_SECS + DAY), 1),
            Err(PkiError::KeyMismatch)
        );
        let leaf_key = crate::KeyPair::generate(&mut rng);
        let leaf_cert = crate::issue_leaf(
            &root.issuer(),
            &leaf_key.public_key(),
            &LeafSpec::server("api.internal"),
            crate::Validity::days_from(now(), 1),
            &mut rng,
        )
        .expect("leaf");
        let not_ca = Issuer {
            cert: &leaf_cert,
            key: &leaf_key,
        };
        assert_eq!(
            issue_crl(&not_ca, &[], now(), at(NOW_SECS + DAY), 1),
            Err(PkiError::NotCa)
        );
    }

    #[test]
    fn crl_pem_round_trip() {
        let mut rng = rng(93);
        let root = Ca::root("Test Root", &mut rng);
        let crl = issue_crl(
            &root.issuer(),
            &[entry(vec![0x40, 1, 2], Some(RevocationReason::Superseded))],
            now(),
            at(NOW_SECS + DAY),
            7,
        )
        .expect("crl");
        let pem = crl_to_pem(&crl).expect("pem");
        assert!(pem.starts_with("-----BEGIN X509 CRL-----\n"), "{pem}");
        assert!(pem.ends_with("-----END X509 CRL-----\n"), "{pem}");
        let with_cert = format!("{}{pem}{pem}", crate::cert_to_pem(&root.cert).expect("pem"));
        assert_eq!(
            crls_from_pem(&with_cert).expect("decode"),
            vec![crl.clone(), crl]
        );
        assert_eq!(crls_from_pem(""), Err(PkiError::NoCrl));
        assert_eq!(crls_from_pem(P256_CERT_PEM), Err(PkiError::NoCrl));
        let bad = "-----BEGIN X509 CRL-----\nMAMCAQE=\n-----END X509 CRL-----\n";
        assert!(matches!(crls_from_pem(bad), Err(PkiError::MalformedCrl(_))));
    }

    #[test]
    fn serials() {
        let p256 = certs_from_pem(P256_CERT_PEM).expect("fixture");
        let serial = cert_serial(&p256[0]).expect("serial");
        assert!(!serial.is_empty() && serial.len() <= 20);
        assert_eq!(unsigned_serial(&[0x00, 0x80, 1]), Ok(vec![0x80, 1]));
        assert_eq!(unsigned_serial(&[0x00]), Ok(vec![0x00]));
        assert!(matches!(
            unsigned_serial(&[0x80]),
            Err(PkiError::InvalidSerial(_))
        ));
        assert_eq!(serial_from_hex("40:1A:ff"), Ok(vec![0x40, 0x1a, 0xff]));
        assert_eq!(serial_from_hex("0x0001ab"), Ok(vec![0x01, 0xab]));
        assert_eq!(serial_from_hex("abc"), Ok(vec![0x0a, 0xbc]));
        assert_eq!(serial_from_hex("00"), Ok(vec![0x00]));
        assert_eq!(serial_hex(&[0x40, 0x0a]), "400a");
        for bad in ["", "0x", "xyz", "12 34", &"ab".repeat(21)] {
            assert!(
                matches!(serial_from_hex(bad), Err(PkiError::InvalidSerial(_))),
                "{bad:?}"
            );
        }
        // The serial of a certificate whose top bit is set round-trips
        // through a CRL entry to the same DER INTEGER.
        let sn = serial_number(&[0x80, 1]).expect("serial");
        assert_eq!(sn.to_der().expect("der"), [0x02, 0x03, 0x00, 0x80, 0x01]);
        let sn = serial_number(&[0x00, 0x80, 1]).expect("serial");
        assert_eq!(sn.to_der().expect("der"), [0x02, 0x03, 0x00, 0x80, 0x01]);
    }

    #[test]
    fn malformed_crls_are_refused_by_webpki_parse() {
        let mut rng = rng(94);
        let root = Ca::root("Test Root", &mut rng);
        let crl = issue_crl(&root.issuer(), &[], now(), at(NOW_SECS + DAY), 1).expect("crl");
        assert_eq!(Crls::default().extended(vec![crl]).map(|c| c.len()), Ok(1));
        let garbage = CertificateRevocationListDer::from(vec![0x30, 0x00]);
        assert!(matches!(
            Crls::default().extended(vec![garbage]),
            Err(PkiError::MalformedCrl(_))
        ));
    }
}
