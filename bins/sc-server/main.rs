//! `sc-server`: accept Sovereign-Chain sessions; echo them, or forward them
//! to a backend (tunnel exit).

#![forbid(unsafe_code)]

mod config;
mod sandbox;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use sc_net::{Cidr, Endpoint};
use sc_tunnel::exit::Server;
use sovereign_chain::cli::units::{parse_duration, parse_size};
use sovereign_chain::cli::{init_logging, CliError, Host, Signals};

use crate::settings::Settings;

/// The long help after the options: an example session, the limits, the
/// signals, the config file.
const AFTER_LONG_HELP: &str = "\
A first session, with sc-ca's files:

  sc-ca init --dir ca --name \"Example CA\"
  sc-ca issue server db.internal --dir ca
  sc-ca issue client app-1 --dir ca
  sc-server --listen 127.0.0.1:7000 --cert ca/db.internal.pem \\
      --key ca/db.internal.key --ca ca/ca.pem --allow-client dns:app-1
  printf 'hello\\n' | sc-client --connect 127.0.0.1:7000 \\
      --server-name db.internal --ca ca/ca.pem --cert ca/app-1.pem --key ca/app-1.key
  server: echo: hello

The server logs one line per session when it ends:

  INFO session end listener=127.0.0.1:7000 peer=127.0.0.1:51234 id=dns:app-1
       version=SC/2 cipher=AES-256-GCM order=7,9,8,10 bytes_in=6 bytes_out=12
       duration=0.004s reason=closed

Protocol version 2 (SPEC section 16: the server proves its key before the
client sends its certificate) runs with every client that offers it; a
client that speaks only version 1 gets version 1, unless --min-version 2
(min_version = 2 in the config file) refuses it. --max-version 1
(max_version = 1) makes the listener a version 1 server, to pin it to
version 1 or to test clients against one.

The allow-list (--allow-client, repeatable; allow_client in the config
file) names clients by type:

  dns:NAME      a DNS subject alternative name (ASCII case-insensitive)
  uri:URI       a URI subject alternative name (exactly)
  ip:ADDRESS    an IP address subject alternative name
  cn:NAME       the subject common name (exactly), whatever SANs it has
  ...@ANCHOR    only in a certificate whose chain leads to the CA
                certificate of --ca whose subject CN is ANCHOR, as in
                dns:app-1@Example CA; @* is any of them. The entry is split
                at its last @, so a name with an @ needs @ANCHOR or @*. An
                ANCHOR that is no CA's CN stops the server.
  anonymous     anonymous clients: required with --allow-anonymous, which
                otherwise would admit every anonymous client whatever the
                list says (a list of only anonymous admits no CA-issued
                client)
  NAME          untyped (as before types): a DNS, URI or IP SAN, and the CN
                only of a certificate without those; logged as a warning
                naming the typed spelling

A tunnel exit in front of a local Redis (clients reach it through
`sc-client --listen`):

  sc-server --listen [::]:6380 --forward 127.0.0.1:6379 \\
      --cert ca/db.internal.pem --key ca/db.internal.key --ca ca/ca.pem

Addresses: HOST:PORT, [IPv6]:PORT or unix:/path, for --listen and
--forward alike. Durations: seconds (30, 0.5) or with a unit (250ms, 30s,
5m, 1h); sizes: bytes or with a unit (64KiB, 1MiB), on the command line
and in the config file alike.

Limits (each per listener):
  --max-connections  connections held at once; one more is refused at
                     once with the `going away` alert (logged, rate-limited)
  --max-handshakes   handshakes run at once; a connection takes a slot
                     only once its whole ClientHello has arrived (silent or
                     slow clients hold none), more wait for a slot, within
                     their handshake timeout
  --max-anonymous-sessions  with --allow-anonymous, anonymous sessions held
                     at once (a quarter of --max-connections unless given):
                     anonymous keys cost nothing to make, so without it
                     anonymous clients that send a KeepAlive now and then
                     could hold every slot. One more is closed as its
                     handshake completes, with the sealed `going away`
                     alert (logged, rate-limited); certified clients are
                     never counted, and a place comes back when its session
                     ends. It costs one counter per listener.
  --handshake-timeout  from the TCP connection to a complete handshake,
                     waiting included; then the `timeout` alert
  --idle-timeout     an echo session from which nothing (no message, no
                     keepalive) came, or a tunnel in which no byte moved,
                     for this long is ended
  --keepalive        an echo session that sent nothing for this long sends
                     a KeepAlive record
  --max-message      the largest message sent or reassembled

A tunnel whose backend cannot be reached ends with the `no route` alert and
a log line such as `backend 127.0.0.1:6379 refused the connection`.

Many connections, one session: a client that offers streams (sc-client
--listen does, unless --no-multiplex) gets a session that carries many
streams, one per local connection, each opened without a handshake. A
stream names a service: --service NAME=HOST:PORT (repeatable) says where
it goes; one that names none goes to --forward (or is echoed). A stream
for an unknown service, one the client may not use, or one whose backend
refuses, is reset with the reason (`unknown service NAME`, `backend
127.0.0.1:5432 refused the connection`); the session and its other
streams go on. -v logs one line per stream at its end; the session's line
counts its streams.

  sc-server --listen [::]:7000 --cert ... --key ... --ca ... \\
      --service db=127.0.0.1:5432 --service cache=127.0.0.1:6379

Per-service allow-lists, in the config file (within those the listener's
--allow-client admits):

  [[service]]
  name = \"db\"
  forward = \"127.0.0.1:5432\"
  allow_client = [\"dns:app-1\"]

Behind HAProxy or another L4 load balancer (PROXY protocol v2):

  sc-server --listen 10.0.0.7:7000 --accept-proxy-protocol 10.0.0.2/32 ...

  --accept-proxy-protocol CIDR...  connections from these sources (the
                     balancers) must start with a PROXY v2 header, and the
                     client address in it is the session's peer in every log
                     line (the balancer's own appears as via=). A connection
                     from them without a valid, complete header within 5 s
                     (or the handshake timeout, if shorter) is closed and
                     logged with the reason. A header without a client
                     address (LOCAL, what HAProxy's health checks send with
                     `check send-proxy-v2`) leaves the connection as the
                     balancer's own: closed quietly if nothing follows, a
                     session from the balancer if a handshake does.
  Spoofing rule:     a connection from any other source that starts with a
                     PROXY header is refused and logged: only a trusted
                     balancer may say where a client comes from. Trust only
                     the balancers' addresses, never a client network.
  --send-proxy-protocol  with --forward: every backend connection starts
                     with a PROXY v2 header carrying the client's address
                     (the balancer's report, else the TCP peer) and, in TLV
                     0xe0, the identity the handshake verified, as in the
                     id= of the log line: its type, a colon, the name
                     (dns:app-1, uri:..., ip:..., cn:..., the name the
                     allow-list matched where its type comes first;
                     anonymous:sha256:<16 hex> for an anonymous client).
                     The backend must expect the header (HAProxy
                     `accept-proxy`, nginx `proxy_protocol`, ...).

In HAProxy (mode tcp):  server s1 10.0.0.7:7000 send-proxy-v2 check

Watch and supervise it:
  --status ADDR      plain HTTP on ADDR (127.0.0.1:9100, unix:/path; no
                     authentication, so bind it to loopback): GET /healthz,
                     GET /readyz (503 with JSON naming what is not ready),
                     GET /metrics (Prometheus, names sovereign_chain_*).
  systemd            Type=notify (READY=1, RELOADING=1 around SIGHUP,
                     STOPPING=1, WATCHDOG=1 with WatchdogSec=); listening
                     sockets from socket activation (LISTEN_FDS; the one
                     named `status` is --status). Units: dist/systemd/.
  sandbox            after start the process restricts its own file access
                     with Landlock to the files it needs (one log line says
                     so); --no-sandbox turns that off.

Signals:
  SIGHUP           reload the certificate, key, CA bundle, CRL and, with
                   --config, the allow-list from their files. Open sessions
                   keep going; new sessions use the new credentials. A
                   reload that fails keeps the old ones and logs why.
  SIGTERM, SIGINT  stop accepting, let open sessions finish within
                   --shutdown-grace, then close the rest and exit 0. A
                   second signal closes them at once.

Config file (--config FILE, TOML): the flags' names with `_` for `-`, at
the top level for every listener, and [[listener]] tables for several
listeners in one process. Paths are relative to the file. Flags override
the file (for every listener; --listen, --echo and --forward only when the
file has one listener). Unknown keys are errors.

  cert = \"ca/db.internal.pem\"
  key = \"ca/db.internal.key\"
  ca = \"ca/ca.pem\"
  crl = \"ca/crl.pem\"
  max_connections = 500

  [[listener]]
  listen = \"0.0.0.0:7000\"
  echo = true
  allow_client = [\"dns:app-1\", \"dns:app-2@Example CA\"]

  [[listener]]
  listen = \"unix:/run/sc/redis.sock\"
  forward = \"127.0.0.1:6379\"
  idle_timeout = 0

  [[listener]]
  listen = \"10.0.0.7:7001\"
  forward = \"127.0.0.1:8080\"
  accept_proxy_protocol = [\"10.0.0.2/32\", \"10.0.0.3/32\"]
  send_proxy_protocol = true

Exit status: 0 after a shutdown by signal, 1 when the server cannot start
(a file, an address), 2 for a mistake in the flags or the config file.";

/// Accept Sovereign-Chain sessions: echo them, or forward them to a backend
/// (tunnel exit).
///
/// Every client must present a certificate issued by the CA of --ca (and be
/// on the --allow-client list, if one is given). With --echo (the default)
/// every message `m` is answered with `echo: m`. With --forward every
/// session gets its own connection to the backend and the bytes flow both
/// ways, half-close included.
#[derive(Debug, Parser)]
#[command(
    name = "sc-server",
    version,
    verbatim_doc_comment,
    max_term_width = 100,
    after_help = "See --help for an example session, the limits, the signals and the config file.",
    after_long_help = AFTER_LONG_HELP
)]
pub(crate) struct Cli {
    /// Where to listen: HOST:PORT, [IPv6]:PORT or unix:/path.
    #[arg(long, value_name = "ADDR", help_heading = "Listener")]
    pub(crate) listen: Option<Endpoint>,

    /// The server's certificate chain, PEM (the leaf first, then
    /// intermediates).
    #[arg(long, value_name = "FILE", help_heading = "Listener")]
    pub(crate) cert: Option<PathBuf>,

    /// The server's Ed25519 key, PEM (PKCS#8, plain or encrypted).
    #[arg(long, value_name = "FILE", help_heading = "Listener")]
    pub(crate) key: Option<PathBuf>,

    /// A file whose first line is the passphrase of an encrypted --key.
    #[arg(long, value_name = "FILE", help_heading = "Listener")]
    pub(crate) key_passphrase_file: Option<PathBuf>,

    /// The CA certificate(s), PEM, that client certificates must lead to.
    #[arg(long, value_name = "FILE", help_heading = "Listener")]
    pub(crate) ca: Option<PathBuf>,

    /// CRLs, PEM, to check client certificates against.
    #[arg(long, value_name = "FILE", help_heading = "Listener")]
    pub(crate) crl: Option<PathBuf>,

    /// Answer every message `m` with `echo: m` (the default).
    #[arg(long, conflicts_with = "forward", help_heading = "Listener")]
    pub(crate) echo: bool,

    /// Tunnel exit: forward every session (or stream that names no
    /// service) to this backend (HOST:PORT, [IPv6]:PORT or unix:/path),
    /// each over its own connection.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Listener")]
    pub(crate) forward: Option<Endpoint>,

    /// A named service: streams that ask for NAME go to this backend (a
    /// client's `sc-client --service NAME`). Repeatable; per-service
    /// allow-lists in the config file.
    #[arg(long = "service", value_name = "NAME=HOST:PORT", value_parser = settings::parse_service, help_heading = "Listener")]
    pub(crate) services: Vec<settings::ServiceArg>,

    /// Admit only clients with this name: dns:NAME, uri:URI, ip:ADDRESS or
    /// cn:NAME, optionally @ANCHOR (the subject CN of a CA of --ca), or
    /// anonymous (with --allow-anonymous); untyped NAME is a SAN (the CN
    /// only without SANs), with a warning. Repeat for more. Default: every
    /// client the CA certified.
    #[arg(long = "allow-client", value_name = "ENTRY", help_heading = "Listener")]
    pub(crate) allow_client: Vec<String>,

    /// Also admit anonymous clients (a fresh self-signed certificate per
    /// connection, authenticated only as its key). With --allow-client, the
    /// list must say so too: --allow-client anonymous.
    #[arg(long, help_heading = "Listener")]
    pub(crate) allow_anonymous: bool,

    /// The cipher: auto (AES-256-GCM first where the CPU has AES
    /// instructions), or force one.
    #[arg(long, value_enum, value_name = "CIPHER", help_heading = "Listener")]
    pub(crate) cipher: Option<CipherArg>,

    /// The oldest protocol version a client may speak: 1 also serves
    /// clients that speak only version 1; 2 refuses them with `protocol
    /// version`. A client that offers version 2 (every sc-client since it
    /// exists) gets version 2 unless --max-version 1 [default: 1].
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2), help_heading = "Listener")]
    pub(crate) min_version: Option<u8>,

    /// The newest protocol version this listener answers: 1 ignores a
    /// client's offer of version 2 and runs version 1, as a server built
    /// before version 2 does: to pin the listener to version 1, or to test
    /// clients against a version 1 server. Not below --min-version
    /// [default: 2].
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2), help_heading = "Listener")]
    pub(crate) max_version: Option<u8>,

    /// How far certificate validity times may be off this machine's clock
    /// (30, 90s, 2m) [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Listener")]
    pub(crate) clock_skew: Option<Duration>,

    /// Connections from these sources (CIDR: 10.0.0.0/8, 127.0.0.1/32,
    /// ::1/128; a load balancer's addresses) must start with a PROXY
    /// protocol v2 header, whose client address is then the peer. A PROXY
    /// header from any other source is refused. Several, or repeat. TCP
    /// listeners only.
    #[arg(
        long = "accept-proxy-protocol",
        value_name = "CIDR",
        num_args = 1..,
        action = ArgAction::Append,
        help_heading = "PROXY protocol"
    )]
    pub(crate) accept_proxy_protocol: Vec<Cidr>,

    /// With --forward: start every backend connection with a PROXY protocol
    /// v2 header: the client's address and, in TLV 0xe0, its verified
    /// identity with its type (dns:app-1, anonymous:sha256:<16 hex>, ...).
    #[arg(long, help_heading = "PROXY protocol")]
    pub(crate) send_proxy_protocol: bool,

    /// Read settings (and several listeners) from this TOML file.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Do not restrict the server's own file system access with Landlock
    /// (by default, where the kernel has it, the server can read only the
    /// directories of its credential and config files once it starts).
    #[arg(long)]
    pub(crate) no_sandbox: bool,

    /// Serve plain HTTP here (HOST:PORT, [IPv6]:PORT or unix:/path):
    /// GET /healthz, /readyz (listeners bound, credentials valid, the
    /// --forward backend reachable) and /metrics (Prometheus).
    #[arg(long, value_name = "ADDR")]
    pub(crate) status: Option<Endpoint>,

    /// From the TCP connection to a complete handshake (30, 30s, 1m)
    /// [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) handshake_timeout: Option<Duration>,

    /// Connections held at once, per listener [default: 1000].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub(crate) max_connections: Option<usize>,

    /// Connections one source address (the PROXY v2 source from a trusted
    /// balancer, else the TCP peer) may hold at once, per listener; one more
    /// is refused with `going away` [default: 32].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub(crate) max_connections_per_source: Option<usize>,

    /// Handshakes run at once, per listener (a connection takes a slot once
    /// its ClientHello is in) [default: 50].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub(crate) max_handshakes: Option<usize>,

    /// Handshakes one source address may run at once, per listener; one
    /// more is refused with `going away` at once [default: 8].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub(crate) max_handshakes_per_source: Option<usize>,

    /// With --allow-anonymous: established anonymous sessions held at once,
    /// per listener, from 1 to --max-connections; one more is closed as its
    /// handshake completes, with `going away`. Certified clients are not
    /// counted [default: a quarter of --max-connections, 250 of 1000].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub(crate) max_anonymous_sessions: Option<usize>,

    /// From the TCP connection to a complete ClientHello, within the
    /// handshake timeout (5, 5s) [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) hello_timeout: Option<Duration>,

    /// When to answer a ClientHello with a cookie retry before any
    /// expensive work: auto (when half of the handshake slots are taken),
    /// always, off. A client that echoes the cookie costs one more round
    /// trip; a blind flood of ClientHellos costs an HMAC each [default:
    /// auto].
    #[arg(long, value_enum, value_name = "WHEN", help_heading = "Limits")]
    pub(crate) cookies: Option<CookiesArg>,

    /// Re-key every session this often (120, 2m): fresh X25519 + ML-KEM-768
    /// secrets signed by both identity keys, so a stolen session state
    /// stops working; 0: not by time (a session still re-keys after 1 GiB
    /// or 2^24 records either way) [default: 2m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) rekey_interval: Option<Duration>,

    /// Streams one client session may hold open at once; one more is
    /// refused [default: 256].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub(crate) max_streams: Option<usize>,

    /// The largest message, in bytes (65536, 64KiB, 1MiB) [default: 1MiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_size, help_heading = "Limits")]
    pub(crate) max_message: Option<usize>,

    /// End a session idle for this long (300, 5m); 0: never [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) idle_timeout: Option<Duration>,

    /// An echo session sends a KeepAlive after this long without sending;
    /// 0: never [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) keepalive: Option<Duration>,

    /// On SIGTERM or SIGINT, how long open sessions get to finish (30,
    /// 30s, 2m) [default: 30s].
    #[arg(long, alias = "grace", value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) shutdown_grace: Option<Duration>,

    /// More log detail: -v shows the 13 steps of every handshake with their
    /// order and timing, -vv everything.
    #[arg(short, long, action = ArgAction::Count, help_heading = "Logging")]
    pub(crate) verbose: u8,

    /// Log lines as text or as JSON objects (one per line) [default: text].
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Logging")]
    pub(crate) log_format: Option<LogFormatArg>,
}

/// `--cookies`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CookiesArg {
    /// When half of the handshake slots are taken.
    Auto,
    /// For every ClientHello.
    Always,
    /// Never.
    Off,
}

/// `--cipher`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CipherArg {
    /// Hardware-aware preference.
    Auto,
    /// ChaCha20-Poly1305 only.
    #[value(name = "chacha20-poly1305")]
    ChaCha20Poly1305,
    /// AES-256-GCM only.
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn main() -> ExitCode {
    // `--generate-to DIR`: man pages and completions (dist/generate.sh).
    if let Some(code) = sovereign_chain::cli::generate::generate_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    sovereign_chain::cli::finish(settings::resolve(&cli).and_then(|settings| {
        init_logging("sc-server", settings.verbosity, false, settings.log_format);
        // Before the runtime starts its threads, so they all inherit it.
        sovereign_chain::cli::host::sandbox(
            !cli.no_sandbox,
            &sandbox::for_settings(&cli, &settings),
        )?;
        sovereign_chain::cli::runtime()?.block_on(run(&cli, settings))?;
        Ok(ExitCode::SUCCESS)
    }))
}

async fn run(cli: &Cli, settings: Settings) -> Result<(), CliError> {
    let mut signals = Signals::install()?;
    let grace = settings.grace;
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    // Socket activation's sockets, before any bind.
    let mut host = Host::start()?;
    // The status endpoint first: /readyz then tells "not bound yet".
    let status = match &settings.status {
        Some(addr) => Some(sovereign_chain::cli::status::start(addr).await?),
        None => None,
    };
    let server = Server::bind_with_metrics(
        settings.listeners,
        status.as_ref().map(|s| s.metrics.clone()),
    )
    .await
    .map_err(CliError::from)?;
    if let Some(s) = &status {
        ready_checks(&s.status, &server);
    }
    host.ready("accepting sessions")?;
    tracing::info!(
        "sc-server {} running (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    signals
        .until_stop(|| {
            let (host, server) = (&host, &server);
            async move {
                host.reloading();
                reload(cli, server).await;
                host.reloaded("accepting sessions");
            }
        })
        .await;
    host.stopping();
    signals.drain(server.shutdown(grace)).await;
    Ok(())
}

/// `/readyz` of a running server: its listeners are bound, every
/// certificate in force is valid, and every --forward backend accepts a
/// connection.
fn ready_checks(status: &sc_status::Status, server: &Server) {
    use sovereign_chain::cli::status;
    let readiness = server.readiness();
    for backend in readiness.backends() {
        status::backend_check(status, backend);
    }
    status.add_check("credentials", move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let result = readiness.credentials(now);
        async move { result }
    });
    status::listeners_bound(status);
}

/// SIGHUP: re-read the config file (if any) and every credential file.
async fn reload(cli: &Cli, server: &Server) {
    tracing::info!("SIGHUP: reloading credentials");
    if cli.config.is_none() {
        server.reload().await;
        return;
    }
    match settings::resolve(cli) {
        Ok(settings) => {
            for w in &settings.warnings {
                tracing::warn!("{w}");
            }
            server.reload_from(settings.listeners).await;
        }
        Err(e) => tracing::warn!(
            "reload failed: {}; keeping the credentials in force",
            e.message()
        ),
    }
}
