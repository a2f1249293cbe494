//! The entry points of Sovereign-Chain's fuzz targets: every
//! `fuzz_targets/*.rs` is one line that calls one function here.
//!
//! Built only by cargo-fuzz, that is with `--cfg fuzzing`, so sc-handshake's
//! **INSECURE** fuzzing-only provider exists: the handshake and session
//! targets run both sides on it, so mutated messages and records get past
//! signatures, MACs and AEAD tags and reach the code behind them. Everything
//! is deterministic (fixed RNG seeds, a fixed clock), so a crash replays.
//!
//! Deep states are reached by running a real handshake up to a point and
//! then feeding the fuzz input as the next record. The first input byte
//! picks the point (and for the handshake targets the protection level);
//! the rest is the record. `examples/make_corpus.rs` writes the seed corpora
//! from the same functions, so every seed is a real record for its state.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sc_handshake::crypto::insecure::INSECURE_FUZZING_ONLY;
use sc_handshake::{Action, ClientConfig, ClientHandshake, Level, ServerConfig, ServerHandshake};
use sc_net::proxy_protocol::ProxyHeader;
use sc_pki::{
    cert_info, cert_serial, certs_from_pem, crls_from_pem, inspect_pem, issue_crl,
    issue_intermediate, issue_leaf, issue_root, CertificateDer, CertificateRevocationListDer,
    ClientCertVerifier, Credential, Issuer, KeyPair, LeafSpec, RevocationReason, RevokedEntry,
    ServerCertVerifier, ServerName, TrustAnchors, UnixTime, Validity, WebPkiClientVerifier,
    WebPkiServerVerifier,
};
use sc_session::pair::{other, Pair};
use sc_session::{SessionConfig, Side};
use sc_wire::record::split_inner;
use sc_wire::{Alert, CipherSuite, Codec, Deframer, HandshakeMessage, InnerType, ProtocolVersion};

/// The server name in the fixture's server certificate.
pub const SERVER_NAME: &str = "server.fuzz";

/// The fixed clock of every target.
pub fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000))
}

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("a DNS name")
}

/// A root CA, an intermediate, a server and a client certificate, a CRL, and
/// configs of both sides on the insecure provider; and the records of one
/// complete handshake between them.
pub struct Fixture {
    /// The root CA certificate (the trust anchor).
    pub root: CertificateDer<'static>,
    /// The root CA key.
    pub root_key: KeyPair,
    /// The intermediate CA certificate.
    pub intermediate: CertificateDer<'static>,
    /// The server's chain (leaf, intermediate) and key.
    pub server: Arc<Credential>,
    /// The client's chain (leaf, intermediate) and key.
    pub client: Arc<Credential>,
    /// The intermediate's CRL (revokes serial 0x01).
    pub crl: CertificateRevocationListDer<'static>,
    /// The client's config (insecure provider).
    pub client_config: Arc<ClientConfig>,
    /// The server's config (insecure provider, anonymous clients allowed).
    pub server_config: Arc<ServerConfig>,
    /// The client's config with re-keying offered (SPEC §15), for
    /// `session_rekey`; the other targets run the two above, without it.
    pub client_rekey_config: Arc<ClientConfig>,
    /// The server's config with re-keying offered.
    pub server_rekey_config: Arc<ServerConfig>,
    server_verifier: WebPkiServerVerifier,
    client_verifier: WebPkiClientVerifier,
    /// The handshake records the client received, in order: (level, messages).
    /// Protocol version 2 (the default configs).
    pub to_client: Vec<(Level, Vec<u8>)>,
    /// The handshake records the server received, in order (version 2).
    pub to_server: Vec<(Level, Vec<u8>)>,
    /// `client_config` with version 2 not offered: a version 1 client.
    pub client_v1_config: Arc<ClientConfig>,
    /// The records of a version 1 handshake (the version 1 client and
    /// `server_config`), as `to_client` and `to_server`.
    pub to_client_v1: Vec<(Level, Vec<u8>)>,
    /// See [`Fixture::to_client_v1`].
    pub to_server_v1: Vec<(Level, Vec<u8>)>,
}

impl Fixture {
    /// The client config and the records of one protocol version.
    #[allow(clippy::type_complexity)]
    fn version(&self, v1: bool) -> (&Arc<ClientConfig>, &[(Level, Vec<u8>)], &[(Level, Vec<u8>)]) {
        if v1 {
            (
                &self.client_v1_config,
                &self.to_client_v1,
                &self.to_server_v1,
            )
        } else {
            (&self.client_config, &self.to_client, &self.to_server)
        }
    }
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let mut rng = rng(1);
    let validity = Validity::days_from(now(), 30);
    let root_key = KeyPair::generate(&mut rng);
    let root = issue_root(&root_key, "Fuzz Root CA", validity, &mut rng).expect("root");
    let root_issuer = Issuer {
        cert: &root,
        key: &root_key,
    };
    let inter_key = KeyPair::generate(&mut rng);
    let intermediate = issue_intermediate(
        &root_issuer,
        &inter_key.public_key(),
        "Fuzz Intermediate CA",
        validity,
        &mut rng,
    )
    .expect("intermediate");
    let inter = Issuer {
        cert: &intermediate,
        key: &inter_key,
    };
    let mut leaf = |spec: LeafSpec| {
        let key = KeyPair::generate(&mut rng);
        let cert = issue_leaf(&inter, &key.public_key(), &spec, validity, &mut rng).expect("leaf");
        Arc::new(Credential::new(vec![cert, intermediate.clone()], key).expect("credential"))
    };
    let server = leaf(LeafSpec::server(SERVER_NAME));
    let client = leaf(LeafSpec::client("client-1"));
    let crl = issue_crl(
        &inter,
        &[RevokedEntry {
            serial: vec![0x01],
            revoked_at: now(),
            reason: Some(RevocationReason::KeyCompromise),
        }],
        now(),
        UnixTime::since_unix_epoch(Duration::from_secs(now().as_secs() + 86_400)),
        1,
    )
    .expect("crl");

    let anchors = || TrustAnchors::from_der(std::slice::from_ref(&root)).expect("anchors");
    let server_verifier = WebPkiServerVerifier::new(anchors())
        .with_crls(vec![crl.clone()])
        .expect("crl");
    let client_verifier = WebPkiClientVerifier::new(anchors())
        .allow_anonymous(true)
        .with_crls(vec![crl.clone()])
        .expect("crl");
    let suites = [CipherSuite::AES_256_GCM, CipherSuite::CHACHA20_POLY1305];
    let client_config = |rekey: bool| {
        let config = ClientConfig::builder()
            .with_provider(&INSECURE_FUZZING_ONLY)
            .with_server_verifier(Arc::new(
                WebPkiServerVerifier::new(anchors())
                    .with_crls(vec![crl.clone()])
                    .expect("crl"),
            ))
            .with_credential(client.clone())
            .build_with_suites(&suites)
            .expect("suites");
        config.with_rekey(rekey)
    };
    let server_config = |rekey: bool| {
        let config = ServerConfig::builder()
            .with_provider(&INSECURE_FUZZING_ONLY)
            .with_client_verifier(Arc::new(
                WebPkiClientVerifier::new(anchors())
                    .allow_anonymous(true)
                    .with_crls(vec![crl.clone()])
                    .expect("crl"),
            ))
            .with_credential(server.clone())
            .build_with_suites(&suites)
            .expect("suites");
        Arc::new(config.with_rekey(rekey))
    };
    let client_rekey_config = Arc::new(client_config(true));
    let server_rekey_config = server_config(true);
    let client_v1_config = Arc::new(
        client_config(false)
            .with_max_version(ProtocolVersion::V1)
            .expect("version 1 is spoken"),
    );
    let (client_config, server_config) = (Arc::new(client_config(false)), server_config(false));
    let (to_client, to_server) = record_handshake(&client_config, &server_config);
    let (to_client_v1, to_server_v1) = record_handshake(&client_v1_config, &server_config);
    Fixture {
        root,
        root_key,
        intermediate,
        server,
        client,
        crl,
        client_config,
        server_config,
        client_rekey_config,
        server_rekey_config,
        server_verifier,
        client_verifier,
        to_client,
        to_server,
        client_v1_config,
        to_client_v1,
        to_server_v1,
    }
}

/// Bit 7 of a handshake target's selector: replay version 1's handshake.
const V1_BIT: u8 = 0x80;

const CLIENT_SEED: u8 = 2;
const SERVER_SEED: u8 = 3;
const PAIR_SEED: u8 = 4;

fn sends(actions: Vec<Action>, out: &mut Vec<(Level, Vec<u8>)>) {
    for action in actions {
        if let Action::Send { level, messages } = action {
            out.push((level, messages.to_vec()));
        }
    }
}

/// Runs one handshake between the state machines, each with its own RNG, and
/// returns the records each side received.
#[allow(clippy::type_complexity)]
fn record_handshake(
    client_config: &Arc<ClientConfig>,
    server_config: &Arc<ServerConfig>,
) -> (Vec<(Level, Vec<u8>)>, Vec<(Level, Vec<u8>)>) {
    let (mut crng, mut srng) = (rng(CLIENT_SEED), rng(SERVER_SEED));
    let (mut client, first) =
        ClientHandshake::start(client_config.clone(), server_name(), None, &mut crng)
            .expect("start");
    let mut server = ServerHandshake::new(server_config.clone());
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    sends(first, &mut to_server);
    let (mut c_done, mut s_done) = (0, 0);
    while c_done < to_client.len() || s_done < to_server.len() {
        while s_done < to_server.len() {
            let (level, msg) = to_server[s_done].clone();
            let actions = server
                .handle(level, &msg, now(), &mut srng)
                .expect("server");
            sends(actions, &mut to_client);
            s_done += 1;
        }
        while c_done < to_client.len() {
            let (level, msg) = to_client[c_done].clone();
            let actions = client
                .handle(level, &msg, now(), &mut crng)
                .expect("client");
            sends(actions, &mut to_server);
            c_done += 1;
        }
    }
    assert!(client.is_complete() && server.is_complete());
    (to_client, to_server)
}

/// Which record a handshake-target input stands for: the first byte picks,
/// in bit 7, the protocol version (set: version 1; clear: version 2), in
/// bits 0–3 the state (`% (records + 1)`: the last is the completed
/// handshake) and, in bits 4–5, the level (0: the one the real record had;
/// 1–3: plaintext, handshake, application).
fn pick(selector: u8, records: &[(Level, Vec<u8>)]) -> (usize, Level) {
    let state = usize::from(selector & 0x0f) % (records.len() + 1);
    let level = match (selector >> 4) & 3 {
        1 => Level::Plaintext,
        2 => Level::Handshake,
        3 => Level::Application,
        _ => records.get(state).map_or(Level::Application, |r| r.0),
    };
    (state, level)
}

/// The client state machine, run through a real handshake up to the state
/// the first byte picks, then fed the rest as the server's next record.
pub fn handshake_client(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let (config, to_client, _) = fixture().version(selector & V1_BIT != 0);
    let (state, level) = pick(selector, to_client);
    let mut rng = rng(CLIENT_SEED);
    let (mut client, _) =
        ClientHandshake::start(config.clone(), server_name(), None, &mut rng).expect("start");
    for (level, msg) in &to_client[..state] {
        client.handle(*level, msg, now(), &mut rng).expect("replay");
    }
    let _ = client.handle(level, payload, now(), &mut rng);
}

/// The server state machine, as [`handshake_client`].
pub fn handshake_server(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let (_, _, to_server) = f.version(selector & V1_BIT != 0);
    let (state, level) = pick(selector, to_server);
    let mut rng = rng(SERVER_SEED);
    let mut server = ServerHandshake::new(f.server_config.clone());
    for (level, msg) in &to_server[..state] {
        server.handle(*level, msg, now(), &mut rng).expect("replay");
    }
    let _ = server.handle(level, payload, now(), &mut rng);
}

/// Seeds for the handshake targets: every real record of both protocol
/// versions, with its selector.
pub fn handshake_seeds(side: Side) -> Vec<Vec<u8>> {
    let f = fixture();
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for (v1, bit) in [(false, 0), (true, V1_BIT)] {
        let (_, to_client, to_server) = f.version(v1);
        let records = match side {
            Side::Client => to_client,
            Side::Server => to_server,
        };
        seeds.extend(
            records
                .iter()
                .enumerate()
                .map(|(i, (_, msg))| [&[i as u8 | bit][..], msg].concat()),
        );
        // After completion: the last record again.
        if let Some((_, last)) = records.last() {
            seeds.push([&[records.len() as u8 | bit][..], last].concat());
        }
    }
    let records = match side {
        Side::Client => &f.to_client,
        Side::Server => &f.to_server,
    };
    // The cookie retry (SPEC §4.5): a HelloRetry in place of the
    // ServerHello; a CookieEcho in front of the ClientHello.
    let cookie = sc_wire::Cookie::new(vec![0x5c; sc_handshake::cookie::COOKIE_LEN])
        .expect("a 36-byte cookie");
    match side {
        Side::Client => {
            seeds.push([&[0u8][..], &HandshakeMessage::HelloRetry(cookie).encoded()].concat());
        }
        Side::Server => {
            if let Some((_, hello)) = records.first() {
                let echo = HandshakeMessage::CookieEcho(cookie).encoded();
                seeds.push([&[0u8][..], &echo, hello].concat());
            }
        }
    }
    seeds
}

/// The reference server's cookie logic (SPEC §4.5) fed attacker bytes as a
/// first flight: the first byte picks busy / already retried, the rest is
/// the record. A second round echoes the jar's own cookie for a real
/// ClientHello with the attacker's bytes appended or flipped in, so the
/// check itself is reached, not only the decoding.
pub fn cookie_first_flight(data: &[u8]) {
    use sc_handshake::cookie::{CookieJar, CookieSource, Decision};
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let source = CookieSource::Ip(std::net::SocketAddr::from(([192, 0, 2, 1], 4242)));
    let mut rng = rng(SERVER_SEED);
    let mut jar = CookieJar::new();
    let (busy, retried) = (selector & 1 == 1, selector & 2 == 2);
    let _ = jar.first_flight(rest, &source, now(), busy, retried, &mut rng);
    // A real ClientHello, retried: the attacker's bytes then edit the echo.
    let Some((_, hello)) = f.to_server.first() else {
        return;
    };
    let record = |body: &[u8]| {
        let mut r = sc_wire::RecordHeader {
            kind: sc_wire::RecordKind::HANDSHAKE,
            len: body.len(),
        }
        .encoded();
        r.extend_from_slice(body);
        r
    };
    let Decision::Retry(_) =
        jar.first_flight(&record(hello), &source, now(), true, false, &mut rng)
    else {
        return;
    };
    let cookie = jar.make(&source, hello, now(), &mut rng);
    let mut echo = HandshakeMessage::CookieEcho(cookie).encoded();
    echo.extend_from_slice(hello);
    for (i, b) in rest.iter().enumerate().take(64) {
        let at = (usize::from(selector) * 31 + i * 97) % echo.len();
        echo[at] ^= b;
    }
    let d = jar.first_flight(&record(&echo), &source, now(), busy, true, &mut rng);
    // Unchanged bytes are the one input that must pass.
    if rest.iter().take(64).all(|b| *b == 0) {
        assert_eq!(d, Decision::Proceed { retried: true });
    }
}

/// Rounds of a session target: 0 (fresh) to 3 (handshake complete).
const SESSION_ROUNDS: u8 = 4;

/// A client/server pair on the insecure provider, with an application
/// message queued on each side, driven until `receiver` waits for the flight
/// the selector's round stands for.
fn session_pair(receiver: Side, selector: u8) -> Pair {
    let f = fixture();
    let mut pair = Pair::new(
        f.client_config.clone(),
        f.server_config.clone(),
        server_name(),
        SessionConfig::default(),
        now(),
        Box::new(rng(PAIR_SEED)),
    )
    .expect("pair");
    pair.client.send_message(b"early data").expect("queued");
    pair.server.send_message(b"server data").expect("queued");
    let round = usize::from(selector % SESSION_ROUNDS);
    // Flights alternate, the client's first; the receiver's turn comes after
    // an even number of flights for the server, an odd one for the client.
    let before = 2 * round + usize::from(receiver == Side::Client);
    for i in 0..before {
        let from = if i % 2 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        pair.transfer(from).expect("replay");
    }
    pair
}

/// `Connection::receive` of `receiver`, at the round the first byte picks,
/// fed the rest as the peer's next bytes; then the pair is driven on.
pub fn session(receiver: Side, data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let mut pair = session_pair(receiver, selector);
    let _ = pair.deliver(receiver, bytes);
    while pair.side(receiver).recv_message().is_some() {}
    let _ = pair.drive();
}

/// Seeds for a session target: the real next flight of every round.
pub fn session_seeds(receiver: Side) -> Vec<Vec<u8>> {
    (0..SESSION_ROUNDS)
        .map(|round| {
            let mut pair = session_pair(receiver, round);
            let sender = other(receiver);
            if !pair.side(sender).has_outgoing() {
                pair.side(sender).send_message(b"more data").expect("send");
            }
            [vec![round], pair.side(sender).take_outgoing()].concat()
        })
        .collect()
}

/// States of the `session_rekey` target (SPEC §15.4), as the side fed the
/// input (the receiver) sees them; the peer's real next flight in each is
/// its seed:
///
/// | state | the receiver | the peer's next flight |
/// |---|---|---|
/// | 0 | idle at epoch 0 | its RekeyInit |
/// | 1 | sent a RekeyInit (delivered), waits for the Reply | RekeyReply, then epoch-1 data |
/// | 2 | answered the peer's Init with a Reply (delivered), waits for the Switch | RekeySwitch, then epoch-1 data |
/// | 3 | sent a RekeyInit that crosses the peer's (delivered after the input) | its RekeyInit |
/// | 4 | idle at epoch 1, after a re-key the peer started | its RekeyInit for epoch 2 |
/// | 5 | got the Reply to its Init, its Switch not yet delivered | epoch-1 data |
/// | 6 | sent a RekeyInit and then its Close (delivered) | RekeyReply (the receiver sends no Switch) |
const REKEY_STATES: u8 = 7;

/// The RNG seed of the `session_rekey` pair.
const REKEY_PAIR_SEED: u8 = 5;

/// The times `session_rekey` polls both sides at after the input, from the
/// time of the setup: at once and 1 s later; past the handshake timeout
/// (30 s: a wait for a Reply or a Switch fails); past the re-key interval
/// (120 s, of an epoch that started by the 1 s poll: both sides start one
/// at once, and the client's wins).
const REKEY_POLLS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(31),
    Duration::from_secs(122),
];

/// The fixed origin of the monotonic clock `poll_rekey` takes. An `Instant`
/// cannot be built from a constant; only differences from this one are
/// used, so the runs replay the same.
fn rekey_t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

/// `poll_rekey` on `side`, with the pair's RNG.
fn poll_rekey(pair: &mut Pair, side: Side, after: Duration) -> Result<(), sc_session::Error> {
    pair.poll_rekey(side, rekey_t0() + after).map(drop)
}

/// The re-key clock of `side` at `after`: the waits for the peer
/// (`handle_rekey_timeout`, for a side that has read everything: in the
/// pair, everything sent is delivered), then `poll_rekey`.
fn tick_rekey(pair: &mut Pair, side: Side, after: Duration) {
    let _ = pair.side(side).handle_rekey_timeout(rekey_t0() + after);
    let _ = poll_rekey(pair, side, after);
}

/// `side` asks for a re-key and seals its RekeyInit.
fn start_rekey(pair: &mut Pair, side: Side) {
    pair.side(side)
        .request_rekey()
        .expect("the session re-keys");
    poll_rekey(pair, side, Duration::ZERO).expect("RekeyInit sealed");
}

/// A completed handshake on the insecure provider with re-keying on both
/// sides, driven to the re-key state `state` of [`REKEY_STATES`] as seen by
/// `receiver`. Returns the pair and, in state 3, the receiver's RekeyInit,
/// held back to reach the peer after the input (the two Inits cross).
fn rekey_pair(receiver: Side, state: u8) -> (Pair, Option<Vec<u8>>) {
    let f = fixture();
    let mut pair = Pair::new(
        f.client_rekey_config.clone(),
        f.server_rekey_config.clone(),
        server_name(),
        SessionConfig::default(),
        now(),
        Box::new(rng(REKEY_PAIR_SEED)),
    )
    .expect("pair");
    pair.handshake().expect("handshake");
    assert!(pair.client.has_rekey() && pair.server.has_rekey());
    for side in [Side::Client, Side::Server] {
        // Starts both epoch clocks.
        poll_rekey(&mut pair, side, Duration::ZERO).expect("poll");
    }
    let peer = other(receiver);
    let mut held = None;
    match state % REKEY_STATES {
        1 => {
            start_rekey(&mut pair, receiver);
            pair.transfer(receiver).expect("Init");
        }
        2 => {
            start_rekey(&mut pair, peer);
            pair.transfer(peer).expect("Init");
            pair.transfer(receiver).expect("Reply");
        }
        3 => {
            start_rekey(&mut pair, receiver);
            start_rekey(&mut pair, peer);
            held = pair.take_flight(receiver);
        }
        4 => {
            start_rekey(&mut pair, peer);
            pair.drive().expect("re-key");
            assert_eq!(pair.side(receiver).rekey_epoch(), Some(1));
        }
        5 => {
            start_rekey(&mut pair, receiver);
            pair.transfer(receiver).expect("Init");
            pair.transfer(peer).expect("Reply");
        }
        6 => {
            start_rekey(&mut pair, receiver);
            pair.side(receiver).close().expect("close");
            pair.transfer(receiver).expect("Init and Close");
        }
        _ => {}
    }
    (pair, held)
}

/// Re-keying (SPEC §15) on the sans-I/O connection: a session between
/// sides that both re-key, at the state the first byte picks (bit 0: the
/// receiver, 0 the client; the rest: the state of [`REKEY_STATES`]), fed
/// the rest as the peer's next bytes; then both sides' re-key clocks are
/// run at later times (the waits for the peer, the interval) and the pair
/// is driven on.
///
/// The input is raw wire bytes, as for `session_client`/`session_server`,
/// not a content for the peer to seal: the insecure provider's AEAD is the
/// identity, so a sealed record on the wire is its content in the clear,
/// then the inner-type trailer and a tag nobody checks. A mutation of a
/// seed's RekeyInit, Reply or Switch bytes reaches the re-key decoders and
/// state machine as directly as a sealed content would, and the input can
/// also be several records: a Switch or Reply with the records of the new
/// epoch behind it, another inner type, padding, a record cut short.
///
/// Besides "no panic": once the pair has gone quiet with neither side
/// failed, closed or re-keying, both are at the same epoch.
pub fn session_rekey(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let receiver = if selector & 1 == 0 {
        Side::Client
    } else {
        Side::Server
    };
    let (mut pair, held) = rekey_pair(receiver, selector >> 1);
    let _ = pair.deliver(receiver, bytes);
    while pair.side(receiver).recv_message().is_some() {}
    if let Some(init) = held {
        let _ = pair.deliver(other(receiver), &init);
    }
    for after in REKEY_POLLS {
        for side in [Side::Client, Side::Server] {
            tick_rekey(&mut pair, side, after);
        }
        let _ = pair.drive();
    }
    for side in [Side::Client, Side::Server] {
        let _ = pair.side(side).send_message(b"after");
    }
    let _ = pair.drive();
    let settled = |c: &sc_session::Connection| {
        c.error().is_none()
            && !c.sent_close()
            && !c.peer_closed()
            && !c.rekey_in_progress()
            && !c.has_outgoing()
            && c.pending_received() == 0
    };
    if settled(&pair.client) && settled(&pair.server) {
        assert_eq!(
            pair.client.rekey_epoch(),
            pair.server.rekey_epoch(),
            "a quiet pair with no failure is at one epoch"
        );
    }
}

/// Seeds for `session_rekey`: for every state and receiver, the peer's real
/// next flight (with a message behind it).
pub fn session_rekey_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for state in 0..REKEY_STATES {
        for receiver in [Side::Client, Side::Server] {
            let (mut pair, _) = rekey_pair(receiver, state);
            let peer = other(receiver);
            if matches!(state, 0 | 4) {
                start_rekey(&mut pair, peer);
            }
            pair.side(peer).send_message(b"peer data").expect("send");
            let selector = state << 1 | u8::from(receiver == Side::Server);
            seeds.push([vec![selector], pair.side(peer).take_outgoing()].concat());
        }
    }
    seeds
}

/// Every handshake message decoder; decoding is strict, so a message that
/// decodes has exactly one encoding: the input.
pub fn handshake_message(data: &[u8]) {
    // Steps 4, 7 and 9 have a form per protocol version (SPEC §16.2).
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        if let Ok(msg) = HandshakeMessage::decode_for(version, data) {
            assert_eq!(
                msg.encoded(),
                data,
                "a decoded message re-encodes to its input ({version})"
            );
        }
    }
}

/// The record deframer, fed in two writes (the first byte picks where to
/// cut), with the inner trailer and alert decoders on every record.
pub fn deframer(data: &[u8]) {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) % (data.len() + 1);
    let mut deframer = Deframer::new();
    for chunk in [&data[..cut], &data[cut..]] {
        deframer.push(chunk);
        loop {
            match deframer.next_record() {
                Ok(Some(record)) => {
                    if let Ok((InnerType::ALERT, content)) = split_inner(record.body) {
                        let _ = Alert::decode(content);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Certificate, CRL and key loading from PEM text.
pub fn pem(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = certs_from_pem(text);
    let _ = crls_from_pem(text);
    let _ = inspect_pem(text, now());
    let _ = TrustAnchors::from_pem(text);
    let _ = KeyPair::pem_is_encrypted(text);
    let _ = KeyPair::from_pem(text, Some(b"fuzz"));
}

/// Splits `data` into DER certificates, each after a two-byte big-endian
/// length (at most 8).
pub fn split_chain(mut data: &[u8]) -> Vec<CertificateDer<'static>> {
    let mut chain = Vec::new();
    while data.len() >= 2 && chain.len() < 8 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
        chain.push(CertificateDer::from(data[2..2 + len].to_vec()));
        data = &data[2 + len..];
    }
    chain
}

/// The reverse of [`split_chain`], for seeds.
pub fn join_chain(chain: &[CertificateDer<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for cert in chain {
        let len = u16::try_from(cert.len()).expect("certificate under 64 KiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(cert);
    }
    out
}

/// Chain verification (server and client rules, anonymous certificates,
/// with the fixture's CRL) and certificate inspection of fuzzed DER.
pub fn chain(data: &[u8]) {
    let chain = split_chain(data);
    let Some(leaf) = chain.first() else {
        return;
    };
    let f = fixture();
    let _ = f
        .server_verifier
        .verify_server(&chain, &server_name(), now());
    let _ = f.client_verifier.verify_client(&chain, now());
    let _ = f.client_verifier.verify_anonymous(leaf, now());
    for cert in &chain {
        let _ = cert_info(cert, now());
        let _ = cert_serial(cert);
    }
}

/// The PROXY v2 header parser; a header it accepts re-encodes to one it
/// decodes the same.
pub fn proxy_header(data: &[u8]) {
    if let Ok((header, len)) = ProxyHeader::decode(data) {
        assert!(len <= data.len());
        let encoded = header.encode().expect("a decoded header fits");
        let (again, again_len) = ProxyHeader::decode(&encoded).expect("re-decodes");
        assert_eq!(again, header);
        assert_eq!(again_len, encoded.len());
    }
}

/// Writes `data` to this process's scratch config file and hands its path
/// to `parse` (the config loaders read a path).
pub fn with_config_file(data: &[u8], parse: impl FnOnce(&std::path::Path)) {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("sc-fuzz-config-{}.toml", std::process::id()))
    });
    std::fs::write(path, data).expect("scratch file");
    parse(path);
}

/// The streams of a session (SPEC §14), sans-I/O and without keys: the
/// input is a script of frames from the peer (length-prefixed Streams
/// record contents) mixed with what the application does (open, read,
/// write, finish, reset, let go, send what is owed). Nothing may panic, and
/// what waits to go out stays bounded.
pub fn streams(data: &[u8]) {
    use sc_session::streams::{StreamError, Streams, Writable, MAX_PENDING_FRAMES};
    use sc_wire::streams::{ResetCode, StreamId};

    let side = if data.first().is_some_and(|b| b & 1 == 1) {
        Side::Client
    } else {
        Side::Server
    };
    let mut s = Streams::new(side, 8);
    let mut rest = data.get(1..).unwrap_or_default();
    let mut buf = [0u8; 512];
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let arg = rest.first().copied().unwrap_or(0);
        let id = StreamId(u32::from(arg % 16));
        match op % 8 {
            0 => {
                let body = rest.get(1..).unwrap_or_default();
                let (content, after) = body.split_at(usize::from(arg).min(body.len()));
                if s.receive(content).is_err() {
                    // The session ends: a real connection sends the alert
                    // and stops.
                    return;
                }
                rest = after;
                continue;
            }
            1 => {
                let _ = s.read(id, &mut buf[..usize::from(arg).max(1)]);
            }
            2 => {
                if let Ok(Writable::Bytes(n)) = s.writable(id) {
                    s.charge(id, n.min(usize::from(arg)));
                }
            }
            3 => s.release(id),
            4 => {
                let mut out = Vec::new();
                s.take_owed(&mut out, usize::from(arg) * 64);
            }
            5 => {
                if let Err(StreamError::Session(_)) = s.open(None) {
                    return;
                }
            }
            6 => {
                let _ = s.finish(id);
            }
            _ => s.reset(id, ResetCode(arg), "fuzz"),
        }
        let _ = s.take_events();
        let _ = s.accept();
        assert!(
            s.owed_bytes() <= MAX_PENDING_FRAMES * 300,
            "owed bytes unbounded"
        );
        rest = rest.get(1..).unwrap_or_default();
    }
}
