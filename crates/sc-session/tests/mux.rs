//! Sessions of streams over tokio (`MuxSession`, `SessionStream`): many
//! streams at once both ways, half-close, resets, a slow reader, the
//! session lost under its streams, over loopback TCP. Every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use rand_chacha::rand_core::{OsRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_session::mux::stream_error;
use sc_session::streams::StreamError;
use sc_session::{Acceptor, Connector, MuxSession, RekeyPolicy, SessionConfig};
use sc_wire::streams::{ResetCode, ServiceName};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(120);

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(WAIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: no result within {WAIT:?}"),
    }
}

/// A client and a server session of streams over loopback TCP.
async fn sessions() -> (MuxSession, MuxSession) {
    sessions_with(None).await
}

/// As [`sessions`], re-keying with `policy` when given.
async fn sessions_with(policy: Option<RekeyPolicy>) -> (MuxSession, MuxSession) {
    let session = SessionConfig {
        rekey: policy.unwrap_or_default(),
        ..SessionConfig::default()
    };
    let pki =
        ThrowawayPki::new("server.test", "client-1", UnixTime::now(), &mut OsRng).expect("pki");
    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
        .with_credential(pki.client.clone())
        .build()
        .with_streams(true)
        .with_rekey(policy.is_some());
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
        .with_credential(pki.server.clone())
        .build()
        .with_streams(true)
        .with_rekey(policy.is_some());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = Acceptor::new(Arc::new(server)).with_session_config(session.clone());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        acceptor.accept(tcp).await.expect("server handshake")
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("server.test")
        .expect("name")
        .to_owned();
    let client = Connector::new(Arc::new(client))
        .with_session_config(session)
        .connect(name, None, tcp)
        .await
        .expect("client handshake");
    let server = server.await.expect("server task");
    let c = MuxSession::new(client).expect("client has streams");
    let s = MuxSession::new(server).expect("server has streams");
    (c, s)
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    let mut data = vec![0u8; len];
    ChaCha20Rng::from_seed(s).fill_bytes(&mut data);
    data
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_streams_each_carry_4_mib_both_ways_intact() {
    const STREAMS: usize = 200;
    const LEN: usize = 4 * 1024 * 1024;
    let (client, server) = sessions().await;
    // The server echoes what each stream sends back, with its own data after.
    let echo = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..STREAMS {
            let (stream, service) = server.accept_stream().await.expect("accept");
            tasks.push(tokio::spawn(async move {
                let seed: u64 = service
                    .expect("service")
                    .as_str()
                    .trim_start_matches("s")
                    .parse()
                    .expect("seed");
                let (mut r, mut w) = stream.into_split();
                let theirs = tokio::spawn(async move {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).await.expect("server reads");
                    got
                });
                let ours = random(LEN, seed + 1000);
                w.write_all(&ours).await.expect("server writes");
                w.shutdown().await.expect("fin");
                let got = theirs.await.expect("reader");
                (seed, sha(&got))
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("stream task"));
        }
        out
    });
    let mut tasks = Vec::new();
    for i in 0..STREAMS as u64 {
        let stream = client
            .open_stream(Some(ServiceName::new(&format!("s{i}")).expect("name")))
            .expect("open");
        tasks.push(tokio::spawn(async move {
            let (mut r, mut w) = stream.into_split();
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.expect("client reads");
                got
            });
            let ours = random(LEN, i);
            w.write_all(&ours).await.expect("client writes");
            w.shutdown().await.expect("fin");
            let got = reader.await.expect("reader");
            assert_eq!(got.len(), LEN);
            assert_eq!(sha(&got), sha(&random(LEN, i + 1000)), "stream {i} back");
        }));
    }
    within("client streams", async {
        for t in tasks {
            t.await.expect("client stream");
        }
    })
    .await;
    let seen = within("server streams", echo).await.expect("server");
    assert_eq!(seen.len(), STREAMS);
    for (seed, digest) in seen {
        assert_eq!(digest, sha(&random(LEN, seed)), "stream {seed} there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_stall_its_siblings_and_a_reset_leaves_them_alone() {
    let (client, server) = sessions().await;
    // Stream 1: the server never reads it; the client writes until blocked.
    let mut slow = client.open_stream(None).expect("slow");
    let (_slow_there, _) = within("accept", server.accept_stream())
        .await
        .expect("accept slow");
    let filler = vec![7u8; 64 * 1024];
    let blocked = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            slow.write_all(&filler).await.expect("write");
        }
    })
    .await;
    assert!(
        blocked.is_err(),
        "a stream that is not read blocks its writer"
    );
    // Stream 2 flows meanwhile.
    let mut fast = client.open_stream(None).expect("fast");
    fast.write_all(b"ping").await.expect("write");
    let (mut fast_there, _) = within("accept", server.accept_stream())
        .await
        .expect("accept fast");
    let mut buf = [0u8; 4];
    within("read", fast_there.read_exact(&mut buf))
        .await
        .expect("read");
    assert_eq!(&buf, b"ping");
    // Stream 3 is reset by the server with a reason; 2 goes on.
    let mut doomed = client.open_stream(None).expect("doomed");
    doomed.write_all(b"x").await.expect("write");
    let (doomed_there, _) = within("accept", server.accept_stream())
        .await
        .expect("accept doomed");
    doomed_there.reset(ResetCode::UNKNOWN_SERVICE, "unknown service NAME");
    let mut rest = Vec::new();
    let e = within("reset seen", doomed.read_to_end(&mut rest))
        .await
        .expect_err("reset");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(
        stream_error(&e),
        Some(&StreamError::Reset {
            code: ResetCode::UNKNOWN_SERVICE,
            reason: "unknown service NAME".into(),
            by_peer: true
        })
    );
    fast_there.write_all(b"pong").await.expect("write");
    within("read", fast.read_exact(&mut buf))
        .await
        .expect("read");
    assert_eq!(&buf, b"pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_per_stream_and_the_session_lost_under_its_streams() {
    let (client, server) = sessions().await;
    let mut a = client.open_stream(None).expect("a");
    a.write_all(b"request").await.expect("write");
    a.shutdown().await.expect("fin");
    let (mut a_there, _) = within("accept", server.accept_stream())
        .await
        .expect("accept");
    let mut got = Vec::new();
    within("read to end", a_there.read_to_end(&mut got))
        .await
        .expect("read");
    assert_eq!(got, b"request");
    // After the client's end, the server still answers on the same stream.
    a_there.write_all(b"answer").await.expect("write");
    a_there.shutdown().await.expect("fin");
    let mut back = Vec::new();
    within("read to end", a.read_to_end(&mut back))
        .await
        .expect("read");
    assert_eq!(back, b"answer");

    // A second stream is open when the server's side of the session goes
    // away (aborted): the client's stream fails, it does not end cleanly.
    let mut b = client.open_stream(None).expect("b");
    b.write_all(b"x").await.expect("write");
    let _b_there = within("accept", server.accept_stream())
        .await
        .expect("accept");
    server.abort(sc_wire::AlertCode::GOING_AWAY);
    let mut rest = Vec::new();
    let e = within("cut seen", b.read_to_end(&mut rest))
        .await
        .expect_err("cut, not a clean end");
    assert!(
        matches!(stream_error(&e), Some(StreamError::Session(_))),
        "{e}"
    );
    let why = within("closed", client.closed()).await;
    assert_eq!(
        why,
        sc_session::Error::PeerAlert(sc_wire::AlertCode::GOING_AWAY)
    );
    assert!(client.open_stream(None).is_err());
}

/// Re-keying in a session of streams (SPEC §15): the driver's timer re-keys
/// an idle session, the API re-keys on demand, streams carry data across.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_of_streams_re_keys_on_its_timer_and_on_demand() {
    let policy = RekeyPolicy {
        interval: Some(Duration::from_millis(200)),
        ..RekeyPolicy::default()
    };
    let (client, server) = sessions_with(Some(policy)).await;
    assert_eq!(client.rekey_epoch(), Some(0));
    // Idle: nothing is written, yet the timers run.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (c, s) = (client.rekeys_completed(), server.rekeys_completed());
    assert!(c >= 2 && s >= 2, "idle re-keys: client {c}, server {s}");

    // On demand, with a stream open across it.
    let echo = tokio::spawn(async move {
        let (stream, _) = server.accept_stream().await.expect("accept");
        let (mut r, mut w) = stream.into_split();
        tokio::io::copy(&mut r, &mut w).await.expect("echo");
        w.shutdown().await.expect("fin");
        server
    });
    let stream = client.open_stream(None).expect("open");
    let (mut r, mut w) = stream.into_split();
    let data = random(1 << 20, 9);
    let before = client.rekeys_completed();
    let writer = {
        let data = data.clone();
        tokio::spawn(async move {
            for (i, chunk) in data.chunks(64 * 1024).enumerate() {
                w.write_all(chunk).await.expect("write");
                if i == 4 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            w.shutdown().await.expect("fin");
        })
    };
    client.rekey().expect("re-key on demand");
    let mut got = Vec::new();
    within("echo across a re-key", r.read_to_end(&mut got))
        .await
        .expect("read");
    writer.await.expect("writer");
    assert_eq!(sha(&got), sha(&data));
    let server = echo.await.expect("echo task");
    within("the re-key on demand", async {
        while client.rekeys_completed() <= before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Both ends reach the same epochs (between a Reply and its Switch the
    // responder is one ahead for half a round trip).
    within("the same epoch", async {
        while client.rekey_epoch() != server.rekey_epoch() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(client.ended().is_none() && server.ended().is_none());

    // A session without re-keying says so.
    let (plain, _other) = sessions().await;
    assert!(plain.rekey().is_err());
    assert_eq!(plain.rekey_epoch(), None);
}
