//! Reading a [`KeyPin`]: from a certificate ([`KeyPin::of_cert`]) and from
//! text ([`FromStr`]); and reading an allow-list entry ([`AllowEntry`]) from
//! text.
//!
//! The types are in `identity.rs`. These constructors fail with a
//! [`PkiError`], and `error.rs` names `KeyPin` (`CertError::PinMismatch`), so
//! they stand here, above both, and the imports run one way.

use std::net::IpAddr;
use std::str::FromStr;

use base64ct::{Base64, Encoding};
use der::{Decode, Encode};
use rustls_pki_types::CertificateDer;
use x509_cert::Certificate;

use crate::error::PkiError;
use crate::identity::{AllowEntry, AllowedName, KeyPin};

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

impl FromStr for AllowEntry {
    type Err = PkiError;

    /// Parses `[TYPE:]NAME[@ANCHOR]` or `anonymous` (see [`AllowEntry`]):
    /// `dns:`, `uri:`, `ip:` or `cn:` and a non-empty name (an address for
    /// `ip:`); `@*` is any anchor. Nothing is trimmed.
    fn from_str(s: &str) -> Result<Self, PkiError> {
        let invalid = |reason| PkiError::InvalidName {
            name: s.to_owned(),
            reason,
        };
        let (text, anchor) = match s.rsplit_once('@') {
            Some((_, "")) => {
                return Err(invalid(
                    "no trust anchor after '@' (write NAME@ANCHOR, or NAME@* for any anchor)",
                ))
            }
            Some((text, "*")) => (text, None),
            Some((text, anchor)) => (text, Some(anchor.to_owned())),
            None => (s, None),
        };
        let non_empty = |name: &str| {
            if name.is_empty() {
                Err(invalid("the name is empty"))
            } else {
                Ok(name.to_owned())
            }
        };
        let name = if let Some(name) = text.strip_prefix("dns:") {
            AllowedName::Dns(non_empty(name)?)
        } else if let Some(name) = text.strip_prefix("uri:") {
            AllowedName::Uri(non_empty(name)?)
        } else if let Some(addr) = text.strip_prefix("ip:") {
            AllowedName::Ip(
                addr.parse::<IpAddr>()
                    .map_err(|_| invalid("not an IP address after 'ip:'"))?,
            )
        } else if let Some(name) = text.strip_prefix("cn:") {
            AllowedName::Cn(non_empty(name)?)
        } else if text == "anonymous" {
            if anchor.is_some() {
                return Err(invalid(
                    "anonymous clients have no CA: write 'anonymous' without '@'",
                ));
            }
            AllowedName::Anonymous
        } else {
            AllowedName::Untyped(non_empty(text)?)
        };
        Ok(Self { name, anchor })
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

#[cfg(test)]
mod allow_entry_tests {
    use super::*;

    fn entry(name: AllowedName, anchor: Option<&str>) -> AllowEntry {
        AllowEntry {
            name,
            anchor: anchor.map(str::to_owned),
        }
    }

    #[test]
    fn entries_parse_by_type_and_anchor() {
        let ip: IpAddr = "fd00::7".parse().expect("ip");
        for (text, want) in [
            ("app-1", entry(AllowedName::Untyped("app-1".into()), None)),
            ("dns:app-1", entry(AllowedName::Dns("app-1".into()), None)),
            (
                "uri:spiffe://sc/a",
                entry(AllowedName::Uri("spiffe://sc/a".into()), None),
            ),
            ("ip:fd00::7", entry(AllowedName::Ip(ip), None)),
            ("cn:App 1", entry(AllowedName::Cn("App 1".into()), None)),
            (
                "app-1@Example CA",
                entry(AllowedName::Untyped("app-1".into()), Some("Example CA")),
            ),
            (
                "dns:app-1@Example CA",
                entry(AllowedName::Dns("app-1".into()), Some("Example CA")),
            ),
            ("dns:app-1@*", entry(AllowedName::Dns("app-1".into()), None)),
            (
                "cn:alice@example.com@*",
                entry(AllowedName::Cn("alice@example.com".into()), None),
            ),
            (
                "cn:alice@example.com",
                entry(AllowedName::Cn("alice".into()), Some("example.com")),
            ),
            (
                "uri:https://u@h/@Root",
                entry(AllowedName::Uri("https://u@h/".into()), Some("Root")),
            ),
            ("anonymous", entry(AllowedName::Anonymous, None)),
            (
                "spiffe://sc/a",
                entry(AllowedName::Untyped("spiffe://sc/a".into()), None),
            ),
            ("::1", entry(AllowedName::Untyped("::1".into()), None)),
            (
                "DNS:app-1",
                entry(AllowedName::Untyped("DNS:app-1".into()), None),
            ),
        ] {
            let got: AllowEntry = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            // Display reads back as the same entry.
            assert_eq!(got.to_string().parse::<AllowEntry>(), Ok(want), "{text}");
        }
        assert_eq!(
            "cn:alice@example.com@*"
                .parse::<AllowEntry>()
                .map(|e| e.to_string()),
            Ok("cn:alice@example.com@*".to_owned())
        );
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        for (text, reason) in [
            ("", "the name is empty"),
            ("dns:", "the name is empty"),
            ("uri:", "the name is empty"),
            ("cn:@Root", "the name is empty"),
            ("@Root", "the name is empty"),
            ("ip:", "not an IP address after 'ip:'"),
            ("ip:app-1", "not an IP address after 'ip:'"),
            ("ip:[::1]", "not an IP address after 'ip:'"),
            (
                "app-1@",
                "no trust anchor after '@' (write NAME@ANCHOR, or NAME@* for any anchor)",
            ),
            (
                "anonymous@Root",
                "anonymous clients have no CA: write 'anonymous' without '@'",
            ),
        ] {
            assert_eq!(
                text.parse::<AllowEntry>(),
                Err(PkiError::InvalidName {
                    name: text.to_owned(),
                    reason
                }),
                "{text:?}"
            );
        }
    }
}
