//! The tokio layer over loopback TCP, in one process: one-way bulk throughput
//! for both suites beside plain TCP, 64-byte ping-pong latency beside plain
//! TCP, and the memory an idle session holds. A first indication, printed as
//! a table; the tunnel benchmarks against stunnel, spiped and ssh are the
//! binaries' business.
//!
//! `cargo bench -p sc-session --bench tokio`

#![forbid(unsafe_code)]

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_session::{Acceptor, Connector, SecureStream};
use sc_wire::CipherSuite;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOTAL: usize = 256 << 20;
const BLOCK: usize = 1 << 20;
const PINGS: usize = 20_000;
const IDLE_SESSIONS: usize = 256;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Endpoints {
    connector: Connector,
    acceptor: Acceptor,
}

fn endpoints(suite: Option<CipherSuite>) -> Result<Endpoints, BoxError> {
    let pki = ThrowawayPki::new("server.test", "client-1", UnixTime::now(), &mut OsRng)?;
    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier()?))
        .with_credential(pki.client.clone());
    let client = match suite {
        Some(suite) => client.build_with_suites(&[suite])?,
        None => client.build(),
    };
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier()?))
        .with_credential(pki.server.clone())
        .build();
    Ok(Endpoints {
        connector: Connector::new(Arc::new(client)),
        acceptor: Acceptor::new(Arc::new(server)),
    })
}

async fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok((client, server))
}

async fn secure_pair(
    e: &Endpoints,
) -> Result<(SecureStream<TcpStream>, SecureStream<TcpStream>), BoxError> {
    let (c, s) = tcp_pair().await?;
    let name = ServerName::try_from("server.test")?.to_owned();
    let (client, server) = tokio::join!(e.connector.connect(name, None, c), e.acceptor.accept(s));
    Ok((client?, server?))
}

/// Writes `TOTAL` bytes from `tx` and reads them at `rx` in another task;
/// returns MB/s.
async fn one_way<T, R>(mut tx: T, mut rx: R) -> Result<f64, BoxError>
where
    T: AsyncWrite + Unpin,
    R: AsyncRead + Unpin + Send + 'static,
{
    let mut block = vec![0u8; BLOCK];
    OsRng.fill_bytes(&mut block);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0usize;
        loop {
            let n = rx.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(total);
            }
            total += n;
        }
    });
    let started = Instant::now();
    for _ in 0..TOTAL / BLOCK {
        tx.write_all(&block).await?;
    }
    tx.shutdown().await?;
    let got = reader.await??;
    let secs = started.elapsed().as_secs_f64();
    if got != TOTAL {
        return Err(format!("received {got} of {TOTAL} bytes").into());
    }
    Ok(TOTAL as f64 / secs / 1e6)
}

/// 64-byte ping-pong: p50 and p99 round trip.
async fn ping_pong<C, S>(mut client: C, mut server: S) -> Result<(Duration, Duration), BoxError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while server.read_exact(&mut buf).await.is_ok() {
            if server.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut samples = Vec::with_capacity(PINGS);
    let mut buf = [0u8; 64];
    for i in 0..PINGS + 1000 {
        let t = Instant::now();
        client.write_all(&[1u8; 64]).await?;
        client.read_exact(&mut buf).await?;
        if i >= 1000 {
            samples.push(t.elapsed());
        }
    }
    drop(client);
    let _ = echo.await;
    samples.sort();
    Ok((
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    ))
}

fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resident memory per idle session end, after each session moved 64 KiB
/// each way (both ends live in this process; the figure is per end and
/// includes its socket, task and tokio registration).
async fn idle_memory(e: &Endpoints) -> Result<Option<f64>, BoxError> {
    let mut held = Vec::new();
    let payload = vec![5u8; 64 * 1024];
    // Warm up the allocator and the runtime with one session first.
    let before = {
        let (mut c, mut s) = secure_pair(e).await?;
        let (a, b) = tokio::join!(c.write_all(&payload), s.write_all(&payload));
        a?;
        b?;
        rss_bytes()
    };
    for _ in 0..IDLE_SESSIONS {
        let (mut c, mut s) = secure_pair(e).await?;
        let mut got_c = vec![0u8; payload.len()];
        let mut got_s = vec![0u8; payload.len()];
        let (a, b) = tokio::join!(
            async {
                c.write_all(&payload).await?;
                c.read_exact(&mut got_c).await
            },
            async {
                s.write_all(&payload).await?;
                s.read_exact(&mut got_s).await
            }
        );
        a?;
        b?;
        // Each end waits in a read, as an idle session does.
        for mut end in [c, s] {
            held.push(tokio::spawn(async move {
                let mut one = [0u8; 1];
                let _ = end.read(&mut one).await;
                end
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_bytes();
    for h in &held {
        h.abort();
    }
    Ok(match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / (2 * IDLE_SESSIONS) as f64),
        _ => None,
    })
}

async fn run() -> Result<(), BoxError> {
    println!("tokio layer over loopback TCP, one process (2 runtime workers)");
    // First, while the allocator holds little freed memory to hide it.
    let e = endpoints(None)?;
    match idle_memory(&e).await? {
        Some(per_end) => println!(
            "  idle session end after 64 KiB each way   {:>8.1} KiB resident ({IDLE_SESSIONS} sessions)",
            per_end / 1024.0
        ),
        None => println!("  idle memory: /proc/self/status not readable"),
    }
    let (c, s) = tcp_pair().await?;
    let plain = one_way(c, s).await?;
    println!("  bulk, 256 MiB one way, plain TCP          {plain:>8.0} MB/s");
    for suite in [CipherSuite::AES_256_GCM, CipherSuite::CHACHA20_POLY1305] {
        let e = endpoints(Some(suite))?;
        let (c, s) = secure_pair(&e).await?;
        let rate = one_way(c, s).await?;
        println!(
            "  bulk, 256 MiB one way, {:<18} {rate:>8.0} MB/s ({:.2} Gbit/s, {:.1} % of plain TCP)",
            suite.to_string(),
            rate * 8.0 / 1e3,
            rate / plain * 100.0
        );
    }

    Ok(())
}

/// Latency in one thread: both ends on a current-thread runtime, so the
/// figure is the code path and the kernel, not cross-thread wake-ups.
async fn latency() -> Result<(), BoxError> {
    let e = endpoints(None)?;
    let (c, s) = tcp_pair().await?;
    let (p50, p99) = ping_pong(c, s).await?;
    println!("  64-byte ping-pong, plain TCP              p50 {p50:>9.1?}  p99 {p99:>9.1?}");
    let (c, s) = secure_pair(&e).await?;
    let suite = c.cipher();
    let (sp50, sp99) = ping_pong(c, s).await?;
    println!(
        "  64-byte ping-pong, {:<22} p50 {sp50:>9.1?}  p99 {sp99:>9.1?}  (p50 {:.2}x plain)",
        suite.to_string(),
        sp50.as_secs_f64() / p50.as_secs_f64()
    );

    Ok(())
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(latency())
}
