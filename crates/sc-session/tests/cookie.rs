//! The cookie retry (SPEC §4.5) on the deterministic pair: the server's
//! driver is played by a `CookieJar` between the two connections. A retried
//! handshake completes with the HelloRetry in both transcripts; a retry
//! that one side saw and the other did not (injected, stripped, added, or
//! a second one) fails the handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sc_handshake::cookie::{retry_record, CookieJar, CookieSource, Decision};
use sc_handshake::{ClientConfig, Error as HandshakeError, PeerMisbehaved, ServerConfig};
use sc_pki::{throwaway::ThrowawayPki, ServerName, UnixTime};
use sc_session::pair::{Pair, PairError};
use sc_session::{Error, SessionConfig, Side};
use sc_wire::record::RECORD_HEADER_LEN;
use sc_wire::{
    AlertCode, Codec, Cookie, HandshakeMessage, HandshakeType, ProtocolVersion, RecordHeader,
    RecordKind,
};

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000))
}

fn source() -> CookieSource {
    CookieSource::Ip(SocketAddr::from(([198, 51, 100, 4], 40_000)))
}

/// A pair with flight 1 ready; `retry`: whether the client offers to answer
/// a cookie retry.
fn pair(seed: u8, retry: bool) -> Pair {
    pair_v(seed, retry, ProtocolVersion::V2)
}

/// As [`pair`], with a client that offers protocol versions up to `max`.
fn pair_v(seed: u8, retry: bool, max: ProtocolVersion) -> Pair {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let pki = ThrowawayPki::new("server.test", "client-1", now(), &mut rng).expect("pki");
    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
        .with_credential(pki.client.clone())
        .build()
        .with_cookie_retry(retry)
        .with_max_version(max)
        .expect("version");
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
        .with_credential(pki.server.clone())
        .build();
    let name = ServerName::try_from("server.test")
        .expect("name")
        .to_owned();
    Pair::new(
        client.into(),
        server.into(),
        name,
        SessionConfig::default(),
        now(),
        Box::new(rng),
    )
    .expect("pair")
}

fn decide(jar: &mut CookieJar, record: &[u8], busy: bool, retried: bool) -> Decision {
    jar.first_flight(
        record,
        &source(),
        now(),
        busy,
        retried,
        &mut ChaCha20Rng::from_seed([9; 32]),
    )
}

/// The handshake messages of a plaintext record.
fn messages(record: &[u8]) -> Vec<HandshakeMessage> {
    let header = RecordHeader::decode(&record[..RECORD_HEADER_LEN]).expect("header");
    assert_eq!(header.kind, RecordKind::HANDSHAKE);
    let mut r = sc_wire::Reader::new(&record[RECORD_HEADER_LEN..]);
    let mut out = Vec::new();
    while r.left() > 0 {
        out.push(HandshakeMessage::read(&mut r).expect("message"));
    }
    out
}

fn plaintext(msgs: &[HandshakeMessage]) -> Vec<u8> {
    let body: Vec<u8> = msgs.iter().flat_map(Codec::encoded).collect();
    let mut rec = RecordHeader {
        kind: RecordKind::HANDSHAKE,
        len: body.len(),
    }
    .encoded();
    rec.extend_from_slice(&body);
    rec
}

/// Flight 1 through a busy jar: the retry goes to the client, and its
/// answer comes back checked. Returns the answer.
fn retried_flight_one(p: &mut Pair, jar: &mut CookieJar) -> Vec<u8> {
    let hello = p.take_flight(Side::Client).expect("flight 1");
    let Decision::Retry(retry) = decide(jar, &hello, true, false) else {
        panic!("a busy jar asks for a cookie");
    };
    p.deliver(Side::Client, &retry)
        .expect("the client takes the retry");
    let again = p.take_flight(Side::Client).expect("the answer");
    let msgs = messages(&again);
    assert_eq!(msgs.len(), 2);
    assert!(matches!(msgs[0], HandshakeMessage::CookieEcho(_)));
    // The same ClientHello, byte for byte.
    assert_eq!(
        again[again.len() - (hello.len() - RECORD_HEADER_LEN)..],
        hello[RECORD_HEADER_LEN..]
    );
    assert_eq!(
        decide(jar, &again, true, true),
        Decision::Proceed { retried: true }
    );
    again
}

fn data_flows(p: &mut Pair) {
    p.client.send_message(b"after the retry").expect("send");
    p.drive().expect("drive");
    assert_eq!(
        p.server.recv_message().as_deref(),
        Some(&b"after the retry"[..])
    );
}

#[test]
fn a_retried_handshake_completes_with_the_retry_in_both_transcripts() {
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        let mut jar = CookieJar::new();
        let mut p = pair_v(1, true, version);
        let again = retried_flight_one(&mut p, &mut jar);
        p.deliver(Side::Server, &again)
            .expect("server takes the echo");
        p.handshake().expect("handshake");
        data_flows(&mut p);
        let summary = p.client.summary().expect("summary").clone();
        assert_eq!(summary.version, version);
        assert_eq!(p.server.summary().expect("summary").version, version);
        let retried = summary.session_hash;
        assert_eq!(p.server.summary().expect("summary").session_hash, retried);

        // The same seed without a retry: another transcript, so another hash.
        let mut plain = pair_v(1, true, version);
        plain.handshake().expect("handshake");
        assert_ne!(
            plain.client.summary().expect("summary").session_hash,
            retried
        );
    }
}

#[test]
fn a_jar_that_is_not_busy_lets_flight_one_through() {
    let mut jar = CookieJar::new();
    let mut p = pair(2, true);
    let hello = p.take_flight(Side::Client).expect("flight 1");
    assert_eq!(
        decide(&mut jar, &hello, false, false),
        Decision::Proceed { retried: false }
    );
    p.deliver(Side::Server, &hello).expect("deliver");
    p.handshake().expect("handshake");
    data_flows(&mut p);
}

/// The client's handshake keys differ from the server's: it cannot open
/// flight 2's sealed part.
fn client_fails_on_flight_two(p: &mut Pair) {
    let err = p.handshake().expect_err("the transcripts differ");
    assert_eq!(err.side, Side::Client, "{err:?}");
    assert_eq!(err.error.alert(), Some(AlertCode::BAD_RECORD), "{err:?}");
}

#[test]
fn a_retry_injected_by_an_attacker_and_its_echo_stripped_fails_the_handshake() {
    let mut p = pair(3, true);
    let hello = p.take_flight(Side::Client).expect("flight 1");
    // The attacker answers for the server.
    let forged = Cookie::new(vec![0x42; 36]).expect("cookie");
    p.deliver(Side::Client, &retry_record(&forged))
        .expect("the client takes it");
    let again = p.take_flight(Side::Client).expect("the answer");
    // ... and passes the server only the ClientHello (as the first time).
    let stripped = &again[again.len() - (hello.len() - RECORD_HEADER_LEN)..];
    let mut record = hello[..RECORD_HEADER_LEN].to_vec();
    record.extend_from_slice(stripped);
    assert_eq!(record, hello);
    p.deliver(Side::Server, &record)
        .expect("the server takes a plain ClientHello");
    client_fails_on_flight_two(&mut p);
}

#[test]
fn an_echo_added_by_an_attacker_fails_the_handshake() {
    // The server binds any CookieEcho it is handed (its driver checks the
    // cookie); a client that saw no retry has another transcript.
    let mut p = pair(4, true);
    let hello = p.take_flight(Side::Client).expect("flight 1");
    let mut msgs = messages(&hello);
    msgs.insert(
        0,
        HandshakeMessage::CookieEcho(Cookie::new(vec![7; 36]).expect("cookie")),
    );
    p.deliver(Side::Server, &plaintext(&msgs))
        .expect("the server takes it");
    client_fails_on_flight_two(&mut p);
}

#[test]
fn an_echo_with_another_cookie_is_refused_before_the_handshake_and_fails_it_after() {
    let mut jar = CookieJar::new();
    let mut p = pair(5, true);
    let again = retried_flight_one(&mut p, &mut jar);
    let mut msgs = messages(&again);
    let HandshakeMessage::CookieEcho(c) = &msgs[0] else {
        panic!("an echo first");
    };
    // The same time, another MAC.
    let mut other = c.as_bytes().to_vec();
    other[35] ^= 1;
    msgs[0] = HandshakeMessage::CookieEcho(Cookie::new(other).expect("cookie"));
    let swapped = plaintext(&msgs);
    assert!(matches!(
        decide(&mut jar, &swapped, true, true),
        Decision::Refuse {
            alert: AlertCode::HANDSHAKE_FAILURE,
            ..
        }
    ));
    // A server without the check binds the other cookie: the transcripts
    // differ.
    p.deliver(Side::Server, &swapped).expect("deliver");
    client_fails_on_flight_two(&mut p);
}

fn unexpected_retry(err: &PairError) {
    assert_eq!(err.side, Side::Client, "{err:?}");
    assert!(
        matches!(
            &err.error,
            Error::Handshake(HandshakeError::PeerMisbehaved(
                PeerMisbehaved::UnexpectedMessage {
                    got: HandshakeType::HELLO_RETRY,
                    ..
                }
            ))
        ),
        "{err:?}"
    );
    assert_eq!(err.error.alert(), Some(AlertCode::UNEXPECTED_MESSAGE));
}

#[test]
fn a_second_retry_is_an_unexpected_message() {
    let mut jar = CookieJar::new();
    let mut p = pair(6, true);
    let _ = retried_flight_one(&mut p, &mut jar);
    let again = retry_record(&Cookie::new(vec![3; 36]).expect("cookie"));
    unexpected_retry(&p.deliver(Side::Client, &again).expect_err("a second retry"));
}

#[test]
fn a_client_that_did_not_offer_it_refuses_a_retry_and_a_busy_jar_refuses_it() {
    let mut jar = CookieJar::new();
    let mut p = pair(7, false);
    let hello = p.take_flight(Side::Client).expect("flight 1");
    assert!(matches!(
        decide(&mut jar, &hello, true, false),
        Decision::Refuse {
            alert: AlertCode::GOING_AWAY,
            ..
        }
    ));
    let retry = retry_record(&Cookie::new(vec![3; 36]).expect("cookie"));
    unexpected_retry(&p.deliver(Side::Client, &retry).expect_err("not offered"));
}
