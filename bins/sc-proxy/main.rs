//! `sc-proxy`: the blind relay. Routes Sovereign-Chain sessions to backends
//! by the route name in the ClientHello, spreads them over healthy
//! backends, shares its port with other protocols, and never decrypts.

#![forbid(unsafe_code)]

mod config;
mod sandbox;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use sc_net::Endpoint;
use sc_relay::Relay;
use sovereign_chain::cli::units::parse_duration;
use sovereign_chain::cli::{init_logging, CliError, Host, Signals};

use crate::settings::{BackendList, RouteArg, Settings};

/// The long help after the options.
const AFTER_LONG_HELP: &str = "\
The relay is blind: the client's 13-step handshake runs end to end with
the backend, through it. It reads only the plaintext ClientHello (at most
one 2,052-byte record), picks a backend by the route name in it, forwards
the ClientHello unchanged and then copies bytes both ways (half-close
included). It holds no key and sees no plaintext; the client still checks
the backend's certificate, the backend the client's.

Two servers behind one address, by name:

  sc-proxy --listen 0.0.0.0:7000 \\
      --route db.internal=10.0.0.5:7000,10.0.0.6:7000 \\
      --route api.internal=10.0.0.7:7000
  sc-client --connect relay.example:7000 --server-name db.internal \\
      --ca ca.pem --cert app-1.pem --key app-1.key

sc-client sends its --server-name as the route name unless --route NAME
says otherwise. A name without a route (or no name) goes to --default;
without a default the client gets the `no route` alert and says
`error: no route for NAME`.

Load and health: least connections among a route's healthy backends. Every
--health-interval seconds each backend gets a TCP connect probe; one that
refuses (or does not accept in time) is down, also when a session's
connect fails or it closes or resets before answering, and gets no new
sessions until it passes a probe. A session whose backend refuses, or
closes or resets before its first byte, is retried with the same
ClientHello on the next backend (nothing has reached the client yet). When every backend of a route is down, they are tried
anyway, each once, before the client gets `no route`.

Port sharing (--fallback): a connection whose first bytes are not a
ClientHello (HTTP, TLS, a game client) goes to the fallback unchanged;
so does one that sends nothing within --peek-timeout (250ms), so
server-speaks-first protocols share the port too.

Durations: seconds (30, 0.5) or with a unit (250ms, 30s, 5m, 1h), on the
command line and in the config file alike.

The relay logs one line per session when it ends, never payload:

  INFO session end listener=0.0.0.0:7000 client=192.0.2.7:51234
       route=db.internal via=route backend=10.0.0.5:7000 bytes_up=3642
       bytes_down=3805 duration=0.512s reason=closed (client first)

-v also logs the header of every record it forwards (direction, kind,
length). Bad input (a garbled or oversized ClientHello, a client that
stalls, a record that is not a ClientHello without --fallback) gets the
plaintext alert naming it, and one rate-limited log line.

Limits (each per listener):
  --max-connections  connections held at once; one more is closed at once
  --hello-timeout    the client's whole ClientHello must come within this
  --peek-timeout     with --fallback: a silent client goes to the fallback
  --connect-timeout  a backend must accept within this (also the probe's)
  --answer-timeout   a backend must send its first byte within this
  --idle-timeout     a session in which no byte moved for this long is closed

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
  SIGTERM, SIGINT  stop accepting, let sessions finish within
                   --shutdown-grace, then close the rest and exit 0. A
                   second signal closes them at once.
  SIGHUP           logged and ignored (restart to change the routes).

Config file (--config FILE, TOML): the flags' names with `_` for `-`, at
the top level for every listener, and [[listener]] tables for several
listeners in one process; routes as a table of name = [backends]. Flags
override the file (--listen, --route, --default, --fallback and
--proxy-protocol only when the file has one listener; a --route replaces
the file's route of the same name). Unknown keys are errors.

  health_interval = 5
  max_connections = 2000

  [[listener]]
  listen = \"0.0.0.0:7000\"
  default = [\"10.0.0.9:7000\"]
  fallback = \"127.0.0.1:25565\"
  proxy_protocol = \"v2\"

  [listener.routes]
  \"db.internal\" = [\"10.0.0.5:7000\", \"10.0.0.6:7000\"]
  \"api.internal\" = [\"10.0.0.7:7000\"]

  [[listener]]
  listen = \"[::]:7443\"
  routes = { \"db.internal\" = [\"10.0.0.5:7000\"] }

Exit status: 0 after a shutdown by signal, 1 when the relay cannot start
(an address), 2 for a mistake in the flags or the config file.";

/// The blind relay: route Sovereign-Chain sessions by name to healthy
/// backends without decrypting them.
#[derive(Debug, Parser)]
#[command(
    name = "sc-proxy",
    version,
    verbatim_doc_comment,
    max_term_width = 100,
    after_help = "See --help for examples, health checks, port sharing, the limits and the config file.",
    after_long_help = AFTER_LONG_HELP
)]
pub(crate) struct Cli {
    /// Where to listen: HOST:PORT, [IPv6]:PORT or unix:/path.
    #[arg(long, value_name = "ADDR", help_heading = "Listener")]
    pub(crate) listen: Option<Endpoint>,

    /// Send sessions whose ClientHello names NAME to these backends (least
    /// connections among the healthy ones). Repeat for more routes.
    #[arg(
        long = "route",
        value_name = "NAME=HOST:PORT[,HOST:PORT...]",
        value_parser = settings::parse_route,
        help_heading = "Listener"
    )]
    pub(crate) routes: Vec<RouteArg>,

    /// Backends for a name without a route, or no name. Without it such a
    /// client gets the `no route` alert.
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT...]", value_parser = settings::parse_backends, help_heading = "Listener")]
    pub(crate) default: Option<BackendList>,

    /// Port sharing: connections that are not Sovereign-Chain (first bytes
    /// not a ClientHello, or silent for --peek-timeout) go here unchanged.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Listener")]
    pub(crate) fallback: Option<Endpoint>,

    /// Send a PROXY protocol header with the client's real address to the
    /// route backends, before the ClientHello (not to the fallback).
    #[arg(long, value_enum, value_name = "VERSION", help_heading = "Listener")]
    pub(crate) proxy_protocol: Option<ProxyVersion>,

    /// Probe every backend (a TCP connect) this often (5, 5s, 1m); 0: only
    /// passive checks [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Listener")]
    pub(crate) health_interval: Option<Duration>,

    /// Read settings (and several listeners) from this TOML file.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Do not restrict the relay's own file system access with Landlock
    /// (by default, where the kernel has it, the relay keeps only its Unix
    /// sockets' directories and what name resolution reads).
    #[arg(long)]
    pub(crate) no_sandbox: bool,

    /// Serve plain HTTP here (HOST:PORT, [IPv6]:PORT or unix:/path):
    /// GET /healthz, /readyz (listeners bound, every route has a healthy
    /// backend) and /metrics (Prometheus: backend health per route).
    #[arg(long, value_name = "ADDR")]
    pub(crate) status: Option<Endpoint>,

    /// Connections held at once, per listener [default: 1000].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub(crate) max_connections: Option<usize>,

    /// Connections one client address may hold at once, per listener; one
    /// more is refused with `going away` (closed, with a fallback)
    /// [default: 32].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub(crate) max_connections_per_source: Option<usize>,

    /// Time a client has to send its whole ClientHello [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) hello_timeout: Option<Duration>,

    /// With --fallback: time after which a client that sent nothing goes
    /// to the fallback [default: 250ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) peek_timeout: Option<Duration>,

    /// Time a backend has to accept a connection [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) connect_timeout: Option<Duration>,

    /// Time a backend has to send its first byte after the ClientHello;
    /// 0: no limit [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) answer_timeout: Option<Duration>,

    /// Close a session in which no byte moved for this long; 0: never
    /// [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) idle_timeout: Option<Duration>,

    /// On SIGTERM or SIGINT, how long open sessions get to finish (30,
    /// 30s, 2m) [default: 30s].
    #[arg(long, alias = "grace", value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub(crate) shutdown_grace: Option<Duration>,

    /// More log detail: -v also logs the header of every record forwarded
    /// (direction, kind, length); -vv everything.
    #[arg(short, long, action = ArgAction::Count, help_heading = "Logging")]
    pub(crate) verbose: u8,

    /// Log lines as text or as JSON objects (one per line) [default: text].
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"], help_heading = "Logging")]
    pub(crate) log_format: Option<String>,
}

/// `--proxy-protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProxyVersion {
    /// HAProxy's binary PROXY protocol, version 2.
    V2,
}

fn main() -> ExitCode {
    // `--generate-to DIR`: man pages and completions (dist/generate.sh).
    if let Some(code) = sovereign_chain::cli::generate::generate_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    sovereign_chain::cli::finish(settings::resolve(&cli).and_then(|settings| {
        init_logging("sc-proxy", settings.verbosity, false, settings.log_format);
        // Before the runtime starts its threads, so they all inherit it.
        sovereign_chain::cli::host::sandbox(!cli.no_sandbox, &sandbox::for_settings(&settings))?;
        sovereign_chain::cli::runtime()?.block_on(run(settings))?;
        Ok(ExitCode::SUCCESS)
    }))
}

/// `/readyz` and `backend_up` of a running relay: every route has a healthy
/// backend; the gauges follow the health probes (copied every second; the
/// labels are configured names only). The task ends when dropped.
fn watch_routes(started: &sovereign_chain::cli::status::Started, relay: &Relay) -> AbortOnDrop {
    let health = relay.health();
    let check = health.clone();
    started.status.add_check("routes", move || {
        let down: Vec<String> = check
            .routes()
            .into_iter()
            .filter(|r| !r.backends.iter().any(|(_, up)| *up))
            .map(|r| format!("route {}: no healthy backend", r.route))
            .collect();
        let result = if down.is_empty() {
            Ok(())
        } else {
            Err(down.join("; "))
        };
        async move { result }
    });
    sovereign_chain::cli::status::listeners_bound(&started.status);
    let metrics = started.metrics.clone();
    AbortOnDrop(tokio::spawn(async move {
        loop {
            for r in health.routes() {
                for (backend, up) in &r.backends {
                    metrics.backend_health(&r.route, &backend.to_string(), *up);
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }))
}

/// A task stopped when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run(settings: Settings) -> Result<(), CliError> {
    let mut signals = Signals::install()?;
    // Socket activation's sockets, before any bind.
    let mut host = Host::start()?;
    // The status endpoint first: /readyz then tells "not bound yet".
    let status = match &settings.status {
        Some(addr) => Some(sovereign_chain::cli::status::start(addr).await?),
        None => None,
    };
    let relay =
        Relay::bind_with_metrics(settings.relay, status.as_ref().map(|s| s.metrics.clone()))
            .await
            .map_err(CliError::from)?;
    let _health = status.as_ref().map(|s| watch_routes(s, &relay));
    host.ready("relaying sessions")?;
    tracing::info!(
        "sc-proxy {} running (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    signals
        .until_stop(|| async {
            tracing::warn!("SIGHUP: sc-proxy does not reload its routes; restart it to change them")
        })
        .await;
    host.stopping();
    signals.drain(relay.shutdown(settings.grace)).await;
    Ok(())
}
