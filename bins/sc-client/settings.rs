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
use sc_pki::{KeyPin, ServerName};
use sc_relay::ops::LogFormat;
use sc_relay::Endpoint;
use sc_wire::RouteName;
use serde::Deserialize;

use crate::{CipherChoice, Cli};
use sc_relay::ops::CliError;

/// The largest `max_message` accepted (1 GiB).
pub(crate) const MAX_MESSAGE_LIMIT: u64 = 1 << 30;

/// Everything a run needs, checked.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) verbosity: u8,
    pub(crate) log_format: LogFormat,
    pub(crate) creds: CredSettings,
    pub(crate) mode: Mode,
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
    pub(crate) pins: Vec<KeyPin>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_message: usize,
}

/// One tunnel.
#[derive(Debug)]
pub(crate) struct TunnelSettings {
    pub(crate) listen: Endpoint,
    pub(crate) session: SessionSettings,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_connections: usize,
    pub(crate) max_handshakes: usize,
}

/// The config file. Keys are the flags' names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    connect: Option<String>,
    server_name: Option<String>,
    route: Option<String>,
    listen: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    anonymous: Option<bool>,
    key_passphrase_file: Option<PathBuf>,
    crl: Option<PathBuf>,
    pin: Option<Vec<String>>,
    cipher: Option<String>,
    handshake_timeout: Option<u64>,
    max_message: Option<u64>,
    idle_timeout: Option<u64>,
    clock_skew: Option<u64>,
    max_connections: Option<u64>,
    max_handshakes: Option<u64>,
    shutdown_grace: Option<u64>,
    verbose: Option<u8>,
    log_format: Option<String>,
    #[serde(default)]
    tunnel: Vec<FileTunnel>,
}

/// A `[[tunnel]]` table: where it listens and connects, and what it tunes
/// differently from the top level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTunnel {
    listen: String,
    connect: String,
    server_name: Option<String>,
    route: Option<String>,
    cipher: Option<String>,
    pin: Option<Vec<String>>,
    handshake_timeout: Option<u64>,
    max_message: Option<u64>,
    idle_timeout: Option<u64>,
    max_connections: Option<u64>,
    max_handshakes: Option<u64>,
}

/// Reads and parses the config file; errors name the file, the line and the
/// key.
fn read_file(path: &Path) -> Result<FileConfig, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            CliError::usage(format!("config file {shown} is not UTF-8 text"))
        } else {
            let mut err = CliError::io(format!("cannot read the config file {shown}"), &e);
            err = err.hint("check the path given to --config");
            err
        }
    })?;
    toml::from_str(&text).map_err(|e| {
        let mut at = String::new();
        if let Some(span) = e.span() {
            let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
            at = format!(" line {line_no}");
            if let Some(line) = text.lines().nth(line_no - 1) {
                let line = line.trim();
                if !line.is_empty() && line.chars().count() <= 60 {
                    at = format!("{at} ({line})");
                }
            }
        }
        let message = e.message().trim().replace('\n', " ");
        CliError::usage(format!("config file {shown}{at}: {message}"))
    })
}

/// Where a value came from, for error messages.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Flag,
    File(&'a Path),
    Tunnel(&'a Path, usize),
}

impl Origin<'_> {
    fn name(self, key: &str) -> String {
        match self {
            Self::Flag => format!("--{}", key.replace('_', "-")),
            Self::File(p) => format!("{} key {key}", p.display()),
            Self::Tunnel(p, i) => format!("{} [[tunnel]] #{i} key {key}", p.display()),
        }
    }
}

/// A value and where it came from.
struct Given<'a, T> {
    value: T,
    origin: Origin<'a>,
}

/// The first of a flag, a tunnel key, a top-level key.
fn pick<'a, T>(
    flag: Option<T>,
    tunnel: Option<(T, Origin<'a>)>,
    file: Option<(T, Origin<'a>)>,
) -> Option<Given<'a, T>> {
    if let Some(value) = flag {
        return Some(Given {
            value,
            origin: Origin::Flag,
        });
    }
    tunnel
        .or(file)
        .map(|(value, origin)| Given { value, origin })
}

fn with<'a, T>(value: Option<T>, origin: Origin<'a>) -> Option<(T, Origin<'a>)> {
    value.map(|v| (v, origin))
}

/// Resolves the flags and the config file into [`Settings`].
pub(crate) fn resolve(cli: Cli) -> Result<Settings, CliError> {
    let file = match &cli.config {
        Some(path) => {
            let mut file = read_file(path)?;
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
        Some(s) => s
            .parse()
            .map_err(|e: String| CliError::usage(format!("{}: {e}", top.name("log_format"))))?,
    };
    let verbosity = if cli.verbose > 0 {
        cli.verbose
    } else {
        file.verbose.unwrap_or(0)
    };

    let creds = cred_settings(&cli, &file, top)?;

    let tunnels_in_file = !file.tunnel.is_empty();
    let listen = pick(cli.listen.clone(), None, with(file.listen.clone(), top));
    let connect = pick(cli.connect.clone(), None, with(file.connect.clone(), top));
    let top_session = |connect: Given<'_, String>| {
        session(
            &cli,
            &file,
            top,
            None,
            connect,
            pick(
                cli.server_name.clone(),
                None,
                with(file.server_name.clone(), top),
            ),
            pick(cli.route.clone(), None, with(file.route.clone(), top)),
        )
    };

    let mut tunnels = Vec::new();
    for (i, t) in file.tunnel.iter().enumerate() {
        let here = Origin::Tunnel(path, i + 1);
        let session = session(
            &cli,
            &file,
            top,
            Some((t, here)),
            Given {
                value: t.connect.clone(),
                origin: here,
            },
            with(t.server_name.clone(), here).map(|(value, origin)| Given { value, origin }),
            with(t.route.clone(), here).map(|(value, origin)| Given { value, origin }),
        )?;
        tunnels.push(tunnel(
            &cli,
            &file,
            top,
            Some((t, here)),
            Given {
                value: t.listen.clone(),
                origin: here,
            },
            session,
        )?);
    }

    let mode = match (listen, connect) {
        (Some(listen), Some(connect)) => {
            let session = top_session(connect)?;
            tunnels.insert(0, tunnel(&cli, &file, top, None, listen, session)?);
            Mode::Tunnels {
                tunnels,
                grace: secs(
                    cli.shutdown_grace
                        .or(file.shutdown_grace)
                        .unwrap_or(sc_relay::client::DEFAULT_SHUTDOWN_GRACE.as_secs()),
                ),
            }
        }
        (Some(listen), None) => {
            return Err(CliError::usage(format!(
                "{} needs a server to tunnel to: give --connect HOST:PORT",
                listen.origin.name("listen")
            )))
        }
        (None, Some(connect)) if tunnels_in_file => {
            return Err(CliError::usage(format!(
                "{} without --listen starts an interactive session, which cannot run beside \
                 the [[tunnel]] tables of {}",
                connect.origin.name("connect"),
                path.display()
            ))
            .hint("add --listen ADDR to make it one more tunnel, or leave --connect out"))
        }
        (None, Some(connect)) => Mode::Interactive(top_session(connect)?),
        (None, None) if tunnels_in_file => Mode::Tunnels {
            tunnels,
            grace: secs(
                cli.shutdown_grace
                    .or(file.shutdown_grace)
                    .unwrap_or(sc_relay::client::DEFAULT_SHUTDOWN_GRACE.as_secs()),
            ),
        },
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
    })
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cred_settings(cli: &Cli, file: &FileConfig, top: Origin<'_>) -> Result<CredSettings, CliError> {
    let ca = pick(cli.ca.clone(), None, with(file.ca.clone(), top))
        .ok_or_else(|| {
            CliError::usage("no CA to check the server against: give --ca FILE")
                .hint("the CA certificate (e.g. ca/ca.pem of `sc-ca init`) that issued the server's certificate")
        })?
        .value;
    let crl = cli.crl.clone().or_else(|| file.crl.clone());
    let clock_skew = Duration::from_secs(
        cli.clock_skew
            .or(file.clock_skew)
            .unwrap_or(sc_pki::DEFAULT_CLOCK_SKEW.as_secs()),
    );
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
                    top.name("anonymous"),
                    top.name(if file.cert.is_some() { "cert" } else { "key" })
                )))
            }
            Some(a) => a,
            None => false,
        }
    };
    let identity = if anonymous {
        None
    } else {
        let cert = pick(cli.cert.clone(), None, with(file.cert.clone(), top));
        let key = pick(cli.key.clone(), None, with(file.key.clone(), top));
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
                    cert.origin.name("cert")
                )))
            }
            (None, Some(key)) => {
                return Err(CliError::usage(format!(
                    "{} needs its certificate: give --cert FILE",
                    key.origin.name("key")
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
        .map_err(|e| CliError::usage(format!("{}: {e}", value.origin.name(key))))
}

/// One session's settings: a tunnel table (if any) over the top level, under
/// the flags.
fn session<'a>(
    cli: &Cli,
    file: &FileConfig,
    top: Origin<'a>,
    table: Option<(&FileTunnel, Origin<'a>)>,
    connect: Given<'a, String>,
    server_name: Option<Given<'a, String>>,
    route: Option<Given<'a, String>>,
) -> Result<SessionSettings, CliError> {
    let connect_ep = endpoint(&connect, "connect")?;
    let server_name = match server_name {
        Some(name) => ServerName::try_from(name.value.clone()).map_err(|_| {
            CliError::usage(format!(
                "{}: '{}' is neither a DNS name nor an IP address",
                name.origin.name("server_name"),
                name.value
            ))
        })?,
        None => {
            let Some(host) = connect_ep.host() else {
                return Err(CliError::usage(format!(
                    "{} is a Unix socket: give --server-name NAME (the name in the server's certificate)",
                    connect.origin.name("connect")
                )));
            };
            ServerName::try_from(host.to_owned()).map_err(|_| {
                CliError::usage(format!(
                    "{}: the host '{host}' is not a valid DNS name; give --server-name NAME",
                    connect.origin.name("connect")
                ))
            })?
        }
    };
    // The route name for a relay: by default the server name (a relay
    // routes by the name the client expects, as TLS SNI does).
    let route = match route {
        Some(r) => Some(RouteName::new(&r.value).map_err(|_| {
            CliError::usage(format!(
                "{}: invalid route name '{}' (1-255 printable ASCII characters, no spaces)",
                r.origin.name("route"),
                r.value
            ))
        })?),
        None => RouteName::new(&server_name.to_str()).ok(),
    };
    let t = table;
    let cipher = pick(
        cli.cipher,
        parse_cipher(t.and_then(|(t, o)| with(t.cipher.as_deref(), o)))?,
        parse_cipher(with(file.cipher.as_deref(), top))?,
    )
    .map_or(CipherChoice::Auto, |c| c.value);
    let pins = match pick(
        (!cli.pins.is_empty()).then(|| cli.pins.clone()),
        t.and_then(|(t, o)| with(t.pin.clone(), o)),
        with(file.pin.clone(), top),
    ) {
        None => Vec::new(),
        Some(p) => p
            .value
            .iter()
            .map(|s| {
                s.parse::<KeyPin>()
                    .map_err(|e| CliError::usage(format!("{}: {e}", p.origin.name("pin"))))
            })
            .collect::<Result<_, _>>()?,
    };
    let handshake_timeout = number(
        pick(
            cli.handshake_timeout,
            t.and_then(|(t, o)| with(t.handshake_timeout, o)),
            with(file.handshake_timeout, top),
        ),
        "handshake_timeout",
        1,
        86_400,
        sc_session::DEFAULT_HANDSHAKE_TIMEOUT.as_secs(),
    )?;
    let max_message = number(
        pick(
            cli.max_message,
            t.and_then(|(t, o)| with(t.max_message, o)),
            with(file.max_message, top),
        ),
        "max_message",
        1,
        MAX_MESSAGE_LIMIT,
        sc_session::DEFAULT_MAX_MESSAGE_LEN as u64,
    )?;
    Ok(SessionSettings {
        connect: connect_ep,
        server_name,
        route,
        cipher,
        pins,
        handshake_timeout: Duration::from_secs(handshake_timeout),
        max_message: usize::try_from(max_message).unwrap_or(usize::MAX),
    })
}

fn tunnel<'a>(
    cli: &Cli,
    file: &FileConfig,
    top: Origin<'a>,
    table: Option<(&FileTunnel, Origin<'a>)>,
    listen: Given<'a, String>,
    session: SessionSettings,
) -> Result<TunnelSettings, CliError> {
    let listen_ep = endpoint(&listen, "listen")?;
    let idle = number(
        pick(
            cli.idle_timeout,
            table.and_then(|(t, o)| with(t.idle_timeout, o)),
            with(file.idle_timeout, top),
        ),
        "idle_timeout",
        0,
        u64::from(u32::MAX),
        0,
    )?;
    let max_connections = number(
        pick(
            cli.max_connections,
            table.and_then(|(t, o)| with(t.max_connections, o)),
            with(file.max_connections, top),
        ),
        "max_connections",
        1,
        1_000_000,
        sc_relay::client::DEFAULT_MAX_CONNECTIONS as u64,
    )?;
    let max_handshakes = number(
        pick(
            cli.max_handshakes,
            table.and_then(|(t, o)| with(t.max_handshakes, o)),
            with(file.max_handshakes, top),
        ),
        "max_handshakes",
        1,
        1_000_000,
        sc_relay::client::DEFAULT_MAX_HANDSHAKES as u64,
    )?;
    Ok(TunnelSettings {
        listen: listen_ep,
        session,
        idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        max_handshakes: usize::try_from(max_handshakes).unwrap_or(usize::MAX),
    })
}

/// A number within `min..=max`, or `default`.
fn number(
    value: Option<Given<'_, u64>>,
    key: &str,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, CliError> {
    match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v.value) => Ok(v.value),
        Some(v) => Err(CliError::usage(format!(
            "{}: {} is out of range ({min} to {max})",
            v.origin.name(key),
            v.value
        ))),
    }
}

/// A cipher name from the file.
fn parse_cipher<'a>(
    value: Option<(&str, Origin<'a>)>,
) -> Result<Option<(CipherChoice, Origin<'a>)>, CliError> {
    value
        .map(|(name, origin)| {
            CipherChoice::from_str(name, true)
                .map(|c| (c, origin))
                .map_err(|_| {
                    CliError::usage(format!(
                        "{}: unknown cipher '{name}' (use auto, chacha20-poly1305 or aes-256-gcm)",
                        origin.name("cipher")
                    ))
                })
        })
        .transpose()
}
