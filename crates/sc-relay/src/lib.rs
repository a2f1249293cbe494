//! The blind relay behind `sc-proxy`: routes Sovereign-Chain sessions to
//! backends by the route name in the plaintext ClientHello, spreads them
//! over healthy backends, shares its port with other protocols, and never
//! sees a key or a plaintext byte — the 13-step handshake runs end to end
//! between the client and the backend, through it.
//!
//! It cannot hold a key because it cannot compute with one: this crate
//! depends on `sc-wire` (to read the ClientHello and record headers) and
//! `sc-net` (sockets, the listener lifecycle, the byte pump), and on no
//! AEAD, X25519, ML-KEM, Ed25519, HKDF or X.509 crate
//! (`cargo tree -p sc-relay -e normal` shows it; `.ci/run` checks it).
//!
//! ```text
//!  client ──TCP──▶ Relay listener (≤ max_connections)
//!                    │ read the first bytes: at most one plaintext record
//!                    │ (4 + 2,048 bytes) within hello_timeout; decode it
//!                    │ with sc-wire (sc_wire::first::classify)
//!        ┌───────────┼──────────────────────────┬─────────────────────┐
//!   ClientHello   not a ClientHello        garbled / oversized /   nothing within
//!        │        (fallback set)           stalled / no fallback   peek_timeout
//!        │           │                          │                  (fallback set)
//!  route name ─▶ pool (or default;          plaintext alert,        │
//!  none: plaintext `no route` alert)        one rate-limited line   ▼
//!        │           ▼                                          fallback
//!  least connections among healthy backends; connect; send
//!  [PROXY v2 header] + the ClientHello bytes unchanged; a refusal,
//!  or a close or reset before the backend's first byte, marks the
//!  backend down and tries the next (nothing has reached the client yet)
//!        │
//!  raw bytes both ways (half-close carried through; idle timeout;
//!  the backend's first byte within answer_timeout); at debug level the
//!  header of every record that passes is logged
//!        │
//!  one `session end` line: client, route, backend, bytes each way,
//!  duration, how it ended
//! ```
//!
//! Decisions:
//!
//! * **Routing.** The route name is the ClientHello's last field (SPEC
//!   §3.3; `sc-client` sends its `--server-name` unless told `--route`). A
//!   name without a route, or no name, goes to the listener's default
//!   backends; without a default the client gets the plaintext `no route`
//!   alert (`0xc2 00 00 01 14`), which `sc-client` reports as
//!   `no route for NAME`. The relay checks nothing else: the backend
//!   authenticates the client and the client the backend (a relay that
//!   routes to the wrong server makes the client's name check fail).
//! * **Load spreading.** Least connections among the route's healthy
//!   backends; equal loads take turns. A backend named by several routes
//!   (or listeners) is one backend with one count.
//! * **Health.** Active: every `health_interval` a TCP connect to every
//!   backend; a backend that accepts is up, one that refuses or does not
//!   accept within `min(interval, 5 s)` is down. Passive: a session whose
//!   connect fails (refused, not accepted within `connect_timeout`, or the
//!   first write fails), or whose backend closes or resets the connection
//!   before its first byte (a dead server behind an L4 forwarder that still
//!   accepts, and so passes the probes), marks the backend down. A down
//!   backend gets no new sessions until it passes a probe — except when
//!   every backend of the route is down: then the down ones are tried (each
//!   once), and one that takes the session is up again. So a single backend
//!   that blinked is not shunned for a whole interval, and without probes
//!   (`health_interval` `None`) a route recovers at all. A probe cannot
//!   tell a dead server behind a forwarder from a live one, so such a
//!   backend is up again after each probe and then costs a retry (never a
//!   session).
//! * **Retries.** Only while nothing has been forwarded to the client: a
//!   session whose connect fails, or whose backend closes or resets the
//!   connection before its first byte, is retried on the next backend
//!   (least connections among the healthy untried ones) with the same PROXY
//!   header and ClientHello; each backend at most once per session. When
//!   every backend has failed the client gets `no route`. Once the backend
//!   has sent a byte (or a TCP client moved first: sent more, closed or
//!   failed, which the relay sees without reading it) the session is the
//!   backend's; if it dies later, the relay closes both sides (the client
//!   sees the connection cut without an authenticated close).
//! * **Port sharing.** With a fallback, a connection is Sovereign-Chain's
//!   as soon as its first 5 bytes are a plaintext handshake record header
//!   and the ClientHello type, and foreign as soon as a byte contradicts
//!   that (HTTP, TLS, Minecraft: at the first byte). A foreign connection
//!   goes to the fallback unchanged, the bytes already read first. A
//!   client that sends **nothing** within `peek_timeout` (250 ms) also
//!   goes to the fallback, so server-speaks-first protocols (SMTP, MySQL)
//!   share the port too; a Sovereign-Chain client always sends its
//!   ClientHello at once. A client that sent part of a ClientHello gets the
//!   whole `hello_timeout`. The fallback gets no PROXY header.
//! * **Bad input.** A record that is not a ClientHello (without a
//!   fallback), an oversized or garbled ClientHello, a client that stalls
//!   (the `timeout` alert after `hello_timeout`): the plaintext alert
//!   naming the problem, then the connection is closed; one rate-limited
//!   warning names the reason. Reading costs at most 2,052 bytes per
//!   connection. A backend that accepts and then says nothing is cut after
//!   `answer_timeout`; a session in which nothing moves after
//!   `idle_timeout`. A connection over `max_connections` is closed at once
//!   (with the `going away` alert when there is no fallback).
//! * **Data path.** Bytes are copied as they come, through copy buffers of
//!   256 KiB that exist only while data flows (an idle session holds
//!   none). The record trace (debug level, `sc-proxy -v`) parses headers
//!   passively and is off the data path otherwise; it never fails a session.
//!
//! A relay in front of a server (here `sc-session`'s `Acceptor`), and a
//! client that names its route:
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
//! use sc_relay::{Relay, RelayListenerSettings, RelaySettings, Route};
//! use sc_session::{Acceptor, Connector};
//! use sc_wire::RouteName;
//! use tokio::io::AsyncWriteExt;
//!
//! let pki = ThrowawayPki::new("db.internal", "app-1", UnixTime::now(), &mut OsRng)?;
//! let acceptor = Acceptor::new(Arc::new(
//!     ServerConfig::builder()
//!         .with_client_verifier(Arc::new(pki.client_verifier()?))
//!         .with_credential(pki.server.clone())
//!         .build(),
//! ));
//! let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let backend_addr = backend.local_addr()?.to_string().parse()?;
//! let server = tokio::spawn(async move {
//!     let (tcp, _) = backend.accept().await?;
//!     let mut session = acceptor.accept(tcp).await?;
//!     // The route the client asked the relay for reached the server too.
//!     assert_eq!(session.info().route().map(|r| r.as_str()), Some("db.internal"));
//!     let msg = session.recv_message().await?.unwrap_or_default();
//!     session.send_message(&msg).await?;
//!     session.shutdown().await?;
//!     Ok::<(), sc_session::Error>(())
//! });
//!
//! let mut listener = RelayListenerSettings::new("127.0.0.1:0".parse()?);
//! listener.routes.push(Route {
//!     name: RouteName::new("db.internal")?,
//!     backends: vec![backend_addr],
//! });
//! let relay = Relay::bind(RelaySettings {
//!     listeners: vec![listener],
//!     health_interval: None,
//! })
//! .await?;
//! let relay_addr = relay.local_endpoints().remove(0);
//!
//! let connector = Connector::new(Arc::new(
//!     ClientConfig::builder()
//!         .with_server_verifier(Arc::new(pki.server_verifier()?))
//!         .with_credential(pki.client.clone())
//!         .build(),
//! ));
//! let mut stream = connector
//!     .connect(
//!         ServerName::try_from("db.internal")?,
//!         Some(RouteName::new("db.internal")?),
//!         relay_addr.connect().await?,
//!     )
//!     .await?;
//! stream.send_message(b"hello").await?;
//! assert_eq!(stream.recv_message().await?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(stream.recv_message().await?, None);
//! stream.shutdown().await?;
//! server.await??;
//!
//! relay.shutdown(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod pool;
mod runtime;
mod settings;
mod trace;

pub use runtime::{BackendStatus, Relay, RelayHealth, RelayStartError, RouteHealth, DEFAULT_ROUTE};
pub use settings::{
    RelayLimitError, RelayLimits, RelayListenerSettings, RelaySettings, Route,
    DEFAULT_ANSWER_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEALTH_INTERVAL,
    DEFAULT_HELLO_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE, DEFAULT_PEEK_TIMEOUT,
};
