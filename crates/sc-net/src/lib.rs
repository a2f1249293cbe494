//! Sovereign-Chain's networking: sockets, the listener lifecycle and the
//! byte pump the binaries share. No cryptography: this crate can move and
//! count bytes, never open or seal them.
//!
//! * [`Endpoint`], [`Listener`], [`Stream`] (and its owned halves):
//!   TCP over IPv4 or IPv6 and Unix sockets, to listen on and connect to;
//!   [`Replay`] hands back bytes already read;
//! * [`inherited`]: sockets a service manager passed (socket activation),
//!   which [`Endpoint::bind`] takes in place of binding;
//! * [`service`]: one listener lifecycle (connection and handshake limits,
//!   refusal, backlog drain, graceful shutdown) into which the server, the
//!   relay and the tunnel entry each plug a [`Handler`](service::Handler);
//! * [`pump`]: one copy loop, both ways, half-close carried through,
//!   cancellable, with an idle timeout and a per-chunk observer; or, where
//!   one side has buffers of its own (a secure stream), no copy buffer at
//!   all ([`pump::pump_direct`]);
//! * [`proxy_protocol`]: the PROXY v2 codec, trusted-source ranges
//!   ([`Cidr`]), and reading a trusted source's header;
//! * [`PerSource`]: how many connections or handshakes one source address
//!   may hold at once;
//! * [`RateLimiter`] and [`warn_limited!`]: warnings a flood cannot flood;
//! * [`io_reason`] and [`Secs`]: one way to say what went wrong with I/O and
//!   to print a duration.
//!
//! ```text
//!  Listener ──accept──▶ Service ──▶ Handler::serve(Stream, peer, Conn)
//!                                        │
//!                          (the protocol: sc-tunnel, sc-relay)
//!                                        │
//!                 pump(a halves, b halves) ──▶ Report { a_to_b, b_to_a, end }
//! ```

#![forbid(unsafe_code)]

mod describe;
mod endpoint;
pub mod inherited;
mod per_source;
pub mod proxy_protocol;
pub mod pump;
mod ratelimit;
pub mod service;

pub use describe::{io_reason, Secs};
pub use endpoint::{
    Endpoint, EndpointError, Listener, ReadHalf, Replay, Stream, WriteHalf, LISTEN_BACKLOG,
};
pub use per_source::{PerSource, SourceSlot};
pub use proxy_protocol::{Cidr, CidrError};
pub use ratelimit::RateLimiter;

#[doc(hidden)]
pub use tracing as __tracing;
