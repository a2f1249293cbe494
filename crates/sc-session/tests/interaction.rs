//! The ratchet under random interaction (as libsignal's `interaction` fuzz
//! target): random sequences of send, deliver, drop, duplicate, reorder and
//! replay actions on an established session pair. Every delivered record
//! either opens to exactly what was sent, in order, or the receiving side
//! fails closed; a replayed or reordered record is never accepted; and a
//! failed open never advances the receiver (checked separately with the raw
//! record opener, where state is observable).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_session::pair::Pair;
use sc_session::record::{Direction, RecordOpener, RecordSealer};
use sc_session::{Error, SessionConfig, Side};
use sc_wire::{Codec, InnerType, RecordHeader};

#[derive(Clone, Debug)]
enum Action {
    /// The sender seals a new message (carried in one record).
    Send(bool),
    /// The oldest record in flight reaches the receiver.
    Deliver(bool),
    /// The oldest record in flight is lost.
    Drop(bool),
    /// The oldest record in flight is delivered twice.
    Duplicate(bool),
    /// The two oldest records in flight swap places.
    Reorder(bool),
    /// A record delivered earlier arrives again.
    Replay(bool),
}

fn action() -> impl Strategy<Value = Action> {
    let dir = any::<bool>();
    prop_oneof![
        4 => dir.prop_map(Action::Send),
        4 => dir.prop_map(Action::Deliver),
        1 => dir.prop_map(Action::Drop),
        1 => dir.prop_map(Action::Duplicate),
        1 => dir.prop_map(Action::Reorder),
        1 => dir.prop_map(Action::Replay),
    ]
}

/// One direction of the link: records in flight, what was delivered, and
/// what the receiver must see.
#[derive(Default)]
struct Link {
    in_flight: VecDeque<(u64, Vec<u8>)>,
    delivered: Vec<Vec<u8>>,
    next_seq: u64,
    /// The highest sequence number the receiver accepted, in order.
    accepted_up_to: Option<u64>,
    /// Whether every record so far was delivered in order, exactly once.
    clean: bool,
    failed: bool,
}

fn pair(seed: u64) -> Pair {
    let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let pki = ThrowawayPki::new("server.test", "client-1", now, &mut rng).expect("pki");
    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
        .with_credential(pki.client.clone())
        .build();
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
        .with_credential(pki.server.clone())
        .build();
    let name = ServerName::try_from("server.test").expect("name");
    let mut p = Pair::new(
        Arc::new(client),
        Arc::new(server),
        name,
        SessionConfig::default(),
        now,
        Box::new(rng),
    )
    .expect("start");
    p.handshake().expect("handshake");
    p
}

fn message(side: Side, seq: u64) -> Vec<u8> {
    format!("{side:?} message {seq}").into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn records_open_in_order_or_the_session_fails_closed(actions in prop::collection::vec(action(), 1..120), seed in any::<u64>()) {
        let mut p = pair(seed % 16);
        // c2s: the client sends; s2c: the server sends.
        let mut links = [Link { clean: true, ..Link::default() }, Link { clean: true, ..Link::default() }];
        // A refused record fails the receiving side's whole session, so both
        // directions are over after the first refusal.
        let mut session_over = false;
        for a in actions {
            if session_over {
                break;
            }
            let (s2c, verb) = match a {
                Action::Send(d) => (d, 0),
                Action::Deliver(d) => (d, 1),
                Action::Drop(d) => (d, 2),
                Action::Duplicate(d) => (d, 3),
                Action::Reorder(d) => (d, 4),
                Action::Replay(d) => (d, 5),
            };
            let (from, to) = if s2c { (Side::Server, Side::Client) } else { (Side::Client, Side::Server) };
            let link = &mut links[usize::from(s2c)];
            match verb {
                0 => {
                    let seq = link.next_seq;
                    link.next_seq += 1;
                    p.side(from).send_message(&message(from, seq)).expect("send");
                    let bytes = p.side(from).take_outgoing();
                    link.in_flight.push_back((seq, bytes));
                    continue;
                }
                2 => {
                    if link.in_flight.pop_front().is_some() {
                        link.clean = false;
                    }
                    continue;
                }
                4 => {
                    if link.in_flight.len() >= 2 {
                        link.in_flight.swap(0, 1);
                        link.clean = false;
                    }
                    continue;
                }
                _ => {}
            }
            // Deliveries: one record (twice for a duplicate; an old one for a replay).
            let deliveries: Vec<(u64, Vec<u8>)> = match verb {
                1 => link.in_flight.pop_front().into_iter().collect(),
                3 => link.in_flight.pop_front().map(|r| vec![r.clone(), r]).unwrap_or_default(),
                _ => link.delivered.last().cloned().map(|bytes| (u64::MAX, bytes)).into_iter().collect(),
            };
            for (seq, bytes) in deliveries {
                let expected_next = link.accepted_up_to.map_or(0, |s| s + 1);
                let result = p.deliver(to, &bytes);
                match result {
                    Ok(()) => {
                        // Accepted: it must be exactly the next record, and
                        // its message exactly what was sent.
                        prop_assert_eq!(seq, expected_next, "a record out of order was accepted");
                        let got = p.side(to).recv_message();
                        prop_assert_eq!(got, Some(message(from, seq)));
                        link.accepted_up_to = Some(seq);
                        link.delivered.push(bytes);
                    }
                    Err(e) => {
                        // Refused: only a record that is not the next one
                        // (or arrives after a failure) may be refused.
                        prop_assert!(seq != expected_next || !link.clean, "the next record was refused: {:?}", e.error);
                        prop_assert_eq!(e.error, Error::DecryptFailed);
                        prop_assert_eq!(p.side(to).recv_message(), None, "nothing delivered from a refused record");
                        link.failed = true;
                        session_over = true;
                        break;
                    }
                }
            }
        }
    }

    /// A failed open never advances the ratchet: after any number of
    /// tampered or foreign records, the genuine next record still opens.
    #[test]
    fn failed_opens_never_advance(garbage in prop::collection::vec((any::<u16>(), any::<u8>()), 0..24), n in 1usize..6) {
        let p = &sc_handshake::RUSTCRYPTO;
        let chain = sc_handshake::Secret::new([42; 32]);
        let mut sealer = RecordSealer::new(p, sc_wire::CipherSuite::CHACHA20_POLY1305, Direction::ClientToServer, chain.clone()).expect("sealer");
        let mut opener = RecordOpener::new(p, sc_wire::CipherSuite::CHACHA20_POLY1305, Direction::ClientToServer, chain).expect("opener");
        let records: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let mut out = Vec::new();
                sealer.seal(InnerType::DATA, format!("record {i}").as_bytes(), 0, &mut out).expect("seal");
                out
            })
            .collect();
        for (i, rec) in records.iter().enumerate() {
            // Tampered copies of this record and later ones (out of order) first.
            for (pos, flip) in &garbage {
                let victim = &records[(i + usize::from(*pos)) % n];
                let mut bad = victim.clone();
                let at = usize::from(*pos) % bad.len();
                bad[at] ^= flip | 1;
                if bad == *rec {
                    continue;
                }
                if let Ok(h) = RecordHeader::decode(&bad[..4]) {
                    if h.len == bad.len() - 4 {
                        prop_assert!(opener.open(h, &mut bad[4..]).is_err());
                    }
                }
                prop_assert_eq!(opener.seq(), i as u64);
            }
            let mut good = rec.clone();
            let h = RecordHeader::decode(&good[..4]).expect("header");
            let (t, c) = opener.open(h, &mut good[4..]).expect("the genuine record opens");
            prop_assert_eq!(t, InnerType::DATA);
            let want = format!("record {i}");
            prop_assert_eq!(c, want.as_bytes());
        }
    }
}
