//! Protocol version 2 (SPEC §16) on the sans-I/O state machines: it
//! completes, it interoperates with version 1 both ways, `min_version`
//! refuses an older peer, stripping the offer fails the handshake, and a
//! client never sends its certificate to a server that has not proved it
//! holds its certificate's key (step 4).
//!
//! Records are delivered as the state machines produce them (one `Send`
//! action is one record); a tamper hook sees each on its way, as an
//! attacker on the path would — without the record encryption, which the
//! session tests (`sc-session/tests/session.rs`) add.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sc_handshake::schedule::key_log_labels as labels;
use sc_handshake::{
    Action, ClientConfig, ClientHandshake, ConfigError, Error, HandshakeSummary, KeyLog, Level,
    PeerIncompatible, PeerMisbehaved, ServerConfig, ServerHandshake, RUSTCRYPTO,
};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_wire::{
    AlertCode, CertChain, CertificateBytes, CipherSuite, ClientCertRequestV2, Codec,
    HandshakeMessage, HandshakeType, ProtocolVersion,
};

const V1: ProtocolVersion = ProtocolVersion::V1;
const V2: ProtocolVersion = ProtocolVersion::V2;

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000))
}

fn rng(seed: u64) -> ChaCha20Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    ChaCha20Rng::from_seed(s)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// A CA with a server certificate for `server.test` and a client one.
fn pki(seed: u64) -> ThrowawayPki {
    ThrowawayPki::new("server.test", "client-1", now(), &mut rng(seed)).expect("pki")
}

/// How one side is configured, beyond its identity.
#[derive(Clone, Copy)]
struct Knobs {
    min: ProtocolVersion,
    max: ProtocolVersion,
    anonymous: bool,
    streams: bool,
    rekey: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            min: V1,
            max: V2,
            anonymous: false,
            streams: false,
            rekey: false,
        }
    }
}

fn client_config(pki: &ThrowawayPki, k: Knobs, log: Option<Arc<Recorder>>) -> Arc<ClientConfig> {
    let builder =
        ClientConfig::builder().with_server_verifier(Arc::new(pki.server_verifier().expect("v")));
    let mut builder = if k.anonymous {
        builder.with_anonymous_identity()
    } else {
        builder.with_credential(pki.client.clone())
    };
    if let Some(log) = log {
        builder = builder.dangerous_key_log(log);
    }
    Arc::new(
        builder
            .build()
            .with_streams(k.streams)
            .with_rekey(k.rekey)
            .with_max_version(k.max)
            .expect("max")
            .with_min_version(k.min)
            .expect("min"),
    )
}

fn server_config(pki: &ThrowawayPki, k: Knobs, log: Option<Arc<Recorder>>) -> Arc<ServerConfig> {
    let mut builder = ServerConfig::builder()
        .with_client_verifier(Arc::new(
            pki.client_verifier()
                .expect("v")
                .allow_anonymous(k.anonymous),
        ))
        .with_credential(pki.server.clone());
    if let Some(log) = log {
        builder = builder.dangerous_key_log(log);
    }
    Arc::new(
        builder
            .build()
            .with_streams(k.streams)
            .with_rekey(k.rekey)
            .with_max_version(k.max)
            .expect("max")
            .with_min_version(k.min)
            .expect("min"),
    )
}

/// A record on its way: its sender, its level and its handshake messages.
type Record = (Side, Level, Vec<u8>);

/// Every record a handshake sent, and how it ended.
struct Run {
    /// (sender, level, the record's handshake messages), in order.
    records: Vec<Record>,
    /// The first error, and the side that raised it.
    error: Option<(Side, Error)>,
    client: Option<HandshakeSummary>,
    server: Option<HandshakeSummary>,
    /// Whether each side kept keys for re-keying.
    rekey_kept: (bool, bool),
}

impl Run {
    fn sent_by(&self, side: Side) -> impl Iterator<Item = &[u8]> {
        self.records
            .iter()
            .filter(move |r| r.0 == side)
            .map(|r| &r.2[..])
    }

    /// The types of every message `side` sent.
    fn types_sent_by(&self, side: Side) -> Vec<HandshakeType> {
        self.sent_by(side).flat_map(types).collect()
    }

    fn completed(&self) -> (&HandshakeSummary, &HandshakeSummary) {
        assert!(self.error.is_none(), "handshake failed: {:?}", self.error);
        (
            self.client.as_ref().expect("client complete"),
            self.server.as_ref().expect("server complete"),
        )
    }

    fn failed(&self) -> (Side, &Error) {
        let (side, e) = self.error.as_ref().expect("the handshake failed");
        (*side, e)
    }
}

/// The types of the messages of one record.
fn types(mut record: &[u8]) -> Vec<HandshakeType> {
    let mut out = Vec::new();
    while record.len() >= 4 {
        out.push(HandshakeType(record[0]));
        let len = u32::from_be_bytes([0, record[1], record[2], record[3]]) as usize;
        record = &record[(4 + len).min(record.len())..];
    }
    out
}

/// Splits a record into its whole encoded messages.
fn split(mut record: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !record.is_empty() {
        let len = u32::from_be_bytes([0, record[1], record[2], record[3]]) as usize;
        out.push(record[..4 + len].to_vec());
        record = &record[4 + len..];
    }
    out
}

/// Runs a handshake, handing every record to `tamper` on its way (with its
/// sender, its level and every record delivered before it).
fn run(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    seed: u64,
    mut tamper: impl FnMut(Side, Level, Vec<u8>, &[Record]) -> Vec<u8>,
) -> Run {
    let mut rng = rng(seed);
    let name = ServerName::try_from("server.test").expect("name");
    let (mut c, first) = ClientHandshake::start(client, name, None, &mut rng).expect("start");
    let mut s = ServerHandshake::new(server);
    let mut run = Run {
        records: Vec::new(),
        error: None,
        client: None,
        server: None,
        rekey_kept: (false, false),
    };
    let mut queue = VecDeque::new();
    take(Side::Client, first, &mut queue, &mut run);
    while let Some((from, level, record)) = queue.pop_front() {
        let record = tamper(from, level, record, &run.records);
        run.records.push((from, level, record.clone()));
        let got = match from {
            Side::Client => s.handle(level, &record, now(), &mut rng),
            Side::Server => c.handle(level, &record, now(), &mut rng),
        };
        let to = match from {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        };
        match got {
            Ok(actions) => take(to, actions, &mut queue, &mut run),
            Err(e) => {
                run.error = Some((to, e));
                break;
            }
        }
    }
    run
}

/// Queues what `from` sends and notes what it completed.
fn take(from: Side, actions: Vec<Action>, queue: &mut VecDeque<Record>, run: &mut Run) {
    for a in actions {
        match a {
            Action::Send { level, messages } => queue.push_back((from, level, messages.to_vec())),
            Action::Complete(summary) => match from {
                Side::Client => run.client = Some(*summary),
                Side::Server => run.server = Some(*summary),
            },
            Action::KeepForRekey(_) => match from {
                Side::Client => run.rekey_kept.0 = true,
                Side::Server => run.rekey_kept.1 = true,
            },
            Action::SetReadKey { .. } | Action::SetWriteKey { .. } => {}
        }
    }
}

fn untouched(_: Side, _: Level, r: Vec<u8>, _: &[Record]) -> Vec<u8> {
    r
}

/// A key log that keeps every secret by label.
#[derive(Debug, Default)]
struct Recorder(Mutex<BTreeMap<&'static str, Vec<u8>>>);

impl KeyLog for Recorder {
    fn log(&self, label: &'static str, _client_random: &[u8; 32], secret: &[u8]) {
        self.0.lock().expect("log").insert(label, secret.to_vec());
    }
}

// ---------------------------------------------------------------------------
// Version 2 completes.
// ---------------------------------------------------------------------------

#[test]
fn version_2_completes_with_certified_and_anonymous_clients_and_each_capability() {
    let pki = pki(1);
    let mut runs = 0;
    for anonymous in [false, true] {
        for (streams, rekey) in [(false, false), (true, false), (false, true), (true, true)] {
            let k = Knobs {
                anonymous,
                streams,
                rekey,
                ..Knobs::default()
            };
            let r = run(
                client_config(&pki, k, None),
                server_config(&pki, k, None),
                runs,
                untouched,
            );
            runs += 1;
            let (c, s) = r.completed();
            assert_eq!((c.version, s.version), (V2, V2));
            assert_eq!(c.session_hash, s.session_hash);
            assert_eq!(c.order, s.order);
            assert_eq!((c.streams, s.streams), (streams, streams));
            assert_eq!((c.rekey, s.rekey), (rekey, rekey));
            assert_eq!(r.rekey_kept, (rekey, rekey));
            assert_eq!(c.peer.to_string(), "dns:server.test");
            if anonymous {
                assert!(s.peer.to_string().starts_with("anonymous:"), "{}", s.peer);
            } else {
                assert_eq!(s.peer.to_string(), "dns:client-1");
            }
            // The flights of SPEC §4.1, one record per Send, in version 2's
            // forms (the v2 reader refuses the v1 forms of 4, 7 and 9).
            let t = HandshakeType;
            let flights: Vec<(Side, Vec<HandshakeType>)> = r
                .records
                .iter()
                .map(|(side, _, rec)| (*side, types(rec)))
                .collect();
            let server_two = |f: &[HandshakeType]| {
                let mut two = f[1..].to_vec();
                two.sort();
                two
            };
            assert_eq!(flights.len(), 8, "{flights:?}");
            assert_eq!(flights[0], (Side::Client, vec![t(1)]));
            assert_eq!(flights[1], (Side::Server, vec![t(2)]));
            assert_eq!(flights[2], (Side::Server, vec![t(3), t(4)]));
            assert_eq!(flights[3], (Side::Client, vec![t(5)]));
            assert_eq!(flights[4].1[0], t(6));
            assert_eq!(server_two(&flights[4].1), vec![t(7), t(9)]);
            assert_eq!(flights[5].1.len(), 3);
            assert_eq!(flights[6], (Side::Server, vec![t(12)]));
            assert_eq!(flights[7], (Side::Server, vec![t(13)]));
            for (_, _, rec) in &r.records {
                for m in split(rec) {
                    HandshakeMessage::decode_for(V2, &m).expect("a version 2 message");
                }
            }
        }
    }
}

#[test]
fn version_2_messages_have_their_sizes_and_v1_are_unchanged() {
    let pki = pki(2);
    let sizes = |k: Knobs| -> BTreeMap<u8, usize> {
        let r = run(
            client_config(&pki, k, None),
            server_config(&pki, k, None),
            7,
            untouched,
        );
        r.completed();
        r.records
            .iter()
            .flat_map(|(_, _, rec)| split(rec))
            .map(|m| (m[0], m.len()))
            .collect()
    };
    let v1 = sizes(Knobs {
        max: V1,
        ..Knobs::default()
    });
    let v2 = sizes(Knobs::default());
    // Step 1 carries the offer of version 2: two bytes more.
    assert_eq!(v2[&1], v1[&1] + 2);
    // Step 2: a 1,088-byte ciphertext in place of a 1,184-byte key.
    assert_eq!((v1[&2], v2[&2]), (1256, 1160));
    // Step 4: the signature over th_3.
    assert_eq!(v2[&4], v1[&4] + 64);
    // Step 7: a 1,184-byte key in place of a 1,088-byte ciphertext.
    assert_eq!((v1[&7], v2[&7]), (1092, 1188));
    // Step 9: a 32-byte MAC in place of a 64-byte signature.
    assert_eq!((v1[&9], v2[&9]), (68, 36));
    for step in [3, 5, 6, 8, 10, 11, 12, 13] {
        assert_eq!(v1[&step], v2[&step], "step {step} is the same in both");
    }
    let total = |m: &BTreeMap<u8, usize>| m.values().sum::<usize>() as i64;
    // +2 (offer) −96 +64 +96 −32.
    assert_eq!(total(&v2) - total(&v1), 34);
}

#[test]
fn the_key_log_has_each_version_s_secrets_and_both_sides_agree() {
    let pki = pki(3);
    for (max, has, lacks) in [
        (
            V1,
            vec![labels::MLKEM_STEP7, labels::MLKEM_STEP8],
            vec![labels::MLKEM_STEP2, labels::SERVER_CONFIRM],
        ),
        (
            V2,
            vec![
                labels::MLKEM_STEP2,
                labels::SERVER_CONFIRM,
                labels::MLKEM_STEP8,
            ],
            vec![labels::MLKEM_STEP7],
        ),
    ] {
        let (cl, sl) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let k = Knobs {
            max,
            ..Knobs::default()
        };
        let r = run(
            client_config(&pki, k, Some(cl.clone())),
            server_config(&pki, k, Some(sl.clone())),
            9,
            untouched,
        );
        assert_eq!(r.completed().0.version, max);
        let (cl, sl) = (cl.0.lock().expect("log"), sl.0.lock().expect("log"));
        assert_eq!(*cl, *sl, "{max}: both sides log the same secrets");
        for label in has {
            assert!(cl.contains_key(label), "{max}: {label} missing");
        }
        for label in lacks {
            assert!(!cl.contains_key(label), "{max}: {label} logged");
        }
        assert_eq!(cl.len(), if max == V2 { 12 } else { 11 });
        // Version 2's handshake secret is HKDF-Extract(v2 salt, dh || ss2).
        if max == V2 {
            let hs = RUSTCRYPTO.hash.hkdf_extract(
                b"Sovereign-Chain/2 handshake",
                &[&cl[labels::X25519_SHARED][..], &cl[labels::MLKEM_STEP2][..]],
            );
            assert_eq!(&hs.expose()[..], &cl[labels::HANDSHAKE][..]);
        }
    }
}

// ---------------------------------------------------------------------------
// Negotiation.
// ---------------------------------------------------------------------------

#[test]
fn version_1_and_version_2_peers_interoperate_both_ways() {
    let pki = pki(4);
    for (client_max, server_max, want) in [(V2, V2, V2), (V1, V2, V1), (V2, V1, V1), (V1, V1, V1)] {
        let r = run(
            client_config(
                &pki,
                Knobs {
                    max: client_max,
                    ..Knobs::default()
                },
                None,
            ),
            server_config(
                &pki,
                Knobs {
                    max: server_max,
                    ..Knobs::default()
                },
                None,
            ),
            11,
            untouched,
        );
        let (c, s) = r.completed();
        assert_eq!(
            (c.version, s.version),
            (want, want),
            "client up to {client_max}, server up to {server_max}"
        );
        // The offer is in the ClientHello exactly when the client speaks
        // version 2; the ServerHello's version field says what runs.
        let hello = HandshakeMessage::decode(r.sent_by(Side::Client).next().expect("hello"))
            .expect("hello decodes");
        let HandshakeMessage::ClientHello(ch) = hello else {
            panic!("step 1 is a ClientHello");
        };
        assert_eq!(ch.version, V1, "every ClientHello carries 0x5c01");
        assert_eq!(
            ch.suites.contains(&CipherSuite::VERSION_2),
            client_max == V2
        );
        let sh = r.sent_by(Side::Server).next().expect("server hello");
        assert_eq!(u16::from_be_bytes([sh[4], sh[5]]), want.0);
    }
}

#[test]
fn min_version_2_on_either_side_refuses_a_version_1_peer() {
    let pki = pki(5);
    let v1_only = Knobs {
        max: V1,
        ..Knobs::default()
    };
    let v2_only = Knobs {
        min: V2,
        ..Knobs::default()
    };
    let below =
        Error::PeerIncompatible(PeerIncompatible::VersionBelowMinimum { peer: V1, min: V2 });

    // A server that requires version 2 refuses a client that does not offer
    // it, on its ClientHello, with a plaintext `protocol version`.
    let r = run(
        client_config(&pki, v1_only, None),
        server_config(&pki, v2_only, None),
        12,
        untouched,
    );
    assert_eq!(r.failed(), (Side::Server, &below));
    assert_eq!(below.alert(), AlertCode::PROTOCOL_VERSION);
    assert_eq!(r.records.len(), 1, "nothing but the ClientHello was sent");

    // A client that requires version 2 refuses a version 1 ServerHello and
    // sends nothing more.
    let r = run(
        client_config(&pki, v2_only, None),
        server_config(&pki, v1_only, None),
        13,
        untouched,
    );
    assert_eq!(r.failed(), (Side::Client, &below));
    assert_eq!(r.types_sent_by(Side::Client), vec![HandshakeType(1)]);

    // With version 2 peers, either minimum is met.
    for (c, s) in [(v2_only, Knobs::default()), (Knobs::default(), v2_only)] {
        let r = run(
            client_config(&pki, c, None),
            server_config(&pki, s, None),
            14,
            untouched,
        );
        assert_eq!(r.completed().0.version, V2);
    }
}

#[test]
fn a_version_2_server_hello_is_refused_by_a_client_that_did_not_offer_it() {
    let pki = pki(6);
    // The server gets a ClientHello that offers version 2; the client (a
    // version 1 client) offered nothing of the kind.
    let v1_client = client_config(
        &pki,
        Knobs {
            max: V1,
            ..Knobs::default()
        },
        None,
    );
    let r = run(
        v1_client,
        server_config(&pki, Knobs::default(), None),
        15,
        |from, level, rec, _| {
            if from == Side::Client && level == Level::Plaintext {
                with_suites(&rec, |s| s.push(CipherSuite::VERSION_2))
            } else {
                rec
            }
        },
    );
    assert_eq!(
        r.failed(),
        (
            Side::Client,
            &Error::PeerIncompatible(PeerIncompatible::Version(V2))
        )
    );
}

#[test]
fn versions_out_of_range_are_configuration_errors() {
    let pki = pki(7);
    let client = || {
        ClientConfig::builder()
            .with_server_verifier(Arc::new(pki.server_verifier().expect("v")))
            .with_credential(pki.client.clone())
            .build()
    };
    // A client refuses version 1 servers unless told otherwise (SPEC
    // §16.1: a fallback to version 1 gives its identity away).
    assert_eq!(client().min_version(), V2);
    assert_eq!(client().max_version(), V2);
    let both = client().with_min_version(V1).expect("v1 and v2");
    assert_eq!((both.min_version(), both.max_version()), (V1, V2));
    // Capped at version 1, the client is a version 1 client: the minimum
    // comes down with the cap, and cannot then be raised above it.
    let narrowed = client().with_max_version(V1).expect("v1 only");
    assert_eq!((narrowed.min_version(), narrowed.max_version()), (V1, V1));
    assert_eq!(
        narrowed.with_min_version(V2).err(),
        Some(ConfigError::VersionRange { min: V2, max: V1 })
    );
    assert_eq!(
        client().with_min_version(ProtocolVersion(0x5c03)).err(),
        Some(ConfigError::UnsupportedVersion(ProtocolVersion(0x5c03)))
    );
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("v")))
        .with_credential(pki.server.clone())
        .build();
    assert_eq!((server.min_version(), server.max_version()), (V1, V2));
    assert_eq!(
        server.with_max_version(ProtocolVersion(0x0303)).err(),
        Some(ConfigError::UnsupportedVersion(ProtocolVersion(0x0303)))
    );
}

/// `record` (a plaintext [ClientHello]) with its offered suites changed.
fn with_suites(record: &[u8], change: impl FnOnce(&mut Vec<CipherSuite>)) -> Vec<u8> {
    let HandshakeMessage::ClientHello(mut ch) = HandshakeMessage::decode(record).expect("hello")
    else {
        panic!("a ClientHello");
    };
    change(&mut ch.suites);
    HandshakeMessage::ClientHello(ch).encoded()
}

// ---------------------------------------------------------------------------
// Downgrade.
// ---------------------------------------------------------------------------

/// A man in the middle strips `0xfe04` from the ClientHello: the server runs
/// version 1, with a transcript that differs from the client's. Here (no
/// record encryption) the client accepts the version 1 ServerHello and
/// fails at step 9, whose signature covers th_6 — which is where an
/// attacker who also knew the X25519 secret (and so could get past the
/// encryption of flight 2) would be stopped. With the record layer the
/// client stops earlier, at flight 2 (`bad record`, sc-session's
/// `stripping_the_version_2_offer_fails_at_flight_2`).
#[test]
fn stripping_the_version_2_offer_fails_the_handshake() {
    let pki = pki(8);
    let strip = |from: Side, level: Level, rec: Vec<u8>, _: &[Record]| {
        if from == Side::Client && level == Level::Plaintext {
            with_suites(&rec, |s| s.retain(|c| *c != CipherSuite::VERSION_2))
        } else {
            rec
        }
    };
    let r = run(
        client_config(&pki, Knobs::default(), None),
        server_config(&pki, Knobs::default(), None),
        16,
        strip,
    );
    assert_eq!(
        r.failed(),
        (
            Side::Client,
            &Error::PeerMisbehaved(PeerMisbehaved::KeyConfirm1Invalid)
        )
    );
    assert!(r.client.is_none() && r.server.is_none());
    // The server did answer version 1.
    let sh = r.sent_by(Side::Server).next().expect("server hello");
    assert_eq!(u16::from_be_bytes([sh[4], sh[5]]), V1.0);

    // A client that requires version 2 stops at the ServerHello.
    let r = run(
        client_config(
            &pki,
            Knobs {
                min: V2,
                ..Knobs::default()
            },
            None,
        ),
        server_config(&pki, Knobs::default(), None),
        16,
        strip,
    );
    assert_eq!(
        r.failed(),
        (
            Side::Client,
            &Error::PeerIncompatible(PeerIncompatible::VersionBelowMinimum { peer: V1, min: V2 })
        )
    );
    assert_eq!(r.types_sent_by(Side::Client), vec![HandshakeType(1)]);
}

// ---------------------------------------------------------------------------
// P1: the client sends its certificate only to a server that proved its key.
// ---------------------------------------------------------------------------

/// Replaces the message of type `typ` in `record` with `with`.
fn replace(record: &[u8], typ: u8, with: &[u8]) -> Vec<u8> {
    split(record)
        .into_iter()
        .flat_map(|m| if m[0] == typ { with.to_vec() } else { m })
        .collect()
}

/// The step-4 message of `record` (flight 2's sealed record), decoded.
fn request_of(record: &[u8]) -> ClientCertRequestV2 {
    let m = split(record)
        .into_iter()
        .find(|m| m[0] == 4)
        .expect("step 4");
    match HandshakeMessage::decode_for(V2, &m).expect("v2 request") {
        HandshakeMessage::ClientCertRequestV2(r) => r,
        other => panic!("not a v2 request: {other:?}"),
    }
}

fn assert_no_certificate_left_the_client(r: &Run) {
    let sent = r.types_sent_by(Side::Client);
    assert!(
        !sent.contains(&HandshakeType::CLIENT_CERT_SEND),
        "the client sent step 5: {sent:?}"
    );
    assert_eq!(sent, vec![HandshakeType::CLIENT_HELLO]);
}

#[test]
fn a_wrong_step_4_signature_stops_the_client_before_step_5() {
    let pki = pki(9);
    // Any one bit of the signature.
    for bit in [0usize, 7, 255, 511] {
        let r = run(
            client_config(&pki, Knobs::default(), None),
            server_config(&pki, Knobs::default(), None),
            17,
            |from, level, rec, _| {
                if from == Side::Server && level == Level::Handshake && rec[0] == 3 {
                    let mut req = request_of(&rec);
                    let mut sig = *req.signature.as_bytes();
                    sig[bit / 8] ^= 1 << (bit % 8);
                    req.signature = sig.into();
                    replace(
                        &rec,
                        4,
                        &HandshakeMessage::ClientCertRequestV2(req).encoded(),
                    )
                } else {
                    rec
                }
            },
        );
        let (side, e) = r.failed();
        assert_eq!(
            (side, e),
            (
                Side::Client,
                &Error::PeerMisbehaved(PeerMisbehaved::ClientCertRequestInvalid)
            ),
            "bit {bit}"
        );
        assert_eq!(e.alert(), AlertCode::HANDSHAKE_FAILURE);
        assert_no_certificate_left_the_client(&r);
    }
}

/// An impostor: it runs the handshake with its own keys and its own
/// credential (a certificate for `server.test` from a CA the client does not
/// trust), and in flight 2 sends the real server's certificate chain (which
/// is public) with step 4 signed by its own key over the transcript with
/// that chain. It cannot sign with the real server's key.
fn impostor_flight_2(
    real_chain: CertChain,
    impostor_key: Arc<sc_pki::Credential>,
) -> impl FnMut(Side, Level, Vec<u8>, &[Record]) -> Vec<u8> {
    move |from, level, rec, before| {
        if !(from == Side::Server && level == Level::Handshake && rec[0] == 3) {
            return rec;
        }
        let msg3 = HandshakeMessage::ServerCertSend(real_chain.clone()).encoded();
        // th_3 as the client will compute it: ClientHello, ServerHello, 3.
        let mut transcript = Vec::new();
        for (_, _, r) in before {
            transcript.extend_from_slice(r);
        }
        transcript.extend_from_slice(&msg3);
        let th3 = RUSTCRYPTO.hash.hash(&transcript);
        let mut content = b"Sovereign-Chain/2 server ClientCertRequest step 4".to_vec();
        content.push(0);
        content.extend_from_slice(&th3);
        let mut req = request_of(&rec);
        req.signature = impostor_key.sign(&content).into();
        let mut out = msg3;
        out.extend_from_slice(&HandshakeMessage::ClientCertRequestV2(req).encoded());
        out
    }
}

fn impostor(pki: &ThrowawayPki, k: Knobs) -> (Arc<ServerConfig>, Arc<sc_pki::Credential>) {
    // Its own CA, which trusts the same clients (so nothing else fails).
    let own = ThrowawayPki::new("server.test", "client-1", now(), &mut rng(99)).expect("pki");
    let config = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("v")))
        .with_credential(own.server.clone())
        .build()
        .with_max_version(k.max)
        .expect("max");
    (Arc::new(config), own.server.clone())
}

fn real_chain(pki: &ThrowawayPki) -> CertChain {
    CertChain::new(
        pki.server
            .chain()
            .iter()
            .map(|c| CertificateBytes::new(c.as_ref().to_vec()).expect("cert"))
            .collect(),
    )
    .expect("chain")
}

#[test]
fn a_replayed_chain_with_a_forged_step_4_signature_gets_nothing_from_the_client() {
    let pki = pki(10);
    for anonymous in [false, true] {
        let k = Knobs {
            anonymous,
            ..Knobs::default()
        };
        let (server, key) = impostor(&pki, k);
        let r = run(
            client_config(&pki, k, None),
            server,
            18,
            impostor_flight_2(real_chain(&pki), key),
        );
        // The chain verified (it is the real one); the signature did not.
        assert_eq!(
            r.failed(),
            (
                Side::Client,
                &Error::PeerMisbehaved(PeerMisbehaved::ClientCertRequestInvalid)
            ),
            "anonymous {anonymous}"
        );
        assert_no_certificate_left_the_client(&r);
    }
}

/// The control for the test above: version 1 has no step-4 signature, so
/// the same impostor gets the client's certificate (step 5) before the
/// client finds out at step 9. This is what version 2 changes.
#[test]
fn a_version_1_client_answers_the_same_impostor_with_its_certificate() {
    let pki = pki(10);
    let k = Knobs {
        max: V1,
        ..Knobs::default()
    };
    let (server, _) = impostor(&pki, k);
    let chain = real_chain(&pki);
    let r = run(
        client_config(&pki, k, None),
        server,
        18,
        move |from, level, rec, _| {
            if from == Side::Server && level == Level::Handshake && rec[0] == 3 {
                replace(
                    &rec,
                    3,
                    &HandshakeMessage::ServerCertSend(chain.clone()).encoded(),
                )
            } else {
                rec
            }
        },
    );
    assert!(r
        .types_sent_by(Side::Client)
        .contains(&HandshakeType::CLIENT_CERT_SEND));
    assert_eq!(
        r.failed(),
        (
            Side::Client,
            &Error::PeerMisbehaved(PeerMisbehaved::KeyConfirm1Invalid)
        )
    );
}

#[test]
fn a_wrong_step_9_mac_or_step_7_key_fails_the_client_before_flight_5() {
    let pki = pki(11);
    for (typ, what) in [(9u8, "MAC"), (7u8, "key")] {
        let r = run(
            client_config(&pki, Knobs::default(), None),
            server_config(&pki, Knobs::default(), None),
            19,
            |from, level, rec, _| {
                if from == Side::Server && level == Level::Handshake && rec[0] == 6 {
                    let msgs = split(&rec);
                    let m = msgs.iter().find(|m| m[0] == typ).expect("message");
                    let mut bad = m.clone();
                    // Step 7: the first coefficient's low byte set to 0xff
                    // and its top nibble, with the next byte's, to 0xfff:
                    // 4095 ≥ q, so the modulus check fails.
                    if typ == 7 {
                        bad[4] = 0xff;
                        bad[5] |= 0x0f;
                    } else {
                        bad[4] ^= 1;
                    }
                    replace(&rec, typ, &bad)
                } else {
                    rec
                }
            },
        );
        let want = if typ == 9 {
            PeerMisbehaved::KeyConfirm1Invalid
        } else {
            PeerMisbehaved::InvalidEncapsulationKey
        };
        assert_eq!(
            r.failed(),
            (Side::Client, &Error::PeerMisbehaved(want)),
            "a wrong {what}"
        );
        // The client's flight 5 (steps 8, 10, 11) never left.
        let sent = r.types_sent_by(Side::Client);
        assert_eq!(sent, vec![HandshakeType(1), HandshakeType(5)], "{what}");
    }
}

/// The server's step 4 is not a version 1 ClientCertRequest with a
/// signature glued on by the reader: a version 2 reader refuses version 1's
/// form (and the reverse) before any check.
#[test]
fn each_version_reads_only_its_own_step_4() {
    let pki = pki(12);
    let r = run(
        client_config(&pki, Knobs::default(), None),
        server_config(&pki, Knobs::default(), None),
        20,
        |from, level, rec, _| {
            if from == Side::Server && level == Level::Handshake && rec[0] == 3 {
                let req = request_of(&rec);
                replace(
                    &rec,
                    4,
                    &HandshakeMessage::ClientCertRequest(req.request).encoded(),
                )
            } else {
                rec
            }
        },
    );
    let (side, e) = r.failed();
    assert_eq!(side, Side::Client);
    assert_eq!(
        e,
        &Error::InvalidMessage(sc_wire::InvalidMessage::Truncated { what: "signature" })
    );
    assert_no_certificate_left_the_client(&r);
}
