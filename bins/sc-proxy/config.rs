//! The TOML config file: the flags' names with `_` for `-`, at the top level
//! (defaults for every listener) and in `[[listener]]` tables; routes in a
//! `routes` table of `"NAME" = ["HOST:PORT", ...]`. Unknown keys are errors
//! that name the key and the line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sovereign_chain::cli::config;
use sovereign_chain::cli::units::Seconds;
use sovereign_chain::cli::CliError;

/// Backends: `["HOST:PORT", ...]`, or one string `"HOST:PORT,HOST:PORT"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Backends {
    One(String),
    Many(Vec<String>),
}

impl Backends {
    /// Every address, a comma-separated string split.
    pub(crate) fn addresses(&self) -> Vec<String> {
        match self {
            Self::One(s) => s.split(',').map(|a| a.trim().to_owned()).collect(),
            Self::Many(v) => v.iter().map(|a| a.trim().to_owned()).collect(),
        }
    }
}

sovereign_chain::config_file! {
    tables: listener,
    process {
        health_interval: Seconds,
        #[serde(alias = "grace")]
        shutdown_grace: Seconds,
        log_format: String,
        verbose: u8,
        status: String,
    }
    table {
        listen: String,
        routes: BTreeMap<String, Backends>,
        default: Backends,
        fallback: String,
        proxy_protocol: String,
        max_connections: usize,
        max_connections_per_source: usize,
        hello_timeout: Seconds,
        peek_timeout: Seconds,
        connect_timeout: Seconds,
        answer_timeout: Seconds,
        idle_timeout: Seconds,
    }
}

/// Reads and parses the config file at `path`; a backend that is not a
/// string gets a line saying what it must be.
pub(crate) fn load(path: &Path) -> Result<FileConfig, CliError> {
    config::parse_explained(path, KEYS, "sc-proxy", |message| {
        message
            .starts_with("data did not match any variant")
            .then_some(
                "backends must be \"HOST:PORT\" strings: [\"10.0.0.5:7000\", \"10.0.0.6:7000\"]",
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_two_listeners_parses() {
        let cfg: FileConfig = toml::from_str(
            r#"
health_interval = 2
idle_timeout = 60

[[listener]]
listen = "127.0.0.1:7000"
default = "10.0.0.9:7000"
fallback = "127.0.0.1:25565"
proxy_protocol = "v2"
[listener.routes]
"db.internal" = ["10.0.0.5:7000", "10.0.0.6:7000"]

[[listener]]
listen = "unix:/run/sc-proxy.sock"
routes = { "api.internal" = "10.0.0.7:7000,10.0.0.8:7000" }
"#,
        )
        .expect("parses");
        assert_eq!(cfg.listener.len(), 2);
        let first = cfg.listener[0].over(&cfg.defaults());
        assert_eq!(first.idle_timeout.map(|s| s.0.as_secs()), Some(60));
        let routes = first.routes.expect("routes");
        assert_eq!(routes["db.internal"].addresses().len(), 2);
        let second = cfg.listener[1].over(&cfg.defaults());
        let routes = second.routes.expect("routes");
        assert_eq!(
            routes["api.internal"].addresses(),
            ["10.0.0.7:7000", "10.0.0.8:7000"]
        );
        assert_eq!(
            config::closest_key("helth_interval", KEYS),
            Some("health_interval")
        );
        assert_eq!(config::closest_key("route", KEYS), Some("routes"));
        assert!(toml::from_str::<FileConfig>("backends = 1").is_err());
    }
}
