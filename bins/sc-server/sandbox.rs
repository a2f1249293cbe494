//! What `sc-server` keeps of the file system once it runs: the directories
//! of its credential files and config file (read, for reloads), those of
//! its Unix listeners and `--status` socket (make and remove the socket),
//! and name resolution.

use sc_host::sandbox::Sandbox;
use sc_net::Endpoint;
use sc_tunnel::exit::Credentials;

use crate::settings::Settings;
use crate::Cli;

/// The sandbox for these settings.
pub(crate) fn for_settings(cli: &Cli, settings: &Settings) -> Sandbox {
    let mut sandbox = Sandbox::new().with_name_resolution();
    if let Some(config) = &cli.config {
        sandbox = sandbox.read_beneath(config);
    }
    for l in &settings.listeners {
        if let Credentials::Files(f) = &l.credentials {
            let files = &f.files;
            sandbox = sandbox.read_beneath(&files.cert).read_beneath(&files.key);
            sandbox = sandbox.read_beneath(&files.ca);
            for extra in [&files.key_passphrase_file, &files.crl]
                .into_iter()
                .flatten()
            {
                sandbox = sandbox.read_beneath(extra);
            }
        }
        if let Endpoint::Unix(path) = &l.listen {
            sandbox = sandbox.sockets_in(path);
        }
    }
    // `--status unix:/path` (sc-status).
    if let Some(Endpoint::Unix(path)) = &settings.status {
        sandbox = sandbox.sockets_in(path);
    }
    if let Some(Endpoint::Unix(path)) = &settings.status {
        sandbox = sandbox.sockets_in(path);
    }
    sandbox
}
