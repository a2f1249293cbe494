//! `--status ADDR` end to end: the real `sc-server` with its status
//! endpoint, asked over HTTP/1.1 by hyper's client (and by `promtool` and a
//! real Prometheus server in the two ignored tests that CI runs), over
//! loopback with certificates issued here into a temporary directory.
//!
//! Every wait is bounded; every process is spawned with `kill_on_drop`.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use sc_net::{Endpoint, Stream};
use sovereign_chain::handshake::ClientConfig;
use sovereign_chain::pki::{
    cert_to_pem, Credential, LeafSpec, ServerName, UnixTime, WebPkiServerVerifier,
};
use sovereign_chain::session::{Connector, Error as SessionError, SecureStream};
use sovereign_chain::wire::AlertCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use common::{spawn_logged, ClosedPort, Lines, TempDir};

/// The bound of every ordinary wait.
const WAIT: Duration = Duration::from_secs(20);
const SERVER_NAME: &str = "server.test";

// ---------------------------------------------------------------------------
// Certificates, the server, a backend

/// A CA, a server certificate and key in a directory, and a client.
struct Setup {
    dir: TempDir,
    client: Arc<ClientConfig>,
    /// The same identity, offering re-keying.
    rekeying: Arc<ClientConfig>,
}

impl Setup {
    fn new() -> Self {
        let dir = TempDir::new("sc-status-test");
        let ca = common::TestCa::new("Status Test CA");
        let (cert, key) = ca.leaf(&LeafSpec::server(SERVER_NAME));
        dir.write("ca.pem", &ca.pem());
        dir.write("cert.pem", &cert_to_pem(&cert).expect("pem"));
        dir.write("key.pem", &key.to_pkcs8_pem().expect("pem"));
        // The same client identity as files, for sc-client.
        let (ccert, ckey) = ca.leaf(&LeafSpec::client("app-1"));
        dir.write("client.pem", &cert_to_pem(&ccert).expect("pem"));
        dir.write_private("client.key", &ckey.to_pkcs8_pem().expect("pem"));
        let anchors = ca.anchors();
        let credential = Arc::new(Credential::new(vec![ccert], ckey).expect("client"));
        let config = || {
            ClientConfig::builder()
                .with_server_verifier(Arc::new(WebPkiServerVerifier::new(anchors.clone())))
                .with_credential(credential.clone())
                .build()
        };
        Self {
            dir,
            client: Arc::new(config()),
            rekeying: Arc::new(config().with_rekey(true)),
        }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--cert".into(),
            self.dir.str("cert.pem"),
            "--key".into(),
            self.dir.str("key.pem"),
            "--ca".into(),
            self.dir.str("ca.pem"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// `sc-client --listen` to the server at `server`, with this identity
    /// and a status endpoint.
    fn client_args(&self, server: &str) -> Vec<String> {
        [
            "--listen",
            "127.0.0.1:0",
            "--connect",
            server,
            "--server-name",
            SERVER_NAME,
            "--ca",
            &self.dir.str("ca.pem"),
            "--cert",
            &self.dir.str("client.pem"),
            "--key",
            &self.dir.str("client.key"),
            "--status",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    }
}

/// A running `sc-server`, its log, its tunnel and status addresses.
struct Running {
    _child: Child,
    lines: Lines,
    listen: Endpoint,
    status: Endpoint,
}

impl Running {
    async fn start(args: &[String]) -> Self {
        Self::start_program(env!("CARGO_BIN_EXE_sc-server"), args).await
    }

    /// `sc-server` or `sc-proxy`.
    async fn start_program(program: &str, args: &[String]) -> Self {
        let (child, lines) = spawn_logged(Command::new(program).args(args), false)
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        // sc-server and sc-proxy: "ADDR (…"; sc-client: "ADDR, tunnelling …".
        let listen: Endpoint = lines
            .listening(1, WAIT, |rest| rest.split([' ', ',']).next().unwrap_or(""))
            .await
            .remove(0);
        let line = lines.wait_lines("status on ", 1, WAIT).await.remove(0);
        let status: Endpoint = line
            .split("status on ")
            .nth(1)
            .and_then(|r| r.split(": GET").next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no status address in {line}"));
        Self {
            _child: child,
            lines,
            listen,
            status,
        }
    }
}

/// A backend that reads to the client's end of stream, sends it all back
/// and closes. Aborted when dropped.
struct Backend {
    addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn backend() -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                if conn.read_to_end(&mut all).await.is_ok() {
                    let _ = conn.write_all(&all).await;
                    let _ = conn.shutdown().await;
                }
            });
        }
    });
    Backend { addr, task }
}

/// A session to `addr`.
async fn connect(addr: &Endpoint, config: &Arc<ClientConfig>) -> SecureStream<Stream> {
    try_connect(addr, config).await.expect("handshake")
}

/// A session to `addr`, or the handshake's error.
async fn try_connect(
    addr: &Endpoint,
    config: &Arc<ClientConfig>,
) -> Result<SecureStream<Stream>, SessionError> {
    let io = timeout(WAIT, addr.connect())
        .await
        .expect("connect in time")
        .expect("connect");
    let name = ServerName::try_from(SERVER_NAME).expect("name");
    timeout(WAIT, Connector::new(config.clone()).connect(name, None, io))
        .await
        .expect("handshake in time")
}

/// One tunnel session: `len` bytes there and back.
async fn session_through(addr: &Endpoint, config: &Arc<ClientConfig>, len: usize) {
    let stream = connect(addr, config).await;
    exchange(stream, len).await;
}

/// `len` bytes there and back over `stream`, then its end.
async fn exchange(mut stream: SecureStream<Stream>, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let back = timeout(WAIT, async {
        stream.write_all(&data).await.expect("write");
        stream.shutdown().await.expect("half-close");
        let mut back = Vec::new();
        stream.read_to_end(&mut back).await.expect("read the reply");
        back
    })
    .await
    .expect("tunnel exchange in time");
    assert_eq!(back, data);
}

// ---------------------------------------------------------------------------
// HTTP, by hyper's client

/// `METHOD path` on `addr` (TCP or Unix): status and body.
async fn http(addr: &Endpoint, method: Method, path: &str) -> (StatusCode, String) {
    timeout(WAIT, try_http(addr, method, path))
        .await
        .expect("HTTP exchange in time")
        .unwrap_or_else(|e| panic!("{method_path}: {e}", method_path = path))
}

/// As [`http`], with the failure as a value and no time bound.
async fn try_http(
    addr: &Endpoint,
    method: Method,
    path: &str,
) -> Result<(StatusCode, String), String> {
    let host = match addr {
        Endpoint::Tcp(a) => a.clone(),
        Endpoint::Unix(_) => "localhost".to_owned(),
    };
    let io = addr.connect().await.map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("response: {e}"))?;
    let code = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

async fn get(addr: &Endpoint, path: &str) -> (StatusCode, String) {
    http(addr, Method::GET, path).await
}

/// The value of the sample `series` (name and labels exactly as written)
/// in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Polls /metrics until `done` holds (bounded); the last exposition.
async fn metrics_until(status: &Endpoint, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let (code, text) = get(status, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        if done(&text) {
            return text;
        }
        assert!(started.elapsed() < WAIT, "metrics never got there:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port, for a process to listen on (bound and released: a
/// race with other tests is possible, but the process then fails to bind
/// and says so).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

/// `/readyz` on `status` until it answers 503 (within [`WAIT`]): its body.
async fn until_not_ready(status: &Endpoint) -> String {
    let started = Instant::now();
    loop {
        let (code, body) = get(status, "/readyz").await;
        if code == StatusCode::SERVICE_UNAVAILABLE {
            return body;
        }
        assert!(started.elapsed() < WAIT, "still ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_readyz_and_404_405() {
    let s = Setup::new();
    let back = backend().await;
    let server = Running::start(&s.args(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &back.addr,
        "--status",
        "127.0.0.1:0",
    ]))
    .await;
    assert_eq!(
        get(&server.status, "/healthz").await,
        (StatusCode::OK, "ok\n".into())
    );
    let (code, body) = get(&server.status, "/readyz").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        get(&server.status, "/nothere").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&server.status, "/").await.0, StatusCode::NOT_FOUND);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            http(&server.status, Method::POST, path).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            http(&server.status, Method::DELETE, path).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
    // Garbage instead of HTTP: hyper answers 400 or closes; the endpoint
    // goes on.
    let mut raw = server.status.connect().await.expect("connect");
    raw.write_all(b"\x16\x03\x01garbage\r\n\r\n")
        .await
        .expect("write");
    let mut sink = Vec::new();
    let _ = timeout(WAIT, raw.read_to_end(&mut sink)).await;
    assert_eq!(get(&server.status, "/healthz").await.0, StatusCode::OK);

    // The backend goes away: 503, naming it.
    drop(back);
    let body = until_not_ready(&server.status).await;
    println!("/readyz with the backend down: {}", body.trim_end());
    let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(json["ready"], false);
    let failed = json["not_ready"].as_array().expect("a list");
    assert_eq!(failed.len(), 1, "{body}");
    assert!(failed[0]["check"]
        .as_str()
        .is_some_and(|c| c.starts_with("backend 127.0.0.1:")));
    assert!(
        failed[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("refused")),
        "{body}"
    );
    assert_eq!(get(&server.status, "/healthz").await.0, StatusCode::OK);
    drop(server.lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_sessions_bytes_and_refusals() {
    let s = Setup::new();
    let back = backend().await;
    let server = Running::start(&s.args(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &back.addr,
        "--status",
        "127.0.0.1:0",
        "--max-connections",
        "1",
    ]))
    .await;
    let text = get(&server.status, "/metrics").await.1;
    assert_eq!(
        sample(&text, "sovereign_chain_connections_accepted_total"),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            "sovereign_chain_certificate_not_after_timestamp_seconds{listener=\"127.0.0.1:0\"}"
        )
        .is_some_and(|t| t > UnixTime::now().as_secs() as f64),
        "{text}"
    );
    // With one place, the previous session's connection may hold it a
    // moment after the client has seen its end: such a try is refused
    // with going away (and counted as refused), then made again.
    let mut early = 0u32;
    for len in [1000, 2000, 3000] {
        let stream = loop {
            match try_connect(&server.listen, &s.client).await {
                Ok(stream) => break stream,
                Err(SessionError::PeerAlert(AlertCode::GOING_AWAY)) if early < 50 => {
                    early += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("handshake: {e:?}"),
            }
        };
        exchange(stream, len).await;
    }
    metrics_until(&server.status, |t| {
        sample(t, "sovereign_chain_sessions_open") == Some(0.0)
            && sample(t, "sovereign_chain_handshakes_completed_total") == Some(3.0)
            && sample(
                t,
                "sovereign_chain_session_bytes_total{direction=\"received\"}",
            ) == Some(6000.0)
    })
    .await;
    // One connection holds the only place; the next is refused.
    let _holder = server.listen.connect().await.expect("connect");
    metrics_until(&server.status, |t| {
        sample(t, "sovereign_chain_connections_accepted_total") == Some(4.0)
    })
    .await;
    let mut refused = server.listen.connect().await.expect("connect");
    let mut sink = Vec::new();
    let _ = timeout(WAIT, refused.read_to_end(&mut sink)).await;
    let refusals = f64::from(1 + early);
    let text = metrics_until(&server.status, |t| {
        sample(
            t,
            "sovereign_chain_connections_refused_total{reason=\"connection_limit\"}",
        ) == Some(refusals)
    })
    .await;
    for (series, value) in [
        ("sovereign_chain_connections_accepted_total", 4.0),
        ("sovereign_chain_handshakes_completed_total", 3.0),
        ("sovereign_chain_handshake_duration_seconds_count", 3.0),
        (
            "sovereign_chain_session_bytes_total{direction=\"received\"}",
            6000.0,
        ),
        (
            "sovereign_chain_session_bytes_total{direction=\"sent\"}",
            6000.0,
        ),
        ("sovereign_chain_sessions_open", 0.0),
        ("sovereign_chain_streams_open", 0.0),
        (
            "sovereign_chain_connections_refused_total{reason=\"source_connection_limit\"}",
            0.0,
        ),
        ("sovereign_chain_reloads_total{result=\"success\"}", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    println!("{text}");
    drop(server.lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_stream_session_s_rekeys_are_counted() {
    let s = Setup::new();
    // A backend that echoes as it reads, so the client can wait for its
    // answers while the session goes on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let back = listener.local_addr().expect("addr").to_string();
    let _echo = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let server = Running::start(&s.args(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &back,
        "--status",
        "127.0.0.1:0",
    ]))
    .await;
    let mut stream = connect(&server.listen, &s.rekeying).await;
    timeout(WAIT, async {
        stream.rekey().await.expect("re-key");
        // Reading the echoes reads the server's RekeyReply and sends our
        // Switch; the second round trip comes after the server has it.
        for word in [&b"one"[..], b"two"] {
            stream.write_all(word).await.expect("write");
            let mut back = vec![0; word.len()];
            stream.read_exact(&mut back).await.expect("read");
            assert_eq!(back, word);
        }
        assert_eq!(stream.connection().rekeys_completed(), 1);
        stream.shutdown().await.expect("close");
        let mut rest = Vec::new();
        stream
            .read_to_end(&mut rest)
            .await
            .expect("the server's close");
    })
    .await
    .expect("session in time");
    metrics_until(&server.status, |t| {
        sample(t, "sovereign_chain_sessions_open") == Some(0.0)
            && sample(t, "sovereign_chain_rekeys_completed_total") == Some(1.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_counted_with_its_time() {
    let s = Setup::new();
    let server =
        Running::start(&s.args(&["--listen", "127.0.0.1:0", "--status", "127.0.0.1:0"])).await;
    let pid = server._child.id().expect("running");
    let before = UnixTime::now().as_secs() as f64;
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let text = metrics_until(&server.status, |t| {
        sample(t, "sovereign_chain_reloads_total{result=\"success\"}") == Some(1.0)
    })
    .await;
    assert!(
        sample(&text, "sovereign_chain_last_reload_timestamp_seconds").is_some_and(|t| t >= before)
    );
    assert_eq!(
        sample(&text, "sovereign_chain_reloads_total{result=\"failure\"}"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_on_the_status_port_does_not_stop_a_session() {
    let s = Setup::new();
    let back = backend().await;
    let server = Running::start(&s.args(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &back.addr,
        "--status",
        "127.0.0.1:0",
    ]))
    .await;
    // 200 connections that never send a byte, and 50 that send half a
    // request and stop.
    let mut flood = Vec::new();
    for i in 0..250 {
        let mut c = timeout(WAIT, server.status.connect())
            .await
            .expect("connect in time")
            .expect("connect");
        if i >= 200 {
            let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
        }
        flood.push(c);
    }
    let started = Instant::now();
    session_through(&server.listen, &s.client, 64 * 1024).await;
    println!(
        "a session through the tunnel during the flood: {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The endpoint is full: a 251st connection is closed at once.
    let during = timeout(WAIT, try_http(&server.status, Method::GET, "/healthz"))
        .await
        .expect("an answer or a close in time");
    println!("/healthz during the flood: {during:?}");
    drop(flood);
    // The endpoint recovers once the flood is gone.
    let started = Instant::now();
    loop {
        let ok = timeout(
            Duration::from_secs(2),
            try_http(&server.status, Method::GET, "/healthz"),
        )
        .await;
        if matches!(ok, Ok(Ok((StatusCode::OK, _)))) {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "the status endpoint did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_a_unix_socket() {
    let s = Setup::new();
    let path = s.dir.str("status.sock");
    let server = Running::start(&s.args(&[
        "--listen",
        "127.0.0.1:0",
        "--status",
        &format!("unix:{path}"),
    ]))
    .await;
    assert_eq!(server.status, Endpoint::Unix(path.into()));
    assert_eq!(get(&server.status, "/healthz").await.0, StatusCode::OK);
    assert_eq!(get(&server.status, "/readyz").await.0, StatusCode::OK);
}

/// Runs `sc-server` with `args` to its exit (bounded): exit code, stderr.
async fn run_to_exit(args: &[String]) -> (Option<i32>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_sc-server"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sc-server");
    let out = timeout(WAIT, child.wait_with_output())
        .await
        .expect("exit in time")
        .expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
    )
}

/// The lines of stderr that are not log lines (the sandbox's INFO line
/// comes before the error): the error, and nothing after it.
fn error_lines(stderr: &str) -> Vec<&str> {
    let lines: Vec<&str> = stderr.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("error:"))
        .unwrap_or(lines.len());
    lines[first..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_an_address_in_use_or_a_bad_path_is_one_line_and_exit_1() {
    let s = Setup::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, err) = run_to_exit(&s.args(&["--listen", "127.0.0.1:0", "--status", &addr])).await;
    println!("{err}");
    assert_eq!(code, Some(1));
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with(&format!(
            "error: cannot serve status on {addr}: address already in use"
        )),
        "{err}"
    );

    let bad = s.dir.str("no-such-dir/status.sock");
    let (code, err) = run_to_exit(&s.args(&[
        "--listen",
        "127.0.0.1:0",
        "--status",
        &format!("unix:{bad}"),
    ]))
    .await;
    println!("{err}");
    assert_eq!(code, Some(1));
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with(&format!("error: cannot serve status on unix:{bad}")),
        "{err}"
    );
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_the_config_file() {
    let s = Setup::new();
    let port = free_port();
    let config = s.dir.write(
        "server.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nstatus = \"127.0.0.1:{port}\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\nca = \"ca.pem\"\n"
        ),
    );
    let server = Running::start(&["--config".to_owned(), config.display().to_string()]).await;
    assert_eq!(server.status, Endpoint::Tcp(format!("127.0.0.1:{port}")));
    assert_eq!(get(&server.status, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sc_proxy_reports_backend_health_per_route() {
    let back = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up = back.local_addr().expect("addr").to_string();
    let closed = ClosedPort::new();
    let down = closed.addr.to_string();
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--route",
        &format!("db.internal={up}"),
        "--route",
        &format!("api.internal={up},{down}"),
        "--health-interval",
        "200ms",
        "--hello-timeout",
        "1",
        "--status",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proxy = Running::start_program(env!("CARGO_BIN_EXE_sc-proxy"), &args).await;
    let series = |route: &str, backend: &str| {
        format!("sovereign_chain_backend_up{{route=\"{route}\",backend=\"{backend}\"}}")
    };
    let text = metrics_until(&proxy.status, |t| {
        sample(t, &series("api.internal", &down)) == Some(0.0)
            && sample(t, &series("api.internal", &up)) == Some(1.0)
            && sample(t, &series("db.internal", &up)) == Some(1.0)
    })
    .await;
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("backend_up")).collect();
    println!("{}", lines.join("\n"));
    let (code, body) = get(&proxy.status, "/readyz").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // A connection the relay accepts is counted (it closes without a byte).
    drop(proxy.listen.connect().await.expect("connect"));
    metrics_until(&proxy.status, |t| {
        sample(t, "sovereign_chain_connections_accepted_total") == Some(1.0)
    })
    .await;
    // Not a ClientHello, and half of one that never completes: refused,
    // each with its reason.
    for first in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xc1, 0x00, 0x04, 0x00][..],
    ] {
        let mut raw = proxy.listen.connect().await.expect("connect");
        raw.write_all(first).await.expect("write");
        let mut sink = Vec::new();
        let _ = timeout(WAIT, raw.read_to_end(&mut sink)).await;
    }
    metrics_until(&proxy.status, |t| {
        let refused = |reason: &str| {
            sample(
                t,
                &format!("sovereign_chain_connections_refused_total{{reason=\"{reason}\"}}"),
            )
        };
        refused("malformed_hello") == Some(1.0) && refused("hello_timeout") == Some(1.0)
    })
    .await;
    // The only backend of db.internal goes away: not ready, naming both
    // routes (api.internal's other backend was down from the start).
    drop(back);
    let body = until_not_ready(&proxy.status).await;
    println!("/readyz: {}", body.trim_end());
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["not_ready"][0]["check"], "routes");
    let reason = json["not_ready"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("route db.internal: no healthy backend"),
        "{body}"
    );
    assert!(
        reason.contains("route api.internal: no healthy backend"),
        "{body}"
    );
    metrics_until(&proxy.status, |t| {
        sample(t, &series("db.internal", &up)) == Some(0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sc_client_listen_is_ready_while_its_server_can_be_reached() {
    let s = Setup::new();
    let server =
        Running::start(&s.args(&["--listen", "127.0.0.1:0", "--status", "127.0.0.1:0"])).await;
    let Endpoint::Tcp(server_addr) = server.listen.clone() else {
        panic!("a TCP listener");
    };
    let args = s.client_args(&server_addr);
    let client = Running::start_program(env!("CARGO_BIN_EXE_sc-client"), &args).await;
    assert_eq!(get(&client.status, "/healthz").await.0, StatusCode::OK);
    let (code, body) = get(&client.status, "/readyz").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // The server is gone: not ready, naming it.
    drop(server);
    let body = until_not_ready(&client.status).await;
    println!("/readyz: {}", body.trim_end());
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        json["not_ready"][0]["check"],
        format!("server {server_addr}")
    );
}

/// sc-client --listen counts what a tunnel entry does: local connections,
/// the kept session's handshake, sessions and streams open, bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sc_client_listen_counts_connections_sessions_streams_and_bytes() {
    let s = Setup::new();
    let back = backend().await;
    // (The harness reads every daemon's status address.)
    let server = Running::start(&s.args(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &back.addr,
        "--status",
        "127.0.0.1:0",
    ]))
    .await;
    let Endpoint::Tcp(server_addr) = server.listen.clone() else {
        panic!("a TCP listener");
    };
    let args = s.client_args(&server_addr);
    let client = Running::start_program(env!("CARGO_BIN_EXE_sc-client"), &args).await;
    let local = client.listen.to_string();
    // Two local connections, 4 bytes each way, over one kept session.
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(&local)
            .await
            .expect("connect");
        conn.write_all(b"ping").await.expect("write");
        conn.shutdown().await.expect("shutdown");
        let mut back = Vec::new();
        tokio::time::timeout(WAIT, conn.read_to_end(&mut back))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(back, b"ping");
    }
    let text = metrics_until(&client.status, |t| {
        sample(t, "sovereign_chain_connections_accepted_total") == Some(2.0)
            && sample(t, "sovereign_chain_session_bytes_total{direction=\"sent\"}") == Some(8.0)
            && sample(
                t,
                "sovereign_chain_session_bytes_total{direction=\"received\"}",
            ) == Some(8.0)
            && sample(t, "sovereign_chain_streams_open") == Some(0.0)
    })
    .await;
    // One kept session, open, from one handshake.
    assert_eq!(
        sample(&text, "sovereign_chain_handshakes_completed_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sovereign_chain_sessions_open"),
        Some(1.0),
        "{text}"
    );
}

/// Finds `tool` on PATH, or fails: CI installs Debian's `prometheus`.
fn tool(name: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not on PATH: install Debian's prometheus package (apt-get install prometheus)")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus (Debian package prometheus): run by .ci/run"]
async fn promtool_accepts_the_metrics() {
    let promtool = tool("promtool");
    let s = Setup::new();
    let back = backend().await;
    let server = Running::start(&s.args(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &back.addr,
        "--status",
        "127.0.0.1:0",
    ]))
    .await;
    session_through(&server.listen, &s.client, 100).await;
    let text = metrics_until(&server.status, |t| {
        sample(t, "sovereign_chain_sessions_open") == Some(0.0)
            && sample(t, "sovereign_chain_handshakes_completed_total") == Some(1.0)
    })
    .await;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn promtool");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write");
    drop(stdin);
    let out = timeout(WAIT, child.wait_with_output())
        .await
        .expect("promtool in time")
        .expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("promtool check metrics: {} {}", out.status, said.trim());
    assert!(out.status.success(), "promtool: {said}\n{text}");
    assert!(said.trim().is_empty(), "promtool has remarks: {said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus (Debian package prometheus): run by .ci/run"]
async fn a_real_prometheus_scrapes_and_answers_a_query() {
    let prometheus = tool("prometheus");
    let s = Setup::new();
    let back = backend().await;
    let server = Running::start(&s.args(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &back.addr,
        "--status",
        "127.0.0.1:0",
    ]))
    .await;
    for len in [10, 20] {
        session_through(&server.listen, &s.client, len).await;
    }
    let Endpoint::Tcp(target) = &server.status else {
        panic!("a TCP status address");
    };
    let config = s.dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: sc-server\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    );
    let web = format!("127.0.0.1:{}", free_port());
    let (_prom, prom_log) = spawn_logged(
        Command::new(prometheus).args([
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", s.dir.str("tsdb")),
            format!("--web.listen-address={web}"),
        ]),
        true,
    )
    .expect("spawn prometheus");
    let api: Endpoint = web.parse().expect("address");
    let started = Instant::now();
    let query = "/api/v1/query?query=sovereign_chain_handshakes_completed_total";
    loop {
        let answer = timeout(Duration::from_secs(2), async {
            match api.connect().await {
                Ok(_) => Some(get(&api, query).await),
                Err(_) => None,
            }
        })
        .await
        .ok()
        .flatten();
        if let Some((StatusCode::OK, body)) = answer {
            let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            let value = &json["data"]["result"][0]["value"][1];
            if value == "2" {
                println!("Prometheus answered {query}: {body}");
                assert_eq!(json["data"]["result"][0]["metric"]["job"], "sc-server");
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus never had the counter; its log:\n{}",
            prom_log.text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------
// Cost: --status on vs off

/// A backend that reads everything and answers with the byte count (8
/// bytes, big-endian), then closes.
async fn sink() -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut n: u64 = 0;
                while let Ok(got) = conn.read(&mut buf).await {
                    if got == 0 {
                        break;
                    }
                    n += got as u64;
                }
                let _ = conn.write_all(&n.to_be_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Backend { addr, task }
}

/// Sessions made (handshake, then a clean close) in `for_` by `clients`
/// concurrent clients.
async fn sessions_in(
    addr: &Endpoint,
    config: &Arc<ClientConfig>,
    clients: usize,
    for_: Duration,
) -> u64 {
    let until = Instant::now() + for_;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (addr, config) = (addr.clone(), config.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let mut stream = connect(&addr, &config).await;
                let _ = timeout(WAIT, stream.shutdown()).await;
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("client");
    }
    total
}

/// Bytes per second of one session sending `len` bytes to the sink.
async fn bulk(addr: &Endpoint, config: &Arc<ClientConfig>, len: usize) -> f64 {
    let chunk = vec![0x5au8; 256 * 1024];
    let mut stream = connect(addr, config).await;
    let started = Instant::now();
    let mut sent = 0;
    while sent < len {
        stream.write_all(&chunk).await.expect("write");
        sent += chunk.len();
    }
    stream.shutdown().await.expect("half-close");
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await.expect("the count");
    assert_eq!(u64::from_be_bytes(count), sent as u64);
    sent as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// New sessions per second and bulk throughput of servers in the same
/// run: one with `--status` (scraped every 100 ms, far more often than
/// Prometheus would), one without, and a second one without as the control
/// (its ratio to the first is the noise of this machine), measured in
/// interleaved rounds (the order rotates every round); prints the medians
/// of the per-round ratios. Build optimized: `cargo test --release --test
/// status -- --ignored --nocapture cost`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement (a minute; run optimized): cargo test --release --test status -- --ignored --nocapture cost"]
async fn cost_of_status_on_vs_off() {
    let rounds: usize = std::env::var("SC_COST_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(9);
    let s = Setup::new();
    let back = sink().await;
    let config = |status: &str| {
        format!(
            "cert = \"cert.pem\"\nkey = \"key.pem\"\nca = \"ca.pem\"\nmax_handshakes = 200\nmax_handshakes_per_source = 200\nmax_connections_per_source = 1000\n{status}\n[[listener]]\nlisten = \"127.0.0.1:0\"\necho = true\n[[listener]]\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\n",
            back.addr
        )
    };
    let start = |name: &str, status: &str| {
        let file = s.dir.write(name, &config(status));
        async move {
            let (child, lines) = spawn_logged(
                Command::new(env!("CARGO_BIN_EXE_sc-server"))
                    .args(["--config".to_owned(), file.display().to_string()]),
                false,
            )
            .expect("spawn");
            let addrs: Vec<Endpoint> = lines
                .listening(2, WAIT, |rest| rest.split(" (").next().unwrap_or(""))
                .await;
            (child, lines, addrs)
        }
    };
    // 0: off, 1: on, 2: off again (the control).
    let servers = [
        start("off.toml", "").await,
        start("on.toml", "status = \"127.0.0.1:0\"").await,
        start("control.toml", "").await,
    ];
    let status: Endpoint = servers[1]
        .1
        .wait_lines("status on ", 1, WAIT)
        .await
        .remove(0)
        .split("status on ")
        .nth(1)
        .and_then(|r| r.split(": GET").next())
        .and_then(|a| a.parse().ok())
        .expect("status address");
    let scraper = {
        let status = status.clone();
        tokio::spawn(async move {
            loop {
                let _ = try_http(&status, Method::GET, "/metrics").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let phase = Duration::from_secs(1);
    let bulk_len = 128 << 20;
    for (_, _, addrs) in &servers {
        sessions_in(&addrs[0], &s.client, 4, Duration::from_millis(300)).await;
    }
    let mut conn: [Vec<f64>; 3] = Default::default();
    let mut thru: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        let order = [round % 3, (round + 1) % 3, (round + 2) % 3];
        for &i in &order {
            let n = sessions_in(&servers[i].2[0], &s.client, 4, phase).await;
            conn[i].push(n as f64 / phase.as_secs_f64());
        }
        for &i in &order {
            thru[i].push(bulk(&servers[i].2[1], &s.client, bulk_len).await);
        }
        println!(
            "round {round}: sessions/s off {:.0} on {:.0} control {:.0}; bulk MB/s off {:.0} on {:.0} control {:.0}",
            conn[0][round],
            conn[1][round],
            conn[2][round],
            thru[0][round] / 1e6,
            thru[1][round] / 1e6,
            thru[2][round] / 1e6
        );
    }
    scraper.abort();
    let ratio = |v: &[Vec<f64>; 3], a: usize, b: usize| {
        median(v[a].iter().zip(&v[b]).map(|(x, y)| x / y).collect())
    };
    // "off" for the ratio is the mean of the two servers without status.
    let off_mean = |v: &[Vec<f64>; 3]| -> Vec<f64> {
        v[0].iter().zip(&v[2]).map(|(a, b)| (a + b) / 2.0).collect()
    };
    let on_vs =
        |v: &[Vec<f64>; 3]| median(v[1].iter().zip(off_mean(v)).map(|(x, y)| x / y).collect());
    println!(
        "sessions/s: on/off {:.4} (control/off {:.4}); medians off {:.0} on {:.0} control {:.0}",
        on_vs(&conn),
        ratio(&conn, 2, 0),
        median(conn[0].clone()),
        median(conn[1].clone()),
        median(conn[2].clone())
    );
    println!(
        "bulk:       on/off {:.4} (control/off {:.4}); medians MB/s off {:.0} on {:.0} control {:.0}",
        on_vs(&thru),
        ratio(&thru, 2, 0),
        median(thru[0].clone()) / 1e6,
        median(thru[1].clone()) / 1e6,
        median(thru[2].clone()) / 1e6
    );
    let text = get(&status, "/metrics").await.1;
    println!(
        "the server with --status counted {} handshakes",
        sample(&text, "sovereign_chain_handshakes_completed_total").unwrap_or(0.0)
    );
}
