//! The daemons on their Linux host, with the real binaries over loopback:
//! systemd's readiness protocol on a `NOTIFY_SOCKET` the test binds,
//! socket activation by a real `systemd-socket-activate`, broken
//! `LISTEN_FDS` / `NOTIFY_SOCKET` variables, and the Landlock sandbox
//! (a reload still works; a file outside the sandbox is refused).
//!
//! Every wait is bounded; every process is spawned with `kill_on_drop`.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use sc_net::{Endpoint, Stream};
use sovereign_chain::handshake::ClientConfig;
use sovereign_chain::pki::{cert_to_pem, Credential, LeafSpec, ServerName, WebPkiServerVerifier};
use sovereign_chain::session::{Connector, SecureStream};
use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};
use tokio::time::timeout;

use common::{spawn_logged, Lines, TempDir};

/// The bound of every wait.
const WAIT: Duration = Duration::from_secs(20);
const SERVER_NAME: &str = "server.test";

// ---------------------------------------------------------------------------
// Certificates

use common::TestCa as Ca;

impl Ca {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir`.
    fn write_all(&self, dir: &TempDir) {
        dir.write("ca.pem", &self.pem());
        self.write_server(dir);
    }

    fn write_server(&self, dir: &TempDir) {
        let (cert, key) = self.leaf(&LeafSpec::server(SERVER_NAME));
        dir.write("key.pem", &key.to_pkcs8_pem().expect("pem"));
        dir.write("cert.pem", &cert_to_pem(&cert).expect("pem"));
    }

    fn client(&self) -> Arc<ClientConfig> {
        let (cert, key) = self.leaf(&LeafSpec::client("app-1"));
        let anchors = self.anchors();
        Arc::new(
            ClientConfig::builder()
                .with_server_verifier(Arc::new(WebPkiServerVerifier::new(anchors)))
                .with_credential(Arc::new(Credential::new(vec![cert], key).expect("client")))
                .build(),
        )
    }
}

fn server_args(dir: &TempDir, listen: &str) -> Vec<String> {
    vec![
        "--listen".into(),
        listen.into(),
        "--cert".into(),
        dir.str("cert.pem"),
        "--key".into(),
        dir.str("key.pem"),
        "--ca".into(),
        dir.str("ca.pem"),
    ]
}

// ---------------------------------------------------------------------------
// Processes

const SERVER: &str = env!("CARGO_BIN_EXE_sc-server");

/// `program args…` run by `sh -c '… exec program'` with `env` set in the
/// shell, so `$$` (the daemon's own pid after `exec`) can be in a value.
fn via_shell(env: &str, program: &str, args: &[String]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{env} exec \"$0\" \"$@\""))
        .arg(program)
        .args(args);
    cmd
}

struct Running {
    child: Child,
    lines: Lines,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Self {
        let (child, lines) = spawn_logged(cmd, false).expect("spawn");
        Self { child, lines }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    async fn wait_line(&self, needle: &str) -> String {
        self.lines.wait_lines(needle, 1, WAIT).await.remove(0)
    }

    async fn address(&self) -> Endpoint {
        let line = self.wait_line("listening on ").await;
        let rest = line.split("listening on ").nth(1).unwrap_or("");
        rest.split(" (")
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"))
    }

    async fn exit_code(&mut self) -> Option<i32> {
        match timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.expect("wait").code(),
            Err(_) => panic!("did not exit in time; log:\n{}", self.lines.text()),
        }
    }
}

/// Runs `cmd` to its end (bounded): exit code and standard error.
async fn run_to_exit(cmd: &mut Command) -> (Option<i32>, String) {
    let child = cmd
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let out = timeout(WAIT, child.wait_with_output())
        .await
        .expect("exited in time")
        .expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
    )
}

/// A session to `addr`: one message echoed.
async fn echo_through(addr: &Endpoint, client: &Arc<ClientConfig>) {
    let io = timeout(WAIT, addr.connect())
        .await
        .expect("connect in time")
        .expect("connect");
    let name = ServerName::try_from(SERVER_NAME).expect("name");
    let mut s: SecureStream<Stream> =
        timeout(WAIT, Connector::new(client.clone()).connect(name, None, io))
            .await
            .expect("handshake in time")
            .expect("handshake");
    timeout(WAIT, s.send_message(b"hello"))
        .await
        .expect("send in time")
        .expect("send");
    let answer = timeout(WAIT, s.recv_message())
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(answer.as_deref(), Some(&b"echo: hello"[..]));
}

// ---------------------------------------------------------------------------
// NOTIFY_SOCKET

/// The test's end of `NOTIFY_SOCKET`.
struct NotifySocket {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind(dir: &TempDir) -> Self {
        let path = dir.path("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Self { socket, path }
    }

    /// The next datagram, as text.
    async fn next(&self) -> String {
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).await.expect("recv");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// The next datagram that is not a watchdog ping, within [`WAIT`]
    /// (else a failure with the daemon's log).
    async fn next_state(&self, daemon: &Running) -> String {
        let state = async {
            loop {
                let m = self.next().await;
                if m != "WATCHDOG=1\n" {
                    return m;
                }
            }
        };
        timeout(WAIT, state)
            .await
            .unwrap_or_else(|_| panic!("no notification in time; log:\n{}", daemon.lines.text()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_tells_systemd_ready_reloading_ready_stopping_and_pings_the_watchdog() {
    let dir = TempDir::new("sc-host-notify");
    let ca = Ca::new("Host Test CA");
    ca.write_all(&dir);
    let notify = NotifySocket::bind(&dir);
    let mut server = Running::spawn(
        via_shell(
            "WATCHDOG_USEC=400000 WATCHDOG_PID=$$",
            SERVER,
            &server_args(&dir, "127.0.0.1:0"),
        )
        .env("NOTIFY_SOCKET", &notify.path),
    );

    let ready = notify.next_state(&server).await;
    println!("start: {ready:?}");
    assert!(ready.contains("READY=1\n"), "{ready:?}");
    // Listeners are bound when READY=1 comes.
    let addr = server.address().await;
    echo_through(&addr, &ca.client()).await;

    // Half of WATCHDOG_USEC (400 ms): a ping every 200 ms.
    while notify.socket.try_recv(&mut [0u8; 64]).is_ok() {}
    let first = timeout(WAIT, notify.next()).await.expect("a ping");
    let t0 = tokio::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(
            timeout(WAIT, notify.next()).await.expect("a ping"),
            "WATCHDOG=1\n"
        );
    }
    let every = t0.elapsed() / 3;
    println!("watchdog: {first:?} every {every:?}");
    assert_eq!(first, "WATCHDOG=1\n");
    assert!(
        (Duration::from_millis(120)..Duration::from_millis(500)).contains(&every),
        "a ping every {every:?}"
    );

    server.signal("HUP");
    let reloading = notify.next_state(&server).await;
    println!("SIGHUP: {reloading:?}");
    assert!(reloading.contains("RELOADING=1\n"), "{reloading:?}");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    let again = notify.next_state(&server).await;
    println!("then: {again:?}");
    assert!(again.contains("READY=1\n"), "{again:?}");
    server.wait_line("reloaded credentials").await;

    server.signal("TERM");
    let stopping = notify.next_state(&server).await;
    println!("SIGTERM: {stopping:?}");
    assert!(stopping.contains("STOPPING=1\n"), "{stopping:?}");
    assert_eq!(server.exit_code().await, Some(0), "{}", server.lines.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_and_the_tunnel_entry_tell_systemd_ready_and_stopping() {
    let dir = TempDir::new("sc-host-notify2");
    let ca = Ca::new("Host Test CA");
    ca.write_all(&dir);
    let (cert, key) = ca.leaf(&LeafSpec::client("app-1"));
    dir.write("client.pem", &cert_to_pem(&cert).expect("pem"));
    dir.write_private("client.key", &key.to_pkcs8_pem().expect("pem"));
    let notify = NotifySocket::bind(&dir);
    let runs: [(&str, Vec<String>); 2] = [
        (
            env!("CARGO_BIN_EXE_sc-proxy"),
            vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--route".into(),
                "server.test=127.0.0.1:9".into(),
            ],
        ),
        (
            env!("CARGO_BIN_EXE_sc-client"),
            vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--connect".into(),
                "127.0.0.1:9".into(),
                "--server-name".into(),
                SERVER_NAME.into(),
                "--ca".into(),
                dir.str("ca.pem"),
                "--cert".into(),
                dir.str("client.pem"),
                "--key".into(),
                dir.str("client.key"),
            ],
        ),
    ];
    for (program, args) in runs {
        let mut daemon = Running::spawn(
            Command::new(program)
                .args(&args)
                .env("NOTIFY_SOCKET", &notify.path),
        );
        let ready = notify.next_state(&daemon).await;
        println!("{program}: {ready:?}");
        assert!(
            ready.contains("READY=1\n"),
            "{ready:?}\n{}",
            daemon.lines.text()
        );
        daemon.signal("TERM");
        let stopping = notify.next_state(&daemon).await;
        assert!(stopping.contains("STOPPING=1\n"), "{stopping:?}");
        assert_eq!(daemon.exit_code().await, Some(0), "{}", daemon.lines.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_notify_socket_is_one_warning_and_the_server_runs() {
    let dir = TempDir::new("sc-host-badnotify");
    let ca = Ca::new("Host Test CA");
    ca.write_all(&dir);
    let not_a_socket = dir.write("plain-file", "x");
    let missing = dir.path("missing.sock");
    for (value, says) in [
        (missing.as_path(), "no such socket"),
        (not_a_socket.as_path(), "not a socket"),
    ] {
        let mut server = Running::spawn(
            Command::new(SERVER)
                .args(server_args(&dir, "127.0.0.1:0"))
                .env("NOTIFY_SOCKET", value),
        );
        let addr = server.address().await;
        echo_through(&addr, &ca.client()).await;
        let lines = server.lines.matching("NOTIFY_SOCKET");
        println!("{lines:?}");
        assert_eq!(lines.len(), 1, "{}", server.lines.text());
        assert!(
            lines[0].contains(&format!("NOTIFY_SOCKET={}: {says}", value.display())),
            "{lines:?}"
        );
        assert!(lines[0].contains("WARN"), "{lines:?}");
        server.signal("TERM");
        assert_eq!(server.exit_code().await, Some(0));
    }
}

// ---------------------------------------------------------------------------
// LISTEN_FDS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_listen_fds_are_one_line_and_exit_1() {
    let dir = TempDir::new("sc-host-badfds");
    let ca = Ca::new("Host Test CA");
    ca.write_all(&dir);
    let args = server_args(&dir, "127.0.0.1:0");
    for (env, says) in [
        (
            "LISTEN_PID=$$ LISTEN_FDS=two",
            "error: LISTEN_FDS=two: not a number of file descriptors",
        ),
        (
            "LISTEN_FDS=1",
            "error: LISTEN_FDS=1 is set without LISTEN_PID",
        ),
        (
            "LISTEN_PID=1 LISTEN_FDS=1",
            "error: LISTEN_PID=1 is not this process",
        ),
        (
            "LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=one",
            "error: LISTEN_FDNAMES has 1 names for LISTEN_FDS=2 sockets",
        ),
        // fd 3 is not open: not a socket.
        (
            "LISTEN_PID=$$ LISTEN_FDS=1",
            "error: LISTEN_FDS: fd 3 (name unknown) is not a TCP or Unix stream socket",
        ),
    ] {
        let (code, stderr) =
            run_to_exit(&mut via_shell(&format!("exec 3>&-; {env}"), SERVER, &args)).await;
        println!("{env}: {code:?} {stderr}");
        assert_eq!(code, Some(1), "{env}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{env}: {stderr}");
        assert!(errors[0].starts_with(says), "{env}: {stderr}");
    }
}

/// Runs the tool to its end (bounded), connecting to `addr` so that it
/// starts the daemon: exit code and standard error.
async fn run_with_a_connection(cmd: &mut Command, addr: &str) -> (Option<i32>, String) {
    let addr = addr.to_owned();
    let knock = tokio::spawn(async move {
        for _ in 0..200 {
            if let Ok(c) = tokio::net::TcpStream::connect(&addr).await {
                // Held until the daemon has exited.
                tokio::time::sleep(WAIT).await;
                drop(c);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let out = run_to_exit(cmd).await;
    knock.abort();
    out
}

/// `systemd-socket-activate`, which must be installed (Debian's `systemd`).
fn socket_activate() -> &'static str {
    const TOOL: &str = "/usr/bin/systemd-socket-activate";
    assert!(
        Path::new(TOOL).exists(),
        "{TOOL} is missing: apt-get install systemd (as .ci/run does)"
    );
    TOOL
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs systemd-socket-activate: run by .ci/run"]
async fn socket_activation_by_systemd_socket_activate_serves_sessions() {
    let tool = socket_activate();
    let dir = TempDir::new("sc-host-activate");
    let ca = Ca::new("Host Test CA");
    ca.write_all(&dir);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let notify = NotifySocket::bind(&dir);
    // The tool passes only the variables it is told to.
    let mut args = vec![
        "-l".to_owned(),
        addr.clone(),
        "--fdname=tunnel".into(),
        format!("--setenv=NOTIFY_SOCKET={}", notify.path.display()),
        SERVER.into(),
    ];
    args.extend(server_args(&dir, &addr));
    let mut server = Running::spawn(Command::new(tool).args(&args));
    // The tool starts the daemon at the first connection, which waits in
    // the passed socket's queue meanwhile.
    server.wait_line("Listening on").await;
    echo_through(&addr.parse().expect("endpoint"), &ca.client()).await;
    let ready = notify.next_state(&server).await;
    assert!(
        ready.contains("READY=1\n"),
        "{ready:?}\n{}",
        server.lines.text()
    );
    let line = server
        .wait_line("socket activation: 1 passed sockets")
        .await;
    println!("{line}");
    assert!(line.contains("(tunnel)"), "{line}");
    echo_through(&addr.parse().expect("endpoint"), &ca.client()).await;
    server.signal("TERM");
    let stopping = notify.next_state(&server).await;
    assert!(stopping.contains("STOPPING=1\n"), "{stopping:?}");
    assert_eq!(server.exit_code().await, Some(0), "{}", server.lines.text());

    // A Unix socket, passed the same way.
    let path = dir.path("sc.sock");
    let listen = format!("unix:{}", path.display());
    let mut args = vec!["-l".to_owned(), path.display().to_string(), SERVER.into()];
    args.extend(server_args(&dir, &listen));
    let mut server = Running::spawn(Command::new(tool).args(&args));
    server.wait_line("Listening on").await;
    echo_through(&listen.parse().expect("endpoint"), &ca.client()).await;
    server.signal("TERM");
    assert_eq!(server.exit_code().await, Some(0), "{}", server.lines.text());
    // The socket belongs to the service manager: left in place.
    assert!(path.exists(), "the passed socket's file was removed");

    // The relay and the tunnel entry take theirs the same way (sc-net's
    // bind, shared by the three daemons).
    let (cert, key) = ca.leaf(&LeafSpec::client("app-1"));
    dir.write("client.pem", &cert_to_pem(&cert).expect("pem"));
    dir.write_private("client.key", &key.to_pkcs8_pem().expect("pem"));
    for (program, extra) in [
        (
            env!("CARGO_BIN_EXE_sc-proxy"),
            vec!["--route".to_owned(), "server.test=127.0.0.1:9".into()],
        ),
        (
            env!("CARGO_BIN_EXE_sc-client"),
            vec![
                "--connect".to_owned(),
                "127.0.0.1:9".into(),
                "--server-name".into(),
                SERVER_NAME.into(),
                "--ca".into(),
                dir.str("ca.pem"),
                "--cert".into(),
                dir.str("client.pem"),
                "--key".into(),
                dir.str("client.key"),
            ],
        ),
    ] {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "-l".to_owned(),
            addr.clone(),
            format!("--setenv=NOTIFY_SOCKET={}", notify.path.display()),
            program.into(),
            "--listen".into(),
            addr.clone(),
        ];
        args.extend(extra);
        let mut daemon = Running::spawn(Command::new(tool).args(&args));
        daemon.wait_line("Listening on").await;
        let knock = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let ready = notify.next_state(&daemon).await;
        assert!(ready.contains("READY=1\n"), "{ready:?}");
        let line = daemon
            .wait_line("socket activation: 1 passed sockets")
            .await;
        println!("{program}: {line}");
        drop(knock);
        daemon.signal("TERM");
        let stopping = notify.next_state(&daemon).await;
        assert!(stopping.contains("STOPPING=1\n"), "{stopping:?}");
        assert_eq!(daemon.exit_code().await, Some(0), "{}", daemon.lines.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs systemd-socket-activate: run by .ci/run"]
async fn a_passed_socket_without_a_listener_and_a_listener_without_a_socket_are_one_line_and_exit_1(
) {
    let tool = socket_activate();
    let dir = TempDir::new("sc-host-mismatch");
    let ca = Ca::new("Host Test CA");
    ca.write_all(&dir);
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );

    // The listener's address is not among the passed sockets.
    let mut args = vec!["-l".to_owned(), a.clone(), SERVER.into()];
    args.extend(server_args(&dir, &b));
    let (code, stderr) = run_with_a_connection(Command::new(tool).args(&args), &a).await;
    println!("{code:?} {stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(&format!("error: cannot listen on {b}: socket activation (LISTEN_FDS) passed no socket bound to {b}")),
        "{stderr}"
    );

    // Two passed sockets, one listener.
    let mut args = vec![
        "-l".to_owned(),
        a.clone(),
        "-l".into(),
        b.clone(),
        "--fdname=main:extra".into(),
        SERVER.into(),
    ];
    args.extend(server_args(&dir, &a));
    let (code, stderr) = run_with_a_connection(Command::new(tool).args(&args), &a).await;
    println!("{code:?} {stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(&format!(
            "error: socket activation (LISTEN_FDS): fd 4 (name extra, {b}) matches no listener"
        )),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// Landlock

/// A config file naming the credential files in `creds` (absolute paths).
fn config_naming(creds: &TempDir) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
        creds.str("cert.pem"),
        creds.str("key.pem"),
        creds.str("ca.pem")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_lets_a_reload_read_its_files_and_refuses_others() {
    let conf = TempDir::new("sc-host-sandbox-conf");
    let creds = TempDir::new("sc-host-sandbox-creds");
    let outside = TempDir::new("sc-host-sandbox-outside");
    let ca = Ca::new("Host Test CA");
    ca.write_all(&creds);
    ca.write_all(&outside);
    let config = conf.write("server.toml", &config_naming(&creds));
    let config_arg = config.display().to_string();

    let server = Running::spawn(Command::new(SERVER).args(["--config", &config_arg]));
    let line = server.wait_line("Landlock sandbox").await;
    println!("{line}");
    let addr = server.address().await;
    echo_through(&addr, &ca.client()).await;
    if line.contains("not supported by this kernel") {
        println!("could not check the sandbox: this kernel has no Landlock ({line})");
        return;
    }
    assert!(line.contains("Landlock sandbox enforced"), "{line}");

    // The allowed reload: a renewed certificate in the same directory.
    ca.write_server(&creds);
    server.signal("HUP");
    let reloaded = server.wait_line("reloaded credentials").await;
    println!("{reloaded}");
    echo_through(&addr, &ca.client()).await;

    // The config now names files outside the sandbox: refused.
    conf.write("server.toml", &config_naming(&outside));
    server.signal("HUP");
    let failed = server.wait_line("reload failed").await;
    println!("{failed}");
    assert!(failed.contains("permission denied"), "{failed}");
    assert!(
        failed.contains(&outside.0.display().to_string()),
        "{failed}"
    );
    echo_through(&addr, &ca.client()).await;

    // The same reload without the sandbox works: the refusal was the sandbox's.
    conf.write("server.toml", &config_naming(&creds));
    let open = Running::spawn(Command::new(SERVER).args(["--config", &config_arg, "--no-sandbox"]));
    let off = open.wait_line("Landlock sandbox").await;
    assert!(off.contains("Landlock sandbox off (--no-sandbox)"), "{off}");
    open.address().await;
    conf.write("server.toml", &config_naming(&outside));
    open.signal("HUP");
    open.wait_line("reloaded credentials").await;
}

// ---------------------------------------------------------------------------
// The units

#[test]
#[ignore = "needs systemd-analyze: run by .ci/run"]
fn the_units_in_dist_systemd_verify_clean() {
    const TOOL: &str = "/usr/bin/systemd-analyze";
    assert!(
        Path::new(TOOL).exists(),
        "{TOOL} is missing: apt-get install systemd (as .ci/run does)"
    );
    // ExecStart= must name binaries that exist: the ones just built.
    let bin_dir = Path::new(SERVER).parent().expect("the binaries' directory");
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/systemd");
    let dir = TempDir::new("sc-host-units");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&units).expect("dist/systemd") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("unit");
        let text = text.replace("/usr/local/bin", &bin_dir.display().to_string());
        // A template is verified as one instance.
        let name = name.replace("@.", "@test.");
        dir.write(&name, &text);
        names.push(dir.str(&name));
    }
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    let out = std::process::Command::new(TOOL)
        .arg("verify")
        .arg("--man=no")
        .args(&names)
        .output()
        .expect("systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "systemd-analyze verify {names:?}: {:?} {said}",
        out.status.code()
    );
    assert!(out.status.success(), "{said}");
    assert!(said.trim().is_empty(), "warnings: {said}");
}
