//! Flags and the config file, resolved in one step into [`Settings`]: every
//! listener with every value checked (ripgrep's `LowArgs` → `HiArgs`).
//!
//! Precedence, highest first: a flag; a key of the `[[listener]]` table; a
//! top-level key of the file; the default. `--listen`, `--default`,
//! `--fallback` and `--proxy-protocol` describe one listener, so they need
//! a file with at most one; `--route NAME=…` adds a route to it or replaces
//! the file's route of that name. The limits flags apply to every listener.

use std::time::Duration;

use sc_net::Endpoint;
use sc_relay::{RelayLimits, RelayListenerSettings, RelaySettings, Route};
use sc_wire::RouteName;
use sovereign_chain::cli::config::{self as layering, OneTable, Origin};
use sovereign_chain::cli::units::Seconds;
use sovereign_chain::cli::{CliError, LogFormat};

use crate::config::{self, FileConfig, Table};
use crate::Cli;

/// On SIGTERM or SIGINT, sessions get this long to finish (30 s).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Everything a run needs, checked.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) relay: RelaySettings,
    pub(crate) grace: Duration,
    pub(crate) verbosity: u8,
    pub(crate) log_format: LogFormat,
    /// `--status ADDR` (or `status` in the file).
    pub(crate) status: Option<Endpoint>,
}

/// `--route NAME=HOST:PORT[,HOST:PORT...]`.
#[derive(Clone, Debug)]
pub(crate) struct RouteArg(pub(crate) Route);

/// `HOST:PORT[,HOST:PORT...]`.
#[derive(Clone, Debug)]
pub(crate) struct BackendList(pub(crate) Vec<Endpoint>);

/// Parses a comma-separated list of backend addresses.
fn backends(s: &str) -> Result<Vec<Endpoint>, String> {
    let list: Vec<Endpoint> = s
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| a.parse::<Endpoint>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err("no backend address (use HOST:PORT[,HOST:PORT...])".into());
    }
    Ok(list)
}

pub(crate) fn parse_backends(s: &str) -> Result<BackendList, String> {
    backends(s).map(BackendList)
}

pub(crate) fn parse_route(s: &str) -> Result<RouteArg, String> {
    let Some((name, list)) = s.split_once('=') else {
        return Err(format!(
            "'{s}' is not NAME=HOST:PORT[,HOST:PORT...] (such as db.internal=10.0.0.5:7000,10.0.0.6:7000)"
        ));
    };
    let name = route_name(name)?;
    Ok(RouteArg(Route {
        name,
        backends: backends(list)?,
    }))
}

fn route_name(name: &str) -> Result<RouteName, String> {
    RouteName::new(name.trim()).map_err(|_| {
        format!("invalid route name '{name}' (1-255 printable ASCII characters, no spaces)")
    })
}

/// Resolves the flags and the config file (read now) into settings.
pub(crate) fn resolve(cli: &Cli) -> Result<Settings, CliError> {
    let file = match &cli.config {
        Some(path) => config::load(path)?,
        None => FileConfig::default(),
    };
    let top = cli.config.as_deref().map_or(Origin::Flag, Origin::File);
    let defaults = file.defaults();
    let one_listener_flags = cli.listen.is_some()
        || !cli.routes.is_empty()
        || cli.default.is_some()
        || cli.fallback.is_some()
        || cli.proxy_protocol.is_some();
    let tables = layering::layered(
        cli.config.as_deref(),
        "listener",
        defaults.clone(),
        &file.listener,
        OneTable {
            table_only_key: defaults.listen.is_some().then_some("listen"),
            flags: one_listener_flags
                .then_some("--listen, --route, --default, --fallback and --proxy-protocol"),
        },
        Table::over,
    )?;
    let listeners = tables
        .iter()
        .map(|(table, at)| listener(cli, table, *at))
        .collect::<Result<Vec<_>, _>>()?;
    let health_interval = cli
        .health_interval
        .or(file.health_interval.map(|s| s.0))
        .unwrap_or(sc_relay::DEFAULT_HEALTH_INTERVAL);
    let grace = cli
        .shutdown_grace
        .or(file.shutdown_grace.map(|s| s.0))
        .unwrap_or(DEFAULT_GRACE);
    let verbosity = match (cli.verbose, file.verbose) {
        (0, Some(v)) => v,
        (v, _) => v,
    };
    let log_format = match (&cli.log_format, &file.log_format) {
        (Some(f), _) | (None, Some(f)) => {
            f.parse().map_err(|e: String| top.bad("log_format", &e))?
        }
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
    Ok(Settings {
        status,
        relay: RelaySettings {
            listeners,
            health_interval: (!health_interval.is_zero()).then_some(health_interval),
        },
        grace,
        verbosity,
        log_format,
    })
}

/// One listener: flags over its table (already merged with the file's top
/// level) over the defaults.
fn listener(cli: &Cli, t: &Table, at: Origin<'_>) -> Result<RelayListenerSettings, CliError> {
    let endpoint = |key: &str, s: &str| -> Result<Endpoint, CliError> {
        s.parse::<Endpoint>()
            .map_err(|e| at.bad(key, &e.to_string()))
    };
    let list = |key: &str, b: &config::Backends| -> Result<Vec<Endpoint>, CliError> {
        let addresses = b.addresses();
        if addresses.iter().all(|a| a.is_empty()) {
            return Err(at.bad(key, "no backend address"));
        }
        addresses.iter().map(|a| endpoint(key, a)).collect()
    };
    let listen =
        match (&cli.listen, &t.listen) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => endpoint("listen", s)?,
            (None, None) => return Err(CliError::usage("no address to listen on").hint(
                "give --listen ADDR (such as 0.0.0.0:7000, [::]:7000 or unix:/run/sc-proxy.sock), \
                 or listen = \"ADDR\" in a config file",
            )),
        };
    let mut routes: Vec<Route> = Vec::new();
    for (name, b) in t.routes.iter().flatten() {
        let key = format!("routes.\"{name}\"");
        let name = route_name(name).map_err(|e| at.bad(&key, &e))?;
        let backends = list(&key, b)?;
        routes.push(Route { name, backends });
    }
    let mut from_flags: Vec<&RouteName> = Vec::new();
    for RouteArg(r) in &cli.routes {
        if from_flags.contains(&&r.name) {
            return Err(
                CliError::usage(format!("--route: the route '{}' is given twice", r.name))
                    .hint("give every backend of a route in one --route NAME=HOST:PORT,HOST:PORT"),
            );
        }
        from_flags.push(&r.name);
        routes.retain(|o| o.name != r.name);
        routes.push(r.clone());
    }
    let default = match (&cli.default, &t.default) {
        (Some(BackendList(v)), _) => v.clone(),
        (None, Some(b)) => list("default", b)?,
        (None, None) => Vec::new(),
    };
    let fallback = match (&cli.fallback, &t.fallback) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(s)) => Some(endpoint("fallback", s)?),
        (None, None) => None,
    };
    let send_proxy_v2 = match (&cli.proxy_protocol, &t.proxy_protocol) {
        (Some(_), _) => true,
        (None, Some(v)) if v.eq_ignore_ascii_case("v2") => true,
        (None, Some(v)) if v.eq_ignore_ascii_case("none") => false,
        (None, Some(v)) => {
            return Err(at.bad(
                "proxy_protocol",
                &format!("unknown PROXY protocol version '{v}' (use \"v2\", or \"none\")"),
            ))
        }
        (None, None) => false,
    };

    let secs = |flag: Option<Duration>, key: Option<Seconds>| flag.or(key.map(|s| s.0));
    let optional = |d: Duration| (!d.is_zero()).then_some(d);
    let d = RelayLimits::default();
    let limits = RelayLimits {
        max_connections: cli
            .max_connections
            .or(t.max_connections)
            .unwrap_or(d.max_connections),
        max_connections_per_source: cli
            .max_connections_per_source
            .or(t.max_connections_per_source)
            .unwrap_or(d.max_connections_per_source),
        hello_timeout: secs(cli.hello_timeout, t.hello_timeout).unwrap_or(d.hello_timeout),
        peek_timeout: secs(cli.peek_timeout, t.peek_timeout).unwrap_or(d.peek_timeout),
        connect_timeout: secs(cli.connect_timeout, t.connect_timeout).unwrap_or(d.connect_timeout),
        answer_timeout: match secs(cli.answer_timeout, t.answer_timeout) {
            Some(v) => optional(v),
            None => d.answer_timeout,
        },
        idle_timeout: match secs(cli.idle_timeout, t.idle_timeout) {
            Some(v) => optional(v),
            None => d.idle_timeout,
        },
    };
    let settings = RelayListenerSettings {
        listen,
        routes,
        default,
        fallback,
        send_proxy_v2,
        limits,
    };
    if let Err(e) = settings.limits.check() {
        let flag_given = match e.field {
            "max_connections" => cli.max_connections.is_some(),
            "max_connections_per_source" => cli.max_connections_per_source.is_some(),
            "hello_timeout" => cli.hello_timeout.is_some(),
            "peek_timeout" => cli.peek_timeout.is_some(),
            "connect_timeout" => cli.connect_timeout.is_some(),
            _ => false,
        };
        let origin = if flag_given { Origin::Flag } else { at };
        return Err(origin.bad(e.field, e.reason));
    }
    settings.check().map_err(|e| {
        let err = CliError::usage(format!("listener {}: {e}", settings.listen));
        if e.starts_with("nothing to relay to") {
            err.hint("give --route NAME=HOST:PORT (repeatable), --default HOST:PORT or --fallback HOST:PORT")
        } else {
            err
        }
    })?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_backends_and_seconds_parse() {
        let RouteArg(r) = parse_route("db.internal=10.0.0.5:7000, [::1]:7001").expect("route");
        assert_eq!(r.name.as_str(), "db.internal");
        assert_eq!(r.backends.len(), 2);
        for bad in [
            "db.internal",
            "=10.0.0.5:7000",
            "db internal=10.0.0.5:7000",
            "db=",
            "db=10.0.0.5",
        ] {
            assert!(parse_route(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_backends("unix:/run/a.sock,127.0.0.1:1").map(|b| b.0.len()),
            Ok(2)
        );
    }
}
