//! Test vectors: complete handshakes made from fixed RNG seeds, stored as
//! JSON in `tests/vectors/` (protocol version 1) and `tests/vectors/v2/`
//! (version 2, SPEC §16), with every flight's bytes, every secret of the
//! key schedule, and the first records each way.
//!
//! * `vectors_regenerate_byte_for_byte` rebuilds each vector from its seeds
//!   and compares all of it.
//! * `vectors_check_out_independently` re-derives the key schedule, the step
//!   order and the record ratchet from SPEC.md's formulas with the primitive
//!   crates directly (not through this project's code) and opens every
//!   record of the vector with them; for version 2 it also checks step 4's
//!   signature and step 9's MAC.
//!
//! `SC_WRITE_VECTORS=1 cargo test --test vectors` rewrites the files of both
//! versions, `SC_WRITE_VECTORS=v2` only version 2's (only after a deliberate
//! protocol change).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sovereign_chain::handshake::{ClientConfig, KeyLog, ServerConfig};
use sovereign_chain::pki::throwaway::ThrowawayPki;
use sovereign_chain::pki::{ServerName, UnixTime};
use sovereign_chain::session::pair::Pair;
use sovereign_chain::session::{SessionConfig, Side};
use sovereign_chain::wire::{CipherSuite, ProtocolVersion};

const NOW: u64 = 1_800_000_000;
const PKI_SEED: u64 = 2026;

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Vector {
    description: String,
    /// The session RNG: ChaCha20Rng seeded with this u64 (little-endian) in
    /// the first 8 bytes of a zero 32-byte seed; one RNG shared by both sides.
    rng_seed: u64,
    /// The RNG that made the PKI, seeded the same way.
    pki_seed: u64,
    now_unix: u64,
    server_name: String,
    client_suites: Vec<String>,
    server_suites: Vec<String>,
    cipher_suite: String,
    order: Vec<u8>,
    order_index: u8,
    ca_certificate: String,
    server_chain: Vec<String>,
    client_chain: Vec<String>,
    flights: Vec<FlightVector>,
    /// Every secret of the key schedule, by key-log label (both sides agree).
    secrets: BTreeMap<String, String>,
    /// The first application-chain records each way.
    records: Vec<RecordVector>,
    session_hash: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct FlightVector {
    from: String,
    bytes: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct RecordVector {
    direction: String,
    seq: u64,
    inner_type: u8,
    content: String,
    record: String,
}

fn rng(seed: u64) -> ChaCha20Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    ChaCha20Rng::from_seed(s)
}

#[derive(Debug, Default)]
struct Recorder(Mutex<BTreeMap<String, String>>);

impl KeyLog for Recorder {
    fn log(&self, label: &'static str, _client_random: &[u8; 32], secret: &[u8]) {
        self.0
            .lock()
            .expect("key log")
            .insert(label.to_owned(), hex::encode(secret));
    }
}

fn suite_from(name: &str) -> CipherSuite {
    *CipherSuite::ALL
        .iter()
        .find(|s| s.to_string() == name)
        .expect("known suite")
}

/// Runs the handshake of `rng_seed` with the client offering only `suite`
/// and protocol versions up to `version`.
fn generate(rng_seed: u64, suite: CipherSuite, version: ProtocolVersion) -> Vector {
    let now = UnixTime::since_unix_epoch(Duration::from_secs(NOW));
    let pki = ThrowawayPki::new("server.test", "client-1", now, &mut rng(PKI_SEED)).expect("pki");
    let (client_log, server_log) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let server_suites = [CipherSuite::AES_256_GCM, CipherSuite::CHACHA20_POLY1305];
    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
        .with_credential(pki.client.clone())
        .dangerous_key_log(client_log.clone())
        .build_with_suites(&[suite])
        .expect("suite")
        // The vectors' ClientHello has no capability but the offer of
        // version 2 (in version 2's vectors): v1's has none at all.
        .with_cookie_retry(false)
        .with_max_version(version)
        .expect("version");
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
        .with_credential(pki.server.clone())
        .dangerous_key_log(server_log.clone())
        .build_with_suites(&server_suites)
        .expect("suites");
    let name = ServerName::try_from("server.test").expect("name");
    let mut p = Pair::new(
        Arc::new(client),
        Arc::new(server),
        name,
        SessionConfig::default(),
        now,
        Box::new(rng(rng_seed)),
    )
    .expect("client starts");
    p.handshake().expect("handshake");
    let summary = p.client.summary().expect("complete").clone();
    assert_eq!(summary.version, version);
    let secrets = client_log.0.lock().expect("log").clone();
    assert_eq!(
        secrets,
        *server_log.0.lock().expect("log"),
        "both sides derive the same secrets"
    );

    let mut records = Vec::new();
    // s→c record 0 is SecureAck, the last record of flight 6.
    let flight6 = &p.flights[5].bytes;
    let ack = split_records(flight6).pop().expect("SecureAck record");
    records.push(RecordVector {
        direction: "server_to_client".into(),
        seq: 0,
        inner_type: 1,
        content: String::new(),
        record: hex::encode(ack),
    });
    for i in 0..3u64 {
        let c = format!("client message {i}");
        p.client.send_message(c.as_bytes()).expect("send");
        records.push(RecordVector {
            direction: "client_to_server".into(),
            seq: i,
            inner_type: 2,
            content: hex::encode(&c),
            record: hex::encode(p.client.take_outgoing()),
        });
        let s = format!("server message {i}");
        p.server.send_message(s.as_bytes()).expect("send");
        records.push(RecordVector {
            direction: "server_to_client".into(),
            seq: i + 1,
            inner_type: 2,
            content: hex::encode(&s),
            record: hex::encode(p.server.take_outgoing()),
        });
    }
    let which = if version == ProtocolVersion::V2 {
        "Full handshake, protocol version 2"
    } else {
        "Full handshake"
    };
    Vector {
        description: format!(
            "{which}, client offers {suite} only, server enables AES-256-GCM and ChaCha20-Poly1305; steps 7-10 in order {}",
            summary.order
        ),
        rng_seed,
        pki_seed: PKI_SEED,
        now_unix: NOW,
        server_name: "server.test".into(),
        client_suites: vec![suite.to_string()],
        server_suites: server_suites.iter().map(|s| s.to_string()).collect(),
        cipher_suite: summary.suite.to_string(),
        order: summary.order.steps().iter().map(|s| s.step()).collect(),
        order_index: summary.order.index(),
        ca_certificate: hex::encode(&pki.ca_cert),
        server_chain: pki.server.chain().iter().map(hex::encode).collect(),
        client_chain: pki.client.chain().iter().map(hex::encode).collect(),
        flights: p
            .flights
            .iter()
            .map(|f| FlightVector { from: if f.from == Side::Client { "client" } else { "server" }.into(), bytes: hex::encode(&f.bytes) })
            .collect(),
        secrets,
        records,
        session_hash: hex::encode(summary.session_hash),
    }
}

fn split_records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = u32::from_be_bytes([0, bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        out.push(bytes[at..at + 4 + len].to_vec());
        at += 4 + len;
    }
    assert_eq!(at, bytes.len(), "whole records");
    out
}

/// Version 1's vectors are in `tests/vectors/`, version 2's in its `v2/`.
fn vector_dir(version: ProtocolVersion) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    if version == ProtocolVersion::V2 {
        dir.join("v2")
    } else {
        dir
    }
}

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V1, ProtocolVersion::V2];

fn stored(version: ProtocolVersion) -> Vec<(PathBuf, Vector)> {
    let mut files: Vec<_> = std::fs::read_dir(vector_dir(version))
        .expect("tests/vectors exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable vector");
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

/// Picks seeds giving four different orders, two per cipher, and writes them.
fn write_vectors(version: ProtocolVersion) {
    let mut seen = Vec::new();
    let mut seed = 0;
    let prefix = if version == ProtocolVersion::V2 {
        "handshake-v2"
    } else {
        "handshake"
    };
    for (suite, count) in [
        (CipherSuite::AES_256_GCM, 2),
        (CipherSuite::CHACHA20_POLY1305, 2),
    ] {
        let mut n = 0;
        while n < count {
            let v = generate(seed, suite, version);
            seed += 1;
            if seen.contains(&v.order_index) {
                continue;
            }
            seen.push(v.order_index);
            let short = if suite == CipherSuite::AES_256_GCM {
                "aes256gcm"
            } else {
                "chacha20poly1305"
            };
            let path = vector_dir(version)
                .join(format!("{prefix}-{short}-order{:02}.json", v.order_index));
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&v).expect("json") + "\n",
            )
            .expect("write");
            n += 1;
        }
    }
}

#[test]
fn vectors_regenerate_byte_for_byte() {
    for version in VERSIONS {
        regenerate_byte_for_byte(version);
    }
}

fn regenerate_byte_for_byte(version: ProtocolVersion) {
    match std::env::var("SC_WRITE_VECTORS").as_deref() {
        Ok("v2") if version == ProtocolVersion::V2 => write_vectors(version),
        Ok("v2") | Err(_) => {}
        Ok(_) => write_vectors(version),
    }
    let vectors = stored(version);
    assert!(vectors.len() >= 3, "at least three vectors");
    let orders: std::collections::BTreeSet<u8> =
        vectors.iter().map(|(_, v)| v.order_index).collect();
    assert!(
        orders.len() >= 3,
        "at least three different orders: {orders:?}"
    );
    let suites: std::collections::BTreeSet<&str> = vectors
        .iter()
        .map(|(_, v)| v.cipher_suite.as_str())
        .collect();
    assert_eq!(suites.len(), 2, "both ciphers");
    for (path, v) in vectors {
        let fresh = generate(v.rng_seed, suite_from(&v.client_suites[0]), version);
        // Field by field first, for a readable failure.
        for (i, (a, b)) in fresh.flights.iter().zip(&v.flights).enumerate() {
            assert_eq!(a, b, "{}: flight {} differs", path.display(), i + 1);
        }
        assert_eq!(
            fresh.secrets,
            v.secrets,
            "{}: secrets differ",
            path.display()
        );
        assert_eq!(fresh, v, "{}", path.display());
    }
}

// ---------------------------------------------------------------------------
// An independent implementation of SPEC.md's key schedule, order derivation
// and record ratchet, on the primitive crates.
// ---------------------------------------------------------------------------

mod spec {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use hkdf::Hkdf;
    use sha2::{Digest, Sha256};

    pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    pub(crate) fn extract(salt: &[u8], ikm: &[u8]) -> [u8; 32] {
        Hkdf::<Sha256>::extract(Some(salt), ikm).0.into()
    }

    /// HKDF-Expand-Label: length (u16) || u8 len || "sc1 " || label || u8 len || context.
    pub(crate) fn expand_label(secret: &[u8], label: &str, context: &[u8], len: usize) -> Vec<u8> {
        let full = format!("sc1 {label}");
        let mut info = (len as u16).to_be_bytes().to_vec();
        info.push(full.len() as u8);
        info.extend_from_slice(full.as_bytes());
        info.push(context.len() as u8);
        info.extend_from_slice(context);
        let mut out = vec![0; len];
        Hkdf::<Sha256>::from_prk(secret)
            .expect("prk")
            .expand(&info, &mut out)
            .expect("expand");
        out
    }

    pub(crate) fn expand32(secret: &[u8], label: &str, context: &[u8]) -> [u8; 32] {
        expand_label(secret, label, context, 32)
            .try_into()
            .expect("32 bytes")
    }

    /// One direction's ratchet: opens records in order.
    pub(crate) struct Chain {
        pub(crate) chain: [u8; 32],
        pub(crate) label: &'static str,
        pub(crate) suite: u16,
    }

    impl Chain {
        pub(crate) fn open(&mut self, record: &[u8]) -> (u8, Vec<u8>) {
            let okm = expand_label(&self.chain, self.label, b"", 76);
            let (key, nonce) = (&okm[..32], &okm[32..44]);
            let mut buf = record[4..record.len() - 16].to_vec();
            let tag = &record[record.len() - 16..];
            let ok = match self.suite {
                1 => chacha20poly1305::ChaCha20Poly1305::new(key.into())
                    .decrypt_in_place_detached(nonce.into(), &record[..4], &mut buf, tag.into())
                    .is_ok(),
                _ => aes_gcm::Aes256Gcm::new(key.into())
                    .decrypt_in_place_detached(nonce.into(), &record[..4], &mut buf, tag.into())
                    .is_ok(),
            };
            assert!(ok, "record opens under the spec's ratchet");
            self.chain = okm[44..].try_into().expect("32 bytes");
            let typ = buf.pop().expect("inner type");
            let pad = u16::from_be_bytes([buf[buf.len() - 2], buf[buf.len() - 1]]) as usize;
            buf.truncate(buf.len() - 2 - pad);
            (typ, buf)
        }
    }

    /// Splits handshake message bytes into (type, whole encoding).
    pub(crate) fn messages(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_be_bytes([0, bytes[1], bytes[2], bytes[3]]) as usize;
            out.push((bytes[0], bytes[..4 + len].to_vec()));
            bytes = &bytes[4 + len..];
        }
        out
    }

    /// The permutation of (7, 8, 9, 10) with lexicographic index `i`.
    pub(crate) fn permutation(mut i: usize) -> Vec<u8> {
        let mut pool = vec![7u8, 8, 9, 10];
        let mut out = Vec::new();
        for radix in [6, 2, 1, 1] {
            out.push(pool.remove(i / radix));
            i %= radix;
        }
        out
    }
}

#[test]
fn vectors_check_out_independently() {
    for version in VERSIONS {
        check_out_independently(version);
    }
}

/// The Ed25519 public key of a DER certificate: the 32 bytes after the
/// SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410).
fn ed25519_key(cert: &[u8]) -> [u8; 32] {
    const SPKI: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let at = cert
        .windows(SPKI.len())
        .position(|w| w == SPKI)
        .expect("an Ed25519 key")
        + SPKI.len();
    cert[at..at + 32].try_into().expect("32 bytes")
}

/// `context || 0x00 || th`, what a step's signature or MAC covers.
fn signed(context: &str, th: &[u8; 32]) -> Vec<u8> {
    [context.as_bytes(), &[0], th].concat()
}

fn check_out_independently(version: ProtocolVersion) {
    let v2 = version == ProtocolVersion::V2;
    let vectors = stored(version);
    assert!(vectors.len() >= 3, "{version}: at least three vectors");
    for (path, v) in vectors {
        let at = path.display();
        let secret = |label: &str| hex::decode(&v.secrets[label]).expect("hex");
        let suite = suite_from(&v.cipher_suite).0;
        let flights: Vec<Vec<u8>> = v
            .flights
            .iter()
            .map(|f| hex::decode(&f.bytes).expect("hex"))
            .collect();

        // Steps 1 and 2 travel in plaintext records.
        let ch = split_records(&flights[0]).remove(0)[4..].to_vec();
        let server_records = split_records(&flights[1]);
        let sh = server_records[0][4..].to_vec();
        let th2 = spec::sha256(&[&ch, &sh]);

        // The ServerHello's version field.
        assert_eq!(u16::from_be_bytes([sh[4], sh[5]]), version.0, "{at}");

        // The handshake secrets: version 2 mixes step 2's ML-KEM secret in.
        let hs = if v2 {
            spec::extract(
                b"Sovereign-Chain/2 handshake",
                &[
                    secret("X25519_SHARED_SECRET"),
                    secret("MLKEM_STEP2_SHARED_SECRET"),
                ]
                .concat(),
            )
        } else {
            spec::extract(
                b"Sovereign-Chain/1 handshake",
                &secret("X25519_SHARED_SECRET"),
            )
        };
        assert_eq!(hs.to_vec(), secret("HANDSHAKE_SECRET"), "{at}: HS");
        let c_hs = spec::expand32(&hs, "c hs traffic", &th2);
        let s_hs = spec::expand32(&hs, "s hs traffic", &th2);
        assert_eq!(
            c_hs.to_vec(),
            secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET"),
            "{at}"
        );
        assert_eq!(
            s_hs.to_vec(),
            secret("SERVER_HANDSHAKE_TRAFFIC_SECRET"),
            "{at}"
        );
        let kc2 = spec::expand32(&hs, "c confirm", &th2);
        assert_eq!(kc2.to_vec(), secret("CLIENT_CONFIRM_KEY"), "{at}");
        let kc1 = spec::expand32(&hs, "s confirm", &th2);
        if v2 {
            assert_eq!(kc1.to_vec(), secret("SERVER_CONFIRM_KEY"), "{at}");
        } else {
            assert!(!v.secrets.contains_key("SERVER_CONFIRM_KEY"), "{at}");
        }

        // Open every handshake record with the spec's ratchet.
        let mut c_chain = spec::Chain {
            chain: c_hs,
            label: "c record",
            suite,
        };
        let mut s_chain = spec::Chain {
            chain: s_hs,
            label: "s record",
            suite,
        };
        let open_hs = |chain: &mut spec::Chain, record: &[u8]| {
            let (typ, content) = chain.open(record);
            assert_eq!(typ, 1, "{at}: a handshake record");
            spec::messages(&content)
        };
        let m34 = open_hs(&mut s_chain, &server_records[1]);
        let m5 = open_hs(&mut c_chain, &split_records(&flights[2])[0]);
        let m6 = open_hs(&mut s_chain, &split_records(&flights[3])[0]);
        let m_client = open_hs(&mut c_chain, &split_records(&flights[4])[0]);
        let f6 = split_records(&flights[5]);
        let m12 = open_hs(&mut s_chain, &f6[0]);
        assert_eq!(m34.iter().map(|m| m.0).collect::<Vec<_>>(), [3, 4], "{at}");
        assert_eq!(m5[0].0, 5);
        // The server certificate inside step 3 is the vector's.
        let cert3 = &m34[0].1[4 + 1 + 2..];
        assert_eq!(
            hex::encode(cert3),
            v.server_chain[0],
            "{at}: certificate in step 3"
        );
        let server_key =
            ed25519_dalek::VerifyingKey::from_bytes(&ed25519_key(cert3)).expect("server key");
        let th3 = spec::sha256(&[&ch, &sh, &m34[0].1]);
        let ctx = |step: &str| format!("Sovereign-Chain/{} {step}", version.0 - 0x5c00);
        if v2 {
            // Step 4 ends with the server's signature over th_3.
            let m4 = &m34[1].1;
            let sig = ed25519_dalek::Signature::from_bytes(
                m4[m4.len() - 64..].try_into().expect("64 bytes"),
            );
            server_key
                .verify_strict(&signed(&ctx("server ClientCertRequest step 4"), &th3), &sig)
                .unwrap_or_else(|e| panic!("{at}: step 4's signature: {e}"));
        }

        // The order, from the order seed in SeedCode (step 6 = 64-byte code || 32-byte order seed || hash).
        assert_eq!(m6[0].0, 6);
        let seed_code = &m6[0].1[4..68];
        let order_seed = &m6[0].1[68..100];
        let prk = spec::extract(b"Sovereign-Chain/1 step order", order_seed);
        let x = u64::from_be_bytes(
            spec::expand_label(&prk, "order", &[0], 8)
                .try_into()
                .expect("8 bytes"),
        );
        assert!(x < u64::MAX - 15, "{at}: first draw accepted");
        let order = spec::permutation((x % 24) as usize);
        assert_eq!(order, v.order, "{at}: order of steps 7-10");
        assert_eq!(x % 24, u64::from(v.order_index));

        // Each side's two messages are in the order's relative order.
        let server_two: Vec<u8> = m6[1..].iter().map(|m| m.0).collect();
        let client_two: Vec<u8> = m_client[..2].iter().map(|m| m.0).collect();
        assert_eq!(
            server_two,
            order
                .iter()
                .copied()
                .filter(|s| s % 2 == 1)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            client_two,
            order
                .iter()
                .copied()
                .filter(|s| s % 2 == 0)
                .collect::<Vec<_>>()
        );
        assert_eq!(m_client[2].0, 11);

        // The transcript through step 11, with 7-10 in the permuted order.
        let by_type: BTreeMap<u8, Vec<u8>> = m6[1..]
            .iter()
            .chain(&m_client[..2])
            .map(|(t, m)| (*t, m.clone()))
            .collect();
        let mut transcript: Vec<&[u8]> = vec![&ch, &sh, &m34[0].1, &m34[1].1, &m5[0].1, &m6[0].1];
        let th6 = spec::sha256(&transcript);
        // Step 10's MAC (and in version 2 step 9's): HMAC(key, context ||
        // 0 || th_6), which is HKDF-Extract with the key as the salt. Step
        // 9 of version 1 is the server's signature.
        let mac = |key: &[u8; 32], context: &str| spec::extract(key, &signed(context, &th6));
        assert_eq!(
            by_type[&10][4..],
            mac(&kc2, &ctx("client KeyConfirm2 step 10")),
            "{at}: step 10"
        );
        if v2 {
            assert_eq!(by_type[&7].len(), 4 + 1184, "{at}: step 7 is a key");
            assert_eq!(
                by_type[&9][4..],
                mac(&kc1, &ctx("server KeyConfirm1 step 9")),
                "{at}: step 9"
            );
        } else {
            let sig = ed25519_dalek::Signature::from_bytes(
                by_type[&9][4..].try_into().expect("64 bytes"),
            );
            server_key
                .verify_strict(&signed(&ctx("server KeyConfirm1 step 9"), &th6), &sig)
                .unwrap_or_else(|e| panic!("{at}: step 9's signature: {e}"));
        }
        for s in &order {
            transcript.push(&by_type[s]);
        }
        transcript.push(&m_client[2].1);
        let th11 = spec::sha256(&transcript);

        // The master secret and the record chains.
        let derived = spec::expand32(&hs, "derived", &spec::sha256(&[]));
        let ikm = if v2 {
            assert!(!v.secrets.contains_key("MLKEM_STEP7_SHARED_SECRET"), "{at}");
            [
                secret("MLKEM_STEP8_SHARED_SECRET"),
                vec![0x5c, 0x02],
                suite.to_be_bytes().to_vec(),
            ]
            .concat()
        } else {
            [
                secret("MLKEM_STEP7_SHARED_SECRET"),
                secret("MLKEM_STEP8_SHARED_SECRET"),
                vec![0x5c, 0x01],
                suite.to_be_bytes().to_vec(),
            ]
            .concat()
        };
        let ms = spec::extract(&derived, &ikm);
        assert_eq!(ms.to_vec(), secret("MASTER_SECRET"), "{at}: MS");
        let c_chain0 = spec::extract(seed_code, &spec::expand32(&ms, "c ap traffic", &th11));
        let s_chain0 = spec::extract(seed_code, &spec::expand32(&ms, "s ap traffic", &th11));
        assert_eq!(c_chain0.to_vec(), secret("CLIENT_CHAIN0"), "{at}");
        assert_eq!(s_chain0.to_vec(), secret("SERVER_CHAIN0"), "{at}");
        assert_eq!(
            spec::expand32(&ms, "s ack", &th11).to_vec(),
            secret("SECURE_ACK_KEY"),
            "{at}"
        );
        assert_eq!(m12[0].0, 12);
        transcript.push(&m12[0].1);
        assert_eq!(
            hex::encode(spec::sha256(&transcript)),
            v.session_hash,
            "{at}: session hash = th12"
        );

        // The application records, opened in order with the spec's ratchet.
        let mut chains = BTreeMap::from([
            (
                "client_to_server",
                spec::Chain {
                    chain: c_chain0,
                    label: "c record",
                    suite,
                },
            ),
            (
                "server_to_client",
                spec::Chain {
                    chain: s_chain0,
                    label: "s record",
                    suite,
                },
            ),
        ]);
        for r in &v.records {
            let chain = chains.get_mut(r.direction.as_str()).expect("direction");
            let (typ, content) = chain.open(&hex::decode(&r.record).expect("hex"));
            assert_eq!(typ, r.inner_type, "{at}: record {} {}", r.direction, r.seq);
            if typ == 1 {
                // SecureAck: HMAC(ack key, context || 0 || th12).
                assert_eq!(content[0], 13);
            } else {
                assert_eq!(
                    hex::encode(&content),
                    r.content,
                    "{at}: record {} {}",
                    r.direction,
                    r.seq
                );
            }
        }
    }
}
