//! Helpers shared by the integration tests that run the real binaries
//! (`client`, `server`, `proxy`, `faults`): a temporary directory removed on
//! drop, a child process's log collected line by line with bounded waits on
//! it, and leaf certificates issued by a test CA.
//!
//! Each test crate includes this file with `mod common;` and keeps its own
//! specifics (which binary, which flags, its bound on waits) as thin
//! wrappers over these pieces.

// Each test crate uses a part of these helpers; the rest is dead code there.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::OsRng;
use sovereign_chain::pki::{
    cert_to_pem, issue_leaf, issue_root, CertificateDer, Issuer, KeyPair, LeafSpec, TrustAnchors,
    UnixTime, Validity,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// Files

/// A directory removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A new directory `PREFIX-<pid>-<n>` under the system's temporary
    /// directory.
    pub(crate) fn new(prefix: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` atomically (a reload never sees half a file).
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        path
    }

    /// A new private file, mode 0600.
    pub(crate) fn write_private(&self, name: &str, text: &str) -> PathBuf {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("create key file");
        f.write_all(text.as_bytes()).expect("write key");
        path
    }

    /// [`path`](Self::path) as a string.
    pub(crate) fn str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Certificates

/// A new key and a leaf certificate for it, issued by `issuer`.
pub(crate) fn leaf(
    issuer: &Issuer<'_>,
    spec: &LeafSpec,
    validity: Validity,
) -> (CertificateDer<'static>, KeyPair) {
    let key = KeyPair::generate(&mut OsRng);
    let cert = issue_leaf(issuer, &key.public_key(), spec, validity, &mut OsRng).expect("leaf");
    (cert, key)
}

/// A root CA valid for two days, with its key, issuing leaves valid as
/// long. Each test crate adds what it writes to files in an `impl` of its
/// own.
pub(crate) struct TestCa {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: KeyPair,
    pub(crate) now: UnixTime,
}

impl TestCa {
    /// A new root named `name` (its CN).
    pub(crate) fn new(name: &str) -> Self {
        let now = UnixTime::now();
        let key = KeyPair::generate(&mut OsRng);
        let cert = issue_root(&key, name, Validity::days_from(now, 2), &mut OsRng).expect("root");
        Self { cert, key, now }
    }

    /// A new key and a leaf certificate for it.
    pub(crate) fn leaf(&self, spec: &LeafSpec) -> (CertificateDer<'static>, KeyPair) {
        let issuer = Issuer {
            cert: &self.cert,
            key: &self.key,
        };
        leaf(&issuer, spec, Validity::days_from(self.now, 2))
    }

    /// The root as PEM.
    pub(crate) fn pem(&self) -> String {
        cert_to_pem(&self.cert).expect("pem")
    }

    /// The root as the only trust anchor.
    pub(crate) fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_der(std::slice::from_ref(&self.cert)).expect("anchors")
    }
}

// ---------------------------------------------------------------------------
// In-test servers

/// A task serving a listener on `addr`; aborted (with the sessions it
/// spawned into its JoinSet) when dropped.
pub(crate) struct Task {
    pub(crate) addr: SocketAddr,
    pub(crate) handle: JoinHandle<()>,
}

impl Drop for Task {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A listener on a free loopback port.
pub(crate) async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// A loopback port that refuses connections for as long as this lives: it
/// is bound but not listening, so a connection to it is refused, and no
/// other socket (another test's listener, a connection's own ephemeral
/// port) can take it meanwhile, as it could take a port bound and
/// released. [`ClosedPort::listen`] opens it later on the same port.
pub(crate) struct ClosedPort {
    socket: tokio::net::TcpSocket,
    pub(crate) addr: SocketAddr,
}

impl ClosedPort {
    pub(crate) fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        Self { socket, addr }
    }

    /// Starts listening on the port (within a tokio runtime).
    pub(crate) fn listen(self) -> TcpListener {
        self.socket.listen(128).expect("listen")
    }
}

// ---------------------------------------------------------------------------
// Processes and their logs

/// A log shared with the tasks that fill it, line by line (clones share it).
#[derive(Clone, Default)]
pub(crate) struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends every line of `reader` to the log, in a spawned task, until
    /// its end (or an error).
    pub(crate) fn capture<R: AsyncRead + Unpin + Send + 'static>(&self, reader: R) {
        let sink = self.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(reader).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.0.lock().expect("lines").push(line);
            }
        });
    }

    /// The whole log, lines joined by `\n`.
    pub(crate) fn text(&self) -> String {
        self.0.lock().expect("lines").join("\n")
    }

    /// The lines containing `needle`.
    pub(crate) fn matching(&self, needle: &str) -> Vec<String> {
        self.0
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// How many lines contain `needle`.
    pub(crate) fn count(&self, needle: &str) -> usize {
        self.0
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits (polling every 10 ms, within `within`) for `count` lines
    /// containing `needle`; returns them. Fails with the log if they do not
    /// come in time.
    pub(crate) async fn wait_lines(
        &self,
        needle: &str,
        count: usize,
        within: Duration,
    ) -> Vec<String> {
        self.wait_lines_or(needle, count, within, || {
            format!(
                "no {count} line(s) with {needle:?} in time; log:\n{}",
                self.text()
            )
        })
        .await
    }

    /// The addresses of `count` listeners, in order, from their log lines
    /// (`listening on ADDR…`, waited for within `within`): `addr_of` cuts
    /// ADDR from the rest of the line after `listening on `.
    pub(crate) async fn listening<T: FromStr>(
        &self,
        count: usize,
        within: Duration,
        addr_of: impl Fn(&str) -> &str,
    ) -> Vec<T> {
        self.wait_lines("listening on ", count, within)
            .await
            .iter()
            .map(|line| {
                let rest = line.split("listening on ").nth(1).unwrap_or("");
                addr_of(rest)
                    .parse()
                    .unwrap_or_else(|_| panic!("bad address in {line:?}"))
            })
            .collect()
    }

    /// As [`wait_lines`](Self::wait_lines), failing with `failure()` (the
    /// caller's message, which should include the log).
    pub(crate) async fn wait_lines_or(
        &self,
        needle: &str,
        count: usize,
        within: Duration,
        failure: impl Fn() -> String,
    ) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let found = self.matching(needle);
            if found.len() >= count {
                return found;
            }
            assert!(Instant::now() < deadline, "{}", failure());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Spawns `cmd` with `NO_COLOR=1`, without `RUST_LOG`, standard input
/// closed, killed when dropped; its standard error (and its standard output
/// if `stdout`, else that is discarded) collected line by line.
pub(crate) fn spawn_logged(cmd: &mut Command, stdout: bool) -> std::io::Result<(Child, Lines)> {
    let mut child = cmd
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let lines = Lines::new();
    if let Some(out) = child.stdout.take() {
        lines.capture(out);
    }
    lines.capture(child.stderr.take().expect("stderr"));
    Ok((child, lines))
}

/// The resident memory (VmRSS) of process `pid` in KiB, from /proc.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
}
