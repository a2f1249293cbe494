//! Sovereign-Chain tunnels: both ends of a secure session that carries the
//! bytes of an application which cannot be changed.
//!
//! * [`exit`]: the tunnel exit, what `sc-server` runs — listeners that
//!   accept sessions and echo them or forward them to a backend, with
//!   credentials loaded from files and reloaded, and operating limits;
//! * [`entry`]: the tunnel entry, what `sc-client --listen` runs — a local
//!   listener whose every connection gets its own session to the server;
//! * [`connect`]: opening a session to a server ([`Target`]) and saying in
//!   one line why one failed ([`ConnectError`]) or ended;
//! * [`splice`]: the data path between a secure session and a plaintext
//!   connection.
//!
//! ```text
//!  app ──plain──▶ entry ══ secure session (13 steps, then records) ══▶ exit ──plain──▶ backend
//! ```
//!
//! The listener lifecycle, the sockets and the copy loop are `sc-net`'s;
//! the handshake and the records are `sc-session`'s.

#![forbid(unsafe_code)]

pub mod connect;
pub mod entry;
pub mod exit;
mod splice;

pub use connect::{ConnectError, Target};
pub use entry::{SessionPool, TunnelConfig, TunnelEntry};
pub use splice::{splice, SecureSide, SpliceEnd, SpliceReport};
