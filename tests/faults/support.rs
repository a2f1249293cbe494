//! What the fault and load tests share: certificates in a temporary
//! directory, the real binaries as child processes with their logs, a
//! network namespace with a shaped and lossy link (removed on drop), a sink
//! backend process, the server's memory and CPU time from /proc, and
//! connections from a chosen loopback source address.
//!
//! Every wait is bounded; every child is spawned with `kill_on_drop`, and
//! every namespace is deleted by a guard, so a failing test leaves nothing
//! behind.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rand_core::OsRng;
use sovereign_chain::handshake::{ClientConfig, ServerConfig};
use sovereign_chain::net::{Endpoint, Stream};
use sovereign_chain::pki::{
    cert_to_pem, certs_from_pem, issue_root, CertificateDer, Credential, Issuer, KeyPair, LeafSpec,
    ServerName, TrustAnchors, UnixTime, Validity, WebPkiClientVerifier, WebPkiServerVerifier,
};
use sovereign_chain::session::{Connector, Error, SecureStream};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use crate::common::{self, spawn_logged, Lines};

/// The bound of every ordinary wait.
pub(crate) const WAIT: Duration = Duration::from_secs(30);
/// The name on the server certificate.
pub(crate) const SERVER_NAME: &str = "server.test";

/// The tests of this binary measure time and memory: they run one at a
/// time (cargo runs the tests of one binary on parallel threads, each test
/// on a runtime of its own; a tokio mutex works across runtimes and is not
/// poisoned by a failed test).
pub(crate) async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

/// A unique tag for names (namespaces, interfaces, directories) of this run.
pub(crate) fn run_tag() -> u32 {
    std::process::id()
}

// ---------------------------------------------------------------------------
// Certificates

/// A CA, a server certificate for [`SERVER_NAME`] and a client `app-1`, as
/// PEM files in a temporary directory (removed on drop).
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    ca_cert: CertificateDer<'static>,
    ca_key: KeyPair,
    now: UnixTime,
    /// The server certificate's fingerprint.
    pub(crate) server_fingerprint: [u8; 32],
}

impl Pki {
    pub(crate) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sc-faults-{tag}-{}", run_tag()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let now = UnixTime::now();
        let ca_key = KeyPair::generate(&mut OsRng);
        let ca_cert = issue_root(
            &ca_key,
            "Faults CA",
            Validity::days_from(now, 2),
            &mut OsRng,
        )
        .expect("root");
        let mut pki = Self {
            dir,
            ca_cert,
            ca_key,
            now,
            server_fingerprint: [0; 32],
        };
        pki.write("ca.pem", &cert_to_pem(&pki.ca_cert).expect("pem"));
        pki.server_fingerprint = pki.write_server();
        let (cert, key) = pki.leaf(&LeafSpec::client("app-1"));
        pki.write("client.pem", &cert_to_pem(&cert).expect("pem"));
        pki.write("client.key", &key.to_pkcs8_pem().expect("pem"));
        pki
    }

    fn leaf(&self, spec: &LeafSpec) -> (CertificateDer<'static>, KeyPair) {
        let issuer = Issuer {
            cert: &self.ca_cert,
            key: &self.ca_key,
        };
        common::leaf(&issuer, spec, Validity::days_from(self.now, 2))
    }

    /// Writes `text` to `name` atomically (mode 0600: keys must not be
    /// readable by others).
    pub(crate) fn write(&self, name: &str, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::rename(&tmp, self.dir.join(name)).expect("rename");
    }

    /// A new server certificate and key (`server.pem`, `server.key`); its
    /// fingerprint.
    pub(crate) fn write_server(&self) -> [u8; 32] {
        let (cert, key) = self.leaf(&LeafSpec::server(SERVER_NAME));
        self.write("server.key", &key.to_pkcs8_pem().expect("pem"));
        self.write("server.pem", &cert_to_pem(&cert).expect("pem"));
        Credential::new(vec![cert], key)
            .expect("credential")
            .fingerprint()
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `sc-server`'s credential flags.
    pub(crate) fn server_args(&self) -> Vec<String> {
        vec![
            "--cert".into(),
            self.path("server.pem"),
            "--key".into(),
            self.path("server.key"),
            "--ca".into(),
            self.path("ca.pem"),
        ]
    }

    /// `sc-client`'s flags for a session to `connect`.
    pub(crate) fn client_args(&self, connect: &str) -> Vec<String> {
        vec![
            "--connect".into(),
            connect.into(),
            "--server-name".into(),
            SERVER_NAME.into(),
            "--ca".into(),
            self.path("ca.pem"),
            "--cert".into(),
            self.path("client.pem"),
            "--key".into(),
            self.path("client.key"),
        ]
    }

    /// An in-process server (the certificate of `server.pem`) trusting this
    /// CA's clients, without streams (as an older `sc-server`).
    #[allow(dead_code)] // tests/streams.rs
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).expect("read");
        let chain = certs_from_pem(&read("server.pem")).expect("server chain");
        let key = KeyPair::from_pem(&read("server.key"), None).expect("server key");
        let anchors = TrustAnchors::from_der(std::slice::from_ref(&self.ca_cert)).expect("anchors");
        Arc::new(
            ServerConfig::builder()
                .with_client_verifier(Arc::new(WebPkiClientVerifier::new(anchors)))
                .with_credential(Arc::new(Credential::new(chain, key).expect("server")))
                .build(),
        )
    }

    /// An in-process client (`app-1`) trusting this CA.
    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        let (cert, key) = self.leaf(&LeafSpec::client("app-1"));
        let anchors = TrustAnchors::from_der(std::slice::from_ref(&self.ca_cert)).expect("anchors");
        Arc::new(
            ClientConfig::builder()
                .with_server_verifier(Arc::new(WebPkiServerVerifier::new(anchors)))
                .with_credential(Arc::new(Credential::new(vec![cert], key).expect("client")))
                .build(),
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A session to `addr` (TCP connection and handshake within [`WAIT`]).
pub(crate) async fn connect(
    addr: &Endpoint,
    config: &Arc<ClientConfig>,
) -> Result<SecureStream<Stream>, Error> {
    let io = timeout(WAIT, addr.connect())
        .await
        .map_err(|_| Error::Internal("connect timed out"))??;
    handshake(io, config).await
}

/// A session to `addr` from the loopback address `source` (Linux routes
/// all of 127.0.0.0/8 to `lo`, so any of them can be bound without set-up):
/// TCP connection and handshake, each within [`WAIT`].
#[allow(dead_code)] // tests/streams.rs
pub(crate) async fn connect_from(
    source: IpAddr,
    addr: &Endpoint,
    config: &Arc<ClientConfig>,
) -> Result<SecureStream<Stream>, Error> {
    let io = tcp_from(source, socket_addr(addr), WAIT).await?;
    handshake(Stream::Tcp(io), config).await
}

/// The client's side of a handshake on `io`, within [`WAIT`].
async fn handshake(io: Stream, config: &Arc<ClientConfig>) -> Result<SecureStream<Stream>, Error> {
    let name = ServerName::try_from(SERVER_NAME).expect("name");
    timeout(WAIT, Connector::new(config.clone()).connect(name, None, io))
        .await
        .map_err(|_| Error::Internal("handshake did not end in time"))?
}

/// The socket address of a TCP endpoint given as `IP:PORT` (as the servers
/// print it).
#[allow(dead_code)] // tests/streams.rs
pub(crate) fn socket_addr(addr: &Endpoint) -> SocketAddr {
    addr.to_string()
        .parse()
        .unwrap_or_else(|_| panic!("{addr} is not IP:PORT"))
}

/// A TCP connection to `to` from `source` (port chosen by the kernel;
/// SO_REUSEADDR, so ports in TIME_WAIT can be bound again), TCP_NODELAY,
/// within `within`.
#[allow(dead_code)] // tests/streams.rs
pub(crate) async fn tcp_from(
    source: IpAddr,
    to: SocketAddr,
    within: Duration,
) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = timeout(within, socket.connect(to))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

// ---------------------------------------------------------------------------
// Processes

/// A running child process and its output, line by line (stderr and
/// stdout together). Killed when dropped.
pub(crate) struct Proc {
    pub(crate) name: String,
    child: Child,
    lines: Lines,
}

impl Proc {
    /// Runs `program` with `args`; inside network namespace `netns` if given
    /// (`ip netns exec` replaces itself with the program: same pid).
    pub(crate) fn spawn(program: &str, args: &[String], netns: Option<&str>) -> Self {
        Self::spawn_with_env(program, args, netns, &[])
    }

    /// As [`spawn`](Self::spawn), with environment variables added.
    pub(crate) fn spawn_with_env(
        program: &str,
        args: &[String],
        netns: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        let (child, lines) = spawn_logged(cmd.args(args).envs(env.iter().copied()), true)
            .unwrap_or_else(|e| panic!("cannot run {program} (netns {netns:?}): {e}"));
        let name = std::path::Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.into());
        Self { name, child, lines }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id().expect("the process runs")
    }

    pub(crate) fn log(&self) -> String {
        self.lines.text()
    }

    /// Lines containing `needle`.
    pub(crate) fn lines_with(&self, needle: &str) -> Vec<String> {
        self.lines.matching(needle)
    }

    /// Waits (within `within`) for `count` lines containing `needle`.
    pub(crate) async fn wait_lines(
        &self,
        needle: &str,
        count: usize,
        within: Duration,
    ) -> Vec<String> {
        self.lines
            .wait_lines_or(needle, count, within, || {
                format!(
                    "{}: no {count} line(s) with {needle:?} within {within:?}; output:\n{}",
                    self.name,
                    self.log()
                )
            })
            .await
    }

    pub(crate) async fn wait_line(&self, needle: &str) -> String {
        self.wait_lines(needle, 1, WAIT).await.remove(0)
    }

    /// The address after "listening on " in the log (sc-server, sc-client
    /// --listen, sc-proxy).
    pub(crate) async fn listening(&self) -> Endpoint {
        let line = self.wait_line("listening on ").await;
        let rest = line.split("listening on ").nth(1).unwrap_or("");
        let addr = rest
            .split([' ', ','])
            .next()
            .unwrap_or("")
            .trim_end_matches(',');
        addr.parse()
            .unwrap_or_else(|_| panic!("{}: no address in {line:?}", self.name))
    }

    /// Sends `signal` (a name such as "KILL", "HUP").
    pub(crate) fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {}", self.name);
    }

    /// Kills the process (SIGKILL) and reaps it, within [`WAIT`].
    pub(crate) async fn kill9(&mut self) {
        self.signal("KILL");
        timeout(WAIT, self.child.wait())
            .await
            .expect("a killed process is reaped in time")
            .expect("wait");
    }

    /// Still running?
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// CPU time (user and system) the process has used so far, in seconds.
    #[allow(dead_code)] // tests/streams.rs
    pub(crate) fn cpu_secs(&self) -> f64 {
        cpu_secs(self.pid())
    }

    /// Its threads now, from /proc.
    #[allow(dead_code)] // tests/streams.rs
    pub(crate) fn threads(&self) -> u64 {
        self.status_field("Threads:")
    }

    /// Resident memory (VmRSS) in KiB, from /proc.
    pub(crate) fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    /// A number of /proc/PID/status (its unit, if any, dropped).
    fn status_field(&self, name: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/PID/status"))
    }
}

/// CPU time (user and system, all threads) process `pid` has used so far,
/// in seconds, from /proc/PID/stat.
#[allow(dead_code)] // tests/streams.rs
pub(crate) fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name (field 2) is in parentheses and may hold spaces:
    // the fields are counted from the last ')', where field 3 starts.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15, in clock ticks.
    let tick = |i: usize| -> u64 {
        fields
            .get(i - 3)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("field {i} of /proc/{pid}/stat: {stat}"))
    };
    (tick(14) + tick(15)) as f64 / clock_ticks_per_second()
}

/// The unit of /proc's CPU times (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = run("getconf", &["CLK_TCK"]);
        let ticks: f64 = out.trim().parse().expect("CLK_TCK is a number");
        assert!(ticks > 0.0, "CLK_TCK {ticks}");
        ticks
    })
}

pub(crate) fn sc_server(args: &[String], netns: Option<&str>) -> Proc {
    Proc::spawn(env!("CARGO_BIN_EXE_sc-server"), args, netns)
}

/// `sc-client` with `args`, at `-v` (unless they say it): a line per
/// stream at its end (`connection ended`).
pub(crate) fn sc_client(args: &[String], netns: Option<&str>) -> Proc {
    let mut all = args.to_vec();
    if !all.iter().any(|a| a.starts_with("-v")) {
        all.push("-v".into());
    }
    Proc::spawn(env!("CARGO_BIN_EXE_sc-client"), &all, netns)
}

/// Runs a command to its end (bounded by the tools themselves: `ip`, `tc`
/// and `nft` do not wait on the network); panics with its output when it
/// fails or is missing (a missing tool is a failure, not a skip).
pub(crate) fn run(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` ({e}): these tests need root, iproute2 (ip, tc) and nftables (nft)")
        });
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `nft -f -` with `script` on its input inside namespace `ns`.
fn nft_in(ns: &str, script: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run `ip netns exec … nft`: these tests need iproute2 and nftables");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the nft script");
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "nft failed (is nftables installed?): {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// A shaped, lossy link into a network namespace

/// A network namespace joined to this one by a veth pair: `host_ip` here,
/// `ns_ip` there. Rate limits (tbf) on both ends, random drops (nftables
/// `numgen random`) both ways, counted. The namespace (and with it the
/// pair) is deleted on drop.
pub(crate) struct LossyLink {
    pub(crate) ns: String,
    host_if: String,
    ns_if: String,
    pub(crate) host_ip: String,
    pub(crate) ns_ip: String,
}

/// What the nftables counters saw on the lossy link.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LinkCounts {
    pub(crate) to_ns: u64,
    pub(crate) to_ns_dropped: u64,
    pub(crate) from_ns: u64,
    pub(crate) from_ns_dropped: u64,
}

impl LossyLink {
    /// `rate` in tc's syntax ("100mbit"), `drop_per_mille` of the packets
    /// dropped each way.
    pub(crate) fn create(tag: &str, rate: &str, drop_per_mille: u32) -> Self {
        let id = run_tag();
        let ns = format!("scf{id}{tag}");
        // Interface names have at most 15 bytes.
        let short = id % 100_000;
        let link = Self {
            host_if: format!("scf{short}{tag}h"),
            ns_if: format!("scf{short}{tag}n"),
            host_ip: format!("10.231.{}.1", id % 250),
            ns_ip: format!("10.231.{}.2", id % 250),
            ns,
        };
        // From here on, Drop removes whatever part exists. Namespaces of
        // earlier runs that were killed (no Drop) are removed too.
        remove_stale_namespaces();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &link.ns])
            .stderr(Stdio::null())
            .status();
        run("ip", &["netns", "add", &link.ns]);
        run(
            "ip",
            &[
                "link",
                "add",
                &link.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &link.ns_if,
                "netns",
                &link.ns,
            ],
        );
        let ns = link.ns.as_str();
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", link.host_ip),
                "dev",
                &link.host_if,
            ],
        );
        run(
            "ip",
            &[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/30", link.ns_ip),
                "dev",
                &link.ns_if,
            ],
        );
        // One segment per packet (no 64 KiB GSO packets), so a drop is the
        // loss of one packet as on a wire.
        run(
            "ip",
            &["link", "set", "dev", &link.host_if, "gso_max_size", "1500"],
        );
        run(
            "ip",
            &[
                "-n",
                ns,
                "link",
                "set",
                "dev",
                &link.ns_if,
                "gso_max_size",
                "1500",
            ],
        );
        run("ip", &["link", "set", "dev", &link.host_if, "up"]);
        run("ip", &["-n", ns, "link", "set", "dev", &link.ns_if, "up"]);
        run("ip", &["-n", ns, "link", "set", "dev", "lo", "up"]);
        for (netns, dev) in [(None, &link.host_if), (Some(ns), &link.ns_if)] {
            let mut args = Vec::new();
            if let Some(n) = netns {
                args.extend(["-n", n]);
            }
            args.extend([
                "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "64kb",
                "latency", "50ms",
            ]);
            run("tc", &args);
        }
        let dev = &link.ns_if;
        nft_in(
            ns,
            &format!(
                "table inet scfaults {{
                   chain in {{
                     type filter hook input priority 0;
                     iifname \"{dev}\" counter
                     iifname \"{dev}\" numgen random mod 1000 < {drop_per_mille} counter drop
                   }}
                   chain out {{
                     type filter hook output priority 0;
                     oifname \"{dev}\" counter
                     oifname \"{dev}\" numgen random mod 1000 < {drop_per_mille} counter drop
                   }}
                 }}"
            ),
        );
        link
    }

    /// The packet counters: seen and dropped, each way.
    pub(crate) fn counts(&self) -> LinkCounts {
        let out = run(
            "ip",
            &[
                "netns", "exec", &self.ns, "nft", "list", "table", "inet", "scfaults",
            ],
        );
        let packets: Vec<u64> = out
            .split("packets ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(packets.len(), 4, "four counters in:\n{out}");
        LinkCounts {
            to_ns: packets[0],
            to_ns_dropped: packets[1],
            from_ns: packets[2],
            from_ns_dropped: packets[3],
        }
    }
}

/// Deletes the namespaces named `scf<pid>…` of processes that no longer run
/// (a run killed before its guards could clean up).
fn remove_stale_namespaces() {
    let list = run("ip", &["netns", "list"]);
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix("scf") else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        if pid != run_tag() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it
        // ours; delete ours too in case the namespace was never made.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------
// The sink backend: this test binary, run again as a child process

/// The environment variable that makes [`sink_main`] act as the sink.
pub(crate) const SINK_ENV: &str = "SC_FAULTS_SINK_LISTEN";
/// How much the sink sends first on every connection (see [`spawn_source`]).
const SEND_ENV: &str = "SC_FAULTS_SINK_SEND";
/// The stream the backend sends (see [`chunk`]).
pub(crate) const SOURCE_SEED: u64 = 4;

/// The sink backend as a process of its own (so it can be killed): this
/// test binary run with [`SINK_ENV`] set, in the namespace `netns` if given.
/// It listens on `listen` and, for every connection, reads to the end and
/// prints `SINK done <bytes> <sha256>` (or `SINK error <bytes> <why>`), then
/// closes.
pub(crate) async fn spawn_sink(listen: &str, netns: Option<&str>) -> (Proc, Endpoint) {
    spawn_backend(listen, netns, None).await
}

/// As [`spawn_sink`], and first, on every connection, the backend sends
/// `bytes` of stream [`SOURCE_SEED`] (in 256 KiB chunks) and ends its side:
/// `SINK sent <bytes>` or `SINK error sending after <bytes>: <why>`.
pub(crate) async fn spawn_source(listen: &str, bytes: u64) -> (Proc, Endpoint) {
    spawn_backend(listen, None, Some(bytes)).await
}

async fn spawn_backend(listen: &str, netns: Option<&str>, send: Option<u64>) -> (Proc, Endpoint) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let args = [
        "--exact",
        "sink_backend_process",
        "--nocapture",
        "--test-threads",
        "1",
    ]
    .map(String::from);
    let send = send.map(|b| b.to_string());
    let mut env = vec![(SINK_ENV, listen)];
    if let Some(bytes) = &send {
        env.push((SEND_ENV, bytes));
    }
    // The variables reach the child through `ip netns exec`, which keeps
    // the environment.
    let proc = Proc::spawn_with_env(&exe.display().to_string(), &args, netns, &env);
    let line = proc.wait_line("SINK listening ").await;
    let addr = line
        .split("SINK listening ")
        .nth(1)
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("sink: bad line {line:?}"));
    (proc, addr)
}

/// The sink itself (blocking, runs until killed or for at most 10 minutes).
pub(crate) fn sink_main(listen: &str) {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(listen).expect("sink: bind");
    println!(
        "SINK listening {}",
        listener.local_addr().expect("sink: address")
    );
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(600));
        std::process::exit(3);
    });
    let send: u64 = std::env::var(SEND_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            if send > 0 {
                let mut sent = 0u64;
                let mut i = 0u64;
                while sent < send {
                    let data = chunk(SOURCE_SEED, i, 256 * 1024);
                    if let Err(e) = conn.write_all(&data) {
                        println!("SINK error sending after {sent}: {e}");
                        return;
                    }
                    i += 1;
                    sent += data.len() as u64;
                }
                let _ = conn.shutdown(std::net::Shutdown::Write);
                println!("SINK sent {sent}");
            }
            let mut hash = Sha256::new();
            let mut total: u64 = 0;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => {
                        println!("SINK done {total} {}", hex::encode(hash.finalize()));
                        let _ = conn.flush();
                        let _ = conn.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    Ok(n) => {
                        hash.update(&buf[..n]);
                        total += n as u64;
                    }
                    Err(e) => {
                        println!("SINK error {total} {e}");
                        return;
                    }
                }
            }
        });
    }
}

/// `SINK done <bytes> <sha256>` lines: (bytes, sha256 hex).
pub(crate) fn parse_sink_done(line: &str) -> (u64, String) {
    let mut parts = line
        .split("SINK done ")
        .nth(1)
        .unwrap_or("")
        .split_whitespace();
    let bytes = parts.next().and_then(|b| b.parse().ok()).expect("bytes");
    let sha = parts.next().expect("sha256").to_owned();
    (bytes, sha)
}

// ---------------------------------------------------------------------------
// Data and limits

/// Deterministic pseudo-random bytes: chunk `i` of stream `seed`.
pub(crate) fn chunk(seed: u64, i: u64, len: usize) -> Vec<u8> {
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    rng.set_word_pos(u128::from(i) * (len as u128) / 4);
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    data
}

/// Makes sure this process may open `needed` files: raises the soft
/// RLIMIT_NOFILE with `prlimit` (util-linux) when it is lower. Fails if it
/// cannot.
pub(crate) fn ensure_nofile(needed: u64) {
    let soft = nofile_soft();
    if soft >= needed {
        return;
    }
    run(
        "prlimit",
        &[
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={needed}:{needed}"),
        ],
    );
    let now = nofile_soft();
    assert!(now >= needed, "open-file limit {now}, need {needed}");
}

fn nofile_soft() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// TCP connections in state ESTABLISHED whose local end is `local` and
/// whose remote address is `remote` (any port), from the kernel (`ss`):
/// a server's side of a client's connections, whether the server has
/// accepted them yet or not.
#[allow(dead_code)] // tests/streams.rs
pub(crate) fn established(local: SocketAddr, remote: IpAddr) -> usize {
    let out = run(
        "ss",
        &[
            "-Htn",
            "state",
            "established",
            "src",
            &local.to_string(),
            "dst",
            &remote.to_string(),
        ],
    );
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

/// A counter of the kernel's TCP statistics (`TcpExt` in /proc/net/netstat,
/// e.g. `ListenOverflows`), for the whole network namespace.
#[allow(dead_code)] // tests/streams.rs
pub(crate) fn tcp_ext(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").expect("/proc/net/netstat");
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (rows.next().unwrap_or(""), rows.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("TcpExt {name} in /proc/net/netstat"))
}

/// The median of `v` (sorted in place).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// A percentile (0–100) of `v` (sorted in place).
pub(crate) fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)]
}
