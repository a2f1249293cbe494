//! The TOML config file: the flags' names with `_` for `-`, at the top level
//! (for every listener) and in `[[listener]]` tables. Unknown keys are
//! errors that name the key, the line, and the key that was probably meant.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use sc_relay::config_file;
use sc_relay::ops::CliError;

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
            /// This table's keys, and `base`'s where this one has none. The
            /// mode (`echo`/`forward`) is taken as a whole.
            pub(crate) fn over(&self, base: &ListenerTable) -> ListenerTable {
                let mut merged = ListenerTable {
                    $($key: self.$key.clone().or_else(|| base.$key.clone()),)*
                };
                if self.echo.is_some() || self.forward.is_some() {
                    merged.echo = self.echo;
                    merged.forward = self.forward.clone();
                }
                merged
            }
        }

        /// Every key the file may hold.
        const KEYS: &[&str] = &["grace", "log_format", "verbose", "listener", $(stringify!($key),)*];
    };
}

listener_keys! {
    listen: Option<String>,
    echo: Option<bool>,
    forward: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    key_passphrase_file: Option<PathBuf>,
    ca: Option<PathBuf>,
    crl: Option<PathBuf>,
    allow_client: Option<Vec<String>>,
    allow_anonymous: Option<bool>,
    cipher: Option<String>,
    clock_skew: Option<f64>,
    handshake_timeout: Option<f64>,
    max_connections: Option<usize>,
    max_handshakes: Option<usize>,
    max_message: Option<Size>,
    idle_timeout: Option<f64>,
    keepalive: Option<f64>,
    accept_proxy_protocol: Option<Vec<String>>,
    send_proxy_protocol: Option<bool>,
}

/// A byte count: an integer, or a string with a unit (`"64KiB"`, `"1MiB"`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Size(pub(crate) usize);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of bytes, or a string such as \"64KiB\" or \"1MiB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                usize::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size must be a positive number of bytes"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                usize::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("the size is too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                config_file::parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads and parses the config file at `path`.
pub(crate) fn load(path: &Path) -> Result<FileConfig, CliError> {
    let text = config_file::read(path)?;
    toml::from_str(&text)
        .map_err(|e| config_file::describe(path, &text, e.message(), e.span(), KEYS, "sc-server"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_typos() {
        let closest = |k| config_file::closest_key(k, KEYS);
        assert_eq!(closest("max_conections"), Some("max_connections"));
        assert_eq!(closest("max-connections"), Some("max_connections"));
        assert_eq!(closest("certificate_authority"), None);
        let cfg: FileConfig = toml::from_str(
            "cert = \"a.pem\"\nmax_message = \"64KiB\"\n[[listener]]\nlisten = \"127.0.0.1:1\"\nforward = \"127.0.0.1:2\"\n",
        )
        .expect("parses");
        assert_eq!(cfg.max_message.map(|s| s.0), Some(64 * 1024));
        let merged = cfg.listener[0].over(&cfg.defaults());
        assert_eq!(merged.cert.as_deref(), Some(Path::new("a.pem")));
        assert_eq!(merged.forward.as_deref(), Some("127.0.0.1:2"));
    }
}
