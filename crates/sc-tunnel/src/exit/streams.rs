//! A session of streams at the tunnel exit (SPEC §14): every stream the
//! client opens names a service (or none: the listener's mode); it is
//! connected to that service's backend, echoed, or reset with the reason
//! (`unknown service NAME`, `client app-1 may not use service NAME`,
//! `backend 127.0.0.1:5432 refused the connection`). The session and its
//! other streams go on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sc_net::{warn_limited, Endpoint, RateLimiter, Secs};
use sc_pki::{ClientPolicy, PeerIdentity};
use sc_session::{MuxSession, SessionStream};
use sc_wire::streams::{ResetCode, ServiceName};
use sc_wire::AlertCode;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::session::{connect_backend, Counts, SessionEnd};
use super::settings::{Limits, Mode, Service};
use crate::splice::{splice, SpliceEnd};

/// How often an idle session of streams is looked at.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What a listener's streams need, shared by their tasks.
#[derive(Debug)]
pub(crate) struct StreamContext {
    pub(crate) local: Endpoint,
    pub(crate) peer: String,
    pub(crate) identity: PeerIdentity,
    pub(crate) mode: Mode,
    pub(crate) services: Vec<Service>,
    pub(crate) limits: Limits,
    /// The PROXY v2 header for a backend, if the listener sends one.
    pub(crate) proxy_header: Option<Result<Vec<u8>, String>>,
    pub(crate) stop: CancellationToken,
    pub(crate) log: Arc<RateLimiter>,
    /// Where to count streams and re-keys (`--status`).
    pub(crate) metrics: Option<Arc<sc_status::Metrics>>,
}

/// Where a stream goes.
enum Target<'a> {
    Echo,
    Backend(&'a Endpoint),
    Refused(ResetCode, String),
}

impl StreamContext {
    fn target(&self, service: Option<&ServiceName>) -> Target<'_> {
        let Some(name) = service else {
            return match &self.mode {
                Mode::Echo => Target::Echo,
                Mode::Forward(backend) => Target::Backend(backend),
            };
        };
        let Some(svc) = self.services.iter().find(|s| &s.name == name) else {
            return Target::Refused(
                ResetCode::UNKNOWN_SERVICE,
                format!("unknown service {name}"),
            );
        };
        let policy = ClientPolicy {
            allow_names: svc.allow_clients.clone(),
            allow_pins: Vec::new(),
        };
        if !policy.admits(&self.identity) {
            return Target::Refused(
                ResetCode::NOT_AUTHORISED,
                format!("client {} may not use service {name}", self.identity),
            );
        }
        Target::Backend(&svc.backend)
    }
}

/// Serves the streams of `session` until it ends, the client goes quiet
/// with no stream open for the idle timeout, or the server stops; the
/// bytes of every stream add up in `counts`, and `streams` counts them.
pub(crate) async fn serve(
    session: MuxSession,
    ctx: Arc<StreamContext>,
    counts: &mut Counts,
    streams: &mut u64,
) -> SessionEnd {
    let mut tasks: JoinSet<Counts> = JoinSet::new();
    let mut rekeys = 0;
    let mut seen_rx = session.stats().bytes_received;
    let mut last_rx = Instant::now();
    let end = loop {
        tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => {
                session.abort(AlertCode::GOING_AWAY);
                break SessionEnd::Shutdown;
            }
            accepted = session.accept_stream() => match accepted {
                Ok((stream, service)) => {
                    *streams += 1;
                    let open = ctx.metrics.as_ref().map(|m| m.stream_open());
                    let served = serve_stream(stream, service, ctx.clone());
                    tasks.spawn(async move {
                        let counts = served.await;
                        drop(open);
                        counts
                    });
                }
                Err(e) => break SessionEnd::Failed(match e {
                    sc_session::streams::StreamError::Session(
                        sc_session::Error::PeerClosed,
                    ) => "closed".into(),
                    other => other.to_string(),
                }),
            },
            Some(done) = tasks.join_next() => {
                if let Ok(c) = done {
                    counts.bytes_in += c.bytes_in;
                    counts.bytes_out += c.bytes_out;
                }
            }
            _ = tokio::time::sleep(IDLE_CHECK) => {
                if let Some(m) = &ctx.metrics {
                    m.rekeys_so_far(&mut rekeys, session.rekeys_completed());
                }
                let rx = session.stats().bytes_received;
                if rx != seen_rx || session.stream_count() > 0 {
                    seen_rx = rx;
                    last_rx = Instant::now();
                } else if let Some(idle) = ctx.limits.idle_timeout {
                    if last_rx.elapsed() >= idle {
                        session.close();
                        break SessionEnd::Idle(idle);
                    }
                }
            }
        }
    };
    // The streams end with the session (or the stop): collect their bytes.
    while let Some(done) = tasks.join_next().await {
        if let Ok(c) = done {
            counts.bytes_in += c.bytes_in;
            counts.bytes_out += c.bytes_out;
        }
    }
    if let Some(m) = &ctx.metrics {
        m.rekeys_so_far(&mut rekeys, session.rekeys_completed());
    }
    match end {
        SessionEnd::Failed(why) if why == "closed" => SessionEnd::Closed,
        other => other,
    }
}

/// One stream: to its backend, echoed, or refused; one log line (debug)
/// at its end.
async fn serve_stream(
    stream: SessionStream,
    service: Option<ServiceName>,
    ctx: Arc<StreamContext>,
) -> Counts {
    let started = Instant::now();
    let id = stream.id();
    let name = service.as_ref().map_or("-", ServiceName::as_str).to_owned();
    let mut counts = Counts::default();
    let reason = match ctx.target(service.as_ref()) {
        Target::Refused(code, why) => {
            stream.reset(code, &why);
            warn_limited!(ctx.log, "stream", listener = %ctx.local, peer = %ctx.peer, stream = %id, "stream refused: {why}");
            why
        }
        Target::Echo => {
            let (mut r, mut w) = stream.into_split();
            let copy = async {
                let n = tokio::io::copy(&mut r, &mut w).await?;
                w.shutdown().await?;
                Ok::<u64, std::io::Error>(n)
            };
            tokio::select! {
                _ = ctx.stop.cancelled() => "server shutting down".into(),
                r = copy => match r {
                    Ok(n) => {
                        counts.bytes_in = n;
                        counts.bytes_out = n;
                        "closed".into()
                    }
                    Err(e) => e.to_string(),
                },
            }
        }
        Target::Backend(backend) => {
            let header = match ctx.proxy_header.as_ref().map(|h| h.as_deref()).transpose() {
                Ok(h) => h,
                Err(why) => {
                    stream.reset(ResetCode::INTERNAL_ERROR, why);
                    return counts;
                }
            };
            let connected = tokio::select! {
                _ = ctx.stop.cancelled() => Err("server shutting down".to_owned()),
                r = connect_backend(backend, header) => r,
            };
            match connected {
                Err(why) => {
                    stream.reset(ResetCode::BACKEND_UNREACHABLE, &why);
                    warn_limited!(ctx.log, "backend", listener = %ctx.local, "{why}");
                    why
                }
                Ok(mut plain) => {
                    // The stream handle stays to reset it with a reason if
                    // the backend fails.
                    let resetter = stream.reset_handle();
                    let report =
                        splice(stream, &mut plain, ctx.limits.idle_timeout, Some(&ctx.stop)).await;
                    counts.bytes_in = report.secure_to_plain;
                    counts.bytes_out = report.plain_to_secure;
                    if report.end.is_cut() {
                        plain.reset_on_close();
                    }
                    match &report.end {
                        SpliceEnd::Plain(e) => {
                            let why =
                                format!("backend {backend}: {}", sc_net::io_reason(e.get_ref()));
                            resetter.reset(ResetCode::BACKEND_FAILED, &why);
                            why
                        }
                        SpliceEnd::Idle(_) => {
                            resetter.reset(ResetCode::CANCELLED, "idle timeout");
                            report.end.to_string()
                        }
                        SpliceEnd::Stopped => {
                            resetter.reset(ResetCode::GOING_AWAY, "server shutting down");
                            report.end.to_string()
                        }
                        other => other.to_string(),
                    }
                }
            }
        }
    };
    tracing::debug!(
        listener = %ctx.local,
        peer = %ctx.peer,
        stream = %id,
        service = %name,
        bytes_in = counts.bytes_in,
        bytes_out = counts.bytes_out,
        duration = %Secs(started.elapsed()),
        reason = %reason,
        "stream end"
    );
    counts
}
