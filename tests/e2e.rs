//! Both binaries together, as a user runs them: `sc-server` and `sc-client`
//! over loopback with certificates issued into a temporary directory.
//! Every wait is bounded and every process is killed when the test ends.

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
