//! Plaintext read straight into the record it is sealed in, and written
//! straight from where it was opened (the tunnel's data path, issue 17):
//! the records are byte for byte those of the copying calls, a fill that
//! brings nothing seals nothing, one that brings too much fails without a
//! byte of its plaintext left, and over tokio the bytes arrive whole both
//! ways with each failure blamed on its side.

use std::future::{poll_fn, Future};
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rand_chacha::rand_core::{OsRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_session::pair::Pair;
use sc_session::streams::Read;
use sc_session::{
    Acceptor, Connector, CopyError, Error, MuxSession, Padding, SecureStream, SessionConfig, Side,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(60);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(WAIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: no result within {WAIT:?}"),
    }
}

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000))
}

fn random(len: usize, seed: u8) -> Vec<u8> {
    let mut data = vec![0u8; len];
    ChaCha20Rng::from_seed([seed; 32]).fill_bytes(&mut data);
    data
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A client's and a server's configuration under a throwaway PKI.
fn configs(
    now: UnixTime,
    rng: &mut dyn rand_chacha::rand_core::CryptoRngCore,
    streams: bool,
) -> (ClientConfig, ServerConfig) {
    let pki = ThrowawayPki::new("server.test", "client-1", now, rng).expect("pki");
    let c = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
        .with_credential(pki.client.clone())
        .build()
        .with_streams(streams);
    let s = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
        .with_credential(pki.server.clone())
        .build()
        .with_streams(streams);
    (c, s)
}

/// A handshaken pair; the same `seed` gives the same keys, so two pairs
/// seal the same bytes the same way.
fn pair(streams: bool, session: SessionConfig, seed: u8) -> Pair {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let (c, s) = configs(now(), &mut rng, streams);
    let name = ServerName::try_from("server.test").expect("name");
    let mut p = Pair::new(
        Arc::new(c),
        Arc::new(s),
        name,
        session,
        now(),
        Box::new(rng),
    )
    .expect("pair");
    p.handshake().expect("handshake");
    p
}

fn sessions() -> [SessionConfig; 2] {
    [
        SessionConfig::default(),
        SessionConfig {
            padding: Padding::Block(256),
            ..SessionConfig::default()
        },
    ]
}

/// Appends up to `max` bytes of `data` (as a read from a socket would).
fn fill_from(data: &[u8]) -> impl FnOnce(&mut Vec<u8>, usize) -> usize + '_ {
    move |out, max| {
        let n = data.len().min(max);
        out.extend_from_slice(&data[..n]);
        n
    }
}

#[test]
fn a_record_filled_in_place_is_the_record_write_stream_seals() {
    for session in sessions() {
        let data = random(100_000, 1);
        let mut copied = pair(false, session.clone(), 3);
        let mut direct = pair(false, session, 3);
        let mut off = 0;
        let mut sizes = Vec::new();
        while off < data.len() {
            let (n, told) = direct
                .client
                .write_stream_from(fill_from(&data[off..]))
                .expect("fill");
            assert_eq!(n, told);
            let copy = copied
                .client
                .write_stream(&data[off..off + n])
                .expect("copy");
            assert_eq!(copy, n);
            sizes.push(n);
            off += n;
        }
        // A first fill gets a little room; one that filled it, a record.
        assert_eq!(sizes, [16 * 1024, 65_536, 18_080]);
        let wire = direct.client.take_outgoing();
        assert_eq!(wire, copied.client.take_outgoing());
        assert!(wire.len() > data.len());
        assert_eq!(direct.client.stats().stream_bytes_sent, data.len() as u64);
        direct
            .server
            .receive(&wire, now(), &mut OsRng)
            .expect("open");
        let mut got = Vec::new();
        while let Some(m) = direct.server.recv_message() {
            got.extend_from_slice(&m);
        }
        assert_eq!(sha(&got), sha(&data));
    }
}

#[test]
fn a_data_frame_filled_in_place_is_the_frame_stream_write_seals() {
    for session in sessions() {
        let data = random(150_000, 2);
        let mut copied = pair(true, session.clone(), 4);
        let mut direct = pair(true, session, 4);
        let a = copied.client.open_stream(None).expect("open");
        let b = direct.client.open_stream(None).expect("open");
        assert_eq!(a, b);
        let mut off = 0;
        // The first record carries the stream's Open in front of the data.
        while off < 100_000 {
            let (n, told) = direct
                .client
                .stream_write_from(b, fill_from(&data[off..]))
                .expect("fill")
                .expect("window open");
            assert_eq!(n, told);
            let copy = copied
                .client
                .stream_write(a, &data[off..off + n])
                .expect("copy");
            assert_eq!(copy, n);
            off += n;
        }
        let wire = direct.client.take_outgoing();
        assert_eq!(wire, copied.client.take_outgoing());
        direct
            .server
            .receive(&wire, now(), &mut OsRng)
            .expect("open");
        let (id, _) = direct.server.accept_stream().expect("the stream came");
        let mut got = vec![0u8; off];
        let mut at = 0;
        while let Ok(Read::Data(n)) = direct.server.stream_read(id, &mut got[at..]) {
            if n == 0 {
                break;
            }
            at += n;
        }
        assert_eq!(at, off);
        assert_eq!(got, data[..off]);
    }
}

#[test]
fn a_fill_that_brings_nothing_seals_nothing_but_the_frames_owed() {
    let mut p = pair(false, SessionConfig::default(), 5);
    let before = p.client.stats();
    let (n, ()) = p.client.write_stream_from(|_, _| ()).expect("fill");
    assert_eq!(n, 0);
    assert_eq!(p.client.outgoing_len(), 0);
    assert_eq!(p.client.stats(), before);

    let mut p = pair(true, SessionConfig::default(), 5);
    let id = p.client.open_stream(None).expect("open");
    // The Open is owed: it goes out alone, with no Data frame.
    let (n, ()) = p
        .client
        .stream_write_from(id, |_, _| ())
        .expect("fill")
        .expect("window open");
    assert_eq!(n, 0);
    assert!(p.client.outgoing_len() > 0);
    p.transfer(Side::Client).expect("moved");
    let (got, _) = p.server.accept_stream().expect("opened");
    assert_eq!(got, id);
    assert!(matches!(
        p.server.stream_read(id, &mut [0; 16]),
        Ok(Read::Pending)
    ));
    // Nothing owed now: nothing at all.
    let (n, ()) = p
        .client
        .stream_write_from(id, |_, _| ())
        .expect("fill")
        .expect("window open");
    assert_eq!(n, 0);
    assert_eq!(p.client.outgoing_len(), 0);
}

#[test]
fn a_fill_over_its_limit_fails_the_session_and_leaves_none_of_its_bytes() {
    let marker = [0xa5; 64];
    let over = |out: &mut Vec<u8>, max: usize| {
        for _ in 0..=max / marker.len() {
            out.extend_from_slice(&marker);
        }
    };
    let mut p = pair(false, SessionConfig::default(), 6);
    let e = p
        .client
        .write_stream_from(over)
        .expect_err("over its limit");
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert!(p.client.error().is_some());
    let out = p.client.take_outgoing();
    assert!(!out.windows(marker.len()).any(|w| w == marker));

    let mut p = pair(true, SessionConfig::default(), 6);
    let id = p.client.open_stream(None).expect("open");
    let e = p
        .client
        .stream_write_from(id, over)
        .expect_err("over its limit");
    assert!(p.client.error().is_some(), "{e:?}");
    let out = p.client.take_outgoing();
    assert!(!out.windows(marker.len()).any(|w| w == marker));
}

#[test]
fn a_shut_window_does_not_call_the_fill() {
    let mut p = pair(true, SessionConfig::default(), 8);
    let id = p.client.open_stream(None).expect("open");
    let data = random(64 * 1024, 9);
    let mut sent = 0;
    for _ in 0..10_000 {
        match p
            .client
            .stream_write_from(id, fill_from(&data))
            .expect("fill")
        {
            Some((n, _)) => sent += n,
            None => break,
        }
        p.client.take_outgoing();
    }
    assert!(sent > 0);
    let mut called = false;
    let r = p
        .client
        .stream_write_from(id, |_, _| called = true)
        .expect("no error");
    assert!(r.is_none() && !called);
}

/// A TCP pair of single-stream sessions.
async fn tcp_sessions(streams: bool) -> (SecureStream<TcpStream>, SecureStream<TcpStream>) {
    let (client, server) = configs(UnixTime::now(), &mut OsRng, streams);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = Acceptor::new(Arc::new(server));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        acceptor.accept(tcp).await.expect("server handshake")
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("server.test")
        .expect("name")
        .to_owned();
    let client = Connector::new(Arc::new(client))
        .connect(name, None, tcp)
        .await
        .expect("client handshake");
    (client, server.await.expect("server task"))
}

/// Calls `step` (one direct move) until it moves nothing; the bytes moved.
async fn move_all(
    mut step: impl FnMut(&mut Context<'_>) -> Poll<Result<usize, CopyError>>,
) -> usize {
    let mut moved = 0;
    loop {
        match poll_fn(&mut step).await.expect("a direct move") {
            0 => return moved,
            n => moved += n,
        }
    }
}

/// 8 MiB from an application into `entry` (a tunnel entry's write half)
/// and out of `exit` (the exit's read half, once `exit` gives it) to the
/// application at the far end, each through a plaintext duplex.
async fn through<W, R, E>(
    mut entry: W,
    exit: E,
    write_from: fn(&mut W, &mut Context<'_>, &mut DuplexStream) -> Poll<Result<usize, CopyError>>,
    read_into: fn(&mut R, &mut Context<'_>, &mut DuplexStream) -> Poll<Result<usize, CopyError>>,
    seed: u8,
) -> R
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: Send + 'static,
    E: Future<Output = R> + Send + 'static,
{
    let data = Arc::new(random(8 << 20, seed));
    let (mut app_in, mut entry_plain) = tokio::io::duplex(100_000);
    let (mut exit_plain, mut app_out) = tokio::io::duplex(100_000);
    let feeder = {
        let data = data.clone();
        tokio::spawn(async move {
            app_in.write_all(&data).await.expect("feed");
            app_in.shutdown().await.expect("shut");
        })
    };
    let entry = tokio::spawn(async move {
        let sent = move_all(|cx| write_from(&mut entry, cx, &mut entry_plain)).await;
        entry.shutdown().await.expect("the close");
        sent
    });
    let exit = tokio::spawn(async move {
        let mut read = exit.await;
        let moved = move_all(|cx| read_into(&mut read, cx, &mut exit_plain)).await;
        exit_plain.shutdown().await.expect("shut");
        (moved, read)
    });
    let mut got = Vec::new();
    let read = within("delivery", async {
        app_out.read_to_end(&mut got).await.expect("read");
        feeder.await.expect("feeder");
        assert_eq!(entry.await.expect("entry"), data.len());
        let (moved, read) = exit.await.expect("exit");
        assert_eq!(moved, data.len());
        read
    })
    .await;
    assert_eq!(sha(&got), sha(&data));
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_stream_moves_plaintext_straight_both_ways() {
    let (client, server) = within("handshake", tcp_sessions(false)).await;
    let (_, cw) = client.into_split();
    let (sr, _sw) = server.into_split();
    let mut sr = through(
        cw,
        async move { sr },
        |w, cx, from| w.poll_write_from(cx, from),
        |r, cx, to| r.poll_read_into(cx, to),
        10,
    )
    .await;
    // Read to the end: another call says the end again.
    let mut sink = tokio::io::sink();
    let again = poll_fn(|cx| sr.poll_read_into(cx, &mut sink)).await;
    assert_eq!(again.expect("the end again"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_a_session_moves_plaintext_straight_both_ways() {
    let (client, server) = within("handshake", tcp_sessions(true)).await;
    let client = MuxSession::new(client).expect("streams");
    let server = MuxSession::new(server).expect("streams");
    let stream = client.open_stream(None).expect("open");
    // Both halves kept: a stream whose halves are both gone is reset.
    let (_cr, cw) = stream.into_split();
    let exit = async move {
        let (stream, _) = server.accept_stream().await.expect("accept");
        (stream.into_split().0, server)
    };
    through(
        cw,
        exit,
        |w, cx, from| w.poll_write_from(cx, from),
        |(r, _), cx, to| r.poll_read_into(cx, to),
        11,
    )
    .await;
    drop(client);
}

#[tokio::test]
async fn a_failure_is_blamed_on_its_side() {
    let (client, server) = within("handshake", tcp_sessions(false)).await;
    let (_, mut cw) = client.into_split();
    let (mut sr, _sw) = server.into_split();
    cw.write_all(b"for a closed socket").await.expect("write");
    // The exit's plaintext socket is gone: its write fails, not the session.
    let (exit_plain, gone) = tokio::io::duplex(64);
    drop(gone);
    let mut exit_plain = exit_plain;
    let e = within("exit", poll_fn(|cx| sr.poll_read_into(cx, &mut exit_plain)))
        .await
        .expect_err("the plaintext side is gone");
    assert!(matches!(e, CopyError::Plain(_)), "{e:?}");
    assert!(sr.error().is_none());

    // The plaintext side fails under the entry: it is blamed.
    let e = within("entry", poll_fn(|cx| cw.poll_write_from(cx, &mut Failing)))
        .await
        .expect_err("the plaintext side failed");
    assert!(matches!(e, CopyError::Plain(_)), "{e:?}");

    // The session is cut under the entry: the session is blamed.
    drop(sr);
    drop(_sw);
    let mut blamed = None;
    for _ in 0..100 {
        let moved = within(
            "entry",
            poll_fn(|cx| match cw.poll_write_from(cx, &mut &b"more bytes"[..]) {
                Poll::Pending => Poll::Ready(Ok(0)),
                r => r,
            }),
        )
        .await;
        match moved {
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => {
                blamed = Some(e);
                break;
            }
        }
    }
    assert!(matches!(blamed, Some(CopyError::Secure(_))), "{blamed:?}");
}

/// A plaintext socket whose read fails.
struct Failing;

impl tokio::io::AsyncRead for Failing {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
    }
}
