//! The tunnel exit: the server runtime behind `sc-server`, usable in-process
//! (the demo, tests, other Rust programs): listeners that accept
//! Sovereign-Chain sessions and echo them or forward them to a backend,
//! within operating limits. The listener lifecycle (limits, refusal, drain)
//! is `sc-net`'s; this module plugs the handshake and the session into it.
//!
//! ```text
//!  ListenerSettings ──► Server::bind ──► per listener: accept loop
//!                                          │
//!      over max_connections? ── refuse: plaintext `going away` alert
//!                                          │
//!      wait for the whole ClientHello, then for one of max_handshakes slots
//!      (both within the handshake timeout)
//!                                          │
//!      handshake (Acceptor over the credentials in force) ── fails: one log
//!                                          │                 line, rate-limited
//!      session: echo, or forward (own backend connection, splice)
//!                                          │
//!      one `session end` log line: peer, identity, cipher, order, bytes, duration, reason
//! ```
//!
//! Decisions, per listener:
//!
//! * **Connection limit**: a connection beyond `max_connections` is accepted
//!   and refused at once with a plaintext `going away` alert (the client's
//!   handshake fails with "peer sent alert: going away"); the refusal is
//!   logged, rate-limited.
//! * **Handshake limit**: at most `max_handshakes` handshakes run at once; a
//!   connection takes a slot only once its whole ClientHello has come (slow
//!   or silent clients hold none), and beyond the limit waits for one. The handshake timeout counts
//!   from the TCP connection, waiting included: a connection that gets no
//!   slot in time is refused with `going away`, one that does not complete
//!   its handshake in time gets the `timeout` alert.
//! * **Anonymous-session quota**: with anonymous clients allowed, at most
//!   [`Limits::anonymous_quota`] established anonymous sessions at once (a
//!   quarter of `max_connections` by default); an anonymous client whose
//!   handshake completes while they are all taken is closed at once with the
//!   sealed `going away` alert, logged, rate-limited. Certified clients are
//!   not counted; a place comes back when its session ends.
//! * **Idle timeout**: an echo session from which nothing (no message, no
//!   KeepAlive) has come for the idle timeout gets the `timeout` alert; a
//!   tunnel in which no byte moved either way is closed.
//! * **Keepalive**: an echo session that has sent nothing for the keepalive
//!   interval sends a KeepAlive record. Tunnels send none (their idle timeout
//!   counts both directions).
//! * **Backend failures**: the session ends with the `no route` alert and a
//!   log line such as `backend 127.0.0.1:6379 refused the connection`.
//! * **Reload** ([`Server::reload`]): credentials are rebuilt from their
//!   files and swapped in whole ([`sc_pki::CredentialStore`]); sessions keep
//!   what they started with; a reload that fails keeps the old credentials.
//! * **Shutdown** ([`Server::shutdown`]): stop accepting, let sessions finish
//!   within the grace period, then close the rest (echo sessions get the
//!   `going away` alert).
//!
//! An echo server in-process, and a client:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use rand_core::OsRng;
//! use sc_handshake::{ClientConfig, ServerConfig};
//! use sc_pki::{throwaway::ThrowawayPki, ServerName, UnixTime};
//! use sc_tunnel::exit::{Credentials, Limits, ListenerSettings, Mode, ProxyProtocol, Server};
//! use sc_session::Connector;
//! use tokio::io::AsyncWriteExt;
//!
//! let pki = ThrowawayPki::new("db.internal", "app-1", UnixTime::now(), &mut OsRng)?;
//! let server_config = ServerConfig::builder()
//!     .with_client_verifier(Arc::new(pki.client_verifier()?))
//!     .with_credential(pki.server.clone())
//!     .build();
//! // Credentials::Files instead reads (and on reload re-reads) PEM files.
//! let server = Server::bind(vec![ListenerSettings {
//!     listen: "127.0.0.1:0".parse()?,
//!     mode: Mode::Echo,
//!     credentials: Credentials::Fixed(Arc::new(server_config)),
//!     limits: Limits::default(),
//!     proxy_protocol: ProxyProtocol::default(),
//!     services: Vec::new(),
//! }])
//! .await?;
//! let addr = server.local_endpoints().remove(0);
//!
//! let client_config = ClientConfig::builder()
//!     .with_server_verifier(Arc::new(pki.server_verifier()?))
//!     .with_credential(pki.client.clone())
//!     .build();
//! let connector = Connector::new(Arc::new(client_config));
//! let name = ServerName::try_from("db.internal")?;
//! let mut stream = connector.connect(name, None, addr.connect().await?).await?;
//! stream.send_message(b"hello").await?;
//! assert_eq!(stream.recv_message().await?.as_deref(), Some(&b"echo: hello"[..]));
//! stream.shutdown().await?;
//! assert_eq!(stream.recv_message().await?, None);
//!
//! let report = server.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(report.cut, 0);
//! # Ok(()) }
//! ```

mod credentials;
mod proxy;
mod quota;
mod runtime;
mod session;
mod settings;
mod streams;

pub use credentials::CredentialError;
pub use proxy::{ProxyProtocol, PROXY_HEADER_TIMEOUT};
pub use runtime::{Readiness, ReloadOutcome, Server, ShutdownReport, StartError};
pub use sc_net::{Cidr, CidrError};
pub use settings::{
    AccessError, CipherChoice, ClientAccess, CookieMode, CredentialFiles, Credentials,
    FileCredentials, LimitError, Limits, ListenerSettings, Mode, Service, BACKEND_CONNECT_TIMEOUT,
    DEFAULT_ANONYMOUS_SHARE, DEFAULT_GRACE, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HELLO_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
    DEFAULT_MAX_MESSAGE, MAX_MESSAGE_LIMIT,
};
