//! `sc-client`: an interactive session with a Sovereign-Chain server, or a
//! local listener that tunnels any TCP application through secure sessions.

#![forbid(unsafe_code)]

mod creds;
mod interactive;
mod settings;
mod trace;
mod tunnel;

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use sovereign_chain::cli::units::{parse_duration, parse_size};
use sovereign_chain::cli::{init_logging, CliError};

use crate::settings::Mode;

/// Connect to a Sovereign-Chain server: an interactive session, or a tunnel
/// entry for any TCP application.
///
/// Interactive (no --listen): every line typed at the `msg> ` prompt is one
/// message; every message the server sends is printed as `server: <text>`.
/// When standard input is not a terminal, lines are read until the end of
/// the input, then the session is closed cleanly (remaining replies are
/// printed first) and the exit status is 0:
///
///   printf 'hello\n' | sc-client --connect db.internal:7000 \
///       --ca ca.pem --cert app-1.pem --key app-1.key
///   server: echo: hello
///
/// Tunnel (--listen ADDR): every connection to ADDR becomes a stream of a
/// secure session to --connect that the tunnel keeps open (no handshake per
/// connection; --sessions N keeps N, --eager opens them at start), asking for
/// the server's service --service NAME if given; the bytes flow both ways
/// (half-close included) and the application needs no change. With a
/// server that does not multiplex (or --no-multiplex) every connection gets
/// a session of its own. SIGTERM, SIGINT or SIGHUP stops
/// accepting and lets open connections finish (up to --shutdown-grace), then
/// ends the kept sessions with their authenticated close; a second signal
/// cuts them:
///
///   sc-client --listen 127.0.0.1:5432 --connect db.internal:7000 \
///       --ca ca.pem --cert app-1.pem --key app-1.key
///
/// Durations are seconds (30, 0.5) or carry a unit (250ms, 30s, 5m, 1h);
/// sizes are bytes or carry one (64KiB, 1MiB), here and in the config file.
///
/// Everything can also come from a TOML file (--config FILE): the same names
/// with `_` for `-` (server_name, handshake_timeout, pin = [...], ...), plus
/// [[tunnel]] tables for several tunnels in one process; file paths in it
/// are relative to its directory. Flags override the file, also inside its
/// [[tunnel]] tables (except --connect, --listen, --server-name and --route,
/// which only describe the session of the command line). Unknown keys are
/// errors that name the line and the key that was probably meant:
///
///   ca = "ca.pem"
///   cert = "app-1.pem"
///   key = "app-1.key"
///
///   [[tunnel]]
///   listen = "127.0.0.1:5432"
///   connect = "db.internal:7000"
///
///   [[tunnel]]
///   listen = "unix:/run/app/cache.sock"
///   connect = "10.0.0.8:7001"
///   server_name = "cache.internal"
///   cipher = "chacha20-poly1305"
///   min_version = 1        # this server is not upgraded yet (SPEC §16.1)
///   idle_timeout = "5m"
///
/// Exit status: 0 after a clean end, 1 when a file, the network or the
/// server fails, 2 for a mistake in the flags or the config file.
#[derive(Debug, Parser)]
#[command(
    name = "sc-client",
    version,
    verbatim_doc_comment,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// The server (or relay): HOST:PORT, [IPv6]:PORT or unix:/path.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) connect: Option<String>,

    /// The name the server's certificate must carry. Default: the host of
    /// --connect, a DNS name or an IP address (then matched against the
    /// certificate's IP address names). Needed with a unix: address.
    #[arg(long, value_name = "NAME")]
    pub(crate) server_name: Option<String>,

    /// The route name sent (in plaintext, like TLS SNI) in the ClientHello:
    /// an sc-proxy relay in front of the server routes by it. Default: the
    /// --server-name.
    #[arg(long, value_name = "NAME")]
    pub(crate) route: Option<String>,

    /// The CA certificate(s), PEM, that the server's certificate must lead to.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,

    /// This client's certificate chain, PEM (the leaf first).
    #[arg(long, value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,

    /// This client's private key, PEM (PKCS#8, plain or encrypted). It must
    /// not be readable by group or others (chmod 600).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,

    /// Connect without a certificate: a fresh key and a 30-minute self-signed
    /// certificate per session. Only servers that allow anonymous clients
    /// accept it.
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    pub(crate) anonymous: bool,

    /// Read the passphrase of an encrypted --key from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) key_passphrase_file: Option<PathBuf>,

    /// Refuse servers whose certificate (or an issuer) this CRL revokes (PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) crl: Option<PathBuf>,

    /// Accept only a server whose key has this pin (sha256:<64 hex> or
    /// sha256//<base64>, as `sc-ca inspect` shows it). Repeatable.
    #[arg(long = "pin", value_name = "PIN")]
    pub(crate) pins: Vec<String>,

    /// Tunnel mode: accept local connections on ADDR (HOST:PORT,
    /// [IPv6]:PORT or unix:/path) and carry each as a stream of a session
    /// kept to the server (with --no-multiplex: a session each).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,

    /// The AEAD to offer: auto offers both, AES-256-GCM first where the CPU
    /// has AES instructions, else ChaCha20-Poly1305 first; a named one is
    /// the only one offered [default: auto].
    #[arg(long, value_enum, value_name = "CIPHER")]
    pub(crate) cipher: Option<CipherChoice>,

    /// The oldest protocol version the server may answer with. 2, the
    /// default, refuses a server that speaks only version 1 (`protocol
    /// version`): in version 2 the server proves its key before this client
    /// sends its certificate, and a client that accepts version 1 gives its
    /// certificate to anyone on the path who answers as a version 1 server
    /// (SPEC §16.1). 1 also accepts version 1 servers: for a server not yet
    /// upgraded [default: 2, or 1 with --max-version 1].
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub(crate) min_version: Option<u8>,

    /// The newest protocol version offered: 1 leaves out the offer of
    /// version 2, so the session runs version 1, as with a client built
    /// before version 2: to pin this client to version 1, or to test
    /// servers against a version 1 client. Not below --min-version
    /// [default: 2].
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub(crate) max_version: Option<u8>,

    /// Read settings from this TOML file (flags override it).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// With --listen: do not restrict the tunnel entry's own file system
    /// access with Landlock (by default, where the kernel has it, once its
    /// credentials are loaded it keeps only its Unix sockets' directories
    /// and what name resolution reads).
    #[arg(long)]
    pub(crate) no_sandbox: bool,

    /// With --listen (or tunnels in the config file): serve plain HTTP here
    /// (HOST:PORT, [IPv6]:PORT or unix:/path): GET /healthz, /readyz (a
    /// session to each server is up or can be made) and /metrics.
    #[arg(long, value_name = "ADDR")]
    pub(crate) status: Option<sc_net::Endpoint>,

    /// Give up on a server that has not completed the handshake (TCP
    /// connection included) after this long (30, 30s, 1m) [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) handshake_timeout: Option<Duration>,

    /// The largest message sent or received (65536, 64KiB, 1MiB); in
    /// interactive mode, the longest line [default: 1MiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub(crate) max_message: Option<usize>,

    /// Re-key every session this often (120, 2m): fresh X25519 + ML-KEM-768
    /// secrets signed by both identity keys, so a stolen session state
    /// stops working; 0: not by time (a session still re-keys after 1 GiB
    /// or 2^24 records either way) [default: 2m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) rekey_interval: Option<Duration>,

    /// Tunnel mode: close a session in which no byte has moved either way
    /// for this long (300, 5m); 0 for never [default: 0].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) idle_timeout: Option<Duration>,

    /// Accept certificate validity times this far off this machine's clock
    /// (60, 90s, 2m) [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) clock_skew: Option<Duration>,

    /// Tunnel mode: most local connections served at once per tunnel;
    /// further ones wait [default: 100].
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,

    /// Tunnel mode: most handshakes at once per tunnel [default: 50].
    #[arg(long, value_name = "N")]
    pub(crate) max_handshakes: Option<usize>,

    /// Tunnel mode: the service every local connection asks the server for
    /// (its `--service NAME=...`); default: the server's --forward.
    #[arg(long, value_name = "NAME")]
    pub(crate) service: Option<String>,

    /// Tunnel mode: sessions kept per tunnel; each local connection becomes
    /// a stream of the one carrying the fewest [default: 1].
    #[arg(long, value_name = "N")]
    pub(crate) sessions: Option<usize>,

    /// Tunnel mode: open the kept sessions at start, not on the first
    /// local connection.
    #[arg(long)]
    pub(crate) eager: bool,

    /// Tunnel mode: one session (and handshake) per local connection, as
    /// with a server that does not multiplex.
    #[arg(long)]
    pub(crate) no_multiplex: bool,

    /// Tunnel mode: after SIGTERM or SIGINT, how long open sessions may go on
    /// before they are cut (30, 30s, 2m) [default: 30s].
    #[arg(long, alias = "grace", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) shutdown_grace: Option<Duration>,

    /// Interactive mode: write the handshake's sequence diagram to FILE
    /// (SVG, for a browser): its flights between client and server, each
    /// with its steps in the order processed, bytes on the wire and times.
    #[arg(long, value_name = "FILE", conflicts_with = "listen")]
    pub(crate) trace: Option<PathBuf>,

    /// Log more: -v shows the 13 steps of each handshake, their order and
    /// timing; -vv everything.
    #[arg(short, long, action = ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Log lines as text or JSON (one object per line) [default: text].
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub(crate) log_format: Option<String>,
}

/// The `--cipher` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CipherChoice {
    /// The hardware-aware default order.
    Auto,
    /// ChaCha20-Poly1305 only.
    #[value(name = "chacha20-poly1305")]
    ChaCha20Poly1305,
    /// AES-256-GCM only.
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
}

fn main() -> ExitCode {
    // `--generate-to DIR`: man pages and completions (dist/generate.sh).
    if let Some(code) = sovereign_chain::cli::generate::generate_if_asked::<Cli>() {
        return code;
    }
    sovereign_chain::cli::finish(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let sandboxed = !cli.no_sandbox;
    let trace = cli.trace.clone();
    let settings = settings::resolve(cli)?;
    // Tunnel mode logs sessions and problems (info); -v adds the 13 steps
    // of each handshake. Interactive mode prints its own one-line summary,
    // so without -v it logs only warnings.
    let interactive = matches!(settings.mode, Mode::Interactive(_));
    init_logging(
        "sc-client",
        settings.verbosity,
        interactive,
        settings.log_format,
    );
    if settings.status.is_some() && interactive {
        return Err(CliError::usage(
            "--status serves tunnels' health: it needs --listen (or [[tunnel]] tables)",
        ));
    }
    let status = settings.status.clone();
    let creds = creds::load(&settings.creds)?;
    if let Mode::Tunnels { tunnels, .. } = &settings.mode {
        // The credentials are loaded: a tunnel entry keeps only its Unix
        // sockets' directories and name resolution. Before the runtime
        // starts its threads, so they all inherit it.
        let mut sandbox = sc_host::sandbox::Sandbox::new().with_name_resolution();
        for t in tunnels {
            if let sc_net::Endpoint::Unix(path) = &t.listen {
                sandbox = sandbox.sockets_in(path);
            }
        }
        // `--status unix:/path` (sc-status).
        if let Some(sc_net::Endpoint::Unix(path)) = &status {
            sandbox = sandbox.sockets_in(path);
        }
        sovereign_chain::cli::host::sandbox(sandboxed, &sandbox)?;
    }
    let runtime = sovereign_chain::cli::runtime()?;
    match settings.mode {
        Mode::Interactive(session) => {
            let target = creds.target(&session, false)?;
            runtime.block_on(interactive::run(target, session.max_message, trace))
        }
        Mode::Tunnels { tunnels, grace } => {
            if trace.is_some() {
                // Tunnels from the config file: no one session to draw.
                return Err(CliError::usage(
                    "--trace draws an interactive session's handshake, not tunnels",
                ));
            }
            // Tunnels to the same server with the same settings share their
            // sessions: one session carries every service they name.
            let mut pools = std::collections::HashMap::new();
            let mut configs = Vec::with_capacity(tunnels.len());
            for t in &tunnels {
                let mut config = creds.tunnel(t)?;
                if config.multiplex {
                    let key = format!("{:?} {} {}", t.session, t.sessions, t.eager);
                    let pool = pools
                        .entry(key)
                        .or_insert_with(|| sc_tunnel::SessionPool::new(&config));
                    config.pool = Some(pool.clone());
                }
                configs.push(config);
            }
            runtime.block_on(tunnel::run(configs, grace, status))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
