//! Sovereign-Chain relaying: what the binaries share.
//!
//! * [`Endpoint`], [`Listener`], [`Stream`]: TCP (IPv4, IPv6) and Unix
//!   sockets, to listen on and connect to;
//! * [`splice`]: a tunnel's data path between a secure session and a
//!   plaintext connection (half-close carried through, idle timeout);
//! * [`ops`]: logging setup and rate-limited error logs.
//!
//! The blind relay (`sc-proxy`) will live here too.

#![forbid(unsafe_code)]

mod endpoint;
pub mod ops;
mod splice;

pub use endpoint::{Endpoint, EndpointError, Listener, Stream};
pub use splice::{splice, SpliceEnd, SpliceReport, COPY_BUFFER};
