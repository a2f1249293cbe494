//! The TOML config file (`sovereign_chain::cli::config`'s dialect): the
//! flags' names with `_` for `-`, at the top level (for every listener) and
//! in `[[listener]]` tables. Unknown keys are errors that name the key, the
//! line, and the key that was probably meant.

use std::path::{Path, PathBuf};

use sovereign_chain::cli::config;
use sovereign_chain::cli::units::{Seconds, Size};
use sovereign_chain::cli::CliError;

sovereign_chain::config_file! {
    tables: listener,
    process {
        #[serde(alias = "grace")]
        shutdown_grace: Seconds,
        log_format: String,
        verbose: u8,
        status: String,
    }
    table {
        listen: String,
        echo: bool,
        forward: String,
        cert: PathBuf,
        key: PathBuf,
        key_passphrase_file: PathBuf,
        ca: PathBuf,
        crl: PathBuf,
        allow_client: Vec<String>,
        allow_anonymous: bool,
        cipher: String,
        min_version: u8,
        max_version: u8,
        clock_skew: Seconds,
        handshake_timeout: Seconds,
        max_connections: usize,
        max_handshakes: usize,
        max_connections_per_source: usize,
        max_handshakes_per_source: usize,
        max_anonymous_sessions: usize,
        hello_timeout: Seconds,
        cookies: String,
        max_message: Size,
        idle_timeout: Seconds,
        keepalive: Seconds,
        accept_proxy_protocol: Vec<String>,
        send_proxy_protocol: bool,
        max_streams: usize,
        rekey_interval: Seconds,
        service: Vec<ServiceTable>,
    }
}

/// A `[[service]]` table (or `[[listener.service]]`): a named service.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceTable {
    pub(crate) name: String,
    pub(crate) forward: String,
    pub(crate) allow_client: Option<Vec<String>>,
}

/// Reads and parses the config file at `path`.
pub(crate) fn load(path: &Path) -> Result<FileConfig, CliError> {
    config::parse(path, KEYS, "sc-server")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_typos() {
        let closest = |k| config::closest_key(k, KEYS);
        assert_eq!(closest("max_conections"), Some("max_connections"));
        assert_eq!(closest("max-connections"), Some("max_connections"));
        assert_eq!(closest("certificate_authority"), None);
        let cfg: FileConfig = toml::from_str(
            "cert = \"a.pem\"\nmax_message = \"64KiB\"\ngrace = \"1m\"\n[[listener]]\nlisten = \"127.0.0.1:1\"\nforward = \"127.0.0.1:2\"\n",
        )
        .expect("parses");
        assert_eq!(cfg.max_message.map(|s| s.0), Some(64 * 1024));
        assert_eq!(
            cfg.shutdown_grace.map(|s| s.0),
            Some(std::time::Duration::from_secs(60))
        );
        let merged = cfg.listener[0].over(&cfg.defaults());
        assert_eq!(merged.cert.as_deref(), Some(Path::new("a.pem")));
        assert_eq!(merged.forward.as_deref(), Some("127.0.0.1:2"));
    }
}
