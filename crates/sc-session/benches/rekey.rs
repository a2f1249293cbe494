//! What re-keying (SPEC §15) costs the data path, against the same session
//! without it, in one run.
//!
//! * bulk: 16 MiB one way in 64 KiB records between two sans-I/O
//!   `Connection`s (sealing and opening both counted, one core): `plain`
//!   (no re-keying), `default` (re-keying agreed, the default policy: every
//!   120 s, which a run of seconds never reaches, or 1 GiB, which it does)
//!   and `each 16 MiB` (one full re-key per 16 MiB, about 60 times as often
//!   as the 1 GiB default). The three run interleaved, round after round, so
//!   a change in the machine's load hits all three alike; the table gives
//!   medians and each as a ratio of `plain`, and from `each 16 MiB` the cost
//!   of one re-key, projected onto one re-key per 120 s of bulk.
//! * ping-pong: 64-byte messages over loopback TCP (`SecureStream`), 20,000
//!   round trips without re-keying and with a re-key every 50 ms, in the
//!   same run: p50, p99 and worst round trip, and the worst round trip that
//!   carried a re-key message beside the 64 bytes.
//!
//! `cargo bench -p sc-session --bench rekey`

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::{throwaway::ThrowawayPki, ServerName, UnixTime};
use sc_session::pair::Pair;
use sc_session::{Acceptor, Connector, RekeyPolicy, SessionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BULK: usize = 16 << 20;
const RECORD: usize = 64 * 1024;
const PINGS: usize = 20_000;
const ROUNDS: usize = 25;

fn configs(pki: &ThrowawayPki, rekey: bool) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier().expect("CA parses")))
        .with_credential(pki.client.clone())
        .build()
        .with_rekey(rekey);
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("CA parses")))
        .with_credential(pki.server.clone())
        .build()
        .with_rekey(rekey);
    (Arc::new(client), Arc::new(server))
}

/// An established in-memory pair.
fn pair(pki: &ThrowawayPki, rekey: bool, now: UnixTime) -> Pair {
    let (client, server) = configs(pki, rekey);
    let name = ServerName::try_from("server.test")
        .expect("valid DNS name")
        .to_owned();
    let mut p = Pair::new(
        client,
        server,
        name,
        SessionConfig::default(),
        now,
        Box::new(ChaCha20Rng::from_seed([7; 32])),
    )
    .expect("pair");
    p.handshake().expect("handshake");
    p
}

/// 16 MiB from client to server; with `rekey_first`, one re-key (started
/// by the client) rides along. Drives the re-key clock at `at`.
fn bulk(p: &mut Pair, data: &[u8], at: Instant, rekey_first: bool) {
    let Pair {
        client,
        server,
        rng,
        now,
        ..
    } = p;
    if rekey_first {
        client.request_rekey().expect("re-keys");
    }
    let mut sent = 0;
    while sent < BULK {
        if client.has_rekey() {
            client.poll_rekey(at, &mut **rng).expect("poll");
        }
        sent += client.write_stream(&data[..RECORD]).expect("write");
        let bytes = client.take_outgoing();
        server.receive(&bytes, *now, &mut **rng).expect("receive");
        while server.recv_message().is_some() {}
        if server.has_outgoing() {
            let back = server.take_outgoing();
            client.receive(&back, *now, &mut **rng).expect("reply");
        }
    }
    if client.has_rekey() {
        client.poll_rekey(at, &mut **rng).expect("poll");
    }
    let rest = client.take_outgoing();
    server.receive(&rest, *now, &mut **rng).expect("receive");
    while server.recv_message().is_some() {}
    assert!(
        !client.rekey_in_progress(),
        "each re-key completes within its 16 MiB"
    );
}

/// Median of `ROUNDS` interleaved rounds of each configuration, and the
/// re-keys each did.
fn bench_bulk(pki: &ThrowawayPki) -> [(Duration, u64); 3] {
    let now = UnixTime::now();
    let data = vec![0x5au8; RECORD];
    let at = Instant::now();
    let mut pairs = [
        pair(pki, false, now),
        pair(pki, true, now),
        pair(pki, true, now),
    ];
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..ROUNDS + 2 {
        for k in 0..3 {
            // Rotate the order, so none always runs first.
            let i = (k + round) % 3;
            let t = Instant::now();
            bulk(&mut pairs[i], &data, at, i == 2);
            // The first two rounds warm up.
            if round >= 2 {
                times[i].push(t.elapsed());
            }
        }
    }
    let mut out = [(Duration::ZERO, 0); 3];
    for i in 0..3 {
        times[i].sort();
        out[i] = (
            times[i][times[i].len() / 2],
            pairs[i].client.rekeys_completed(),
        );
    }
    out
}

/// Round trips of 64 bytes over loopback TCP; `rekey_every` sets the
/// re-key interval. Returns every round trip and, for each, whether a
/// re-key finished during it.
async fn ping_pong(
    pki: &ThrowawayPki,
    rekey_every: Option<Duration>,
) -> (Vec<Duration>, Vec<Duration>, u64) {
    let (client, server) = configs(pki, rekey_every.is_some());
    let session = SessionConfig {
        rekey: RekeyPolicy {
            interval: rekey_every,
            ..RekeyPolicy::default()
        },
        ..SessionConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = Acceptor::new(server).with_session_config(session.clone());
    let echo = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        let mut s = acceptor.accept(tcp).await.expect("server handshake");
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).await.is_ok() {
            if s.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("server.test")
        .expect("name")
        .to_owned();
    let mut c = Connector::new(client)
        .with_session_config(session)
        .connect(name, None, tcp)
        .await
        .expect("client handshake");
    let mut all = Vec::with_capacity(PINGS);
    let mut with_rekey = Vec::new();
    let mut buf = [0u8; 64];
    for i in 0..PINGS + 1000 {
        let before = c.connection().rekeys_completed();
        let t = Instant::now();
        c.write_all(&[1u8; 64]).await.expect("ping");
        c.read_exact(&mut buf).await.expect("pong");
        let rtt = t.elapsed();
        if i >= 1000 {
            all.push(rtt);
            if c.connection().rekeys_completed() != before {
                with_rekey.push(rtt);
            }
        }
    }
    let rekeys = c.connection().rekeys_completed();
    drop(c);
    let _ = echo.await;
    all.sort();
    with_rekey.sort();
    (all, with_rekey, rekeys)
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches` runs this once without `--bench`: nothing
        // to measure then.
        return;
    }
    let pki = ThrowawayPki::new(
        "server.test",
        "client-1",
        UnixTime::now(),
        &mut ChaCha20Rng::from_seed([1; 32]),
    )
    .expect("PKI");

    let bulk = bench_bulk(&pki);
    println!(
        "Bulk, 16 MiB one way per round, sans-I/O, one core; {ROUNDS} interleaved rounds, medians:"
    );
    println!(
        "{:<14} {:>9} {:>8} {:>8} {:>8}",
        "", "ms/round", "MB/s", "/ plain", "re-keys"
    );
    let plain = bulk[0].0.as_secs_f64();
    for (name, (t, rekeys)) in ["plain", "default", "each 16 MiB"].iter().zip(bulk) {
        let secs = t.as_secs_f64();
        println!(
            "{name:<14} {:>9.2} {:>8.0} {:>8.3} {rekeys:>8}",
            secs * 1e3,
            BULK as f64 / secs / 1e6,
            secs / plain
        );
    }
    let per_rekey = (bulk[2].0.as_secs_f64() - plain).max(0.0);
    println!(
        "one re-key: {:.0} µs of bulk time (both sides); one every 120 s of bulk: {:.5} % \
         (ratio {:.6})",
        per_rekey * 1e6,
        per_rekey / 120.0 * 100.0,
        1.0 + per_rekey / 120.0
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (plain, _, _) = runtime.block_on(ping_pong(&pki, None));
    let (rk, rk_rtts, rekeys) = runtime.block_on(ping_pong(&pki, Some(Duration::from_millis(50))));
    println!();
    println!("64-byte ping-pong over loopback TCP, {PINGS} round trips each, this run:");
    println!("{:<22} {:>8} {:>8} {:>8}", "µs", "p50", "p99", "max");
    for (name, s) in [("no re-keying", &plain), ("re-key every 50 ms", &rk)] {
        println!(
            "{name:<22} {:>8.1} {:>8.1} {:>8.1}",
            us(pct(s, 50)),
            us(pct(s, 99)),
            us(pct(s, 100))
        );
    }
    println!(
        "{} re-keys; the round trips they finished in: p50 {:.1} µs, max {:.1} µs = {:.1} × the plain p50 round trip",
        rekeys,
        us(pct(&rk_rtts, 50)),
        us(pct(&rk_rtts, 100)),
        us(pct(&rk_rtts, 100)) / us(pct(&plain, 50)).max(f64::MIN_POSITIVE)
    );
}
