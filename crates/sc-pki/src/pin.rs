//! Public-key pins and the server's client identity policy.

use std::fmt;
use std::str::FromStr;

use base64ct::{Base64, Encoding};
use der::asn1::BitStringRef;
use der::{Decode, Encode};
use ed25519_dalek::pkcs8::ALGORITHM_OID;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use x509_cert::Certificate;

use crate::error::PkiError;
use crate::util::Hex;
use crate::verify::PeerIdentity;

/// A SHA-256 public-key pin: the hash of a certificate's DER-encoded
/// `SubjectPublicKeyInfo`, as in HPKP (RFC 7469) and curl's `--pinnedpubkey`.
///
/// A pin names a key, not a certificate: it survives renewal of a certificate
/// for the same key (`sc-ca renew` without `--rekey`).
///
/// Written as `sha256:<64 hex digits>` ([`Display`](fmt::Display)); parsed from
/// that or from HPKP's `sha256//<base64>` ([`FromStr`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPin(pub [u8; 32]);

impl KeyPin {
    /// The pin of a certificate's key (any key algorithm).
    pub fn of_cert(cert: &CertificateDer<'_>) -> Result<Self, PkiError> {
        let cert =
            Certificate::from_der(cert).map_err(|e| PkiError::Malformed(format!("X.509: {e}")))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| PkiError::Encoding(format!("subjectPublicKeyInfo: {e}")))?;
        Ok(Self::of_spki_der(&spki))
    }

    /// The pin of an Ed25519 public key: SHA-256 of its RFC 8410
    /// `SubjectPublicKeyInfo` DER, so `KeyPin::of_key(&key)` equals
    /// [`KeyPin::of_cert`] of any certificate for that key.
    pub fn of_key(public_key: &[u8; 32]) -> Self {
        Self::of_spki_der(&ed25519_spki_der(public_key))
    }

    /// SHA-256 of a DER `SubjectPublicKeyInfo`.
    pub(crate) fn of_spki_der(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }
}

/// The DER `SubjectPublicKeyInfo` of an Ed25519 key (44 bytes).
fn ed25519_spki_der(public_key: &[u8; 32]) -> Vec<u8> {
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: ALGORITHM_OID,
            parameters: None,
        },
        subject_public_key: BitStringRef::from_bytes(public_key)
            .expect("a 32-byte BIT STRING is always encodable"),
    };
    spki.to_der()
        .expect("an Ed25519 SubjectPublicKeyInfo (44 bytes) is always encodable")
}

impl fmt::Display for KeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", Hex(&self.0))
    }
}

impl fmt::Debug for KeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPin({self})")
    }
}

impl FromStr for KeyPin {
    type Err = PkiError;

    /// Parses `sha256:<64 hex digits>` (either case) or `sha256//<base64 of 32
    /// bytes>`; surrounding white space is ignored.
    fn from_str(s: &str) -> Result<Self, PkiError> {
        let text = s.trim();
        let invalid = || PkiError::InvalidPin(s.to_owned());
        let mut pin = [0u8; 32];
        if let Some(b64) = text.strip_prefix("sha256//") {
            let decoded = Base64::decode(b64, &mut pin).map_err(|_| invalid())?;
            if decoded.len() != 32 {
                return Err(invalid());
            }
        } else if let Some(hex) = text.strip_prefix("sha256:") {
            decode_hex_into(hex, &mut pin).ok_or_else(invalid)?;
        } else {
            return Err(invalid());
        }
        Ok(Self(pin))
    }
}

/// Decodes exactly `out.len()` bytes of hex; `None` on any other input.
fn decode_hex_into(hex: &str, out: &mut [u8]) -> Option<()> {
    let bytes = hex.as_bytes();
    if bytes.len() != 2 * out.len() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        let value = digit(pair[0])? * 16 + digit(pair[1])?;
        *byte = u8::try_from(value).ok()?;
    }
    Some(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{rng, Ca};
    use crate::util::hex;
    use crate::LeafSpec;

    #[test]
    fn pin_of_cert_equals_pin_of_key() {
        let mut rng = rng(80);
        let root = Ca::root("Test Root", &mut rng);
        let leaf = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let by_cert = KeyPin::of_cert(&leaf.chain()[0]).expect("pin");
        assert_eq!(by_cert, KeyPin::of_key(&leaf.public_key()));
        assert_ne!(by_cert, KeyPin::of_cert(&root.cert).expect("pin"));
        // The SPKI is the RFC 8410 one: 302a300506032b6570032100 || key.
        let spki = ed25519_spki_der(&leaf.public_key());
        assert_eq!(hex(&spki[..12]), "302a300506032b6570032100");
        assert_eq!(&spki[12..], &leaf.public_key());
    }

    #[test]
    fn pin_text_round_trips() {
        let pin = KeyPin::of_key(&[9; 32]);
        let text = pin.to_string();
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(text.parse::<KeyPin>(), Ok(pin));
        assert_eq!(
            text.to_uppercase().replace("SHA256", "sha256").parse(),
            Ok(pin)
        );
        assert_eq!(format!("  {text}\n").parse(), Ok(pin));
        let hpkp = format!("sha256//{}", Base64::encode_string(&pin.0));
        assert_eq!(hpkp.parse(), Ok(pin));
        assert_eq!(format!("{pin:?}"), format!("KeyPin({text})"));
    }

    #[test]
    fn bad_pins_are_refused() {
        for bad in [
            "",
            "sha256:",
            "sha256:abcd",
            &format!("sha256:{}", "g".repeat(64)),
            &format!("sha256:{}", "a".repeat(66)),
            &format!("sha1:{}", "a".repeat(64)),
            "sha256//AAAA",
            "sha256//not base64!",
            &format!("sha256:{}é", "a".repeat(63)),
        ] {
            assert_eq!(
                bad.parse::<KeyPin>(),
                Err(PkiError::InvalidPin(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(
            "sha256:xyz".parse::<KeyPin>().map_err(|e| e.to_string()),
            Err(
                "invalid key pin \"sha256:xyz\": expected sha256:<64 hex digits> \
                 or sha256//<base64>"
                    .to_owned()
            )
        );
    }

    #[test]
    fn pin_of_garbage_is_malformed() {
        assert!(matches!(
            KeyPin::of_cert(&CertificateDer::from(vec![0x30, 0x00])),
            Err(PkiError::Malformed(_))
        ));
    }
}
