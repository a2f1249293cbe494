//! Faults and load, with the real binaries (issue 6, point 6):
//!
//! * a 64 MiB tunnel (`sc-client --listen` → `sc-server --forward` → a sink)
//!   across a rate-limited, lossy link into a network namespace arrives
//!   with the same SHA-256;
//! * a backend, a server or a relay killed mid-transfer ends the sessions
//!   it carried with an error, and nothing hangs;
//! * a certificate or key that cannot be read at a reload (SIGHUP) keeps
//!   the credentials in force, says why, and the server keeps serving;
//! * 10,000 sequential handshakes, and 1,000 sessions held for 60 s with
//!   traffic: no error, and the server's memory stays flat;
//! * a flood of garbage and of slow clients (silent, or one byte a second)
//!   leaves legitimate clients served within the limits;
//! * at the server's default limits, under attack from two sources (1,000
//!   silent connections; 2,000 bogus ClientHellos a second), 50 legitimate
//!   clients, each from its own loopback address, keep connecting: 99 % go
//!   through, their handshake p99 within 3× the p99 without an attack; the
//!   server's CPU time per bogus ClientHello is printed next to its CPU time
//!   per legitimate handshake (issue 15).
//!
//! The namespace test needs root, iproute2 (`ip`, `tc`) and nftables, and
//! the load tests take minutes: those are `#[ignore]`d and `.ci/run` runs
//! them (`cargo test --workspace -- --ignored`, as root, after installing
//! the tools). Inside them a missing tool is a failure, not a skip. Each
//! test prints its figures (`--nocapture` shows them):
//!
//! ```sh
//! cargo test --test faults -- --include-ignored --nocapture
//! ```
//!
//! Every wait is bounded, every child process is killed when its test ends
//! (pass or fail), and the namespace is deleted by a guard. The tests run
//! one at a time (they measure time and memory).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sovereign_chain::handshake::ClientConfig;
use sovereign_chain::net::{Endpoint, Stream};
use sovereign_chain::pki::ServerName;
use sovereign_chain::session::{Connector, SecureStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

mod common;
#[path = "faults/support.rs"]
mod support;

use support::{
    chunk, connect, connect_from, ensure_nofile, median, parse_sink_done, percentile, sc_client,
    sc_server, serial, spawn_sink, tcp_from, LossyLink, Pki, Proc, SINK_ENV, WAIT,
};

const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------
// The sink backend process

/// Run by [`support::spawn_sink`] as a child process (with `SC_FAULTS_SINK_LISTEN`
/// set): the sink backend, until killed. Run as a test (the variable unset),
/// it checks the sink itself: a child sink hashes 1 MiB exactly as sent.
#[tokio::test]
async fn sink_backend_process() {
    if let Ok(listen) = std::env::var(SINK_ENV) {
        support::sink_main(&listen);
        return;
    }
    let _one = serial().await;
    let (sink, addr) = spawn_sink("127.0.0.1:0", None).await;
    let data = chunk(7, 0, MIB as usize);
    let mut conn = TcpStream::connect(addr.to_string()).await.expect("connect");
    conn.write_all(&data).await.expect("write");
    conn.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    timeout(WAIT, conn.read_to_end(&mut rest))
        .await
        .expect("the sink closes")
        .expect("read");
    let (bytes, sha) = parse_sink_done(&sink.wait_line("SINK done").await);
    assert_eq!(bytes, MIB);
    assert_eq!(sha, hex::encode(Sha256::digest(&data)));
}

// ---------------------------------------------------------------------------
// Transfers through a tunnel entry

/// What an application saw while sending through a tunnel.
#[derive(Debug)]
struct Sent {
    /// Bytes written.
    bytes: u64,
    /// SHA-256 of what was written.
    sha: String,
    /// The write or read error that ended it, if any.
    error: Option<String>,
    /// How long it took.
    took: Duration,
}

/// Connects to the tunnel entry `entry`, sends `total` bytes of stream
/// `seed` in 256 KiB chunks, shuts its side and reads to the end. `progress`
/// counts the bytes written as they go. Ends at the first error; bounded by
/// `within`.
async fn send_through(
    entry: &Endpoint,
    total: u64,
    seed: u64,
    progress: Arc<AtomicU64>,
    within: Duration,
) -> Sent {
    const CHUNK: usize = 256 * 1024;
    let started = Instant::now();
    let mut conn = timeout(WAIT, entry.connect())
        .await
        .expect("connect to the tunnel entry in time")
        .expect("connect to the tunnel entry");
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let run = async {
        let mut i = 0u64;
        while bytes < total {
            let len = CHUNK.min((total - bytes) as usize);
            let data = chunk(seed, i, len);
            i += 1;
            conn.write_all(&data)
                .await
                .map_err(|e| format!("write: {e}"))?;
            hash.update(&data);
            bytes += len as u64;
            progress.store(bytes, Ordering::Relaxed);
        }
        conn.shutdown()
            .await
            .map_err(|e| format!("shutdown: {e}"))?;
        let mut back = Vec::new();
        conn.read_to_end(&mut back)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok::<usize, String>(back.len())
    };
    let error = match timeout(within, run).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => panic!("the transfer neither ended nor failed within {within:?}"),
    };
    Sent {
        bytes,
        sha: hex::encode(hash.finalize()),
        error,
        took: started.elapsed(),
    }
}

/// Waits until `progress` reaches `bytes` (bounded).
async fn reached(progress: &AtomicU64, bytes: u64) {
    timeout(WAIT, async {
        while progress.load(Ordering::Relaxed) < bytes {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the transfer got under way in time");
}

/// A transfer of `bytes` through `entry` that must arrive whole at `sink`.
async fn intact_through(entry: &Endpoint, sink: &Proc, bytes: u64) {
    let n = sink.lines_with("SINK done").len() + 1;
    let sent = send_through(entry, bytes, 99, Arc::default(), WAIT).await;
    assert_eq!(sent.error, None, "{sent:?}");
    let done = sink.wait_lines("SINK done", n, WAIT).await;
    let (got, sha) = parse_sink_done(&done[n - 1]);
    assert_eq!((got, sha), (sent.bytes, sent.sha));
}

// ---------------------------------------------------------------------------
// (a) 64 MiB across a rate-limited, lossy link

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns, tc, nft: run by .ci/run"]
async fn a_64_mib_tunnel_across_a_rate_limited_lossy_link_arrives_intact() {
    const TOTAL: u64 = 64 * MIB;
    const RATE: &str = "200mbit";
    const DROP_PER_MILLE: u32 = 10;
    let _one = serial().await;
    let pki = Pki::new("lossy");
    let link = LossyLink::create("l", RATE, DROP_PER_MILLE);

    // In the namespace: the sink and the tunnel exit. Here: the entry.
    let (sink, sink_addr) = spawn_sink("127.0.0.1:0", Some(&link.ns)).await;
    let mut args = pki.server_args();
    args.extend(
        [
            "--listen",
            &format!("{}:0", link.ns_ip),
            "--forward",
            &sink_addr.to_string(),
            // A line per stream: the entry's session of streams stays up.
            "-v",
        ]
        .map(String::from),
    );
    let server = sc_server(&args, Some(&link.ns));
    let server_addr = server.listening().await;
    let mut args = pki.client_args(&server_addr.to_string());
    args.extend(["--listen", "127.0.0.1:0"].map(String::from));
    let client = sc_client(&args, None);
    let entry = client.listening().await;

    let before = link.counts();
    let sent = send_through(&entry, TOTAL, 1, Arc::default(), Duration::from_secs(180)).await;
    assert_eq!(sent.error, None, "{sent:?}");
    let (got, sha) = parse_sink_done(&sink.wait_line("SINK done").await);
    let after = link.counts();
    let to_ns = after.to_ns - before.to_ns;
    let to_ns_dropped = after.to_ns_dropped - before.to_ns_dropped;
    let from_ns = after.from_ns - before.from_ns;
    let from_ns_dropped = after.from_ns_dropped - before.from_ns_dropped;
    let secs = sent.took.as_secs_f64();
    println!(
        "lossy link ({RATE} each way, {:.1} % random drops each way): {} MiB in {secs:.2} s = {:.1} Mbit/s; \
         packets to the exit {to_ns}, dropped {to_ns_dropped} ({:.2} %); from the exit {from_ns}, dropped {from_ns_dropped} ({:.2} %); \
         SHA-256 sent {} received {} ({})",
        f64::from(DROP_PER_MILLE) / 10.0,
        TOTAL / MIB,
        TOTAL as f64 * 8.0 / secs / 1e6,
        100.0 * to_ns_dropped as f64 / to_ns.max(1) as f64,
        100.0 * from_ns_dropped as f64 / from_ns.max(1) as f64,
        &sent.sha[..16],
        &sha[..16],
        if sha == sent.sha { "equal" } else { "DIFFERENT" },
    );
    assert_eq!(got, TOTAL);
    assert_eq!(
        sha, sent.sha,
        "the sink received other bytes than were sent"
    );
    assert!(to_ns_dropped > 0, "the link dropped nothing: {after:?}");
    let end = server.wait_line("stream end").await;
    assert!(end.contains("reason=closed"), "{end}");
    assert!(end.contains(&format!("bytes_in={TOTAL}")), "{end}");
}

// ---------------------------------------------------------------------------
// (b) a backend, a server, a relay killed mid-transfer

/// Up to this much is sent in a transfer that is cut by a kill (it ends at
/// the first error long before).
const CUT_TOTAL: u64 = 2048 * MIB;
/// The kill comes once the application has written this much.
const KILL_AFTER: u64 = 16 * MIB;

/// A sink, a tunnel exit forwarding to it, and a tunnel entry to the exit
/// (or to `via`, a relay in between, when given).
struct Tunnel {
    pki: Pki,
    sink: Proc,
    sink_addr: Endpoint,
    server: Proc,
    server_addr: Endpoint,
    client: Proc,
    entry: Endpoint,
}

impl Tunnel {
    async fn start(tag: &str) -> Self {
        let pki = Pki::new(tag);
        let (sink, sink_addr) = spawn_sink("127.0.0.1:0", None).await;
        let server = start_server(&pki, "127.0.0.1:0", &sink_addr);
        let server_addr = server.listening().await;
        let mut args = pki.client_args(&server_addr.to_string());
        args.extend(["--listen", "127.0.0.1:0"].map(String::from));
        let client = sc_client(&args, None);
        let entry = client.listening().await;
        Self {
            pki,
            sink,
            sink_addr,
            server,
            server_addr,
            client,
            entry,
        }
    }
}

/// `sc-server --listen 127.0.0.1:0 --echo` with `extra` flags, and its address.
async fn echo_server(pki: &Pki, extra: &[&str]) -> (Proc, Endpoint) {
    let mut args = pki.server_args();
    args.extend(["--listen", "127.0.0.1:0", "--echo"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let server = sc_server(&args, None);
    let addr = server.listening().await;
    (server, addr)
}

fn start_server(pki: &Pki, listen: &str, sink: &Endpoint) -> Proc {
    let mut args = pki.server_args();
    // -v: a line per stream at its end (the entry keeps one session of
    // streams; a local connection is a stream of it).
    args.extend(["--listen", listen, "--forward", &sink.to_string(), "-v"].map(String::from));
    sc_server(&args, None)
}

/// Starts a transfer that must be cut, kills `victim` mid-way, and returns
/// what the application saw and how long its end took after the kill.
async fn cut_by_kill(entry: &Endpoint, victim: &mut Proc) -> (Sent, Duration) {
    let progress = Arc::new(AtomicU64::new(0));
    let transfer = tokio::spawn({
        let (entry, progress) = (entry.clone(), progress.clone());
        async move { send_through(&entry, CUT_TOTAL, 2, progress, WAIT).await }
    });
    reached(&progress, KILL_AFTER).await;
    victim.kill9().await;
    let killed = Instant::now();
    let sent = transfer.await.expect("transfer task");
    (sent, killed.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_transfer_ends_the_session_with_an_error_and_nothing_hangs() {
    let _one = serial().await;
    let mut t = Tunnel::start("kill-backend").await;
    let (sent, after) = cut_by_kill(&t.entry, &mut t.sink).await;
    let error = sent.error.clone().expect("the application sees an error");
    // The entry's session of streams goes on; the stream ends.
    let exit = t.server.wait_line("stream end").await;
    let entry = t.client.wait_line("connection ended").await;
    println!(
        "backend killed after {} MiB: the application's transfer ended {:.3} s later with `{error}`\n  \
         sc-server: {exit}\n  sc-client: {entry}",
        KILL_AFTER / MIB,
        after.as_secs_f64()
    );
    assert!(exit.contains("reason=backend"), "{exit}");
    assert!(!entry.contains("reason=closed"), "{entry}");
    assert!(t.server.running() && t.client.running());

    // Nothing hangs: with the backend back, the same tunnel carries data.
    let (sink, _) = spawn_sink(&t.sink_addr.to_string(), None).await;
    intact_through(&t.entry, &sink, 4 * MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_transfer_ends_the_session_with_an_error_and_the_entry_goes_on() {
    let _one = serial().await;
    let mut t = Tunnel::start("kill-server").await;
    let (sent, after) = cut_by_kill(&t.entry, &mut t.server).await;
    let error = sent.error.clone().expect("the application sees an error");
    let entry = t.client.wait_line("connection ended").await;
    // What the backend saw when the exit died with it connected.
    let backend = t
        .sink
        .wait_lines("SINK ", 2, WAIT)
        .await
        .into_iter()
        .nth(1)
        .unwrap_or_default();
    println!(
        "sc-server killed after {} MiB: the application's transfer ended {:.3} s later with `{error}`\n  \
         sc-client: {entry}\n  backend: {backend}",
        KILL_AFTER / MIB,
        after.as_secs_f64()
    );
    assert!(entry.contains("reason=session error"), "{entry}");
    assert!(t.client.running());

    // With no server, a new connection to the entry is closed at once, and
    // the entry says why.
    let started = Instant::now();
    let sent = send_through(&t.entry, MIB, 3, Arc::default(), WAIT).await;
    let failed = t.client.wait_line("session failed").await;
    println!(
        "  no server: a new connection ended after {:.3} s ({:?}); sc-client: {failed}",
        started.elapsed().as_secs_f64(),
        sent.error
    );
    // With the server back on the same port, the same entry carries data.
    let server = start_server(&t.pki, &t.server_addr.to_string(), &t.sink_addr);
    server.listening().await;
    intact_through(&t.entry, &t.sink, 4 * MIB).await;
}

/// The other direction: the backend sends (a download), and the tunnel exit
/// is killed mid-way. The entry logs the session error; the application's
/// read ends, within the bound, short of the whole, and with an error (the
/// entry resets the connection), not a clean end of stream it could take
/// for the real end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_download_ends_the_session_and_the_application_read_ends() {
    let _one = serial().await;
    let pki = Pki::new("kill-download");
    let (_source, source_addr) = support::spawn_source("127.0.0.1:0", CUT_TOTAL).await;
    let mut server = start_server(&pki, "127.0.0.1:0", &source_addr);
    let server_addr = server.listening().await;
    let mut args = pki.client_args(&server_addr.to_string());
    args.extend(["--listen", "127.0.0.1:0"].map(String::from));
    let mut client = sc_client(&args, None);
    let entry = client.listening().await;

    let mut conn = timeout(WAIT, entry.connect())
        .await
        .expect("connect in time")
        .expect("connect");
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut killed = None;
    let end = timeout(WAIT, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) => return "a clean end of stream (FIN)".to_string(),
                Ok(n) => got += n as u64,
                Err(e) => return format!("an error: {e}"),
            }
            if killed.is_none() && got >= KILL_AFTER {
                server.kill9().await;
                killed = Some(Instant::now());
            }
        }
    })
    .await
    .expect("the application's read ends in time");
    let after = killed.expect("killed mid-download").elapsed();
    let entry_end = client.wait_line("connection ended").await;
    println!(
        "sc-server killed after {} MiB of a download: the application's read ended {:.3} s later with {end} \
         after {got} bytes (of up to {CUT_TOTAL})\n  sc-client: {entry_end}",
        KILL_AFTER / MIB,
        after.as_secs_f64()
    );
    assert!(got < CUT_TOTAL);
    assert!(end.starts_with("an error"), "{end}");
    assert!(entry_end.contains("reason=session error"), "{entry_end}");
    assert!(client.running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_transfer_ends_the_sessions_on_both_sides_with_an_error() {
    let _one = serial().await;
    let pki = Pki::new("kill-relay");
    let (sink, sink_addr) = spawn_sink("127.0.0.1:0", None).await;
    let server = start_server(&pki, "127.0.0.1:0", &sink_addr);
    let server_addr = server.listening().await;
    let relay_args = [
        "--listen".to_string(),
        "127.0.0.1:0".into(),
        "--route".into(),
        format!("{}={server_addr}", support::SERVER_NAME),
    ];
    let mut relay = Proc::spawn(env!("CARGO_BIN_EXE_sc-proxy"), &relay_args, None);
    let relay_addr = relay.listening().await;
    let mut args = pki.client_args(&relay_addr.to_string());
    args.extend(["--listen", "127.0.0.1:0"].map(String::from));
    let client = sc_client(&args, None);
    let entry = client.listening().await;

    // Through the relay, first a whole transfer.
    intact_through(&entry, &sink, 4 * MIB).await;
    let (sent, after) = cut_by_kill(&entry, &mut relay).await;
    let error = sent.error.clone().expect("the application sees an error");
    let entry_end = client
        .wait_lines("connection ended", 2, WAIT)
        .await
        .remove(1);
    // Both transfers were streams of one session through the relay.
    let exit_end = server.wait_lines("stream end", 2, WAIT).await.remove(1);
    let backend = sink.wait_lines("SINK ", 3, WAIT).await.remove(2);
    println!(
        "sc-proxy killed after {} MiB: the application's transfer ended {:.3} s later with `{error}`\n  \
         sc-client: {entry_end}\n  sc-server: {exit_end}\n  backend: {backend}",
        KILL_AFTER / MIB,
        after.as_secs_f64()
    );
    assert!(entry_end.contains("reason=session error"), "{entry_end}");
    assert!(!exit_end.contains("reason=closed"), "{exit_end}");
    // The exit resets its backend connection: the backend sees an error,
    // not a clean end of what it was sent.
    assert!(backend.contains("SINK error"), "{backend}");
    let mut server = server;
    let mut client = client;
    assert!(server.running() && client.running());

    // Nothing hangs: with a relay back on the same port, the same entry and
    // server carry a whole transfer again.
    let relay_args = [
        &["--listen".to_string(), relay_addr.to_string()],
        &relay_args[2..],
    ]
    .concat();
    let relay = Proc::spawn(env!("CARGO_BIN_EXE_sc-proxy"), &relay_args, None);
    relay.listening().await;
    intact_through(&entry, &sink, 4 * MIB).await;
}

// ---------------------------------------------------------------------------
// (c) a reload with an unreadable certificate keeps the credentials in force

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_an_unreadable_certificate_or_key_keeps_the_credentials_in_force() {
    let _one = serial().await;
    let pki = Pki::new("reload");
    let (mut server, addr) = echo_server(&pki, &[]).await;
    let client = pki.client_config();
    let mut open = connect(&addr, &client).await.expect("session");
    assert_eq!(open.peer().fingerprint, pki.server_fingerprint);

    // Root reads files whatever their mode, so "unreadable" is made another
    // way: the certificate replaced by a directory, then deleted; the key
    // replaced by half of itself.
    let cert = pki.dir.join("server.pem");
    let key = pki.dir.join("server.key");
    let key_text = std::fs::read_to_string(&key).expect("key");
    let cert_text = std::fs::read_to_string(&cert).expect("certificate");
    let breakages: [Breakage<'_>; 3] = [
        (
            "certificate replaced by a directory",
            Box::new(|| {
                std::fs::remove_file(&cert).expect("rm");
                std::fs::create_dir(&cert).expect("mkdir");
            }),
        ),
        (
            "certificate deleted",
            Box::new(|| std::fs::remove_dir(&cert).expect("rmdir")),
        ),
        (
            "key cut in half (the certificate back in place)",
            Box::new(|| {
                std::fs::write(&cert, &cert_text).expect("write");
                std::fs::write(&key, &key_text[..key_text.len() / 2]).expect("write");
            }),
        ),
    ];
    for (i, (what, break_it)) in breakages.iter().enumerate() {
        break_it();
        server.signal("HUP");
        let failed = server
            .wait_lines("reload failed", i + 1, WAIT)
            .await
            .remove(i);
        println!("{what}: {failed}");
        assert!(
            failed.contains("keeping the credentials in force"),
            "{failed}"
        );
        let file = if what.starts_with("key") {
            "server.key"
        } else {
            "server.pem"
        };
        assert!(failed.contains(file), "the line names the file: {failed}");
        // New sessions get the old certificate; the open one goes on.
        let mut fresh = connect(&addr, &client)
            .await
            .expect("served after a failed reload");
        assert_eq!(fresh.peer().fingerprint, pki.server_fingerprint);
        echo(&mut fresh, "new").await;
        echo(&mut open, what).await;
    }
    assert!(server.running());

    // Files that can be read again are taken at the next reload.
    let renewed = pki.write_server();
    server.signal("HUP");
    server.wait_line("reloaded credentials").await;
    let fresh = connect(&addr, &client).await.expect("after the repair");
    assert_eq!(fresh.peer().fingerprint, renewed);
    echo(&mut open, "still the first session").await;
}

/// A way to make the server's files unusable, and its name.
type Breakage<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// Sends `msg` and expects `echo: msg` (bounded).
async fn echo(stream: &mut SecureStream<Stream>, msg: &str) {
    timeout(WAIT, stream.send_message(msg.as_bytes()))
        .await
        .expect("send in time")
        .expect("send");
    let answer = timeout(WAIT, stream.recv_message())
        .await
        .expect("answer in time")
        .expect("answer")
        .expect("a message");
    assert_eq!(answer, format!("echo: {msg}").as_bytes());
}

/// Closes cleanly (bounded): our Close, then the server's.
async fn close(mut stream: SecureStream<Stream>) -> Result<(), String> {
    timeout(WAIT, stream.shutdown())
        .await
        .map_err(|_| "close timed out".to_string())?
        .map_err(|e| format!("close: {e}"))?;
    match timeout(WAIT, stream.recv_message()).await {
        Ok(Ok(None)) => Ok(()),
        Ok(Ok(Some(_))) => Err("a message after close".into()),
        Ok(Err(e)) => Err(format!("end: {e}")),
        Err(_) => Err("end timed out".into()),
    }
}

// ---------------------------------------------------------------------------
// (d) load: sequential handshakes, concurrent sessions, flat memory

/// Memory is flat when the median of the last third of the samples is at
/// most this much above the median of the first third (after a warm-up).
const FLAT: f64 = 0.10;

/// The medians of the first and last thirds of `samples`, and whether the
/// growth between them is within [`FLAT`].
fn flat(samples: &[u64]) -> (f64, f64, bool) {
    let third = (samples.len() / 3).max(1);
    let mut first: Vec<f64> = samples[..third].iter().map(|&v| v as f64).collect();
    let mut last: Vec<f64> = samples[samples.len() - third..]
        .iter()
        .map(|&v| v as f64)
        .collect();
    let (a, b) = (median(&mut first), median(&mut last));
    (a, b, b <= a * (1.0 + FLAT))
}

#[test]
fn the_flat_memory_criterion_catches_growth() {
    assert!(flat(&[9000; 18]).2);
    // A few pages more, once: flat.
    assert!(flat(&[8816, 8816, 8816, 8960, 8960, 8960, 8960, 8960, 8960]).2);
    // 1 % more every sample: a leak.
    let leaking: Vec<u64> = (0..18).map(|i| 9000 + 90 * i).collect();
    assert!(!flat(&leaking).2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test (30-60 s): run by .ci/run"]
async fn ten_thousand_sequential_handshakes_without_error_and_with_flat_memory() {
    const HANDSHAKES: usize = 10_000;
    const SAMPLE_EVERY: usize = 500;
    let _one = serial().await;
    let pki = Pki::new("sequential");
    let (mut server, addr) = echo_server(&pki, &[]).await;
    let client = pki.client_config();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut latencies = Vec::with_capacity(HANDSHAKES);
    for i in 0..HANDSHAKES {
        let t = Instant::now();
        let mut s = connect(&addr, &client)
            .await
            .unwrap_or_else(|e| panic!("handshake {i}: {e}"));
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        echo(&mut s, "x").await;
        close(s)
            .await
            .unwrap_or_else(|e| panic!("session {i}: {e}"));
        if (i + 1) % SAMPLE_EVERY == 0 {
            samples.push(server.rss_kib());
        }
    }
    let took = started.elapsed().as_secs_f64();
    // The first two samples (1,000 sessions) are the warm-up.
    let (first, last, ok) = flat(&samples[2..]);
    let (p50, p99) = (
        percentile(&mut latencies.clone(), 50.0),
        percentile(&mut latencies, 99.0),
    );
    println!(
        "{HANDSHAKES} sequential sessions (handshake, one echo, close) in {took:.1} s = {:.0}/s; \
         handshake p50 {p50:.2} ms, p99 {p99:.2} ms\n  sc-server RSS (KiB) every {SAMPLE_EVERY}: {samples:?}\n  \
         median first third {first:.0} KiB, last third {last:.0} KiB: {:+.1} % (limit +{:.0} %)",
        HANDSHAKES as f64 / took,
        100.0 * (last / first - 1.0),
        FLAT * 100.0
    );
    assert!(ok, "the server's memory grew");
    assert!(server.running());
    let ended = server
        .wait_lines("reason=closed", HANDSHAKES, WAIT)
        .await
        .len();
    assert_eq!(ended, HANDSHAKES);
    assert!(
        server.lines_with("handshake failed").is_empty(),
        "{}",
        server.log()
    );
}

/// The sources of the 1,000 sessions: 127.0.2.1 … 127.0.2.40, 25 each,
/// within the default caps of one source (32 connections, 8 handshakes).
const THOUSAND_SOURCES: usize = 40;

/// RSS is steady when the mean of the last 10 s of the hold is within this
/// much of the mean of its first 10 s (issue 15).
const STEADY: f64 = 0.05;

/// The means of the first and last `n` samples, and whether they are within
/// [`STEADY`] of each other.
fn steady(samples: &[u64], n: usize) -> (f64, f64, bool) {
    let n = n.clamp(1, samples.len().max(1));
    let mean = |s: &[u64]| s.iter().map(|&v| v as f64).sum::<f64>() / s.len().max(1) as f64;
    let (first, last) = (mean(&samples[..n]), mean(&samples[samples.len() - n..]));
    (first, last, (last / first - 1.0).abs() <= STEADY)
}

#[test]
fn the_steady_memory_criterion_catches_growth_and_loss() {
    assert!(steady(&[9000; 60], 10).2);
    // 0.1 % more every second for 60 s: about 5 % between the ends' means.
    let leaking: Vec<u64> = (0..60).map(|i| 9000 + 10 * i).collect();
    assert!(!steady(&leaking, 10).2);
    // A quarter freed half-way: not steady either.
    let freed: Vec<u64> = (0..60).map(|i| if i < 30 { 9000 } else { 6750 }).collect();
    assert!(!steady(&freed, 10).2);
}

/// How many lines of `proc` contain `needle`, once there are `want` or
/// `within` has passed.
async fn count_lines(proc: &Proc, needle: &str, want: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = proc.lines_with(needle).len();
        if n >= want || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A session from `source`, retrying (with a short backoff, at most
/// `tries` times, within [`WAIT`] in all) while the server refuses it with
/// `going away` (the source's 8 handshakes are running, or every connection
/// slot is taken). The session, or the last error; and the retries made.
async fn connect_retrying(
    source: std::net::IpAddr,
    addr: &Endpoint,
    client: &Arc<ClientConfig>,
    tries: usize,
    seed: u64,
) -> (Result<SecureStream<Stream>, String>, usize) {
    let started = Instant::now();
    let mut retries = 0;
    loop {
        match connect_from(source, addr, client).await {
            Ok(s) => return (Ok(s), retries),
            Err(e) => {
                let e = e.to_string();
                if !e.contains("going away") || retries + 1 >= tries || started.elapsed() > WAIT {
                    return (Err(e), retries);
                }
            }
        }
        retries += 1;
        // 50-150 ms, spread so the retries of one source do not come back
        // together.
        let jitter = (seed * 31 + retries as u64 * 17) % 100;
        tokio::time::sleep(Duration::from_millis(50 + jitter)).await;
    }
}

/// 1,000 sessions from 40 loopback addresses (25 each, within the default
/// per-source caps), each echoing 1 KiB about once a second for 72 s: none
/// lost (every echo answered, every session ends with reason=closed), and
/// the server's RSS, sampled every second for the last 60 s, is steady: the
/// mean of the last 10 s within 5 % of the mean of the first 10 s (issue 15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test (about 80 s): run by .ci/run"]
async fn a_thousand_sessions_with_traffic_for_60_s_without_error_and_with_flat_memory() {
    const SESSIONS: usize = 1000;
    const HOLD: Duration = Duration::from_secs(60);
    /// Before memory is measured, once every session is open: the ramp-up
    /// ran the handshakes on tokio's blocking threads, which end after 10 s
    /// idle, and their memory with them (about 5 MiB of 30 here).
    const SETTLE: Duration = Duration::from_secs(12);
    const SAMPLE_EVERY: Duration = Duration::from_secs(1);
    /// The samples of the first and of the last 10 s of the hold.
    const ENDS: usize = 10;
    /// Handshakes one source starts at once: the server's default cap.
    const HANDSHAKES_PER_SOURCE: usize = 8;
    /// Tries per session (the first included) when refused with going away.
    const TRIES: usize = 50;
    let _one = serial().await;
    // Our 1,000 client sockets, and the server's (its own limit is raised
    // by the same call, as its child inherits ours).
    ensure_nofile(4096);
    let pki = Pki::new("concurrent");
    // The server's default limits: 1,000 connections, 50 handshakes at once;
    // per source 32 connections and 8 handshakes. The sessions come from 40
    // loopback addresses, 25 each.
    let (mut server, addr) = echo_server(&pki, &[]).await;
    let client = pki.client_config();

    let opened = Instant::now();
    let errors = Arc::new(AtomicUsize::new(0));
    let messages = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let all_open = Arc::new(tokio::sync::Barrier::new(SESSIONS + 1));
    // Each source opens its sessions 8 at a time (in waves), and retries a
    // `going away` (the server frees a source's handshake slot a moment
    // after the client has its session).
    let waves: Vec<_> = (0..THOUSAND_SOURCES)
        .map(|_| Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_PER_SOURCE)))
        .collect();
    // The end of the hold, set once every session is open.
    let (set_until, until) = tokio::sync::watch::channel(None::<Instant>);
    let mut tasks = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let source = std::net::Ipv4Addr::new(127, 0, 2, (i % THOUSAND_SOURCES + 1) as u8).into();
        let (addr, client, all_open, mut until, errors, messages, retries, wave) = (
            addr.clone(),
            client.clone(),
            all_open.clone(),
            until.clone(),
            errors.clone(),
            messages.clone(),
            retries.clone(),
            waves[i % THOUSAND_SOURCES].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (session, retried) = {
                let _turn = wave.acquire().await.expect("never closed");
                connect_retrying(source, &addr, &client, TRIES, i as u64).await
            };
            retries.fetch_add(retried, Ordering::Relaxed);
            all_open.wait().await;
            let mut s = match session {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("session {i} from {source}: {e}");
                    errors.fetch_add(1, Ordering::Relaxed);
                    return 0;
                }
            };
            let Ok(until) = until
                .wait_for(Option::is_some)
                .await
                .map(|u| (*u).unwrap_or_else(Instant::now))
            else {
                return 0;
            };
            // Each session sends 1 KiB about once a second, spread out.
            tokio::time::sleep(Duration::from_millis((i as u64 * 997) % 1000)).await;
            let payload = chunk(i as u64, 0, 1024);
            let mut echoed = 0u64;
            while Instant::now() < until {
                let ok = async {
                    timeout(WAIT, s.send_message(&payload)).await.ok()?.ok()?;
                    let back = timeout(WAIT, s.recv_message()).await.ok()?.ok()??;
                    Some(back.len() == payload.len() + 6 && back[6..] == payload[..])
                };
                if ok.await != Some(true) {
                    eprintln!("session {i} from {source}: an echo failed");
                    errors.fetch_add(1, Ordering::Relaxed);
                    return echoed;
                }
                echoed += 1;
                messages.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if let Err(e) = close(s).await {
                eprintln!("session {i} from {source}: {e}");
                errors.fetch_add(1, Ordering::Relaxed);
            }
            echoed
        }));
    }
    timeout(Duration::from_secs(120), all_open.wait())
        .await
        .expect("every session opens (or fails) in time");
    let open_took = opened.elapsed();
    let open_errors = errors.load(Ordering::Relaxed);
    let open_at = Instant::now();
    let _ = set_until.send(Some(open_at + SETTLE + HOLD));
    let (rss_open, threads_open) = (server.rss_kib(), server.threads());
    tokio::time::sleep(SETTLE).await;
    let threads_settled = server.threads();
    let held = Instant::now();
    let mut samples = vec![server.rss_kib()];
    let mut tick = tokio::time::interval_at((held + SAMPLE_EVERY).into(), SAMPLE_EVERY);
    while held.elapsed() < HOLD {
        tick.tick().await;
        samples.push(server.rss_kib());
    }
    let mut echoed = Vec::with_capacity(SESSIONS);
    for t in tasks {
        echoed.push(
            timeout(WAIT, t)
                .await
                .expect("each session ends in time")
                .expect("session task"),
        );
    }
    let (first, last, ok) = flat(&samples);
    let (first10, last10, is_steady) = steady(&samples, ENDS);
    let errors = errors.load(Ordering::Relaxed);
    let ended = count_lines(&server, "reason=closed", SESSIONS, WAIT).await;
    let (fewest, most) = (
        echoed.iter().copied().min().unwrap_or(0),
        echoed.iter().copied().max().unwrap_or(0),
    );
    println!(
        "{SESSIONS} concurrent sessions from {THOUSAND_SOURCES} loopback addresses, default limits (1,000 connections, \
         50 handshakes; per source 32 connections, 8 handshakes): opened in {:.1} s ({open_errors} errors, {} retries \
         after `going away`), held {} s with 1 KiB echoes about once a second each: {} echoes ({fewest}-{most} a \
         session), {errors} errors in all; {ended} sessions ended with reason=closed\n  sc-server once all were open: \
         RSS {rss_open} KiB, {threads_open} threads; {} s later {threads_settled} threads; then RSS (KiB) every {} s \
         for {} s: {samples:?}\n  mean of the first {ENDS} s {first10:.0} KiB, of the last {ENDS} s {last10:.0} KiB: {:+.2} % \
         (limit ±{:.0} %)\n  median first third {first:.0} KiB, last third {last:.0} KiB: {:+.1} % (limit +{:.0} %)\n  \
         server log: {} `per-source limit` lines (rate-limited)",
        open_took.as_secs_f64(),
        retries.load(Ordering::Relaxed),
        (SETTLE + HOLD).as_secs(),
        messages.load(Ordering::Relaxed),
        SETTLE.as_secs(),
        SAMPLE_EVERY.as_secs(),
        HOLD.as_secs(),
        100.0 * (last10 / first10 - 1.0),
        STEADY * 100.0,
        100.0 * (last / first - 1.0),
        FLAT * 100.0,
        server.lines_with("per-source limit").len(),
    );
    assert_eq!(errors, 0, "sessions lost");
    // Every session echoed all along (about once a second).
    assert!(
        fewest >= (SETTLE + HOLD).as_secs() / 2,
        "a session echoed only {fewest} times"
    );
    assert!(
        is_steady,
        "the server's memory was not steady over the hold"
    );
    assert!(ok, "the server's memory grew");
    assert!(server.running());
    assert_eq!(ended, SESSIONS, "sessions that ended with reason=closed");
}

// ---------------------------------------------------------------------------
// (e) a flood of garbage and of slow clients

/// The first flight of a real client: its ClientHello record.
async fn client_hello(client: &Arc<ClientConfig>) -> Vec<u8> {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let config = client.clone();
    let handshake = tokio::spawn(async move {
        let name = ServerName::try_from(support::SERVER_NAME).expect("name");
        let _ = Connector::new(config).connect(name, None, ours).await;
    });
    let mut header = [0u8; 4];
    timeout(WAIT, theirs.read_exact(&mut header))
        .await
        .expect("a ClientHello in time")
        .expect("header");
    let len = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
    let mut body = vec![0u8; len];
    timeout(WAIT, theirs.read_exact(&mut body))
        .await
        .expect("a ClientHello in time")
        .expect("body");
    handshake.abort();
    [&header[..], &body].concat()
}

/// Legitimate sessions one after another: the handshake latencies (ms,
/// TCP connect included) of those that worked, and the errors of the others.
async fn legit_sessions(
    addr: &Endpoint,
    client: &Arc<ClientConfig>,
    n: usize,
    pace: Duration,
) -> (Vec<f64>, Vec<String>) {
    let mut ms = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        match connect(addr, client).await {
            Ok(mut s) => {
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                echo(&mut s, "legit").await;
                if let Err(e) = close(s).await {
                    errors.push(e);
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        tokio::time::sleep(pace).await;
    }
    (ms, errors)
}

fn summary(ms: &[f64]) -> String {
    let mut v = ms.to_vec();
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        percentile(&mut v, 50.0),
        percentile(&mut v, 90.0),
        percentile(&mut v, 100.0)
    )
}

/// Slow clients within the handshake limit (50 at once): 20 silent, 20
/// sending one byte a second; and garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test (about 15 s): run by .ci/run"]
async fn a_flood_of_garbage_and_slow_clients_within_the_handshake_limit_leaves_legitimate_clients_served(
) {
    flood_leaves_legitimate_clients_served(20, 20).await;
}

/// Slowloris beyond the handshake limit: 150 silent clients and 150 sending
/// one byte a second, against 50 handshakes at once (and 500 connections);
/// and garbage. Slow clients must not hold handshake slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test (about 15 s): run by .ci/run"]
async fn a_slowloris_beyond_the_handshake_limit_leaves_legitimate_clients_served() {
    flood_leaves_legitimate_clients_served(150, 150).await;
}

/// A flood of `silent` clients that send nothing, `trickling` ones that send
/// a real ClientHello one byte a second (each reconnects when cut), and
/// garbage connections in a loop, against an echo server with a 5 s
/// handshake timeout, 50 handshakes and 500 connections at once: 30
/// legitimate sessions one after another (spread over 7.5 s) must all work, each handshake
/// within 1 s. Prints their handshake latency without and with the
/// flood.
async fn flood_leaves_legitimate_clients_served(silent: usize, trickling: usize) {
    const LEGIT: usize = 30;
    const GARBAGE_TASKS: u64 = 4;
    const HANDSHAKE_TIMEOUT: u64 = 5;
    const SERVED_WITHIN_MS: f64 = 1000.0;
    let _one = serial().await;
    ensure_nofile(4096);
    let pki = Pki::new("flood");
    let timeout_secs = HANDSHAKE_TIMEOUT.to_string();
    let (mut server, addr) = echo_server(
        &pki,
        &[
            "--max-connections",
            "500",
            "--max-handshakes",
            "50",
            // The flood and the legitimate clients share one loopback
            // address: this measures the global limits, so the per-source
            // caps (tests/server.rs) are raised to them, and so is the wait
            // for a ClientHello (the trickling clients take their time).
            "--max-connections-per-source",
            "500",
            "--max-handshakes-per-source",
            "50",
            "--hello-timeout",
            &timeout_secs,
            "--handshake-timeout",
            &timeout_secs,
        ],
    )
    .await;
    let client = pki.client_config();
    let (quiet, quiet_errors) = legit_sessions(&addr, &client, LEGIT, Duration::ZERO).await;
    assert!(quiet_errors.is_empty(), "{quiet_errors:?}");

    let hello = Arc::new(client_hello(&client).await);
    let stop = Arc::new(AtomicBool::new(false));
    let garbage = Arc::new(AtomicU64::new(0));
    let slow_cut = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    // Garbage, three kinds in turn: random bytes; a ClientHello header with
    // a random body; a real ClientHello followed by random bytes (the server
    // does its first flight's work, then fails).
    for task in 0..GARBAGE_TASKS {
        let (addr, hello, stop, garbage) =
            (addr.clone(), hello.clone(), stop.clone(), garbage.clone());
        flood.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let noise = chunk(task, n, hello.len());
                let bytes = match n % 3 {
                    0 => noise,
                    1 => [&hello[..4], &noise[..hello.len() - 4]].concat(),
                    _ => [&hello[..], &noise].concat(),
                };
                let Ok(Ok(mut conn)) = timeout(WAIT, addr.connect()).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let _ = conn.write_all(&bytes).await;
                let mut sink = Vec::new();
                let _ = timeout(WAIT, conn.read_to_end(&mut sink)).await;
                garbage.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Slow clients: silent ones, and ones that send a real ClientHello one
    // byte a second. Each reconnects when the server cuts it.
    for i in 0..silent + trickling {
        let (addr, hello, stop, slow_cut) =
            (addr.clone(), hello.clone(), stop.clone(), slow_cut.clone());
        let trickle = i >= silent;
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok(mut conn)) = timeout(WAIT, addr.connect()).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let mut sent = 0;
                let mut buf = [0u8; 64];
                loop {
                    if trickle
                        && sent < hello.len()
                        && conn.write_all(&hello[sent..=sent]).await.is_err()
                    {
                        break;
                    }
                    sent += 1;
                    // Closed by the server (read 0 or an error) or a second passed.
                    match timeout(Duration::from_secs(1), conn.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(_)) | Err(_) => {}
                    }
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                slow_cut.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Let the slow clients take their places, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flood_started = Instant::now();
    // Spread over more than the handshake timeout, so slow clients are cut
    // and come back while the legitimate ones connect.
    let (during, during_errors) =
        legit_sessions(&addr, &client, LEGIT, Duration::from_millis(250)).await;
    let flood_took = flood_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in &flood {
        task.abort();
    }
    println!(
        "legitimate sessions, {LEGIT} one after another (handshake timeout {HANDSHAKE_TIMEOUT} s, 50 handshakes at once, \
         500 connections):\n  without a flood: {}\n  during a flood of {silent} silent and {trickling} one-byte-a-second \
         clients and {GARBAGE_TASKS} garbage loops: {} ({} failed: {:?})\n  \
         in those {:.1} s: {} garbage connections, {} slow clients cut; server log: {} `handshake failed` lines (rate-limited)",
        summary(&quiet),
        summary(&during),
        during_errors.len(),
        during_errors.first(),
        flood_took.as_secs_f64(),
        garbage.load(Ordering::Relaxed),
        slow_cut.load(Ordering::Relaxed),
        server.lines_with("handshake failed").len(),
    );
    assert!(
        during_errors.is_empty(),
        "legitimate clients failed during the flood: {during_errors:?}"
    );
    // Served means promptly, not just before the timeout: a legitimate
    // client that waits for slow ones to be cut (5 s) is not served.
    let max = during.iter().copied().fold(0.0, f64::max);
    assert!(
        max < SERVED_WITHIN_MS,
        "a legitimate handshake took {max:.0} ms during the flood (limit {SERVED_WITHIN_MS} ms)"
    );
    assert!(server.running());
}

// ---------------------------------------------------------------------------
// (f) under attack from two sources, at the server's default limits (issue 15)

/// The silent attacker's address.
const SILENT_SOURCE: [u8; 4] = [127, 0, 0, 2];
/// The address that sends bogus ClientHellos.
const BOGUS_SOURCE: [u8; 4] = [127, 0, 0, 3];

/// Legitimate client `i`'s address: 127.0.1.1 …
fn legit_source(i: usize) -> std::net::IpAddr {
    std::net::Ipv4Addr::new(127, 0, 1, u8::try_from(i + 1).expect("at most 254 clients")).into()
}

/// Sends `msg` and expects `echo: msg`, within [`WAIT`]; why not.
async fn try_echo(stream: &mut SecureStream<Stream>, msg: &str) -> Result<(), String> {
    timeout(WAIT, stream.send_message(msg.as_bytes()))
        .await
        .map_err(|_| "echo: send timed out".to_string())?
        .map_err(|e| format!("echo: send: {e}"))?;
    let answer = timeout(WAIT, stream.recv_message())
        .await
        .map_err(|_| "echo: answer timed out".to_string())?
        .map_err(|e| format!("echo: answer: {e}"))?
        .ok_or_else(|| "echo: closed without an answer".to_string())?;
    if answer != format!("echo: {msg}").as_bytes() {
        return Err("echo: a wrong answer".into());
    }
    Ok(())
}

/// What legitimate clients saw.
#[derive(Debug, Default)]
struct LegitRun {
    /// Sessions tried.
    attempts: usize,
    /// Handshake latencies (ms, TCP connect included) of the sessions that
    /// went through (handshake, echo, close).
    ms: Vec<f64>,
    /// The others' errors, by what they said, with how many.
    errors: std::collections::BTreeMap<String, usize>,
}

impl LegitRun {
    fn failed(&self) -> usize {
        self.errors.values().sum()
    }

    fn success_percent(&self) -> f64 {
        100.0 * self.ms.len() as f64 / self.attempts.max(1) as f64
    }

    fn p(&self, p: f64) -> f64 {
        percentile(&mut self.ms.clone(), p)
    }
}

/// `clients` legitimate clients, client `i` from [`legit_source`]`(i)`,
/// each in a loop for `run_for` (at most `max_each` sessions): a session
/// (handshake, one echo, close), then `pause`.
async fn legit_clients(
    addr: &Endpoint,
    client: &Arc<ClientConfig>,
    clients: usize,
    run_for: Duration,
    pause: Duration,
    max_each: usize,
) -> LegitRun {
    let until = Instant::now() + run_for;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (addr, client) = (addr.clone(), client.clone());
            tokio::spawn(async move {
                let source = legit_source(i);
                let mut run = LegitRun::default();
                while Instant::now() < until && run.attempts < max_each {
                    run.attempts += 1;
                    let t = Instant::now();
                    let done = match connect_from(source, &addr, &client).await {
                        Ok(mut s) => {
                            let ms = t.elapsed().as_secs_f64() * 1e3;
                            match try_echo(&mut s, "legit").await {
                                Ok(()) => close(s).await.map(|()| ms),
                                Err(e) => Err(e),
                            }
                        }
                        Err(e) => Err(format!("handshake: {e}")),
                    };
                    match done {
                        Ok(ms) => run.ms.push(ms),
                        Err(e) => *run.errors.entry(e).or_default() += 1,
                    }
                    tokio::time::sleep(pause).await;
                }
                run
            })
        })
        .collect();
    let mut all = LegitRun::default();
    for task in tasks {
        let run = timeout(run_for + 3 * WAIT, task)
            .await
            .expect("a legitimate client ends in time")
            .expect("legitimate client task");
        all.attempts += run.attempts;
        all.ms.extend(run.ms);
        for (e, n) in run.errors {
            *all.errors.entry(e).or_default() += n;
        }
    }
    all
}

/// What the silent attacker saw: connections the server took and held
/// (no byte from it for [`SILENT_HELD_AFTER`]), and ones it answered at
/// once (refused).
#[derive(Debug, Default)]
struct SilentCounts {
    opened: AtomicU64,
    connect_failed: AtomicU64,
    refused_going_away: AtomicU64,
    refused_other: AtomicU64,
    /// Held, then cut by the server (the timeout alert after 5 s).
    cut_after_hold: AtomicU64,
    /// Held now.
    held: AtomicU64,
}

/// A silent connection the server has not answered for this long is one it
/// holds (a refusal comes at once).
const SILENT_HELD_AFTER: Duration = Duration::from_millis(500);

/// What the first bytes from the server on a connection were.
fn first_answer(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xc2, 0, 0, 1, 0x15, ..] => "going away",
        [0xc2, 0, 0, 1, 0x13, ..] => "timeout",
        [0xc2, ..] => "another alert",
        // A HelloRetry (SPEC §4.5): an HMAC, no key exchange.
        [0xc1, _, _, _, 0x81, ..] => "a cookie retry",
        [0xc1, ..] => "a handshake record",
        [] => "the end",
        _ => "other bytes",
    }
}

/// Reads what the server sends first (at most 5 bytes: an alert record),
/// within `within`: `None` if nothing came.
async fn read_first(conn: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut buf = [0u8; 5];
    let mut got = 0;
    let read = timeout(within, async {
        while got < buf.len() {
            match conn.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    (read.is_ok() || got > 0).then(|| buf[..got].to_vec())
}

/// Source A: `conns` silent connections from [`SILENT_SOURCE`], each
/// re-opened (after `reopen_after`, at most `max_each` times) when the
/// server closes it, until `stop`.
fn silent_attacker(
    to: std::net::SocketAddr,
    conns: usize,
    reopen_after: Duration,
    max_each: usize,
    stop: &Arc<AtomicBool>,
    counts: &Arc<SilentCounts>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..conns)
        .map(|_| {
            let (stop, counts) = (stop.clone(), counts.clone());
            tokio::spawn(async move {
                for _ in 0..max_each {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let source = std::net::IpAddr::from(SILENT_SOURCE);
                    let Ok(mut conn) = tcp_from(source, to, Duration::from_secs(5)).await else {
                        counts.connect_failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(reopen_after).await;
                        continue;
                    };
                    #[allow(deprecated)] // SO_LINGER 0: a reset, no TIME_WAIT
                    let _ = conn.set_linger(Some(Duration::ZERO));
                    counts.opened.fetch_add(1, Ordering::Relaxed);
                    match read_first(&mut conn, SILENT_HELD_AFTER).await {
                        Some(first) => {
                            let n = match first_answer(&first) {
                                "going away" => &counts.refused_going_away,
                                _ => &counts.refused_other,
                            };
                            n.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            counts.held.fetch_add(1, Ordering::Relaxed);
                            // Until the server cuts it (its 5 s wait for a
                            // ClientHello) or the attack ends.
                            let cut = async {
                                loop {
                                    if read_first(&mut conn, Duration::from_millis(250))
                                        .await
                                        .is_some()
                                    {
                                        return true;
                                    }
                                    if stop.load(Ordering::Relaxed) {
                                        return false;
                                    }
                                }
                            };
                            let cut = timeout(3 * WAIT, cut).await.unwrap_or(false);
                            counts.held.fetch_sub(1, Ordering::Relaxed);
                            if cut {
                                counts.cut_after_hold.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    drop(conn);
                    tokio::time::sleep(reopen_after).await;
                }
            })
        })
        .collect()
}

/// What source B's bogus ClientHellos got.
#[derive(Debug, Default)]
struct BogusCounts {
    /// Connections made and a ClientHello written.
    sent: AtomicU64,
    /// Not started: too many of ours still open (the attacker's own bound).
    skipped: AtomicU64,
    connect_failed: AtomicU64,
    /// Answered with the server's first flight: it did the key exchange.
    handshake: AtomicU64,
    /// Answered with a HelloRetry (the server was busy: SPEC §4.5).
    cookie_retry: AtomicU64,
    going_away: AtomicU64,
    /// Nothing within the read timeout, or other answers.
    other: AtomicU64,
}

/// Source B: a real ClientHello record on a fresh connection from
/// [`BOGUS_SOURCE`], `per_tick` of them every `tick` (a tokio interval:
/// late ticks are made up at once) until `stop`; each reads the first
/// answer for at most `read_for`, then resets the connection. At most
/// `in_flight` open at once. Returns when stopped.
#[allow(clippy::too_many_arguments)]
async fn bogus_hellos(
    to: std::net::SocketAddr,
    hello: Arc<Vec<u8>>,
    tick: Duration,
    per_tick: usize,
    read_for: Duration,
    in_flight: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<BogusCounts>,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut interval = tokio::time::interval(tick);
    while !stop.load(Ordering::Relaxed) {
        interval.tick().await;
        for _ in 0..per_tick {
            let Ok(permit) = open.clone().try_acquire_owned() else {
                counts.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (hello, counts) = (hello.clone(), counts.clone());
            // Each ends within its connect and read timeouts.
            tokio::spawn(async move {
                let _permit = permit;
                let source = std::net::IpAddr::from(BOGUS_SOURCE);
                let Ok(mut conn) = tcp_from(source, to, Duration::from_secs(5)).await else {
                    counts.connect_failed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                #[allow(deprecated)] // SO_LINGER 0: a reset, no TIME_WAIT
                let _ = conn.set_linger(Some(Duration::ZERO));
                if conn.write_all(&hello).await.is_err() {
                    counts.connect_failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                counts.sent.fetch_add(1, Ordering::Relaxed);
                let first = read_first(&mut conn, read_for).await.unwrap_or_default();
                let n = match first_answer(&first) {
                    "a handshake record" => &counts.handshake,
                    "a cookie retry" => &counts.cookie_retry,
                    "going away" => &counts.going_away,
                    _ => &counts.other,
                };
                n.fetch_add(1, Ordering::Relaxed);
            });
        }
    }
    // Those still open end within their read timeout.
    let _ = timeout(WAIT, async {
        while open.available_permits() < in_flight {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Under attack from two sources at the server's default limits, 50
/// legitimate clients, each from its own address, keep connecting: source
/// A holds 1,000 silent connections (re-opened when cut), source B sends
/// 2,000 bogus ClientHellos a second (a real ClientHello, replayed, then
/// abandoned). At least 99 % of the legitimate sessions go through, and
/// their handshake p99 stays within 3× the p99 without an attack. Prints
/// the server's CPU time per bogus ClientHello next to its CPU time per
/// legitimate handshake (the target of a later cookie mechanism is ≤ 5 %).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test (about 75 s): run by .ci/run"]
async fn under_attack_from_two_sources_fifty_legitimate_clients_keep_connecting() {
    const LEGIT: usize = 50;
    /// Each legitimate client's pause between sessions.
    const LEGIT_PAUSE: Duration = Duration::from_millis(0);
    const IDLE: Duration = Duration::from_secs(10);
    const ATTACK: Duration = Duration::from_secs(60);
    /// From the attack's start to the legitimate clients' (A takes its
    /// places).
    const ATTACK_WARMUP: Duration = Duration::from_secs(2);
    const SILENT: usize = 1000;
    const SILENT_REOPEN_AFTER: Duration = Duration::from_secs(1);
    const BOGUS_PER_SECOND: usize = 2000;
    const BOGUS_TICK: Duration = Duration::from_millis(10);
    const BOGUS_READ_FOR: Duration = Duration::from_millis(200);
    const BOGUS_IN_FLIGHT: usize = 512;
    const MIN_SUCCESS_PERCENT: f64 = 99.0;
    const MAX_P99_RATIO: f64 = 3.0;
    let _one = serial().await;
    // A's 1,000, B's up to 512, the legitimate 50; the server's (its child
    // inherits the limit).
    ensure_nofile(8192);
    let pki = Pki::new("attack");
    // Default limits: 1,000 connections, 50 handshakes; per source 32
    // connections and 8 handshakes; 5 s for the ClientHello, 30 s for the
    // handshake.
    let (mut server, addr) = echo_server(&pki, &[]).await;
    let to = support::socket_addr(&addr);
    let client = pki.client_config();
    let max_each = 100_000;

    // Warm up (one session per client), then the same loop without an attack.
    let warm = legit_clients(&addr, &client, LEGIT, Duration::ZERO, LEGIT_PAUSE, 1).await;
    assert_eq!(warm.failed(), 0, "{:?}", warm.errors);
    let cpu = server.cpu_secs();
    let idle = legit_clients(&addr, &client, LEGIT, IDLE, LEGIT_PAUSE, max_each).await;
    let idle_cpu = server.cpu_secs() - cpu;
    assert_eq!(idle.failed(), 0, "without an attack: {:?}", idle.errors);
    let cpu_per_legit = idle_cpu / idle.ms.len().max(1) as f64;

    // The attack.
    let hello = Arc::new(client_hello(&client).await);
    let stop = Arc::new(AtomicBool::new(false));
    let silent = Arc::new(SilentCounts::default());
    let bogus = Arc::new(BogusCounts::default());
    let cpu = server.cpu_secs();
    let (overflows, cookies) = (
        support::tcp_ext("ListenOverflows"),
        support::tcp_ext("SyncookiesSent"),
    );
    let attack_started = Instant::now();
    let silent_tasks = silent_attacker(
        to,
        SILENT,
        SILENT_REOPEN_AFTER,
        (ATTACK.as_secs() * 2) as usize,
        &stop,
        &silent,
    );
    let bogus_task = tokio::spawn(bogus_hellos(
        to,
        hello,
        BOGUS_TICK,
        BOGUS_PER_SECOND * BOGUS_TICK.as_millis() as usize / 1000,
        BOGUS_READ_FOR,
        BOGUS_IN_FLIGHT,
        stop.clone(),
        bogus.clone(),
    ));
    // Every second: how many of A's connections are open without an answer
    // on A's side, and how many the server's side has (from the kernel:
    // they differ by the connections whose last ACK the server's kernel
    // dropped, its accept queue full).
    let held_samples = tokio::spawn({
        let (silent, stop) = (silent.clone(), stop.clone());
        async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for _ in 0..(ATTACK + ATTACK_WARMUP).as_secs() * 2 {
                tick.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let ours = silent.held.load(Ordering::Relaxed);
                let theirs = tokio::task::spawn_blocking(move || {
                    support::established(to, SILENT_SOURCE.into())
                })
                .await
                .expect("ss");
                samples.push((ours, theirs as u64));
            }
            samples
        }
    });
    tokio::time::sleep(ATTACK_WARMUP).await;
    let during = legit_clients(&addr, &client, LEGIT, ATTACK, LEGIT_PAUSE, max_each).await;
    stop.store(true, Ordering::Relaxed);
    let attack_took = attack_started.elapsed();
    let attack_cpu = server.cpu_secs() - cpu;
    timeout(2 * WAIT, bogus_task)
        .await
        .expect("the bogus ClientHellos end in time")
        .expect("bogus task");
    for task in silent_tasks {
        if timeout(Duration::from_secs(5), task).await.is_err() {
            panic!("a silent connection did not end in time");
        }
    }
    let overflows = support::tcp_ext("ListenOverflows") - overflows;
    let cookies = support::tcp_ext("SyncookiesSent") - cookies;
    let held_samples = held_samples.await.expect("sampler");
    let spread = |of: fn(&(u64, u64)) -> u64| {
        let mut v: Vec<f64> = held_samples.iter().map(|s| of(s) as f64).collect();
        let max = v.iter().copied().fold(0.0, f64::max);
        (median(&mut v), max)
    };
    let (ours_median, ours_max) = spread(|s| s.0);
    let (theirs_median, theirs_max) = spread(|s| s.1);

    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let attack_secs = attack_took.as_secs_f64();
    let bogus_sent = load(&bogus.sent);
    let bogus_rate = bogus_sent as f64 / attack_secs;
    let cpu_per_bogus = attack_cpu / bogus_sent.max(1) as f64;
    // The same, without the legitimate sessions' share (at the idle cost).
    let cpu_per_bogus_net =
        (attack_cpu - during.ms.len() as f64 * cpu_per_legit).max(0.0) / bogus_sent.max(1) as f64;
    let (idle_p50, idle_p99) = (idle.p(50.0), idle.p(99.0));
    let (attack_p50, attack_p99) = (during.p(50.0), during.p(99.0));
    let ratio = attack_p99 / idle_p99;
    println!(
        "sc-server at its default limits (1,000 connections, 50 handshakes; per source 32 connections and 8 \
         handshakes; 5 s for a ClientHello, 30 s for a handshake); {LEGIT} legitimate clients from 127.0.1.1-{LEGIT}, \
         each in a loop (handshake, one echo, close, pause {} ms)\n  \
         without an attack ({} s): {} sessions, {:.2} % went through; handshake p50 {idle_p50:.1} ms, p99 \
         {idle_p99:.1} ms; server CPU {idle_cpu:.2} s = {:.3} ms a legitimate session\n  \
         under attack ({} s): {} sessions, {:.2} % went through (limit ≥ {MIN_SUCCESS_PERCENT} %); handshake p50 \
         {attack_p50:.1} ms, p99 {attack_p99:.1} ms: {ratio:.2}× the p99 without an attack (limit {MAX_P99_RATIO}×); \
         failures: {:?}\n  \
         source A (127.0.0.2, {SILENT} silent connections, each re-opened {} s after the server closes it): \
         {} opened, {} refused with going away ({} other answers), {} connect failures; {} cut by the server \
         after being held (its ClientHello wait); sampled every 1 s, open without an answer on A's side: median \
         {ours_median:.0}, at most {ours_max:.0}; the server's side of them (kernel, ss): median \
         {theirs_median:.0}, at most {theirs_max:.0} (the rest are connections whose last ACK the server's kernel \
         dropped: its accept queue overflowed {overflows} times, {cookies} SYN cookies sent, counted on the \
         whole host)\n  \
         source B (127.0.0.3, a real ClientHello replayed on a fresh connection, {BOGUS_PER_SECOND}/s asked): \
         {bogus_sent} sent in {attack_secs:.1} s = {bogus_rate:.0}/s achieved ({} not sent: {BOGUS_IN_FLIGHT} of \
         ours still open; {} connect failures); answered with a handshake flight {}, a cookie retry {}, going \
         away {}, nothing within {} ms or other {}\n  \
         server CPU during the attack {attack_cpu:.2} s = {:.3} ms per bogus ClientHello ({:.1} % of a \
         legitimate session's {:.3} ms); without the legitimate sessions' share ({} × {:.3} ms; A's still in it): \
         {:.3} ms per bogus ClientHello = {:.1} % (a cookie's target: ≤ 5 %); server log: {} `per-source limit`, {} \
         `handshake failed` lines (both rate-limited)",
        LEGIT_PAUSE.as_millis(),
        IDLE.as_secs(),
        idle.attempts,
        idle.success_percent(),
        cpu_per_legit * 1e3,
        ATTACK.as_secs(),
        during.attempts,
        during.success_percent(),
        during.errors,
        SILENT_REOPEN_AFTER.as_secs(),
        load(&silent.opened),
        load(&silent.refused_going_away),
        load(&silent.refused_other),
        load(&silent.connect_failed),
        load(&silent.cut_after_hold),
        load(&bogus.skipped),
        load(&bogus.connect_failed),
        load(&bogus.handshake),
        load(&bogus.cookie_retry),
        load(&bogus.going_away),
        BOGUS_READ_FOR.as_millis(),
        load(&bogus.other),
        cpu_per_bogus * 1e3,
        100.0 * cpu_per_bogus / cpu_per_legit,
        cpu_per_legit * 1e3,
        during.ms.len(),
        cpu_per_legit * 1e3,
        cpu_per_bogus_net * 1e3,
        100.0 * cpu_per_bogus_net / cpu_per_legit,
        server.lines_with("per-source limit").len(),
        server.lines_with("handshake failed").len(),
    );
    assert!(server.running());
    // The attack took place: B near its rate, A holding what it could.
    assert!(
        bogus_rate >= BOGUS_PER_SECOND as f64 / 2.0,
        "source B sent only {bogus_rate:.0} bogus ClientHellos a second"
    );
    assert!(
        load(&silent.opened) >= SILENT as u64 && theirs_max >= 1.0,
        "source A opened {} connections, the server held at most {theirs_max}",
        load(&silent.opened)
    );
    assert!(
        during.success_percent() >= MIN_SUCCESS_PERCENT,
        "{:.2} % of the legitimate sessions went through under attack: {:?}",
        during.success_percent(),
        during.errors
    );
    assert!(
        ratio <= MAX_P99_RATIO,
        "the legitimate handshakes' p99 under attack is {ratio:.2}× the p99 without"
    );
}

/// What a bogus ClientHello costs the server with the cookie retry on
/// (`--cookies always`) and off, against a legitimate session, each server
/// measured in the same run: 2,000 replayed ClientHellos a second from one
/// source for 10 s (each abandoned after the first answer), then
/// legitimate sessions one after another for 10 s (handshake, one echo,
/// close). The server's CPU time (from /proc) per bogus ClientHello with
/// cookies must be at most 5 % of its CPU time per legitimate session
/// (issue 15); the one without cookies is printed beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test (about 45 s): run by .ci/run"]
async fn a_bogus_client_hello_costs_a_busy_server_at_most_5_percent_of_a_session() {
    const BOGUS_PER_SECOND: usize = 2000;
    const BOGUS_TICK: Duration = Duration::from_millis(10);
    const BOGUS_FOR: Duration = Duration::from_secs(10);
    const BOGUS_READ_FOR: Duration = Duration::from_millis(200);
    const BOGUS_IN_FLIGHT: usize = 512;
    const LEGIT_FOR: Duration = Duration::from_secs(10);
    const TARGET: f64 = 0.05;
    let _one = serial().await;
    ensure_nofile(8192);
    let pki = Pki::new("cookie-cost");
    let client = pki.client_config();
    let hello = Arc::new(client_hello(&client).await);
    let mut rows = Vec::new();
    for mode in ["always", "off"] {
        let (mut server, addr) = echo_server(&pki, &["--cookies", mode]).await;
        let to = support::socket_addr(&addr);
        // Warm up, then the legitimate sessions alone.
        let warm = legit_clients(&addr, &client, 1, Duration::ZERO, Duration::ZERO, 20).await;
        assert_eq!(warm.failed(), 0, "{:?}", warm.errors);
        let cpu = server.cpu_secs();
        let legit = legit_clients(&addr, &client, 1, LEGIT_FOR, Duration::ZERO, 100_000).await;
        let per_session = (server.cpu_secs() - cpu) / legit.ms.len().max(1) as f64;
        assert_eq!(legit.failed(), 0, "{:?}", legit.errors);

        let counts = Arc::new(BogusCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let cpu = server.cpu_secs();
        let started = Instant::now();
        let task = tokio::spawn(bogus_hellos(
            to,
            hello.clone(),
            BOGUS_TICK,
            BOGUS_PER_SECOND * BOGUS_TICK.as_millis() as usize / 1000,
            BOGUS_READ_FOR,
            BOGUS_IN_FLIGHT,
            stop.clone(),
            counts.clone(),
        ));
        tokio::time::sleep(BOGUS_FOR).await;
        stop.store(true, Ordering::Relaxed);
        timeout(2 * WAIT, task)
            .await
            .expect("the bogus ClientHellos end in time")
            .expect("bogus task");
        // Let the server finish the last ones.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let bogus_cpu = server.cpu_secs() - cpu;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let sent = load(&counts.sent);
        let per_bogus = bogus_cpu / sent.max(1) as f64;
        println!(
            "--cookies {mode}: {} legitimate sessions in {} s, server CPU {:.3} ms each; {sent} bogus ClientHellos \
             in {:.1} s ({:.0}/s), answered with a cookie retry {}, a handshake flight {}, going away {}, \
             other {}: server CPU {bogus_cpu:.2} s = {:.1} µs each = {:.2} % of a legitimate session",
            legit.ms.len(),
            LEGIT_FOR.as_secs(),
            per_session * 1e3,
            started.elapsed().as_secs_f64(),
            sent as f64 / started.elapsed().as_secs_f64(),
            load(&counts.cookie_retry),
            load(&counts.handshake),
            load(&counts.going_away),
            load(&counts.other),
            per_bogus * 1e6,
            100.0 * per_bogus / per_session,
        );
        assert!(server.running());
        rows.push((
            mode,
            per_bogus / per_session,
            load(&counts.cookie_retry),
            sent,
        ));
    }
    let (_, with_cookies, retries, sent) = rows[0];
    let (_, without, _, _) = rows[1];
    println!(
        "a bogus ClientHello costs the server {:.2} % of a legitimate session with cookies, {:.2} % without: \
         {:.1}× less (target with cookies ≤ {:.0} %)",
        with_cookies * 100.0,
        without * 100.0,
        without / with_cookies,
        TARGET * 100.0
    );
    // Every bogus ClientHello that was answered got a retry, not a flight.
    assert!(
        retries as f64 >= 0.9 * sent as f64,
        "{retries} retries for {sent} sent"
    );
    assert!(
        with_cookies <= TARGET,
        "a bogus ClientHello costs {:.2} % of a session with cookies (target ≤ {:.0} %)",
        with_cookies * 100.0,
        TARGET * 100.0
    );
}
