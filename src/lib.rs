//! Sovereign-Chain (天启御链): a mutually authenticated, end-to-end encrypted,
//! post-quantum-hybrid transport over TCP with its own small PKI.
//!
//! This crate only gathers the workspace's crates under one name, for the
//! demo and the cross-crate tests:
//!
//! * [`wire`] — the byte layout of every message and record;
//! * [`pki`] — Ed25519 certificates: issuance and validation;
//! * [`handshake`] — the 13-step handshake, sans-I/O;
//! * [`session`] — the seed-code record ratchet, the message API, tokio streams;
//! * [`relay`] — endpoints, tunnels and the runtimes of the binaries.
//!
//! Start with `cargo run --example demo`, then SPEC.md.

#![forbid(unsafe_code)]

pub use sc_handshake as handshake;
pub use sc_pki as pki;
pub use sc_relay as relay;
pub use sc_session as session;
pub use sc_wire as wire;
