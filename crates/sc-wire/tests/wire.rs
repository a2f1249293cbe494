//! Property tests of every codec: encode∘decode round-trips, and decoding
//! arbitrary bytes returns a value or a typed error, never a panic.

use proptest::collection::vec;
use proptest::prelude::*;
use sc_wire::messages::{MAX_CA_NAMES, MAX_CHAIN_CERTS, MAX_SUITES};
use sc_wire::record::{put_inner_trailer, split_inner, MAX_SEALED_LEN};
use sc_wire::*;

/// Cases for every never-panics property (the issue asks for at least 10,000
/// per message type in CI). Under Miri, which interprets every instruction
/// and checks it for undefined behaviour, a few cases per property: there
/// the point is the code paths, the count is `cargo test`'s job.
const FUZZ_CASES: u32 = if cfg!(miri) { 2 } else { 10_000 };
const ROUNDTRIP_CASES: u32 = if cfg!(miri) { 2 } else { 512 };

fn arr<const N: usize>() -> impl Strategy<Value = [u8; N]> {
    vec(any::<u8>(), N).prop_map(|v| {
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        a
    })
}

fn route() -> impl Strategy<Value = RouteName> {
    "[!-~]{1,255}".prop_map(|s| RouteName::new(&s).expect("strategy yields valid names"))
}

fn cert() -> impl Strategy<Value = CertificateBytes> {
    vec(any::<u8>(), 1..600).prop_map(|v| CertificateBytes::new(v).expect("length in range"))
}

fn chain() -> impl Strategy<Value = CertChain> {
    vec(cert(), 1..=MAX_CHAIN_CERTS).prop_map(|c| CertChain::new(c).expect("size in range"))
}

fn client_hello() -> impl Strategy<Value = ClientHello> {
    (
        any::<u16>(),
        arr::<32>(),
        arr::<32>(),
        vec(any::<u16>(), 1..=MAX_SUITES),
        proptest::option::of(route()),
        any::<u8>(),
    )
        .prop_map(|(v, random, x, suites, route, ek_byte)| ClientHello {
            version: ProtocolVersion(v),
            random: random.into(),
            x25519: x.into(),
            mlkem: [ek_byte; 1184].into(),
            suites: suites.into_iter().map(CipherSuite).collect(),
            route,
        })
}

fn server_hello() -> impl Strategy<Value = ServerHello> {
    (
        // 0x5c02 names version 2's layout (ServerHelloV2).
        any::<u16>().prop_filter("not version 2", |v| *v != ProtocolVersion::V2.0),
        arr::<32>(),
        arr::<32>(),
        any::<u16>(),
        any::<u8>(),
    )
        .prop_map(|(v, random, x, suite, ek_byte)| ServerHello {
            version: ProtocolVersion(v),
            random: random.into(),
            x25519: x.into(),
            mlkem: [ek_byte; 1184].into(),
            suite: CipherSuite(suite),
        })
}

fn server_hello_v2() -> impl Strategy<Value = ServerHelloV2> {
    (arr::<32>(), arr::<32>(), any::<u16>(), any::<u8>()).prop_map(|(random, x, suite, ct_byte)| {
        ServerHelloV2 {
            random: random.into(),
            x25519: x.into(),
            mlkem_ct: [ct_byte; 1088].into(),
            suite: CipherSuite(suite),
        }
    })
}

fn client_cert_request() -> impl Strategy<Value = ClientCertRequest> {
    (any::<bool>(), any::<bool>(), any::<bool>(), ca_names()).prop_map(|(a, s, k, n)| {
        ClientCertRequest {
            anonymous_allowed: a,
            streams: s,
            rekey: k,
            ca_names: n,
        }
    })
}

fn ca_names() -> impl Strategy<Value = Vec<DistinguishedName>> {
    vec(vec(any::<u8>(), 1..100), 0..=MAX_CA_NAMES).prop_map(|names| {
        names
            .into_iter()
            .map(|n| DistinguishedName::new(n).expect("length in range"))
            .collect()
    })
}

fn message() -> impl Strategy<Value = HandshakeMessage> {
    prop_oneof![
        client_hello().prop_map(HandshakeMessage::ClientHello),
        server_hello().prop_map(HandshakeMessage::ServerHello),
        chain().prop_map(HandshakeMessage::ServerCertSend),
        client_cert_request().prop_map(HandshakeMessage::ClientCertRequest),
        chain().prop_map(|chain| HandshakeMessage::ClientCertSend(ClientCertSend {
            kind: ClientCertKind::CERTIFIED,
            chain
        })),
        cert().prop_map(|c| HandshakeMessage::ClientCertSend(ClientCertSend {
            kind: ClientCertKind::ANONYMOUS,
            chain: CertChain::new(vec![c]).expect("one certificate"),
        })),
        (arr::<64>(), arr::<32>(), arr::<32>()).prop_map(|(c, o, h)| HandshakeMessage::SeedCode(
            SeedCode {
                code: SeedCodeSecret::new(c),
                order_seed: OrderSeed::new(o),
                client_cert_hash: h
            }
        )),
        any::<u8>().prop_map(|b| HandshakeMessage::KeyExchange1([b; 1088].into())),
        any::<u8>().prop_map(|b| HandshakeMessage::KeyExchange2([b; 1088].into())),
        arr::<64>().prop_map(|s| HandshakeMessage::KeyConfirm1(s.into())),
        arr::<32>().prop_map(|m| HandshakeMessage::KeyConfirm2(m.into())),
        arr::<64>().prop_map(|s| HandshakeMessage::ClientAuth(s.into())),
        arr::<64>().prop_map(|s| HandshakeMessage::ServerAuth(s.into())),
        arr::<32>().prop_map(|m| HandshakeMessage::SecureAck(m.into())),
    ]
}

/// The messages whose body version 2 changes (steps 2, 4, 7 and 9).
fn message_v2() -> impl Strategy<Value = HandshakeMessage> {
    prop_oneof![
        server_hello_v2().prop_map(HandshakeMessage::ServerHelloV2),
        (client_cert_request(), arr::<64>()).prop_map(|(request, sig)| {
            HandshakeMessage::ClientCertRequestV2(ClientCertRequestV2 {
                request,
                signature: sig.into(),
            })
        }),
        any::<u8>().prop_map(|b| HandshakeMessage::KeyExchange1V2([b; 1184].into())),
        arr::<32>().prop_map(|m| HandshakeMessage::KeyConfirm1V2(m.into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ROUNDTRIP_CASES))]

    #[test]
    fn version_2_messages_round_trip(msg in message_v2()) {
        let bytes = msg.encoded();
        prop_assert_eq!(usize::from(bytes[0]), usize::from(msg.typ().step()));
        prop_assert_eq!(
            HandshakeMessage::decode_for(ProtocolVersion::V2, &bytes),
            Ok(msg.clone())
        );
        let cut = bytes.len() / 2;
        prop_assert!(HandshakeMessage::decode_for(ProtocolVersion::V2, &bytes[..cut]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        let trailing = matches!(
            HandshakeMessage::decode_for(ProtocolVersion::V2, &longer),
            Err(InvalidMessage::TrailingData { .. })
        );
        prop_assert!(trailing);
        // None of them reads as its version 1 namesake (the ServerHello,
        // whose version field says 2, reads as itself).
        if msg.typ() == HandshakeType::SERVER_HELLO {
            prop_assert_eq!(HandshakeMessage::decode(&bytes), Ok(msg.clone()));
        } else {
            prop_assert!(HandshakeMessage::decode(&bytes).is_err());
        }
    }

    #[test]
    fn version_1_messages_read_the_same_in_a_version_2_handshake_unless_changed(msg in message()) {
        let bytes = msg.encoded();
        let changed = [
            HandshakeType::CLIENT_CERT_REQUEST,
            HandshakeType::KEY_EXCHANGE_1,
            HandshakeType::KEY_CONFIRM_1,
        ];
        let v2 = HandshakeMessage::decode_for(ProtocolVersion::V2, &bytes);
        if changed.contains(&msg.typ()) {
            prop_assert!(v2.is_err(), "{:?} read as version 2", msg.typ());
        } else {
            prop_assert_eq!(v2, Ok(msg.clone()));
        }
    }

    #[test]
    fn handshake_messages_round_trip(msg in message()) {
        let bytes = msg.encoded();
        prop_assert_eq!(usize::from(bytes[0]), usize::from(msg.typ().step()));
        prop_assert_eq!(HandshakeMessage::decode(&bytes), Ok(msg.clone()));
        // Every strict prefix is refused, and so is any trailing byte.
        let cut = bytes.len() / 2;
        prop_assert!(HandshakeMessage::decode(&bytes[..cut]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        let trailing = matches!(
            HandshakeMessage::decode(&longer),
            Err(InvalidMessage::TrailingData { .. })
        );
        prop_assert!(trailing);
    }

    #[test]
    fn record_headers_round_trip(kind in prop::sample::select(RecordKind::ALL.to_vec()), len in any::<u32>()) {
        let (min, max) = kind.body_len_range();
        let len = min + (len as usize) % (max - min + 1);
        let h = RecordHeader { kind, len };
        prop_assert_eq!(RecordHeader::decode(&h.to_bytes()), Ok(h));
    }

    #[test]
    fn inner_plaintext_round_trips(
        typ in prop::sample::select(InnerType::ALL.to_vec()),
        content in vec(any::<u8>(), 0..300),
        pad in 0u16..300,
    ) {
        let mut buf = content.clone();
        put_inner_trailer(&mut buf, typ, pad);
        prop_assert_eq!(split_inner(&buf), Ok((typ, &content[..])));
    }

    #[test]
    fn deframer_reassembles_any_split(
        bodies in vec(vec(any::<u8>(), 19..200), 1..6),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for b in &bodies {
            RecordHeader { kind: RecordKind::SEALED, len: b.len() }.encode(&mut stream);
            stream.extend_from_slice(b);
        }
        let mut cut_points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len())).collect();
        cut_points.sort_unstable();
        cut_points.push(stream.len());
        let mut d = Deframer::new();
        let mut got = Vec::new();
        let mut at = 0;
        for c in cut_points {
            d.push(&stream[at..c]);
            at = c;
            while let Some(r) = d.next_record().expect("valid stream") {
                got.push(r.body.to_vec());
            }
        }
        prop_assert_eq!(got, bodies);
        prop_assert_eq!(d.pending(), 0);
    }
}

/// Builds a framed message of `typ` around `body`, so the fuzzing reaches each
/// body decoder rather than stopping at the header.
fn framed(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![typ];
    let l = (body.len() as u32).to_be_bytes();
    out.extend_from_slice(&l[1..]);
    out.extend_from_slice(body);
    out
}

/// Body lengths near each message's real size, so the fuzzing gets past the
/// length checks into every field.
fn body_bytes(typ: HandshakeType) -> impl Strategy<Value = Vec<u8>> {
    let max = HandshakeMessage::max_body_len_for(ProtocolVersion::V2, typ)
        .max(HandshakeMessage::max_body_len(typ))
        .min(4000);
    vec(any::<u8>(), 0..=max)
}

macro_rules! never_panics_for {
    ($($name:ident => $typ:expr,)+) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(FUZZ_CASES))]
            $(
                #[test]
                fn $name(body in body_bytes($typ), raw in vec(any::<u8>(), 0..64)) {
                    // A well-framed message of this type with an arbitrary body…
                    let _ = HandshakeMessage::decode(&framed($typ.0, &body));
                    // …and a fully arbitrary byte string starting with the type.
                    let mut any_bytes = vec![$typ.0];
                    any_bytes.extend_from_slice(&raw);
                    let _ = HandshakeMessage::decode(&any_bytes);
                    // The same bytes in a version 2 handshake.
                    let _ = HandshakeMessage::decode_for(ProtocolVersion::V2, &framed($typ.0, &body));
                    let _ = HandshakeMessage::decode_for(ProtocolVersion::V2, &any_bytes);
                }
            )+
        }
    };
}

never_panics_for! {
    decode_client_hello_never_panics => HandshakeType::CLIENT_HELLO,
    decode_server_hello_never_panics => HandshakeType::SERVER_HELLO,
    decode_server_cert_send_never_panics => HandshakeType::SERVER_CERT_SEND,
    decode_client_cert_request_never_panics => HandshakeType::CLIENT_CERT_REQUEST,
    decode_client_cert_send_never_panics => HandshakeType::CLIENT_CERT_SEND,
    decode_seed_code_never_panics => HandshakeType::SEED_CODE,
    decode_key_exchange1_never_panics => HandshakeType::KEY_EXCHANGE_1,
    decode_key_exchange2_never_panics => HandshakeType::KEY_EXCHANGE_2,
    decode_key_confirm1_never_panics => HandshakeType::KEY_CONFIRM_1,
    decode_key_confirm2_never_panics => HandshakeType::KEY_CONFIRM_2,
    decode_client_auth_never_panics => HandshakeType::CLIENT_AUTH,
    decode_server_auth_never_panics => HandshakeType::SERVER_AUTH,
    decode_secure_ack_never_panics => HandshakeType::SECURE_ACK,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(FUZZ_CASES))]

    #[test]
    fn decode_any_handshake_bytes_never_panics(bytes in vec(any::<u8>(), 0..2000)) {
        let _ = HandshakeMessage::decode(&bytes);
        let _ = HandshakeMessage::decode_for(ProtocolVersion::V2, &bytes);
    }

    #[test]
    fn record_layer_decoders_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        let _ = RecordHeader::decode(&bytes);
        let _ = Alert::decode(&bytes);
        let _ = split_inner(&bytes);
        let mut d = Deframer::new();
        d.push(&bytes);
        // Bounded: each call either returns a record (consuming bytes), None, or an error.
        for _ in 0..bytes.len() + 1 {
            match d.next_record() {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn short_long_trailing_and_unknown_are_typed_errors() {
    let ack = HandshakeMessage::SecureAck([1; 32].into()).encoded();
    assert_eq!(
        HandshakeMessage::decode(&ack[..3]),
        Err(InvalidMessage::Truncated {
            what: "handshake message"
        })
    );
    assert_eq!(
        HandshakeMessage::decode(&ack[..20]),
        Err(InvalidMessage::Truncated {
            what: "handshake message"
        })
    );
    let mut long = ack.clone();
    long.push(9);
    assert_eq!(
        HandshakeMessage::decode(&long),
        Err(InvalidMessage::TrailingData {
            what: "message",
            len: 1
        })
    );
    // A length field beyond the type's maximum is refused before any body is read.
    assert_eq!(
        HandshakeMessage::decode(&[13, 0, 0, 33]),
        Err(InvalidMessage::TooLong {
            what: "handshake message",
            len: 33,
            max: 32
        })
    );
    // A body shorter than its fixed fields.
    assert_eq!(
        HandshakeMessage::decode(&framed(13, &[0; 31])),
        Err(InvalidMessage::Truncated { what: "MAC" })
    );
    assert_eq!(
        HandshakeMessage::decode(&[14, 0, 0, 0]),
        Err(InvalidMessage::UnknownType {
            what: "handshake type",
            value: 14
        })
    );
    assert_eq!(
        HandshakeMessage::decode(&[0, 0, 0, 0]),
        Err(InvalidMessage::UnknownType {
            what: "handshake type",
            value: 0
        })
    );
    assert_eq!(
        RecordHeader::decode(&[0x17, 0, 0, 5]),
        Err(InvalidMessage::UnknownType {
            what: "record kind",
            value: 0x17
        })
    );
    assert_eq!(
        RecordHeader::decode(&[0xc3, 0xff, 0xff, 0xff]),
        Err(InvalidMessage::TooLong {
            what: "record",
            len: 0xffffff,
            max: MAX_SEALED_LEN
        })
    );
    // ClientCertRequest with reserved flag bits set (bit 1 is streams,
    // SPEC §14; bit 2 re-keying, §15; bits 3-7 are reserved).
    assert_eq!(
        HandshakeMessage::decode(&framed(4, &[0x08, 0])),
        Err(InvalidMessage::InvalidValue {
            what: "ClientCertRequest flags"
        })
    );
    // Anonymous ClientCertSend with two certificates.
    assert_eq!(
        HandshakeMessage::decode(&framed(5, &[1, 2, 0, 1, 0xaa, 0, 1, 0xbb])),
        Err(InvalidMessage::InvalidValue {
            what: "anonymous certificate chain"
        })
    );
    // A zero-certificate chain.
    assert_eq!(
        HandshakeMessage::decode(&framed(3, &[0])),
        Err(InvalidMessage::TooShort {
            what: "certificate chain",
            len: 0,
            min: 1
        })
    );
    // Route names must be printable ASCII.
    assert!(RouteName::new("game server").is_err());
    assert!(RouteName::new("").is_err());
    assert!(RouteName::new("db.internal").is_ok());
}

#[test]
fn deframer_rejects_an_oversized_length_before_buffering_the_body() {
    let mut d = Deframer::new();
    d.push(&[0xc3, 0x01, 0x00, 0x14]); // 65,556 bytes: one more than the maximum
    assert!(matches!(
        d.next_record(),
        Err(InvalidMessage::TooLong { .. })
    ));
}

#[test]
fn inner_padding_must_be_zero_and_fit() {
    assert_eq!(
        split_inner(&[1, 2, 0, 5, 0x02]),
        Err(InvalidMessage::InvalidValue {
            what: "padding length"
        })
    );
    assert_eq!(
        split_inner(&[1, 9, 0, 1, 0x02]),
        Err(InvalidMessage::InvalidValue { what: "padding" })
    );
    assert_eq!(
        split_inner(&[1, 0, 0, 0x77]),
        Err(InvalidMessage::UnknownType {
            what: "inner type",
            value: 0x77
        })
    );
    assert_eq!(
        split_inner(&[1, 0]),
        Err(InvalidMessage::Truncated {
            what: "inner trailer"
        })
    );
}

#[test]
fn secrets_are_not_printed() {
    let sc = SeedCode {
        code: SeedCodeSecret::new([0xab; 64]),
        order_seed: OrderSeed::new([0xcd; 32]),
        client_cert_hash: [0; 32],
    };
    let s = format!("{sc:?}");
    assert!(!s.contains("abab") && !s.contains("cdcd"), "{s}");
    assert!(s.contains("<secret>"));
}

#[test]
fn a_plaintext_alert_record_is_five_bytes() {
    assert_eq!(
        Alert {
            code: AlertCode::NO_ROUTE
        }
        .plaintext_record(),
        [0xc2, 0, 0, 1, 0x14]
    );
}

// --- Stream frames (SPEC §14) ---------------------------------------------

fn service() -> impl Strategy<Value = Option<streams::ServiceName>> {
    proptest::option::of(
        "[!-~]{1,40}".prop_map(|s| streams::ServiceName::new(&s).expect("service name")),
    )
}

fn frame() -> impl Strategy<
    Value = (
        u8,
        u32,
        Option<streams::ServiceName>,
        Vec<u8>,
        u8,
        String,
        u32,
    ),
> {
    (
        1u8..=6,
        1u32..,
        service(),
        vec(any::<u8>(), 1..300),
        any::<u8>(),
        ".{0,60}",
        1u32..,
    )
}

fn build<'a>(
    (typ, id, service, data, code, reason, inc): &'a (
        u8,
        u32,
        Option<streams::ServiceName>,
        Vec<u8>,
        u8,
        String,
        u32,
    ),
) -> streams::Frame<'a> {
    use streams::{Frame, ResetCode, StreamId};
    let id = StreamId(*id);
    match typ {
        1 => Frame::Open {
            id,
            service: service.clone(),
        },
        2 => Frame::Data { id, data },
        3 => Frame::Fin { id },
        4 => Frame::Reset {
            id,
            code: ResetCode(*code),
            reason: reason.clone(),
        },
        5 => Frame::Window {
            id,
            increment: *inc,
        },
        _ => Frame::Limit { max_streams: *inc },
    }
}

proptest! {
    #[test]
    fn stream_frames_round_trip(parts in vec(frame(), 1..20)) {
        let frames: Vec<streams::Frame<'_>> = parts.iter().map(build).collect();
        let mut content = Vec::new();
        for f in &frames {
            let before = content.len();
            f.encode(&mut content);
            prop_assert_eq!(content.len() - before, f.encoded_len());
        }
        let back: Vec<_> = streams::frames(&content).collect::<Result<_, _>>().expect("decodes");
        // A reason over 255 bytes is cut; everything else comes back equal.
        for (a, b) in frames.iter().zip(&back) {
            match (a, b) {
                (streams::Frame::Reset { reason: r1, .. }, streams::Frame::Reset { reason: r2, .. }) => {
                    prop_assert!(r1.starts_with(r2.as_str()) && r2.len() <= 255);
                }
                _ => prop_assert_eq!(a, b),
            }
        }
        prop_assert_eq!(back.len(), frames.len());
    }

    #[test]
    fn stream_frames_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        for f in streams::frames(&bytes) {
            let _ = f;
        }
    }
}

#[test]
fn bad_stream_frames_are_refused() {
    use streams::frames;
    let bad: &[&[u8]] = &[
        // Empty record content.
        &[],
        // Unknown frame type.
        &[9, 0, 0, 0, 1],
        // Data with no bytes; Data longer than the record.
        &[2, 0, 0, 0, 1, 0, 0],
        &[2, 0, 0, 0, 1, 0, 5, 1, 2],
        // A zero window increment.
        &[5, 0, 0, 0, 1, 0, 0, 0, 0],
        // Stream 0 for anything but Window and Limit; Limit for a stream.
        &[3, 0, 0, 0, 0],
        &[6, 0, 0, 0, 1, 0, 0, 1, 0],
        // A service name with a space, and a reason that is not UTF-8.
        &[1, 0, 0, 0, 1, 2, b'a', b' '],
        &[4, 0, 0, 0, 1, 0, 2, 0xff, 0xfe],
        // A frame cut short.
        &[5, 0, 0, 0, 1, 0, 0],
    ];
    for b in bad {
        assert!(frames(b).any(|f| f.is_err()), "{b:02x?}");
    }
    // A good frame followed by a bad one: the error ends the iteration.
    let mut two = vec![3, 0, 0, 0, 1];
    two.extend_from_slice(&[9, 9]);
    let got: Vec<_> = frames(&two).collect();
    assert_eq!(got.len(), 2);
    assert!(got[0].is_ok() && got[1].is_err());
}

#[test]
fn capabilities_ride_in_the_suites_and_the_request_flags() {
    assert!(CipherSuite::STREAMS.is_capability());
    assert!(CipherSuite::REKEY.is_capability());
    assert!(!CipherSuite::AES_256_GCM.is_capability());
    let req = HandshakeMessage::ClientCertRequest(ClientCertRequest {
        anonymous_allowed: false,
        streams: true,
        rekey: false,
        ca_names: Vec::new(),
    });
    let bytes = req.encoded();
    assert_eq!(bytes[4], 0b10);
    assert_eq!(HandshakeMessage::decode(&bytes), Ok(req));
    let req = HandshakeMessage::ClientCertRequest(ClientCertRequest {
        anonymous_allowed: true,
        streams: false,
        rekey: true,
        ca_names: Vec::new(),
    });
    let bytes = req.encoded();
    assert_eq!(bytes[4], 0b101);
    assert_eq!(HandshakeMessage::decode(&bytes), Ok(req));
    // Bits 3-7 are still reserved.
    let mut reserved = bytes.clone();
    reserved[4] = 0b1000;
    assert!(HandshakeMessage::decode(&reserved).is_err());
}

fn server_hello_v2_message() -> HandshakeMessage {
    HandshakeMessage::ServerHelloV2(ServerHelloV2 {
        random: [1; 32].into(),
        x25519: [2; 32].into(),
        mlkem_ct: [3; 1088].into(),
        suite: CipherSuite::AES_256_GCM,
    })
}

#[test]
fn version_2_server_hello_is_told_by_its_version_field() {
    let bytes = server_hello_v2_message().encoded();
    // type 2, u24 length 1,156, then version 0x5c02.
    assert_eq!(&bytes[..6], &[2, 0, 0x04, 0x84, 0x5c, 0x02]);
    assert_eq!(bytes.len(), 4 + 1156);
    assert_eq!(&bytes[bytes.len() - 2..], &[0, 2]);
    // Its version field picks the layout, whatever the caller's version.
    for v in [ProtocolVersion::V1, ProtocolVersion::V2] {
        assert_eq!(
            HandshakeMessage::decode_for(v, &bytes),
            Ok(server_hello_v2_message())
        );
    }
    // A version 2 ServerHello with an encapsulation key (version 1's
    // 1,184-byte share) is malformed: 96 bytes left over.
    let mut body = bytes[4..bytes.len() - 2].to_vec();
    body.extend_from_slice(&[3; 96]);
    body.extend_from_slice(&[0, 2]);
    assert_eq!(
        HandshakeMessage::decode(&framed(2, &body)),
        Err(InvalidMessage::TrailingData {
            what: "ServerHello",
            len: 96
        })
    );
    // One byte short.
    assert_eq!(
        HandshakeMessage::decode(&framed(2, &bytes[4..bytes.len() - 1])),
        Err(InvalidMessage::Truncated {
            what: "cipher suite"
        })
    );
    // A version 1 layout under version 0x5c02 is refused the same way, and
    // version 1's layout still reads under 0x5c01 and unknown versions.
    let v1 = |version: u16| {
        HandshakeMessage::ServerHello(ServerHello {
            version: ProtocolVersion(version),
            random: [1; 32].into(),
            x25519: [2; 32].into(),
            mlkem: [3; 1184].into(),
            suite: CipherSuite::AES_256_GCM,
        })
    };
    let mut forged = v1(0x5c01).encoded();
    forged[5] = 0x02;
    assert!(matches!(
        HandshakeMessage::decode(&forged),
        Err(InvalidMessage::TrailingData { len: 96, .. })
    ));
    for version in [0x5c01, 0x5c03, 0x0303] {
        let m = v1(version);
        assert_eq!(HandshakeMessage::decode(&m.encoded()), Ok(m.clone()));
        assert_eq!(
            HandshakeMessage::decode_for(ProtocolVersion::V2, &m.encoded()),
            Ok(m)
        );
    }
}

#[test]
fn version_2_client_cert_request_carries_a_signature() {
    let request = ClientCertRequest {
        anonymous_allowed: true,
        streams: true,
        rekey: false,
        ca_names: vec![DistinguishedName::new(vec![0x30, 0]).expect("name")],
    };
    let msg = HandshakeMessage::ClientCertRequestV2(ClientCertRequestV2 {
        request: request.clone(),
        signature: [9; 64].into(),
    });
    let bytes = msg.encoded();
    let v1 = HandshakeMessage::ClientCertRequest(request).encoded();
    // Version 1's body, then the 64-byte signature.
    assert_eq!(bytes.len(), v1.len() + 64);
    assert_eq!(&bytes[4..v1.len()], &v1[4..]);
    assert_eq!(&bytes[v1.len()..], &[9; 64]);
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &bytes),
        Ok(msg)
    );
    // Without its signature, or with a short one: malformed.
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &v1),
        Err(InvalidMessage::Truncated { what: "signature" })
    );
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &framed(4, &bytes[4..bytes.len() - 1])),
        Err(InvalidMessage::Truncated { what: "signature" })
    );
    // Read as version 1, the signature is left over.
    assert_eq!(
        HandshakeMessage::decode(&bytes),
        Err(InvalidMessage::TrailingData {
            what: "ClientCertRequest",
            len: 64
        })
    );
    // The largest version 2 request fits its header check; version 1's
    // maximum is 64 bytes less.
    assert_eq!(
        HandshakeMessage::max_body_len_for(ProtocolVersion::V2, HandshakeType::CLIENT_CERT_REQUEST),
        HandshakeMessage::max_body_len(HandshakeType::CLIENT_CERT_REQUEST) + 64
    );
    assert_eq!(
        HandshakeMessage::max_body_len(HandshakeType::CLIENT_CERT_REQUEST),
        16_418
    );
}

#[test]
fn version_2_key_exchange1_is_an_encapsulation_key() {
    let msg = HandshakeMessage::KeyExchange1V2([5; 1184].into());
    let bytes = msg.encoded();
    assert_eq!(&bytes[..4], &[7, 0, 0x04, 0xa0]);
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &bytes),
        Ok(msg)
    );
    // A ciphertext (version 1's 1,088 bytes) where the key is due.
    let v1 = HandshakeMessage::KeyExchange1([5; 1088].into()).encoded();
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &v1),
        Err(InvalidMessage::Truncated {
            what: "ML-KEM-768 encapsulation key"
        })
    );
    // A key in a version 1 handshake is longer than step 7 may be there.
    assert_eq!(
        HandshakeMessage::decode(&bytes),
        Err(InvalidMessage::TooLong {
            what: "handshake message",
            len: 1184,
            max: 1088
        })
    );
    let mut long = bytes[4..].to_vec();
    long.push(0);
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &framed(7, &long)),
        Err(InvalidMessage::TooLong {
            what: "handshake message",
            len: 1185,
            max: 1184
        })
    );
}

#[test]
fn version_2_key_confirm1_is_a_mac() {
    let msg = HandshakeMessage::KeyConfirm1V2([6; 32].into());
    let bytes = msg.encoded();
    assert_eq!(&bytes[..4], &[9, 0, 0, 32]);
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &bytes),
        Ok(msg)
    );
    // Version 1's 64-byte signature is too long for it.
    let v1 = HandshakeMessage::KeyConfirm1([6; 64].into()).encoded();
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &v1),
        Err(InvalidMessage::TooLong {
            what: "handshake message",
            len: 64,
            max: 32
        })
    );
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &framed(9, &[6; 31])),
        Err(InvalidMessage::Truncated { what: "MAC" })
    );
    // In a version 1 handshake the MAC is a short signature.
    assert_eq!(
        HandshakeMessage::decode(&bytes),
        Err(InvalidMessage::Truncated { what: "signature" })
    );
}

#[test]
fn version_2_is_a_version_and_a_capability() {
    assert_eq!(ProtocolVersion::V2.0, 0x5c02);
    assert_eq!(ProtocolVersion::V2.to_string(), "SC/2");
    assert!(ProtocolVersion::V1 < ProtocolVersion::V2);
    assert_eq!(CipherSuite::VERSION_2.0, 0xfe04);
    assert!(CipherSuite::VERSION_2.is_capability());
    // The ClientHello keeps version 1's layout and version field; the offer
    // rides in its suites.
    let hello = HandshakeMessage::ClientHello(ClientHello {
        version: ProtocolVersion::V1,
        random: [1; 32].into(),
        x25519: [2; 32].into(),
        mlkem: [3; 1184].into(),
        suites: vec![CipherSuite::AES_256_GCM, CipherSuite::VERSION_2],
        route: None,
    });
    let bytes = hello.encoded();
    assert_eq!(&bytes[bytes.len() - 3..], &[0xfe, 0x04, 0]);
    assert_eq!(
        HandshakeMessage::decode_for(ProtocolVersion::V2, &bytes),
        Ok(hello)
    );
}
