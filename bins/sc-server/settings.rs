//! Flags and the config file, resolved in one step into [`Settings`]: every
//! listener with every value checked (ripgrep's `LowArgs` → `HiArgs`).
//!
//! Precedence, highest first: a flag; a key of the `[[listener]]` table; a
//! top-level key of the file; the default. `--listen`, `--echo` and
//! `--forward` describe one listener, so they need a file with at most one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sc_net::Endpoint;
use sc_pki::{AllowEntry, AllowedName, ClientPolicy, PkiError};
use sc_tunnel::exit::{
    AccessError, Cidr, CipherChoice, ClientAccess, CookieMode, CredentialFiles, Credentials,
    FileCredentials, Limits, ListenerSettings, Mode, ProxyProtocol, Service, DEFAULT_GRACE,
};
use sc_wire::streams::ServiceName;
use sc_wire::ProtocolVersion;
use sovereign_chain::cli::config::{self as layering, OneTable, Origin};
use sovereign_chain::cli::units::Seconds;
use sovereign_chain::cli::{protocol_version, versions_crossed, CliError, LogFormat};

use crate::config::{self, FileConfig, Table};
use crate::{CipherArg, Cli, CookiesArg, LogFormatArg};

/// Everything a run needs, checked.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) listeners: Vec<ListenerSettings>,
    pub(crate) grace: Duration,
    pub(crate) verbosity: u8,
    pub(crate) log_format: LogFormat,
    /// `--status ADDR` (or `status` in the file).
    pub(crate) status: Option<Endpoint>,
    /// What to log once logging is set up: untyped entries of the services'
    /// allow-lists (a listener's own are logged as its credentials load).
    pub(crate) warnings: Vec<String>,
}

/// Resolves the flags and the config file (read now) into settings.
pub(crate) fn resolve(cli: &Cli) -> Result<Settings, CliError> {
    let file = match &cli.config {
        Some(path) => config::load(path)?,
        None => FileConfig::default(),
    };
    let base = cli
        .config
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let top = cli.config.as_deref().map_or(Origin::Flag, Origin::File);
    let defaults = file.defaults();
    let tables = layering::layered(
        cli.config.as_deref(),
        "listener",
        defaults.clone(),
        &file.listener,
        OneTable {
            table_only_key: defaults.listen.is_some().then_some("listen"),
            flags: (cli.listen.is_some() || cli.echo || cli.forward.is_some())
                .then_some("--listen, --echo and --forward"),
        },
        |t, defaults| {
            let mut merged = t.over(defaults);
            // The mode (`echo`/`forward`) is taken as a whole.
            if t.echo.is_some() || t.forward.is_some() {
                merged.echo = t.echo;
                merged.forward = t.forward.clone();
            }
            merged
        },
    )?;
    let listeners = tables
        .iter()
        .map(|(table, at)| listener(cli, table, &base, *at))
        .collect::<Result<Vec<_>, _>>()?;

    let grace = cli
        .shutdown_grace
        .or(file.shutdown_grace.map(|s| s.0))
        .unwrap_or(DEFAULT_GRACE);
    let verbosity = match (cli.verbose, file.verbose) {
        (0, Some(v)) => v,
        (v, _) => v,
    };
    let log_format = match (cli.log_format, &file.log_format) {
        (Some(LogFormatArg::Text), _) => LogFormat::Text,
        (Some(LogFormatArg::Json), _) => LogFormat::Json,
        (None, Some(f)) => f.parse().map_err(|e: String| top.bad("log_format", &e))?,
        (None, None) => LogFormat::Text,
    };
    let status = match (&cli.status, &file.status) {
        (Some(addr), _) => Some(addr.clone()),
        (None, Some(s)) => Some(
            s.parse::<Endpoint>()
                .map_err(|e| top.bad("status", &e.to_string()))?,
        ),
        (None, None) => None,
    };
    let mut warnings: Vec<String> = Vec::new();
    for service in listeners.iter().flat_map(|l| &l.services) {
        let policy = ClientPolicy {
            allow_names: service.allow_clients.clone(),
            allow_pins: Vec::new(),
        };
        for w in policy.warnings() {
            let w = format!("service {}: {w}", service.name);
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    Ok(Settings {
        listeners,
        grace,
        verbosity,
        log_format,
        status,
        warnings,
    })
}

/// One listener: flags over its table (already merged with the file's top
/// level) over the defaults.
fn listener(
    cli: &Cli,
    t: &Table,
    base: &Path,
    at: Origin<'_>,
) -> Result<ListenerSettings, CliError> {
    let endpoint = |key: &str, s: &str| -> Result<Endpoint, CliError> {
        s.parse::<Endpoint>()
            .map_err(|e| at.bad(key, &e.to_string()))
    };
    let listen = match (&cli.listen, &t.listen) {
        (Some(e), _) => e.clone(),
        (None, Some(s)) => endpoint("listen", s)?,
        (None, None) => {
            return Err(CliError::usage("no address to listen on").hint(
                "give --listen ADDR (such as 127.0.0.1:7000, [::]:7000 or unix:/run/sc.sock), or listen = \"ADDR\" in a config file",
            ))
        }
    };
    let mode = if let Some(to) = &cli.forward {
        Mode::Forward(to.clone())
    } else if cli.echo {
        Mode::Echo
    } else {
        match (t.echo, &t.forward) {
            (Some(true), Some(_)) => {
                return Err(at.bad("echo", "both echo and forward are set: choose one"))
            }
            (_, Some(to)) => Mode::Forward(endpoint("forward", to)?),
            _ => Mode::Echo,
        }
    };

    let path = |flag: &Option<PathBuf>, key: &Option<PathBuf>| {
        flag.clone().or_else(|| key.as_ref().map(|p| base.join(p)))
    };
    let required = |found: Option<PathBuf>, what: &str, flag: &str, hint: &str| {
        found.ok_or_else(|| {
            CliError::usage(format!("no {what} for {listen}")).hint(format!(
                "give --{flag} FILE ({} = \"FILE\" in a config file): {hint}",
                flag.replace('-', "_")
            ))
        })
    };
    let files = CredentialFiles {
        cert: required(
            path(&cli.cert, &t.cert),
            "server certificate",
            "cert",
            "sc-ca issue server NAME writes it as DIR/NAME.pem",
        )?,
        key: required(
            path(&cli.key, &t.key),
            "server key",
            "key",
            "sc-ca issue server NAME writes it as DIR/NAME.key",
        )?,
        key_passphrase_file: path(&cli.key_passphrase_file, &t.key_passphrase_file),
        ca: required(
            path(&cli.ca, &t.ca),
            "CA certificate for client certificates",
            "ca",
            "sc-ca writes it as DIR/ca.pem",
        )?,
        crl: path(&cli.crl, &t.crl),
    };

    let secs = |flag: Option<Duration>, key: Option<Seconds>| flag.or(key.map(|s| s.0));
    let optional = |d: Duration| (!d.is_zero()).then_some(d);
    let defaults = Limits::default();
    let limits = Limits {
        handshake_timeout: secs(cli.handshake_timeout, t.handshake_timeout)
            .unwrap_or(defaults.handshake_timeout),
        max_connections: cli
            .max_connections
            .or(t.max_connections)
            .unwrap_or(defaults.max_connections),
        max_handshakes: cli
            .max_handshakes
            .or(t.max_handshakes)
            .unwrap_or(defaults.max_handshakes),
        max_streams: cli
            .max_streams
            .or(t.max_streams)
            .unwrap_or(defaults.max_streams),
        max_message: cli
            .max_message
            .or(t.max_message.map(|s| s.0))
            .unwrap_or(defaults.max_message),
        idle_timeout: match secs(cli.idle_timeout, t.idle_timeout) {
            Some(d) => optional(d),
            None => defaults.idle_timeout,
        },
        keepalive: match secs(cli.keepalive, t.keepalive) {
            Some(d) => optional(d),
            None => defaults.keepalive,
        },
        rekey_interval: match secs(cli.rekey_interval, t.rekey_interval) {
            Some(d) => optional(d),
            None => defaults.rekey_interval,
        },
        hello_timeout: secs(cli.hello_timeout, t.hello_timeout).unwrap_or(defaults.hello_timeout),
        max_connections_per_source: cli
            .max_connections_per_source
            .or(t.max_connections_per_source)
            .unwrap_or(defaults.max_connections_per_source),
        max_handshakes_per_source: cli
            .max_handshakes_per_source
            .or(t.max_handshakes_per_source)
            .unwrap_or(defaults.max_handshakes_per_source),
        // Unset: a quarter of max_connections (Limits::anonymous_quota).
        max_anonymous_sessions: cli.max_anonymous_sessions.or(t.max_anonymous_sessions),
        cookies: match (cli.cookies, &t.cookies) {
            (Some(CookiesArg::Auto), _) => CookieMode::Auto,
            (Some(CookiesArg::Always), _) => CookieMode::Always,
            (Some(CookiesArg::Off), _) => CookieMode::Off,
            (None, Some(mode)) => mode.parse().map_err(|e: String| at.bad("cookies", &e))?,
            (None, None) => defaults.cookies,
        },
    };
    limits.check().map_err(|e| {
        let flag_given = match e.field {
            "handshake_timeout" => cli.handshake_timeout.is_some(),
            "max_connections" => cli.max_connections.is_some(),
            "max_handshakes" => cli.max_handshakes.is_some(),
            "hello_timeout" => cli.hello_timeout.is_some(),
            "max_connections_per_source" => cli.max_connections_per_source.is_some(),
            "max_handshakes_per_source" => cli.max_handshakes_per_source.is_some(),
            "max_anonymous_sessions" => cli.max_anonymous_sessions.is_some(),
            "max_streams" => cli.max_streams.is_some(),
            "max_message" => cli.max_message.is_some(),
            _ => false,
        };
        let origin = if flag_given { Origin::Flag } else { at };
        origin.bad(e.field, &e.reason)
    })?;

    let cipher = match (cli.cipher, &t.cipher) {
        (Some(CipherArg::Auto), _) => CipherChoice::Auto,
        (Some(CipherArg::ChaCha20Poly1305), _) => CipherChoice::ChaCha20Poly1305,
        (Some(CipherArg::Aes256Gcm), _) => CipherChoice::Aes256Gcm,
        (None, Some(name)) => name.parse().map_err(|e: String| at.bad("cipher", &e))?,
        (None, None) => CipherChoice::Auto,
    };
    let min_version = match (cli.min_version, t.min_version) {
        (Some(n), _) | (None, Some(n)) => protocol_version(n, at, "min_version")?,
        (None, None) => ProtocolVersion::V1,
    };
    let max_version = match (cli.max_version, t.max_version) {
        (Some(n), _) | (None, Some(n)) => protocol_version(n, at, "max_version")?,
        (None, None) => ProtocolVersion::V2,
    };
    if max_version < min_version {
        // Both were set (the defaults, 1 and 2, cross nothing): the flag's
        // value, else the file's.
        let given = |flag: Option<u8>, key: Option<u8>, default: u8| match flag {
            Some(n) => (n, Origin::Flag),
            None => (key.unwrap_or(default), at),
        };
        return Err(versions_crossed(
            given(cli.min_version, t.min_version, 1),
            given(cli.max_version, t.max_version, 2),
        ));
    }
    let mut allow_clients = t.allow_client.clone().unwrap_or_default();
    if !cli.allow_client.is_empty() {
        allow_clients = cli.allow_client.clone();
    }
    let access = ClientAccess {
        allow_clients,
        allow_anonymous: cli.allow_anonymous || t.allow_anonymous.unwrap_or(false),
        clock_skew: secs(cli.clock_skew, t.clock_skew).unwrap_or(sc_pki::DEFAULT_CLOCK_SKEW),
    };
    check_access(cli, &access, at)?;
    let trusted = if cli.accept_proxy_protocol.is_empty() {
        t.accept_proxy_protocol
            .iter()
            .flatten()
            .map(|c| {
                c.parse::<Cidr>()
                    .map_err(|e| at.bad("accept_proxy_protocol", &e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        cli.accept_proxy_protocol.clone()
    };
    if !trusted.is_empty() && matches!(listen, Endpoint::Unix(_)) {
        let why = "a Unix socket's peer has no address, so no source can be trusted";
        let err = if !cli.accept_proxy_protocol.is_empty() || at == Origin::Flag {
            CliError::usage(format!("--accept-proxy-protocol on {listen}: {why}"))
        } else {
            at.bad("accept_proxy_protocol", why)
        };
        return Err(err.hint("let the balancer connect to a TCP listener (--listen HOST:PORT)"));
    }
    let send = cli.send_proxy_protocol || t.send_proxy_protocol.unwrap_or(false);
    if send && mode == Mode::Echo {
        let err = if cli.send_proxy_protocol || at == Origin::Flag {
            CliError::usage("--send-proxy-protocol needs --forward: the header goes to the backend")
        } else {
            at.bad(
                "send_proxy_protocol",
                "the header goes to a backend, and this listener echoes",
            )
        };
        return Err(err.hint(
            "give the backend with --forward HOST:PORT (forward = \"HOST:PORT\" in a config file)",
        ));
    }
    Ok(ListenerSettings {
        listen,
        mode,
        credentials: Credentials::Files(FileCredentials {
            files,
            access,
            cipher,
            min_version,
            max_version,
        }),
        limits,
        proxy_protocol: ProxyProtocol { trusted, send },
        services: services(cli, t, at)?,
    })
}

/// The allow-list and the anonymous switch, with errors worded for where
/// they were set (the flags, else the file).
fn check_access(cli: &Cli, access: &ClientAccess, at: Origin<'_>) -> Result<(), CliError> {
    let by_flag = !cli.allow_client.is_empty() || at == Origin::Flag;
    match access.check() {
        Ok(()) => Ok(()),
        Err(AccessError::AllowEntry { entry, reason }) => {
            let why = format!("invalid entry '{entry}': {reason}");
            Err(if by_flag {
                Origin::Flag.bad("allow_client", &why)
            } else {
                at.bad("allow_client", &why)
            })
        }
        Err(AccessError::AnonymousNotListed) => Err(if by_flag || cli.allow_anonymous {
            CliError::usage(
                    "--allow-anonymous with --allow-client admits every anonymous client, whatever the list says: \
                     add --allow-client anonymous to mean it, or drop --allow-anonymous",
                )
        } else {
            at.bad(
                "allow_anonymous",
                "with allow_client, every anonymous client is admitted, whatever the list says: \
                     add \"anonymous\" to allow_client to mean it, or drop allow_anonymous",
            )
        }),
        Err(AccessError::AnonymousNotAllowed) => Err(if by_flag {
            CliError::usage(
                "--allow-client anonymous needs --allow-anonymous (anonymous clients are not allowed)",
            )
        } else {
            at.bad(
                "allow_client",
                "\"anonymous\" needs allow_anonymous = true (anonymous clients are not allowed)",
            )
        }),
        Err(other) => Err(CliError::usage(other.to_string())),
    }
}

/// A service's allow-list: entries that parse, without `@ANCHOR` (which
/// only a listener's list can check) and without `anonymous`.
fn service_allow_list(names: &[String]) -> Result<Vec<String>, String> {
    for name in names {
        let entry: AllowEntry = name.parse().map_err(|e| match e {
            PkiError::InvalidName { reason, .. } => format!("invalid entry '{name}': {reason}"),
            other => format!("invalid entry '{name}': {other}"),
        })?;
        if entry.anchor.is_some() {
            return Err(format!(
                "'{name}': a service's allow_client cannot name a CA (@ANCHOR); tie the name in the listener's allow_client"
            ));
        }
        if entry.name == AllowedName::Anonymous {
            return Err(
                "a service's allow_client cannot admit anonymous clients; a service without allow_client admits every client of the listener"
                    .into(),
            );
        }
    }
    Ok(names.to_vec())
}

/// `--service NAME=HOST:PORT`.
#[derive(Clone, Debug)]
pub(crate) struct ServiceArg(Service);

pub(crate) fn parse_service(s: &str) -> Result<ServiceArg, String> {
    let Some((name, backend)) = s.split_once('=') else {
        return Err(format!(
            "'{s}' is not NAME=HOST:PORT (such as db=127.0.0.1:5432)"
        ));
    };
    Ok(ServiceArg(Service {
        name: service_name(name)?,
        backend: backend
            .trim()
            .parse::<Endpoint>()
            .map_err(|e| e.to_string())?,
        allow_clients: Vec::new(),
    }))
}

fn service_name(name: &str) -> Result<ServiceName, String> {
    ServiceName::new(name.trim()).map_err(|_| {
        format!("invalid service name '{name}' (1-255 printable ASCII characters, no spaces)")
    })
}

/// The listener's services: the file's (its table's, else the top level's),
/// then the flags', a flag replacing the file's service of the same name.
fn services(cli: &Cli, t: &Table, at: Origin<'_>) -> Result<Vec<Service>, CliError> {
    let mut out: Vec<Service> = Vec::new();
    for (i, s) in t.service.iter().flatten().enumerate() {
        let key = format!("service[{}]", i + 1);
        let name = service_name(&s.name).map_err(|e| at.bad(&key, &e))?;
        if out.iter().any(|o| o.name == name) {
            return Err(at.bad(&key, &format!("the service '{name}' is given twice")));
        }
        out.push(Service {
            name,
            backend: s
                .forward
                .parse::<Endpoint>()
                .map_err(|e| at.bad(&key, &e.to_string()))?,
            allow_clients: service_allow_list(&s.allow_client.clone().unwrap_or_default())
                .map_err(|e| at.bad(&key, &e))?,
        });
    }
    let mut from_flags: Vec<&ServiceName> = Vec::new();
    for ServiceArg(s) in &cli.services {
        if from_flags.contains(&&s.name) {
            return Err(CliError::usage(format!(
                "--service: the service '{}' is given twice",
                s.name
            ))
            .hint("give each service once: --service NAME=HOST:PORT"));
        }
        from_flags.push(&s.name);
        out.retain(|o| o.name != s.name);
        out.push(s.clone());
    }
    Ok(out)
}
