//! The blind relay in the path vs the same client and server connected
//! directly, measured in the same run, with the ratios printed at the end:
//!
//! * `bulk`: single-stream throughput, 16 MiB per iteration one way over a
//!   session that stays open (the server acknowledges each 16 MiB with one
//!   byte), `direct`, `bare` and `relay`; besides criterion's estimate,
//!   the median of 15 transfers per path taken in turn;
//! * `ping-pong-64`: one 64-byte round trip over a session that stays open;
//!   besides criterion's estimate, the p50 of 20,000 single round trips per
//!   path, taken in alternating blocks so both paths see the same load;
//! * `sessions`: new sessions per second, 8 clients in parallel: `server`
//!   is full handshakes straight to the server (what the server can
//!   complete), `relay-only` what the relay alone can take: a recorded
//!   ClientHello through the relay to a backend that answers one byte (the
//!   relay's whole per-session work: accept, read and route the
//!   ClientHello, connect, forward, pipe, close), and `relay` full
//!   handshakes through the relay.
//!
//! `bare` is the floor for any relay in this setup: a plain TCP forwarder
//! (tokio's `copy_bidirectional`, no routing, no limits, no logs) in the
//! same place, so the table shows what the extra hop itself costs and what
//! the relay adds to it.
//!
//! Client, relay and server share this process and its 2 runtime workers
//! (in production the relay has a machine of its own), so the relay's CPU
//! is charged to the relayed figures.
//!
//! `bulk-own-cpu` (Linux, 2 or more CPUs) measures bulk again with the
//! relay on a CPU of its own, as it is deployed: client and server run on
//! one thread pinned to CPU 0, the relay and the bare forwarder on one
//! worker pinned to CPU 1. `direct` is then the client and server alone on
//! CPU 0, and the ratio is what the hop itself costs them. Ping-pong is not
//! measured that way: there `direct` never leaves one thread (no wake-up at
//! all) while a relayed round trip wakes the other CPU four times, so the
//! ratio would measure this machine's idle-CPU wake-up latency (about
//! 150 µs a round trip on the development VM), not the relay.
//!
//! `cargo bench -p sc-relay --bench relay`

#![forbid(unsafe_code)]

#[path = "../../sc-session/benches/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use rand_core::OsRng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_net::Endpoint;
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_relay::{Relay, RelayListenerSettings, RelaySettings, Route};
use sc_session::{Acceptor, Connector, SecureStream};
use sc_wire::RouteName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use common::{Missing, Run};

/// Bytes per bulk iteration.
const BULK: usize = 16 << 20;
const BLOCK: usize = 1 << 20;
/// Bulk transfers per path for the median, taken in turn.
const BULK_ROUNDS: usize = 15;
const PING: usize = 64;
/// Round trips per path for the p50, in blocks of `PING_BLOCK`.
const PINGS: usize = 20_000;
const PING_BLOCK: usize = 500;
/// Clients opening sessions at once.
const PARALLEL: u64 = 8;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the server does with a session, by the route name it was opened for.
const SINK: &str = "sink.test";
const ECHO: &str = "echo.test";
const HELLO: &str = "hello.test";
/// The route of the recorded ClientHello (to the one-byte backend).
const FAKE: &str = "fake.test";

struct Bed {
    connector: Connector,
    server: SocketAddr,
    relay: SocketAddr,
    /// The plain TCP forwarder to the server.
    bare: SocketAddr,
    /// A ClientHello record for [`FAKE`].
    hello_record: Vec<u8>,
    _relay: Relay,
}

async fn listener() -> Result<(TcpListener, SocketAddr), BoxError> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// The server: a sink, an echo, or a handshake and close, by route name.
async fn serve(listener: TcpListener, acceptor: Acceptor) {
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut s) = acceptor.accept(tcp).await else {
                return;
            };
            let route = s.info().route().map(|r| r.as_str().to_owned());
            match route.as_deref() {
                Some(SINK) => {
                    let mut buf = vec![0u8; BULK];
                    while s.read_exact(&mut buf).await.is_ok() {
                        if s.write_all(&[1]).await.is_err() || s.flush().await.is_err() {
                            return;
                        }
                    }
                }
                Some(ECHO) => {
                    let mut buf = [0u8; PING];
                    while s.read_exact(&mut buf).await.is_ok() {
                        if s.write_all(&buf).await.is_err() || s.flush().await.is_err() {
                            return;
                        }
                    }
                }
                _ => {
                    let _ = s.shutdown().await;
                }
            }
        });
    }
}

/// A backend that reads one ClientHello record, answers one byte, closes.
async fn one_byte_backend(listener: TcpListener) {
    while let Ok((mut tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut header = [0u8; 4];
            if tcp.read_exact(&mut header).await.is_err() {
                return;
            }
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let mut body = vec![0u8; len];
            if tcp.read_exact(&mut body).await.is_ok() {
                let _ = tcp.write_all(&[1]).await;
            }
        });
    }
}

/// A plain TCP forwarder to `to`: the least any relay does.
async fn bare_forwarder(listener: TcpListener, to: SocketAddr) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(to).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional_with_sizes(
                &mut inbound,
                &mut outbound,
                256 * 1024,
                256 * 1024,
            )
            .await;
        });
    }
}

/// The ClientHello record the client sends for `route`, as it goes out.
async fn record_hello(connector: &Connector, route: &str) -> Result<Vec<u8>, BoxError> {
    let (l, addr) = listener().await?;
    let client = {
        let connector = connector.clone();
        let route = RouteName::new(route)?;
        tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::try_from("server.test")?.to_owned();
            let _ = connector.connect(name, Some(route), tcp).await;
            Ok::<(), BoxError>(())
        })
    };
    let (mut tcp, _) = l.accept().await?;
    let mut record = vec![0u8; 4];
    tcp.read_exact(&mut record).await?;
    let len = usize::from(u16::from_be_bytes([record[2], record[3]]));
    record.resize(4 + len, 0);
    tcp.read_exact(&mut record[4..]).await?;
    drop(tcp);
    client.await??;
    Ok(record)
}

/// A listener bound now, registered later with the runtime that accepts on
/// it (so the relay's sockets can live on the relay's runtime).
fn std_listener() -> Result<(std::net::TcpListener, SocketAddr), BoxError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.set_nonblocking(true)?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// Client and server on the current runtime; the relay and the bare
/// forwarder on `relay_side` when given (else on the current one too).
async fn bed(relay_side: Option<tokio::runtime::Handle>) -> Result<Bed, BoxError> {
    let relay_side = relay_side.unwrap_or_else(tokio::runtime::Handle::current);
    let pki = ThrowawayPki::new("server.test", "client-1", UnixTime::now(), &mut OsRng)?;
    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier()?))
        .with_credential(pki.client.clone())
        .build();
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier()?))
        .with_credential(pki.server.clone())
        .build();
    let connector = Connector::new(Arc::new(client));
    let (l, server_addr) = listener().await?;
    tokio::spawn(serve(l, Acceptor::new(Arc::new(server))));
    let (l, fake_addr) = listener().await?;
    tokio::spawn(one_byte_backend(l));

    let to = |a: SocketAddr| Endpoint::Tcp(a.to_string());
    let mut settings = RelayListenerSettings::new(Endpoint::Tcp("127.0.0.1:0".into()));
    for name in [SINK, ECHO, HELLO] {
        settings.routes.push(Route {
            name: RouteName::new(name)?,
            backends: vec![to(server_addr)],
        });
    }
    settings.routes.push(Route {
        name: RouteName::new(FAKE)?,
        backends: vec![to(fake_addr)],
    });
    settings.limits.max_connections = 10_000;
    // Every client here is on one loopback address.
    settings.limits.max_connections_per_source = 10_000;
    let relay = relay_side
        .spawn(Relay::bind(RelaySettings {
            listeners: vec![settings],
            health_interval: None,
        }))
        .await??;
    let relay_addr: SocketAddr = relay.local_endpoints()[0].to_string().parse()?;
    let hello_record = record_hello(&connector, FAKE).await?;
    let (l, bare) = std_listener()?;
    relay_side.spawn(async move {
        match TcpListener::from_std(l) {
            Ok(l) => bare_forwarder(l, server_addr).await,
            Err(e) => eprintln!("bench: the bare forwarder's listener: {e}"),
        }
    });
    Ok(Bed {
        connector,
        server: server_addr,
        relay: relay_addr,
        bare,
        hello_record,
        _relay: relay,
    })
}

async fn open(
    connector: &Connector,
    to: SocketAddr,
    route: &str,
) -> Result<SecureStream<TcpStream>, BoxError> {
    let tcp = TcpStream::connect(to).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("server.test")?.to_owned();
    Ok(connector
        .connect(name, Some(RouteName::new(route)?), tcp)
        .await?)
}

fn must<T>(r: Result<T, BoxError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("bench setup failed: {e}"),
    }
}

/// The two paths, in the order measured.
fn paths(b: &Bed) -> [(&'static str, SocketAddr); 3] {
    [("direct", b.server), ("bare", b.bare), ("relay", b.relay)]
}

/// Sends `BULK` bytes and waits for the server's one-byte acknowledgement.
async fn send_bulk(s: &mut SecureStream<TcpStream>, block: &[u8]) {
    let mut ack = [0u8; 1];
    for _ in 0..BULK / BLOCK {
        s.write_all(block).await.expect("write");
    }
    s.flush().await.expect("flush");
    s.read_exact(&mut ack).await.expect("ack");
}

/// Criterion's estimate per path; then, with `with_median`, the median of
/// `BULK_ROUNDS` transfers per path taken in turn (direct, bare, relay,
/// direct, …), so that the load of a shared machine falls on all three.
fn bulk(
    c: &mut Criterion,
    group: &str,
    rt: &Runtime,
    bed: &Bed,
    with_median: bool,
) -> Option<[Duration; 3]> {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Bytes(BULK as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    let block = vec![0x5au8; BLOCK];
    let mut streams = Vec::new();
    for (path, to) in paths(bed) {
        let mut s = must(rt.block_on(open(&bed.connector, to, SINK)));
        group.bench_function(BenchmarkId::new("one-way-16MiB", path), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        send_bulk(&mut s, &block).await;
                    }
                    started.elapsed()
                })
            })
        });
        streams.push(s);
    }
    group.finish();
    if !with_median {
        return None;
    }
    let mut samples: [Vec<Duration>; 3] = Default::default();
    rt.block_on(async {
        for _ in 0..BULK_ROUNDS {
            for (i, s) in streams.iter_mut().enumerate() {
                let t = Instant::now();
                send_bulk(s, &block).await;
                samples[i].push(t.elapsed());
            }
        }
    });
    Some(samples.map(median))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn round_trip(s: &mut SecureStream<TcpStream>, buf: &mut [u8; PING]) {
    s.write_all(buf).await.expect("write");
    s.flush().await.expect("flush");
    s.read_exact(buf).await.expect("read");
}

/// The ping-pong group's name (measured with all three sharing the cores
/// only; see the module's documentation).
const PING_GROUP: &str = "ping-pong-64";

fn ping_pong(c: &mut Criterion, rt: &Runtime, bed: &Bed, with_p50: bool) -> Option<[Duration; 3]> {
    let mut group = c.benchmark_group(PING_GROUP);
    group.sample_size(30);
    let mut streams = Vec::new();
    for (path, to) in paths(bed) {
        let mut s = must(rt.block_on(open(&bed.connector, to, ECHO)));
        group.bench_function(path, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut buf = [7u8; PING];
                    let started = Instant::now();
                    for _ in 0..iters {
                        round_trip(&mut s, &mut buf).await;
                    }
                    started.elapsed()
                })
            })
        });
        streams.push(s);
    }
    group.finish();
    if !with_p50 {
        return None;
    }
    // p50 per path, alternating blocks of round trips.
    let mut samples: [Vec<Duration>; 3] = Default::default();
    rt.block_on(async {
        let mut buf = [7u8; PING];
        for _ in 0..PINGS / PING_BLOCK {
            for (i, s) in streams.iter_mut().enumerate() {
                for _ in 0..PING_BLOCK {
                    let t = Instant::now();
                    round_trip(s, &mut buf).await;
                    samples[i].push(t.elapsed());
                }
            }
        }
    });
    Some(samples.map(median))
}

/// Runs `iters` session openings, `PARALLEL` at a time; returns the time.
fn parallel<F, Fut>(rt: &Runtime, iters: u64, one: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    rt.block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..PARALLEL {
            let n = iters / PARALLEL + u64::from(k < iters % PARALLEL);
            let one = one.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..n {
                    one().await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("session task");
        }
        started.elapsed()
    })
}

fn sessions(c: &mut Criterion, rt: &Runtime, bed: &Bed) {
    let mut group = c.benchmark_group("sessions");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    for (path, to) in [("server", bed.server), ("relay", bed.relay)] {
        let connector = bed.connector.clone();
        group.bench_function(path, |b| {
            b.iter_custom(|iters| {
                let connector = connector.clone();
                parallel(rt, iters, move || {
                    let connector = connector.clone();
                    async move {
                        let mut s = open(&connector, to, HELLO).await.expect("session");
                        let _ = s.shutdown().await;
                    }
                })
            })
        });
    }
    let relay = bed.relay;
    let hello = Arc::new(bed.hello_record.clone());
    group.bench_function("relay-only", |b| {
        b.iter_custom(|iters| {
            let hello = hello.clone();
            parallel(rt, iters, move || {
                let hello = hello.clone();
                async move {
                    let mut tcp = TcpStream::connect(relay).await.expect("connect");
                    tcp.set_nodelay(true).expect("nodelay");
                    tcp.write_all(&hello).await.expect("hello");
                    let mut one = [0u8; 1];
                    tcp.read_exact(&mut one).await.expect("the backend's byte");
                }
            })
        })
    });
    group.finish();
}

fn show(v: &Result<f64, Missing>, f: impl Fn(f64) -> String) -> String {
    match v {
        Ok(x) => f(*x),
        Err(e) => format!("n/a ({e})"),
    }
}

/// What one configuration measured: the bulk medians and ping-pong p50s
/// taken in turn (when benchmarking), under its group names.
struct Measured {
    bulk_group: &'static str,
    /// `None` where ping-pong is not measured.
    ping_group: Option<&'static str>,
    what: &'static str,
    bulk_median: Option<[Duration; 3]>,
    p50: Option<[Duration; 3]>,
}

type Figure = Result<f64, Missing>;

fn ratio(a: &Figure, b: &Figure) -> Figure {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(a / b),
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
    }
}

fn pct(r: f64) -> String {
    format!("{:.1} %", r * 100.0)
}

fn extra(r: f64) -> String {
    format!("{:+.1} %", (r - 1.0) * 100.0)
}

fn verdict(r: &Figure, ok: fn(f64) -> bool) -> &'static str {
    match r {
        Ok(v) if ok(*v) => "met",
        Ok(_) => "MISSED",
        Err(_) => "not measured",
    }
}

fn report_paths(run: &Run, m: &Measured) {
    let ns = |id: &str| run.estimate(id).map(|e| e.ns);
    println!("  {}:", m.what);
    let [direct, bare, relayed] =
        ["direct", "bare", "relay"].map(|p| ns(&format!("{}/one-way-16MiB/{p}", m.bulk_group)));
    let mbps = |n: f64| format!("{:.0} MB/s", BULK as f64 / n * 1e3);
    let kept = ratio(&direct, &relayed);
    println!(
        "    bulk, one stream: direct {}, bare forwarder {} ({} of direct), relay {}: relay/direct {}  (target ≥ 90 %: {})",
        show(&direct, mbps),
        show(&bare, mbps),
        show(&ratio(&direct, &bare), pct),
        show(&relayed, mbps),
        show(&kept, pct),
        verdict(&kept, |r| r >= 0.90),
    );
    if let Some([d, b, r]) = m.bulk_median {
        let rate = |x: Duration| format!("{:.0} MB/s", BULK as f64 / x.as_secs_f64() / 1e6);
        let of = |x: Duration| Ok::<f64, Missing>(d.as_secs_f64() / x.as_secs_f64());
        println!(
            "    bulk, one stream, median of {BULK_ROUNDS} in turn: direct {}, bare forwarder {} ({}), relay {}: relay/direct {}  (target ≥ 90 %: {})",
            rate(d),
            rate(b),
            show(&of(b), pct),
            rate(r),
            show(&of(r), pct),
            verdict(&of(r), |x| x >= 0.90),
        );
    }

    let Some(ping_group) = m.ping_group else {
        return;
    };
    let [direct, bare, relayed] =
        ["direct", "bare", "relay"].map(|p| ns(&format!("{ping_group}/{p}")));
    let us = |n: f64| format!("{:.1} µs", n / 1e3);
    println!(
        "    64-byte ping-pong, criterion mean: direct {}, bare forwarder {} ({}), relay {} ({})",
        show(&direct, us),
        show(&bare, us),
        show(&ratio(&bare, &direct), extra),
        show(&relayed, us),
        show(&ratio(&relayed, &direct), extra),
    );
    if let Some([d, b, r]) = m.p50 {
        let over = |x: Duration| Ok::<f64, Missing>(x.as_secs_f64() / d.as_secs_f64());
        println!(
            "    64-byte ping-pong p50 ({PINGS} each, alternating): direct {d:.1?}, bare forwarder {b:.1?} ({}), relay {r:.1?} ({})  (target ≤ +15 %: {})",
            show(&over(b), extra),
            show(&over(r), extra),
            verdict(&over(r), |x| x <= 1.15),
        );
    }
}

fn report(run: &Run, configurations: &[Measured]) {
    let ns = |id: &str| run.estimate(id).map(|e| e.ns);
    println!();
    println!(
        "Relay in the path vs direct, this run (estimates from {})",
        run.searched()
    );
    for m in configurations {
        report_paths(run, m);
    }

    let server = ns("sessions/server");
    let relay_only = ns("sessions/relay-only");
    let relayed = ns("sessions/relay");
    let per_s = |n: f64| format!("{:.0}/s", 1e9 / n);
    let headroom = ratio(&server, &relay_only);
    println!("  sessions (client, relay and server share the CPUs):");
    println!(
        "    new sessions ({PARALLEL} clients): server completes {}, relay alone accepts {}: relay/server {}  (target ≥ 1: {})",
        show(&server, per_s),
        show(&relay_only, per_s),
        show(&headroom, |r| format!("{r:.2}x")),
        verdict(&headroom, |r| r >= 1.0),
    );
    println!(
        "    full handshakes through the relay: {} ({} of direct)",
        show(&relayed, per_s),
        show(&ratio(&server, &relayed), pct),
    );
}

/// CPU pinning for the `own-cpu` configuration (Linux only).
#[cfg(target_os = "linux")]
mod cpus {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;

    /// The CPUs this thread may run on.
    pub(crate) fn allowed() -> Vec<usize> {
        let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
            return Vec::new();
        };
        (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect()
    }

    /// Restricts the calling thread to `cpus`.
    pub(crate) fn pin(cpus: &[usize]) -> Result<(), nix::Error> {
        let mut set = CpuSet::new();
        for &c in cpus {
            set.set(c)?;
        }
        sched_setaffinity(Pid::from_raw(0), &set)
    }
}

#[cfg(not(target_os = "linux"))]
mod cpus {
    pub(crate) fn allowed() -> Vec<usize> {
        Vec::new()
    }

    pub(crate) fn pin(_: &[usize]) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

/// Bulk with the relay on a CPU of its own: client and server
/// on one thread pinned to the first allowed CPU, the relay's runtime (one
/// worker) pinned to the second. `None` with fewer than 2 CPUs.
fn own_cpu(c: &mut Criterion, with_stats: bool) -> Option<Measured> {
    let allowed = cpus::allowed();
    let [ends, relay_cpu] = [*allowed.first()?, *allowed.get(1)?];
    let relay_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(move || {
            if let Err(e) = cpus::pin(&[relay_cpu]) {
                eprintln!("bench: pinning the relay to CPU {relay_cpu}: {e}");
            }
        })
        .enable_all()
        .build()
        .expect("relay runtime");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // This thread runs the client and (inside `block_on`) the server.
    if let Err(e) = cpus::pin(&[ends]) {
        eprintln!("bench: pinning client and server to CPU {ends}: {e}; own-cpu not measured");
        return None;
    }
    let bed = must(rt.block_on(bed(Some(relay_rt.handle().clone()))));
    let bulk_median = bulk(c, "bulk-own-cpu", &rt, &bed, with_stats);
    drop(bed);
    if let Err(e) = cpus::pin(&allowed) {
        eprintln!("bench: unpinning: {e}");
    }
    Some(Measured {
        bulk_group: "bulk-own-cpu",
        ping_group: None,
        what:
            "the relay on a CPU of its own (client and server pinned to one CPU, relay to another)",
        bulk_median,
        p50: None,
    })
}

fn main() {
    let run = Run::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bed = must(rt.block_on(bed(None)));
    let mut c = Criterion::default().configure_from_args();
    let mut measured = vec![Measured {
        bulk_group: "bulk",
        ping_group: Some(PING_GROUP),
        what: "client, relay and server sharing 2 runtime workers (the relay's CPU taken from both ends)",
        bulk_median: bulk(&mut c, "bulk", &rt, &bed, run.benchmarking()),
        p50: ping_pong(&mut c, &rt, &bed, run.benchmarking()),
    }];
    sessions(&mut c, &rt, &bed);
    drop(bed);
    drop(rt);
    measured.extend(own_cpu(&mut c, run.benchmarking()));
    c.final_summary();
    if run.benchmarking() {
        report(&run, &measured);
    }
}
