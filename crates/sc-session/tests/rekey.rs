//! In-session re-keying (SPEC §15) on the deterministic pair: negotiation,
//! the exchange and its switch points, simultaneous re-keys, half-close,
//! the failures with their alerts, and what a stolen epoch-0 state can and
//! cannot open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sc_handshake::schedule::key_log_labels;
use sc_handshake::{ClientConfig, KeyLog, Secret, ServerConfig, RUSTCRYPTO};
use sc_pki::{throwaway::ThrowawayPki, ServerName, UnixTime};
use sc_session::pair::{Pair, PairError};
use sc_session::record::{Direction, RecordOpener, RecordSealer};
use sc_session::{Error, RekeyError, RekeyPolicy, SessionConfig, Side};
use sc_wire::record::RECORD_HEADER_LEN;
use sc_wire::rekey::{INIT_LEN, REPLY_LEN};
use sc_wire::{AlertCode, CipherSuite, Codec, InnerType, RecordHeader, RecordKind};

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000))
}

/// Every secret the key log received, by label.
#[derive(Debug, Default)]
struct Leak(Mutex<HashMap<&'static str, Vec<u8>>>);

impl KeyLog for Leak {
    fn log(&self, label: &'static str, _client_random: &[u8; 32], secret: &[u8]) {
        self.0
            .lock()
            .expect("key log")
            .insert(label, secret.to_vec());
    }
}

impl Leak {
    fn secret(&self, label: &str) -> Secret {
        let map = self.0.lock().expect("key log");
        Secret::from_slice(map.get(label).expect("logged")).expect("32 bytes")
    }
}

struct Setup {
    pair: Pair,
    leak: Arc<Leak>,
}

fn setup_with(seed: u8, client_rekey: bool, server_rekey: bool, session: SessionConfig) -> Setup {
    let (mut pair, leak) = unstarted(seed, client_rekey, server_rekey, session);
    pair.handshake().expect("handshake");
    Setup { pair, leak }
}

/// A pair with flight 1 ready, and its key log.
fn unstarted(
    seed: u8,
    client_rekey: bool,
    server_rekey: bool,
    session: SessionConfig,
) -> (Pair, Arc<Leak>) {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let pki = ThrowawayPki::new("server.test", "client-1", now(), &mut rng).expect("pki");
    let leak = Arc::new(Leak::default());
    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
        .with_credential(pki.client.clone())
        .dangerous_key_log(leak.clone())
        .build()
        .with_rekey(client_rekey);
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
        .with_credential(pki.server.clone())
        .build()
        .with_rekey(server_rekey);
    let name = ServerName::try_from("server.test")
        .expect("name")
        .to_owned();
    let pair = Pair::new(
        client.into(),
        server.into(),
        name,
        session,
        now(),
        Box::new(rng),
    )
    .expect("pair");
    (pair, leak)
}

fn setup(seed: u8) -> Setup {
    setup_with(seed, true, true, SessionConfig::default())
}

fn messages(conn: &mut sc_session::Connection) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| conn.recv_message()).collect()
}

#[test]
fn both_ends_must_offer_it_and_an_old_peer_keeps_working() {
    for (c, s, agreed) in [
        (false, false, false),
        (true, false, false),
        (false, true, false),
        (true, true, true),
    ] {
        let mut p = setup_with(1, c, s, SessionConfig::default()).pair;
        assert_eq!(
            p.client.has_rekey(),
            agreed,
            "client offers {c}, server {s}"
        );
        assert_eq!(p.server.has_rekey(), agreed);
        assert_eq!(p.client.summary().map(|x| x.rekey), Some(agreed));
        if !agreed {
            assert!(p.client.request_rekey().is_err());
        }
        p.client.send_message(b"works").expect("send");
        p.drive().expect("drive");
        assert_eq!(messages(&mut p.server), [b"works".to_vec()]);
    }
}

#[test]
fn either_side_re_keys_while_data_flows_and_both_reach_the_same_epoch() {
    let t0 = Instant::now();
    for initiator in [Side::Client, Side::Server] {
        let mut p = setup(2).pair;
        for epoch in 1..=3u32 {
            p.side(initiator).request_rekey().expect("request");
            assert!(p.poll_rekey(initiator, t0).expect("poll").is_empty());
            // Data keeps flowing in both directions while the re-key is in
            // flight: before, between and after its three messages.
            p.client.send_message(b"c1").expect("send");
            p.server.send_message(b"s1").expect("send");
            p.transfer(initiator).expect("Init");
            p.client.send_message(b"c2").expect("send");
            p.server.send_message(b"s2").expect("send");
            p.drive().expect("Reply and Switch");
            assert_eq!(messages(&mut p.server), [b"c1".to_vec(), b"c2".to_vec()]);
            assert_eq!(messages(&mut p.client), [b"s1".to_vec(), b"s2".to_vec()]);
            for side in [Side::Client, Side::Server] {
                assert_eq!(p.side(side).rekey_epoch(), Some(epoch), "{side:?}");
                assert!(!p.side(side).rekey_in_progress());
                let done = p
                    .poll_rekey(side, t0 + Duration::from_millis(3))
                    .expect("poll");
                assert_eq!(done.len(), 1, "{side:?} finished one re-key");
                assert_eq!((done[0].epoch, done[0].initiator), (epoch, initiator));
            }
            p.client.send_message(b"after").expect("send");
            p.server.send_message(b"after").expect("send");
            p.drive().expect("drive");
            assert_eq!(messages(&mut p.server), [b"after".to_vec()]);
            assert_eq!(messages(&mut p.client), [b"after".to_vec()]);
        }
        assert_eq!(p.client.rekeys_completed(), 3);
        assert_eq!(p.server.rekeys_completed(), 3);
    }
}

#[test]
fn simultaneous_re_keys_resolve_to_the_clients() {
    let t0 = Instant::now();
    let mut p = setup(3).pair;
    p.client.request_rekey().expect("request");
    p.server.request_rekey().expect("request");
    p.poll_rekey(Side::Client, t0).expect("poll");
    p.poll_rekey(Side::Server, t0).expect("poll");
    assert!(p.client.rekey_in_progress() && p.server.rekey_in_progress());
    // Both Inits cross on the wire.
    let c = p.take_flight(Side::Client).expect("client Init");
    let s = p.take_flight(Side::Server).expect("server Init");
    p.deliver(Side::Server, &c)
        .expect("server answers the client's");
    p.deliver(Side::Client, &s)
        .expect("client ignores the server's");
    p.drive().expect("drive");
    for side in [Side::Client, Side::Server] {
        assert_eq!(p.side(side).rekey_epoch(), Some(1));
        assert_eq!(p.side(side).rekeys_completed(), 1);
        let done = p.poll_rekey(side, t0).expect("poll");
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].initiator, Side::Client, "{side:?}");
    }
    p.server.send_message(b"one epoch").expect("send");
    p.client.send_message(b"one epoch").expect("send");
    p.drive().expect("drive");
    assert_eq!(messages(&mut p.client), [b"one epoch".to_vec()]);
    assert_eq!(messages(&mut p.server), [b"one epoch".to_vec()]);
}

#[test]
fn the_interval_and_the_volume_start_a_re_key() {
    let t0 = Instant::now();
    let session = SessionConfig {
        rekey: RekeyPolicy {
            interval: Some(Duration::from_secs(120)),
            max_bytes: 1 << 30,
            max_records: 10,
        },
        ..SessionConfig::default()
    };
    let mut p = setup_with(4, true, true, session).pair;
    // The epoch clock starts at the first poll.
    p.poll_rekey(Side::Client, t0).expect("poll");
    assert_eq!(
        p.client.rekey_deadline(),
        Some(t0 + Duration::from_secs(120))
    );
    p.poll_rekey(Side::Client, t0 + Duration::from_secs(119))
        .expect("poll");
    assert!(!p.client.rekey_in_progress());
    p.poll_rekey(Side::Client, t0 + Duration::from_secs(120))
        .expect("poll");
    assert!(p.client.rekey_in_progress(), "the interval started one");
    p.drive().expect("drive");
    assert_eq!(p.server.rekey_epoch(), Some(1));

    // Volume: the server's own direction reaches 10 records.
    p.poll_rekey(Side::Server, t0 + Duration::from_secs(121))
        .expect("poll");
    for _ in 0..9 {
        p.server.send_message(b"x").expect("send");
    }
    p.poll_rekey(Side::Server, t0 + Duration::from_secs(121))
        .expect("poll");
    assert!(!p.server.rekey_in_progress(), "9 records");
    p.server.send_message(b"x").expect("send");
    p.poll_rekey(Side::Server, t0 + Duration::from_secs(121))
        .expect("poll");
    assert!(p.server.rekey_in_progress(), "10 records started one");
    p.drive().expect("drive");
    assert_eq!(p.client.rekey_epoch(), Some(2));
}

#[test]
fn an_unanswered_re_key_times_out_with_a_timeout_alert() {
    let t0 = Instant::now();
    let mut p = setup(5).pair;
    p.client.request_rekey().expect("request");
    p.poll_rekey(Side::Client, t0).expect("poll");
    // The Init is lost (an attacker drops it).
    let _ = p.take_flight(Side::Client);
    assert_eq!(
        p.client.rekey_deadline(),
        Some(t0 + sc_session::DEFAULT_HANDSHAKE_TIMEOUT)
    );
    p.poll_rekey(Side::Client, t0 + Duration::from_secs(31))
        .expect("poll_rekey does not time out");
    p.client
        .handle_rekey_timeout(t0 + Duration::from_secs(29))
        .expect("within the timeout");
    let e = p
        .client
        .handle_rekey_timeout(t0 + Duration::from_secs(30))
        .expect_err("timeout");
    assert!(
        matches!(e, Error::Rekey(RekeyError::Unanswered { .. })),
        "{e}"
    );
    assert_eq!(e.alert(), Some(AlertCode::TIMEOUT));
    // The Init never arrived, so the server's chain is one record behind:
    // the alert does not open there, and the session fails closed either way.
    let err = p.transfer(Side::Client).expect_err("server fails");
    assert_eq!(err.side, Side::Server);
}

#[test]
fn a_withheld_switch_times_out_at_the_responder() {
    // A thief with the epoch-0 state could go on forging the initiator's
    // direction under epoch 0 for as long as the Switch is held back.
    let t0 = Instant::now();
    let mut p = setup(14).pair;
    p.client.request_rekey().expect("request");
    p.poll_rekey(Side::Client, t0).expect("poll");
    p.transfer(Side::Client).expect("Init");
    p.poll_rekey(Side::Server, t0).expect("the server's clock");
    p.transfer(Side::Server).expect("Reply");
    assert_eq!(p.client.rekeys_completed(), 1);
    let _withheld = p.take_flight(Side::Client).expect("the Switch");
    assert_eq!(
        p.server.rekey_deadline(),
        Some(t0 + sc_session::DEFAULT_HANDSHAKE_TIMEOUT)
    );
    p.server
        .handle_rekey_timeout(t0 + Duration::from_secs(29))
        .expect("within the timeout");
    let e = p
        .server
        .handle_rekey_timeout(t0 + Duration::from_secs(30))
        .expect_err("timeout");
    assert!(
        matches!(e, Error::Rekey(RekeyError::NoSwitch { .. })),
        "{e}"
    );
    assert_eq!(e.alert(), Some(AlertCode::TIMEOUT));
}

#[test]
fn a_peer_that_ignores_a_required_re_key_is_ended_with_rekey_required() {
    let t0 = Instant::now();
    let small = SessionConfig {
        rekey: RekeyPolicy {
            interval: None,
            max_bytes: 1 << 30,
            max_records: 4,
        },
        ..SessionConfig::default()
    };
    // The server polices a 4-record limit; the client would never re-key
    // by itself and its re-key messages never reach it (dropped below).
    let mut p = setup_with(6, true, true, small).pair;
    for _ in 0..5 {
        p.client.send_message(b"x").expect("send");
    }
    p.transfer(Side::Client).expect("deliver");
    p.poll_rekey(Side::Server, t0).expect("poll");
    assert!(
        p.server.rekey_in_progress(),
        "the server asked for a re-key"
    );
    // A client that does not answer: the Init is withheld from it.
    let _ = p.take_flight(Side::Server);
    for _ in 0..4 {
        p.client.send_message(b"x").expect("send");
    }
    p.transfer(Side::Client).expect("deliver");
    let e = p
        .poll_rekey(Side::Server, t0)
        .expect_err("over twice the limit");
    assert!(
        matches!(e, Error::Rekey(RekeyError::Required { records: 9, .. })),
        "{e}"
    );
    assert_eq!(e.alert(), Some(AlertCode::REKEY_REQUIRED));
}

#[test]
fn a_re_key_during_a_half_close_loses_nothing() {
    let t0 = Instant::now();
    // The client starts a re-key and closes its side before the Reply.
    let mut p = setup(7).pair;
    p.client.request_rekey().expect("request");
    p.poll_rekey(Side::Client, t0).expect("poll");
    p.client.send_message(b"last").expect("send");
    p.client.close().expect("close");
    p.transfer(Side::Client).expect("Init, data, Close");
    assert!(p.server.peer_closed());
    assert_eq!(messages(&mut p.server), [b"last".to_vec()]);
    p.server.send_message(b"download 1").expect("send");
    p.server.send_message(b"download 2").expect("send");
    p.server.close().expect("close");
    p.drive().expect("drive");
    assert!(p.client.peer_closed());
    assert_eq!(
        messages(&mut p.client),
        [b"download 1".to_vec(), b"download 2".to_vec()]
    );
    // The client switched its reading at the Reply and sent no Switch (it
    // had closed); the server's direction is the only one of epoch 1.
    assert_eq!(p.client.rekeys_completed(), 1);
    assert_eq!(p.server.rekey_epoch(), Some(1));
    assert!(!p.server.rekey_in_progress());

    // The server starts one after the client closed: the client does not
    // answer (it sends nothing more) and the server drops its own at the
    // client's Close.
    let mut p = setup(8).pair;
    p.client.close().expect("close");
    p.server.request_rekey().expect("request");
    p.poll_rekey(Side::Server, t0).expect("poll");
    p.server.send_message(b"still here").expect("send");
    p.drive().expect("drive");
    assert_eq!(messages(&mut p.client), [b"still here".to_vec()]);
    assert!(!p.server.rekey_in_progress());
    assert_eq!(p.server.rekey_deadline(), None);
    p.poll_rekey(Side::Server, t0 + Duration::from_secs(60))
        .expect("no timeout after a Close");
}

/// An attacker holding a stolen epoch-0 state: the chain keys from the key
/// log, kept in step record by record.
struct Thief {
    open: RecordOpener,
    seal: RecordSealer,
}

impl Thief {
    fn new(chain0: Secret, direction: Direction, suite: CipherSuite) -> Self {
        Self {
            open: RecordOpener::new(&RUSTCRYPTO, suite, direction, chain0.clone()).expect("open"),
            seal: RecordSealer::new(&RUSTCRYPTO, suite, direction, chain0).expect("seal"),
        }
    }

    /// Opens every record of `flight` it can; returns each record's inner
    /// type and content, `None` once one no longer opens.
    fn read(&mut self, flight: &[u8]) -> Vec<Option<(InnerType, Vec<u8>)>> {
        split(flight)
            .into_iter()
            .map(|(header, mut body)| {
                let opened = self
                    .open
                    .open(header, &mut body)
                    .ok()
                    .map(|(t, c)| (t, c.to_vec()));
                if opened.is_some() {
                    // Keep the sealer at the same position (a chain step
                    // does not depend on the content).
                    self.seal
                        .seal(InnerType::KEEPALIVE, &[], 0, &mut Vec::new())
                        .expect("seal");
                }
                opened
            })
            .collect()
    }

    /// Rewrites `flight`: opens each record, lets `edit` change it, and
    /// seals it again at the same position of the chain.
    fn rewrite(&mut self, flight: &[u8], mut edit: impl FnMut(InnerType, &mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        for (header, mut body) in split(flight) {
            let (typ, content) = self
                .open
                .open(header, &mut body)
                .expect("stolen state opens");
            let mut content = content.to_vec();
            edit(typ, &mut content);
            self.seal.seal(typ, &content, 0, &mut out).expect("seal");
        }
        out
    }
}

fn split(flight: &[u8]) -> Vec<(RecordHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = flight;
    while !rest.is_empty() {
        let header = RecordHeader::decode(&rest[..RECORD_HEADER_LEN]).expect("header");
        assert_eq!(header.kind, RecordKind::SEALED);
        let end = RECORD_HEADER_LEN + header.len;
        out.push((header, rest[RECORD_HEADER_LEN..end].to_vec()));
        rest = &rest[end..];
    }
    out
}

fn suite(p: &Pair) -> CipherSuite {
    p.client.summary().expect("handshake complete").suite
}

/// A thief for each direction, from the chains the key log leaked.
fn thieves(p: &Pair, leak: &Leak) -> (Thief, Thief) {
    let c = leak.secret(key_log_labels::CLIENT_CHAIN0);
    let s = leak.secret(key_log_labels::SERVER_CHAIN0);
    (
        Thief::new(c, Direction::ClientToServer, suite(p)),
        Thief::new(s, Direction::ServerToClient, suite(p)),
    )
}

#[test]
fn a_stolen_epoch_0_state_opens_epoch_0_records_and_nothing_after_the_re_key() {
    let t0 = Instant::now();
    let Setup { mut pair, leak } = setup(9);
    let p = &mut pair;
    // Everything the key log gave away: the epoch secret and both chains.
    let e0 = leak.secret(key_log_labels::EPOCH0);
    let (mut c_thief, mut s_thief) = thieves(p, &leak);
    assert_ne!(e0.expose(), &[0; 32]);

    // Epoch 0: the thief reads everything, both ways (the server's first
    // record is SecureAck).
    let f = p.take_flight(Side::Server);
    assert!(f.is_none(), "SecureAck went out with the handshake");
    s_thief.read(&handshake_tail(p));
    p.client.send_message(b"epoch 0, client").expect("send");
    let f = p.take_flight(Side::Client).expect("flight");
    let got = c_thief.read(&f);
    assert_eq!(got, [Some((InnerType::DATA, b"epoch 0, client".to_vec()))]);
    p.deliver(Side::Server, &f).expect("deliver");

    // The re-key, watched by the thief: Init, Reply and Switch are epoch-0
    // records it can read (and that is all it gets from them).
    p.client.request_rekey().expect("request");
    p.poll_rekey(Side::Client, t0).expect("poll");
    let init = p.take_flight(Side::Client).expect("Init");
    assert_eq!(
        c_thief.read(&init)[0].as_ref().map(|r| r.0),
        Some(InnerType::REKEY_INIT)
    );
    p.deliver(Side::Server, &init).expect("deliver");
    p.server.send_message(b"epoch 1, server").expect("send");
    let reply = p.take_flight(Side::Server).expect("Reply and data");
    let got = s_thief.read(&reply);
    assert_eq!(got[0].as_ref().map(|r| r.0), Some(InnerType::REKEY_REPLY));
    assert_eq!(
        got[1], None,
        "the server's first epoch-1 record does not open"
    );
    p.deliver(Side::Client, &reply).expect("deliver");
    assert_eq!(messages(&mut p.client), [b"epoch 1, server".to_vec()]);
    p.client.send_message(b"epoch 1, client").expect("send");
    let switch = p.take_flight(Side::Client).expect("Switch and data");
    let got = c_thief.read(&switch);
    assert_eq!(got[0].as_ref().map(|r| r.0), Some(InnerType::REKEY_SWITCH));
    assert_eq!(
        got[1], None,
        "the client's first epoch-1 record does not open"
    );
    p.deliver(Side::Server, &switch).expect("deliver");
    assert_eq!(
        messages(&mut p.server),
        [b"epoch 0, client".to_vec(), b"epoch 1, client".to_vec()]
    );

    // Nor does any later record, in either direction, with the state kept
    // in step or started afresh from the leaked chains.
    for i in 0..5 {
        p.client
            .send_message(format!("c{i}").as_bytes())
            .expect("send");
        p.server
            .send_message(format!("s{i}").as_bytes())
            .expect("send");
        let c = p.take_flight(Side::Client).expect("flight");
        let s = p.take_flight(Side::Server).expect("flight");
        assert!(c_thief.read(&c).iter().all(Option::is_none));
        assert!(s_thief.read(&s).iter().all(Option::is_none));
        let mut fresh = Thief::new(
            leak.secret(key_log_labels::CLIENT_CHAIN0),
            Direction::ClientToServer,
            suite(p),
        );
        assert!(fresh.read(&c).iter().all(Option::is_none));
        p.deliver(Side::Server, &c).expect("deliver");
        p.deliver(Side::Client, &s).expect("deliver");
    }
    assert_eq!(messages(&mut p.server).len(), 5);
    assert_eq!(messages(&mut p.client).len(), 5);
}

/// The server records sent after the handshake completed but before any
/// application data: none in this setup (SecureAck rode in the handshake's
/// last flight), so the thief's server opener must skip SecureAck itself.
fn handshake_tail(p: &Pair) -> Vec<u8> {
    // SecureAck is the server's record 0 of its application chain and is the
    // last record of the server's last handshake flight.
    let last = p
        .flights
        .iter()
        .rev()
        .find(|f| f.from == Side::Server)
        .expect("a server flight");
    let records = split(&last.bytes);
    let (header, body) = records.last().expect("a record").clone();
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Runs one re-key through an attacker with the stolen epoch-0 state that
/// flips byte `at` of the Init (`Side::Client` initiates) or of the Reply,
/// re-sealing it so that the record itself is genuine. Returns the error
/// of the side that received the tampered message.
fn tampered(seed: u8, message: InnerType, at: usize) -> Error {
    let t0 = Instant::now();
    let Setup { mut pair, leak } = setup(seed);
    let p = &mut pair;
    let (mut c_thief, mut s_thief) = thieves(p, &leak);
    s_thief.read(&handshake_tail(p));
    p.client.request_rekey().expect("request");
    p.poll_rekey(Side::Client, t0).expect("poll");
    let init = p.take_flight(Side::Client).expect("Init");
    let flip = |typ: InnerType, content: &mut Vec<u8>| {
        if typ == message {
            content[at] ^= 0x01;
        }
    };
    let init = c_thief.rewrite(&init, flip);
    let r = p.deliver(Side::Server, &init);
    if message == InnerType::REKEY_INIT {
        return r.expect_err("a flipped Init is refused").error;
    }
    r.expect("genuine Init");
    let reply = p.take_flight(Side::Server).expect("Reply");
    let reply = s_thief.rewrite(&reply, flip);
    p.deliver(Side::Client, &reply)
        .expect_err("a flipped Reply is refused")
        .error
}

#[test]
fn every_byte_of_init_and_reply_flipped_by_a_thief_with_the_state_fails_closed() {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (message, len) in [
        (InnerType::REKEY_INIT, INIT_LEN),
        (InnerType::REKEY_REPLY, REPLY_LEN),
    ] {
        for at in 0..len {
            let e = tampered(10, message, at);
            let alert = e.alert();
            assert!(
                matches!(
                    e,
                    Error::Rekey(RekeyError::BadSignature)
                        | Error::UnexpectedRecord { .. }
                        | Error::InvalidMessage(_)
                ),
                "{message:?} byte {at}: {e}"
            );
            assert!(alert.is_some(), "{message:?} byte {at}: the peer is told");
            *seen.entry(format!("{message:?}: {e}")).or_default() += 1;
        }
    }
    // Most flips break the signature; the epoch bytes are refused before.
    let bad_sig: usize = seen
        .iter()
        .filter(|(k, _)| k.contains("signature"))
        .map(|(_, n)| n)
        .sum();
    assert!(bad_sig >= INIT_LEN + REPLY_LEN - 8, "{seen:?}");
}

#[test]
fn a_re_key_record_in_a_session_without_re_keying_is_unexpected() {
    let mut p = setup_with(11, false, false, SessionConfig::default()).pair;
    p.client
        .seal_record_for_testing_only(InnerType::REKEY_INIT, &[0; INIT_LEN])
        .expect("seal");
    let e = p.transfer(Side::Client).expect_err("refused");
    assert!(
        matches!(
            e,
            PairError {
                side: Side::Server,
                error: Error::UnexpectedRecord { .. }
            }
        ),
        "{e}"
    );
    // A Reply or Switch out of turn in a session that re-keys.
    for typ in [InnerType::REKEY_REPLY, InnerType::REKEY_SWITCH] {
        let mut p = setup(12).pair;
        // Well-formed, for epoch 1.
        let mut content = vec![
            0;
            if typ == InnerType::REKEY_REPLY {
                REPLY_LEN
            } else {
                4
            }
        ];
        content[3] = 1;
        p.client
            .seal_record_for_testing_only(typ, &content)
            .expect("seal");
        let e = p.transfer(Side::Client).expect_err("refused");
        assert!(
            matches!(e.error, Error::UnexpectedRecord { .. }),
            "{typ:?}: {e}"
        );
        assert_eq!(e.error.alert(), Some(AlertCode::UNEXPECTED_MESSAGE));
    }
}

#[test]
fn stripping_the_offer_on_the_wire_fails_the_handshake() {
    // Not driven: the ClientHello is rewritten before the server sees it.
    let (mut p, _) = unstarted(13, true, true, SessionConfig::default());
    let mut hello = p.take_flight(Side::Client).expect("ClientHello");
    // The offered suites follow version, random, X25519 and ML-KEM key.
    let at = 4 + 4 + 2 + 32 + 32 + 1184;
    let count = usize::from(hello[at]);
    let list = at + 1..at + 1 + 2 * count;
    let pos = hello[list.clone()]
        .chunks(2)
        .position(|v| v == CipherSuite::REKEY.0.to_be_bytes())
        .expect("re-keying offered");
    // An attacker turns the offer into a capability nobody knows.
    let i = list.start + 2 * pos;
    hello[i..i + 2].copy_from_slice(&0xfe7fu16.to_be_bytes());
    p.deliver(Side::Server, &hello)
        .expect("the server ignores an unknown capability");
    let e = p.drive().expect_err("the transcripts differ");
    assert_eq!((e.side, e.error), (Side::Client, Error::DecryptFailed));
    assert!(p.client.is_handshaking() && !p.client.has_rekey());
}
