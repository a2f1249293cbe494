//! Flags and the config file, resolved in one step into [`Settings`]: every
//! listener with every value checked (ripgrep's `LowArgs` → `HiArgs`).
//!
//! Precedence, highest first: a flag; a key of the `[[listener]]` table; a
//! top-level key of the file; the default. `--listen`, `--echo` and
//! `--forward` describe one listener, so they need a file with at most one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sc_relay::ops::LogFormat;
use sc_relay::server::{
    Cidr, CipherChoice, ClientAccess, CredentialFiles, Credentials, FileCredentials, Limits,
    ListenerSettings, Mode, ProxyProtocol, DEFAULT_GRACE,
};
use sc_relay::Endpoint;

use crate::config::{self, FileConfig, ListenerTable};
use crate::{CipherArg, Cli, LogFormatArg};
use sc_relay::ops::CliError;

/// Everything a run needs, checked.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) listeners: Vec<ListenerSettings>,
    pub(crate) grace: Duration,
    pub(crate) verbosity: u8,
    pub(crate) log_format: LogFormat,
}

/// Where a value came from, for error lines.
struct Origin<'a> {
    file: Option<&'a Path>,
    /// `[[listener]] 2` when the file has several.
    table: Option<usize>,
}

impl Origin<'_> {
    /// "config FILE ([[listener]] 2), key": where a bad value was found.
    fn key(&self, key: &str) -> String {
        match (self.file, self.table) {
            (Some(f), Some(n)) => format!("config {} ([[listener]] {n}), {key}", f.display()),
            (Some(f), None) => format!("config {}, {key}", f.display()),
            (None, _) => key.to_owned(),
        }
    }
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
    let origin = |table| Origin {
        file: cli.config.as_deref(),
        table,
    };

    let defaults = file.defaults();
    let tables: Vec<ListenerTable> = if file.listener.is_empty() {
        vec![defaults]
    } else {
        if defaults.listen.is_some() {
            return Err(CliError::usage(format!(
                "{}: `listen` at the top level of a file with [[listener]] tables",
                origin(None).key("listen")
            ))
            .hint("move it into a [[listener]] table"));
        }
        file.listener.iter().map(|t| t.over(&defaults)).collect()
    };
    if tables.len() > 1 && (cli.listen.is_some() || cli.echo || cli.forward.is_some()) {
        return Err(CliError::usage(format!(
            "--listen, --echo and --forward describe one listener, and the config file has {}",
            tables.len()
        ))
        .hint("set them in the file's [[listener]] tables"));
    }

    let mut listeners = Vec::with_capacity(tables.len());
    for (i, table) in tables.iter().enumerate() {
        let at = origin((tables.len() > 1).then_some(i + 1));
        listeners.push(listener(cli, table, &base, &at)?);
    }

    let grace = match (cli.grace, file.grace) {
        (Some(g), _) => g,
        (None, Some(g)) => secs_value(g).map_err(|e| bad(&origin(None), "grace", &e))?,
        (None, None) => DEFAULT_GRACE,
    };
    let verbosity = match (cli.verbose, file.verbose) {
        (0, Some(v)) => v,
        (v, _) => v,
    };
    let log_format = match (cli.log_format, &file.log_format) {
        (Some(LogFormatArg::Text), _) => LogFormat::Text,
        (Some(LogFormatArg::Json), _) => LogFormat::Json,
        (None, Some(f)) => f
            .parse()
            .map_err(|e: String| bad(&origin(None), "log_format", &e))?,
        (None, None) => LogFormat::Text,
    };
    Ok(Settings {
        listeners,
        grace,
        verbosity,
        log_format,
    })
}

fn bad(origin: &Origin<'_>, key: &str, why: &str) -> CliError {
    CliError::usage(format!("{}: {why}", origin.key(key)))
}

/// One listener: flags over its table (already merged with the file's top
/// level) over the defaults.
fn listener(
    cli: &Cli,
    t: &ListenerTable,
    base: &Path,
    at: &Origin<'_>,
) -> Result<ListenerSettings, CliError> {
    let endpoint = |key: &str, s: &str| -> Result<Endpoint, CliError> {
        s.parse::<Endpoint>()
            .map_err(|e| bad(at, key, &e.to_string()))
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
                return Err(bad(at, "echo", "both echo and forward are set: choose one"))
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

    let secs = |flag: Option<Duration>,
                key: Option<f64>,
                name: &str|
     -> Result<Option<Duration>, CliError> {
        match (flag, key) {
            (Some(d), _) => Ok(Some(d)),
            (None, Some(v)) => secs_value(v).map(Some).map_err(|e| bad(at, name, &e)),
            (None, None) => Ok(None),
        }
    };
    let optional = |d: Duration| (!d.is_zero()).then_some(d);
    let defaults = Limits::default();
    let limits = Limits {
        handshake_timeout: secs(
            cli.handshake_timeout,
            t.handshake_timeout,
            "handshake_timeout",
        )?
        .unwrap_or(defaults.handshake_timeout),
        max_connections: cli
            .max_connections
            .or(t.max_connections)
            .unwrap_or(defaults.max_connections),
        max_handshakes: cli
            .max_handshakes
            .or(t.max_handshakes)
            .unwrap_or(defaults.max_handshakes),
        max_message: cli
            .max_message
            .or(t.max_message.map(|s| s.0))
            .unwrap_or(defaults.max_message),
        idle_timeout: match secs(cli.idle_timeout, t.idle_timeout, "idle_timeout")? {
            Some(d) => optional(d),
            None => defaults.idle_timeout,
        },
        keepalive: match secs(cli.keepalive, t.keepalive, "keepalive")? {
            Some(d) => optional(d),
            None => defaults.keepalive,
        },
    };
    limits.check().map_err(|e| {
        let flag_given = match e.field {
            "handshake_timeout" => cli.handshake_timeout.is_some(),
            "max_connections" => cli.max_connections.is_some(),
            "max_handshakes" => cli.max_handshakes.is_some(),
            "max_message" => cli.max_message.is_some(),
            _ => false,
        };
        if flag_given || at.file.is_none() {
            CliError::usage(format!("--{}: {}", e.field.replace('_', "-"), e.reason))
        } else {
            bad(at, e.field, &e.reason)
        }
    })?;

    let cipher = match (cli.cipher, &t.cipher) {
        (Some(CipherArg::Auto), _) => CipherChoice::Auto,
        (Some(CipherArg::ChaCha20Poly1305), _) => CipherChoice::ChaCha20Poly1305,
        (Some(CipherArg::Aes256Gcm), _) => CipherChoice::Aes256Gcm,
        (None, Some(name)) => name.parse().map_err(|e: String| bad(at, "cipher", &e))?,
        (None, None) => CipherChoice::Auto,
    };
    let mut allow_clients = t.allow_client.clone().unwrap_or_default();
    if !cli.allow_client.is_empty() {
        allow_clients = cli.allow_client.clone();
    }
    let access = ClientAccess {
        allow_clients,
        allow_anonymous: cli.allow_anonymous || t.allow_anonymous.unwrap_or(false),
        clock_skew: secs(cli.clock_skew, t.clock_skew, "clock_skew")?
            .unwrap_or(sc_pki::DEFAULT_CLOCK_SKEW),
    };
    let trusted = if cli.accept_proxy_protocol.is_empty() {
        t.accept_proxy_protocol
            .iter()
            .flatten()
            .map(|c| {
                c.parse::<Cidr>()
                    .map_err(|e| bad(at, "accept_proxy_protocol", &e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        cli.accept_proxy_protocol.clone()
    };
    if !trusted.is_empty() && matches!(listen, Endpoint::Unix(_)) {
        let why = "a Unix socket's peer has no address, so no source can be trusted";
        let err = if !cli.accept_proxy_protocol.is_empty() || at.file.is_none() {
            CliError::usage(format!("--accept-proxy-protocol on {listen}: {why}"))
        } else {
            bad(at, "accept_proxy_protocol", why)
        };
        return Err(err.hint("let the balancer connect to a TCP listener (--listen HOST:PORT)"));
    }
    let send = cli.send_proxy_protocol || t.send_proxy_protocol.unwrap_or(false);
    if send && mode == Mode::Echo {
        let err = if cli.send_proxy_protocol || at.file.is_none() {
            CliError::usage("--send-proxy-protocol needs --forward: the header goes to the backend")
        } else {
            bad(
                at,
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
        }),
        limits,
        proxy_protocol: ProxyProtocol { trusted, send },
    })
}

/// Seconds as a config value: a non-negative number.
fn secs_value(v: f64) -> Result<Duration, String> {
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(format!(
            "{v} is not a number of seconds from 0 to 1000000000"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `--…-timeout SECS`: a non-negative number of seconds (`30`, `0.5`, `30s`).
pub(crate) fn parse_secs(s: &str) -> Result<Duration, String> {
    let number = s.trim().strip_suffix('s').unwrap_or(s.trim());
    let v: f64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    secs_value(v)
}

/// `--max-message BYTES`: `1048576`, `64KiB`, `1MiB` (also `64K`, `1M`).
pub(crate) use sc_relay::config_file::parse_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }
}
