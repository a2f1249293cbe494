//! Sovereign-Chain's status endpoint: what an operator's supervisor and
//! Prometheus read from `sc-server`, `sc-proxy` and `sc-client --listen`
//! (`--status ADDR`). No cryptography.
//!
//! * `GET /healthz`: `200 ok` while the process runs its loops;
//! * `GET /readyz`: `200` when every readiness check the binary registered
//!   ([`Status::add_check`]) passes, else `503` with a JSON body naming
//!   each check that did not and why;
//! * `GET /metrics`: the Prometheus text exposition of [`Metrics`], made
//!   by `prometheus-client`'s encoder.
//!
//! Other paths are `404`, other methods `405`. The endpoint has its own
//! accept loop in a task of its own, with at most [`MAX_CONNECTIONS`]
//! connections, a [`HEADER_TIMEOUT`] and a [`CONNECTION_LIFETIME`], so a
//! flood on it cannot take the tunnel's connection slots.
//!
//! ```text
//!  sc-tunnel / sc-relay ──record──▶ Metrics (atomics, series made at start)
//!  binary ──add_check──▶ Status ◀── StatusServer (hyper, HTTP/1.1) ◀── GET
//! ```
//!
//! Why `prometheus-client`: it is the Prometheus project's own Rust client
//! (prometheus/client_rust), follows the OpenMetrics data model, keeps
//! counters and gauges as plain atomics that are cloned out of the
//! registry (so recording takes no lock), and writes the text format that
//! `promtool` checks — the older `prometheus` crate keeps a global registry
//! and is maintained less.

#![forbid(unsafe_code)]

mod metrics;
mod server;

pub use metrics::{
    Direction, Metrics, OpenGuard, RefusalReason, CONTENT_TYPE, NO_ALERT, PREFIX, UNKNOWN_ALERT,
};
pub use server::{
    BindError, CheckFuture, NotReady, Status, StatusServer, CHECK_TIMEOUT, CONNECTION_LIFETIME,
    HEADER_TIMEOUT, MAX_CONNECTIONS,
};
