//! `sc-client` end to end: the real binary on loopback sockets, against
//! servers built here from the library (`Acceptor` over a tokio listener)
//! with certificates issued here and written to a temporary directory.
//!
//! Every wait is bounded; every process is spawned with `kill_on_drop`, so
//! a failing test (a panic) kills what it started.

mod common;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use sovereign_chain::handshake::ServerConfig;
use sovereign_chain::pki::{
    cert_serial, cert_to_pem, crl_to_pem, crls_from_pem, issue_crl, issue_root, CertificateDer,
    Credential, Issuer, KeyPair, LeafSpec, RevokedEntry, TrustAnchors, UnixTime, Validity,
    WebPkiClientVerifier,
};
use sovereign_chain::session::Acceptor;
use sovereign_chain::tunnel::splice;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio::time::timeout;

use common::{bind, spawn_logged, ClosedPort, Lines, Task, TempDir};

/// The bound of every ordinary wait.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Files and certificates

/// A CA in a temporary directory: its certificate in `ca.pem`.
struct Pki {
    dir: TempDir,
    ca_key: KeyPair,
    ca_cert: CertificateDer<'static>,
    validity: Validity,
    ca_path: PathBuf,
}

/// A client's files.
struct ClientFiles {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Self {
        Self::named("Client Test CA")
    }

    fn named(ca_name: &str) -> Self {
        let dir = TempDir::new("sc-client-test");
        let validity = Validity::days_from(UnixTime::now(), 1);
        let ca_key = KeyPair::generate(&mut OsRng);
        let ca_cert = issue_root(&ca_key, ca_name, validity, &mut OsRng).expect("root");
        let ca_path = dir.write("ca.pem", &cert_to_pem(&ca_cert).expect("pem"));
        Self {
            dir,
            ca_key,
            ca_cert,
            validity,
            ca_path,
        }
    }

    fn issuer(&self) -> Issuer<'_> {
        Issuer {
            cert: &self.ca_cert,
            key: &self.ca_key,
        }
    }

    fn leaf(&self, spec: &LeafSpec) -> (CertificateDer<'static>, KeyPair) {
        common::leaf(&self.issuer(), spec, self.validity)
    }

    /// A server credential for `name` (a DNS name or an IP address).
    fn server(&self, name: &str) -> Arc<Credential> {
        let (cert, key) = self.leaf(&LeafSpec::server(name));
        Arc::new(Credential::new(vec![cert], key).expect("credential"))
    }

    /// A client certificate and key for `name`, written as `name.pem` and
    /// `name.key` (0600).
    fn client(&self, name: &str) -> ClientFiles {
        let (der, key) = self.leaf(&LeafSpec::client(name));
        let cert = self
            .dir
            .write(&format!("{name}.pem"), &cert_to_pem(&der).expect("pem"));
        let key = self
            .dir
            .write_private(&format!("{name}.key"), &key.to_pkcs8_pem().expect("pem"));
        ClientFiles { cert, key, der }
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_der(std::slice::from_ref(&self.ca_cert)).expect("anchors")
    }

    /// A server configuration: certificate for `name`, clients of this CA.
    fn server_config(&self, name: &str) -> Arc<ServerConfig> {
        self.server_config_with(name, WebPkiClientVerifier::new(self.anchors()))
    }

    fn server_config_with(&self, name: &str, verifier: WebPkiClientVerifier) -> Arc<ServerConfig> {
        Arc::new(
            ServerConfig::builder()
                .with_client_verifier(Arc::new(verifier))
                .with_credential(self.server(name))
                .build(),
        )
    }

    /// A CRL revoking `cert`.
    fn crl_revoking(&self, cert: &CertificateDer<'_>) -> String {
        let now = UnixTime::now();
        let entry = RevokedEntry {
            serial: cert_serial(cert).expect("serial"),
            revoked_at: now,
            reason: None,
        };
        let next = UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs() + 86_400));
        let crl = issue_crl(&self.issuer(), &[entry], now, next, 1).expect("crl");
        crl_to_pem(&crl).expect("pem")
    }
}

// ---------------------------------------------------------------------------
// Servers and backends

/// What an in-test secure server does with each session.
#[derive(Clone, Copy)]
enum Serve {
    /// Answers each message `m` with `echo: m`, then closes after the client.
    Echo,
    /// Tunnel exit: splices the session with a new connection to a backend.
    Forward(SocketAddr),
}

fn secure_server_on(listener: TcpListener, config: Arc<ServerConfig>, serve: Serve) -> Task {
    let addr = listener.local_addr().expect("addr");
    let acceptor = Acceptor::new(config);
    let handle = tokio::spawn(async move {
        let mut sessions = JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            sessions.spawn(async move {
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    return;
                };
                match serve {
                    Serve::Echo => {
                        while let Ok(Some(m)) = stream.recv_message().await {
                            if stream
                                .send_message(&[b"echo: ", &m[..]].concat())
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        let _ = stream.shutdown().await;
                    }
                    Serve::Forward(backend) => {
                        if let Ok(plain) = TcpStream::connect(backend).await {
                            splice(stream, plain, None, None).await;
                        }
                    }
                }
            });
            while sessions.try_join_next().is_some() {}
        }
    });
    Task { addr, handle }
}

async fn secure_server(config: Arc<ServerConfig>, serve: Serve) -> Task {
    secure_server_on(bind().await, config, serve)
}

/// What an in-test plaintext backend does with each connection.
#[derive(Clone)]
enum Backend {
    /// Sends back every byte, and ends when the client does.
    Echo,
    /// Sends `banner`, then echoes.
    Banner(&'static str),
    /// Reads until the client's end of stream, then answers
    /// `got N bytes: <the bytes>` and closes.
    ReplyAfterEof,
}

async fn backend(kind: Backend) -> Task {
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let kind = kind.clone();
            conns.spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                match kind {
                    Backend::Echo => {
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    }
                    Backend::Banner(banner) => {
                        let _ = w.write_all(banner.as_bytes()).await;
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    }
                    Backend::ReplyAfterEof => {
                        let mut got = Vec::new();
                        if r.read_to_end(&mut got).await.is_ok() {
                            let mut reply = format!("got {} bytes: ", got.len()).into_bytes();
                            reply.extend_from_slice(&got);
                            let _ = w.write_all(&reply).await;
                        }
                    }
                }
                let _ = w.shutdown().await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Task { addr, handle }
}

// ---------------------------------------------------------------------------
// The binary

fn sc_client() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sc-client"));
    cmd.env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    cmd
}

/// `--ca CA --cert C --key K`.
fn identity(pki: &Pki, client: &ClientFiles) -> Vec<OsString> {
    vec![
        "--ca".into(),
        pki.ca_path.clone().into(),
        "--cert".into(),
        client.cert.clone().into(),
        "--key".into(),
        client.key.clone().into(),
    ]
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// Runs sc-client with `input` on its standard input (a pipe) and waits for
/// it to exit; standard input is written while the output is read.
async fn run_with_input(args: Vec<OsString>, input: &[u8]) -> Output {
    let mut child = sc_client()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sc-client");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        // Dropping stdin is the end of input.
    });
    let out = timeout(WAIT, child.wait_with_output())
        .await
        .expect("sc-client did not exit in time")
        .expect("wait for sc-client");
    let _ = writer.await;
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first line of standard error, which must start with `error: `.
fn error_line(out: &Output) -> String {
    let stderr = text(&out.stderr);
    let first = stderr.lines().next().unwrap_or("").to_owned();
    assert!(first.starts_with("error: "), "stderr: {stderr}");
    first
}

/// sc-client in tunnel mode, its standard error collected line by line.
struct Running {
    child: Child,
    lines: Lines,
}

impl Running {
    /// At `-v` (unless `args` say it): a line per stream at its end.
    fn spawn(mut args: Vec<OsString>) -> Self {
        if !args.iter().any(|a| a.to_string_lossy().starts_with("-v")) {
            args.push("-v".into());
        }
        let (child, lines) = spawn_logged(sc_client().args(args), false).expect("spawn sc-client");
        Self { child, lines }
    }

    fn stderr(&self) -> String {
        self.lines.text()
    }

    /// Waits for `count` lines containing `needle`; returns them.
    async fn wait_lines(&self, needle: &str, count: usize) -> Vec<String> {
        self.lines
            .wait_lines_or(needle, count, WAIT, || {
                format!(
                    "no {count} line(s) with {needle:?} in time; stderr:\n{}",
                    self.stderr()
                )
            })
            .await
    }

    /// The address of the (first) listener, from its log line.
    async fn listen_addr(&self) -> SocketAddr {
        let lines = self.wait_lines("listening on ", 1).await;
        listen_addr(&lines[0])
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!("sc-client did not exit in time; stderr:\n{}", self.stderr())
            })
            .expect("wait")
    }
}

/// `listening on 127.0.0.1:4321, tunnelling to …` → the address.
fn listen_addr(line: &str) -> SocketAddr {
    let rest = line
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let addr = rest.split(',').next().unwrap_or("");
    addr.parse()
        .unwrap_or_else(|_| panic!("bad address {addr:?} in {line:?}"))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).await.expect("write");
    let mut back = vec![0u8; msg.len()];
    timeout(WAIT, s.read_exact(&mut back))
        .await
        .expect("reply in time")
        .expect("read");
    back
}

// ---------------------------------------------------------------------------
// Interactive mode

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_echoes_one_line_from_a_pipe() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    // A certificate for the IP address: --server-name defaults to it.
    let server = secure_server(pki.server_config("127.0.0.1"), Serve::Echo).await;
    let mut a = identity(&pki, &client);
    a.extend(args(&["--connect", &server.addr.to_string()]));
    let out = run_with_input(a, b"hello\n").await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "server: echo: hello\n");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("connected to 127.0.0.1 (cipher "),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("steps 7-10: "), "stderr: {stderr}");
    assert!(stderr.contains(" ms)"), "stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_sends_every_line_in_order() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let server = secure_server(pki.server_config("localhost"), Serve::Echo).await;
    let long = "x".repeat(300_000);
    let input = format!("one\n\ntwo\r\n{long}\nlast line without newline");
    let mut a = identity(&pki, &client);
    // A DNS name in --connect is the default server name.
    a.extend(args(&[
        "--connect",
        &format!("localhost:{}", server.addr.port()),
        "--cipher",
        "chacha20-poly1305",
    ]));
    let out = run_with_input(a, input.as_bytes()).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let expected = format!(
        "server: echo: one\nserver: echo: \nserver: echo: two\nserver: echo: {long}\n\
         server: echo: last line without newline\n"
    );
    assert!(text(&out.stdout) == expected, "stdout differs");
    assert!(
        text(&out.stderr).contains("cipher ChaCha20-Poly1305"),
        "stderr: {}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_line_over_the_maximum_is_refused_and_the_rest_sent() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let server = secure_server(pki.server_config("127.0.0.1"), Serve::Echo).await;
    let mut a = identity(&pki, &client);
    a.extend(args(&[
        "--connect",
        &server.addr.to_string(),
        "--max-message",
        "16",
    ]));
    let out = run_with_input(a, b"short\nthis line is too long\nok\n").await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "server: echo: short\nserver: echo: ok\n");
    assert!(
        text(&out.stderr).contains(
            "error: line 2 not sent: 21 bytes, more than the maximum message of 16 bytes"
        ),
        "stderr: {}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_server_down_is_one_line() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let closed = ClosedPort::new();
    let dead = closed.addr;
    let mut a = identity(&pki, &client);
    a.extend(args(&["--connect", &dead.to_string()]));
    let out = run_with_input(a, b"hello\n").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_line(&out),
        format!("error: cannot connect to {dead}: connection refused")
    );
    assert_eq!(
        text(&out.stderr).lines().count(),
        2,
        "one error line and one hint: {}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

/// `--min-version`: the session line names the version the handshake ran;
/// version 2 with a version 2 server. A server that speaks only version 1
/// is refused by default, and with `--min-version 2` (or `min_version = 2`
/// in the config file): a client that falls back to version 1 gives its
/// certificate away (SPEC §16.1). `--min-version 1` lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_names_the_protocol_version_and_refuses_a_v1_server_unless_min_version_1() {
    use sovereign_chain::wire::ProtocolVersion;
    let pki = Pki::new();
    let client = pki.client("app-1");
    let v2 = secure_server(pki.server_config("127.0.0.1"), Serve::Echo).await;
    let v1_only = ServerConfig::builder()
        .with_client_verifier(Arc::new(WebPkiClientVerifier::new(pki.anchors())))
        .with_credential(pki.server("127.0.0.1"))
        .build()
        .with_max_version(ProtocolVersion::V1)
        .expect("version 1 only");
    let v1 = secure_server(Arc::new(v1_only), Serve::Echo).await;
    let run = |server: SocketAddr, extra: &'static [&'static str]| {
        let mut a = identity(&pki, &client);
        a.extend(args(&["--connect", &server.to_string()]));
        a.extend(args(extra));
        run_with_input(a, b"hello\n")
    };
    for (server, extra, version) in [
        (v2.addr, &[][..], "SC/2"),
        (v2.addr, &["--min-version", "2"][..], "SC/2"),
        (v2.addr, &["--min-version", "1"][..], "SC/2"),
        (v1.addr, &["--min-version", "1"][..], "SC/1"),
    ] {
        let out = run(server, extra).await;
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "server: echo: hello\n");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!(", protocol {version}, steps 7-10: ")),
            "{extra:?}: {stderr}"
        );
    }
    for extra in [&[][..], &["--min-version", "2"][..]] {
        let out = run(v1.addr, extra).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{extra:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        assert_eq!(
            error_line(&out),
            "error: peer speaks protocol version SC/1, below this side's minimum SC/2 (min_version)"
        );
        assert!(
            text(&out.stderr).contains(
                "hint: the server speaks only protocol version 1 (an older server, or sc-server \
                 --max-version 1): upgrade it, or allow version 1 with --min-version 1"
            ),
            "{extra:?}: {}",
            text(&out.stderr)
        );
    }
    // The same from the config file; a version that does not exist is a
    // mistake in it (exit 2), and in the flags.
    let conf = pki.dir.write("v2.toml", "min_version = 2\n");
    let mut a = identity(&pki, &client);
    a.extend(args(&["--connect", &v1.addr.to_string(), "--config"]));
    a.push(conf.into());
    let out = run_with_input(a, b"hello\n").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(error_line(&out).contains("below this side's minimum SC/2"));
    let conf = pki.dir.write("v3.toml", "min_version = 3\n");
    let mut a = identity(&pki, &client);
    a.extend(args(&["--connect", &v2.addr.to_string(), "--config"]));
    a.push(conf.into());
    let out = run_with_input(a, b"hello\n").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        error_line(&out).contains("min_version") && error_line(&out).contains("use 1 or 2"),
        "{}",
        text(&out.stderr)
    );
    let out = run(v2.addr, &["--min-version", "3"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_wrong_server_name_is_one_line() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let server = secure_server(pki.server_config("api.internal"), Serve::Echo).await;
    let mut a = identity(&pki, &client);
    a.extend(args(&[
        "--connect",
        &server.addr.to_string(),
        "--server-name",
        "db.internal",
    ]));
    let out = run_with_input(a, b"hello\n").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_line(&out),
        "error: server certificate is not valid for 'db.internal' (it names: api.internal)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_unknown_ca_is_one_line() {
    let pki = Pki::new();
    let other = Pki::named("Another CA");
    let client = pki.client("app-1");
    // The server's certificate comes from another CA than the client trusts.
    let server = secure_server(
        other.server_config_with("127.0.0.1", WebPkiClientVerifier::new(pki.anchors())),
        Serve::Echo,
    )
    .await;
    let mut a = identity(&pki, &client);
    a.extend(args(&["--connect", &server.addr.to_string()]));
    let out = run_with_input(a, b"hello\n").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_line(&out),
        "error: server certificate issued by an unknown CA"
    );
    assert!(text(&out.stderr).contains("hint: pass the CA that issued the server's certificate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_anonymous_refused_then_allowed() {
    let pki = Pki::new();
    let strict = secure_server(pki.server_config("127.0.0.1"), Serve::Echo).await;
    let open = secure_server(
        pki.server_config_with(
            "127.0.0.1",
            WebPkiClientVerifier::new(pki.anchors()).allow_anonymous(true),
        ),
        Serve::Echo,
    )
    .await;
    let ca = pki.ca_path.to_string_lossy().into_owned();

    let out = run_with_input(
        args(&[
            "--ca",
            &ca,
            "--anonymous",
            "--connect",
            &strict.addr.to_string(),
        ]),
        b"hello\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_line(&out),
        "error: the server does not accept anonymous clients; use a client certificate"
    );

    let out = run_with_input(
        args(&[
            "--ca",
            &ca,
            "--anonymous",
            "--connect",
            &open.addr.to_string(),
        ]),
        b"hello\n",
    )
    .await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "server: echo: hello\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_revoked_client_certificate_is_one_line() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let crl = crls_from_pem(&pki.crl_revoking(&client.der)).expect("crl");
    let verifier = WebPkiClientVerifier::new(pki.anchors())
        .with_crls(crl)
        .expect("crls");
    let server = secure_server(pki.server_config_with("127.0.0.1", verifier), Serve::Echo).await;
    let mut a = identity(&pki, &client);
    a.extend(args(&["--connect", &server.addr.to_string()]));
    let out = run_with_input(a, b"hello\n").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(error_line(&out), "error: client certificate revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_silent_server_is_cut_at_the_handshake_timeout() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    // Accepts TCP connections and never says a word.
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let mut a = identity(&pki, &client);
    a.extend(args(&[
        "--connect",
        &addr.to_string(),
        "--handshake-timeout",
        "1",
    ]));
    let started = Instant::now();
    let out = run_with_input(a, b"hello\n").await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_line(&out),
        format!("error: handshake with {addr} timed out after 1s")
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // Durations take units, as on every binary's command line.
    let mut a = identity(&pki, &client);
    a.extend(args(&[
        "--connect",
        &addr.to_string(),
        "--handshake-timeout",
        "1500ms",
    ]));
    let out = run_with_input(a, b"hello\n").await;
    assert_eq!(
        error_line(&out),
        format!("error: handshake with {addr} timed out after 1.5s")
    );
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_file_and_flag_errors_are_one_line() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let other = pki.client("app-2");
    let closed = ClosedPort::new();
    let dead = closed.addr.to_string();
    let ca = pki.ca_path.to_string_lossy().into_owned();
    let cert = client.cert.to_string_lossy().into_owned();
    let key = client.key.to_string_lossy().into_owned();
    let other_key = other.key.to_string_lossy().into_owned();

    // An encrypted key, and its passphrase.
    let plain =
        KeyPair::from_pem(&std::fs::read_to_string(&client.key).expect("key"), None).expect("key");
    let encrypted = pki.dir.write_private(
        "app-1.enc.key",
        &plain
            .to_encrypted_pkcs8_pem(b"correct horse", &mut OsRng)
            .expect("encrypt"),
    );
    let encrypted = encrypted.to_string_lossy().into_owned();
    let good_pass = pki.dir.write("good.pass", "correct horse\n");
    let bad_pass = pki.dir.write("bad.pass", "wrong\n");
    let loose = pki.dir.write(
        "loose.key",
        &std::fs::read_to_string(&client.key).expect("key"),
    );

    struct Case {
        args: Vec<String>,
        code: i32,
        line: String,
    }
    let case = |a: &[&str], code: i32, line: String| Case {
        args: a.iter().map(|s| (*s).to_owned()).collect(),
        code,
        line,
    };
    let cases = [
        case(
            &["--ca", "/nonexistent/ca.pem", "--cert", &cert, "--key", &key, "--connect", &dead],
            1,
            "error: cannot read the CA bundle /nonexistent/ca.pem: no such file or directory".into(),
        ),
        case(
            &["--ca", &ca, "--cert", &cert, "--key", &other_key, "--connect", &dead],
            1,
            format!("error: the certificate {cert} does not match the key {other_key}"),
        ),
        case(
            &["--ca", &ca, "--cert", &cert, "--key", &encrypted, "--connect", &dead],
            1,
            format!("error: the key {encrypted} is encrypted and no passphrase was given"),
        ),
        case(
            &[
                "--ca", &ca, "--cert", &cert, "--key", &encrypted, "--connect", &dead,
                "--key-passphrase-file", &bad_pass.to_string_lossy(),
            ],
            1,
            format!("error: wrong passphrase for the key {encrypted} (or the key is damaged)"),
        ),
        // With the right passphrase the key loads and the next problem shows.
        case(
            &[
                "--ca", &ca, "--cert", &cert, "--key", &encrypted, "--connect", &dead,
                "--key-passphrase-file", &good_pass.to_string_lossy(),
            ],
            1,
            format!("error: cannot connect to {dead}: connection refused"),
        ),
        case(
            &["--ca", &ca, "--cert", &cert, "--key", &loose.to_string_lossy(), "--connect", &dead],
            1,
            format!(
                "error: refusing to use the key {}: it is readable by group or others (mode 0644)",
                loose.display()
            ),
        ),
        case(
            &["--ca", &cert, "--cert", &cert, "--key", &key, "--connect", &dead],
            1,
            format!("error: the CA bundle {cert} holds a certificate that is not a CA certificate"),
        ),
        case(
            &["--ca", &ca, "--cert", &cert, "--key", &key, "--connect", "nohost"],
            2,
            "error: --connect: invalid address 'nohost': no port (use HOST:PORT, [IPv6]:PORT or unix:/path)".into(),
        ),
        case(
            &["--ca", &ca, "--connect", &dead],
            2,
            "error: no client identity: give --cert FILE --key FILE, or --anonymous".into(),
        ),
        case(
            &["--ca", &ca, "--cert", &cert, "--connect", &dead],
            2,
            "error: --cert needs its key: give --key FILE".into(),
        ),
        case(
            &["--cert", &cert, "--key", &key, "--connect", &dead],
            2,
            "error: no CA to check the server against: give --ca FILE".into(),
        ),
        case(
            &["--ca", &ca, "--cert", &cert, "--key", &key],
            2,
            "error: no server to connect to: give --connect HOST:PORT".into(),
        ),
        case(
            &["--ca", &ca, "--cert", &cert, "--key", &key, "--connect", &dead, "--pin", "sha256:zz"],
            2,
            "error: --pin: invalid key pin \"sha256:zz\": expected sha256:<64 hex digits> or sha256//<base64>".into(),
        ),
    ];
    // Loose permissions on purpose.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    for c in cases {
        let out = run_with_input(c.args.iter().map(OsString::from).collect(), b"").await;
        assert_eq!(
            out.status.code(),
            Some(c.code),
            "{:?}: {}",
            c.args,
            text(&out.stderr)
        );
        assert_eq!(error_line(&out), c.line, "{:?}", c.args);
        assert!(
            text(&out.stderr).lines().count() <= 2,
            "{}",
            text(&out.stderr)
        );
    }
}

/// On a terminal (a pseudo-terminal made by util-linux `script`): the
/// `msg> ` prompt, the reply printed, and Ctrl-D ends the session cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_prompt_on_a_terminal() {
    // util-linux `script` (Debian's essential bsdutils package) makes the
    // pseudo-terminal. Missing, the test fails: it never passes unrun.
    assert!(
        std::process::Command::new("script")
            .arg("--version")
            .output()
            .is_ok(),
        "this test needs util-linux `script` to make a pseudo-terminal"
    );
    let pki = Pki::new();
    let client = pki.client("app-1");
    let server = secure_server(pki.server_config("127.0.0.1"), Serve::Echo).await;
    let command = format!(
        "{} --ca {} --cert {} --key {} --connect {}",
        env!("CARGO_BIN_EXE_sc-client"),
        pki.ca_path.display(),
        client.cert.display(),
        client.key.display(),
        server.addr
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn script");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = seen.clone();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().expect("seen").extend_from_slice(&buf[..n]);
        }
    });
    let wait_for = |needle: &'static str| {
        let seen = seen.clone();
        async move {
            let deadline = Instant::now() + WAIT;
            loop {
                if text(&seen.lock().expect("seen")).contains(needle) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "no {needle:?} on the terminal: {:?}",
                    text(&seen.lock().expect("seen"))
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for("msg> ").await;
    stdin.write_all(b"hello\r").await.expect("type");
    wait_for("server: echo: hello").await;
    stdin.write_all(&[0x04]).await.expect("Ctrl-D");
    let status = timeout(WAIT, child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    let _ = timeout(WAIT, reader).await;
    let screen = text(&seen.lock().expect("seen"));
    assert!(status.success(), "terminal: {screen:?}");
    assert!(screen.contains("connected to 127.0.0.1"), "{screen:?}");
}

// ---------------------------------------------------------------------------
// Tunnel mode

/// A tunnel: sc-client --listen in front of a forwarding secure server in
/// front of `backend`.
struct Tunnel {
    _pki: Pki,
    _backend: Task,
    _server: Task,
    client: Running,
    local: SocketAddr,
}

async fn tunnel(kind: Backend, extra: &[&str]) -> Tunnel {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let backend = backend(kind).await;
    let server = secure_server(pki.server_config("127.0.0.1"), Serve::Forward(backend.addr)).await;
    let mut a = identity(&pki, &client);
    a.extend(args(&[
        "--listen",
        "127.0.0.1:0",
        "--connect",
        &server.addr.to_string(),
    ]));
    a.extend(args(extra));
    let running = Running::spawn(a);
    let local = running.listen_addr().await;
    Tunnel {
        _pki: pki,
        _backend: backend,
        _server: server,
        client: running,
        local,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_small_exchange_and_half_close() {
    let t = tunnel(Backend::Echo, &[]).await;
    let mut app = TcpStream::connect(t.local).await.expect("connect");
    for msg in [&b"ping"[..], b"a somewhat longer message", b"x"] {
        assert_eq!(exchange(&mut app, msg).await, msg);
    }
    app.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    timeout(WAIT, app.read_to_end(&mut rest))
        .await
        .expect("end in time")
        .expect("read");
    assert!(rest.is_empty());
    // One line for the session at its end.
    let ended = t.client.wait_lines("connection ended", 1).await;
    let line = &ended[0];
    for part in [
        "local=127.0.0.1:",
        "server=ip:127.0.0.1",
        "cipher=",
        "sent=30",
        "received=30",
        "reason=closed",
    ] {
        assert!(line.contains(part), "{part} missing in {line}");
    }

    // Half-close: the application ends its side and still gets the whole
    // answer, which the backend sends only after that end arrived.
    let t = tunnel(Backend::ReplyAfterEof, &[]).await;
    let mut app = TcpStream::connect(t.local).await.expect("connect");
    app.write_all(b"hello half-close").await.expect("write");
    app.shutdown().await.expect("shutdown");
    let mut reply = Vec::new();
    timeout(WAIT, app.read_to_end(&mut reply))
        .await
        .expect("reply in time")
        .expect("read");
    assert_eq!(text(&reply), "got 16 bytes: hello half-close");
}

/// 256 MiB each way at once, random, with SHA-256 compared end to end:
/// application → sc-client → secure server → backend, and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_carries_256_mib_each_way() {
    const TOTAL: u64 = 256 << 20;
    const CHUNK: usize = 64 << 10;

    /// Writes TOTAL random bytes from `seed`, then ends the stream; the hash.
    async fn send<W: AsyncWrite + Unpin>(mut w: W, seed: u64) -> [u8; 32] {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut left = TOTAL;
        while left > 0 {
            let n = CHUNK.min(left as usize);
            rng.fill_bytes(&mut buf[..n]);
            hash.update(&buf[..n]);
            w.write_all(&buf[..n]).await.expect("write");
            left -= n as u64;
        }
        w.shutdown().await.expect("shutdown");
        hash.finalize().into()
    }

    /// Reads to the end; the length and hash.
    async fn receive<R: AsyncRead + Unpin>(mut r: R) -> (u64, [u8; 32]) {
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut len = 0u64;
        loop {
            let n = r.read(&mut buf).await.expect("read");
            if n == 0 {
                return (len, hash.finalize().into());
            }
            hash.update(&buf[..n]);
            len += n as u64;
        }
    }

    let pki = Pki::new();
    let client = pki.client("app-1");
    let backend_listener = bind().await;
    let backend_addr = backend_listener.local_addr().expect("addr");
    let backend = tokio::spawn(async move {
        let (tcp, _) = backend_listener.accept().await.expect("accept");
        let (r, w) = tcp.into_split();
        tokio::join!(receive(r), send(w, 2))
    });
    let server = secure_server(pki.server_config("127.0.0.1"), Serve::Forward(backend_addr)).await;
    let mut a = identity(&pki, &client);
    a.extend(args(&[
        "--listen",
        "127.0.0.1:0",
        "--connect",
        &server.addr.to_string(),
    ]));
    let running = Running::spawn(a);
    let local = running.listen_addr().await;

    let started = Instant::now();
    let app = TcpStream::connect(local).await.expect("connect");
    let (r, w) = app.into_split();
    let both = async { tokio::join!(send(w, 1), receive(r)) };
    let (app_sent, (app_len, app_received)) = timeout(Duration::from_secs(120), both)
        .await
        .expect("256 MiB each way within 120 s");
    let ((backend_len, backend_received), backend_sent) = timeout(WAIT, backend)
        .await
        .expect("backend done")
        .expect("backend");
    let took = started.elapsed();
    eprintln!(
        "256 MiB each way through sc-client: {took:.2?} ({:.0} MiB/s each way)",
        256.0 / took.as_secs_f64()
    );
    assert_eq!(backend_len, TOTAL);
    assert_eq!(app_len, TOTAL);
    assert_eq!(app_sent, backend_received, "application → backend");
    assert_eq!(backend_sent, app_received, "backend → application");
    let ended = running.wait_lines("connection ended", 1).await;
    assert!(ended[0].contains(&format!("sent={TOTAL}")), "{}", ended[0]);
    assert!(
        ended[0].contains(&format!("received={TOTAL}")),
        "{}",
        ended[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_server_down_closes_the_local_connection_and_keeps_listening() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let closed = ClosedPort::new();
    let server_addr = closed.addr;
    let mut a = identity(&pki, &client);
    a.extend(args(&[
        "--listen",
        "127.0.0.1:0",
        "--connect",
        &server_addr.to_string(),
    ]));
    let running = Running::spawn(a);
    let local = running.listen_addr().await;

    // Nothing there: the local connection is closed, with one log line.
    let mut app = TcpStream::connect(local).await.expect("connect");
    let _ = app.write_all(b"hello").await;
    let mut buf = Vec::new();
    let read = timeout(WAIT, app.read_to_end(&mut buf))
        .await
        .expect("closed in time");
    assert!(read.is_err() || buf.is_empty(), "got {buf:?}");
    let failed = running.wait_lines("session failed", 1).await;
    assert!(
        failed[0].contains(&format!(
            "cannot connect to {server_addr}: connection refused"
        )),
        "{}",
        failed[0]
    );

    // The server comes up on that address: the same listener now tunnels.
    let backend = backend(Backend::Echo).await;
    let listener = closed.listen();
    let _server = secure_server_on(
        listener,
        pki.server_config("127.0.0.1"),
        Serve::Forward(backend.addr),
    );
    let mut app = TcpStream::connect(local).await.expect("connect");
    assert_eq!(exchange(&mut app, b"still here").await, b"still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_sigterm_drains_and_exits_zero() {
    let mut t = tunnel(Backend::Echo, &["--shutdown-grace", "20"]).await;
    let mut app = TcpStream::connect(t.local).await.expect("connect");
    assert_eq!(exchange(&mut app, b"before").await, b"before");

    t.client.signal("TERM");
    t.client.wait_lines("SIGTERM: stopping", 1).await;
    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(t.local).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The open session goes on, then ends; then the process exits 0.
    assert_eq!(exchange(&mut app, b"after").await, b"after");
    app.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    timeout(WAIT, app.read_to_end(&mut rest))
        .await
        .expect("end in time")
        .expect("read");
    let status = t.client.wait_exit(WAIT).await;
    assert!(
        status.success(),
        "{status:?}; stderr:\n{}",
        t.client.stderr()
    );
    // (Read from its standard error by a task that may lag the exit.)
    t.client.wait_lines("connection ended", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_connection_limit_idle_timeout_and_json_logs() {
    let t = tunnel(
        Backend::Echo,
        &[
            "--max-connections",
            "1",
            "--idle-timeout",
            "1",
            "--log-format",
            "json",
        ],
    )
    .await;
    // The first connection takes the only slot.
    let mut first = TcpStream::connect(t.local).await.expect("connect");
    assert_eq!(exchange(&mut first, b"one").await, b"one");
    // The second waits in the backlog: no answer while the first is open.
    let mut second = TcpStream::connect(t.local).await.expect("connect");
    second.write_all(b"two").await.expect("write");
    let mut buf = [0u8; 3];
    assert!(
        timeout(Duration::from_millis(300), second.read_exact(&mut buf))
            .await
            .is_err(),
        "served beyond the connection limit"
    );
    t.client.wait_lines("connection limit reached", 1).await;
    // The first goes quiet: the idle timeout ends it, and frees the slot.
    let mut rest = Vec::new();
    timeout(WAIT, first.read_to_end(&mut rest))
        .await
        .expect("idle session closed in time")
        .expect("read");
    timeout(WAIT, second.read_exact(&mut buf))
        .await
        .expect("second served once the slot is free")
        .expect("read");
    assert_eq!(&buf, b"two");
    let ended = t.client.wait_lines("connection ended", 1).await;
    let record: serde_json::Value = serde_json::from_str(&ended[0]).expect("a JSON log line");
    assert_eq!(record["reason"], "idle timeout (1s)", "{record}");
    assert_eq!(record["sent"], 3, "{record}");
    for line in t.client.stderr().lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_on_a_unix_socket() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let backend = backend(Backend::Echo).await;
    let server = secure_server(pki.server_config("127.0.0.1"), Serve::Forward(backend.addr)).await;
    let socket = pki.dir.path("tunnel.sock");
    let mut a = identity(&pki, &client);
    a.extend(args(&[
        "--listen",
        &format!("unix:{}", socket.display()),
        "--connect",
        &server.addr.to_string(),
    ]));
    let running = Running::spawn(a);
    running.wait_lines("listening on unix:", 1).await;
    let mut app = tokio::net::UnixStream::connect(&socket)
        .await
        .expect("connect");
    assert_eq!(exchange(&mut app, b"over unix").await, b"over unix");
}

// ---------------------------------------------------------------------------
// The config file

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_two_tunnels_in_one_process() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let alpha_backend = backend(Backend::Banner("alpha\n")).await;
    let beta_backend = backend(Backend::Banner("beta\n")).await;
    let alpha = secure_server(
        pki.server_config("alpha.test"),
        Serve::Forward(alpha_backend.addr),
    )
    .await;
    let beta = secure_server(
        pki.server_config("beta.test"),
        Serve::Forward(beta_backend.addr),
    )
    .await;
    let config = pki.dir.write(
        "client.toml",
        &format!(
            r#"
ca = "{ca}"
cert = "{cert}"
key = "{key}"
handshake_timeout = 10

[[tunnel]]
listen = "127.0.0.1:0"
connect = "{alpha}"
server_name = "alpha.test"

[[tunnel]]
listen = "127.0.0.1:0"
connect = "{beta}"
server_name = "beta.test"
cipher = "chacha20-poly1305"
idle_timeout = 60
"#,
            ca = pki.ca_path.display(),
            cert = client.cert.display(),
            key = client.key.display(),
            alpha = alpha.addr,
            beta = beta.addr,
        ),
    );
    let running = Running::spawn(vec!["--config".into(), config.into()]);
    let lines = running.wait_lines("listening on ", 2).await;
    let find = |name: &str| {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("tunnelling to {name} ")))
            .unwrap_or_else(|| panic!("no tunnel to {name}: {lines:?}"));
        listen_addr(line)
    };
    for (name, banner) in [("alpha.test", "alpha\n"), ("beta.test", "beta\n")] {
        let mut app = TcpStream::connect(find(name)).await.expect("connect");
        let mut got = vec![0u8; banner.len()];
        timeout(WAIT, app.read_exact(&mut got))
            .await
            .expect("banner in time")
            .expect("read");
        assert_eq!(text(&got), banner);
        assert_eq!(exchange(&mut app, b"data").await, b"data");
    }
    let ended_beta = async {
        let deadline = Instant::now() + WAIT;
        loop {
            if running.stderr().contains("cipher=ChaCha20-Poly1305") {
                return;
            }
            assert!(Instant::now() < deadline, "{}", running.stderr());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    ended_beta.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_unknown_key_is_named() {
    let dir = TempDir::new("sc-client-test");
    let top = dir.write("top.toml", "ca = \"ca.pem\"\ncolour = \"blue\"\n");
    let out = run_with_input(vec!["--config".into(), top.clone().into()], b"").await;
    assert_eq!(out.status.code(), Some(2));
    let line = error_line(&out);
    assert!(
        line.starts_with(&format!(
            "error: config {}, line 2: unknown key `colour`",
            top.display()
        )),
        "{line}"
    );

    let inner = dir.write(
        "inner.toml",
        "[[tunnel]]\nlisten = \"127.0.0.1:0\"\nconnect = \"127.0.0.1:1\"\nsever_name = \"x\"\n",
    );
    let out = run_with_input(vec!["--config".into(), inner.clone().into()], b"").await;
    assert_eq!(out.status.code(), Some(2));
    let line = error_line(&out);
    assert!(line.contains("unknown key `sever_name`"), "{line}");
    assert!(line.contains("line 4"), "{line}");
    // The key that was probably meant, as the other binaries say it.
    assert!(
        text(&out.stderr).contains("hint: did you mean `server_name`?"),
        "{}",
        text(&out.stderr)
    );

    let missing = dir.path("missing.toml");
    let out = run_with_input(vec!["--config".into(), missing.clone().into()], b"").await;
    assert_eq!(
        error_line(&out),
        format!(
            "error: cannot read the config file {}: no such file or directory",
            missing.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_interactive_session_with_flags_over_it() {
    let pki = Pki::new();
    let _client = pki.client("app-1");
    let server = secure_server(pki.server_config("db.internal"), Serve::Echo).await;
    let config = pki.dir.write(
        "client.toml",
        &format!(
            // Paths relative to the file's directory.
            "ca = \"ca.pem\"\ncert = \"app-1.pem\"\nkey = \"app-1.key\"\nconnect = \"{}\"\n\
             server_name = \"wrong.internal\"\ncipher = \"aes-256-gcm\"\n",
            server.addr,
        ),
    );
    // From the file alone: the name in it is wrong.
    let out = run_with_input(vec!["--config".into(), config.clone().into()], b"hi\n").await;
    assert_eq!(
        error_line(&out),
        "error: server certificate is not valid for 'wrong.internal' (it names: db.internal)"
    );
    // A flag overrides it.
    let out = run_with_input(
        vec![
            "--config".into(),
            config.into(),
            "--server-name".into(),
            "db.internal".into(),
        ],
        b"hi\n",
    )
    .await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "server: echo: hi\n");
    assert!(text(&out.stderr).contains("cipher AES-256-GCM"));
}

#[test]
fn help_names_every_flag_of_the_issue() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sc-client"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--connect",
        "--server-name",
        "--ca",
        "--cert",
        "--key",
        "--anonymous",
        "--listen",
        "--cipher",
        "--config",
        "--verbose",
        "--log-format",
        "--route",
        "--crl",
        "--pin",
        "--key-passphrase-file",
        "--handshake-timeout",
        "--max-message",
        "--idle-timeout",
        "--clock-skew",
        "--trace",
        "chacha20-poly1305",
        "aes-256-gcm",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

/// `--trace FILE`: the handshake's sequence diagram, a self-contained SVG
/// that a real XML parser accepts, with the six flights (their sizes on the
/// wire and times), one element per step 1–13, and steps 7–10 in the order
/// the session printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_trace_draws_the_handshake() {
    let pki = Pki::new();
    let client = pki.client("app-1");
    let server = secure_server(pki.server_config("127.0.0.1"), Serve::Echo).await;
    let svg_path = pki.dir.path("handshake.svg");
    let mut a = identity(&pki, &client);
    a.extend(args(&["--connect", &server.addr.to_string(), "--trace"]));
    a.push(svg_path.clone().into());
    let out = run_with_input(a, b"hello\n").await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert_eq!(text(&out.stdout), "server: echo: hello\n");
    assert!(
        stderr.contains(&format!(
            "handshake diagram written to {}",
            svg_path.display()
        )),
        "stderr: {stderr}"
    );
    // "steps 7-10: 8 → 9 → 10 → 7" from the one-line summary.
    let order: Vec<u8> = stderr
        .split("steps 7-10: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the order in the summary")
        .split(" → ")
        .map(|s| s.trim().parse().expect("a step number"))
        .collect();
    assert_eq!(order.len(), 4, "stderr: {stderr}");

    let svg = std::fs::read_to_string(&svg_path).expect("the trace file");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    // Self-contained: no script, no embedded document or image, no
    // reference outside the file.
    for node in doc.descendants().filter(|n| n.is_element()) {
        let name = node.tag_name().name();
        assert!(
            !["script", "image", "foreignObject", "iframe"].contains(&name),
            "<{name}> in the SVG"
        );
        for attr in node.attributes() {
            if attr.name() == "href" {
                assert!(attr.value().starts_with('#'), "href {}", attr.value());
            }
            assert!(!attr.value().contains("url(http"), "{}", attr.value());
        }
    }
    assert!(!svg.contains("@import") && !svg.contains("@font-face"));

    // The six flights, alternating, with their bytes; 4 and 5 have the
    // fixed sizes of SPEC §4.3.
    let flights: Vec<roxmltree::Node<'_, '_>> = doc
        .descendants()
        .filter(|n| n.attribute("data-flight").is_some())
        .collect();
    let numbers: Vec<&str> = flights
        .iter()
        .filter_map(|f| f.attribute("data-flight"))
        .collect();
    assert_eq!(numbers, ["1", "2", "3", "4", "5", "6"]);
    let bytes: Vec<usize> = flights
        .iter()
        .map(|f| {
            f.attribute("data-bytes")
                .expect("bytes")
                .parse()
                .expect("a number")
        })
        .collect();
    // Protocol version 2 (the default): step 7 is a 1,184-byte key, step 9
    // a 32-byte MAC (SPEC §16.3); flight 5 is as in version 1.
    assert_eq!(bytes[3], 1_379, "flight 4");
    assert_eq!(bytes[4], 1_219, "flight 5");
    assert!(bytes.iter().all(|&b| b > 0));
    let label = |f: &roxmltree::Node<'_, '_>| {
        f.descendants()
            .find(|n| n.attribute("class") == Some("label"))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(label(&flights[0]).contains("client → server"));
    assert!(label(&flights[1]).contains("server → client"));
    assert!(label(&flights[3]).contains("1,379 bytes"));
    for f in &flights {
        let l = label(f);
        assert!(l.contains(" ms"), "no time in {l:?}");
    }

    // One element per step, each with its number and name, in the order
    // processed: 7 and 9 (flight 4), 8 and 10 (flight 5) as ordered.
    let steps_of = |f: &roxmltree::Node<'_, '_>| -> Vec<u8> {
        f.descendants()
            .filter_map(|n| n.attribute("data-step"))
            .map(|s| s.parse().expect("a step number"))
            .collect()
    };
    let all: Vec<u8> = flights.iter().flat_map(steps_of).collect();
    assert_eq!(all.len(), 13);
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=13).collect::<Vec<u8>>());
    let mine = |odd: bool| -> Vec<u8> {
        order
            .iter()
            .copied()
            .filter(|s| (s % 2 == 1) == odd)
            .collect()
    };
    assert_eq!(steps_of(&flights[3]), [vec![6], mine(true)].concat());
    assert_eq!(steps_of(&flights[4]), [mine(false), vec![11]].concat());
    assert_eq!(steps_of(&flights[5]), [12, 13]);
    let seven = doc
        .descendants()
        .find(|n| n.attribute("data-step") == Some("7"))
        .and_then(|n| n.text())
        .expect("step 7's text");
    assert_eq!(seven, "7 KeyExchange1");
    let order_text = order
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(" → ");
    assert!(svg.contains(&format!("steps 7–10 in the order {order_text}")));
    assert!(svg.contains("protocol SC/2"), "the version in the header");

    // A tunnel has no one session to draw: a mistake in the flags.
    let mut a = identity(&pki, &client);
    a.extend(args(&[
        "--listen",
        "127.0.0.1:0",
        "--connect",
        &server.addr.to_string(),
        "--trace",
        "t.svg",
    ]));
    let out = run_with_input(a, b"").await;
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
}
