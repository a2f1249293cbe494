//! Listening sockets a service manager passed to the process (systemd's
//! socket activation, `LISTEN_FDS`), handed to [`Endpoint::bind`] and
//! [`Endpoint::bind_as`] in place of binding.
//!
//! The binary reads the environment once (`sc-host`) and gives the sockets
//! to [`inherit`]; from then on every bind of the process takes its socket
//! from them, and binds nothing itself:
//!
//! * a socket named `status` ([`STATUS_NAME`], systemd's
//!   `FileDescriptorName=status`) is the status listener's
//!   ([`Endpoint::bind_as`]`("status")`);
//! * every other socket goes to the listener whose configured address it is
//!   bound to: the same IP address and port (a host name is resolved), or
//!   the same Unix socket path. systemd's names cannot hold a `:`, so an
//!   address cannot be a name: the socket's own address says which listener
//!   it is for, and any other name (systemd's default, the socket unit's
//!   name) is fine;
//! * a listener without a socket, and (at [`leftover`]) a socket without a
//!   listener, are errors that name both sides.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crate::{Endpoint, Listener};

/// The name (`FileDescriptorName=`) of the status listener's socket.
pub const STATUS_NAME: &str = "status";

/// One socket the service manager passed.
#[derive(Debug)]
pub struct Inherited {
    /// Its name (`LISTEN_FDNAMES`; `unknown` without names).
    pub name: String,
    /// The file descriptor's number, for messages.
    pub fd: i32,
    /// The socket.
    pub socket: InheritedSocket,
}

/// A passed listening socket, as the standard library holds it.
#[derive(Debug)]
pub enum InheritedSocket {
    /// A TCP socket (IPv4 or IPv6).
    Tcp(std::net::TcpListener),
    /// A Unix stream socket.
    Unix(std::os::unix::net::UnixListener),
}

impl Inherited {
    /// Where the socket is bound, for messages and matching.
    fn address(&self) -> Option<Bound> {
        match &self.socket {
            InheritedSocket::Tcp(l) => l.local_addr().ok().map(Bound::Tcp),
            InheritedSocket::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| Bound::Unix(p.to_path_buf()))),
        }
    }

    /// `fd 3 (name web, 127.0.0.1:7000)`.
    fn describe(&self) -> String {
        let at = match self.address() {
            Some(Bound::Tcp(a)) => a.to_string(),
            Some(Bound::Unix(p)) => format!("unix:{}", p.display()),
            None => "an unnamed socket".to_owned(),
        };
        format!("fd {} (name {}, {at})", self.fd, self.name)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Bound {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug)]
struct Registry {
    sockets: Vec<Option<Inherited>>,
}

fn registry() -> &'static OnceLock<Mutex<Registry>> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    &REGISTRY
}

/// Hands the passed sockets to every later bind of this process (once; a
/// second call is ignored and returns `false`). From then on a bind takes
/// its socket from them and never binds by itself, even when `sockets` is
/// empty (`LISTEN_FDS=0`).
pub fn inherit(sockets: Vec<Inherited>) -> bool {
    registry()
        .set(Mutex::new(Registry {
            sockets: sockets.into_iter().map(Some).collect(),
        }))
        .is_ok()
}

/// Whether the process was given sockets ([`inherit`]).
pub fn active() -> bool {
    registry().get().is_some()
}

/// The passed sockets that no bind took, described (`fd 4 (name x,
/// 127.0.0.1:7001)`): each is a socket the service manager listens on for
/// no listener of ours.
pub fn leftover() -> Vec<String> {
    let Some(reg) = registry().get() else {
        return Vec::new();
    };
    let reg = reg.lock().unwrap_or_else(|e| e.into_inner());
    reg.sockets
        .iter()
        .flatten()
        .map(Inherited::describe)
        .collect()
}

/// The error of a listener that has no passed socket.
fn missing(what: &str, reg: &Registry) -> io::Error {
    let passed: Vec<String> = reg
        .sockets
        .iter()
        .flatten()
        .map(Inherited::describe)
        .collect();
    let passed = if passed.is_empty() {
        "none left".to_owned()
    } else {
        passed.join(", ")
    };
    io::Error::other(format!(
        "socket activation (LISTEN_FDS) passed no socket {what} (passed and not taken: {passed})"
    ))
}

fn to_listener(socket: InheritedSocket, fallback: &Endpoint) -> io::Result<Listener> {
    match socket {
        InheritedSocket::Tcp(l) => {
            l.set_nonblocking(true)?;
            Ok(Listener::Tcp(tokio::net::TcpListener::from_std(l)?))
        }
        InheritedSocket::Unix(l) => {
            l.set_nonblocking(true)?;
            let path = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
                .or_else(|| match fallback {
                    Endpoint::Unix(p) => Some(p.clone()),
                    Endpoint::Tcp(_) => None,
                })
                .unwrap_or_default();
            Ok(Listener::UnixInherited(
                tokio::net::UnixListener::from_std(l)?,
                path,
            ))
        }
    }
}

/// For [`Endpoint::bind`]: `None` when no sockets were passed (bind as
/// usual), else the passed socket bound to `endpoint`'s address, or the
/// error that there is none.
pub(crate) async fn take_for(endpoint: &Endpoint) -> Option<io::Result<Listener>> {
    let reg = registry().get()?;
    let wanted: HashSet<Bound> = match endpoint {
        Endpoint::Tcp(a) => match tokio::net::lookup_host(a.as_str()).await {
            Ok(addrs) => addrs.map(Bound::Tcp).collect(),
            Err(e) => return Some(Err(e)),
        },
        Endpoint::Unix(p) => [Bound::Unix(p.clone())].into_iter().collect(),
    };
    let mut reg = reg.lock().unwrap_or_else(|e| e.into_inner());
    let found = reg.sockets.iter_mut().find(|s| {
        s.as_ref().is_some_and(|s| {
            s.name != STATUS_NAME && s.address().is_some_and(|a| wanted.contains(&a))
        })
    });
    match found.and_then(Option::take) {
        Some(s) => Some(to_listener(s.socket, endpoint)),
        None => Some(Err(missing(&format!("bound to {endpoint}"), &reg))),
    }
}

/// For [`Endpoint::bind_as`]: `None` when no sockets were passed, else the
/// passed socket named `name`, or the error that there is none.
pub(crate) fn take_named(name: &str, endpoint: &Endpoint) -> Option<io::Result<Listener>> {
    let reg = registry().get()?;
    let mut reg = reg.lock().unwrap_or_else(|e| e.into_inner());
    let found = reg
        .sockets
        .iter_mut()
        .find(|s| s.as_ref().is_some_and(|s| s.name == name));
    match found.and_then(Option::take) {
        Some(s) => Some(to_listener(s.socket, endpoint)),
        None => Some(Err(missing(&format!("named {name}"), &reg))),
    }
}
