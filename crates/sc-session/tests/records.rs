//! The record ratchet as a state machine, driven record by record with both
//! suites: what opens, what is refused, and that a refusal leaves the opener
//! exactly where it was. No handshake is involved (each side starts from the
//! same chain key), so these tests also run under Miri (`.ci/run`), which the
//! handshake-based tests cannot: one ML-KEM operation takes minutes there.

use sc_handshake::{Secret, RUSTCRYPTO};
use sc_session::record::{Direction, RecordOpener, RecordSealer};
use sc_session::Error;
use sc_wire::record::{RECORD_HEADER_LEN, TAG_LEN};
use sc_wire::{CipherSuite, Codec, InnerType, RecordHeader};

const SUITES: [CipherSuite; 2] = [CipherSuite::CHACHA20_POLY1305, CipherSuite::AES_256_GCM];

fn chain0() -> Secret {
    Secret::new([0x42; 32])
}

fn sealer(suite: CipherSuite, direction: Direction, chain: Secret) -> RecordSealer {
    RecordSealer::new(&RUSTCRYPTO, suite, direction, chain).expect("RustCrypto has both suites")
}

fn opener(suite: CipherSuite, direction: Direction, chain: Secret) -> RecordOpener {
    RecordOpener::new(&RUSTCRYPTO, suite, direction, chain).expect("RustCrypto has both suites")
}

/// Seals one record and returns it whole (header included).
fn seal(s: &mut RecordSealer, typ: InnerType, content: &[u8], pad: u16) -> Vec<u8> {
    let mut out = Vec::new();
    s.seal(typ, content, pad, &mut out)
        .expect("content within the fragment limit");
    out
}

/// Opens a whole record (a copy; the caller's bytes stay as they were).
fn open(o: &mut RecordOpener, record: &[u8]) -> Result<(InnerType, Vec<u8>), Error> {
    let mut bytes = record.to_vec();
    let (header, body) = bytes.split_at_mut(RECORD_HEADER_LEN);
    let header = RecordHeader::decode(header).expect("a sealer's header decodes");
    o.open(header, body).map(|(t, c)| (t, c.to_vec()))
}

#[test]
fn records_open_in_order_to_what_was_sent() {
    let messages: [(InnerType, &[u8], u16); 6] = [
        (InnerType::DATA, b"", 0),
        (InnerType::DATA_MORE, b"x", 0),
        (InnerType::DATA, &[0xa5; 100], 3),
        (InnerType::KEEPALIVE, b"", 7),
        (InnerType::ALERT, &[0x0c], 0),
        (InnerType::CLOSE, b"", 0),
    ];
    for suite in SUITES {
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            let mut s = sealer(suite, direction, chain0());
            let mut o = opener(suite, direction, chain0());
            for (i, (typ, content, pad)) in messages.iter().enumerate() {
                let record = seal(&mut s, *typ, content, *pad);
                assert_eq!(
                    record.len(),
                    RECORD_HEADER_LEN + content.len() + usize::from(*pad) + 3 + TAG_LEN,
                    "{suite:?}: the padding is inside the record"
                );
                let (t, c) = open(&mut o, &record).expect("in-order record opens");
                assert_eq!((t, c.as_slice()), (*typ, *content), "{suite:?} record {i}");
                assert_eq!((s.seq(), o.seq()), (i as u64 + 1, i as u64 + 1));
            }
        }
    }
}

#[test]
fn every_flipped_byte_is_refused_and_leaves_the_opener_where_it_was() {
    for suite in SUITES {
        let mut s = sealer(suite, Direction::ClientToServer, chain0());
        let mut o = opener(suite, Direction::ClientToServer, chain0());
        let first = seal(&mut s, InnerType::DATA, b"first", 0);
        let second = seal(&mut s, InnerType::DATA, b"second", 2);
        open(&mut o, &first).expect("first opens");
        let mut tried = 0;
        for at in 0..second.len() {
            let mut bad = second.clone();
            bad[at] ^= 0x01;
            // A header whose kind or length no longer fits is the deframer's
            // to refuse (sc-wire's tests); the opener sees only well-framed
            // records.
            let Ok(header) = RecordHeader::decode(&bad[..RECORD_HEADER_LEN]) else {
                continue;
            };
            if header.len != bad.len() - RECORD_HEADER_LEN {
                continue;
            }
            tried += 1;
            let got = o.open(header, &mut bad[RECORD_HEADER_LEN..]);
            assert!(
                matches!(got, Err(Error::DecryptFailed)),
                "{suite:?}: byte {at} flipped: {got:?}"
            );
            assert_eq!(o.seq(), 1, "{suite:?}: a refused record moved the opener");
        }
        assert!(
            tried >= second.len() - RECORD_HEADER_LEN,
            "{suite:?}: every body byte was tried ({tried})"
        );
        let (t, c) = open(&mut o, &second).expect("the genuine record still opens");
        assert_eq!((t, c.as_slice()), (InnerType::DATA, &b"second"[..]));
    }
}

#[test]
fn replayed_reordered_and_foreign_records_are_refused() {
    for suite in SUITES {
        let mut s = sealer(suite, Direction::ClientToServer, chain0());
        let mut o = opener(suite, Direction::ClientToServer, chain0());
        let r: Vec<Vec<u8>> = (0..3)
            .map(|i| seal(&mut s, InnerType::DATA, format!("record {i}").as_bytes(), 0))
            .collect();

        // Reordered: record 1 before record 0.
        assert_eq!(open(&mut o, &r[1]), Err(Error::DecryptFailed));
        assert_eq!(o.seq(), 0);
        open(&mut o, &r[0]).expect("record 0 opens");
        // Replayed: record 0 again.
        assert_eq!(open(&mut o, &r[0]), Err(Error::DecryptFailed));
        assert_eq!(o.seq(), 1);

        // The other direction's opener, from the same chain key.
        let mut back = opener(suite, Direction::ServerToClient, chain0());
        assert_eq!(open(&mut back, &r[0]), Err(Error::DecryptFailed));
        // The other suite's opener, same direction and chain key.
        let other = SUITES
            .into_iter()
            .find(|x| *x != suite)
            .expect("two suites");
        let mut wrong_suite = opener(other, Direction::ClientToServer, chain0());
        assert_eq!(open(&mut wrong_suite, &r[0]), Err(Error::DecryptFailed));
        // Another session's chain key.
        let mut stranger = opener(suite, Direction::ClientToServer, Secret::new([0x43; 32]));
        assert_eq!(open(&mut stranger, &r[0]), Err(Error::DecryptFailed));

        // Nothing above disturbed the stream.
        for (i, rec) in r.iter().enumerate().skip(1) {
            let (_, c) = open(&mut o, rec).expect("the rest opens in order");
            assert_eq!(c, format!("record {i}").as_bytes());
        }
    }
}

#[test]
fn a_body_shorter_than_a_tag_is_refused() {
    for suite in SUITES {
        let mut o = opener(suite, Direction::ClientToServer, chain0());
        for len in 0..=TAG_LEN {
            let header = RecordHeader {
                kind: sc_wire::RecordKind::SEALED,
                len,
            };
            let mut body = vec![0u8; len];
            assert_eq!(
                o.open(header, &mut body).map(|(t, c)| (t, c.to_vec())),
                Err(Error::DecryptFailed),
                "{suite:?}: {len}-byte body"
            );
            assert_eq!(o.seq(), 0);
        }
    }
}

#[test]
fn a_stolen_later_state_opens_no_earlier_record() {
    for suite in SUITES {
        let mut s = sealer(suite, Direction::ServerToClient, chain0());
        let r0 = seal(&mut s, InnerType::DATA, b"zero", 0);
        let r1 = seal(&mut s, InnerType::DATA, b"one", 0);
        let stolen = s.chain_for_testing_only();
        let r2 = seal(&mut s, InnerType::DATA, b"two", 0);

        let mut thief = opener(suite, Direction::ServerToClient, stolen);
        assert_eq!(open(&mut thief, &r0), Err(Error::DecryptFailed));
        assert_eq!(open(&mut thief, &r1), Err(Error::DecryptFailed));
        // The state is what it claims to be: it opens the record it keys.
        let (_, c) = open(&mut thief, &r2).expect("the stolen state keys record 2");
        assert_eq!(c, b"two");
    }
}

/// An AEAD that refuses every seal, to show what a failed seal leaves.
#[derive(Debug)]
struct RefusingAead;

impl sc_handshake::crypto::Aead for RefusingAead {
    fn suite(&self) -> CipherSuite {
        CipherSuite::AES_256_GCM
    }

    fn seal_in_place(
        &self,
        _key: &[u8; sc_handshake::crypto::AEAD_KEY_LEN],
        _nonce: &[u8; sc_handshake::crypto::NONCE_LEN],
        _aad: &[u8],
        _buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], sc_handshake::crypto::CryptoError> {
        Err(sc_handshake::crypto::CryptoError)
    }

    fn open_in_place(
        &self,
        _key: &[u8; sc_handshake::crypto::AEAD_KEY_LEN],
        _nonce: &[u8; sc_handshake::crypto::NONCE_LEN],
        _aad: &[u8],
        _buf: &mut [u8],
        _tag: &[u8; TAG_LEN],
    ) -> Result<(), sc_handshake::crypto::CryptoError> {
        Err(sc_handshake::crypto::CryptoError)
    }
}

static REFUSING: sc_handshake::CryptoProvider = sc_handshake::CryptoProvider {
    name: "refusing (tests only)",
    aeads: &[&RefusingAead],
    hash: RUSTCRYPTO.hash,
    kx: RUSTCRYPTO.kx,
    kem: RUSTCRYPTO.kem,
    signature: RUSTCRYPTO.signature,
};

#[test]
fn a_failed_seal_leaves_nothing_of_its_record_in_the_output() {
    let mut s = RecordSealer::new(
        &REFUSING,
        CipherSuite::AES_256_GCM,
        Direction::ClientToServer,
        chain0(),
    )
    .expect("the refusing provider has the suite");
    let mut out = b"bytes already waiting".to_vec();
    let secret = [0x5au8; 300];
    let e = s.seal(InnerType::DATA, &secret, 0, &mut out);
    assert!(matches!(e, Err(Error::Internal(_))), "{e:?}");
    assert_eq!(
        out, b"bytes already waiting",
        "no header, no plaintext left"
    );
    assert_eq!(s.seq(), 0, "the chain did not move");
}
