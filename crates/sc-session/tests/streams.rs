//! Streams in one session (SPEC §14), in memory: negotiation and its
//! downgrade, opening with first bytes, half-close, resets, flow control,
//! the stream limit, and every rule a peer can break. Deterministic: a
//! fixed RNG and a virtual clock.

use std::sync::Arc;
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_session::pair::Pair;
use sc_session::streams::{Read, StreamError, SESSION_WINDOW, STREAM_WINDOW};
use sc_session::{Connection, Error, SessionConfig, Side};
use sc_wire::streams::{Frame, ResetCode, ServiceName, StreamId};
use sc_wire::{
    AlertCode, CipherSuite, Codec, HandshakeMessage, InnerType, RecordHeader, RecordKind,
};

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000))
}

/// A pair whose client offers streams (`client`) and whose server takes
/// them up (`server`), before the handshake.
fn fresh_pair(client: bool, server: bool, session: SessionConfig, seed: u8) -> Pair {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let pki = ThrowawayPki::new("server.test", "client-1", now(), &mut rng).expect("pki");
    let c = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
        .with_credential(pki.client.clone())
        .build()
        .with_streams(client);
    let s = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
        .with_credential(pki.server.clone())
        .build()
        .with_streams(server);
    let name = ServerName::try_from("server.test").expect("name");
    Pair::new(
        Arc::new(c),
        Arc::new(s),
        name,
        session,
        now(),
        Box::new(rng),
    )
    .expect("pair")
}

/// [`fresh_pair`], handshake done.
fn pair_with(client: bool, server: bool, session: SessionConfig) -> Pair {
    let mut pair = fresh_pair(client, server, session, 7);
    pair.handshake().expect("handshake");
    pair
}

fn streams_pair() -> Pair {
    pair_with(true, true, SessionConfig::default())
}

/// Seals pending frames on both sides and moves everything until quiet.
fn settle(p: &mut Pair) {
    for _ in 0..16 {
        for side in [Side::Client, Side::Server] {
            p.side(side).flush_streams().expect("flush");
        }
        let c = p.transfer(Side::Client).expect("client to server");
        let s = p.transfer(Side::Server).expect("server to client");
        if !c && !s {
            return;
        }
    }
    panic!("pair did not settle");
}

/// Reads everything `id` has now, and whether its end came.
fn read_all(conn: &mut Connection, id: StreamId) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.stream_read(id, &mut buf).expect("read") {
            Read::Data(n) => got.extend_from_slice(&buf[..n]),
            Read::End => return (got, true),
            Read::Pending => return (got, false),
        }
    }
}

/// Writes all of `data` on `id`, moving bytes as the windows need (the
/// reader must read for a write beyond a window to finish: a write that
/// stays blocked fails the test).
fn write_all(p: &mut Pair, from: Side, id: StreamId, data: &[u8]) {
    let mut off = 0;
    let mut stuck = 0;
    while off < data.len() {
        let n = p.side(from).stream_write(id, &data[off..]).expect("write");
        off += n;
        if n == 0 {
            stuck += 1;
            assert!(stuck < 4, "write blocked at {off} of {} bytes", data.len());
            settle(p);
        } else {
            stuck = 0;
        }
    }
}

#[test]
fn streams_are_on_only_when_both_sides_want_them() {
    assert!(streams_pair().client.has_streams());
    assert!(streams_pair().server.has_streams());
    for (c, s) in [(true, false), (false, true), (false, false)] {
        let mut p = pair_with(c, s, SessionConfig::default());
        assert!(
            !p.client.has_streams() && !p.server.has_streams(),
            "{c} {s}"
        );
        // Without streams, the session is the one byte stream of before.
        p.client.send_message(b"hello").expect("send");
        p.drive().expect("drive");
        assert_eq!(p.server.recv_message().as_deref(), Some(&b"hello"[..]));
        assert!(p.client.open_stream(None).is_err());
    }
}

#[test]
fn stripping_the_offer_fails_the_handshake() {
    // An attacker removes the streams capability from the ClientHello (and
    // fixes up the lengths): the server answers as to a client without
    // streams. The offer is in the transcript both sides derive the
    // handshake keys from, so the client cannot even open flight 2.
    let mut p = fresh_pair(true, true, SessionConfig::default(), 9);
    let flight1 = p.take_flight(Side::Client).expect("ClientHello");
    let msg = HandshakeMessage::decode(&flight1[4..]).expect("hello");
    let HandshakeMessage::ClientHello(mut hello) = msg else {
        panic!("not a ClientHello");
    };
    assert!(hello.suites.contains(&CipherSuite::STREAMS));
    hello.suites.retain(|s| *s != CipherSuite::STREAMS);
    let body = HandshakeMessage::ClientHello(hello).encoded();
    let mut stripped = RecordHeader {
        kind: RecordKind::HANDSHAKE,
        len: body.len(),
    }
    .encoded();
    stripped.extend_from_slice(&body);
    p.deliver(Side::Server, &stripped).expect("server takes it");
    let flight2 = p.take_flight(Side::Server).expect("flight 2");
    let e = p
        .deliver(Side::Client, &flight2)
        .expect_err("downgrade detected");
    assert_eq!(e.side, Side::Client);
    assert_eq!(e.error, Error::DecryptFailed);
    assert_eq!(e.error.alert(), Some(AlertCode::BAD_RECORD));
}

#[test]
fn a_stream_opens_with_its_first_bytes_and_half_closes_each_way() {
    let mut p = streams_pair();
    let svc = ServiceName::new("db").expect("service");
    let id = p.client.open_stream(Some(svc.clone())).expect("open");
    // The Open and the first bytes go out in one record.
    let n = p.client.stream_write(id, b"SELECT 1").expect("write");
    assert_eq!(n, 8);
    let out = p.take_flight(Side::Client).expect("one flight");
    // Record header, Open (type, id, "db"), Data (type, id, length, 8
    // bytes), trailer, tag.
    assert_eq!(
        out.len(),
        4 + (5 + 1 + 2) + (7 + 8) + 3 + 16,
        "one sealed record"
    );
    p.deliver(Side::Server, &out).expect("deliver");
    let (sid, service) = p.server.accept_stream().expect("accepted");
    assert_eq!((sid, service), (id, Some(svc)));
    assert_eq!(read_all(&mut p.server, sid), (b"SELECT 1".to_vec(), false));
    // The client finishes its side; the server still answers.
    p.client.stream_finish(id).expect("fin");
    settle(&mut p);
    assert_eq!(read_all(&mut p.server, sid), (Vec::new(), true));
    write_all(&mut p, Side::Server, sid, b"1 row");
    p.server.stream_finish(sid).expect("fin");
    settle(&mut p);
    assert_eq!(read_all(&mut p.client, id), (b"1 row".to_vec(), true));
    // Both let go: nothing is left on either side.
    p.client.stream_release(id);
    p.server.stream_release(sid);
    settle(&mut p);
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));
}

#[test]
fn a_reset_carries_its_reason_and_leaves_the_siblings_alone() {
    let mut p = streams_pair();
    let a = p.client.open_stream(None).expect("a");
    let b = p.client.open_stream(None).expect("b");
    write_all(&mut p, Side::Client, a, b"to a");
    write_all(&mut p, Side::Client, b, b"to b");
    settle(&mut p);
    let (sa, _) = p.server.accept_stream().expect("a");
    let (sb, _) = p.server.accept_stream().expect("b");
    p.server.stream_reset(
        sa,
        ResetCode::BACKEND_UNREACHABLE,
        "backend 127.0.0.1:5432 refused the connection",
    );
    settle(&mut p);
    let mut buf = [0u8; 16];
    assert_eq!(
        p.client.stream_read(a, &mut buf),
        Err(StreamError::Reset {
            code: ResetCode::BACKEND_UNREACHABLE,
            reason: "backend 127.0.0.1:5432 refused the connection".into(),
            by_peer: true,
        })
    );
    assert!(p.client.stream_write(a, b"more").is_err());
    // b goes on.
    assert_eq!(read_all(&mut p.server, sb), (b"to b".to_vec(), false));
    write_all(&mut p, Side::Server, sb, b"from b");
    settle(&mut p);
    assert_eq!(read_all(&mut p.client, b), (b"from b".to_vec(), false));
}

#[test]
fn a_stream_window_holds_the_writer_until_the_reader_reads() {
    let mut p = streams_pair();
    let id = p.client.open_stream(None).expect("open");
    let data = vec![0x5a; STREAM_WINDOW as usize + 10_000];
    let mut sent = 0;
    loop {
        let n = p.client.stream_write(id, &data[sent..]).expect("write");
        if n == 0 {
            break;
        }
        sent += n;
    }
    assert_eq!(sent, STREAM_WINDOW as usize, "exactly one window");
    settle(&mut p);
    let (sid, _) = p.server.accept_stream().expect("accept");
    // Nothing more moves until the server reads.
    assert_eq!(p.client.stream_write(id, &data[sent..]).expect("write"), 0);
    let (got, _) = read_all(&mut p.server, sid);
    assert_eq!(got.len(), STREAM_WINDOW as usize);
    settle(&mut p);
    write_all(&mut p, Side::Client, id, &data[sent..]);
    settle(&mut p);
    assert_eq!(read_all(&mut p.server, sid).0.len(), 10_000);
}

#[test]
fn the_session_window_bounds_all_streams_together_and_a_slow_reader_holds_only_its_own() {
    let mut p = streams_pair();
    // A reader that never reads holds one stream window of the session's;
    // a sibling keeps flowing.
    let slow = p.client.open_stream(None).expect("slow");
    let fast = p.client.open_stream(None).expect("fast");
    let chunk = vec![1u8; 60_000];
    let mut on_slow = 0;
    while on_slow < STREAM_WINDOW as usize {
        let n = p.client.stream_write(slow, &chunk).expect("write");
        assert!(n > 0);
        on_slow += n;
    }
    settle(&mut p);
    let (_s_slow, _) = p.server.accept_stream().expect("slow");
    // The fast stream moves three windows' worth while the slow one sits
    // on its full window: the server reads the fast one as it comes.
    let fast_data = vec![2u8; 3 * STREAM_WINDOW as usize];
    let mut sent = 0;
    let mut got = 0;
    let mut s_fast = None;
    for _ in 0..256 {
        if sent < fast_data.len() {
            sent += p
                .client
                .stream_write(fast, &fast_data[sent..])
                .expect("write");
        }
        settle(&mut p);
        if s_fast.is_none() {
            s_fast = p.server.accept_stream().map(|(id, _)| id);
        }
        if let Some(id) = s_fast {
            got += read_all(&mut p.server, id).0.len();
        }
        if got == fast_data.len() {
            break;
        }
    }
    assert_eq!(got, fast_data.len());
    // Filling the session window: 16 streams' worth blocks every stream.
    let mut total = 0usize;
    let mut ids = Vec::new();
    'outer: for _ in 0..32 {
        let id = p.client.open_stream(None).expect("open");
        ids.push(id);
        loop {
            let n = p.client.stream_write(id, &chunk).expect("write");
            if n == 0 {
                break;
            }
            total += n;
            if total > SESSION_WINDOW as usize {
                break 'outer;
            }
        }
    }
    assert!(
        total + on_slow <= SESSION_WINDOW as usize,
        "{total} + {on_slow} bytes in flight with a session window of {SESSION_WINDOW}"
    );
}

#[test]
fn the_stream_limit_refuses_one_more_with_a_reason() {
    let mut p = pair_with(
        true,
        true,
        SessionConfig {
            max_streams: 4,
            ..SessionConfig::default()
        },
    );
    // Before the server's Limit frame arrives (it tells its limit: 4 is
    // not the default) the client assumes 256 and opens five: the server
    // refuses the fifth.
    let ids: Vec<_> = (0..5)
        .map(|_| p.client.open_stream(None).expect("open"))
        .collect();
    for id in &ids {
        write_all(&mut p, Side::Client, *id, b"x");
    }
    settle(&mut p);
    let mut buf = [0u8; 4];
    assert_eq!(
        p.client.stream_read(ids[4], &mut buf),
        Err(StreamError::Reset {
            code: ResetCode::REFUSED,
            reason: "stream limit reached (4 open)".into(),
            by_peer: true,
        })
    );
    for id in &ids[..4] {
        assert_eq!(p.client.stream_read(*id, &mut buf), Ok(Read::Pending));
    }
    assert_eq!(p.server.stream_count(), 4);
    // The server's Limit has come: the client opens no more than 4, and
    // the session goes on.
    assert!(!p.client.can_open_stream());
    assert_eq!(p.client.open_stream(None), Err(StreamError::Limit(4)));
    // One closes both ways (neither side has let go of it yet): room for
    // another.
    let (first, _) = p.server.accept_stream().expect("first");
    p.server.stream_finish(first).expect("fin");
    p.client.stream_finish(ids[0]).expect("fin");
    settle(&mut p);
    assert!(p.client.can_open_stream());
    let again = p.client.open_stream(None).expect("open");
    write_all(&mut p, Side::Client, again, b"y");
    settle(&mut p);
    assert_eq!(p.client.stream_read(again, &mut buf), Ok(Read::Pending));
}

#[test]
fn ten_thousand_streams_one_after_another_leave_nothing_behind() {
    let mut p = streams_pair();
    for i in 0..10_000u32 {
        let id = p.client.open_stream(None).expect("open");
        let msg = i.to_be_bytes();
        write_all(&mut p, Side::Client, id, &msg);
        p.client.stream_finish(id).expect("fin");
        settle(&mut p);
        let (sid, _) = p.server.accept_stream().expect("accept");
        assert_eq!(read_all(&mut p.server, sid), (msg.to_vec(), true));
        write_all(&mut p, Side::Server, sid, &msg);
        p.server.stream_finish(sid).expect("fin");
        settle(&mut p);
        assert_eq!(read_all(&mut p.client, id), (msg.to_vec(), true));
        p.client.stream_release(id);
        p.server.stream_release(sid);
    }
    settle(&mut p);
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));
}

/// Plays a client that breaks a rule: `content` is sealed as a Streams
/// record as it is; the server must fail the session with `alert`.
fn server_refuses(setup: impl FnOnce(&mut Pair), content: Vec<u8>, alert: AlertCode) {
    let mut p = streams_pair();
    setup(&mut p);
    settle(&mut p);
    p.client
        .seal_streams_record_for_testing_only(&content)
        .expect("seal");
    let e = p.transfer(Side::Client).expect_err("refused");
    assert_eq!(e.side, Side::Server);
    assert_eq!(e.error.alert(), Some(alert), "{}", e.error);
    // The alert reaches the client.
    let back = p.take_flight(Side::Server).expect("alert");
    let e = p.deliver(Side::Client, &back).expect_err("alert");
    assert_eq!(e.error, Error::PeerAlert(alert));
}

fn frame(f: Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    f.encode(&mut out);
    out
}

#[test]
fn every_rule_a_peer_can_break_ends_the_session_with_a_named_alert() {
    let data = |id, data| Frame::Data {
        id: StreamId(id),
        data,
    };
    // Data, Fin, Window for a stream never opened.
    server_refuses(|_| {}, frame(data(1, b"x")), AlertCode::STREAM_STATE);
    server_refuses(
        |_| {},
        frame(Frame::Fin { id: StreamId(3) }),
        AlertCode::STREAM_STATE,
    );
    server_refuses(
        |_| {},
        frame(Frame::Window {
            id: StreamId(2),
            increment: 1,
        }),
        AlertCode::STREAM_STATE,
    );
    // An Open with the server's parity, and an id opened before.
    server_refuses(
        |_| {},
        frame(Frame::Open {
            id: StreamId(2),
            service: None,
        }),
        AlertCode::STREAM_STATE,
    );
    let opened = |p: &mut Pair| {
        let id = p.client.open_stream(None).expect("open");
        p.client.stream_write(id, b"x").expect("write");
    };
    server_refuses(
        opened,
        frame(Frame::Open {
            id: StreamId(1),
            service: None,
        }),
        AlertCode::STREAM_STATE,
    );
    // Data after the stream's end.
    let finished = |p: &mut Pair| {
        let id = p.client.open_stream(None).expect("open");
        p.client.stream_finish(id).expect("fin");
    };
    server_refuses(finished, frame(data(1, b"late")), AlertCode::STREAM_STATE);
    // A window overrun: more than a stream window of data, one record per
    // Data frame, without waiting for a grant.
    let big = vec![0u8; 60_000];
    let mut p = streams_pair();
    p.client
        .seal_streams_record_for_testing_only(&frame(Frame::Open {
            id: StreamId(1),
            service: None,
        }))
        .expect("seal");
    let mut failed = None;
    let records = STREAM_WINDOW as usize / big.len() + 2;
    for _ in 0..records {
        p.client
            .seal_streams_record_for_testing_only(&frame(data(1, &big)))
            .expect("seal");
        if let Err(e) = p.transfer(Side::Client) {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("more than a stream window of data: refused");
    assert_eq!(
        e.error.alert(),
        Some(AlertCode::FLOW_CONTROL),
        "{}",
        e.error
    );
    // A frame that does not decode.
    server_refuses(|_| {}, vec![0x09, 0, 0, 0, 1], AlertCode::MALFORMED);
    server_refuses(|_| {}, Vec::new(), AlertCode::MALFORMED);
}

#[test]
fn data_records_in_a_session_of_streams_and_streams_records_without_are_refused() {
    let mut p = streams_pair();
    p.client
        .seal_record_for_testing_only(InnerType::DATA, b"old style")
        .expect("seal");
    let e = p.transfer(Side::Client).expect_err("refused");
    assert_eq!(
        e.error.alert(),
        Some(AlertCode::UNEXPECTED_MESSAGE),
        "{}",
        e.error
    );

    let mut p = pair_with(true, false, SessionConfig::default());
    p.client
        .seal_record_for_testing_only(InnerType::STREAMS, &frame(Frame::Fin { id: StreamId(1) }))
        .expect("seal");
    let e = p.transfer(Side::Client).expect_err("refused");
    assert_eq!(
        e.error.alert(),
        Some(AlertCode::UNEXPECTED_MESSAGE),
        "{}",
        e.error
    );
}

#[test]
fn frames_for_a_stream_that_is_over_are_dropped_and_credited() {
    let mut p = streams_pair();
    let id = p.client.open_stream(None).expect("open");
    write_all(&mut p, Side::Client, id, b"start");
    settle(&mut p);
    let (sid, _) = p.server.accept_stream().expect("accept");
    // The server resets and lets go while the client still sends.
    p.server.stream_reset(sid, ResetCode::CANCELLED, "");
    p.server.stream_release(sid);
    write_all(&mut p, Side::Client, id, &[7u8; 50_000]);
    // The late data is dropped (and given back to the session window), no
    // error, and the session goes on.
    settle(&mut p);
    assert_eq!(p.server.stream_count(), 0);
    assert!(p.server.error().is_none() && p.client.error().is_none());
    let next = p.client.open_stream(None).expect("open");
    write_all(&mut p, Side::Client, next, b"next");
    settle(&mut p);
    let (snext, _) = p.server.accept_stream().expect("accept");
    assert_eq!(read_all(&mut p.server, snext), (b"next".to_vec(), false));
}
