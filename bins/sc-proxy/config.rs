//! The TOML config file: the flags' names with `_` for `-`, at the top level
//! (defaults for every listener) and in `[[listener]]` tables; routes in a
//! `routes` table of `"NAME" = ["HOST:PORT", ...]`. Unknown keys are errors
//! that name the key and the line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use sc_relay::config_file;
use sc_relay::ops::CliError;

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

/// Defines the listener keys once: the `[[listener]]` table, the whole file
/// (process-wide keys and the same listener keys as defaults), and the list
/// of key names.
macro_rules! listener_keys {
    ($($key:ident : $ty:ty),* $(,)?) => {
        /// A `[[listener]]` table, or the top level's listener keys.
        #[derive(Clone, Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct ListenerTable {
            $(pub(crate) $key: $ty,)*
        }

        /// The whole file.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct FileConfig {
            pub(crate) health_interval: Option<f64>,
            pub(crate) grace: Option<f64>,
            pub(crate) log_format: Option<String>,
            pub(crate) verbose: Option<u8>,
            #[serde(default)]
            pub(crate) listener: Vec<ListenerTable>,
            $(pub(crate) $key: $ty,)*
        }

        impl FileConfig {
            /// The top level's listener keys: defaults for every listener.
            pub(crate) fn defaults(&self) -> ListenerTable {
                ListenerTable { $($key: self.$key.clone(),)* }
            }
        }

        impl ListenerTable {
            /// This table's keys, and `base`'s where this one has none (a
            /// key is taken as a whole: a table's `routes` replace the top
            /// level's).
            pub(crate) fn over(&self, base: &ListenerTable) -> ListenerTable {
                ListenerTable {
                    $($key: self.$key.clone().or_else(|| base.$key.clone()),)*
                }
            }
        }

        /// Every key the file may hold.
        const KEYS: &[&str] = &[
            "health_interval", "grace", "log_format", "verbose", "listener",
            $(stringify!($key),)*
        ];
    };
}

listener_keys! {
    listen: Option<String>,
    routes: Option<BTreeMap<String, Backends>>,
    default: Option<Backends>,
    fallback: Option<String>,
    proxy_protocol: Option<String>,
    max_connections: Option<usize>,
    hello_timeout: Option<f64>,
    peek_timeout: Option<f64>,
    connect_timeout: Option<f64>,
    answer_timeout: Option<f64>,
    idle_timeout: Option<f64>,
}

/// Reads and parses the config file at `path`.
pub(crate) fn load(path: &Path) -> Result<FileConfig, CliError> {
    let text = config_file::read(path)?;
    toml::from_str(&text).map_err(|e| describe(path, &text, &e))
}

/// One line for a TOML or schema error: where, which key, what is wrong,
/// and a hint for an unknown key or a backend that is not a string.
fn describe(path: &Path, text: &str, e: &toml::de::Error) -> CliError {
    if e.message().starts_with("data did not match any variant") {
        let at = config_file::place(path, text, e.span());
        return CliError::usage(format!(
            "{} ({}): backends must be \"HOST:PORT\" strings: [\"10.0.0.5:7000\", \"10.0.0.6:7000\"]",
            at.at,
            at.key.unwrap_or_default()
        ));
    }
    config_file::describe(path, text, e.message(), e.span(), KEYS, "sc-proxy")
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
        assert_eq!(first.idle_timeout, Some(60.0));
        let routes = first.routes.expect("routes");
        assert_eq!(routes["db.internal"].addresses().len(), 2);
        let second = cfg.listener[1].over(&cfg.defaults());
        let routes = second.routes.expect("routes");
        assert_eq!(
            routes["api.internal"].addresses(),
            ["10.0.0.7:7000", "10.0.0.8:7000"]
        );
        assert_eq!(
            config_file::closest_key("helth_interval", KEYS),
            Some("health_interval")
        );
        assert_eq!(config_file::closest_key("route", KEYS), Some("routes"));
        assert!(toml::from_str::<FileConfig>("backends = 1").is_err());
    }
}
