//! Reading a [`KeyPin`]: from a certificate ([`KeyPin::of_cert`]) and from
//! text ([`FromStr`]).
//!
//! The type is in `identity.rs`. These two constructors fail with a
//! [`PkiError`], and `error.rs` names `KeyPin` (`CertError::PinMismatch`), so
//! they stand here, above both, and the imports run one way.

use std::str::FromStr;

use base64ct::{Base64, Encoding};
use der::{Decode, Encode};
use rustls_pki_types::CertificateDer;
use x509_cert::Certificate;

use crate::error::PkiError;
use crate::identity::KeyPin;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ed25519_spki_der;
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
