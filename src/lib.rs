//! Sovereign-Chain (天启御链): a mutually authenticated, end-to-end encrypted,
//! post-quantum-hybrid transport over TCP with its own small PKI.
//!
//! This crate gathers the workspace's crates under one name, for the demo
//! and the cross-crate tests, and holds the [`cli`] module the four
//! binaries (`bins/`) share:
//!
//! * [`wire`] — the byte layout of every message and record;
//! * [`pki`] — Ed25519 certificates: issuance and validation;
//! * [`handshake`] — the 13-step handshake, sans-I/O;
//! * [`session`] — the seed-code record ratchet, the message API, tokio streams;
//! * [`net`] — sockets, the listener lifecycle, the byte pump (no cryptography);
//! * [`tunnel`] — the tunnel exit (`sc-server`) and entry (`sc-client --listen`);
//! * [`relay`] — the blind relay (`sc-proxy`), which holds no key;
//! * [`cli`] — errors, config files, units, logging and signals of the binaries.
//!
//! Start with `cargo run --example demo`, then SPEC.md.

#![forbid(unsafe_code)]

pub mod cli;

pub use sc_handshake as handshake;
pub use sc_net as net;
pub use sc_pki as pki;
pub use sc_relay as relay;
pub use sc_session as session;
pub use sc_tunnel as tunnel;
pub use sc_wire as wire;
