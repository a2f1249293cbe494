//! Sovereign-Chain relaying: what the binaries share.
//!
//! * [`Endpoint`], [`Listener`], [`Stream`]: TCP (IPv4, IPv6) and Unix
//!   sockets, to listen on and connect to;
//! * [`splice`]: a tunnel's data path between a secure session and a
//!   plaintext connection (half-close carried through, idle timeout);
//! * [`ops`]: logging setup and rate-limited error logs;
//! * [`config_file`]: reading a binary's config file, and one line for an
//!   error in it;
//! * [`client`]: sessions to a server with one-line failure reasons, and
//!   the tunnel entry of `sc-client --listen`;
//! * [`server`]: the runtime of `sc-server` (listeners, limits, echo and
//!   tunnel exit, reload, drain), usable in-process;
//! * [`relay`]: the blind relay of `sc-proxy` (routes sessions by name to
//!   healthy backends without a key, shares its port), usable in-process.

#![forbid(unsafe_code)]

pub mod client;
pub mod config_file;
mod endpoint;
pub mod ops;
pub mod proxy_protocol;
pub mod relay;
pub mod server;
mod splice;

pub use endpoint::{Endpoint, EndpointError, Listener, ResetHandle, Stream};
pub use splice::{splice, SpliceEnd, SpliceReport, COPY_BUFFER};
