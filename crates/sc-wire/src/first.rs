//! The first bytes of a connection: a Sovereign-Chain ClientHello (and its
//! route name), something else, or not yet known. A pure function over the
//! bytes received so far; the caller reads (bounded by [`MAX_HELLO_RECORD`],
//! with a timeout). The relay routes by it; the server waits with it for a
//! whole ClientHello before a connection may take a handshake slot.

use crate::messages::HANDSHAKE_HEADER_LEN;
use crate::record::{MAX_PLAIN_HANDSHAKE_LEN, RECORD_HEADER_LEN};
use crate::{
    AlertCode, Codec, HandshakeMessage, HandshakeType, InvalidMessage, Reader, RecordHeader,
    RecordKind, RouteName,
};

/// The most a reader needs before it has decided: one whole plaintext
/// handshake record (4 + 2,048 bytes).
pub const MAX_HELLO_RECORD: usize = RECORD_HEADER_LEN + MAX_PLAIN_HANDSHAKE_LEN;

/// What the first bytes of a connection are.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every byte so far fits a ClientHello record: read more.
    NeedMore,
    /// A whole, valid ClientHello record of `len` bytes.
    Hello {
        /// The record's length, header included.
        len: usize,
        /// The route name it asks for.
        route: Option<RouteName>,
    },
    /// Not a Sovereign-Chain connection: the first record is not a
    /// plaintext handshake record starting with a ClientHello (a fallback
    /// takes it; without one it is refused with `alert`).
    Foreign {
        /// Why, for the log.
        reason: String,
        /// The alert a refusal sends.
        alert: AlertCode,
    },
    /// A ClientHello record whose message does not decode.
    Malformed {
        /// Why, for the log.
        reason: String,
        /// The alert the refusal sends.
        alert: AlertCode,
    },
}

fn alert_for(e: &InvalidMessage) -> AlertCode {
    match e {
        InvalidMessage::TooLong { .. } => AlertCode::TOO_LARGE,
        _ => AlertCode::MALFORMED,
    }
}

/// Classifies the bytes received so far.
///
/// A connection is Sovereign-Chain's as soon as its first four bytes decode
/// as a plaintext handshake record header and the first body byte is the
/// ClientHello type; it is foreign as soon as any byte contradicts that.
/// Once it is ours, the whole record must decode as one ClientHello.
pub fn classify(bytes: &[u8]) -> Verdict {
    if bytes.is_empty() {
        return Verdict::NeedMore;
    }
    let header = match RecordHeader::read(&mut Reader::new(bytes)) {
        Ok(h) => h,
        Err(InvalidMessage::Truncated { .. }) => return Verdict::NeedMore,
        Err(e) => {
            return Verdict::Foreign {
                reason: format!("not a ClientHello record ({e})"),
                alert: alert_for(&e),
            }
        }
    };
    if header.kind != RecordKind::HANDSHAKE {
        return Verdict::Foreign {
            reason: format!(
                "not a ClientHello record (the first record is of kind {})",
                header.kind
            ),
            alert: AlertCode::UNEXPECTED_MESSAGE,
        };
    }
    let body = &bytes[RECORD_HEADER_LEN..];
    let Some(&first) = body.first() else {
        return Verdict::NeedMore;
    };
    let typ = HandshakeType(first);
    // After a cookie retry (SPEC §4.5) the first flight is CookieEcho ‖
    // ClientHello; the server reads it as a first record again.
    if typ != HandshakeType::CLIENT_HELLO && typ != HandshakeType::COOKIE_ECHO {
        return Verdict::Foreign {
            reason: format!("the first handshake message is {typ}, not a ClientHello"),
            alert: AlertCode::UNEXPECTED_MESSAGE,
        };
    }
    if body.len() < header.len {
        // Check the message's own header as soon as it is in, so a length
        // that cannot fit is refused before the rest is waited for.
        if body.len() >= HANDSHAKE_HEADER_LEN {
            if let Err(e) = HandshakeMessage::read_header(&mut Reader::new(body)) {
                return Verdict::Malformed {
                    reason: format!("bad ClientHello ({e})"),
                    alert: alert_for(&e),
                };
            }
        }
        return Verdict::NeedMore;
    }
    let mut flight = Reader::new(&body[..header.len]);
    let first = match HandshakeMessage::read(&mut flight) {
        Ok(HandshakeMessage::CookieEcho(_)) => HandshakeMessage::read(&mut flight),
        other => other,
    };
    let whole = first.and_then(|m| flight.expect_empty("message").map(|()| m));
    match whole {
        Ok(HandshakeMessage::ClientHello(ch)) => Verdict::Hello {
            len: RECORD_HEADER_LEN + header.len,
            route: ch.route,
        },
        Ok(other) => Verdict::Malformed {
            reason: format!("the first handshake message is {}", other.typ()),
            alert: AlertCode::UNEXPECTED_MESSAGE,
        },
        Err(e) => Verdict::Malformed {
            reason: format!("bad ClientHello ({e})"),
            alert: alert_for(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        CipherSuite, ClientHello, MlKemEncapsulationKey, ProtocolVersion, Random, X25519Public,
    };

    fn hello(route: Option<&str>) -> Vec<u8> {
        let msg = HandshakeMessage::ClientHello(ClientHello {
            version: ProtocolVersion(0x5c01),
            random: Random::from([1; 32]),
            x25519: X25519Public::from([2; 32]),
            mlkem: MlKemEncapsulationKey::from([3; 1184]),
            suites: vec![CipherSuite(1), CipherSuite(2)],
            route: route.map(|r| RouteName::new(r).expect("route")),
        })
        .encoded();
        let mut record = RecordHeader {
            kind: RecordKind::HANDSHAKE,
            len: msg.len(),
        }
        .encoded();
        record.extend_from_slice(&msg);
        record
    }

    #[test]
    fn a_client_hello_is_recognised_with_its_route() {
        let rec = hello(Some("db.internal"));
        assert_eq!(
            classify(&rec),
            Verdict::Hello {
                len: rec.len(),
                route: Some(RouteName::new("db.internal").expect("route"))
            }
        );
        // Bytes after the record are the caller's to forward.
        let mut more = rec.clone();
        more.extend_from_slice(b"xyz");
        assert!(matches!(classify(&more), Verdict::Hello { len, .. } if len == rec.len()));
        let plain = hello(None);
        assert!(matches!(
            classify(&plain),
            Verdict::Hello { route: None, .. }
        ));
    }

    #[test]
    fn every_prefix_of_a_hello_needs_more() {
        let rec = hello(Some("a"));
        for cut in 0..rec.len() {
            assert_eq!(classify(&rec[..cut]), Verdict::NeedMore, "cut {cut}");
        }
    }

    #[test]
    fn foreign_bytes_are_told_at_the_first_byte() {
        for first in [
            &b"G"[..],
            b"GET / HTTP/1.1\r\n",
            &[0x16, 0x03, 0x01],
            &[0x10, 0x00],
        ] {
            assert!(
                matches!(classify(first), Verdict::Foreign { .. }),
                "{first:?}"
            );
        }
        // A sealed record first, or a handshake record with another message.
        assert!(matches!(
            classify(&[0xc3, 0, 0, 20]),
            Verdict::Foreign { .. }
        ));
        assert!(matches!(
            classify(&[0xc1, 0, 0, 10, 2]),
            Verdict::Foreign { .. }
        ));
    }

    #[test]
    fn oversized_and_garbled_hellos_are_refused() {
        // A record longer than 2,048 bytes: refused on its header.
        assert_eq!(
            classify(&[0xc1, 0, 0x10, 0]),
            Verdict::Foreign {
                reason: "not a ClientHello record (too large: record has length 4096, the maximum is 2048)".into(),
                alert: AlertCode::TOO_LARGE,
            }
        );
        // A ClientHello whose own length exceeds its maximum: refused before
        // the body is waited for.
        assert!(matches!(
            classify(&[0xc1, 0, 0x07, 0xd0, 1, 0, 0x07, 0xcc]),
            Verdict::Malformed {
                alert: AlertCode::TOO_LARGE,
                ..
            }
        ));
        // A whole record that is garbage after the type byte.
        let mut rec = hello(Some("a"));
        let n = rec.len();
        rec[n - 2] = 9; // the route's length no longer fits
        assert!(matches!(classify(&rec), Verdict::Malformed { .. }));
        let mut junk = vec![0xc1, 0, 0, 50, 1];
        junk.extend_from_slice(&[0xee; 49]);
        assert!(matches!(classify(&junk), Verdict::Malformed { .. }));
    }
}
