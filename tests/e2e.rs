//! Both binaries together, as a user runs them: `sc-server` and `sc-client`
//! over loopback with certificates issued into a temporary directory.
//! Every wait is bounded and every process is killed when the test ends.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use sovereign_chain::pki::{
    cert_to_pem, issue_leaf, issue_root, Issuer, KeyPair, LeafSpec, UnixTime, Validity,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use common::{spawn_logged, Lines};

const WAIT: Duration = Duration::from_secs(60);

/// A CA with a server certificate for `server.test` and a client `app-1`,
/// as PEM files in a temporary directory (removed on drop).
struct Pki(PathBuf);

impl Pki {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sc-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let now = UnixTime::since_unix_epoch(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock"),
        );
        let v = Validity::days_from(now, 1);
        let mut rng = ChaCha20Rng::from_entropy();
        let ca_key = KeyPair::generate(&mut rng);
        let ca = issue_root(&ca_key, "E2E CA", v, &mut rng).expect("root");
        let write = |name: &str, text: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        write("ca.pem", &cert_to_pem(&ca).expect("pem"), 0o644);
        for (name, spec) in [
            ("server", LeafSpec::server("server.test")),
            ("client", LeafSpec::client("app-1")),
        ] {
            let key = KeyPair::generate(&mut rng);
            let cert = issue_leaf(
                &Issuer {
                    cert: &ca,
                    key: &ca_key,
                },
                &key.public_key(),
                &spec,
                v,
                &mut rng,
            )
            .expect("leaf");
            write(
                &format!("{name}.pem"),
                &cert_to_pem(&cert).expect("pem"),
                0o644,
            );
            write(
                &format!("{name}.key"),
                &key.to_pkcs8_pem().expect("pem"),
                0o600,
            );
        }
        Self(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    fn server_args(&self, listen: &str) -> Vec<String> {
        [
            "--listen",
            listen,
            "--cert",
            &self.path("server.pem"),
            "--key",
            &self.path("server.key"),
            "--ca",
            &self.path("ca.pem"),
        ]
        .map(String::from)
        .to_vec()
    }

    fn client_args(&self, connect: &str) -> Vec<String> {
        [
            "--connect",
            connect,
            "--server-name",
            "server.test",
            "--ca",
            &self.path("ca.pem"),
            "--cert",
            &self.path("client.pem"),
            "--key",
            &self.path("client.key"),
        ]
        .map(String::from)
        .to_vec()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

fn spawn(bin: &str, args: &[String]) -> Child {
    Command::new(bin)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("SC_E2E_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("spawn")
}

/// `bin` with `args`, its standard streams piped (to feed its input and
/// read what it printed), killed when dropped.
fn spawn_piped(bin: &str, args: &[String]) -> Child {
    Command::new(bin)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn")
}

/// Waits until something accepts connections on `port`.
async fn listening(port: u16) {
    timeout(WAIT, async {
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the process listens in time");
}

#[tokio::test]
async fn an_echo_round_trip_through_both_binaries() {
    let pki = Pki::new("echo");
    let port = free_port();
    let _server = spawn(
        env!("CARGO_BIN_EXE_sc-server"),
        &[
            pki.server_args(&format!("127.0.0.1:{port}")),
            vec!["--echo".into()],
        ]
        .concat(),
    );
    listening(port).await;
    let mut client = spawn_piped(
        env!("CARGO_BIN_EXE_sc-client"),
        &pki.client_args(&format!("127.0.0.1:{port}")),
    );
    let mut stdin = client.stdin.take().expect("stdin");
    stdin
        .write_all(b"hello\nthe quick brown fox\n")
        .await
        .expect("write");
    drop(stdin);
    let out = timeout(WAIT, client.wait_with_output())
        .await
        .expect("sc-client ends")
        .expect("output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "server: echo: hello\nserver: echo: the quick brown fox\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connected to server.test") && err.contains("steps 7-10"),
        "{err}"
    );
}

/// An application's TCP connection through `sc-client --listen` →
/// `sc-server --forward` → a plaintext backend: 32 MiB each way, equal
/// SHA-256 at both ends, with the half-close carried through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_through_both_binaries() {
    const LEN: usize = 32 << 20;
    let pki = Pki::new("tunnel");
    let backend = TcpListener::bind("127.0.0.1:0").await.expect("backend");
    let backend_addr = backend.local_addr().expect("addr");
    // The backend: reads everything (hashing it), then answers with its own
    // 32 MiB and closes.
    // (Connections that send nothing are the readiness probes of
    // `listening()`, which travel through the tunnel too: skip them.)
    let backend_task = tokio::spawn(async move {
        loop {
            let (mut tcp, _) = backend.accept().await.expect("accept");
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0;
            loop {
                let n = tcp.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                total += n;
                hash.update(&buf[..n]);
            }
            if total == 0 {
                continue;
            }
            let mut reply = vec![0u8; LEN];
            ChaCha20Rng::seed_from_u64(2).fill_bytes(&mut reply);
            tcp.write_all(&reply).await.expect("reply");
            tcp.shutdown().await.expect("close");
            return (hash.finalize(), Sha256::digest(&reply));
        }
    });
    let exit_port = free_port();
    let _server = spawn(
        env!("CARGO_BIN_EXE_sc-server"),
        &[
            pki.server_args(&format!("127.0.0.1:{exit_port}")),
            vec!["--forward".into(), backend_addr.to_string()],
        ]
        .concat(),
    );
    listening(exit_port).await;
    let entry_port = free_port();
    let _client = spawn(
        env!("CARGO_BIN_EXE_sc-client"),
        &[
            pki.client_args(&format!("127.0.0.1:{exit_port}")),
            vec!["--listen".into(), format!("127.0.0.1:{entry_port}")],
        ]
        .concat(),
    );
    listening(entry_port).await;

    let app = async {
        let tcp = TcpStream::connect(("127.0.0.1", entry_port))
            .await
            .expect("connect to the entry");
        let (mut rd, mut wr) = tcp.into_split();
        let mut request = vec![0u8; LEN];
        ChaCha20Rng::seed_from_u64(1).fill_bytes(&mut request);
        let sent = Sha256::digest(&request);
        let send = async move {
            wr.write_all(&request).await.expect("send");
            wr.shutdown().await.expect("half-close");
        };
        let receive = async move {
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0;
            loop {
                let n = rd.read(&mut buf).await.expect("receive");
                if n == 0 {
                    break;
                }
                total += n;
                hash.update(&buf[..n]);
            }
            (total, hash.finalize())
        };
        let ((), (total, got)) = tokio::join!(send, receive);
        (sent, total, got)
    };
    let (sent, total, got) = timeout(WAIT, app).await.expect("the exchange ends in time");
    let (backend_got, backend_sent) = timeout(WAIT, backend_task)
        .await
        .expect("backend ends")
        .expect("backend");
    assert_eq!(
        sent, backend_got,
        "what the app sent reached the backend intact"
    );
    assert_eq!(total, LEN);
    assert_eq!(
        got, backend_sent,
        "what the backend sent reached the app intact"
    );
}

/// `--rekey-interval` on both binaries and the `-v` line of each re-key
/// (SPEC §15): an echo session kept busy for a few seconds re-keys every
/// second, and both ends log it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_keys_every_second_and_each_shows_in_the_verbose_log() {
    let pki = Pki::new("rekey");
    let port = free_port();
    let mut server = spawn_piped(
        env!("CARGO_BIN_EXE_sc-server"),
        &[
            pki.server_args(&format!("127.0.0.1:{port}")),
            ["--echo", "--rekey-interval", "1", "-v"]
                .map(String::from)
                .to_vec(),
        ]
        .concat(),
    );
    listening(port).await;
    let mut client = spawn_piped(
        env!("CARGO_BIN_EXE_sc-client"),
        &[
            pki.client_args(&format!("127.0.0.1:{port}")),
            ["--rekey-interval", "1s", "-v"].map(String::from).to_vec(),
        ]
        .concat(),
    );
    let mut stdin = client.stdin.take().expect("stdin");
    for i in 0..5 {
        stdin
            .write_all(format!("line {i}\n").as_bytes())
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    drop(stdin);
    let out = timeout(WAIT, client.wait_with_output())
        .await
        .expect("sc-client ends")
        .expect("output");
    let client_log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{client_log}");
    let echoed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(echoed.lines().count(), 5, "{echoed}");
    server.start_kill().expect("stop the server");
    let server_out = timeout(WAIT, server.wait_with_output())
        .await
        .expect("sc-server ends")
        .expect("output");
    let server_log = String::from_utf8_lossy(&server_out.stderr);
    for (who, log) in [("client", &client_log), ("server", &server_log)] {
        assert!(
            log.contains("re-keying on") || log.contains("re-keying (capability)"),
            "{who}: the handshake log shows the capability\n{log}"
        );
        assert!(
            log.contains("re-key complete: epoch 1,") && log.contains("re-key complete: epoch 2,"),
            "{who}: one line per re-key\n{log}"
        );
        // -v names the protocol version (2, between these binaries) on
        // every step line, and step 4 carries the server's proof.
        assert!(
            log.contains("SC/2 Step 4/13: ClientCertRequest")
                && log.contains("SC/2 Step 13/13: SecureAck"),
            "{who}: the step lines name the version\n{log}"
        );
        assert!(!log.contains("SC/1 Step"), "{who}: {log}");
    }
    assert!(
        client_log.contains("verified: server signature over transcript through step 3"),
        "{client_log}"
    );
}

// ---------------------------------------------------------------------------
// Protocol versions 1 and 2 between the binaries (SPEC §16.1)

/// `sc-server` with `extra` (`--echo`, `--forward …`, `--max-version 1`)
/// on a free loopback port, its log collected line by line, killed when
/// dropped.
struct Server {
    _child: Child,
    log: Lines,
    /// From its `listening on ADDR (…)` line.
    addr: String,
}

impl Server {
    async fn start(pki: &Pki, extra: &[&str]) -> Self {
        let args = [pki.server_args("127.0.0.1:0"), strings(extra)].concat();
        let (child, log) = spawn_logged(
            Command::new(env!("CARGO_BIN_EXE_sc-server")).args(&args),
            false,
        )
        .expect("spawn sc-server");
        let addr: SocketAddr = log
            .listening(1, WAIT, |rest| rest.split(" (").next().unwrap_or(""))
            .await
            .remove(0);
        Self {
            _child: child,
            log,
            addr: addr.to_string(),
        }
    }

    /// Waits for `count` lines containing `needle`; returns them.
    async fn wait_lines(&self, needle: &str, count: usize) -> Vec<String> {
        self.log.wait_lines(needle, count, WAIT).await
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// `sc-client` (interactive) to `addr` with `extra`, `hello` on its input;
/// what it printed and its status when it ends (within [`WAIT`]).
async fn interactive(pki: &Pki, addr: &str, extra: &[&str]) -> std::process::Output {
    let mut client = spawn_piped(
        env!("CARGO_BIN_EXE_sc-client"),
        &[pki.client_args(addr), strings(extra)].concat(),
    );
    let mut stdin = client.stdin.take().expect("stdin");
    // A client that fails its handshake may be gone before this is
    // written: what it printed tells, not this write.
    let _ = stdin.write_all(b"hello\n").await;
    drop(stdin);
    timeout(WAIT, client.wait_with_output())
        .await
        .expect("sc-client ends in time")
        .expect("output")
}

/// The lines of `out`'s standard error that start with `error: `.
fn error_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(String::from)
        .collect()
}

/// A version 1 peer and a version 2 peer, both real binaries, run version
/// 1 whichever side is the older one (`--max-version 1`, or `max_version =
/// 1` in its config file; a version 2 client needs `--min-version 1` to
/// accept a version 1 server, SPEC §16.1), and version 2 by default: the
/// echo comes back, and both sides' session lines name the version (the
/// client's `connected to` line, the server's `session end`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_and_version_2_binaries_interoperate_both_ways() {
    let pki = Pki::new("versions");
    let server_file = pki.0.join("server-v1.toml");
    std::fs::write(&server_file, "max_version = 1\n").expect("write");
    let client_file = pki.0.join("client-v1.toml");
    std::fs::write(&client_file, "max_version = 1\n").expect("write");
    let server_file = server_file.display().to_string();
    let client_file = client_file.display().to_string();
    for (server_extra, client_extra, version) in [
        // (a) a version 2 server, a version 1 client.
        (&[][..], &["--max-version", "1"][..], "SC/1"),
        // (b) a version 1 server, a version 2 client that accepts one.
        (
            &["--max-version", "1"][..],
            &["--min-version", "1"][..],
            "SC/1",
        ),
        // (c) both version 2: the default.
        (&[][..], &[][..], "SC/2"),
        (
            &["--max-version", "2"][..],
            &["--max-version", "2"][..],
            "SC/2",
        ),
        // The config file's key, on either side.
        (
            &["--config", &server_file][..],
            &["--min-version", "1"][..],
            "SC/1",
        ),
        (&[][..], &["--config", &client_file][..], "SC/1"),
    ] {
        let case = format!("server {server_extra:?}, client {client_extra:?}");
        let server = Server::start(&pki, &[&["--echo"][..], server_extra].concat()).await;
        let out = interactive(&pki, &server.addr, client_extra).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "server: echo: hello\n",
            "{case}"
        );
        assert!(
            stderr.contains(&format!(", protocol {version}, steps 7-10: ")),
            "{case}: {stderr}"
        );
        let end = server.wait_lines("session end", 1).await.remove(0);
        assert!(
            end.contains(&format!(" version={version} ")),
            "{case}: {end}"
        );
    }
}

/// `max_version = 1` in one `[[tunnel]]` of sc-client's config file makes
/// that tunnel's session version 1 and leaves the other tunnel's at version
/// 2: the key is per tunnel. Data passes both ways through each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_version_1_in_one_tunnel_runs_version_1_there_only() {
    let pki = Pki::new("tunnel-versions");
    // The backend: echoes every connection.
    let backend = TcpListener::bind("127.0.0.1:0").await.expect("backend");
    let backend_addr = backend.local_addr().expect("addr");
    let backend_task = tokio::spawn(async move {
        loop {
            let (tcp, _) = backend.accept().await.expect("accept");
            tokio::spawn(async move {
                let (mut rd, mut wr) = tcp.into_split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    // -v: the server logs each session's start (with its version).
    let server = Server::start(&pki, &["--forward", &backend_addr.to_string(), "-v"]).await;
    let (v1_port, v2_port) = (free_port(), free_port());
    let conf = pki.0.join("tunnels.toml");
    std::fs::write(
        &conf,
        format!(
            "[[tunnel]]\nlisten = \"127.0.0.1:{v1_port}\"\nconnect = \"{addr}\"\n\
             server_name = \"server.test\"\nmax_version = 1\n\
             [[tunnel]]\nlisten = \"127.0.0.1:{v2_port}\"\nconnect = \"{addr}\"\n\
             server_name = \"server.test\"\n",
            addr = server.addr
        ),
    )
    .expect("write");
    let client_args = strings(&[
        "--ca",
        &pki.path("ca.pem"),
        "--cert",
        &pki.path("client.pem"),
        "--key",
        &pki.path("client.key"),
        "--config",
        &conf.display().to_string(),
    ]);
    let (_client, client_log) = spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_sc-client")).args(&client_args),
        false,
    )
    .expect("spawn sc-client");
    client_log.wait_lines("listening on ", 2, WAIT).await;

    // One tunnel after the other, so the n-th session is that tunnel's.
    for (n, (port, version)) in [(v1_port, "SC/1"), (v2_port, "SC/2")]
        .into_iter()
        .enumerate()
    {
        let mut app = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the entry");
        let msg = format!("through the {version} tunnel");
        app.write_all(msg.as_bytes()).await.expect("write");
        let mut back = vec![0u8; msg.len()];
        timeout(WAIT, app.read_exact(&mut back))
            .await
            .expect("the echo comes back in time")
            .unwrap_or_else(|e| {
                panic!(
                    "{version}: {e}\nclient:\n{}\nserver:\n{}",
                    client_log.text(),
                    server.log.text()
                )
            });
        assert_eq!(back, msg.as_bytes());
        let opened = client_log
            .wait_lines("session of streams open to", n + 1, WAIT)
            .await;
        assert!(
            opened[n].contains(&format!("version={version}")),
            "{version}: {}",
            opened[n]
        );
        let started = server.wait_lines("session start", n + 1).await;
        assert!(
            started[n].contains(&format!("version={version}")),
            "{version}: {}",
            started[n]
        );
    }
    backend_task.abort();
}

/// A version the peer cannot meet fails the handshake, never falls back:
/// (d) a client with `--min-version 2` (or no flag: the default) refuses a
/// `--max-version 1` server in one error line naming the protocol version;
/// (e) a server with
/// `--min-version 2` refuses a `--max-version 1` client and logs it, and
/// the client fails as plainly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_the_peer_refuses_fails_the_handshake_on_both_sides() {
    let pki = Pki::new("version-refused");

    // (d), with the flag and by default.
    for extra in [&["--min-version", "2"][..], &[][..]] {
        let server = Server::start(&pki, &["--echo", "--max-version", "1"]).await;
        let out = interactive(&pki, &server.addr, extra).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty(), "{stderr}");
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].contains("protocol version SC/1")
                && errors[0].contains("below this side's minimum SC/2"),
            "{stderr}"
        );
        assert!(
            stderr.contains("hint: the server speaks only protocol version 1"),
            "{stderr}"
        );
        assert!(!stderr.contains("connected to"), "{stderr}");
        let failed = server.wait_lines("handshake failed", 1).await.remove(0);
        assert!(failed.contains("alert: protocol version"), "{failed}");
    }

    // (e)
    let server = Server::start(&pki, &["--echo", "--min-version", "2"]).await;
    let out = interactive(&pki, &server.addr, &["--max-version", "1"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{stderr}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("the server refused this client's protocol version"),
        "{stderr}"
    );
    assert!(!stderr.contains("connected to"), "{stderr}");
    let refused = server.wait_lines("handshake failed", 1).await.remove(0);
    assert!(
        refused.contains("protocol version SC/1, below this side's minimum SC/2"),
        "{refused}"
    );
}

/// `--max-version` mistakes, in the flags or a config file, on either
/// binary: one error line naming the flag (or the key and its file), exit
/// status 2, before anything listens or connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_version_mistakes_are_one_error_and_exit_2() {
    let pki = Pki::new("version-mistakes");
    let write = |name: &str, text: &str| {
        let path = pki.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let three = write("three.toml", "max_version = 3\n");
    let crossed = write("crossed.toml", "min_version = 2\nmax_version = 1\n");
    let min_in_file = write("min2.toml", "min_version = 2\n");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    for (bin, base) in [
        (
            env!("CARGO_BIN_EXE_sc-server"),
            [pki.server_args(&listen), strings(&["--echo"])].concat(),
        ),
        (env!("CARGO_BIN_EXE_sc-client"), pki.client_args(&listen)),
    ] {
        for (extra, want) in [
            (
                &["--max-version", "3"][..],
                "error: invalid value '3' for '--max-version <1|2>': 3 is not in 1..=2",
            ),
            (
                &["--max-version", "0"][..],
                "error: invalid value '0' for '--max-version <1|2>': 0 is not in 1..=2",
            ),
            (
                &["--min-version", "2", "--max-version", "1"][..],
                "error: --max-version: 1 is below --min-version 2: no protocol version left",
            ),
            (
                &["--config", &three][..],
                &format!("error: config {three}, max_version: unknown protocol version 3 (use 1 or 2)"),
            ),
            (
                &["--config", &crossed][..],
                &format!(
                    "error: config {crossed}, max_version: 1 is below min_version 2: no protocol version left"
                ),
            ),
            (
                &["--config", &min_in_file, "--max-version", "1"][..],
                &format!(
                    "error: --max-version: 1 is below config {min_in_file}, min_version 2: no protocol version left"
                ),
            ),
        ] {
            let out = Command::new(bin)
                .args(&base)
                .args(extra)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output();
            let out = timeout(WAIT, out)
                .await
                .expect("exits in time")
                .expect("output");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{bin} {extra:?}: {stderr}");
            assert!(out.stdout.is_empty(), "{bin} {extra:?}");
            assert_eq!(error_lines(&out), [want], "{bin} {extra:?}: {stderr}");
        }
    }
}
