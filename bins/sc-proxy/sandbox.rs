//! What `sc-proxy` keeps of the file system once it runs: it reads its
//! config file only at start and holds no key, so only the directories of
//! its Unix listeners and `--status` socket (make and remove the socket)
//! and name resolution (for backends named by host).

use sc_host::sandbox::Sandbox;
use sc_net::Endpoint;

use crate::settings::Settings;

/// The sandbox for these settings.
pub(crate) fn for_settings(settings: &Settings) -> Sandbox {
    let mut sandbox = Sandbox::new().with_name_resolution();
    for l in &settings.relay.listeners {
        if let Endpoint::Unix(path) = &l.listen {
            sandbox = sandbox.sockets_in(path);
        }
    }
    // `--status unix:/path` (sc-status).
    if let Some(Endpoint::Unix(path)) = &settings.status {
        sandbox = sandbox.sockets_in(path);
    }
    // `--status unix:/path` (sc-status).
    if let Some(Endpoint::Unix(path)) = &settings.status {
        sandbox = sandbox.sockets_in(path);
    }
    sandbox
}
