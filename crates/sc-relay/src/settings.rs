//! What a relay is told: where to listen, which route names go to which
//! backends, where other traffic goes, and its limits.

use std::time::Duration;

use sc_wire::RouteName;

use sc_net::Endpoint;

/// Connections a relay listener holds at once (1,000): each costs a task and
/// two sockets, and copy buffers only while bytes flow.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Connections one client address may hold at once on a relay listener
/// (32): one host cannot take every slot.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 32;
/// Time a client has, from its TCP connection, to send its whole
/// ClientHello record (10 s).
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// With a fallback: time within which a client's first bytes must show a
/// ClientHello; a client silent for this long goes to the fallback (250 ms).
pub const DEFAULT_PEEK_TIMEOUT: Duration = Duration::from_millis(250);
/// Time a backend has to accept a connection (5 s); also the timeout of a
/// health probe (capped at the probe interval).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a backend has, after the ClientHello is forwarded, to send its
/// first byte (30 s: a busy `sc-server` may hold a connection for up to its
/// handshake timeout before it answers).
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// A session in which no byte moved either way for this long is closed (300 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Health probes of every backend this often (5 s).
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// One route: a name from the ClientHello and the backends that serve it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The route name clients send (by default their `--server-name`).
    pub name: RouteName,
    /// The backends, least-connections among the healthy ones.
    pub backends: Vec<Endpoint>,
}

/// A relay listener's operating limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Connections held at once; one more is closed at once (with the
    /// plaintext `going away` alert when the listener has no fallback).
    pub max_connections: usize,
    /// Connections one client address may hold at once; one more is
    /// closed at once, as above.
    pub max_connections_per_source: usize,
    /// From the TCP connection to the whole ClientHello record; then the
    /// client gets the plaintext `timeout` alert.
    pub hello_timeout: Duration,
    /// With a fallback: a client that sent nothing within this time goes to
    /// the fallback.
    pub peek_timeout: Duration,
    /// Time a backend has to accept the connection; then it is marked down
    /// and the session tries the next one.
    pub connect_timeout: Duration,
    /// Time a backend has, once it has the ClientHello, to send a first byte
    /// (`None`: no limit).
    pub answer_timeout: Option<Duration>,
    /// Close a session in which no byte moved either way for this long
    /// (`None`: never).
    pub idle_timeout: Option<Duration>,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            peek_timeout: DEFAULT_PEEK_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            answer_timeout: Some(DEFAULT_ANSWER_TIMEOUT),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// A limit out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct RelayLimitError {
    /// The [`RelayLimits`] field (`max_connections`, …): the config key, and
    /// the flag with `-` for `_`.
    pub field: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

impl RelayLimits {
    /// Checks the limits are usable: the first one that is not.
    pub fn check(&self) -> Result<(), RelayLimitError> {
        let err = |field, reason| Err(RelayLimitError { field, reason });
        if self.max_connections == 0 {
            return err("max_connections", "the connection limit must be at least 1");
        }
        if self.max_connections_per_source == 0 {
            return err(
                "max_connections_per_source",
                "the per-source connection limit must be at least 1",
            );
        }
        if self.hello_timeout.is_zero() {
            return err(
                "hello_timeout",
                "the ClientHello timeout must be more than 0 seconds",
            );
        }
        if self.peek_timeout.is_zero() || self.peek_timeout > self.hello_timeout {
            return err(
                "peek_timeout",
                "the peek timeout must be more than 0 and at most the ClientHello timeout",
            );
        }
        if self.connect_timeout.is_zero() {
            return err(
                "connect_timeout",
                "the connect timeout must be more than 0 seconds",
            );
        }
        Ok(())
    }
}

/// Everything one relay listener needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayListenerSettings {
    /// Where to listen.
    pub listen: Endpoint,
    /// The routes, by name.
    pub routes: Vec<Route>,
    /// Backends for a ClientHello whose name has no route, or that has no
    /// name (empty: such a client gets the `no route` alert).
    pub default: Vec<Endpoint>,
    /// Where a connection goes whose first bytes are not a Sovereign-Chain
    /// ClientHello (port sharing), unchanged.
    pub fallback: Option<Endpoint>,
    /// Send a PROXY protocol v2 header with the client's address to the
    /// route backends (not to the fallback) before the ClientHello.
    pub send_proxy_v2: bool,
    /// Its limits.
    pub limits: RelayLimits,
}

impl RelayListenerSettings {
    /// A listener on `listen` with no routes yet and the default limits.
    pub fn new(listen: Endpoint) -> Self {
        Self {
            listen,
            routes: Vec::new(),
            default: Vec::new(),
            fallback: None,
            send_proxy_v2: false,
            limits: RelayLimits::default(),
        }
    }

    /// Checks that the listener can route something and that every route
    /// is usable: the first problem, in words.
    pub fn check(&self) -> Result<(), String> {
        if self.routes.is_empty() && self.default.is_empty() && self.fallback.is_none() {
            return Err("nothing to relay to: give a route, a default or a fallback".into());
        }
        for (i, r) in self.routes.iter().enumerate() {
            if r.backends.is_empty() {
                return Err(format!("route '{}' has no backend", r.name));
            }
            if self.routes[..i].iter().any(|o| o.name == r.name) {
                return Err(format!("route '{}' is given twice", r.name));
            }
        }
        self.limits.check().map_err(|e| format!("{}: {e}", e.field))
    }
}

/// A whole relay: its listeners and the health checks they share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelaySettings {
    /// The listeners.
    pub listeners: Vec<RelayListenerSettings>,
    /// Probe every backend (a TCP connect) this often; `None`: only passive
    /// checks (a failed connect marks a backend down, and a down backend is
    /// then only tried when every backend of its route is down).
    pub health_interval: Option<Duration>,
}
