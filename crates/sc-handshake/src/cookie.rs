//! The reference server's cookies (SPEC §4.5): what a server under load
//! answers a ClientHello with instead of doing ML-KEM, X25519 and signature
//! work, and the check of the cookie a client echoes.
//!
//! Sans-I/O like the rest of the crate: the caller passes the time, the
//! client's address and randomness, and decides when it is under load.
//! [`CookieJar::first_flight`] takes a whole first-flight record and says
//! what to do with the connection.
//!
//! ```text
//! cookie = t (u32) || HMAC-SHA256(K_w, "SC/1 cookie" || t || source || SHA-256(ClientHello))
//! ```
//!
//! `K_w` is a random key for the 60-second window `w = t / 60`; the jar
//! holds the keys of the current and the previous window only, so a key is
//! erased at most two minutes after it was made.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sc_pki::UnixTime;
use sc_wire::messages::HANDSHAKE_HEADER_LEN;
use sc_wire::record::RECORD_HEADER_LEN;
use sc_wire::{
    AlertCode, CipherSuite, Codec, Cookie, HandshakeMessage, HandshakeType, Reader, RecordHeader,
    RecordKind,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Seconds a cookie is good for after it was made.
pub const COOKIE_LIFETIME_SECS: u64 = 10;
/// Seconds each cookie key is used to make cookies.
pub const COOKIE_WINDOW_SECS: u64 = 60;
/// The length of the reference server's cookies.
pub const COOKIE_LEN: usize = 4 + 32;

const LABEL: &[u8] = b"SC/1 cookie";

/// Where a connection comes from, as the cookie binds it: the PROXY v2
/// source from a trusted relay or balancer, else the TCP peer; a Unix
/// socket's peer has no address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieSource {
    /// An IP address and port.
    Ip(SocketAddr),
    /// A peer without an address (a Unix socket).
    Local,
}

impl CookieSource {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Ip(SocketAddr::V4(a)) => {
                out.push(0x04);
                out.extend_from_slice(&a.ip().octets());
                out.extend_from_slice(&a.port().to_be_bytes());
            }
            Self::Ip(SocketAddr::V6(a)) => {
                out.push(0x06);
                out.extend_from_slice(&a.ip().octets());
                out.extend_from_slice(&a.port().to_be_bytes());
            }
            Self::Local => out.push(0x00),
        }
    }
}

/// What to do with a connection's first flight.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the handshake: hand the record to the server handshake.
    Proceed {
        /// Whether a valid cookie came with it (the handshake binds it).
        retried: bool,
    },
    /// Send this HelloRetry record, keep nothing, and wait for the client's
    /// first flight again (at most once per connection).
    Retry(Vec<u8>),
    /// The client sent this plaintext alert instead of a first flight:
    /// close without answering (SPEC §10.1: an alert is never answered).
    PeerAlert(AlertCode),
    /// Refuse the connection with this plaintext alert.
    Refuse {
        /// The alert to send.
        alert: AlertCode,
        /// Why, for the log.
        reason: &'static str,
    },
}

/// The record and its parts, once decoded.
struct FirstFlight<'a> {
    cookie: Option<Cookie>,
    /// The ClientHello message, header included.
    hello: &'a [u8],
    offers_retry: bool,
}

/// Splits a first-flight record: `[CookieEcho] ClientHello`, nothing more.
/// `None` when it is anything else; the handshake will refuse it with the
/// precise alert, so the cookie logic need not.
fn split(record: &[u8]) -> Option<FirstFlight<'_>> {
    let mut r = Reader::new(record);
    let header = RecordHeader::read(&mut r).ok()?;
    if header.kind != RecordKind::HANDSHAKE {
        return None;
    }
    let body = r.take(header.len, "record").ok()?;
    let mut r = Reader::new(body);
    let first = HandshakeMessage::read(&mut r).ok()?;
    let (cookie, hello_at) = match first {
        HandshakeMessage::CookieEcho(c) => (Some(c), body.len() - r.left()),
        HandshakeMessage::ClientHello(_) => (None, 0),
        _ => return None,
    };
    let hello = &body[hello_at..];
    let mut r = Reader::new(hello);
    let HandshakeMessage::ClientHello(ch) = HandshakeMessage::read(&mut r).ok()? else {
        return None;
    };
    if r.left() != 0 {
        return None;
    }
    Some(FirstFlight {
        cookie,
        hello,
        offers_retry: ch.suites.contains(&CipherSuite::COOKIE),
    })
}

/// The code of a plaintext alert record, if `record` is one.
fn peer_alert(record: &[u8]) -> Option<AlertCode> {
    let mut r = Reader::new(record);
    let header = RecordHeader::read(&mut r).ok()?;
    if header.kind != RecordKind::ALERT {
        return None;
    }
    let alert = sc_wire::Alert::decode(r.take(header.len, "alert").ok()?).ok()?;
    Some(alert.code)
}

/// The rotating keys cookies are made with.
pub struct CookieJar {
    /// (window, key) of the current and the previous window.
    keys: [Option<(u64, Zeroizing<[u8; 32]>)>; 2],
}

impl core::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let windows: Vec<u64> = self.keys.iter().flatten().map(|(w, _)| *w).collect();
        f.debug_struct("CookieJar")
            .field("windows", &windows)
            .finish_non_exhaustive()
    }
}

impl Default for CookieJar {
    fn default() -> Self {
        Self::new()
    }
}

impl CookieJar {
    /// A jar without keys: the first cookie makes one.
    pub fn new() -> Self {
        Self { keys: [None, None] }
    }

    /// Decides about a connection's first flight (`record`: one whole
    /// plaintext record, as `sc_wire::first::classify` delimits it).
    ///
    /// * A record with a CookieEcho is checked, under load or not: a valid
    ///   cookie proceeds; an old one is refused with `timeout`, any other
    ///   with `handshake failure`.
    /// * Without one: under load (`busy`) the client gets a HelloRetry if
    ///   it offered the capability and none was sent on this connection
    ///   yet (`retried_already`), else `going away`; not under load it
    ///   proceeds.
    /// * A record that is not `[CookieEcho] ClientHello` proceeds: the
    ///   handshake refuses it with the precise alert, at no cost.
    #[allow(clippy::too_many_arguments)]
    pub fn first_flight(
        &mut self,
        record: &[u8],
        source: &CookieSource,
        now: UnixTime,
        busy: bool,
        retried_already: bool,
        rng: &mut dyn CryptoRngCore,
    ) -> Decision {
        if let Some(code) = peer_alert(record) {
            return Decision::PeerAlert(code);
        }
        let Some(flight) = split(record) else {
            return if retried_already {
                Decision::Refuse {
                    alert: AlertCode::HANDSHAKE_FAILURE,
                    reason: "the answer to a cookie retry is not a CookieEcho and a ClientHello",
                }
            } else {
                Decision::Proceed { retried: false }
            };
        };
        match (&flight.cookie, busy) {
            (Some(cookie), _) => match self.check(cookie.as_bytes(), source, flight.hello, now) {
                Ok(()) => Decision::Proceed { retried: true },
                Err(refusal) => refusal,
            },
            (None, _) if retried_already => Decision::Refuse {
                alert: AlertCode::HANDSHAKE_FAILURE,
                reason: "the answer to a cookie retry has no cookie",
            },
            (None, false) => Decision::Proceed { retried: false },
            (None, true) if !flight.offers_retry => Decision::Refuse {
                alert: AlertCode::GOING_AWAY,
                reason:
                    "busy, and the client cannot answer a cookie retry (it did not offer 0xfe03)",
            },
            (None, true) => {
                Decision::Retry(retry_record(&self.make(source, flight.hello, now, rng)))
            }
        }
    }

    /// A cookie for this source and ClientHello message, made now.
    pub fn make(
        &mut self,
        source: &CookieSource,
        hello: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Cookie {
        let t = now.as_secs();
        let key = self.key_for(t / COOKIE_WINDOW_SECS, rng);
        let t = t as u32;
        let tag: [u8; 32] = hmac(&key, t, source, hello).finalize().into_bytes().into();
        let mut bytes = Vec::with_capacity(COOKIE_LEN);
        bytes.extend_from_slice(&t.to_be_bytes());
        bytes.extend_from_slice(&tag);
        // 36 bytes are within a cookie's 1–64.
        Cookie::new(bytes).unwrap_or_else(|_| unreachable!("a 36-byte cookie"))
    }

    /// Checks an echoed cookie against this source and ClientHello.
    fn check(
        &self,
        cookie: &[u8],
        source: &CookieSource,
        hello: &[u8],
        now: UnixTime,
    ) -> Result<(), Decision> {
        let invalid = Decision::Refuse {
            alert: AlertCode::HANDSHAKE_FAILURE,
            reason: "invalid cookie (not this server's, or for another address or ClientHello)",
        };
        let Some((t, mac)) = cookie
            .split_first_chunk::<4>()
            .filter(|(_, mac)| mac.len() == 32)
        else {
            return Err(invalid);
        };
        let t = u32::from_be_bytes(*t);
        let now = now.as_secs();
        let made = u64::from(t);
        if made > now + 1 {
            return Err(invalid);
        }
        if made + COOKIE_LIFETIME_SECS < now {
            return Err(Decision::Refuse {
                alert: AlertCode::TIMEOUT,
                reason: "the cookie has expired (made more than 10 s ago)",
            });
        }
        // Recent, but no key for its window: not made here (or before a
        // restart).
        let window = made / COOKIE_WINDOW_SECS;
        let Some((_, key)) = self.keys.iter().flatten().find(|(w, _)| *w == window) else {
            return Err(invalid);
        };
        // verify_slice compares in constant time.
        hmac(key, t, source, hello)
            .verify_slice(mac)
            .map_err(|_| invalid)
    }

    /// The key of `window`, made (and the oldest erased) when it is new.
    fn key_for(&mut self, window: u64, rng: &mut dyn CryptoRngCore) -> Zeroizing<[u8; 32]> {
        if let Some((_, key)) = self.keys.iter().flatten().find(|(w, _)| *w == window) {
            return key.clone();
        }
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut key[..]);
        // Keep the newest other window as the previous one; drop (and so
        // wipe) the rest.
        let previous = self
            .keys
            .iter_mut()
            .filter_map(Option::take)
            .filter(|(w, _)| *w < window)
            .max_by_key(|(w, _)| *w);
        self.keys = [Some((window, key.clone())), previous];
        key
    }
}

/// The cookie's HMAC, fed and not yet finished.
fn hmac(key: &[u8; 32], t: u32, source: &CookieSource, hello: &[u8]) -> Hmac<Sha256> {
    let mut data = Vec::with_capacity(LABEL.len() + 4 + 19 + 32);
    data.extend_from_slice(LABEL);
    data.extend_from_slice(&t.to_be_bytes());
    source.encode(&mut data);
    data.extend_from_slice(&Sha256::digest(hello));
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(&data);
    mac
}

/// The plaintext record of a HelloRetry carrying `cookie`.
pub fn retry_record(cookie: &Cookie) -> Vec<u8> {
    let msg = retry_message(cookie);
    let mut record = RecordHeader {
        kind: RecordKind::HANDSHAKE,
        len: msg.len(),
    }
    .encoded();
    record.extend_from_slice(&msg);
    record
}

/// The HelloRetry message (header included) carrying `cookie`: what both
/// sides absorb into the transcript.
pub(crate) fn retry_message(cookie: &Cookie) -> Vec<u8> {
    let msg = HandshakeMessage::HelloRetry(cookie.clone()).encoded();
    debug_assert_eq!(
        msg.len(),
        HANDSHAKE_HEADER_LEN + 1 + cookie.as_bytes().len()
    );
    debug_assert_eq!(msg[0], HandshakeType::HELLO_RETRY.0);
    msg
}

/// Bytes of a HelloRetry record with a reference cookie.
pub const RETRY_RECORD_LEN: usize = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + 1 + COOKIE_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use rand_core::{OsRng, RngCore};
    use sc_wire::{
        ClientHello, MlKemEncapsulationKey, ProtocolVersion, Random, RouteName, X25519Public,
    };

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    fn hello_msg(suites: &[CipherSuite], random: u8) -> Vec<u8> {
        HandshakeMessage::ClientHello(ClientHello {
            version: ProtocolVersion::V1,
            random: Random::from([random; 32]),
            x25519: X25519Public::from([2; 32]),
            mlkem: MlKemEncapsulationKey::from([3; 1184]),
            suites: suites.to_vec(),
            route: Some(RouteName::new("db").unwrap_or_else(|_| unreachable!())),
        })
        .encoded()
    }

    fn record(msgs: &[&[u8]]) -> Vec<u8> {
        let body = msgs.concat();
        let mut r = RecordHeader {
            kind: RecordKind::HANDSHAKE,
            len: body.len(),
        }
        .encoded();
        r.extend_from_slice(&body);
        r
    }

    const OFFER: &[CipherSuite] = &[CipherSuite::AES_256_GCM, CipherSuite::COOKIE];

    fn src(port: u16) -> CookieSource {
        CookieSource::Ip(SocketAddr::from(([192, 0, 2, 7], port)))
    }

    /// The retry's cookie, echoed: the second flight.
    fn echo(retry: &[u8], hello: &[u8]) -> Vec<u8> {
        let mut r = Reader::new(&retry[RECORD_HEADER_LEN..]);
        let Ok(HandshakeMessage::HelloRetry(c)) = HandshakeMessage::read(&mut r) else {
            panic!("not a HelloRetry: {retry:?}");
        };
        record(&[&HandshakeMessage::CookieEcho(c).encoded(), hello])
    }

    fn retry(jar: &mut CookieJar, hello: &[u8], source: &CookieSource, now: u64) -> Vec<u8> {
        match jar.first_flight(&record(&[hello]), source, at(now), true, false, &mut OsRng) {
            Decision::Retry(r) => r,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn not_busy_proceeds_and_busy_asks_for_a_cookie_that_then_proceeds() {
        let mut jar = CookieJar::new();
        let hello = hello_msg(OFFER, 1);
        let d = jar.first_flight(
            &record(&[&hello]),
            &src(1),
            at(1000),
            false,
            false,
            &mut OsRng,
        );
        assert_eq!(d, Decision::Proceed { retried: false });
        let r = retry(&mut jar, &hello, &src(1), 1000);
        assert_eq!(r.len(), RETRY_RECORD_LEN);
        for later in [1000, 1005, 1010] {
            // Valid whether or not still busy.
            for busy in [true, false] {
                let d = jar.first_flight(
                    &echo(&r, &hello),
                    &src(1),
                    at(later),
                    busy,
                    true,
                    &mut OsRng,
                );
                assert_eq!(d, Decision::Proceed { retried: true }, "at {later}");
            }
        }
    }

    #[test]
    fn a_cookie_is_bound_to_its_source_its_hello_its_key_and_its_time() {
        let mut jar = CookieJar::new();
        let hello = hello_msg(OFFER, 1);
        let r = retry(&mut jar, &hello, &src(1), 1000);
        let refused = |d: Decision, alert: AlertCode| {
            assert!(
                matches!(d, Decision::Refuse { alert: a, .. } if a == alert),
                "{d:?}"
            );
        };
        // Another port, another address, a Unix peer.
        for other in [
            src(2),
            CookieSource::Ip(SocketAddr::from(([192, 0, 2, 8], 1))),
            CookieSource::Local,
        ] {
            refused(
                jar.first_flight(&echo(&r, &hello), &other, at(1001), true, true, &mut OsRng),
                AlertCode::HANDSHAKE_FAILURE,
            );
        }
        // Another ClientHello behind the echo.
        let other_hello = hello_msg(OFFER, 9);
        refused(
            jar.first_flight(
                &echo(&r, &other_hello),
                &src(1),
                at(1001),
                true,
                true,
                &mut OsRng,
            ),
            AlertCode::HANDSHAKE_FAILURE,
        );
        // Too old, or from the future.
        refused(
            jar.first_flight(&echo(&r, &hello), &src(1), at(1011), true, true, &mut OsRng),
            AlertCode::TIMEOUT,
        );
        refused(
            jar.first_flight(&echo(&r, &hello), &src(1), at(998), true, true, &mut OsRng),
            AlertCode::HANDSHAKE_FAILURE,
        );
        // Every bit of the cookie matters.
        let good = echo(&r, &hello);
        let cookie_at = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + 1;
        for i in cookie_at..cookie_at + COOKIE_LEN {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            let d = jar.first_flight(&bad, &src(1), at(1001), true, true, &mut OsRng);
            assert!(matches!(d, Decision::Refuse { .. }), "byte {i}: {d:?}");
        }
        // A jar that never made a cookie (a restarted server): no key.
        refused(
            CookieJar::new().first_flight(&good, &src(1), at(1001), true, true, &mut OsRng),
            AlertCode::HANDSHAKE_FAILURE,
        );
        // Another server's jar (another key).
        let mut other = CookieJar::new();
        let _ = retry(&mut other, &hello, &src(1), 1000);
        refused(
            other.first_flight(&good, &src(1), at(1001), true, true, &mut OsRng),
            AlertCode::HANDSHAKE_FAILURE,
        );
    }

    #[test]
    fn keys_rotate_and_the_previous_window_still_counts() {
        let mut jar = CookieJar::new();
        let hello = hello_msg(OFFER, 1);
        // Made in the last second of window 16, checked in window 17.
        let r = retry(&mut jar, &hello, &src(1), 17 * 60 - 1);
        let _ = retry(&mut jar, &hello, &src(1), 17 * 60 + 2);
        assert_eq!(
            jar.first_flight(
                &echo(&r, &hello),
                &src(1),
                at(17 * 60 + 5),
                true,
                true,
                &mut OsRng
            ),
            Decision::Proceed { retried: true }
        );
        // Two windows later the key is gone (and the cookie too old anyway).
        let _ = retry(&mut jar, &hello, &src(1), 19 * 60);
        assert_eq!(jar.keys.iter().flatten().count(), 2);
        assert!(jar.keys.iter().flatten().all(|(w, _)| *w >= 17));
    }

    #[test]
    fn busy_refuses_clients_that_cannot_retry_and_retries_only_once() {
        let mut jar = CookieJar::new();
        let old = hello_msg(&[CipherSuite::AES_256_GCM], 1);
        let d = jar.first_flight(&record(&[&old]), &src(1), at(5), true, false, &mut OsRng);
        assert!(
            matches!(
                d,
                Decision::Refuse {
                    alert: AlertCode::GOING_AWAY,
                    ..
                }
            ),
            "{d:?}"
        );
        // After a retry the answer must carry a cookie.
        let hello = hello_msg(OFFER, 1);
        let d = jar.first_flight(&record(&[&hello]), &src(1), at(5), true, true, &mut OsRng);
        assert!(
            matches!(
                d,
                Decision::Refuse {
                    alert: AlertCode::HANDSHAKE_FAILURE,
                    ..
                }
            ),
            "{d:?}"
        );
        // Garbage after a retry is refused here; before, the handshake does it.
        let junk = [0xc1, 0, 0, 2, 7, 7];
        assert!(matches!(
            jar.first_flight(&junk, &src(1), at(5), true, true, &mut OsRng),
            Decision::Refuse { .. }
        ));
        assert_eq!(
            jar.first_flight(&junk, &src(1), at(5), true, false, &mut OsRng),
            Decision::Proceed { retried: false }
        );
    }

    #[test]
    fn a_client_alert_is_reported_not_answered() {
        let mut jar = CookieJar::new();
        let alert = sc_wire::Alert {
            code: AlertCode::TOO_LARGE,
        }
        .plaintext_record();
        for retried in [false, true] {
            assert_eq!(
                jar.first_flight(&alert, &src(1), at(5), true, retried, &mut OsRng),
                Decision::PeerAlert(AlertCode::TOO_LARGE)
            );
        }
    }

    #[test]
    fn cookies_of_random_garbage_are_refused() {
        let mut jar = CookieJar::new();
        let hello = hello_msg(OFFER, 1);
        let _ = retry(&mut jar, &hello, &src(1), 1000);
        for len in [1usize, 4, 35, 36, 37, 64] {
            let mut bytes = vec![0u8; len];
            OsRng.fill_bytes(&mut bytes);
            if len >= 4 {
                bytes[..4].copy_from_slice(&1000u32.to_be_bytes());
            }
            let c = Cookie::new(bytes).unwrap_or_else(|_| unreachable!());
            let rec = record(&[&HandshakeMessage::CookieEcho(c).encoded(), &hello]);
            let d = jar.first_flight(&rec, &src(1), at(1001), true, true, &mut OsRng);
            assert!(
                matches!(
                    d,
                    Decision::Refuse {
                        alert: AlertCode::HANDSHAKE_FAILURE,
                        ..
                    }
                ),
                "{len}: {d:?}"
            );
        }
    }
}
