//! Sovereign-Chain on its Linux host: what a daemon tells its service
//! manager, what it takes from it, and what it gives up.
//!
//! * [`notify`]: systemd's readiness protocol (`Type=notify`): `READY=1`
//!   once the listeners are bound and the credentials loaded,
//!   `RELOADING=1` … `READY=1` around a reload, `STOPPING=1` on the drain,
//!   `WATCHDOG=1` at half of `WATCHDOG_USEC` (the `sd-notify` crate);
//!   nothing at all without `NOTIFY_SOCKET`;
//! * [`activation`]: the sockets systemd passes (`LISTEN_FDS`,
//!   `LISTEN_PID`, `LISTEN_FDNAMES`), checked and turned into listeners
//!   for `sc-net` (the `listenfd` crate does the one unsafe step, so this
//!   crate forbids unsafe code);
//! * [`sandbox`]: Landlock (the `landlock` crate): the process keeps only
//!   the file system access it needs from then on.
//!
//! ```text
//!  main ─► sandbox::Sandbox::enforce     (before the runtime's threads)
//!       ─► activation::from_env ─► sc_net::inherited::inherit
//!       ─► bind, load credentials ─► Notifier::ready
//!       ─► SIGHUP: Notifier::reloading … Notifier::ready
//!       ─► SIGTERM: Notifier::stopping ─► drain
//! ```

#![forbid(unsafe_code)]

pub mod activation;
pub mod notify;
pub mod sandbox;
