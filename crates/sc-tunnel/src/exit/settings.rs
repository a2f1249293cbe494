//! What a listener is told to do: where to listen, what to do with each
//! session, which credentials to use, and its operating limits.

use core::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sc_handshake::ServerConfig;
use sc_net::Endpoint;
use sc_pki::{ClientPolicy, PkiError};
use sc_wire::streams::ServiceName;

use super::proxy::ProxyProtocol;

/// Sessions a listener holds at once, handshaking or established (1,000; a
/// connection waiting for its ClientHello holds a task and a 2 KiB buffer,
/// 12.6 KiB of memory measured, and the per-source caps keep one host from
/// taking them all).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Handshakes a listener runs at once (50).
pub const DEFAULT_MAX_HANDSHAKES: usize = 50;
/// Default connections one source address may hold at once, per listener.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 32;
/// Default handshakes one source address may run at once, per listener.
pub const DEFAULT_MAX_HANDSHAKES_PER_SOURCE: usize = 8;
/// Default share of the connection limit anonymous sessions may hold: a
/// quarter (250 of the default 1,000), so anonymous clients cannot take the
/// slots certified ones need.
pub const DEFAULT_ANONYMOUS_SHARE: usize = 4;
/// Default wait for a complete ClientHello (5 s), within the handshake
/// timeout: a connection that sends nothing gives its slot back soon.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has, from its TCP connection, to complete the handshake
/// (30 s), waiting for a handshake slot included.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = sc_session::DEFAULT_HANDSHAKE_TIMEOUT;
/// Largest message a session sends or reassembles (1 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = sc_session::DEFAULT_MAX_MESSAGE_LEN;
/// A session from which nothing has come for this long is ended (300 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// An echo session that has sent nothing for this long sends a KeepAlive
/// record (60 s).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(60);
/// On shutdown, sessions get this long to finish before they are closed (30 s).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Time a tunnel exit gives its backend to accept a connection (10 s).
pub const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// When a listener answers a ClientHello with a cookie retry (SPEC §4.5)
/// instead of doing the handshake's expensive work at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CookieMode {
    /// When half of the listener's handshake slots are taken (the default):
    /// one more round trip for clients only under load.
    #[default]
    Auto,
    /// For every ClientHello.
    Always,
    /// Never: under load, clients wait for a handshake slot.
    Off,
}

impl fmt::Display for CookieMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Always => "always",
            Self::Off => "off",
        })
    }
}

impl core::str::FromStr for CookieMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "'{other}' is not a cookie mode: use auto, always or off"
            )),
        }
    }
}

/// What a listener does with each established session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answers every message `m` with `echo: m` (the seed's demo server).
    Echo,
    /// Tunnel exit: opens a connection to this backend for every session and
    /// moves the bytes both ways (half-close carried through).
    Forward(Endpoint),
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Echo => f.write_str("echo"),
            Self::Forward(to) => write!(f, "forward to {to}"),
        }
    }
}

/// Which AEAD the server accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CipherChoice {
    /// Both, hardware-aware preference (AES-256-GCM first where the CPU has
    /// AES instructions; a client that prefers ChaCha20-Poly1305 gets it).
    #[default]
    Auto,
    /// ChaCha20-Poly1305 only.
    ChaCha20Poly1305,
    /// AES-256-GCM only.
    Aes256Gcm,
}

impl CipherChoice {
    /// The names [`FromStr`](core::str::FromStr) takes.
    pub const NAMES: [&'static str; 3] = ["auto", "chacha20-poly1305", "aes-256-gcm"];
}

impl core::str::FromStr for CipherChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "chacha20-poly1305" => Ok(Self::ChaCha20Poly1305),
            "aes-256-gcm" => Ok(Self::Aes256Gcm),
            _ => Err(format!(
                "unknown cipher '{s}' (use {})",
                Self::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for CipherChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            Self::Aes256Gcm => "aes-256-gcm",
        })
    }
}

/// The files a listener's credentials are read from, again on every reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialFiles {
    /// The server's certificate chain (PEM: the leaf, then intermediates).
    pub cert: PathBuf,
    /// Its Ed25519 key (PKCS#8 PEM, plain or encrypted).
    pub key: PathBuf,
    /// A file whose first line is the key's passphrase (for an encrypted key).
    pub key_passphrase_file: Option<PathBuf>,
    /// The CA certificates client chains must lead to (PEM).
    pub ca: PathBuf,
    /// CRLs to check clients against (PEM `X509 CRL` blocks).
    pub crl: Option<PathBuf>,
}

/// Why a listener's allow-list and its anonymous switch do not go together
/// ([`ClientAccess::check`]).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// An allow-list entry does not parse.
    #[error("invalid allow-list entry '{entry}': {reason}")]
    AllowEntry {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Anonymous clients are allowed next to an allow-list that does not
    /// name them: the list does not apply to them, so every one would get in.
    #[error("allowing anonymous clients next to an allow-list admits every anonymous client: add 'anonymous' to the allow-list to mean it, or do not allow them")]
    AnonymousNotListed,
    /// The allow-list names `anonymous` but anonymous clients are not allowed.
    #[error("the allow-list names anonymous clients, but anonymous clients are not allowed: allow them, or remove 'anonymous' from the list")]
    AnonymousNotAllowed,
}

/// Which clients a listener admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAccess {
    /// Allow-list entries ([`sc_pki::AllowEntry`]: `dns:NAME`, `uri:URI`,
    /// `ip:ADDRESS`, `cn:NAME`, each optionally `@ANCHOR`, the subject CN
    /// of a CA certificate of the bundle; `anonymous`; or an untyped `NAME`,
    /// accepted with a warning); empty admits every client with a valid
    /// chain.
    pub allow_clients: Vec<String>,
    /// Admit anonymous clients (authenticated only as their fresh key).
    /// With an allow-list, only if the list says `anonymous` too
    /// ([`ClientAccess::check`]).
    pub allow_anonymous: bool,
    /// How far certificate validity times may be off our clock.
    pub clock_skew: Duration,
}

impl Default for ClientAccess {
    fn default() -> Self {
        Self {
            allow_clients: Vec::new(),
            allow_anonymous: false,
            clock_skew: sc_pki::DEFAULT_CLOCK_SKEW,
        }
    }
}

impl ClientAccess {
    /// The allow-list as a [`ClientPolicy`].
    pub fn policy(&self) -> ClientPolicy {
        ClientPolicy {
            allow_names: self.allow_clients.clone(),
            allow_pins: Vec::new(),
        }
    }

    /// Checks what needs no file: every entry parses; anonymous clients
    /// allowed next to an allow-list are named in it (`anonymous`), since
    /// the list does not apply to them; and a list that names them goes
    /// with `allow_anonymous`. Whether each `@ANCHOR` names a CA of the
    /// bundle is checked when the bundle is read.
    pub fn check(&self) -> Result<(), AccessError> {
        let policy = self.policy();
        policy.entries().map_err(|e| match e {
            PkiError::InvalidName { name, reason } => AccessError::AllowEntry {
                entry: name,
                reason: reason.to_owned(),
            },
            other => AccessError::AllowEntry {
                entry: String::new(),
                reason: other.to_string(),
            },
        })?;
        match (self.allow_anonymous, policy.names_anonymous()) {
            (true, false) if !self.allow_clients.is_empty() => Err(AccessError::AnonymousNotListed),
            (false, true) => Err(AccessError::AnonymousNotAllowed),
            _ => Ok(()),
        }
    }
}

/// Credentials read from files, rebuilt on every reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileCredentials {
    /// Where the certificate, key, CA bundle and CRL are.
    pub files: CredentialFiles,
    /// Which clients are admitted.
    pub access: ClientAccess,
    /// Which AEAD is accepted.
    pub cipher: CipherChoice,
    /// The oldest protocol version accepted (SPEC §16.1): with
    /// [`ProtocolVersion::V2`](sc_wire::ProtocolVersion::V2), a client that
    /// does not offer version 2 is refused with `protocol version`.
    pub min_version: sc_wire::ProtocolVersion,
    /// The newest protocol version answered (SPEC §16.1): with
    /// [`ProtocolVersion::V1`](sc_wire::ProtocolVersion::V1), a client's
    /// offer of version 2 is ignored and the session runs version 1.
    pub max_version: sc_wire::ProtocolVersion,
}

/// Where a listener's [`ServerConfig`] comes from.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// Read from files at start and again on every reload.
    Files(FileCredentials),
    /// Built by the caller (in-process use: the demo, tests); a reload keeps
    /// it.
    Fixed(Arc<ServerConfig>),
}

/// A listener's operating limits. Every limit is per listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From the TCP connection to the completed handshake, waiting for a
    /// handshake slot included; a client that takes longer gets the timeout
    /// alert and is disconnected.
    pub handshake_timeout: Duration,
    /// Connections held at once (handshaking or established). One more is
    /// refused at once with the plaintext `going away` alert.
    pub max_connections: usize,
    /// Handshakes run at once. A connection beyond it waits for a slot
    /// within its handshake timeout.
    pub max_handshakes: usize,
    /// Largest message sent or reassembled. An echo answer is 6 bytes longer
    /// than the message.
    pub max_message: usize,
    /// End a session when nothing has come from the client (echo: no
    /// message and no keepalive; tunnel: no byte either way) for this long.
    pub idle_timeout: Option<Duration>,
    /// An echo session that has sent nothing for this long sends a KeepAlive
    /// record (keeps NAT and firewall state, finds dead peers).
    pub keepalive: Option<Duration>,
    /// In a session of streams: streams a client may hold open at once; one
    /// more is refused (reset with the reason).
    pub max_streams: usize,
    /// Re-key a session this often (SPEC §15), if the client offers it;
    /// `None`: not by time (the volume limits still apply).
    pub rekey_interval: Option<Duration>,
    /// From the TCP connection (or its PROXY header) to a complete
    /// ClientHello; within the handshake timeout. A connection that takes
    /// longer gets the timeout alert.
    pub hello_timeout: Duration,
    /// Connections one source address (the PROXY v2 source from a trusted
    /// balancer, else the TCP peer) may hold at once; one more is refused
    /// with `going away`.
    pub max_connections_per_source: usize,
    /// Handshakes one source address may run at once; one more is refused
    /// with `going away` at once (it does not wait for a slot).
    pub max_handshakes_per_source: usize,
    /// Established anonymous sessions held at once (with
    /// [`ClientAccess::allow_anonymous`]); an anonymous session that
    /// completes its handshake while they are all taken is closed at once
    /// with the sealed `going away` alert. Certified clients are not
    /// counted. `None`: a quarter of `max_connections`, at least 1
    /// ([`Limits::anonymous_quota`]).
    pub max_anonymous_sessions: Option<usize>,
    /// When a ClientHello is answered with a cookie retry (SPEC §4.5).
    pub cookies: CookieMode,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_message: DEFAULT_MAX_MESSAGE,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            keepalive: Some(DEFAULT_KEEPALIVE),
            max_streams: sc_session::streams::DEFAULT_MAX_STREAMS,
            rekey_interval: Some(sc_session::rekey::DEFAULT_REKEY_INTERVAL),
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            max_handshakes_per_source: DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
            max_anonymous_sessions: None,
            cookies: CookieMode::Auto,
        }
    }
}

/// The largest `max_message` accepted (64 MiB): every session may have to
/// reassemble one.
pub const MAX_MESSAGE_LIMIT: usize = 64 * 1024 * 1024;

impl Limits {
    /// Established anonymous sessions held at once: `max_anonymous_sessions`,
    /// else a quarter of `max_connections` (at least 1).
    pub fn anonymous_quota(&self) -> usize {
        self.max_anonymous_sessions
            .unwrap_or((self.max_connections / DEFAULT_ANONYMOUS_SHARE).max(1))
    }

    /// Checks the limits are usable: the first one that is not, by its name
    /// (`max_connections`, …), and why.
    pub fn check(&self) -> Result<(), LimitError> {
        let err = |field, reason: &str| {
            Err(LimitError {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.handshake_timeout.is_zero() {
            return err(
                "handshake_timeout",
                "the handshake timeout must be more than 0 seconds",
            );
        }
        if self.max_connections == 0 {
            return err("max_connections", "the connection limit must be at least 1");
        }
        if self.max_handshakes == 0 {
            return err("max_handshakes", "the handshake limit must be at least 1");
        }
        if self.hello_timeout.is_zero() {
            return err(
                "hello_timeout",
                "the ClientHello timeout must be more than 0 seconds",
            );
        }
        if self.max_connections_per_source == 0 {
            return err(
                "max_connections_per_source",
                "the per-source connection limit must be at least 1",
            );
        }
        if self.max_handshakes_per_source == 0 {
            return err(
                "max_handshakes_per_source",
                "the per-source handshake limit must be at least 1",
            );
        }
        match self.max_anonymous_sessions {
            Some(0) => {
                return err(
                    "max_anonymous_sessions",
                    "the anonymous-session quota must be at least 1 (to admit no anonymous client, do not allow them)",
                )
            }
            Some(n) if n > self.max_connections => {
                return err(
                    "max_anonymous_sessions",
                    &format!(
                        "the anonymous-session quota ({n}) cannot be more than the connection limit ({})",
                        self.max_connections
                    ),
                )
            }
            _ => {}
        }
        if self.max_streams == 0 {
            return err("max_streams", "the stream limit must be at least 1");
        }
        if self.max_message == 0 || self.max_message > MAX_MESSAGE_LIMIT {
            return err(
                "max_message",
                "the maximum message must be from 1 byte to 64 MiB",
            );
        }
        Ok(())
    }
}

/// A limit out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct LimitError {
    /// The [`Limits`] field (`max_connections`, …): the config key, and the
    /// flag with `-` for `_`.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// A named service of a tunnel exit (SPEC §14): a stream that asks for it
/// goes to its backend, if the client may use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The name streams ask for.
    pub name: ServiceName,
    /// Where its streams go.
    pub backend: Endpoint,
    /// Client names that may use it (as `allow_clients` of the listener,
    /// and within those, but without `@ANCHOR` or `anonymous`: an anchor
    /// is checked only when the listener admits a client); empty: every
    /// client the listener admits.
    pub allow_clients: Vec<String>,
}

/// Everything one listener needs.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// Where to listen.
    pub listen: Endpoint,
    /// What to do with each session.
    pub mode: Mode,
    /// Where the credentials come from.
    pub credentials: Credentials,
    /// Its limits.
    pub limits: Limits,
    /// PROXY protocol v2: which sources may say where a client comes from,
    /// and whether a tunnel exit tells its backend (default: neither).
    pub proxy_protocol: ProxyProtocol,
    /// Named services, for sessions of streams (SPEC §14): a stream that
    /// names one goes to its backend; a stream that names none goes where
    /// the mode says (echo, or the `Forward` backend).
    pub services: Vec<Service>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anonymous_quota_is_a_quarter_by_default_and_from_1_to_the_connection_limit() {
        let limits = |max_connections, max_anonymous_sessions| Limits {
            max_connections,
            max_anonymous_sessions,
            ..Limits::default()
        };
        assert_eq!(Limits::default().anonymous_quota(), 250);
        assert_eq!(limits(100, None).anonymous_quota(), 25);
        assert_eq!(limits(3, None).anonymous_quota(), 1, "at least 1");
        assert_eq!(limits(1000, Some(7)).anonymous_quota(), 7);
        for ok in [limits(1, None), limits(10, Some(1)), limits(10, Some(10))] {
            assert_eq!(ok.check(), Ok(()), "{ok:?}");
        }
        assert_eq!(
            limits(10, Some(0)).check(),
            Err(LimitError {
                field: "max_anonymous_sessions",
                reason: "the anonymous-session quota must be at least 1 \
                         (to admit no anonymous client, do not allow them)"
                    .into(),
            })
        );
        assert_eq!(
            limits(10, Some(11)).check(),
            Err(LimitError {
                field: "max_anonymous_sessions",
                reason: "the anonymous-session quota (11) cannot be more than the connection \
                         limit (10)"
                    .into(),
            })
        );
    }

    fn access(names: &[&str], allow_anonymous: bool) -> ClientAccess {
        ClientAccess {
            allow_clients: names.iter().map(|n| n.to_string()).collect(),
            allow_anonymous,
            ..ClientAccess::default()
        }
    }

    #[test]
    fn anonymous_clients_next_to_an_allow_list_must_be_named_in_it() {
        assert!(matches!(
            access(&["dns:app-1"], true).check(),
            Err(AccessError::AnonymousNotListed)
        ));
        assert!(matches!(
            access(&["dns:app-1", "anonymous"], false).check(),
            Err(AccessError::AnonymousNotAllowed)
        ));
        for ok in [
            access(&[], true),
            access(&[], false),
            access(&["dns:app-1"], false),
            access(&["app-1", "anonymous"], true),
            access(&["anonymous"], true),
        ] {
            assert!(ok.check().is_ok(), "{ok:?}");
        }
        match access(&["dns:app-1", "ip:nope"], false).check() {
            Err(AccessError::AllowEntry { entry, reason }) => {
                assert_eq!(entry, "ip:nope");
                assert_eq!(reason, "not an IP address after 'ip:'");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            AccessError::AnonymousNotListed.to_string(),
            "allowing anonymous clients next to an allow-list admits every anonymous client: \
             add 'anonymous' to the allow-list to mean it, or do not allow them"
        );
    }
}
