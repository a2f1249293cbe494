//! Sessions end to end, in memory: the 13-step handshake under attack, the
//! record ratchet, the message API. Deterministic: a fixed RNG seed and a
//! virtual clock per test.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sc_handshake::{
    ClientConfig, Error as HsError, PeerIncompatible, PeerMisbehaved, ServerConfig,
};
use sc_pki::{
    issue_leaf, issue_root, CertError, CertificateDer, Credential, Issuer, KeyPair, LeafSpec,
    ServerName, TrustAnchors, UnixTime, Validity, WebPkiClientVerifier, WebPkiServerVerifier,
};
use sc_session::pair::{other, Pair, PairError};
use sc_session::record::{Direction, RecordOpener, RecordSealer};
use sc_session::{Error, Padding, SessionConfig, Side};
use sc_wire::{
    AlertCode, CipherSuite, Codec, HandshakeMessage, InnerType, ProtocolVersion, RecordHeader,
    RecordKind,
};

const NOW_SECS: u64 = 1_800_000_000;
const AES: CipherSuite = CipherSuite::AES_256_GCM;
const CHACHA: CipherSuite = CipherSuite::CHACHA20_POLY1305;
const V1: ProtocolVersion = ProtocolVersion::V1;
const V2: ProtocolVersion = ProtocolVersion::V2;
/// Both protocol versions, for the tests that run on each.
const VERSIONS: [ProtocolVersion; 2] = [V1, V2];

fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

fn now() -> UnixTime {
    at(NOW_SECS)
}

fn rng(seed: u64) -> ChaCha20Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    ChaCha20Rng::from_seed(s)
}

/// A CA with a server certificate for `server.test` and a client certificate.
struct Pki {
    ca_name: String,
    ca_cert: CertificateDer<'static>,
    ca_key: KeyPair,
    server: Arc<Credential>,
    client: Arc<Credential>,
}

impl Pki {
    fn new(seed: u64) -> Self {
        Self::named(seed, "Test CA")
    }

    fn named(seed: u64, ca_name: &str) -> Self {
        let mut rng = rng(seed ^ 0x5eed);
        let ca_key = KeyPair::generate(&mut rng);
        let ca_cert =
            issue_root(&ca_key, ca_name, Validity::days_from(now(), 365), &mut rng).expect("root");
        let mut pki = Self {
            ca_name: ca_name.to_owned(),
            server: Arc::new(placeholder_credential(&mut rng)),
            client: Arc::new(placeholder_credential(&mut rng)),
            ca_cert,
            ca_key,
        };
        pki.server = pki.leaf(
            &LeafSpec::server("server.test"),
            Validity::days_from(now(), 30),
            1,
        );
        pki.client = pki.leaf(
            &LeafSpec::client("client-1"),
            Validity::days_from(now(), 30),
            2,
        );
        pki
    }

    fn leaf(&self, spec: &LeafSpec, validity: Validity, seed: u64) -> Arc<Credential> {
        let mut rng = rng(seed ^ 0x1eaf);
        let key = KeyPair::generate(&mut rng);
        let issuer = Issuer {
            cert: &self.ca_cert,
            key: &self.ca_key,
        };
        let cert = issue_leaf(&issuer, &key.public_key(), spec, validity, &mut rng).expect("leaf");
        Arc::new(Credential::new(vec![cert], key).expect("credential"))
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_der(std::slice::from_ref(&self.ca_cert)).expect("anchors")
    }

    fn client_config(&self, suites: &[CipherSuite]) -> Arc<ClientConfig> {
        self.client_config_with(self.client.clone(), suites)
    }

    /// A client that offers versions up to `max` (version 1: it does not
    /// offer version 2 at all) and accepts from `min`.
    fn client_config_v(&self, suites: &[CipherSuite], max: ProtocolVersion) -> Arc<ClientConfig> {
        self.client_config_range(suites, V1, max)
    }

    fn client_config_range(
        &self,
        suites: &[CipherSuite],
        min: ProtocolVersion,
        max: ProtocolVersion,
    ) -> Arc<ClientConfig> {
        Arc::new(
            ClientConfig::builder()
                .with_server_verifier(Arc::new(WebPkiServerVerifier::new(self.anchors())))
                .with_credential(self.client.clone())
                .build_with_suites(suites)
                .expect("suites")
                .with_max_version(max)
                .expect("max")
                .with_min_version(min)
                .expect("min"),
        )
    }

    /// A server that answers versions up to `max`.
    fn server_config_v(&self, suites: &[CipherSuite], max: ProtocolVersion) -> Arc<ServerConfig> {
        Arc::new(
            ServerConfig::builder()
                .with_client_verifier(Arc::new(WebPkiClientVerifier::new(self.anchors())))
                .with_credential(self.server.clone())
                .build_with_suites(suites)
                .expect("suites")
                .with_max_version(max)
                .expect("max"),
        )
    }

    fn client_config_with(
        &self,
        cred: Arc<Credential>,
        suites: &[CipherSuite],
    ) -> Arc<ClientConfig> {
        Arc::new(
            ClientConfig::builder()
                .with_server_verifier(Arc::new(WebPkiServerVerifier::new(self.anchors())))
                .with_credential(cred)
                .build_with_suites(suites)
                .expect("suites"),
        )
    }

    fn server_config(&self, suites: &[CipherSuite]) -> Arc<ServerConfig> {
        self.server_config_with(self.server.clone(), false, suites)
    }

    fn server_config_with(
        &self,
        cred: Arc<Credential>,
        anonymous: bool,
        suites: &[CipherSuite],
    ) -> Arc<ServerConfig> {
        Arc::new(
            ServerConfig::builder()
                .with_client_verifier(Arc::new(
                    WebPkiClientVerifier::new(self.anchors()).allow_anonymous(anonymous),
                ))
                .with_credential(cred)
                .build_with_suites(suites)
                .expect("suites"),
        )
    }
}

/// A self-signed stand-in, replaced before use.
fn placeholder_credential(rng: &mut ChaCha20Rng) -> Credential {
    let key = KeyPair::generate(rng);
    let cert = issue_root(&key, "placeholder", Validity::days_from(now(), 1), rng).expect("cert");
    Credential::new(vec![cert], key).expect("credential")
}

fn name(n: &str) -> ServerName<'static> {
    ServerName::try_from(n.to_owned()).expect("valid name")
}

fn pair_with(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    server_name: &str,
    session: SessionConfig,
    seed: u64,
) -> Pair {
    Pair::new(
        client,
        server,
        name(server_name),
        session,
        now(),
        Box::new(rng(seed)),
    )
    .expect("client starts")
}

fn pair(pki: &Pki, seed: u64) -> Pair {
    pair_with(
        pki.client_config(&[AES, CHACHA]),
        pki.server_config(&[AES, CHACHA]),
        "server.test",
        SessionConfig::default(),
        seed,
    )
}

/// [`pair`] with a client that offers versions up to `max`: the session
/// runs `max` (the server speaks both).
fn pair_v(pki: &Pki, seed: u64, max: ProtocolVersion) -> Pair {
    pair_with(
        pki.client_config_v(&[AES, CHACHA], max),
        pki.server_config(&[AES, CHACHA]),
        "server.test",
        SessionConfig::default(),
        seed,
    )
}

fn expect_err(r: Result<(), PairError>) -> PairError {
    match r {
        Err(e) => e,
        Ok(()) => panic!("expected the handshake to fail"),
    }
}

// ---------------------------------------------------------------------------
// The handshake completes.
// ---------------------------------------------------------------------------

#[test]
fn all_24_orders_complete_with_both_ciphers_in_both_versions() {
    let pki = Pki::new(1);
    for v in VERSIONS {
        all_24_orders_complete_with_both_ciphers(&pki, v);
    }
}

fn all_24_orders_complete_with_both_ciphers(pki: &Pki, v: ProtocolVersion) {
    let mut seen: BTreeMap<(u8, u16), usize> = BTreeMap::new();
    for seed in 0..3000u64 {
        let suite = if seed % 2 == 0 { AES } else { CHACHA };
        let mut p = pair_with(
            pki.client_config_v(&[suite], v),
            pki.server_config(&[AES, CHACHA]),
            "server.test",
            SessionConfig::default(),
            seed,
        );
        p.client.send_message(b"early").expect("queued");
        p.handshake().expect("handshake");
        let (c, s) = (
            p.client.summary().expect("client done").clone(),
            p.server.summary().expect("server done").clone(),
        );
        assert_eq!(c.order, s.order);
        assert_eq!(c.suite, suite);
        assert_eq!((c.version, s.version), (v, v));
        assert_eq!(c.session_hash, s.session_hash);
        assert_eq!(c.peer.to_string(), "dns:server.test");
        assert_eq!(s.peer.to_string(), "dns:client-1");
        assert_eq!(p.server.recv_message().as_deref(), Some(&b"early"[..]));
        p.server.send_message(b"reply").expect("send");
        p.drive().expect("drive");
        assert_eq!(p.client.recv_message().as_deref(), Some(&b"reply"[..]));
        *seen.entry((c.order.index(), suite.0)).or_default() += 1;
        if seen.len() == 48 {
            break;
        }
    }
    assert_eq!(seen.len(), 48, "{v}: orders × ciphers seen: {seen:?}");
}

#[test]
fn flights_are_those_of_the_brief_and_data_rides_with_them() {
    let pki = Pki::new(2);
    let mut p = pair(&pki, 7);
    p.client
        .send_message(b"ping")
        .expect("queued before the handshake");
    // C[1] → S[2,3,4] → C[5] → S[6,7/9] → C[8/10,11,data] → S[12,13,data]
    for (i, from) in [
        Side::Client,
        Side::Server,
        Side::Client,
        Side::Server,
        Side::Client,
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            p.transfer(from).expect("flight delivered"),
            "flight {i} missing"
        );
    }
    // The client's data went out with step 11: 2 RTT.
    assert_eq!(p.server.recv_message().as_deref(), Some(&b"ping"[..]));
    assert!(!p.server.is_handshaking());
    // The server answers in the same write as steps 12 and 13: 2.5 RTT.
    p.server.send_message(b"pong").expect("send");
    assert!(p.transfer(Side::Server).expect("flight 6"));
    assert!(!p.client.is_handshaking());
    assert_eq!(p.client.recv_message().as_deref(), Some(&b"pong"[..]));
    assert_eq!(p.flights.len(), 6);
    // Records per flight: plaintext hello, then sealed records only.
    let kinds: Vec<Vec<RecordKind>> = p
        .flights
        .iter()
        .map(|f| records(&f.bytes).iter().map(|r| r.0).collect())
        .collect();
    use RecordKind as K;
    assert_eq!(
        kinds,
        vec![
            vec![K::HANDSHAKE],
            vec![K::HANDSHAKE, K::SEALED],
            vec![K::SEALED],
            vec![K::SEALED],
            vec![K::SEALED, K::SEALED],            // [8/10, 11] + data
            vec![K::SEALED, K::SEALED, K::SEALED]  // [12], [13], data
        ]
    );
}

/// Splits a byte stream into (kind, whole record bytes).
fn records(bytes: &[u8]) -> Vec<(RecordKind, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = RecordHeader::decode(&bytes[at..at + 4]).expect("header");
        out.push((h.kind, bytes[at..at + 4 + h.len].to_vec()));
        at += 4 + h.len;
    }
    out
}

#[test]
fn the_wire_does_not_reveal_the_order() {
    let pki = Pki::new(3);
    for v in VERSIONS {
        the_wire_does_not_reveal_the_order_in(&pki, v);
    }
}

fn the_wire_does_not_reveal_the_order_in(pki: &Pki, v: ProtocolVersion) {
    let mut profiles: BTreeMap<Vec<Vec<usize>>, BTreeSet<u8>> = BTreeMap::new();
    let mut orders = BTreeSet::new();
    for seed in 0..400u64 {
        let mut p = pair_v(pki, seed, v);
        p.handshake().expect("handshake");
        let order = p.client.summary().expect("done").order.index();
        orders.insert(order);
        let profile = p
            .flights
            .iter()
            .map(|f| records(&f.bytes).iter().map(|r| r.1.len()).collect())
            .collect();
        profiles.entry(profile).or_default().insert(order);
        if orders.len() == 24 {
            break;
        }
    }
    assert_eq!(orders.len(), 24);
    // Every order produced exactly the same record sizes in every flight.
    assert_eq!(
        profiles.len(),
        1,
        "{v}: record sizes depend on the order: {profiles:?}"
    );
}

// ---------------------------------------------------------------------------
// Tampering with flights.
// ---------------------------------------------------------------------------

/// Replays a deterministic handshake (seed `seed`) up to flight `i`, hands
/// flight `i` to `tamper`, delivers the result and drives on. Returns the
/// first error and the side that raised it, or `None` if the pair stalled.
fn run_tampered(
    pki: &Pki,
    seed: u64,
    v: ProtocolVersion,
    reference: &[sc_session::pair::Flight],
    i: usize,
    tamper: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> Result<Option<(Side, usize, Error)>, String> {
    let mut p = pair_v(pki, seed, v);
    for (j, f) in reference.iter().enumerate().take(i) {
        let bytes = p.take_flight(f.from).ok_or("reference flight missing")?;
        if bytes != f.bytes {
            return Err(format!("replay diverged at flight {j}"));
        }
        p.deliver(other(f.from), &bytes)
            .map_err(|e| format!("clean flight {j} failed: {e}"))?;
    }
    let from = reference[i].from;
    let bytes = p.take_flight(from).ok_or("tampered flight missing")?;
    let tampered = tamper(bytes);
    if let Err(e) = p.deliver(other(from), &tampered) {
        return Ok(Some((e.side, i, e.error)));
    }
    for round in i + 1..i + 40 {
        for from in [Side::Client, Side::Server] {
            if let Err(e) = p.transfer(from) {
                return Ok(Some((e.side, round, e.error)));
            }
        }
    }
    if !p.client.is_handshaking() && !p.server.is_handshaking() {
        return Err(format!(
            "flight {i} tampered, yet both sides completed the handshake"
        ));
    }
    // Stalled: a length now claims bytes that never come. The handshake
    // timeout ends it.
    let late = at(NOW_SECS + 30);
    let c = p.client.handle_timeout(late);
    let s = p.server.handle_timeout(late);
    match (c, s) {
        (Err(Error::Timeout { .. }), _) | (_, Err(Error::Timeout { .. })) => Ok(None),
        other => Err(format!("stalled handshake did not time out: {other:?}")),
    }
}

fn reference_flights(pki: &Pki, seed: u64, v: ProtocolVersion) -> Vec<sc_session::pair::Flight> {
    let mut p = pair_v(pki, seed, v);
    p.handshake().expect("reference handshake");
    assert_eq!(p.client.summary().expect("done").version, v);
    p.flights.clone()
}

#[test]
fn flipping_any_byte_of_any_flight_fails_in_both_versions() {
    let pki = Pki::new(4);
    for v in VERSIONS {
        flipping_any_byte_of_any_flight_fails(&pki, v);
    }
}

fn flipping_any_byte_of_any_flight_fails(pki: &Pki, v: ProtocolVersion) {
    let seed = 11;
    let reference = reference_flights(pki, seed, v);
    let mut table: BTreeMap<String, usize> = BTreeMap::new();
    let mut at_receiver = vec![0usize; reference.len()];
    let mut total = 0;
    for (i, f) in reference.iter().enumerate() {
        for pos in 0..f.bytes.len() {
            total += 1;
            let outcome = run_tampered(pki, seed, v, &reference, i, |mut b| {
                b[pos] ^= 0x01;
                b
            })
            .unwrap_or_else(|e| panic!("flight {i} byte {pos}: {e}"));
            let key = match &outcome {
                Some((side, _, e)) => format!("{side:?}: {}", kind(e)),
                None => "stalled, then timeout".into(),
            };
            if let Some((side, round, _)) = &outcome {
                if *side == other(f.from) && *round == i {
                    at_receiver[i] += 1;
                }
            }
            *table.entry(key).or_default() += 1;
        }
    }
    println!(
        "{v}: {total} single-byte flips over {} flights:",
        reference.len()
    );
    for (k, v) in &table {
        println!("  {v:6}  {k}");
    }
    for (i, f) in reference.iter().enumerate() {
        println!(
            "  flight {} ({:?}, {} bytes): {} detected by its receiver on arrival",
            i + 1,
            f.from,
            f.bytes.len(),
            at_receiver[i]
        );
    }
    // Sealed flights are authenticated as a whole: their receiver detects every
    // flip on arrival, except a flip that lengthens a record header (the
    // receiver waits for bytes that never come: the timeout ends it).
    for i in 2..reference.len() {
        let stalls = stall_positions(&reference[i].bytes);
        assert!(
            at_receiver[i] + stalls >= reference[i].bytes.len(),
            "{v} flight {}: only {} of {} flips detected on arrival ({} header stalls)",
            i + 1,
            at_receiver[i],
            reference[i].bytes.len(),
            stalls
        );
    }
}

/// Positions in a flight where a +1 flip of a record length byte lengthens
/// the record (so the receiver waits for more bytes).
fn stall_positions(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while at < bytes.len() {
        let h = RecordHeader::decode(&bytes[at..at + 4]).expect("header");
        n += bytes[at + 1..at + 4]
            .iter()
            .filter(|b| *b & 0x01 == 0)
            .count();
        at += 4 + h.len;
    }
    n
}

/// A short name of an error's kind, for the outcome table.
fn kind(e: &Error) -> String {
    let s = format!("{e:?}");
    s.split(['(', '{', ' '])
        .take(2)
        .collect::<Vec<_>>()
        .join("(")
}

#[test]
fn dropping_a_flight_times_out_and_never_completes() {
    let pki = Pki::new(5);
    for v in VERSIONS {
        let reference = reference_flights(&pki, 21, v);
        for i in 0..reference.len() {
            let out = run_tampered(&pki, 21, v, &reference, i, |_| Vec::new())
                .unwrap_or_else(|e| panic!("{v} flight {i}: {e}"));
            // An empty delivery changes nothing: the pair stalls, then times out.
            assert!(out.is_none(), "{v} flight {i}: {out:?}");
        }
    }
}

#[test]
fn duplicating_a_flight_fails() {
    let pki = Pki::new(6);
    for v in VERSIONS {
        let reference = reference_flights(&pki, 22, v);
        for i in 0..reference.len() {
            let out = run_tampered(&pki, 22, v, &reference, i, |b| [b.clone(), b].concat())
                .unwrap_or_else(|e| panic!("{v} flight {i}: {e}"));
            let (side, _, e) =
                out.unwrap_or_else(|| panic!("{v} flight {i}: duplicate went unnoticed"));
            assert_eq!(side, other(reference[i].from), "{v} flight {i}");
            assert!(
                matches!(e, Error::DecryptFailed | Error::UnexpectedRecord { .. }),
                "{v} flight {i}: {e:?}"
            );
        }
    }
}

#[test]
fn reordering_records_within_a_flight_fails() {
    let pki = Pki::new(7);
    for v in VERSIONS {
        reordering_records_within_a_flight_fails_in(&pki, v);
    }
}

fn reordering_records_within_a_flight_fails_in(pki: &Pki, v: ProtocolVersion) {
    let reference = reference_flights(pki, 23, v);
    let mut tested = 0;
    for (i, f) in reference.iter().enumerate() {
        let recs = records(&f.bytes);
        if recs.len() < 2 {
            continue;
        }
        tested += 1;
        let out = run_tampered(pki, 23, v, &reference, i, |_| {
            let mut swapped = recs.clone();
            swapped.swap(0, 1);
            swapped.into_iter().flat_map(|r| r.1).collect()
        })
        .unwrap_or_else(|e| panic!("flight {i}: {e}"));
        let (side, _, e) = out.unwrap_or_else(|| panic!("flight {i}: reorder went unnoticed"));
        assert_eq!(side, other(f.from));
        assert!(
            matches!(e, Error::DecryptFailed | Error::UnexpectedRecord { .. }),
            "flight {i}: {e:?}"
        );
    }
    assert_eq!(tested, 2, "flights 2 and 6 have two records each");
}

#[test]
fn a_flight_from_another_session_fails() {
    let pki = Pki::new(8);
    for v in VERSIONS {
        let reference = reference_flights(&pki, 24, v);
        // From a session of the same version, and of the other one.
        for foreign_v in VERSIONS {
            let foreign = reference_flights(&pki, 25, foreign_v);
            for i in 1..reference.len() {
                let out = run_tampered(&pki, 24, v, &reference, i, |_| foreign[i].bytes.clone())
                    .unwrap_or_else(|e| panic!("{v} flight {i}: {e}"));
                let (side, _, e) = out.unwrap_or_else(|| {
                    panic!("{v} flight {i}: foreign {foreign_v} flight accepted")
                });
                assert_eq!(side, other(reference[i].from), "{v} flight {i}: {e:?}");
            }
        }
    }
}

#[test]
fn messages_of_a_flight_in_the_wrong_order_fail() {
    // A peer (not an outside attacker, who cannot decrypt) that sends its
    // two permuted messages in the wrong order is refused: both sides must
    // agree on the order the transcript is signed in.
    use sc_handshake::{Action, ClientHandshake, ServerHandshake};
    let pki = Pki::new(9);
    let mut rng = rng(31);
    let (mut client, first) = ClientHandshake::start(
        pki.client_config(&[AES]),
        name("server.test"),
        None,
        &mut rng,
    )
    .expect("start");
    let mut server = ServerHandshake::new(pki.server_config(&[AES]));
    let mut to_server = first;
    let mut to_client;
    let mut swapped = false;
    for _ in 0..3 {
        to_client = Vec::new();
        for a in to_server.drain(..) {
            if let Action::Send { level, messages } = a {
                to_client.extend(
                    server
                        .handle(level, &messages, now(), &mut rng)
                        .expect("server"),
                );
            }
        }
        for a in to_client {
            if let Action::Send {
                level,
                mut messages,
            } = a
            {
                if messages.first() == Some(&6) {
                    // [6 (132 bytes), x, y]: swap x and y.
                    let six = 4 + 128;
                    let rest = messages.split_off(six);
                    let x_len = 4 + u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
                    messages.extend_from_slice(&rest[x_len..]);
                    messages.extend_from_slice(&rest[..x_len]);
                    swapped = true;
                    let err = client
                        .handle(level, &messages, now(), &mut rng)
                        .expect_err("swapped");
                    assert!(
                        matches!(
                            err,
                            HsError::PeerMisbehaved(PeerMisbehaved::UnexpectedMessage { .. })
                        ),
                        "{err:?}"
                    );
                    break;
                }
                to_server.extend(
                    client
                        .handle(level, &messages, now(), &mut rng)
                        .expect("client"),
                );
            }
        }
        if swapped {
            break;
        }
    }
    assert!(swapped);
}

#[test]
fn a_downgrade_of_the_offer_or_the_choice_fails() {
    let pki = Pki::new(10);
    for v in VERSIONS {
        a_downgrade_of_the_offer_or_the_choice_fails_in(&pki, v);
    }
}

fn a_downgrade_of_the_offer_or_the_choice_fails_in(pki: &Pki, v: ProtocolVersion) {
    // Both sides enable both ciphers; the client prefers AES-256-GCM.
    let mk = || {
        pair_with(
            pki.client_config_v(&[AES, CHACHA], v),
            pki.server_config(&[AES, CHACHA]),
            "server.test",
            SessionConfig::default(),
            41,
        )
    };
    // 1. The attacker rewrites the offer to ChaCha20-Poly1305 only.
    let mut p = mk();
    let mut ch = p.take_flight(Side::Client).expect("hello");
    let suites_at = 4 + 4 + 2 + 32 + 32 + 1184;
    // Two suites and the cookie capability; version 2 adds its own.
    let offered = if v == V2 { 4 } else { 3 };
    assert_eq!(ch[suites_at], offered, "{v}: suites and capabilities");
    ch[suites_at + 1..suites_at + 3].copy_from_slice(&CHACHA.0.to_be_bytes());
    ch[suites_at + 3..suites_at + 5].copy_from_slice(&CHACHA.0.to_be_bytes());
    p.deliver(Side::Server, &ch)
        .expect("server accepts the rewritten hello");
    let e = expect_err(p.drive());
    assert_eq!((e.side, e.error), (Side::Client, Error::DecryptFailed));
    assert!(p.client.is_handshaking() && p.server.is_handshaking());

    // 2. The attacker rewrites the server's choice (version 2's ServerHello
    // carries a 1,088-byte ciphertext where version 1's has a key).
    let mut p = mk();
    p.transfer(Side::Client).expect("hello");
    let mut sh = p.take_flight(Side::Server).expect("server hello");
    let share = if v == V2 { 1088 } else { 1184 };
    let suite_at = 4 + 4 + 2 + 32 + 32 + share;
    assert_eq!(u16::from_be_bytes([sh[suite_at], sh[suite_at + 1]]), AES.0);
    sh[suite_at..suite_at + 2].copy_from_slice(&CHACHA.0.to_be_bytes());
    let e = p.deliver(Side::Client, &sh).expect_err("choice rewritten");
    assert_eq!(e.error, Error::DecryptFailed);

    // 3. A choice that was never offered is refused by name.
    let mut p = pair_with(
        pki.client_config_v(&[AES], v),
        pki.server_config(&[AES, CHACHA]),
        "server.test",
        SessionConfig::default(),
        42,
    );
    p.transfer(Side::Client).expect("hello");
    let mut sh = p.take_flight(Side::Server).expect("server hello");
    sh[suite_at..suite_at + 2].copy_from_slice(&CHACHA.0.to_be_bytes());
    let e = p.deliver(Side::Client, &sh).expect_err("unoffered");
    assert_eq!(
        e.error,
        Error::Handshake(HsError::PeerMisbehaved(PeerMisbehaved::SuiteNotOffered(
            CHACHA
        )))
    );
}

// ---------------------------------------------------------------------------
// Protocol version 2 (SPEC §16): downgrade, and the server's proof of its
// key before the client's certificate.
// ---------------------------------------------------------------------------

/// The plaintext flight-1 record `record` (one ClientHello) with its offered
/// suites changed, re-framed.
fn hello_with_suites(record: &[u8], change: impl FnOnce(&mut Vec<CipherSuite>)) -> Vec<u8> {
    let HandshakeMessage::ClientHello(mut ch) =
        HandshakeMessage::decode(&record[4..]).expect("one ClientHello")
    else {
        panic!("flight 1 is a ClientHello");
    };
    change(&mut ch.suites);
    let body = HandshakeMessage::ClientHello(ch).encoded();
    let mut out = RecordHeader {
        kind: RecordKind::HANDSHAKE,
        len: body.len(),
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(&body);
    out
}

/// A man in the middle strips the offer of version 2 (`0xfe04`) from the
/// ClientHello. The server answers version 1, but its transcript holds the
/// stripped ClientHello and the client's the real one: their handshake keys
/// differ and the client cannot open flight 2 (`bad record`); it sends
/// nothing of its own (no step 5). A client with `min_version` 2 refuses
/// the version 1 ServerHello by name instead.
#[test]
fn stripping_the_version_2_offer_fails_at_flight_2() {
    let pki = Pki::new(70);
    for (min, want) in [
        (V1, Error::DecryptFailed),
        (
            V2,
            Error::Handshake(HsError::PeerIncompatible(
                PeerIncompatible::VersionBelowMinimum { peer: V1, min: V2 },
            )),
        ),
    ] {
        let mut p = pair_with(
            pki.client_config_range(&[AES, CHACHA], min, V2),
            pki.server_config(&[AES, CHACHA]),
            "server.test",
            SessionConfig::default(),
            71,
        );
        let ch = p.take_flight(Side::Client).expect("hello");
        let stripped = hello_with_suites(&ch, |s| {
            assert!(s.contains(&CipherSuite::VERSION_2), "offered by default");
            s.retain(|c| *c != CipherSuite::VERSION_2);
        });
        assert_eq!(stripped.len(), ch.len() - 2);
        p.deliver(Side::Server, &stripped)
            .expect("the server takes the stripped hello");
        let flight2 = p.take_flight(Side::Server).expect("flight 2");
        // The server answered version 1 (0x5c01 after the record and
        // message headers).
        assert_eq!(&flight2[8..10], &[0x5c, 0x01]);
        let e = p
            .deliver(Side::Client, &flight2)
            .expect_err("the client refuses flight 2");
        assert_eq!(e.side, Side::Client);
        assert_eq!(e.error, want, "min_version {min}");
        let alert = if min == V2 {
            AlertCode::PROTOCOL_VERSION
        } else {
            AlertCode::BAD_RECORD
        };
        assert_eq!(e.error.alert(), Some(alert));
        // All the client sends now is its alert: one record, no handshake.
        let out = p.client.take_outgoing();
        assert_eq!(records(&out).len(), 1, "{min}: one alert record");
        assert!(
            out.len() < 40,
            "{min}: {} bytes is more than an alert",
            out.len()
        );
        assert!(p.client.summary().is_none() && p.server.summary().is_none());
    }
}

/// A key log that keeps the secrets by label.
#[derive(Debug, Default)]
struct Secrets(std::sync::Mutex<BTreeMap<&'static str, Vec<u8>>>);

impl sc_handshake::KeyLog for Secrets {
    fn log(&self, label: &'static str, _client_random: &[u8; 32], secret: &[u8]) {
        self.0.lock().expect("log").insert(label, secret.to_vec());
    }
}

impl Secrets {
    fn get(&self, label: &str) -> sc_handshake::Secret {
        let bytes = self.0.lock().expect("log")[label].clone();
        sc_handshake::Secret::from_slice(&bytes).expect("32 bytes")
    }
}

/// P1 on the wire: an impostor terminates the client's session with its own
/// ephemeral keys (so it can open and re-seal flight 2) and sends the real
/// server's certificate chain, which is public, with step 4 signed by its
/// own key — it does not have the real server's. A version 2 client checks
/// that signature before it sends anything of its own: it fails with
/// `ClientCertRequestInvalid` and all that leaves it is a sealed alert.
#[test]
fn a_v2_client_gives_an_impostor_with_the_real_chain_only_an_alert() {
    use sc_handshake::schedule::key_log_labels as labels;
    let pki = Pki::new(72);
    for v in VERSIONS {
        // The impostor: the same clients trusted, its own certificate for
        // server.test from a CA the client does not know, and (as the end
        // of the client's session) every secret of it.
        // (Its own key: `Pki::leaf` draws keys from the seed it is given.)
        let own = Pki::named(73, "Impostor CA").leaf(
            &LeafSpec::server("server.test"),
            Validity::days_from(now(), 30),
            73,
        );
        assert_ne!(own.public_key(), pki.server.public_key());
        let log = Arc::new(Secrets::default());
        let impostor = ServerConfig::builder()
            .with_client_verifier(Arc::new(WebPkiClientVerifier::new(pki.anchors())))
            .with_credential(own.clone())
            .dangerous_key_log(log.clone())
            .build_with_suites(&[AES])
            .expect("suites");
        let mut p = pair_with(
            pki.client_config_v(&[AES], v),
            Arc::new(impostor),
            "server.test",
            SessionConfig::default(),
            74,
        );
        let ch = p.take_flight(Side::Client).expect("hello");
        p.deliver(Side::Server, &ch)
            .expect("impostor takes the hello");
        let flight2 = p.take_flight(Side::Server).expect("flight 2");
        let recs = records(&flight2);
        assert_eq!(recs.len(), 2);
        let provider = pki.server_config(&[AES]).provider();
        // Open [3, 4] with the impostor's own s_hs.
        let mut opener = RecordOpener::new(
            provider,
            AES,
            Direction::ServerToClient,
            log.get(labels::SERVER_HS_TRAFFIC),
        )
        .expect("opener");
        let mut body = recs[1].1[4..].to_vec();
        let header = RecordHeader::decode(&recs[1].1[..4]).expect("header");
        let (typ, content) = opener.open(header, &mut body).expect("opens");
        assert_eq!(typ, InnerType::HANDSHAKE);
        let three_len = 4 + u32::from_be_bytes([0, content[1], content[2], content[3]]) as usize;
        let (_, four) = content.split_at(three_len);
        // The real chain in step 3.
        let real = sc_wire::CertChain::new(
            pki.server
                .chain()
                .iter()
                .map(|c| sc_wire::CertificateBytes::new(c.as_ref().to_vec()).expect("cert"))
                .collect(),
        )
        .expect("chain");
        let mut forged = HandshakeMessage::ServerCertSend(real).encoded();
        let four = if v == V2 {
            // Step 4 re-signed by the impostor over th_3 with the real chain.
            let HandshakeMessage::ClientCertRequestV2(mut req) =
                HandshakeMessage::decode_for(V2, four).expect("v2 request")
            else {
                panic!("a version 2 step 4");
            };
            let th3 = provider
                .hash
                .hash(&[&ch[4..], &recs[0].1[4..], &forged[..]].concat());
            let mut content = sc_handshake::schedule::context::v2::CLIENT_CERT_REQUEST.to_vec();
            content.push(0);
            content.extend_from_slice(&th3);
            req.signature = own.sign(&content).into();
            HandshakeMessage::ClientCertRequestV2(req).encoded()
        } else {
            four.to_vec()
        };
        forged.extend_from_slice(&four);
        let mut sealer = RecordSealer::new(
            provider,
            AES,
            Direction::ServerToClient,
            log.get(labels::SERVER_HS_TRAFFIC),
        )
        .expect("sealer");
        let mut resealed = recs[0].1.clone();
        sealer
            .seal(InnerType::HANDSHAKE, &forged, 0, &mut resealed)
            .expect("seal");
        let got = p.deliver(Side::Client, &resealed);
        // What left the client, opened with the impostor's c_hs.
        let out = p.client.take_outgoing();
        let mut opener = RecordOpener::new(
            provider,
            AES,
            Direction::ClientToServer,
            log.get(labels::CLIENT_HS_TRAFFIC),
        )
        .expect("opener");
        let inner: Vec<InnerType> = records(&out)
            .into_iter()
            .map(|(_, r)| {
                let header = RecordHeader::decode(&r[..4]).expect("header");
                let mut body = r[4..].to_vec();
                opener.open(header, &mut body).expect("opens").0
            })
            .collect();
        if v == V2 {
            let e = got.expect_err("the client refuses the forged step 4");
            assert_eq!(
                e.error,
                Error::Handshake(HsError::PeerMisbehaved(
                    PeerMisbehaved::ClientCertRequestInvalid
                ))
            );
            assert_eq!(
                inner,
                vec![InnerType::ALERT],
                "only an alert left the client"
            );
        } else {
            // The control: version 1 has no signature in step 4, and the
            // client answers the impostor with its certificate.
            got.expect("a version 1 client takes flight 2");
            assert_eq!(inner, vec![InnerType::HANDSHAKE], "step 5 left the client");
        }
    }
}

#[test]
fn version_1_and_version_2_peers_complete_a_session_both_ways() {
    let pki = Pki::new(75);
    for (client_max, server_max, want) in [(V2, V2, V2), (V1, V2, V1), (V2, V1, V1)] {
        let mut p = pair_with(
            pki.client_config_v(&[AES, CHACHA], client_max),
            pki.server_config_v(&[AES, CHACHA], server_max),
            "server.test",
            SessionConfig::default(),
            76,
        );
        p.client.send_message(b"early").expect("queued");
        p.handshake().expect("handshake");
        let (c, s) = (
            p.client.summary().expect("client").clone(),
            p.server.summary().expect("server").clone(),
        );
        assert_eq!((c.version, s.version), (want, want));
        assert_eq!(c.session_hash, s.session_hash);
        assert_eq!(p.server.recv_message().as_deref(), Some(&b"early"[..]));
        p.server.send_message(b"reply").expect("send");
        p.drive().expect("drive");
        assert_eq!(p.client.recv_message().as_deref(), Some(&b"reply"[..]));
    }
}

/// Bytes on the wire of one handshake (no application data) of each
/// version, with SPEC §4.4's typical parameters: a throwaway PKI (one
/// 401-byte server leaf, one 395-byte client leaf, a 41-byte CA name), two
/// suites and the cookie capability offered. Version 2 costs 32 bytes more
/// in its messages (step 2 −96, step 4 +64, step 7 +96, step 9 −32) and 2
/// in the ClientHello for its offer.
#[test]
fn bytes_on_the_wire_of_a_version_1_and_a_version_2_handshake() {
    let now = now();
    let mut rng = rng(80);
    let pki = sc_pki::throwaway::ThrowawayPki::new("server.test", "client-1", now, &mut rng)
        .expect("pki");
    let flights = |v: ProtocolVersion| -> Vec<usize> {
        let client = ClientConfig::builder()
            .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
            .with_credential(pki.client.clone())
            .build_with_suites(&[AES, CHACHA])
            .expect("suites")
            .with_max_version(v)
            .expect("version");
        let server = ServerConfig::builder()
            .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
            .with_credential(pki.server.clone())
            .build_with_suites(&[AES, CHACHA])
            .expect("suites");
        let mut p = pair_with(
            Arc::new(client),
            Arc::new(server),
            "server.test",
            SessionConfig::default(),
            81,
        );
        p.handshake().expect("handshake");
        assert_eq!(p.client.summary().expect("done").version, v);
        let sent = p.client.stats().handshake_bytes_sent + p.server.stats().handshake_bytes_sent;
        let per_flight: Vec<usize> = p.flights.iter().map(|f| f.bytes.len()).collect();
        assert_eq!(per_flight.iter().sum::<usize>() as u64, sent);
        per_flight
    };
    let (v1, v2) = (flights(V1), flights(V2));
    let (t1, t2) = (v1.iter().sum::<usize>(), v2.iter().sum::<usize>());
    println!("bytes on the wire, flights 1-6: version 1 {v1:?} = {t1}; version 2 {v2:?} = {t2}");
    assert_eq!(v1, [1266, 1740, 426, 1315, 1219, 150]);
    assert_eq!(t1, 6116);
    // Flight 1: the offer (+2). Flight 2: ServerHello −96, step 4 +64.
    // Flight 4: step 7 +96, step 9 −32. Flights 3, 5 and 6 are unchanged.
    assert_eq!(v2, [1268, 1708, 426, 1379, 1219, 150]);
    assert_eq!(t2, 6150);
    assert_eq!(t2 - t1, 2 + 32);
}

#[test]
fn no_common_cipher_is_reported_to_both_sides() {
    let pki = Pki::new(11);
    let mut p = pair_with(
        pki.client_config(&[CHACHA]),
        pki.server_config(&[AES]),
        "server.test",
        SessionConfig::default(),
        43,
    );
    let e = expect_err(p.drive());
    assert_eq!(e.side, Side::Server);
    assert!(matches!(
        e.error,
        Error::Handshake(HsError::PeerIncompatible(
            PeerIncompatible::NoCommonCipher { .. }
        ))
    ));
    let e = p
        .transfer(Side::Server)
        .expect_err("alert reaches the client");
    assert_eq!(e.error, Error::PeerAlert(AlertCode::NO_COMMON_CIPHER));
}

// ---------------------------------------------------------------------------
// Certificates.
// ---------------------------------------------------------------------------

/// Runs a handshake expected to fail on `side` with `err`; checks the peer gets `alert`.
fn fails_with(mut p: Pair, side: Side, check: impl Fn(&Error) -> bool, alert: AlertCode) {
    let e = expect_err(p.drive());
    assert_eq!(e.side, side, "{e}");
    assert!(check(&e.error), "unexpected error: {:?}", e.error);
    assert_eq!(e.error.alert(), Some(alert));
    let peer = p.transfer(side).expect_err("the alert reaches the peer");
    assert_eq!(peer.error, Error::PeerAlert(alert));
    assert!(p.client.summary().is_none() && p.server.summary().is_none());
}

fn cert_err(e: &Error) -> Option<&CertError> {
    match e {
        Error::Handshake(HsError::Certificate(c)) => Some(c),
        _ => None,
    }
}

#[test]
fn bad_server_certificates_are_refused_with_distinct_errors() {
    let pki = Pki::new(12);
    let other_ca = Pki::named(99, "Other CA");
    assert_ne!(pki.ca_name, other_ca.ca_name);
    let server_with = |cred| pki.server_config_with(cred, false, &[AES]);
    let past = Validity {
        not_before: at(NOW_SECS - 90 * 86_400),
        not_after: at(NOW_SECS - 86_400),
    };
    let future = Validity {
        not_before: at(NOW_SECS + 86_400),
        not_after: at(NOW_SECS + 90 * 86_400),
    };
    let ok = Validity::days_from(now(), 30);
    type Case = (&'static str, Pair, fn(&CertError) -> bool, AlertCode);
    let cases: Vec<Case> = vec![
        (
            "unknown CA",
            pair_with(
                other_ca.client_config(&[AES]),
                server_with(pki.server.clone()),
                "server.test",
                SessionConfig::default(),
                1,
            ),
            |c| matches!(c, CertError::UnknownIssuer),
            AlertCode::UNKNOWN_ISSUER,
        ),
        (
            "expired",
            pair_with(
                pki.client_config(&[AES]),
                server_with(pki.leaf(&LeafSpec::server("server.test"), past, 50)),
                "server.test",
                SessionConfig::default(),
                2,
            ),
            |c| matches!(c, CertError::Expired { .. }),
            AlertCode::CERTIFICATE_EXPIRED,
        ),
        (
            "not yet valid",
            pair_with(
                pki.client_config(&[AES]),
                server_with(pki.leaf(&LeafSpec::server("server.test"), future, 51)),
                "server.test",
                SessionConfig::default(),
                3,
            ),
            |c| matches!(c, CertError::NotYetValid { .. }),
            AlertCode::CERTIFICATE_NOT_YET_VALID,
        ),
        (
            "wrong EKU (a client certificate)",
            pair_with(
                pki.client_config(&[AES]),
                server_with(pki.leaf(&LeafSpec::client("server.test"), ok, 52)),
                "server.test",
                SessionConfig::default(),
                4,
            ),
            |c| matches!(c, CertError::WrongPurpose),
            AlertCode::WRONG_PURPOSE,
        ),
        (
            "wrong name",
            pair_with(
                pki.client_config(&[AES]),
                server_with(pki.server.clone()),
                "db.internal",
                SessionConfig::default(),
                5,
            ),
            |c| matches!(c, CertError::NameMismatch { expected, presented } if expected == "db.internal" && presented == &vec!["server.test".to_string()]),
            AlertCode::NAME_MISMATCH,
        ),
    ];
    let mut messages = BTreeSet::new();
    for (what, p, check, alert) in cases {
        let e_check = move |e: &Error| cert_err(e).is_some_and(check);
        fails_with(p, Side::Client, e_check, alert);
        messages.insert(what);
    }
    assert_eq!(messages.len(), 5);
}

#[test]
fn bad_client_certificates_are_refused_by_the_server() {
    let pki = Pki::new(13);
    let other_ca = Pki::named(98, "Other CA");
    let past = Validity {
        not_before: at(NOW_SECS - 90 * 86_400),
        not_after: at(NOW_SECS - 86_400),
    };
    let ok = Validity::days_from(now(), 30);
    let run = |cred: Arc<Credential>, check: fn(&CertError) -> bool, alert| {
        let p = pair_with(
            pki.client_config_with(cred, &[AES]),
            pki.server_config(&[AES]),
            "server.test",
            SessionConfig::default(),
            6,
        );
        fails_with(
            p,
            Side::Server,
            move |e| cert_err(e).is_some_and(check),
            alert,
        );
    };
    run(
        other_ca.client.clone(),
        |c| matches!(c, CertError::UnknownIssuer),
        AlertCode::UNKNOWN_ISSUER,
    );
    run(
        pki.leaf(&LeafSpec::client("client-1"), past, 60),
        |c| matches!(c, CertError::Expired { .. }),
        AlertCode::CERTIFICATE_EXPIRED,
    );
    run(
        pki.leaf(&LeafSpec::server("client-1"), ok, 61),
        |c| matches!(c, CertError::WrongPurpose),
        AlertCode::WRONG_PURPOSE,
    );
}

#[test]
fn anonymous_clients_only_where_allowed() {
    let pki = Pki::new(14);
    let anon = Arc::new(
        ClientConfig::builder()
            .with_server_verifier(Arc::new(WebPkiServerVerifier::new(pki.anchors())))
            .with_anonymous_identity()
            .build(),
    );
    // Allowed: authenticated only as its fresh key.
    let mut p = pair_with(
        anon.clone(),
        pki.server_config_with(pki.server.clone(), true, &[AES, CHACHA]),
        "server.test",
        SessionConfig::default(),
        7,
    );
    p.handshake().expect("anonymous allowed");
    let peer = &p.server.summary().expect("done").peer;
    assert!(peer.anonymous);
    assert!(peer.to_string().starts_with("anonymous:"), "{peer}");
    // Refused by default: the client stops at step 4 and says why.
    let p = pair_with(
        anon,
        pki.server_config(&[AES, CHACHA]),
        "server.test",
        SessionConfig::default(),
        8,
    );
    fails_with(
        p,
        Side::Client,
        |e| {
            matches!(
                e,
                Error::Handshake(HsError::PeerIncompatible(
                    PeerIncompatible::AnonymousNotAllowed
                ))
            )
        },
        AlertCode::ANONYMOUS_NOT_ALLOWED,
    );
}

// ---------------------------------------------------------------------------
// Records after the handshake.
// ---------------------------------------------------------------------------

/// A completed pair and three client records carrying "m0", "m1", "m2".
fn three_records(seed: u64) -> (Pair, Vec<Vec<u8>>) {
    let pki = Pki::new(15);
    let mut p = pair(&pki, seed);
    p.handshake().expect("handshake");
    let recs = (0..3)
        .map(|i| {
            p.client
                .send_message(format!("m{i}").as_bytes())
                .expect("send");
            p.client.take_outgoing()
        })
        .collect();
    (p, recs)
}

#[test]
fn records_in_order_are_delivered() {
    let (mut p, recs) = three_records(51);
    for r in &recs {
        p.deliver(Side::Server, r).expect("in order");
    }
    let got: Vec<_> = std::iter::from_fn(|| p.server.recv_message()).collect();
    assert_eq!(got, vec![b"m0".to_vec(), b"m1".to_vec(), b"m2".to_vec()]);
}

#[test]
fn replayed_reordered_dropped_and_reflected_records_are_rejected() {
    // Replay.
    let (mut p, r) = three_records(52);
    p.deliver(Side::Server, &r[0]).expect("first");
    assert_eq!(
        p.deliver(Side::Server, &r[0]).expect_err("replay").error,
        Error::DecryptFailed
    );
    // The message received before the attack is still there; the replay
    // delivered nothing.
    assert_eq!(p.server.recv_message().as_deref(), Some(&b"m0"[..]));
    assert_eq!(
        p.server.recv_message(),
        None,
        "the replay delivered nothing"
    );
    // The server told the client why.
    assert_eq!(
        p.transfer(Side::Server).expect_err("alert").error,
        Error::PeerAlert(AlertCode::BAD_RECORD)
    );
    // Reorder.
    let (mut p, r) = three_records(53);
    assert_eq!(
        p.deliver(Side::Server, &r[1]).expect_err("reorder").error,
        Error::DecryptFailed
    );
    assert_eq!(p.server.recv_message(), None);
    // Drop.
    let (mut p, r) = three_records(54);
    p.deliver(Side::Server, &r[0]).expect("first");
    assert_eq!(
        p.deliver(Side::Server, &r[2]).expect_err("drop").error,
        Error::DecryptFailed
    );
    // Reflection: a client record sent back to the client.
    let (mut p, r) = three_records(55);
    assert_eq!(
        p.deliver(Side::Client, &r[0]).expect_err("reflect").error,
        Error::DecryptFailed
    );
}

#[test]
fn truncation_is_told_apart_from_a_clean_close() {
    // Cut between records, without a close.
    let (mut p, r) = three_records(56);
    p.deliver(Side::Server, &r[0]).expect("first");
    assert_eq!(p.server.receive_eof(), Err(Error::Truncated));
    // Cut inside a record.
    let (mut p, r) = three_records(57);
    p.deliver(Side::Server, &r[0][..r[0].len() - 5])
        .expect("partial record is buffered");
    assert_eq!(p.server.recv_message(), None);
    assert_eq!(p.server.receive_eof(), Err(Error::Truncated));
    // A clean close, with the server still sending (half-close).
    let (mut p, r) = three_records(58);
    for rec in &r {
        p.deliver(Side::Server, rec).expect("records");
    }
    p.client.close().expect("close");
    assert_eq!(p.client.send_message(b"late"), Err(Error::Closed));
    p.transfer(Side::Client).expect("close record");
    assert!(p.server.peer_closed());
    assert_eq!(p.server.receive_eof(), Ok(()));
    p.server
        .send_message(b"still talking")
        .expect("half-close: the server can still send");
    p.transfer(Side::Server).expect("server data");
    assert_eq!(
        p.client.recv_message().as_deref(),
        Some(&b"still talking"[..])
    );
    // Anything after the close is refused.
    let mut late = r[0].clone();
    late[5] ^= 1;
    assert!(p.deliver(Side::Server, &late).is_err());
}

#[test]
fn a_failed_open_does_not_advance_the_ratchet() {
    let chain = sc_handshake::Secret::new([9; 32]);
    let p = &sc_handshake::RUSTCRYPTO;
    for suite in [AES, CHACHA] {
        let mut sealer =
            RecordSealer::new(p, suite, Direction::ClientToServer, chain.clone()).expect("sealer");
        let mut opener =
            RecordOpener::new(p, suite, Direction::ClientToServer, chain.clone()).expect("opener");
        let mut rec = Vec::new();
        sealer
            .seal(InnerType::DATA, b"record zero", 0, &mut rec)
            .expect("seal");
        for pos in 0..rec.len() {
            let mut bad = rec.clone();
            bad[pos] ^= 0x80;
            let Ok(h) = RecordHeader::decode(&bad[..4]) else {
                continue;
            };
            if h.len != bad.len() - 4 {
                continue;
            }
            assert!(
                opener.open(h, &mut bad[4..]).is_err(),
                "flip at {pos} opened"
            );
            assert_eq!(opener.seq(), 0);
        }
        let h = RecordHeader::decode(&rec[..4]).expect("header");
        let (t, c) = opener
            .open(h, &mut rec[4..])
            .expect("the genuine record still opens");
        assert_eq!((t, c), (InnerType::DATA, &b"record zero"[..]));
        assert_eq!(opener.seq(), 1);
    }
}

#[test]
fn nothing_the_sender_still_holds_opens_a_sent_record() {
    // Forward secrecy of the ratchet: after record n is sealed, the sender's
    // state is chain_{n+1}. Openers started from that state (at any later
    // position), or from the other direction, cannot open record n or any
    // earlier one.
    let p = &sc_handshake::RUSTCRYPTO;
    for suite in [AES, CHACHA] {
        let chain0 = sc_handshake::Secret::new([3; 32]);
        let mut sealer =
            RecordSealer::new(p, suite, Direction::ServerToClient, chain0.clone()).expect("sealer");
        let mut sent = Vec::new();
        for n in 0..5u8 {
            let mut rec = Vec::new();
            sealer
                .seal(InnerType::DATA, &[n; 100], 0, &mut rec)
                .expect("seal");
            sent.push(rec);
        }
        let stolen = sealer.chain_for_testing_only();
        assert_ne!(stolen, chain0);
        for (n, rec) in sent.iter().enumerate() {
            // From the stolen state: positions 5, 6, 7, ... (advance with dummy records).
            let mut from_stolen =
                RecordOpener::new(p, suite, Direction::ServerToClient, stolen.clone())
                    .expect("opener");
            let mut other_dir =
                RecordOpener::new(p, suite, Direction::ClientToServer, chain0.clone())
                    .expect("opener");
            for _ in 0..3 {
                let mut b = rec.clone();
                let h = RecordHeader::decode(&b[..4]).expect("header");
                assert!(
                    from_stolen.open(h, &mut b[4..]).is_err(),
                    "record {n} opened from the stolen state"
                );
                let mut b = rec.clone();
                assert!(
                    other_dir.open(h, &mut b[4..]).is_err(),
                    "record {n} opened with the other direction's chain"
                );
                // Move the stolen opener one position forward, as an attacker
                // holding the state could: seal a dummy with a twin sealer.
                let mut twin = RecordSealer::new(
                    p,
                    suite,
                    Direction::ServerToClient,
                    from_stolen_chain(&stolen, from_stolen.seq()),
                )
                .expect("twin");
                let mut dummy = Vec::new();
                twin.seal(InnerType::DATA, b"x", 0, &mut dummy)
                    .expect("seal");
                let hd = RecordHeader::decode(&dummy[..4]).expect("header");
                from_stolen
                    .open(hd, &mut dummy[4..])
                    .expect("the stolen state opens its own future records");
            }
        }
        // The legitimate receiver, from chain₀, opens them all in order.
        let mut opener =
            RecordOpener::new(p, suite, Direction::ServerToClient, chain0).expect("opener");
        for (n, rec) in sent.iter().enumerate() {
            let mut b = rec.clone();
            let h = RecordHeader::decode(&b[..4]).expect("header");
            assert_eq!(
                opener.open(h, &mut b[4..]).expect("opens").1,
                &[n as u8; 100][..]
            );
        }
    }
}

/// The chain key `steps` records after `chain` (by sealing dummies).
fn from_stolen_chain(chain: &sc_handshake::Secret, steps: u64) -> sc_handshake::Secret {
    let p = &sc_handshake::RUSTCRYPTO;
    let mut s =
        RecordSealer::new(p, AES, Direction::ServerToClient, chain.clone()).expect("sealer");
    for _ in 0..steps {
        s.seal(InnerType::DATA, b"", 0, &mut Vec::new())
            .expect("seal");
    }
    s.chain_for_testing_only()
}

// ---------------------------------------------------------------------------
// The message API.
// ---------------------------------------------------------------------------

#[test]
fn messages_keep_their_boundaries_across_fragments() {
    let pki = Pki::new(16);
    let mut p = pair(&pki, 61);
    p.handshake().expect("handshake");
    let big: Vec<u8> = (0..sc_session::DEFAULT_MAX_MESSAGE_LEN)
        .map(|i| (i % 251) as u8)
        .collect();
    let msgs: Vec<Vec<u8>> = vec![
        vec![],
        b"a".to_vec(),
        big.clone(),
        vec![7; 65_536],
        vec![8; 65_537],
    ];
    for m in &msgs {
        p.client.send_message(m).expect("send");
    }
    p.drive().expect("drive");
    let got: Vec<_> = std::iter::from_fn(|| p.server.recv_message()).collect();
    assert_eq!(got, msgs);
    assert_eq!(
        p.client
            .send_message(&vec![0; sc_session::DEFAULT_MAX_MESSAGE_LEN + 1]),
        Err(Error::MessageTooLarge {
            len: sc_session::DEFAULT_MAX_MESSAGE_LEN + 1,
            max: sc_session::DEFAULT_MAX_MESSAGE_LEN
        })
    );
}

// ---------------------------------------------------------------------------
// The byte-stream writer.
// ---------------------------------------------------------------------------

/// Calls the client's `write_stream` until all of `data` is taken; returns
/// what each call took and the bytes it sealed.
fn write_all_stream(p: &mut Pair, data: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut calls = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = p.client.write_stream(&data[at..]).expect("write_stream");
        assert!(
            n > 0,
            "write_stream took nothing of {} bytes",
            data.len() - at
        );
        at += n;
        calls.push((n, p.client.take_outgoing()));
    }
    calls
}

#[test]
fn write_stream_seals_one_record_and_returns_what_it_took() {
    let pki = Pki::new(24);
    let mut p = pair(&pki, 70);
    p.handshake().expect("handshake");
    let before = p.client.stats();
    let frag = sc_wire::record::MAX_FRAGMENT_LEN;
    let data: Vec<u8> = (0..2 * frag + 1).map(|i| (i % 253) as u8).collect();

    // Nothing for nothing.
    assert_eq!(p.client.write_stream(&[]), Ok(0));
    assert!(!p.client.has_outgoing());

    // One record per call, cut at the record size: 64 KiB, 64 KiB, 1.
    let calls = write_all_stream(&mut p, &data);
    let taken: Vec<usize> = calls.iter().map(|(n, _)| *n).collect();
    assert_eq!(taken, [frag, frag, 1]);
    for (n, sealed) in &calls {
        let recs = records(sealed);
        assert_eq!(recs.len(), 1, "one record per call");
        assert_eq!(recs[0].0, RecordKind::SEALED);
        assert_eq!(
            sealed.len(),
            4 + n + 3 + 16,
            "header, content, trailer, tag"
        );
    }
    // A record's worth exactly is taken whole.
    assert_eq!(p.client.write_stream(&data[..frag]), Ok(frag));
    let last = p.client.take_outgoing();

    // Stream bytes are not messages.
    let stats = p.client.stats();
    assert_eq!(stats.messages_sent, before.messages_sent);
    assert_eq!(
        stats.stream_bytes_sent - before.stream_bytes_sent,
        (data.len() + frag) as u64
    );
    let wire: usize = calls.iter().map(|(_, sealed)| sealed.len()).sum();
    assert_eq!(
        stats.bytes_sent - before.bytes_sent,
        (wire + last.len()) as u64
    );

    // The peer reads the bytes in order; it cannot tell stream records from
    // one-record messages, and counts each as a message received.
    let server_before = p.server.stats().messages_received;
    for (_, sealed) in &calls {
        p.deliver(Side::Server, sealed).expect("deliver");
    }
    p.deliver(Side::Server, &last).expect("deliver");
    let got: Vec<u8> = std::iter::from_fn(|| p.server.recv_message())
        .flatten()
        .collect();
    assert_eq!(got, [&data[..], &data[..frag]].concat());
    assert_eq!(p.server.stats().messages_received - server_before, 4);

    // After our close, nothing more; the error is the same as for messages.
    p.client.close().expect("close");
    assert_eq!(p.client.write_stream(b"late"), Err(Error::Closed));
}

#[test]
fn write_stream_records_follow_the_fragment_and_message_limits() {
    let pki = Pki::new(25);
    let default_max = sc_session::DEFAULT_MAX_MESSAGE_LEN;
    for (max_fragment_len, max_message_len, record_len) in [
        (1000, default_max, 1000),
        (1000, 600, 600),
        (0, default_max, 1),
        (1 << 20, default_max, 65_536),
    ] {
        let cfg = SessionConfig {
            max_fragment_len,
            max_message_len,
            ..SessionConfig::default()
        };
        let mut p = pair_with(
            pki.client_config(&[AES]),
            pki.server_config(&[AES]),
            "server.test",
            cfg,
            71,
        );
        p.handshake().expect("handshake");
        let data = vec![9u8; 2 * record_len + 7];
        let taken: Vec<usize> = write_all_stream(&mut p, &data)
            .iter()
            .map(|(n, _)| *n)
            .collect();
        let want: Vec<usize> = data.chunks(record_len).map(<[u8]>::len).collect();
        assert_eq!(taken, want, "{max_fragment_len}/{max_message_len}");
        assert!(taken.iter().all(|&n| n <= record_len));
    }
}

#[test]
fn write_stream_puts_on_the_wire_what_one_record_messages_did() {
    // The byte stream used to be one `send_message` per record; the wire
    // must not change (same records, same padding, same ratchet steps).
    let pki = Pki::new(26);
    let data: Vec<u8> = (0..300_000usize).map(|i| (i * 7 % 251) as u8).collect();
    for cfg in [
        SessionConfig::default(),
        SessionConfig {
            padding: Padding::Block(256),
            max_fragment_len: 5000,
            max_message_len: 3000,
            ..SessionConfig::default()
        },
    ] {
        let chunk = cfg.max_fragment_len.min(cfg.max_message_len);
        let run = |stream: bool| -> Vec<u8> {
            let mut p = pair_with(
                pki.client_config(&[CHACHA]),
                pki.server_config(&[CHACHA]),
                "server.test",
                cfg.clone(),
                72,
            );
            p.handshake().expect("handshake");
            if stream {
                let calls = write_all_stream(&mut p, &data);
                calls.into_iter().flat_map(|(_, sealed)| sealed).collect()
            } else {
                for c in data.chunks(chunk) {
                    p.client.send_message(c).expect("send");
                }
                p.client.take_outgoing()
            }
        };
        let (by_stream, by_messages) = (run(true), run(false));
        assert!(!by_stream.is_empty());
        assert!(by_stream == by_messages, "the byte stream changed the wire");
    }
}

#[test]
fn write_stream_before_the_keys_is_queued_in_order_and_bounded() {
    let pki = Pki::new(27);
    let cfg = SessionConfig {
        max_message_len: 100_000,
        ..SessionConfig::default()
    };
    let mut p = pair_with(
        pki.client_config(&[AES]),
        pki.server_config(&[AES]),
        "server.test",
        cfg,
        73,
    );
    // Queued with the messages, in order, within the same limit.
    assert_eq!(p.client.write_stream(b"abc"), Ok(3));
    p.client.send_message(b"msg").expect("queue message");
    let big = vec![1u8; 200_000];
    assert_eq!(p.client.write_stream(&big), Ok(65_536));
    assert_eq!(p.client.write_stream(&big), Ok(100_000 - 65_536 - 6));
    assert_eq!(
        p.client.write_stream(&big),
        Err(Error::QueueFull { max: 100_000 })
    );
    assert_eq!(p.client.stats().stream_bytes_sent, 0, "counted when sealed");

    p.handshake().expect("handshake");
    let got: Vec<_> = std::iter::from_fn(|| p.server.recv_message()).collect();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], b"abc");
    assert_eq!(got[1], b"msg");
    assert_eq!(got[2].len() + got[3].len(), 100_000 - 6);
    let stats = p.client.stats();
    assert_eq!(stats.messages_sent, 1);
    assert_eq!(stats.stream_bytes_sent, 100_000 - 3);
}

#[test]
fn the_receive_buffer_is_receive_without_the_copy() {
    let pki = Pki::new(16);
    let mut p = pair(&pki, 62);
    // The handshake itself through the buffer the I/O layer reads into, in
    // pieces of odd sizes that cut records and headers anywhere.
    let mut splits = [1usize, 3, 4, 5, 700, 4096, 17].iter().cycle();
    let now = p.now;
    let mut move_bytes = |p: &mut Pair, from: Side| -> bool {
        let mut bytes = Vec::new();
        p.side(from).write_outgoing(&mut bytes);
        let moved = !bytes.is_empty();
        for piece in bytes.chunks(*splits.next().expect("cycle")) {
            let mut rng = rng(7);
            let to = p.side(other(from));
            let buf = to.receive_buffer();
            assert!(buf.capacity() - buf.len() >= sc_session::RECEIVE_CHUNK_LEN);
            buf.extend_from_slice(piece);
            to.process_received(now, &mut rng).expect("process");
        }
        moved
    };
    while move_bytes(&mut p, Side::Client) | move_bytes(&mut p, Side::Server) {}
    assert!(!p.client.is_handshaking() && !p.server.is_handshaking());

    let msgs: Vec<Vec<u8>> = vec![vec![], vec![1; 65_536], vec![2; 100_001], b"z".to_vec()];
    for m in &msgs {
        p.client.send_message(m).expect("send");
    }
    p.client.close().expect("close");
    move_bytes(&mut p, Side::Client);
    let got: Vec<_> = std::iter::from_fn(|| p.server.recv_message()).collect();
    assert_eq!(got, msgs);
    assert_eq!(p.server.pending_received(), 0);
    assert_eq!(p.server.receive_eof(), Ok(()));

    // Idle buffers are freed; a half record stays.
    p.server.send_message(&[3; 1000]).expect("send");
    let bytes = p.server.take_outgoing();
    p.server.shrink_buffers();
    let buf = p.client.receive_buffer();
    buf.extend_from_slice(&bytes[..10]);
    p.client
        .process_received(now, &mut rng(8))
        .expect("partial");
    p.client.shrink_buffers();
    assert_eq!(p.client.pending_received(), 10);
    p.client.receive_buffer().extend_from_slice(&bytes[10..]);
    p.client.process_received(now, &mut rng(8)).expect("rest");
    assert_eq!(p.client.recv_message(), Some(vec![3; 1000]));

    // A caller that shortens the buffer it was lent corrupts only the
    // stream: an error, never a panic.
    p.server.send_message(b"abcdef").expect("send");
    let bytes = p.server.take_outgoing();
    p.client.receive_buffer().extend_from_slice(&bytes);
    p.client.receive_buffer().truncate(3);
    p.client.receive_buffer().extend_from_slice(&[0xff; 300]);
    assert!(p.client.process_received(now, &mut rng(8)).is_err());
}

#[test]
fn write_outgoing_swaps_into_an_empty_buffer() {
    let pki = Pki::new(16);
    let mut p = pair(&pki, 63);
    p.handshake().expect("handshake");
    p.client.send_message(b"one").expect("send");
    let mut out = Vec::with_capacity(1 << 16);
    p.client.write_outgoing(&mut out);
    let first = out.clone();
    p.client.send_message(b"two").expect("send");
    p.client.write_outgoing(&mut out); // appends behind the first
    assert!(!p.client.has_outgoing());
    assert_eq!(&out[..first.len()], &first[..]);
    p.server.receive(&out, p.now, &mut rng(9)).expect("receive");
    assert_eq!(p.server.recv_message().as_deref(), Some(&b"one"[..]));
    assert_eq!(p.server.recv_message().as_deref(), Some(&b"two"[..]));
}

#[test]
fn an_oversized_message_from_the_peer_is_refused() {
    let pki = Pki::new(17);
    let small = SessionConfig {
        max_message_len: 100_000,
        ..SessionConfig::default()
    };
    let mut p = pair_with(
        pki.client_config(&[CHACHA]),
        pki.server_config(&[CHACHA]),
        "server.test",
        SessionConfig::default(),
        62,
    );
    // The server side enforces a smaller limit than the client sends.
    p.server = sc_session::Connection::server(pki.server_config(&[CHACHA]), small, now());
    p.handshake().expect("handshake");
    p.client
        .send_message(&vec![1; 150_000])
        .expect("the client's own limit is 1 MiB");
    let e = expect_err(p.drive());
    assert_eq!(e.side, Side::Server);
    assert!(
        matches!(e.error, Error::MessageTooLarge { max: 100_000, .. }),
        "{:?}",
        e.error
    );
    assert_eq!(
        p.transfer(Side::Server).expect_err("alert").error,
        Error::PeerAlert(AlertCode::TOO_LARGE)
    );
}

#[test]
fn padding_hides_lengths_and_keepalives_are_invisible() {
    let pki = Pki::new(18);
    let cfg = SessionConfig {
        padding: Padding::Block(256),
        ..SessionConfig::default()
    };
    let mut p = pair_with(
        pki.client_config(&[AES]),
        pki.server_config(&[AES]),
        "server.test",
        cfg,
        63,
    );
    p.handshake().expect("handshake");
    let mut sizes = BTreeSet::new();
    for len in [0usize, 1, 100, 255, 256, 257, 200, 512] {
        p.client.send_message(&vec![5; len]).expect("send");
        p.client.send_keepalive().expect("keepalive");
        let out = p.client.take_outgoing();
        for (_, r) in records(&out) {
            sizes.insert(r.len());
        }
        p.deliver(Side::Server, &out).expect("deliver");
        assert_eq!(p.server.recv_message(), Some(vec![5; len]));
        assert_eq!(p.server.recv_message(), None, "keepalives carry no message");
    }
    // Content (and keepalives) padded to 256 or 512 bytes, + 3-byte trailer,
    // 16-byte tag, 4-byte header.
    assert_eq!(sizes, [256 + 23, 512 + 23].into_iter().collect());
}

#[test]
fn a_stalled_handshake_times_out_with_an_alert() {
    let pki = Pki::new(19);
    let mut p = pair(&pki, 64);
    p.transfer(Side::Client).expect("hello");
    // The server answered; its answer never arrives.
    let _lost = p.take_flight(Side::Server);
    assert_eq!(p.client.handle_timeout(at(NOW_SECS + 29)), Ok(()));
    assert_eq!(
        p.client.handle_timeout(at(NOW_SECS + 30)),
        Err(Error::Timeout {
            after: Duration::from_secs(30)
        })
    );
    assert_eq!(
        p.client.send_message(b"x"),
        Err(Error::Timeout {
            after: Duration::from_secs(30)
        })
    );
    let alert = p.client.take_outgoing();
    assert_eq!(
        alert,
        vec![0xc2, 0, 0, 1, AlertCode::TIMEOUT.0],
        "a plaintext timeout alert"
    );
    // After the handshake there is no handshake timeout.
    let mut p = pair(&pki, 65);
    p.handshake().expect("handshake");
    assert_eq!(p.client.handle_timeout(at(NOW_SECS + 3600)), Ok(()));
}

#[test]
fn a_failed_session_stays_failed_and_leaks_nothing() {
    let (mut p, r) = three_records(66);
    p.client.send_message(b"after").expect("queued");
    let mut bad = r[0].clone();
    bad[10] ^= 1;
    assert!(p.deliver(Side::Server, &bad).is_err());
    // Later good records are refused with the same error; nothing is delivered.
    assert_eq!(
        p.deliver(Side::Server, &r[0])
            .expect_err("still failed")
            .error,
        Error::DecryptFailed
    );
    assert_eq!(p.server.recv_message(), None);
    assert_eq!(p.server.send_message(b"x"), Err(Error::DecryptFailed));
}

#[test]
fn data_the_server_queues_early_follows_secure_ack() {
    // Found by the spec review: queued server data used to go out ahead of
    // SecureAck, and the client refused it.
    let pki = Pki::new(21);
    let mut p = pair(&pki, 67);
    p.server
        .send_message(b"banner")
        .expect("queued before the handshake");
    p.server.close().expect("close queued too");
    p.client.send_message(b"hi").expect("queued");
    p.handshake().expect("handshake");
    assert_eq!(p.client.recv_message().as_deref(), Some(&b"banner"[..]));
    assert!(p.client.peer_closed());
    assert_eq!(p.server.recv_message().as_deref(), Some(&b"hi"[..]));
    // Flight 6: [12], [13], banner, close: SecureAck is s→c record 0.
    assert_eq!(records(&p.flights[5].bytes).len(), 4);
}

#[test]
fn a_plaintext_alert_after_the_handshake_is_not_trusted() {
    let pki = Pki::new(22);
    let mut p = pair(&pki, 68);
    p.handshake().expect("handshake");
    let injected = [0xc2, 0, 0, 1, AlertCode::NOT_AUTHORISED.0];
    let e = p.deliver(Side::Client, &injected).expect_err("refused");
    assert!(
        matches!(e.error, Error::UnexpectedRecord { .. }),
        "{:?}",
        e.error
    );
    assert_ne!(e.error, Error::PeerAlert(AlertCode::NOT_AUTHORISED));
}

#[test]
fn an_aborted_session_says_why_and_sends_nothing_more() {
    let pki = Pki::new(23);
    let mut p = pair(&pki, 69);
    p.handshake().expect("handshake");
    let before = p.server.stats().bytes_sent;
    p.server.abort(AlertCode::GOING_AWAY);
    assert_eq!(
        p.server.error(),
        Some(&Error::Aborted(AlertCode::GOING_AWAY))
    );
    assert_eq!(
        p.server.send_keepalive(),
        Err(Error::Aborted(AlertCode::GOING_AWAY))
    );
    assert_eq!(
        p.server.send_message(b"x"),
        Err(Error::Aborted(AlertCode::GOING_AWAY))
    );
    let alert = p.server.take_outgoing();
    assert_eq!(
        records(&alert).len(),
        1,
        "one sealed alert and nothing else"
    );
    assert_eq!(
        p.server.stats().bytes_sent - before,
        alert.len() as u64,
        "the alert is counted"
    );
    let e = p
        .deliver(Side::Client, &alert)
        .expect_err("the client learns why");
    assert_eq!(e.error, Error::PeerAlert(AlertCode::GOING_AWAY));
}

// ---------------------------------------------------------------------------
// Reading where the records were opened

/// A byte stream and messages sent as records of every size, delivered in
/// uneven chunks and read in uneven amounts, so the receive buffer makes
/// room (and moves what waits in it) while opened plaintext still waits to
/// be read where it was opened: every byte comes out as it was sent, and
/// each way of reading (bytes, whole messages, the rest of a message read
/// partly as bytes) gets what it should.
#[test]
fn messages_read_in_place_survive_the_receive_buffer_making_room() {
    use rand_chacha::rand_core::RngCore;
    let pki = Pki::new(90);
    let mut p = pair(&pki, 90);
    p.handshake().expect("handshake");
    let mut r = rng(91);
    let mut sent = Vec::new();
    // Records of 0 to 64 KiB, and messages of several records (reassembled).
    let mut sizes = vec![0, 1, 70_000, 65_536, 3, 200_000];
    for _ in 0..40 {
        sizes.push(r.next_u32() as usize % 70_000);
    }
    for (i, size) in sizes.iter().enumerate() {
        let mut data = vec![0u8; *size];
        r.fill_bytes(&mut data);
        if i % 3 == 0 {
            p.client.send_message(&data).expect("message");
        } else {
            let mut at = 0;
            while at < data.len() {
                at += p.client.write_stream(&data[at..]).expect("stream");
            }
        }
        sent.extend_from_slice(&data);
    }
    let wire = p.client.take_outgoing();
    let mut got = Vec::new();
    let mut at = 0;
    let mut turn = 0u32;
    while at < wire.len() || p.server.pending_messages() > 0 {
        turn += 1;
        assert!(turn < 100_000, "no progress");
        if at < wire.len() {
            let n = (r.next_u32() as usize % 150_000 + 1).min(wire.len() - at);
            p.server
                .receive(&wire[at..at + n], now(), &mut r)
                .expect("opens");
            at += n;
        }
        // Read some of what waits: part of a message as bytes, the rest of
        // one as a message, or nothing this turn.
        match r.next_u32() % 3 {
            0 => {
                let want = r.next_u32() as usize % 100_000;
                let mut taken = 0;
                while taken < want {
                    let Some(data) = p.server.readable() else {
                        break;
                    };
                    let n = data.len().min(want - taken);
                    got.extend_from_slice(&data[..n]);
                    p.server.consume(n);
                    taken += n;
                }
            }
            1 => {
                if let Some(rest) = p.server.recv_message() {
                    got.extend_from_slice(&rest);
                }
            }
            _ => {}
        }
    }
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "the bytes read differ from the bytes sent");
    assert_eq!(p.server.readable(), None);
    assert_eq!(p.server.recv_message(), None);
}

#[test]
fn an_empty_message_is_skipped_by_bytes_and_kept_by_messages() {
    let pki = Pki::new(92);
    let mut p = pair(&pki, 92);
    p.handshake().expect("handshake");
    for msg in [&b"ab"[..], b"", b"cd"] {
        p.client.send_message(msg).expect("message");
    }
    p.transfer(Side::Client).expect("delivered");
    // Bytes: "a", then the rest of the first message as a message.
    let first = p.server.readable().map(<[u8]>::to_vec);
    assert_eq!(first.as_deref(), Some(&b"ab"[..]));
    p.server.consume(1);
    assert_eq!(p.server.recv_message().as_deref(), Some(&b"b"[..]));
    // Messages keep the empty one.
    assert_eq!(p.server.recv_message().as_deref(), Some(&b""[..]));
    // Bytes skip an empty message.
    p.client.send_message(b"").expect("message");
    p.client.send_message(b"ef").expect("message");
    p.transfer(Side::Client).expect("delivered");
    assert_eq!(p.server.pending_messages(), 3);
    let mut bytes = Vec::new();
    while let Some(data) = p.server.readable() {
        bytes.extend_from_slice(data);
        let n = data.len();
        p.server.consume(n);
    }
    assert_eq!(bytes, b"cdef");
    assert_eq!(p.server.pending_messages(), 0);
}
