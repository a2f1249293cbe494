//! A 64-byte ping-pong stream next to a saturating bulk stream in the same
//! session: the tunnel (`sc-client --listen` → `sc-server --forward`) vs
//! the same pair of connections as two channels of one SSH connection
//! (`ssh -L` → `sshd`), both started by this bench and measured in the same
//! run.
//!
//! Target (the issue's): ping-pong p50 next to bulk, sc / ssh -L ≤ 1.0. The
//! bench prints the figures and the ratios; it never asserts a speed.
//!
//! How:
//!
//! * one backend listener in this process: a connection starting with `B`
//!   is a bulk sink (read and discard until EOF, bytes counted), one
//!   starting with `P` a ping-pong echo (64 bytes in, the same 64 out,
//!   until EOF); TCP_NODELAY everywhere;
//! * sc: the real binaries of this package (`CARGO_BIN_EXE_*`, built by
//!   `cargo bench` in the bench profile), a throwaway CA, server and client
//!   certificate written as PEM files into a temporary directory (removed at
//!   the end), `--cipher aes-256-gcm`; sc-client keeps its default one
//!   session, so the two local connections are two streams of it;
//! * ssh -L: `/usr/sbin/sshd` and `ssh` set up as the anchors
//!   (`anchors.py`) set them up: throw-away ed25519 host and user keys,
//!   the same sshd_config, the same client options, `Ciphers
//!   aes256-gcm@openssh.com`; the two local connections are two channels of
//!   one SSH connection. Without sshd, ssh or ssh-keygen the bench says so
//!   in one line and measures sc alone. sshd needs root (as the anchors).
//! * per tunnel and round: (1) ping-pong alone: one `P` connection through
//!   the tunnel, 200 warm-up and 2,000 timed round trips of 64 bytes, each
//!   timed; (2) next to bulk: one `B` connection written with 64 KiB chunks
//!   as fast as the tunnel takes them; 0.5 s after the first bulk bytes
//!   reach the sink, the same ping-pong on a new `P` connection; then the
//!   bulk stops, and its throughput is the bytes the sink counted during
//!   the timed round trips over their duration;
//! * rounds interleaved (sc, ssh -L, sc, ssh -L, …) so drift of the machine
//!   hits both alike; the round trips of all rounds are merged per tunnel
//!   and condition into one p50 and p99; bulk is the median of the rounds.
//!
//! The round trips are timed on a plain blocking thread (std sockets, as
//! the anchors' `rtt` test), so the bench's async runtime (backend and bulk
//! writer) adds no scheduling of its own to the client side. Every wait is
//! bounded: 10 s to start a tunnel, 10 s for any one connect, round trip or
//! bulk write (longer is reported as a hung connection and ends the run
//! with an error), 60 s for a ping-pong phase (cut short there, and said
//! so); every child process is killed at the end, on error and on panic.
//!
//! On a 2-core machine the CPUs are shared by everything at once: next to
//! bulk, the bulk writer and sink (this process) and both tunnel processes
//! want more than the two cores, and a round trip passes through four
//! processes or threads (client, entry, exit, echo) that may each wait
//! behind a bulk thread for the CPU. The p50 next to bulk is then largely
//! scheduling delay plus whatever the tunnel queues ahead of the ping, and
//! bulk Gbit/s is CPU-bound, not link-bound. Both tunnels see the same
//! conditions in the same run, so the ratios compare like with like; the
//! absolute figures are not those of a machine where each side has a core
//! of its own (sc's processes are multi-threaded, ssh's are not: with more
//! cores sc can spread, ssh cannot, which this machine cannot show).
//!
//! Run: `cargo bench --bench mixed` (release binaries; the first build takes
//! a few minutes). Environment: `MIXED_ROUNDS=N` (default 3),
//! `MIXED_CIPHER=chacha` for ChaCha20-Poly1305 on both sides (default
//! `aes`: AES-256-GCM). Under `cargo test --benches` (no `--bench`
//! argument) it measures nothing.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::OsRng;
use sovereign_chain::pki::{
    cert_to_pem, issue_leaf, issue_root, Issuer, KeyPair, LeafSpec, UnixTime, Validity,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, timeout};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Bytes per ping and per pong.
const PING: usize = 64;
/// Untimed round trips before the timed ones, per connection.
const WARMUP: usize = 200;
/// Timed round trips per connection.
const TIMED: usize = 2_000;
/// Bytes per bulk write.
const CHUNK: usize = 64 << 10;
/// Bulk alone before the ping-pong starts next to it.
const BULK_LEAD: Duration = Duration::from_millis(500);
/// The bound on starting a tunnel (until its listener is up).
const START: Duration = Duration::from_secs(10);
/// The bound on any one connect, round trip or bulk write.
const IO: Duration = Duration::from_secs(10);
/// The bound on a ping-pong phase, and on draining the bulk stream.
const PHASE: Duration = Duration::from_secs(60);
/// A pause between phases, so one phase's tail does not overlap the next.
const SETTLE: Duration = Duration::from_millis(200);
/// Rounds without `MIXED_ROUNDS`.
const ROUNDS: usize = 3;
/// The name on the server certificate.
const SERVER_NAME: &str = "server.test";
const SSHD: &str = "/usr/sbin/sshd";
/// The anchors' sshd_config (`anchors.py`, `SSHD_CONF`).
const SSHD_CONF: &str = "Port {port}
ListenAddress 127.0.0.1
HostKey {w}/host_key
PidFile none
AuthorizedKeysFile {w}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com
KexAlgorithms curve25519-sha256
HostKeyAlgorithms ssh-ed25519
Compression no
LogLevel ERROR
";

fn main() -> ExitCode {
    match mode() {
        Mode::List => {
            println!("mixed: benchmark");
            return ExitCode::SUCCESS;
        }
        Mode::Skip(why) => {
            println!("mixed: not measured ({why}); run `cargo bench --bench mixed`");
            return ExitCode::SUCCESS;
        }
        Mode::Measure => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a bench without a tokio runtime cannot run");
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mixed: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the command line asks for.
enum Mode {
    Measure,
    List,
    Skip(&'static str),
}

/// Criterion's rule: measure only under `--bench` (which `cargo bench`
/// passes), not under `--test` (`cargo test --benches`); a filter that
/// does not match "mixed" skips the bench, as it would a criterion one.
fn mode() -> Mode {
    let mut bench = false;
    let mut filters = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bench" => bench = true,
            "--list" => return Mode::List,
            "--test" => return Mode::Skip("test mode"),
            a if a.starts_with('-') => {}
            a => filters.push(a.to_owned()),
        }
    }
    if !bench {
        Mode::Skip("no --bench argument")
    } else if !filters.is_empty() && !filters.iter().any(|f| "mixed".contains(f.as_str())) {
        Mode::Skip("filtered out")
    } else {
        Mode::Measure
    }
}

async fn run() -> Result<(), Error> {
    let cipher = Cipher::from_env()?;
    let rounds = rounds_from_env()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = TempDir::new()?;
    write_pki(&dir)?;
    let backend = Backend::start().await?;
    let mut ports = Ports::default();

    let sc = start_sc(&dir, &mut ports, backend.addr, cipher).await?;
    if let Err(e) = check(&sc, &backend).await {
        return Err(format!("the sc tunnel does not work: {e}\n{}", sc.logs()).into());
    }
    let ssh = match ssh_missing() {
        Some(what) => {
            println!(
                "mixed: ssh -L not measured: {what} missing \
                 (apt-get install openssh-server openssh-client)"
            );
            None
        }
        None => match start_ssh(&dir, &mut ports, backend.addr, cipher).await {
            Ok(t) => match check(&t, &backend).await {
                Ok(()) => Some(t),
                Err(e) => {
                    println!(
                        "mixed: ssh -L not measured: it does not work: {e}\n{}",
                        t.logs()
                    );
                    t.stop().await;
                    None
                }
            },
            Err(e) => {
                println!("mixed: ssh -L not measured: {e}");
                None
            }
        },
    };

    println!(
        "mixed: 64 B ping-pong next to a saturating bulk stream in one session; {}; \
         {rounds} round(s) of {WARMUP} + {TIMED} round trips per condition; {cores} cores",
        cipher.label()
    );
    let mut tunnels: Vec<(Tunnel, Figures)> = std::iter::once(sc)
        .chain(ssh)
        .map(|t| (t, Figures::default()))
        .collect();
    for round in 1..=rounds {
        for (tunnel, figures) in &mut tunnels {
            let line = measure_round(tunnel, &backend, figures)
                .await
                .map_err(|e| {
                    format!(
                        "{} (round {round}): {e}\nlogs:\n{}",
                        tunnel.name,
                        tunnel.logs()
                    )
                })?;
            println!("  round {round}/{rounds} {:<6} {line}", tunnel.name);
        }
    }

    print_table(&tunnels);
    for (tunnel, _) in tunnels {
        tunnel.stop().await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Settings

/// The AEAD both tunnels use.
#[derive(Clone, Copy)]
enum Cipher {
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Cipher {
    /// `MIXED_CIPHER`: unset, `aes` or `aes-256-gcm`; `chacha` or
    /// `chacha20-poly1305`.
    fn from_env() -> Result<Self, Error> {
        match std::env::var("MIXED_CIPHER") {
            Err(std::env::VarError::NotPresent) => Ok(Self::Aes256Gcm),
            Ok(v) => match v.as_str() {
                "" | "aes" | "aes-256-gcm" => Ok(Self::Aes256Gcm),
                "chacha" | "chacha20-poly1305" => Ok(Self::ChaCha20Poly1305),
                other => Err(format!("MIXED_CIPHER={other:?}: use aes or chacha").into()),
            },
            Err(e) => Err(format!("MIXED_CIPHER: {e}").into()),
        }
    }

    /// `--cipher` of sc-server and sc-client.
    fn sc(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// ssh's `Ciphers=`.
    fn ssh(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes256-gcm@openssh.com",
            Self::ChaCha20Poly1305 => "chacha20-poly1305@openssh.com",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "AES-256-GCM (sc aes-256-gcm, ssh aes256-gcm@openssh.com)",
            Self::ChaCha20Poly1305 => {
                "ChaCha20-Poly1305 (sc chacha20-poly1305, ssh chacha20-poly1305@openssh.com)"
            }
        }
    }
}

/// `MIXED_ROUNDS`, at least 1.
fn rounds_from_env() -> Result<usize, Error> {
    match std::env::var("MIXED_ROUNDS") {
        Err(std::env::VarError::NotPresent) => Ok(ROUNDS),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("MIXED_ROUNDS={v:?}: a whole number of rounds, at least 1").into()),
        },
        Err(e) => Err(format!("MIXED_ROUNDS: {e}").into()),
    }
}

// ---------------------------------------------------------------------------
// Files and certificates

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, Error> {
        let path = std::env::temp_dir().join(format!("sc-mixed-{}", std::process::id()));
        // A leftover of an earlier process with the same id.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// A new file, mode 0600 (the binaries refuse keys others can read).
    fn write(&self, name: &str, text: &str) -> Result<(), Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        file.write_all(text.as_bytes())?;
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throwaway CA (`ca.pem`), a server certificate for [`SERVER_NAME`]
/// (`server.pem`, `server.key`) and a client certificate (`client.pem`,
/// `client.key`).
fn write_pki(dir: &TempDir) -> Result<(), Error> {
    let validity = Validity::days_from(UnixTime::now(), 2);
    let ca_key = KeyPair::generate(&mut OsRng);
    let ca_cert = issue_root(&ca_key, "Mixed bench CA", validity, &mut OsRng)?;
    dir.write("ca.pem", &cert_to_pem(&ca_cert)?)?;
    let issuer = Issuer {
        cert: &ca_cert,
        key: &ca_key,
    };
    for (name, spec) in [
        ("server", LeafSpec::server(SERVER_NAME)),
        ("client", LeafSpec::client("mixed-bench")),
    ] {
        let key = KeyPair::generate(&mut OsRng);
        let cert = issue_leaf(&issuer, &key.public_key(), &spec, validity, &mut OsRng)?;
        dir.write(&format!("{name}.pem"), &cert_to_pem(&cert)?)?;
        dir.write(&format!("{name}.key"), &key.to_pkcs8_pem()?)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The backend

/// The backend listener: `B` connections are sinks, `P` connections echo
/// 64-byte pings. Its connections end when it is dropped.
struct Backend {
    addr: SocketAddr,
    /// Bytes every sink has read.
    sink_bytes: Arc<AtomicU64>,
    /// Sink connections that have seen their EOF.
    sinks_closed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Backend {
    async fn start() -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sink_bytes = Arc::new(AtomicU64::new(0));
        let sinks_closed = Arc::new(AtomicU64::new(0));
        let (bytes, closed) = (sink_bytes.clone(), sinks_closed.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                connections.spawn(serve(tcp, bytes.clone(), closed.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            sink_bytes,
            sinks_closed,
            task,
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One backend connection, by its first byte.
async fn serve(mut tcp: TcpStream, sink_bytes: Arc<AtomicU64>, sinks_closed: Arc<AtomicU64>) {
    let _ = tcp.set_nodelay(true);
    let mut kind = [0u8; 1];
    if tcp.read_exact(&mut kind).await.is_err() {
        return;
    }
    match kind[0] {
        b'B' => {
            let mut buf = vec![0u8; 256 << 10];
            while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                sink_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            sinks_closed.fetch_add(1, Ordering::Release);
        }
        b'P' => {
            let mut buf = [0u8; PING];
            while tcp.read_exact(&mut buf).await.is_ok() {
                if tcp.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Processes and tunnels

/// A child process with its output in a log file; killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(
        name: &'static str,
        program: &str,
        args: &[String],
        dir: &TempDir,
    ) -> Result<Self, Error> {
        let log = dir.path(&format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(program)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        Ok(Self { name, child, log })
    }

    /// Why the process is no longer running, if it is not.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            Err(e) => Some(format!("{}: cannot check it: {e}", self.name)),
        }
    }

    /// The last lines of its output.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n    ");
        format!("  {} log:\n    {tail}", self.name)
    }

    async fn stop(mut self) {
        // Killed and reaped; an error means it is gone already.
        let _ = self.child.kill().await;
    }
}

/// A running tunnel: local connections to `entry` reach the backend.
struct Tunnel {
    name: &'static str,
    entry: SocketAddr,
    /// The entry side first: dropped (killed) before the exit side.
    procs: Vec<Proc>,
}

impl Tunnel {
    fn logs(&self) -> String {
        self.procs
            .iter()
            .map(Proc::log_tail)
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn stop(self) {
        for p in self.procs {
            p.stop().await;
        }
    }
}

/// Loopback ports, each handed out once.
#[derive(Default)]
struct Ports(HashSet<u16>);

impl Ports {
    fn free(&mut self) -> Result<u16, Error> {
        loop {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            if self.0.insert(port) {
                return Ok(port);
            }
        }
    }
}

/// Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp: no
/// probe connection, which a tunnel would count as a client).
fn listening(port: u16) -> Result<bool, Error> {
    let text = std::fs::read_to_string("/proc/net/tcp")
        .map_err(|e| format!("cannot read /proc/net/tcp (this bench is for Linux): {e}"))?;
    let local = format!("0100007F:{port:04X}");
    Ok(text.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        // sl, local_address, rem_address, st (0A: LISTEN).
        fields.nth(1) == Some(local.as_str()) && fields.nth(1) == Some("0A")
    }))
}

/// Waits (within [`START`]) until 127.0.0.1:`port` listens; fails if one
/// of `procs` exits first.
async fn wait_listening(port: u16, procs: &mut [Proc]) -> Result<(), Error> {
    let deadline = Instant::now() + START;
    loop {
        if listening(port)? {
            return Ok(());
        }
        for p in procs.iter_mut() {
            if let Some(why) = p.exited() {
                return Err(format!("{why}\n{}", p.log_tail()).into());
            }
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = procs.iter().map(Proc::log_tail).collect();
            return Err(format!(
                "nothing listens on 127.0.0.1:{port} after {START:?}\n{}",
                logs.join("\n")
            )
            .into());
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// sc-server forwarding to `backend`, sc-client listening in front of it.
async fn start_sc(
    dir: &TempDir,
    ports: &mut Ports,
    backend: SocketAddr,
    cipher: Cipher,
) -> Result<Tunnel, Error> {
    let (server_port, entry_port) = (ports.free()?, ports.free()?);
    let server = Proc::spawn(
        "sc-server",
        env!("CARGO_BIN_EXE_sc-server"),
        &strings(&[
            "--listen",
            &format!("127.0.0.1:{server_port}"),
            "--cert",
            &dir.str("server.pem"),
            "--key",
            &dir.str("server.key"),
            "--ca",
            &dir.str("ca.pem"),
            "--forward",
            &backend.to_string(),
            "--cipher",
            cipher.sc(),
        ]),
        dir,
    )?;
    let mut procs = vec![server];
    wait_listening(server_port, &mut procs).await?;
    let client = Proc::spawn(
        "sc-client",
        env!("CARGO_BIN_EXE_sc-client"),
        &strings(&[
            "--listen",
            &format!("127.0.0.1:{entry_port}"),
            "--connect",
            &format!("127.0.0.1:{server_port}"),
            "--server-name",
            SERVER_NAME,
            "--ca",
            &dir.str("ca.pem"),
            "--cert",
            &dir.str("client.pem"),
            "--key",
            &dir.str("client.key"),
            "--cipher",
            cipher.sc(),
        ]),
        dir,
    )?;
    procs.insert(0, client);
    wait_listening(entry_port, &mut procs).await?;
    Ok(Tunnel {
        name: "sc",
        entry: SocketAddr::from(([127, 0, 0, 1], entry_port)),
        procs,
    })
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

/// What ssh -L needs and this machine lacks, if anything.
fn ssh_missing() -> Option<String> {
    let mut missing = Vec::new();
    if !Path::new(SSHD).is_file() {
        missing.push(SSHD);
    }
    for tool in ["ssh", "ssh-keygen"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()));
        if !found {
            missing.push(tool);
        }
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// sshd on a free port and `ssh -N -L` to it, as the anchors run them.
async fn start_ssh(
    dir: &TempDir,
    ports: &mut Ports,
    backend: SocketAddr,
    cipher: Cipher,
) -> Result<Tunnel, Error> {
    // sshd's privilege-separation directory.
    std::fs::create_dir_all("/run/sshd")
        .map_err(|e| format!("cannot create /run/sshd ({e}); sshd needs root"))?;
    for key in ["host_key", "id_ed25519"] {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f", &dir.str(key)])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
    }
    dir.write(
        "authorized_keys",
        &std::fs::read_to_string(dir.path("id_ed25519.pub"))?,
    )?;
    let (sshd_port, entry_port) = (ports.free()?, ports.free()?);
    let work = dir.0.display().to_string();
    dir.write(
        "sshd_config",
        &SSHD_CONF
            .replace("{port}", &sshd_port.to_string())
            .replace("{w}", &work),
    )?;
    let sshd = Proc::spawn(
        "sshd",
        SSHD,
        &strings(&["-D", "-e", "-f", &dir.str("sshd_config")]),
        dir,
    )?;
    let mut procs = vec![sshd];
    wait_listening(sshd_port, &mut procs).await?;
    let ciphers = format!("Ciphers={}", cipher.ssh());
    let options = [
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "StrictHostKeyChecking=no",
        "LogLevel=ERROR",
        "UserKnownHostsFile=/dev/null",
        "ExitOnForwardFailure=yes",
        "ControlPath=none",
        "Compression=no",
        "KexAlgorithms=curve25519-sha256",
        ciphers.as_str(),
    ];
    let mut args = strings(&["-F", "/dev/null", "-N", "-T", "-p", &sshd_port.to_string()]);
    args.extend(["-i".to_owned(), dir.str("id_ed25519")]);
    for o in options {
        args.extend(["-o".to_owned(), o.to_owned()]);
    }
    args.push("-L".to_owned());
    args.push(format!("127.0.0.1:{entry_port}:{backend}"));
    args.push(format!("{}@127.0.0.1", user()));
    procs.insert(0, Proc::spawn("ssh", "ssh", &args, dir)?);
    wait_listening(entry_port, &mut procs).await?;
    Ok(Tunnel {
        name: "ssh -L",
        entry: SocketAddr::from(([127, 0, 0, 1], entry_port)),
        procs,
    })
}

/// The user ssh logs in as: this process's.
fn user() -> String {
    if let Some(u) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
    {
        return u;
    }
    std::process::Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".to_owned())
}

/// A few round trips through `tunnel`: it works end to end (and sc's
/// session is open before anything is timed).
async fn check(tunnel: &Tunnel, backend: &Backend) -> Result<(), Error> {
    ping(tunnel.entry, backend, 0, 20).await.map(drop)
}

// ---------------------------------------------------------------------------
// Measurements

/// One ping-pong connection's result.
struct PingRun {
    /// Nanoseconds per timed round trip.
    rtts: Vec<u64>,
    /// Ended by the phase's time bound before all round trips were done.
    cut_short: bool,
    /// Bytes the sinks counted during the timed round trips.
    sink_bytes: u64,
    /// How long the timed round trips took.
    timed: Duration,
}

/// `warmup` + `timed` round trips on a new `P` connection through `entry`,
/// on a blocking thread.
async fn ping(
    entry: SocketAddr,
    backend: &Backend,
    warmup: usize,
    timed: usize,
) -> Result<PingRun, Error> {
    let sink = backend.sink_bytes.clone();
    tokio::task::spawn_blocking(move || ping_pong(entry, warmup, timed, &sink))
        .await
        .map_err(|e| format!("the ping-pong thread failed: {e}"))?
}

fn ping_pong(
    entry: SocketAddr,
    warmup: usize,
    timed: usize,
    sink: &AtomicU64,
) -> Result<PingRun, Error> {
    let mut tcp = std::net::TcpStream::connect_timeout(&entry, IO)
        .map_err(|e| format!("ping-pong: cannot connect to {entry}: {e}"))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(IO))?;
    tcp.set_write_timeout(Some(IO))?;
    tcp.write_all(b"P")?;
    let end = Instant::now() + PHASE;
    let mut msg = [0x70u8; PING];
    let mut back = [0u8; PING];
    let mut rtts = Vec::with_capacity(timed);
    let (mut start, mut bytes0) = (Instant::now(), sink.load(Ordering::Relaxed));
    let mut cut_short = false;
    for i in 0..warmup + timed {
        if i == warmup {
            start = Instant::now();
            bytes0 = sink.load(Ordering::Relaxed);
        }
        if Instant::now() >= end {
            cut_short = true;
            break;
        }
        msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let t0 = Instant::now();
        tcp.write_all(&msg)
            .and_then(|()| tcp.read_exact(&mut back))
            .map_err(|e| format!("ping-pong: round trip {i} failed or hung (bound {IO:?}): {e}"))?;
        let rtt = t0.elapsed();
        if back != msg {
            return Err(format!("ping-pong: round trip {i} came back altered").into());
        }
        if i >= warmup {
            rtts.push(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    if rtts.is_empty() {
        return Err(format!("ping-pong: no timed round trip within {PHASE:?}").into());
    }
    let timed_for = start.elapsed();
    let sink_bytes = sink.load(Ordering::Relaxed) - bytes0;
    // An orderly end: our FIN, then the backend's (bounded by the read
    // timeout), so this connection is gone before the next phase.
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = tcp.read(&mut back);
    Ok(PingRun {
        rtts,
        cut_short,
        sink_bytes,
        timed: timed_for,
    })
}

/// A `B` connection written with 64 KiB chunks until `stop`.
struct Bulk {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<(), Error>>,
}

impl Bulk {
    async fn start(entry: SocketAddr) -> Result<Self, Error> {
        let mut tcp = timeout(IO, TcpStream::connect(entry))
            .await
            .map_err(|_| format!("bulk: connecting to {entry} took over {IO:?}"))??;
        tcp.set_nodelay(true)?;
        tcp.write_all(b"B").await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let chunk = vec![0x5a_u8; CHUNK];
            // A safety net: the caller stops it long before.
            let end = Instant::now() + 2 * PHASE + IO;
            while !flag.load(Ordering::Relaxed) {
                if Instant::now() >= end {
                    return Err("bulk: never told to stop".into());
                }
                match timeout(IO, tcp.write_all(&chunk)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(format!("bulk: write failed: {e}").into()),
                    Err(_) => {
                        return Err(format!(
                            "bulk: a 64 KiB write hung for {IO:?} (tunnel stalled)"
                        )
                        .into())
                    }
                }
            }
            timeout(IO, tcp.shutdown())
                .await
                .map_err(|_| "bulk: shutdown hung")??;
            Ok(())
        });
        Ok(Self { stop, task })
    }

    /// Stops the writer; its error, if it failed.
    async fn finish(&mut self) -> Result<(), Error> {
        self.stop.store(true, Ordering::Relaxed);
        match timeout(IO, &mut self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("bulk: the writer task failed: {e}").into()),
            Err(_) => Err(format!("bulk: the writer did not stop within {IO:?}").into()),
        }
    }
}

impl Drop for Bulk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every sample of one tunnel, over all rounds.
#[derive(Default)]
struct Figures {
    /// Round trips (ns) of ping-pong alone.
    alone: Vec<u64>,
    /// Round trips (ns) of ping-pong next to bulk.
    loaded: Vec<u64>,
    /// Bulk throughput (Gbit/s) during the ping-pong, one per round.
    bulk_gbps: Vec<f64>,
    /// Phases cut short by the time bound.
    notes: Vec<String>,
}

/// One round on `tunnel`: ping-pong alone, then next to bulk. Returns a
/// progress line.
async fn measure_round(
    tunnel: &Tunnel,
    backend: &Backend,
    figures: &mut Figures,
) -> Result<String, Error> {
    let alone = ping(tunnel.entry, backend, WARMUP, TIMED).await?;
    if alone.cut_short {
        figures.notes.push(format!(
            "{}: a ping-pong alone was cut short at {PHASE:?} ({} round trips)",
            tunnel.name,
            alone.rtts.len()
        ));
    }
    sleep(SETTLE).await;

    let closed = backend.sinks_closed.load(Ordering::Acquire);
    let bytes = backend.sink_bytes.load(Ordering::Relaxed);
    let mut bulk = Bulk::start(tunnel.entry).await?;
    let deadline = Instant::now() + IO;
    while backend.sink_bytes.load(Ordering::Relaxed) == bytes {
        if bulk.task.is_finished() || Instant::now() >= deadline {
            bulk.finish().await?;
            return Err(format!("bulk: no byte reached the backend within {IO:?}").into());
        }
        sleep(Duration::from_millis(5)).await;
    }
    sleep(BULK_LEAD).await;
    let loaded = ping(tunnel.entry, backend, WARMUP, TIMED).await?;
    bulk.finish().await?;
    // The sink's EOF: the bulk stream is drained and gone.
    let deadline = Instant::now() + PHASE;
    while backend.sinks_closed.load(Ordering::Acquire) == closed {
        if Instant::now() >= deadline {
            return Err(format!("bulk: the sink saw no end within {PHASE:?}").into());
        }
        sleep(Duration::from_millis(5)).await;
    }
    if loaded.cut_short {
        figures.notes.push(format!(
            "{}: a ping-pong next to bulk was cut short at {PHASE:?} ({} round trips)",
            tunnel.name,
            loaded.rtts.len()
        ));
    }
    let gbps = loaded.sink_bytes as f64 * 8.0 / loaded.timed.as_secs_f64() / 1e9;
    let line = format!(
        "alone p50 {:>8.1} µs | next to bulk p50 {:>8.1} µs, bulk {gbps:.2} Gbit/s",
        percentile_us(&mut alone.rtts.clone(), 0.50),
        percentile_us(&mut loaded.rtts.clone(), 0.50),
    );
    figures.alone.extend(alone.rtts);
    figures.loaded.extend(loaded.rtts);
    figures.bulk_gbps.push(gbps);
    sleep(SETTLE).await;
    Ok(line)
}

// ---------------------------------------------------------------------------
// Report

/// The `q` quantile of `ns`, in µs (the sample at ⌊q·n⌋ of the sorted
/// samples, as the anchors take it).
fn percentile_us(ns: &mut [u64], q: f64) -> f64 {
    ns.sort_unstable();
    let i = ((q * ns.len() as f64) as usize).min(ns.len().saturating_sub(1));
    ns.get(i).map_or(f64::NAN, |&v| v as f64 / 1e3)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One tunnel's row.
struct Row {
    alone_p50: f64,
    alone_p99: f64,
    loaded_p50: f64,
    loaded_p99: f64,
    gbps: f64,
}

impl Row {
    fn of(figures: &Figures) -> Self {
        let (mut alone, mut loaded) = (figures.alone.clone(), figures.loaded.clone());
        Self {
            alone_p50: percentile_us(&mut alone, 0.50),
            alone_p99: percentile_us(&mut alone, 0.99),
            loaded_p50: percentile_us(&mut loaded, 0.50),
            loaded_p99: percentile_us(&mut loaded, 0.99),
            gbps: median(&figures.bulk_gbps),
        }
    }
}

fn print_table(tunnels: &[(Tunnel, Figures)]) {
    println!();
    println!(
        "{:<8} {:>12} {:>12} {:>14} {:>14} {:>12}",
        "tunnel", "alone p50", "alone p99", "+bulk p50", "+bulk p99", "bulk Gbit/s"
    );
    println!(
        "{:<8} {:>12} {:>12} {:>14} {:>14} {:>12}",
        "", "(µs)", "(µs)", "(µs)", "(µs)", "(during)"
    );
    let rows: Vec<(&str, Row)> = tunnels.iter().map(|(t, f)| (t.name, Row::of(f))).collect();
    for (name, r) in &rows {
        println!(
            "{name:<8} {:>12.1} {:>12.1} {:>14.1} {:>14.1} {:>12.2}",
            r.alone_p50, r.alone_p99, r.loaded_p50, r.loaded_p99, r.gbps
        );
    }
    let samples: Vec<String> = tunnels
        .iter()
        .map(|(t, f)| {
            format!(
                "{} {} alone, {} next to bulk",
                t.name,
                f.alone.len(),
                f.loaded.len()
            )
        })
        .collect();
    println!("round trips merged over the rounds: {}", samples.join("; "));
    for note in tunnels.iter().flat_map(|(_, f)| &f.notes) {
        println!("note: {note}");
    }
    if let [(_, sc), (_, ssh)] = rows.as_slice() {
        let ratio = sc.loaded_p50 / ssh.loaded_p50;
        println!();
        println!("ratios sc / ssh -L:");
        println!(
            "  ping-pong p50 next to bulk {ratio:>6.2}   (target ≤ 1.00: {})",
            if ratio <= 1.0 { "met" } else { "not met" }
        );
        println!(
            "  ping-pong p50 alone        {:>6.2}   (lower is better)",
            sc.alone_p50 / ssh.alone_p50
        );
        println!(
            "  bulk Gbit/s next to ping   {:>6.2}   (higher is better)",
            sc.gbps / ssh.gbps
        );
    } else {
        println!("no ratios: ssh -L was not measured");
    }
}
