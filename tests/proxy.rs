//! `sc-proxy` end to end: the real relay binary on loopback sockets, in
//! front of secure servers built here from the library (`Acceptor`) or the
//! real `sc-server`, with the real `sc-client` or the library client
//! (`Connector`), certificates issued here into a temporary directory.
//!
//! Every wait is bounded; every process is spawned with `kill_on_drop`, and
//! every in-test server is a task aborted when dropped, so a failing test
//! (a panic) stops what it started.

use std::ffi::OsString;
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::OsRng;
use sovereign_chain::handshake::{ClientConfig, ServerConfig};
use sovereign_chain::net::proxy_protocol::{ProxyHeader, FIXED_LEN, SIGNATURE};
use sovereign_chain::pki::{
    cert_to_pem, issue_root, CertificateDer, Credential, Issuer, KeyPair, LeafSpec, ServerName,
    TrustAnchors, UnixTime, Validity, WebPkiClientVerifier, WebPkiServerVerifier,
};
use sovereign_chain::session::{Acceptor, Connector, Error, SecureStream};
use sovereign_chain::wire::{AlertCode, RouteName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::timeout;

use common::{bind, spawn_logged, Lines, Task, TempDir};

/// The bound of every ordinary wait.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Files and certificates

/// A CA, its certificate in `ca.pem`, and what it issues.
struct Pki {
    dir: TempDir,
    key: KeyPair,
    cert: CertificateDer<'static>,
    validity: Validity,
    ca_path: PathBuf,
}

impl Pki {
    fn new() -> Self {
        let dir = TempDir::new("sc-proxy-test");
        let validity = Validity::days_from(UnixTime::now(), 1);
        let key = KeyPair::generate(&mut OsRng);
        let cert = issue_root(&key, "Proxy Test CA", validity, &mut OsRng).expect("root");
        let ca_path = dir.write("ca.pem", &cert_to_pem(&cert).expect("pem"));
        Self {
            dir,
            key,
            cert,
            validity,
            ca_path,
        }
    }

    fn leaf(&self, spec: &LeafSpec) -> (CertificateDer<'static>, KeyPair) {
        let issuer = Issuer {
            cert: &self.cert,
            key: &self.key,
        };
        common::leaf(&issuer, spec, self.validity)
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_der(std::slice::from_ref(&self.cert)).expect("anchors")
    }

    /// A server configuration with a certificate for `name`.
    fn server_config(&self, name: &str) -> Arc<ServerConfig> {
        let (cert, key) = self.leaf(&LeafSpec::server(name));
        Arc::new(
            ServerConfig::builder()
                .with_client_verifier(Arc::new(WebPkiClientVerifier::new(self.anchors())))
                .with_credential(Arc::new(Credential::new(vec![cert], key).expect("server")))
                .build(),
        )
    }

    /// A library client configuration (certificate `app-1`).
    fn client_config(&self) -> Arc<ClientConfig> {
        let (cert, key) = self.leaf(&LeafSpec::client("app-1"));
        Arc::new(
            ClientConfig::builder()
                .with_server_verifier(Arc::new(WebPkiServerVerifier::new(self.anchors())))
                .with_credential(Arc::new(Credential::new(vec![cert], key).expect("client")))
                .build(),
        )
    }

    /// `--ca … --cert … --key …` for `sc-client` (certificate `app-1`).
    fn client_args(&self) -> Vec<OsString> {
        let (cert, key) = self.leaf(&LeafSpec::client("app-1"));
        let n = NAMES.fetch_add(1, Ordering::Relaxed);
        let cert = self.dir.write(
            &format!("client-{n}.pem"),
            &cert_to_pem(&cert).expect("pem"),
        );
        let key = self.dir.write_private(
            &format!("client-{n}.key"),
            &key.to_pkcs8_pem().expect("pem"),
        );
        vec![
            "--ca".into(),
            self.ca_path.clone().into(),
            "--cert".into(),
            cert.into(),
            "--key".into(),
            key.into(),
        ]
    }

    /// `--ca … --cert … --key …` for `sc-server` with a certificate for `name`.
    fn server_args(&self, name: &str) -> Vec<String> {
        let (cert, key) = self.leaf(&LeafSpec::server(name));
        let n = NAMES.fetch_add(1, Ordering::Relaxed);
        let cert = self.dir.write(
            &format!("server-{n}.pem"),
            &cert_to_pem(&cert).expect("pem"),
        );
        let key = self.dir.write_private(
            &format!("server-{n}.key"),
            &key.to_pkcs8_pem().expect("pem"),
        );
        vec![
            "--ca".into(),
            self.ca_path.display().to_string(),
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ]
    }
}

static NAMES: AtomicU32 = AtomicU32::new(0);

// ---------------------------------------------------------------------------
// In-test servers

/// A secure server on `listener` answering each message `m` with
/// `TAG: m`, and closing after the client closes.
fn tagged_server_on(listener: TcpListener, config: Arc<ServerConfig>, tag: &'static str) -> Task {
    let addr = listener.local_addr().expect("addr");
    let acceptor = Acceptor::new(config);
    let handle = tokio::spawn(async move {
        let mut sessions = JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            sessions.spawn(async move {
                if let Ok(stream) = acceptor.accept(tcp).await {
                    serve_tagged(stream, tag).await;
                }
            });
            while sessions.try_join_next().is_some() {}
        }
    });
    Task { addr, handle }
}

async fn serve_tagged<IO>(mut stream: SecureStream<IO>, tag: &str)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Ok(Some(m)) = stream.recv_message().await {
        let reply = [tag.as_bytes(), b": ", &m[..]].concat();
        if stream.send_message(&reply).await.is_err() {
            return;
        }
    }
    let _ = stream.shutdown().await;
}

async fn tagged_server(config: Arc<ServerConfig>, tag: &'static str) -> Task {
    tagged_server_on(bind().await, config, tag)
}

/// A plaintext server that sends `banner` as soon as it accepts, then
/// echoes every byte.
async fn banner_server(banner: &'static str) -> Task {
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            conns.spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                let _ = w.write_all(banner.as_bytes()).await;
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Task { addr, handle }
}

/// A server that accepts and then never reads nor writes.
async fn silent_server() -> Task {
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    Task { addr, handle }
}

// ---------------------------------------------------------------------------
// The binaries

/// A running binary and its log (stderr), line by line.
struct Running {
    child: Child,
    lines: Lines,
}

impl Running {
    fn start(exe: &str, args: &[String]) -> Self {
        let (child, lines) = spawn_logged(Command::new(exe).args(args), false)
            .unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
        Self { child, lines }
    }

    /// `sc-proxy ARGS`.
    fn proxy(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Self::start(env!("CARGO_BIN_EXE_sc-proxy"), &args)
    }

    /// `sc-server --listen 127.0.0.1:0 ARGS`.
    fn server(args: &[String]) -> Self {
        let mut all: Vec<String> = vec!["--listen".into(), "127.0.0.1:0".into()];
        all.extend_from_slice(args);
        Self::start(env!("CARGO_BIN_EXE_sc-server"), &all)
    }

    fn log(&self) -> String {
        self.lines.text()
    }

    fn matching(&self, needle: &str) -> Vec<String> {
        self.lines.matching(needle)
    }

    /// Waits for `count` lines containing `needle`; returns them.
    async fn wait_lines(&self, needle: &str, count: usize) -> Vec<String> {
        self.lines.wait_lines(needle, count, WAIT).await
    }

    async fn wait_line(&self, needle: &str) -> String {
        self.wait_lines(needle, 1).await.remove(0)
    }

    /// The addresses of the listeners, in order, from their log lines
    /// (`listening on ADDR (…`).
    async fn listening(&self, count: usize) -> Vec<SocketAddr> {
        self.lines
            .listening(count, WAIT, |rest| {
                rest.split([' ', ',']).next().unwrap_or("")
            })
            .await
    }

    async fn address(&self) -> SocketAddr {
        self.listening(1).await.remove(0)
    }

    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        match timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => panic!("the process did not exit in time; log:\n{}", self.log()),
        }
    }
}

/// `sc-proxy --listen 127.0.0.1:0 ARGS`, and the address it listens on.
async fn relay_on_loopback(args: &[&str]) -> (Running, SocketAddr) {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let proxy = Running::proxy(&all);
    let addr = proxy.address().await;
    (proxy, addr)
}

/// Runs a binary to its exit (bounded), standard input `input`.
async fn run(exe: &str, args: Vec<OsString>, input: &[u8]) -> Output {
    let mut child = Command::new(exe)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let out = timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{exe} did not exit in time"))
        .expect("wait");
    let _ = writer.await;
    out
}

/// `sc-client --connect RELAY ARGS` with `input` on standard input.
async fn sc_client(pki: &Pki, relay: SocketAddr, extra: &[&str], input: &[u8]) -> Output {
    let mut args = pki.client_args();
    args.push("--connect".into());
    args.push(relay.to_string().into());
    args.extend(extra.iter().map(OsString::from));
    run(env!("CARGO_BIN_EXE_sc-client"), args, input).await
}

/// `sc-proxy ARGS` to its exit: code and standard error.
async fn proxy_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = run(
        env!("CARGO_BIN_EXE_sc-proxy"),
        args.iter().map(OsString::from).collect(),
        b"",
    )
    .await;
    (out.status.code(), text(&out.stderr))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------
// Library clients

/// A TCP connection to `to` from the source address `from` (`127.0.0.2`…).
async fn tcp_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind the source address");
    timeout(WAIT, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A session over `io`, expecting the server `name` and asking the relay
/// for the route `name`.
async fn session_over(
    io: TcpStream,
    client: &Arc<ClientConfig>,
    name: &str,
) -> Result<SecureStream<TcpStream>, Error> {
    let server_name = ServerName::try_from(name.to_owned()).expect("name");
    let route = RouteName::new(name).expect("route");
    timeout(
        WAIT,
        Connector::new(client.clone()).connect(server_name, Some(route), io),
    )
    .await
    .expect("the handshake ended in time")
}

/// A session through the relay at `relay` for `name`.
async fn open(
    relay: SocketAddr,
    client: &Arc<ClientConfig>,
    name: &str,
) -> Result<SecureStream<TcpStream>, Error> {
    let io = timeout(WAIT, TcpStream::connect(relay))
        .await
        .expect("connect in time")
        .expect("connect to the relay");
    session_over(io, client, name).await
}

/// Sends `msg` and returns the answer (an error if the session ended).
async fn ask(stream: &mut SecureStream<TcpStream>, msg: &str) -> Result<String, Error> {
    timeout(WAIT, async {
        stream.send_message(msg.as_bytes()).await?;
        match stream.recv_message().await? {
            Some(m) => Ok(String::from_utf8_lossy(&m).into_owned()),
            None => Ok(String::new()),
        }
    })
    .await
    .expect("an answer or an error in time (nothing hangs)")
}

/// The tag of the backend that answers on this session (`A: ping` → `A`).
async fn tag(stream: &mut SecureStream<TcpStream>) -> String {
    let answer = ask(stream, "ping").await.expect("answer");
    answer
        .strip_suffix(": ping")
        .unwrap_or_else(|| panic!("unexpected answer {answer:?}"))
        .to_owned()
}

/// Closes cleanly: our Close, then the server's.
async fn close(mut stream: SecureStream<TcpStream>) {
    timeout(WAIT, async {
        stream.shutdown().await.expect("close");
        assert_eq!(stream.recv_message().await.expect("clean end"), None);
    })
    .await
    .expect("closed in time");
}

/// Reads until the peer closes (bounded): everything it sent.
async fn read_to_close(io: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    timeout(WAIT, io.read_to_end(&mut all))
        .await
        .expect("closed in time")
        .expect("read");
    all
}

/// The plaintext alert record `code`.
fn alert(code: AlertCode) -> Vec<u8> {
    vec![0xc2, 0, 0, 1, code.0]
}

fn count(tags: &[String], t: &str) -> usize {
    tags.iter().filter(|x| x.as_str() == t).count()
}

// ---------------------------------------------------------------------------
// Routing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_name_and_default_with_the_real_client() {
    let pki = Pki::new();
    let a = tagged_server(pki.server_config("a.test"), "A").await;
    let b = tagged_server(pki.server_config("b.test"), "B").await;
    let d = tagged_server(pki.server_config("other.test"), "D").await;
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("a.test={}", a.addr),
        "--route",
        &format!("b.test={}", b.addr),
        "--default",
        &d.addr.to_string(),
        "--health-interval",
        "0",
    ])
    .await;

    // The route name is the server name unless told otherwise.
    for (name, expected) in [("a.test", "A"), ("b.test", "B"), ("other.test", "D")] {
        let out = sc_client(&pki, relay, &["--server-name", name], b"hello\n").await;
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("server: {expected}: hello\n"));
    }
    // --route overrides it: the name checked is still --server-name.
    let out = sc_client(
        &pki,
        relay,
        &["--server-name", "other.test", "--route", "unknown.test"],
        b"hi\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "server: D: hi\n");

    let lines = proxy.wait_lines("session end", 4).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("route=a.test via=route") && l.contains(&a.addr.to_string())),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(
            |l| l.contains("route=unknown.test via=default") && l.contains(&d.addr.to_string())
        ),
        "{lines:#?}"
    );
    for line in &lines {
        for field in [
            "client=127.0.0.1:",
            "backend=",
            "bytes_up=",
            "bytes_down=",
            "duration=",
            "reason=closed",
        ] {
            assert!(line.contains(field), "{field} not in {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_without_default_is_no_route() {
    let pki = Pki::new();
    let a = tagged_server(pki.server_config("a.test"), "A").await;
    let (proxy, relay) = relay_on_loopback(&["--route", &format!("a.test={}", a.addr)]).await;
    let out = sc_client(&pki, relay, &["--server-name", "x.test"], b"hello\n").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.lines().next(),
        Some("error: no route for x.test"),
        "{stderr}"
    );
    let line = proxy.wait_line("no route for 'x.test'").await;
    assert!(line.contains("client=127.0.0.1:"), "{line}");

    // The library sees the plaintext alert as such.
    let err = open(relay, &pki.client_config(), "y.test")
        .await
        .expect_err("no session");
    assert!(
        matches!(err, Error::PeerAlert(AlertCode::NO_ROUTE)),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_identity_is_still_checked() {
    let pki = Pki::new();
    // A relay that sends a.test to the server of b.test.
    let b = tagged_server(pki.server_config("b.test"), "B").await;
    let (_proxy, relay) = relay_on_loopback(&["--route", &format!("a.test={}", b.addr)]).await;
    let out = sc_client(&pki, relay, &["--server-name", "a.test"], b"secret\n").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).lines().next(),
        Some("error: server certificate is not valid for 'a.test' (it names: b.test)"),
        "{}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// Blindness

/// A TCP forwarder that records every byte it carries, each way.
struct Tap {
    addr: SocketAddr,
    up: Arc<Mutex<Vec<u8>>>,
    down: Arc<Mutex<Vec<u8>>>,
    _task: Task,
}

async fn tap(to: SocketAddr) -> Tap {
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let up = Arc::new(Mutex::new(Vec::new()));
    let down = Arc::new(Mutex::new(Vec::new()));
    let (u, d) = (up.clone(), down.clone());
    let handle = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(to).await else {
                continue;
            };
            let (u, d) = (u.clone(), d.clone());
            conns.spawn(async move {
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                tokio::join!(copy_logged(ir, ow, u), copy_logged(or, iw, d));
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Tap {
        addr,
        up,
        down,
        _task: Task { addr, handle },
    }
}

async fn copy_logged(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().expect("log").extend_from_slice(&buf[..n]);
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = w.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_never_sees_plaintext() {
    const MARKER: &str = "MARKER-4f9c21-application-plaintext";
    let pki = Pki::new();
    let client = pki.client_config();
    let a = tagged_server(pki.server_config("a.test"), "A").await;
    // client -> tap_in -> relay -> tap_out -> backend: the taps hold every
    // byte the relay read and wrote.
    let tap_out = tap(a.addr).await;
    let (proxy, relay) =
        relay_on_loopback(&["--route", &format!("a.test={}", tap_out.addr), "-v"]).await;
    let tap_in = tap(relay).await;

    let mut s = open(tap_in.addr, &client, "a.test").await.expect("session");
    assert_eq!(
        ask(&mut s, MARKER).await.expect("answer"),
        format!("A: {MARKER}")
    );
    let big = MARKER.repeat(3000);
    assert_eq!(
        ask(&mut s, &big).await.expect("answer"),
        format!("A: {big}")
    );
    close(s).await;
    let end = proxy.wait_line("session end").await;
    assert!(end.contains("reason=closed"), "{end}");

    let captured = [
        ("client to relay", tap_in.up.lock().expect("log").clone()),
        ("relay to client", tap_in.down.lock().expect("log").clone()),
        ("relay to backend", tap_out.up.lock().expect("log").clone()),
        (
            "backend to relay",
            tap_out.down.lock().expect("log").clone(),
        ),
    ];
    for (what, bytes) in &captured {
        assert!(
            bytes.len() > big.len(),
            "{what}: only {} bytes",
            bytes.len()
        );
        assert!(
            !contains(bytes, MARKER.as_bytes()),
            "the marker is in {what}"
        );
    }
    // The relay forwarded the ciphertext unchanged, each way.
    assert!(
        captured[0].1 == captured[2].1,
        "client bytes changed on the way"
    );
    assert!(
        captured[3].1 == captured[1].1,
        "backend bytes changed on the way"
    );
    // The byte counts in the log are the bytes that passed.
    assert!(
        end.contains(&format!("bytes_up={}", captured[0].1.len())),
        "{end}"
    );
    assert!(
        end.contains(&format!("bytes_down={}", captured[1].1.len())),
        "{end}"
    );
    // -v logs every record header, never the payload.
    let records = proxy.matching("record");
    assert!(
        records
            .iter()
            .any(|l| l.contains("direction=client->backend") && l.contains("length=")),
        "{}",
        proxy.log()
    );
    assert!(records
        .iter()
        .any(|l| l.contains("direction=backend->client")));
    assert!(!proxy.log().contains(MARKER));
}

// ---------------------------------------------------------------------------
// Load and health

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_spreads_sessions() {
    let pki = Pki::new();
    let client = pki.client_config();
    let a = tagged_server(pki.server_config("svc.test"), "A").await;
    let b = tagged_server(pki.server_config("svc.test"), "B").await;
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={},{}", a.addr, b.addr),
        "--health-interval",
        "0",
    ])
    .await;

    // Six sessions held open: three each.
    let mut open_sessions = Vec::new();
    for _ in 0..6 {
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        let t = tag(&mut s).await;
        open_sessions.push((t, s));
    }
    let tags: Vec<String> = open_sessions.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!((count(&tags, "A"), count(&tags, "B")), (3, 3), "{tags:?}");

    // A's three end: A has 0 sessions, B 3, so the next three all go to A
    // (round robin would have sent some to B).
    let (on_a, on_b): (Vec<_>, Vec<_>) = open_sessions.into_iter().partition(|(t, _)| t == "A");
    for (_, s) in on_a {
        close(s).await;
    }
    proxy.wait_lines("session end", 3).await;
    let mut next = Vec::new();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        next.push(tag(&mut s).await);
        held.push(s);
    }
    assert_eq!(count(&next, "A"), 3, "{next:?}");
    // 3 and 3: a tie again, so the next two take turns.
    let mut last = Vec::new();
    for _ in 0..2 {
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        last.push(tag(&mut s).await);
        held.push(s);
    }
    assert_eq!((count(&last, "A"), count(&last, "B")), (1, 1), "{last:?}");
    drop(on_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_run_fails_its_sessions_and_new_ones_go_to_the_survivor() {
    let pki = Pki::new();
    let client = pki.client_config();
    let mut s1 = Running::server(&pki.server_args("svc.test"));
    let s2 = Running::server(&pki.server_args("svc.test"));
    let (a1, a2) = (s1.address().await, s2.address().await);
    // No probes: the relay learns that s1 is gone from a refused connect
    // (passive check) and retries the session on s2.
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={a1},{a2}"),
        "--health-interval",
        "0",
    ])
    .await;
    let mut sessions = Vec::new();
    for i in 0..4 {
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        assert_eq!(
            ask(&mut s, &format!("m{i}")).await.expect("answer"),
            format!("echo: m{i}")
        );
        sessions.push(s);
    }

    s1.child.start_kill().expect("kill sc-server");
    s1.wait_exit().await;
    let mut survivors = Vec::new();
    for mut s in sessions {
        match ask(&mut s, "after").await {
            Ok(answer) => {
                assert_eq!(answer, "echo: after");
                survivors.push(s);
            }
            // The client drops the failed session (sc-client exits).
            Err(e) => assert!(matches!(e, Error::Truncated | Error::Io(_)), "{e:?}"),
        }
    }
    assert_eq!(
        survivors.len(),
        2,
        "least connections put two sessions on each; log:\n{}",
        proxy.log()
    );
    let ended = proxy.wait_lines("session end", 2).await;
    for line in &ended {
        assert!(line.contains(&format!("backend={a1} ")), "{line}");
        assert!(
            line.contains("reason=closed (backend first)")
                || line.contains("reason=backend failed"),
            "{line}"
        );
    }

    // New sessions: every one succeeds, on s2 (the first finds s1 refusing,
    // marks it down and is retried on s2 before the client sees anything).
    let mut fresh = Vec::new();
    for i in 0..6 {
        let mut s = open(relay, &client, "svc.test").await.expect("new session");
        assert_eq!(
            ask(&mut s, &format!("n{i}")).await.expect("answer"),
            format!("echo: n{i}")
        );
        fresh.push(s);
    }
    let down = proxy.wait_line(&format!("backend {a1} is down")).await;
    assert!(down.contains("connection refused"), "{down}");
    for s in fresh {
        close(s).await;
    }
    // Eight session ends: the two cut on s1, the six new ones on s2.
    let ends = proxy.wait_lines("session end", 8).await;
    let on = |a: SocketAddr| {
        ends.iter()
            .filter(|l| l.contains(&format!("backend={a} ")))
            .count()
    };
    assert_eq!((on(a1), on(a2)), (2, 6), "{ends:#?}");
    s2.wait_lines("session end", 6).await;
}

/// Binds `addr` again (the previous listener may take a moment to close).
async fn rebind(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot bind {addr} again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_backend_gets_nothing_until_a_probe_passes() {
    let pki = Pki::new();
    let client = pki.client_config();
    let config_a = pki.server_config("svc.test");
    let a = tagged_server(config_a.clone(), "A").await;
    let a_addr = a.addr;
    let b = tagged_server(pki.server_config("svc.test"), "B").await;
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={},{}", a_addr, b.addr),
        "--health-interval",
        "3",
    ])
    .await;

    drop(a);
    let down = proxy.wait_line(&format!("backend {a_addr} is down")).await;
    assert!(down.contains("probe"), "{down}");
    // A listens again at once, but the relay has not probed it yet: new
    // sessions go to B until the next probe passes.
    let _a = tagged_server_on(rebind(a_addr).await, config_a, "A");
    let up_line = format!("backend {a_addr} is up (probe passed)");
    let mut held = Vec::new();
    for _ in 0..4 {
        if !proxy.matching(&up_line).is_empty() {
            break;
        }
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        let t = tag(&mut s).await;
        // A session that went to A must have come after the probe passed.
        if t == "A" {
            proxy.wait_line(&up_line).await;
            break;
        }
        held.push(s);
    }
    assert!(
        held.len() >= 2,
        "only {} sessions before the probe",
        held.len()
    );

    // The probe passes: A (no sessions) is preferred to B (the held ones).
    proxy.wait_line(&up_line).await;
    for _ in 0..2 {
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        assert_eq!(tag(&mut s).await, "A");
        held.push(s);
    }
}

// ---------------------------------------------------------------------------
// Port sharing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_protocol_client_passes_through_to_the_fallback() {
    let pki = Pki::new();
    let a = tagged_server(pki.server_config("a.test"), "A").await;
    let fallback = banner_server("fallback ready\n").await;
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("a.test={}", a.addr),
        "--fallback",
        &fallback.addr.to_string(),
        "--health-interval",
        "0",
    ])
    .await;

    // A client that speaks first: its bytes reach the fallback unchanged.
    let request = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    let mut c = TcpStream::connect(relay).await.expect("connect");
    c.write_all(request).await.expect("write");
    c.shutdown().await.expect("half-close");
    let got = read_to_close(&mut c).await;
    assert_eq!(got, [&b"fallback ready\n"[..], request].concat());

    // A client that waits for the server to speak first.
    let mut c = TcpStream::connect(relay).await.expect("connect");
    let mut banner = [0u8; 15];
    timeout(WAIT, c.read_exact(&mut banner))
        .await
        .expect("the banner in time")
        .expect("read");
    assert_eq!(&banner, b"fallback ready\n");
    c.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    timeout(WAIT, c.read_exact(&mut back))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(&back, b"ping");
    drop(c);

    // A Sovereign-Chain client on the same port is routed.
    let mut s = open(relay, &pki.client_config(), "a.test")
        .await
        .expect("session");
    assert_eq!(tag(&mut s).await, "A");
    close(s).await;

    let lines = proxy.wait_lines("via=fallback", 2).await;
    assert!(
        lines[0].contains(&format!("backend={}", fallback.addr)),
        "{}",
        lines[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("bytes_up={}", request.len()))),
        "{lines:#?}"
    );
}

// ---------------------------------------------------------------------------
// PROXY protocol v2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v2_gives_the_backend_the_client_address() {
    let pki = Pki::new();
    let client = pki.client_config();
    // A fake backend: parses the header, then runs the handshake on the rest.
    let listener = bind().await;
    let backend_addr = listener.local_addr().expect("addr");
    let (tx, mut headers) = mpsc::unbounded_channel();
    let acceptor = Acceptor::new(pki.server_config("a.test"));
    let handle = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (tx, acceptor) = (tx.clone(), acceptor.clone());
            conns.spawn(async move {
                let mut header = vec![0u8; FIXED_LEN];
                if tcp.read_exact(&mut header).await.is_err() {
                    return;
                }
                let len = usize::from(u16::from_be_bytes([header[14], header[15]]));
                header.resize(FIXED_LEN + len, 0);
                if tcp.read_exact(&mut header[FIXED_LEN..]).await.is_err() {
                    return;
                }
                let decoded = ProxyHeader::decode(&header);
                let ok = matches!(&decoded, Ok((_, n)) if *n == header.len());
                let _ = tx.send((header[..SIGNATURE.len()] == SIGNATURE, decoded));
                if ok {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        serve_tagged(stream, "A").await;
                    }
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    let _backend = Task {
        addr: backend_addr,
        handle,
    };
    let (_proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("a.test={backend_addr}"),
        "--proxy-protocol",
        "v2",
        "--health-interval",
        "0",
    ])
    .await;

    let io = tcp_from("127.0.0.2", relay).await;
    let client_addr = io.local_addr().expect("addr");
    let mut s = session_over(io, &client, "a.test")
        .await
        .expect("session behind the header");
    assert_eq!(tag(&mut s).await, "A");
    let (signature, decoded) = timeout(WAIT, headers.recv())
        .await
        .expect("in time")
        .expect("a connection");
    assert!(signature);
    let (header, _) = decoded.expect("the relay's header decodes");
    assert_eq!(header.source, Some(client_addr));
    assert_eq!(header.destination, Some(relay));
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sc_server_behind_the_relay_learns_the_client_address_and_its_cookie_retry_runs_through() {
    let pki = Pki::new();
    // Every ClientHello gets a cookie retry (SPEC §4.5): the relay routes
    // on the first one and carries the retry end to end; the cookie binds
    // the client's address from the PROXY header.
    let server = Running::server(&{
        let mut a = pki.server_args("b.test");
        a.extend(["--accept-proxy-protocol".into(), "127.0.0.1/32".into()]);
        a.extend(["--cookies".into(), "always".into(), "-v".into()]);
        a
    });
    let server_addr = server.address().await;
    let (_proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("b.test={server_addr}"),
        "--proxy-protocol",
        "v2",
        "--health-interval",
        "0",
    ])
    .await;
    // The client comes from 127.0.0.2, the relay from 127.0.0.1.
    let io = tcp_from("127.0.0.2", relay).await;
    let client_addr = io.local_addr().expect("addr");
    let mut s = session_over(io, &pki.client_config(), "b.test")
        .await
        .expect("session");
    assert_eq!(ask(&mut s, "hi").await.expect("answer"), "echo: hi");
    close(s).await;
    let line = server.wait_line("session end").await;
    assert!(
        line.contains(&format!("peer={client_addr} via=127.0.0.1:")),
        "{line}"
    );
    let line = server.wait_line("cookie valid").await;
    assert!(line.contains(&format!("peer={client_addr}")), "{line}");
}

// ---------------------------------------------------------------------------
// Bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_reason_and_others_are_undisturbed() {
    let pki = Pki::new();
    let client = pki.client_config();
    let a = tagged_server(pki.server_config("svc.test"), "A").await;
    let hang = silent_server().await;
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={}", a.addr),
        "--route",
        &format!("hang.test={}", hang.addr),
        "--hello-timeout",
        "1",
        "--answer-timeout",
        "1",
        "--health-interval",
        "0",
    ])
    .await;
    let mut good = open(relay, &client, "svc.test").await.expect("session");
    assert_eq!(tag(&mut good).await, "A");

    // A garbled ClientHello, an oversized one, and HTTP: an alert each.
    // A ClientHello whose body (46 bytes) is too short for its fields.
    let mut garbled = vec![0xc1, 0, 0, 50, 1, 0, 0, 46];
    garbled.extend_from_slice(&[0xee; 46]);
    for (input, expected) in [
        (garbled, Some(AlertCode::MALFORMED)),
        (vec![0xc1, 0, 0x10, 0], Some(AlertCode::TOO_LARGE)),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), None),
    ] {
        let mut c = TcpStream::connect(relay).await.expect("connect");
        c.write_all(&input).await.expect("write");
        let got = read_to_close(&mut c).await;
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(&got[..4], [0xc2, 0, 0, 1]);
        if let Some(code) = expected {
            assert_eq!(got, alert(code));
        }
    }
    // A client that stalls inside its ClientHello: the timeout alert.
    let started = Instant::now();
    let mut c = TcpStream::connect(relay).await.expect("connect");
    c.write_all(&[0xc1, 0, 5]).await.expect("write");
    assert_eq!(read_to_close(&mut c).await, alert(AlertCode::TIMEOUT));
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A backend that accepts and then hangs: the session is cut.
    let started = Instant::now();
    let err = open(relay, &client, "hang.test")
        .await
        .expect_err("no session");
    assert!(matches!(err, Error::Io(_) | Error::Truncated), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    for reason in [
        "reason=bad ClientHello",
        "reason=not a ClientHello record (too large",
        "reason=no whole ClientHello within 1s (3 bytes came)",
        "backend accepted but sent nothing within 1s",
    ] {
        proxy.wait_line(reason).await;
    }
    // The good session never noticed.
    assert_eq!(tag(&mut good).await, "A");
    close(good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_bounded_by_the_connection_limit() {
    let pki = Pki::new();
    let a = tagged_server(pki.server_config("svc.test"), "A").await;
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={}", a.addr),
        "--max-connections",
        "20",
        "--hello-timeout",
        "2",
        "--health-interval",
        "0",
    ])
    .await;
    // Twenty connections that send nothing hold every slot ...
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(relay).await.expect("connect"));
    }
    // ... so a hundred more are refused at once with `going away`.
    let mut refused = JoinSet::new();
    for _ in 0..100 {
        refused.spawn(async move {
            let mut c = TcpStream::connect(relay).await.expect("connect");
            read_to_close(&mut c).await
        });
    }
    let mut going_away = 0;
    while let Some(got) = refused.join_next().await {
        let got = got.expect("task");
        // Beyond the refusals that linger for their alert, a connection is
        // closed without one.
        assert!(
            got.is_empty() || got == alert(AlertCode::GOING_AWAY),
            "{got:?}"
        );
        going_away += usize::from(!got.is_empty());
    }
    assert!(going_away > 0);
    proxy.wait_line("connection limit reached (20 open)").await;
    // The silent ones time out, and the slots are free again.
    for mut c in silent {
        assert_eq!(read_to_close(&mut c).await, alert(AlertCode::TIMEOUT));
    }
    // (The relay frees a slot once it has seen that client's close: allow
    // it a moment.)
    let client = pki.client_config();
    let mut tries = 0;
    let mut s = loop {
        match open(relay, &client, "svc.test").await {
            Err(Error::PeerAlert(AlertCode::GOING_AWAY)) if tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other.expect("session"),
        }
    };
    assert_eq!(tag(&mut s).await, "A");
    close(s).await;
}

// ---------------------------------------------------------------------------
// Command line and config file

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_runs_two_listeners() {
    let pki = Pki::new();
    let a = tagged_server(pki.server_config("svc.test"), "A").await;
    let b = tagged_server(pki.server_config("svc.test"), "B").await;
    let config = pki.dir.write(
        "proxy.toml",
        &format!(
            "health_interval = 0\n\
             [[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.routes]\n\"svc.test\" = [\"{}\"]\n\
             [[listener]]\nlisten = \"127.0.0.1:0\"\ndefault = \"{}\"\n",
            a.addr, b.addr
        ),
    );
    let proxy = Running::proxy(&["--config", &config.display().to_string()]);
    let addrs = proxy.listening(2).await;
    let client = pki.client_config();
    for (relay, expected) in [(addrs[0], "A"), (addrs[1], "B")] {
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        assert_eq!(tag(&mut s).await, expected);
        close(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_startup_errors() {
    let out = run(env!("CARGO_BIN_EXE_sc-proxy"), vec!["--help".into()], b"").await;
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--listen",
        "--route",
        "--default",
        "--fallback",
        "--proxy-protocol",
        "--health-interval",
        "--config",
        "--verbose",
        "no route for NAME",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let (code, stderr) = proxy_to_exit(&["--route", "a.test=127.0.0.1:1"]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("error: no address to listen on\nhint: "),
        "{stderr}"
    );
    let (code, stderr) = proxy_to_exit(&["--listen", "127.0.0.1:0"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("nothing to relay to"), "{stderr}");
    let (code, stderr) = proxy_to_exit(&["--listen", "127.0.0.1:0", "--route", "a.test"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is not NAME=HOST:PORT"), "{stderr}");
    let pki = Pki::new();
    let config = pki.dir.write(
        "typo.toml",
        "listen = \"127.0.0.1:0\"\nhelth_interval = 2\ndefault = \"127.0.0.1:1\"\n",
    );
    let (code, stderr) = proxy_to_exit(&["--config", &config.display().to_string()]).await;
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: config {}, line 2: unknown key `helth_interval`\n\
             hint: did you mean `health_interval`? (sc-proxy --help lists the keys)",
            config.display()
        )
    );
    let config = pki.dir.write(
        "backends.toml",
        "listen = \"127.0.0.1:0\"\n[routes]\n\"a.test\" = [7000]\n",
    );
    let (code, stderr) = proxy_to_exit(&["--config", &config.display().to_string()]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("backends must be \"HOST:PORT\" strings"),
        "{stderr}"
    );
    let taken = bind().await;
    let (code, stderr) = proxy_to_exit(&[
        "--listen",
        &taken.local_addr().expect("addr").to_string(),
        "--default",
        "127.0.0.1:1",
    ])
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("address already in use"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_line_is_logged_at_default_verbosity() {
    // The default log filter is made from the binary's own name: sc-proxy's
    // own lines (its startup line) are not dropped.
    let (proxy, _) =
        relay_on_loopback(&["--default", "127.0.0.1:9", "--health-interval", "0"]).await;
    let line = proxy.wait_line("running (pid").await;
    assert!(line.contains("sc-proxy "), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_open_sessions_finish_then_exits_0() {
    let pki = Pki::new();
    let client = pki.client_config();
    let a = tagged_server(pki.server_config("svc.test"), "A").await;
    let (mut proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={}", a.addr),
        "--health-interval",
        "0",
    ])
    .await;
    let mut s = open(relay, &client, "svc.test").await.expect("session");
    assert_eq!(tag(&mut s).await, "A");
    let pid = proxy.child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    proxy.wait_line("shutting down").await;
    // No new connections; the open session goes on.
    let refused = TcpStream::connect(relay).await;
    assert!(refused.is_err(), "the listener is closed");
    assert_eq!(tag(&mut s).await, "A");
    close(s).await;
    let status = proxy.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", proxy.log());
    // (Read from its standard error by a task that may lag the exit.)
    proxy.wait_line("shut down").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_listener_and_json_logs() {
    let pki = Pki::new();
    let a = tagged_server(pki.server_config("svc.test"), "A").await;
    let socket = pki.dir.0.join("relay.sock");
    let listen = format!("unix:{}", socket.display());
    let proxy = Running::proxy(&[
        "--listen",
        &listen,
        "--route",
        &format!("svc.test={}", a.addr),
        "--health-interval",
        "0",
        "--log-format",
        "json",
    ]);
    proxy.wait_line("listening on").await;
    let io = timeout(WAIT, tokio::net::UnixStream::connect(&socket))
        .await
        .expect("connect in time")
        .expect("connect to the relay's socket");
    let mut s = timeout(
        WAIT,
        Connector::new(pki.client_config()).connect(
            ServerName::try_from("svc.test").expect("name"),
            Some(RouteName::new("svc.test").expect("route")),
            io,
        ),
    )
    .await
    .expect("handshake in time")
    .expect("session over the Unix socket");
    s.send_message(b"ping").await.expect("send");
    let answer = timeout(WAIT, s.recv_message())
        .await
        .expect("in time")
        .expect("answer");
    assert_eq!(answer.as_deref(), Some(&b"A: ping"[..]));
    s.shutdown().await.expect("close");
    assert_eq!(s.recv_message().await.expect("clean end"), None);
    let line = proxy.wait_line("session end").await;
    let json: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(json["route"], "svc.test");
    assert_eq!(json["via"], "route");
    assert_eq!(json["backend"], a.addr.to_string());
    assert!(
        json["bytes_up"].as_u64().is_some_and(|n| n > 1000),
        "{line}"
    );
    assert!(
        json["bytes_down"].as_u64().is_some_and(|n| n > 1000),
        "{line}"
    );
    assert!(
        json["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("closed")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_flows_arrive_intact_both_ways() {
    // 8 MiB each way through the relay's copy buffers (each read of up to
    // 256 KiB): every byte arrives, in order, and the session ends cleanly.
    let pki = Pki::new();
    let a = tagged_server(pki.server_config("svc.test"), "A").await;
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={}", a.addr),
        "--health-interval",
        "0",
    ])
    .await;
    let mut s = open(relay, &pki.client_config(), "svc.test")
        .await
        .expect("session");
    let mut sent = 0u64;
    for i in 0..16u8 {
        let msg: String = (0..512 * 1024)
            .map(|k| char::from(b'a' + ((k + usize::from(i)) % 26) as u8))
            .collect();
        assert!(
            ask(&mut s, &msg).await.expect("answer") == format!("A: {msg}"),
            "message {i}"
        );
        sent += msg.len() as u64;
    }
    close(s).await;
    let line = proxy.wait_line("session end").await;
    let field = |name: &str| -> u64 {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|v| v.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    assert!(
        field("bytes_up") > sent && field("bytes_down") > sent,
        "{line}"
    );
    assert!(line.contains("reason=closed"), "{line}");
}

/// Memory the relay holds per idle session: 1,000 sessions through
/// `sc-proxy`, each moves a message each way and then stays idle; prints the
/// relay's RSS before and after (from /proc), and checks that no copy
/// buffer (256 KiB) stays behind in an idle session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --test proxy -- --ignored --nocapture idle_relayed_session_memory"]
async fn idle_relayed_session_memory() {
    const SESSIONS: usize = 1000;
    let pki = Pki::new();
    let client = pki.client_config();
    let a = tagged_server(pki.server_config("svc.test"), "A").await;
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={}", a.addr),
        "--max-connections",
        "2000",
        // All from one loopback address.
        "--max-connections-per-source",
        "2000",
        "--health-interval",
        "0",
    ])
    .await;
    let pid = proxy.child.id().expect("pid");
    let rss = || common::rss_kib(pid);
    // Warm up (thread stacks, allocator arenas), then measure.
    let mut warm = Vec::new();
    for _ in 0..20 {
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        assert_eq!(tag(&mut s).await, "A");
        warm.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss();
    let mut held = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        assert_eq!(tag(&mut s).await, "A");
        held.push(s);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss();
    let per = after.saturating_sub(before) as f64 / SESSIONS as f64;
    println!(
        "sc-proxy: RSS {before} KiB before, {after} KiB with {SESSIONS} more idle sessions: {per:.1} KiB per session"
    );
    assert!(per < 64.0, "{per:.1} KiB per idle session");
}

// ---------------------------------------------------------------------------
// Backends that fail before answering

/// A plain TCP forwarder to `to` (an L4 hop, like HAProxy in TCP mode): it
/// accepts whether or not `to` does, so a TCP probe of it always passes.
/// When `to` is gone it drops the connection it accepted without sending
/// anything (a reset or a close, depending on whether the relay's bytes
/// had arrived).
async fn l4_forwarder(to: SocketAddr) -> Task {
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((inbound, _)) = listener.accept().await {
            conns.spawn(async move {
                let Ok(outbound) = TcpStream::connect(to).await else {
                    return;
                };
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                let ignore = Arc::new(Mutex::new(Vec::new()));
                tokio::join!(
                    copy_logged(ir, ow, ignore.clone()),
                    copy_logged(or, iw, ignore)
                );
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Task { addr, handle }
}

/// A backend that accepts and sends nothing: with `reset`, it reads the
/// relay's first bytes and resets the connection (SO_LINGER 0); without,
/// it closes its side at once (a clean end of stream) and reads until the
/// relay closes.
async fn dead_end(reset: bool) -> Task {
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            conns.spawn(async move {
                if reset {
                    let mut first = [0u8; 64];
                    let _ = timeout(WAIT, tcp.read(&mut first)).await;
                    // SO_LINGER 0 does not block on close (the deprecation
                    // is about non-zero lingers).
                    #[allow(deprecated)]
                    let _ = tcp.set_linger(Some(Duration::ZERO));
                    drop(tcp);
                } else {
                    let _ = tcp.shutdown().await;
                    let _ = read_to_close(&mut tcp).await;
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Task { addr, handle }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_behind_an_l4_hop_costs_no_session() {
    let pki = Pki::new();
    let client = pki.client_config();
    let a = tagged_server(pki.server_config("svc.test"), "A").await;
    let b = tagged_server(pki.server_config("svc.test"), "B").await;
    let hop = l4_forwarder(a.addr).await;
    // Probes often: each one passes (the hop accepts) and makes the hop
    // "up" again, so sessions keep landing on it.
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={},{}", hop.addr, b.addr),
        "--health-interval",
        "200ms",
    ])
    .await;
    // Both serve, A through the hop.
    let mut tags = Vec::new();
    for _ in 0..4 {
        let mut s = open(relay, &client, "svc.test").await.expect("session");
        tags.push(tag(&mut s).await);
        close(s).await;
    }
    assert!(count(&tags, "A") > 0 && count(&tags, "B") > 0, "{tags:?}");

    // A dies; the hop still accepts, then drops what it accepted.
    drop(a);
    let down = format!("backend {} is down", hop.addr);
    let up = format!("backend {} is up (probe passed)", hop.addr);
    let mut downs = 0;
    for i in 0..20 {
        // Half way, let a probe bring the hop back (it is up with no
        // session, so one of the next two sessions tries it again).
        if i == 10 {
            downs = proxy.wait_lines(&down, 1).await.len();
            proxy.wait_lines(&up, downs).await;
        }
        let mut s = open(relay, &client, "svc.test")
            .await
            .unwrap_or_else(|e| panic!("session {i}: {e:?}; log:\n{}", proxy.log()));
        assert_eq!(tag(&mut s).await, "B", "session {i}");
        close(s).await;
    }
    // The hop was taken for a session (and marked down) again after the
    // probe, and no session ended on it.
    let lines = proxy.wait_lines(&down, downs + 1).await;
    for line in &lines {
        assert!(line.contains("before answering"), "{line}");
    }
    let ends = proxy.wait_lines("session end", 24).await;
    let on_hop = ends
        .iter()
        .filter(|l| l.contains(&format!("backend={} ", hop.addr)))
        .count();
    assert_eq!(on_hop, count(&tags, "A"), "{ends:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_that_reset_or_close_before_answering_are_retried_then_no_route() {
    let pki = Pki::new();
    let client = pki.client_config();
    let reset = dead_end(true).await;
    let closed = dead_end(false).await;
    let b = tagged_server(pki.server_config("svc.test"), "B").await;
    let (proxy, relay) = relay_on_loopback(&[
        "--route",
        &format!("svc.test={},{},{}", reset.addr, closed.addr, b.addr),
        "--route",
        &format!("dead.test={},{}", reset.addr, closed.addr),
        "--health-interval",
        "0",
    ])
    .await;
    // Every session reaches B, whichever backend it was sent to first.
    for i in 0..20 {
        let mut s = open(relay, &client, "svc.test")
            .await
            .unwrap_or_else(|e| panic!("session {i}: {e:?}; log:\n{}", proxy.log()));
        assert_eq!(tag(&mut s).await, "B", "session {i}");
        close(s).await;
    }
    let down = proxy
        .wait_line(&format!("backend {} is down", reset.addr))
        .await;
    assert!(down.contains("connection reset before answering"), "{down}");
    let down = proxy
        .wait_line(&format!("backend {} is down", closed.addr))
        .await;
    assert!(
        down.contains("closed the connection before answering"),
        "{down}"
    );

    // A route whose backends all fail that way: the no route alert, at
    // once (both are down now: each is tried once more, as a last resort).
    let started = Instant::now();
    let err = open(relay, &client, "dead.test")
        .await
        .expect_err("no session");
    assert!(
        matches!(err, Error::PeerAlert(AlertCode::NO_ROUTE)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let line = proxy.wait_line("no backend reachable").await;
    assert!(line.contains("route=dead.test"), "{line}");
    assert!(
        line.contains(&format!("{} connection reset before answering", reset.addr)),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "{} closed the connection before answering",
            closed.addr
        )),
        "{line}"
    );
    // The real client names the route.
    let started = Instant::now();
    let out = sc_client(&pki, relay, &["--server-name", "dead.test"], b"hello\n").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).lines().next(),
        Some("error: no route for dead.test"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
