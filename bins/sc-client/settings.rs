//! Flags and the config file, resolved in one step into [`Settings`]: what
//! to run, with every value checked (ripgrep's `LowArgs` → `HiArgs`).
//!
//! Precedence, highest first: a flag; a key of the `[[tunnel]]` table; a
//! top-level key of the file; the default. `--connect`, `--listen`,
//! `--server-name` and `--route` only describe the session of the command
//! line (with `--listen`, one more tunnel).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use sc_net::{Endpoint, Secs};
use sc_pki::{KeyPin, ServerName};
use sc_tunnel::entry::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HANDSHAKES, DEFAULT_SHUTDOWN_GRACE};
use sc_wire::streams::ServiceName;
use sc_wire::{ProtocolVersion, RouteName};
use sovereign_chain::cli::config::{self, pick, Origin};
use sovereign_chain::cli::units::{Seconds, Size};
use sovereign_chain::cli::{protocol_version, versions_crossed, CliError, LogFormat};

use crate::{CipherChoice, Cli};

/// The largest `max_message` accepted (1 GiB).
pub(crate) const MAX_MESSAGE_LIMIT: usize = 1 << 30;
/// The handshake timeouts accepted: 1 s (SPEC §10.5) to a day.
const HANDSHAKE_TIMEOUTS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(86_400));
/// `rekey_interval`: 0 (not by time) up to a day.
const REKEY_INTERVALS: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(24 * 3600));
/// The most connections or handshakes a tunnel may be told to hold.
const MAX_COUNT: usize = 1_000_000;
/// The most sessions a tunnel may be told to keep.
const MAX_SESSIONS: usize = 64;

/// Everything a run needs, checked.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) verbosity: u8,
    pub(crate) log_format: LogFormat,
    pub(crate) creds: CredSettings,
    pub(crate) mode: Mode,
    /// `--status ADDR` (or `status` in the file): tunnels only.
    pub(crate) status: Option<Endpoint>,
}

/// Where the client's identity and trust come from.
#[derive(Debug)]
pub(crate) struct CredSettings {
    /// `None`: anonymous.
    pub(crate) identity: Option<IdentityFiles>,
    pub(crate) ca: PathBuf,
    pub(crate) crl: Option<PathBuf>,
    pub(crate) clock_skew: Duration,
}

/// A certificate chain and its key.
#[derive(Debug)]
pub(crate) struct IdentityFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) passphrase_file: Option<PathBuf>,
}

/// Interactive, or tunnels.
#[derive(Debug)]
pub(crate) enum Mode {
    Interactive(SessionSettings),
    Tunnels {
        tunnels: Vec<TunnelSettings>,
        grace: Duration,
    },
}

/// Where one session goes and how.
#[derive(Debug)]
pub(crate) struct SessionSettings {
    pub(crate) connect: Endpoint,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) route: Option<RouteName>,
    pub(crate) cipher: CipherChoice,
    /// The oldest protocol version accepted from the server.
    pub(crate) min_version: ProtocolVersion,
    /// The newest protocol version offered to it.
    pub(crate) max_version: ProtocolVersion,
    pub(crate) pins: Vec<KeyPin>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_message: usize,
    /// `None`: not by time.
    pub(crate) rekey_interval: Option<Duration>,
}

/// One tunnel.
#[derive(Debug)]
pub(crate) struct TunnelSettings {
    pub(crate) listen: Endpoint,
    pub(crate) session: SessionSettings,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_connections: usize,
    pub(crate) max_handshakes: usize,
    pub(crate) multiplex: bool,
    pub(crate) sessions: usize,
    pub(crate) eager: bool,
    pub(crate) service: Option<ServiceName>,
}

sovereign_chain::config_file! {
    tables: tunnel,
    process {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
        anonymous: bool,
        key_passphrase_file: PathBuf,
        crl: PathBuf,
        clock_skew: Seconds,
        #[serde(alias = "grace")]
        shutdown_grace: Seconds,
        verbose: u8,
        log_format: String,
        status: String,
    }
    table {
        listen: String,
        connect: String,
        server_name: String,
        route: String,
        cipher: String,
        min_version: u8,
        max_version: u8,
        pin: Vec<String>,
        handshake_timeout: Seconds,
        rekey_interval: Seconds,
        max_message: Size,
        idle_timeout: Seconds,
        max_connections: usize,
        max_handshakes: usize,
        service: String,
        sessions: usize,
        eager: bool,
        multiplex: bool,
    }
}

/// A value and where it came from.
struct Given<'a, T> {
    value: T,
    origin: Origin<'a>,
}

impl<'a, T> From<(T, Origin<'a>)> for Given<'a, T> {
    fn from((value, origin): (T, Origin<'a>)) -> Self {
        Self { value, origin }
    }
}

/// The first of a flag, a tunnel key, a top-level key.
fn pick3<'a, T>(
    flag: Option<T>,
    tunnel: Option<(Option<T>, Origin<'a>)>,
    file: (Option<T>, Origin<'a>),
) -> Option<Given<'a, T>> {
    let (in_tunnel, here) = match tunnel {
        Some(t) => t,
        None => (None, Origin::Flag),
    };
    pick([(flag, Origin::Flag), (in_tunnel, here), file]).map(Given::from)
}

/// Resolves the flags and the config file into [`Settings`].
pub(crate) fn resolve(cli: Cli) -> Result<Settings, CliError> {
    let file = match &cli.config {
        Some(path) => {
            let mut file: FileConfig = config::parse(path, KEYS, "sc-client")?;
            // Paths in the file are relative to the file's directory.
            let base = path.parent().unwrap_or(Path::new(""));
            for p in [
                &mut file.ca,
                &mut file.cert,
                &mut file.key,
                &mut file.crl,
                &mut file.key_passphrase_file,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
            file
        }
        None => FileConfig::default(),
    };
    let path_buf = cli.config.clone().unwrap_or_default();
    let path = path_buf.as_path();
    let top = Origin::File(path);

    let log_format = match cli.log_format.as_deref().or(file.log_format.as_deref()) {
        None => LogFormat::Text,
        Some(s) => s.parse().map_err(|e: String| top.bad("log_format", &e))?,
    };
    let verbosity = if cli.verbose > 0 {
        cli.verbose
    } else {
        file.verbose.unwrap_or(0)
    };

    let status = match (&cli.status, &file.status) {
        (Some(addr), _) => Some(addr.clone()),
        (None, Some(s)) => Some(
            s.parse::<Endpoint>()
                .map_err(|e| top.bad("status", &e.to_string()))?,
        ),
        (None, None) => None,
    };
    let creds = cred_settings(&cli, &file, top)?;
    let grace = cli
        .shutdown_grace
        .or(file.shutdown_grace.map(|s| s.0))
        .unwrap_or(DEFAULT_SHUTDOWN_GRACE);

    let tunnels_in_file = !file.tunnel.is_empty();
    let listen = pick3(cli.listen.clone(), None, (file.listen.clone(), top));
    let connect = pick3(cli.connect.clone(), None, (file.connect.clone(), top));
    // --server-name and --route describe the session of the command line:
    // they do not reach the file's tunnels.
    let top_session = |connect: Given<'_, String>| {
        session(
            &cli,
            &file,
            top,
            None,
            connect,
            pick3(
                cli.server_name.clone(),
                None,
                (file.server_name.clone(), top),
            ),
            pick3(cli.route.clone(), None, (file.route.clone(), top)),
        )
    };

    let mut tunnels = Vec::new();
    for (i, t) in file.tunnel.iter().enumerate() {
        let here = Origin::Table(path, "tunnel", i + 1);
        let required = |value: &Option<String>, key: &str| {
            value
                .clone()
                .map(|v| Given {
                    value: v,
                    origin: here,
                })
                .ok_or_else(|| here.bad(key, "not set (every [[tunnel]] needs listen and connect)"))
        };
        let session = session(
            &cli,
            &file,
            top,
            Some((t, here)),
            required(&t.connect, "connect")?,
            t.server_name.clone().map(|v| Given {
                value: v,
                origin: here,
            }),
            t.route.clone().map(|v| Given {
                value: v,
                origin: here,
            }),
        )?;
        tunnels.push(tunnel(
            &cli,
            &file,
            top,
            Some((t, here)),
            required(&t.listen, "listen")?,
            session,
        )?);
    }

    let mode = match (listen, connect) {
        (Some(listen), Some(connect)) => {
            let session = top_session(connect)?;
            tunnels.insert(0, tunnel(&cli, &file, top, None, listen, session)?);
            Mode::Tunnels { tunnels, grace }
        }
        (Some(listen), None) => {
            return Err(CliError::usage(format!(
                "{} needs a server to tunnel to: give --connect HOST:PORT",
                listen.origin.key("listen")
            )))
        }
        (None, Some(connect)) if tunnels_in_file => {
            return Err(CliError::usage(format!(
                "{} without --listen starts an interactive session, which cannot run beside \
                 the [[tunnel]] tables of {}",
                connect.origin.key("connect"),
                path.display()
            ))
            .hint("add --listen ADDR to make it one more tunnel, or leave --connect out"))
        }
        (None, Some(connect)) => Mode::Interactive(top_session(connect)?),
        (None, None) if tunnels_in_file => Mode::Tunnels { tunnels, grace },
        (None, None) => {
            return Err(
                CliError::usage("no server to connect to: give --connect HOST:PORT").hint(
                    "or a --config file with `connect = ...` or [[tunnel]] tables; see --help",
                ),
            )
        }
    };

    Ok(Settings {
        verbosity,
        log_format,
        creds,
        mode,
        status,
    })
}

fn cred_settings(cli: &Cli, file: &FileConfig, top: Origin<'_>) -> Result<CredSettings, CliError> {
    let ca = pick3(cli.ca.clone(), None, (file.ca.clone(), top))
        .ok_or_else(|| {
            CliError::usage("no CA to check the server against: give --ca FILE")
                .hint("the CA certificate (e.g. ca/ca.pem of `sc-ca init`) that issued the server's certificate")
        })?
        .value;
    let crl = cli.crl.clone().or_else(|| file.crl.clone());
    let clock_skew = cli
        .clock_skew
        .or(file.clock_skew.map(|s| s.0))
        .unwrap_or(sc_pki::DEFAULT_CLOCK_SKEW);
    let flag_identity = cli.cert.is_some() || cli.key.is_some();
    let anonymous = if cli.anonymous {
        true
    } else if flag_identity {
        false
    } else {
        match file.anonymous {
            Some(true) if file.cert.is_some() || file.key.is_some() => {
                return Err(CliError::usage(format!(
                    "{} = true and {} cannot go together",
                    top.key("anonymous"),
                    top.key(if file.cert.is_some() { "cert" } else { "key" })
                )))
            }
            Some(a) => a,
            None => false,
        }
    };
    let identity = if anonymous {
        None
    } else {
        let cert = pick3(cli.cert.clone(), None, (file.cert.clone(), top));
        let key = pick3(cli.key.clone(), None, (file.key.clone(), top));
        match (cert, key) {
            (Some(cert), Some(key)) => Some(IdentityFiles {
                cert: cert.value,
                key: key.value,
                passphrase_file: cli
                    .key_passphrase_file
                    .clone()
                    .or_else(|| file.key_passphrase_file.clone()),
            }),
            (Some(cert), None) => {
                return Err(CliError::usage(format!(
                    "{} needs its key: give --key FILE",
                    cert.origin.key("cert")
                )))
            }
            (None, Some(key)) => {
                return Err(CliError::usage(format!(
                    "{} needs its certificate: give --cert FILE",
                    key.origin.key("key")
                )))
            }
            (None, None) => {
                return Err(CliError::usage(
                    "no client identity: give --cert FILE --key FILE, or --anonymous",
                )
                .hint("`sc-ca issue client NAME` makes a client certificate and key"))
            }
        }
    };
    Ok(CredSettings {
        identity,
        ca,
        crl,
        clock_skew,
    })
}

fn endpoint(value: &Given<'_, String>, key: &str) -> Result<Endpoint, CliError> {
    value
        .value
        .parse::<Endpoint>()
        .map_err(|e| value.origin.bad(key, &e.to_string()))
}

/// One session's settings: a tunnel table (if any) over the top level, under
/// the flags.
fn session<'a>(
    cli: &Cli,
    file: &FileConfig,
    top: Origin<'a>,
    table: Option<(&Table, Origin<'a>)>,
    connect: Given<'a, String>,
    server_name: Option<Given<'a, String>>,
    route: Option<Given<'a, String>>,
) -> Result<SessionSettings, CliError> {
    let connect_ep = endpoint(&connect, "connect")?;
    let server_name = match server_name {
        Some(name) => ServerName::try_from(name.value.clone()).map_err(|_| {
            name.origin.bad(
                "server_name",
                &format!("'{}' is neither a DNS name nor an IP address", name.value),
            )
        })?,
        None => {
            let Some(host) = connect_ep.host() else {
                return Err(CliError::usage(format!(
                    "{} is a Unix socket: give --server-name NAME (the name in the server's certificate)",
                    connect.origin.key("connect")
                )));
            };
            ServerName::try_from(host.to_owned()).map_err(|_| {
                connect.origin.bad(
                    "connect",
                    &format!("the host '{host}' is not a valid DNS name; give --server-name NAME"),
                )
            })?
        }
    };
    // The route name for a relay: by default the server name (a relay
    // routes by the name the client expects, as TLS SNI does).
    let route = match route {
        Some(r) => Some(RouteName::new(&r.value).map_err(|_| {
            r.origin.bad(
                "route",
                &format!(
                    "invalid route name '{}' (1-255 printable ASCII characters, no spaces)",
                    r.value
                ),
            )
        })?),
        None => RouteName::new(&server_name.to_str()).ok(),
    };
    let cipher_name = pick3(
        None,
        table.map(|(t, o)| (t.cipher.clone(), o)),
        (file.cipher.clone(), top),
    );
    let cipher = match (cli.cipher, cipher_name) {
        (Some(c), _) => c,
        (None, Some(name)) => CipherChoice::from_str(&name.value, true).map_err(|_| {
            name.origin.bad(
                "cipher",
                &format!(
                    "unknown cipher '{}' (use auto, chacha20-poly1305 or aes-256-gcm)",
                    name.value
                ),
            )
        })?,
        (None, None) => CipherChoice::Auto,
    };
    let max_given = pick3(
        cli.max_version,
        table.map(|(t, o)| (t.max_version, o)),
        (file.max_version, top),
    );
    let max_version = match &max_given {
        None => ProtocolVersion::V2,
        Some(n) => protocol_version(n.value, n.origin, "max_version")?,
    };
    let min_given = pick3(
        cli.min_version,
        table.map(|(t, o)| (t.min_version, o)),
        (file.min_version, top),
    );
    let min_version = match &min_given {
        // Version 2 only (SPEC §16.1: a client that falls back to version 1
        // gives its certificate to an active attacker), unless the client
        // is capped at version 1.
        None => max_version,
        Some(n) => protocol_version(n.value, n.origin, "min_version")?,
    };
    if max_version < min_version {
        // Both were set: the default minimum follows the maximum.
        let given = |n: Option<Given<'a, u8>>, default: u8| match n {
            Some(n) => (n.value, n.origin),
            None => (default, Origin::Flag),
        };
        return Err(versions_crossed(given(min_given, 2), given(max_given, 2)));
    }
    let pins = match pick3(
        (!cli.pins.is_empty()).then(|| cli.pins.clone()),
        table.map(|(t, o)| (t.pin.clone(), o)),
        (file.pin.clone(), top),
    ) {
        None => Vec::new(),
        Some(p) => p
            .value
            .iter()
            .map(|s| {
                s.parse::<KeyPin>()
                    .map_err(|e| p.origin.bad("pin", &e.to_string()))
            })
            .collect::<Result<_, _>>()?,
    };
    let handshake_timeout = duration(
        pick3(
            cli.handshake_timeout,
            table.map(|(t, o)| (t.handshake_timeout.map(|s| s.0), o)),
            (file.handshake_timeout.map(|s| s.0), top),
        ),
        "handshake_timeout",
        HANDSHAKE_TIMEOUTS,
    )?
    .unwrap_or(sc_session::DEFAULT_HANDSHAKE_TIMEOUT);
    let max_message = count(
        pick3(
            cli.max_message,
            table.map(|(t, o)| (t.max_message.map(|s| s.0), o)),
            (file.max_message.map(|s| s.0), top),
        ),
        "max_message",
        MAX_MESSAGE_LIMIT,
        sc_session::DEFAULT_MAX_MESSAGE_LEN,
    )?;
    // 0: not by time.
    let rekey_interval = match duration(
        pick3(
            cli.rekey_interval,
            table.map(|(t, o)| (t.rekey_interval.map(|s| s.0), o)),
            (file.rekey_interval.map(|s| s.0), top),
        ),
        "rekey_interval",
        REKEY_INTERVALS,
    )? {
        Some(d) => (!d.is_zero()).then_some(d),
        None => Some(sc_session::rekey::DEFAULT_REKEY_INTERVAL),
    };
    Ok(SessionSettings {
        connect: connect_ep,
        server_name,
        route,
        cipher,
        min_version,
        max_version,
        pins,
        handshake_timeout,
        max_message,
        rekey_interval,
    })
}

fn tunnel<'a>(
    cli: &Cli,
    file: &FileConfig,
    top: Origin<'a>,
    table: Option<(&Table, Origin<'a>)>,
    listen: Given<'a, String>,
    session: SessionSettings,
) -> Result<TunnelSettings, CliError> {
    let listen_ep = endpoint(&listen, "listen")?;
    // 0 (or none): never.
    let idle = pick3(
        cli.idle_timeout,
        table.map(|(t, o)| (t.idle_timeout.map(|s| s.0), o)),
        (file.idle_timeout.map(|s| s.0), top),
    )
    .map(|g| g.value)
    .filter(|d| !d.is_zero());
    let max_connections = count(
        pick3(
            cli.max_connections,
            table.map(|(t, o)| (t.max_connections, o)),
            (file.max_connections, top),
        ),
        "max_connections",
        MAX_COUNT,
        DEFAULT_MAX_CONNECTIONS,
    )?;
    let max_handshakes = count(
        pick3(
            cli.max_handshakes,
            table.map(|(t, o)| (t.max_handshakes, o)),
            (file.max_handshakes, top),
        ),
        "max_handshakes",
        MAX_COUNT,
        DEFAULT_MAX_HANDSHAKES,
    )?;
    let service = match pick3(
        cli.service.clone(),
        table.map(|(t, o)| (t.service.clone(), o)),
        (file.service.clone(), top),
    ) {
        None => None,
        Some(s) => Some(ServiceName::new(s.value.trim()).map_err(|_| {
            s.origin.bad(
                "service",
                &format!(
                    "invalid service name '{}' (1-255 printable ASCII characters, no spaces)",
                    s.value
                ),
            )
        })?),
    };
    let sessions = count(
        pick3(
            cli.sessions,
            table.map(|(t, o)| (t.sessions, o)),
            (file.sessions, top),
        ),
        "sessions",
        MAX_SESSIONS,
        1,
    )?;
    let multiplex = !cli.no_multiplex
        && pick3(
            None,
            table.map(|(t, o)| (t.multiplex, o)),
            (file.multiplex, top),
        )
        .is_none_or(|m| m.value);
    let eager = cli.eager
        || pick3(None, table.map(|(t, o)| (t.eager, o)), (file.eager, top))
            .is_some_and(|e| e.value);
    Ok(TunnelSettings {
        listen: listen_ep,
        session,
        idle_timeout: idle,
        max_connections,
        max_handshakes,
        multiplex,
        sessions,
        eager,
        service,
    })
}

/// A count from 1 to `max`, or `default`.
fn count(
    value: Option<Given<'_, usize>>,
    key: &str,
    max: usize,
    default: usize,
) -> Result<usize, CliError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v.value) => Ok(v.value),
        Some(v) => Err(v
            .origin
            .bad(key, &format!("{} is out of range (1 to {max})", v.value))),
    }
}

/// A duration from `min` to `max`, both included.
fn duration(
    value: Option<Given<'_, Duration>>,
    key: &str,
    (min, max): (Duration, Duration),
) -> Result<Option<Duration>, CliError> {
    match value {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v.value) => Ok(Some(v.value)),
        Some(v) => Err(v.origin.bad(
            key,
            &format!(
                "{} is out of range ({} to {})",
                Secs(v.value),
                Secs(min),
                Secs(max)
            ),
        )),
    }
}
