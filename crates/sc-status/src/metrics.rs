//! The metrics registry: every series a binary exports, created once at
//! start so that recording is one atomic operation (no lock, no label
//! lookup on the hot path).

use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sc_wire::AlertCode;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The prefix of every metric name.
pub const PREFIX: &str = "sovereign_chain";

/// Why an accepted connection (or, for [`connection_limit`](Self::connection_limit),
/// a connection taken from the backlog) was refused before it became a
/// session. A fixed set: label values never come from a peer.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RefusalReason {
    /// The listener held its maximum of connections.
    connection_limit,
    /// The source address held its share of connections.
    source_connection_limit,
    /// The source address ran its share of handshakes.
    source_handshake_limit,
    /// No handshake slot came free within the handshake timeout.
    handshake_slots_busy,
    /// The anonymous-session quota was full.
    anonymous_quota,
    /// A trusted balancer's PROXY header was invalid or incomplete.
    bad_proxy_header,
    /// A PROXY header from a source not trusted to send one.
    untrusted_proxy_header,
    /// No route for the session (sc-proxy: unknown route name or no
    /// healthy backend).
    no_route,
    /// sc-proxy: the first bytes were not a well-formed ClientHello (and no
    /// `--fallback` takes other protocols).
    malformed_hello,
    /// sc-proxy: no whole ClientHello within the hello timeout.
    hello_timeout,
}

impl RefusalReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 10] = [
        Self::connection_limit,
        Self::source_connection_limit,
        Self::source_handshake_limit,
        Self::handshake_slots_busy,
        Self::anonymous_quota,
        Self::bad_proxy_header,
        Self::untrusted_proxy_header,
        Self::no_route,
        Self::malformed_hello,
        Self::hello_timeout,
    ];
}

/// Application bytes, as seen from this process's side of the session.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Direction {
    /// From the peer.
    received,
    /// To the peer.
    sent,
}

/// A reload's outcome.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum ReloadResult {
    success,
    failure,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: RefusalReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabel {
    alert: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: ReloadResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    route: String,
    backend: String,
}

/// The `alert` label of a failed handshake that ended without an alert
/// (the peer hung up, or the transport failed).
pub const NO_ALERT: &str = "none";
/// The `alert` label of an alert code this version does not define.
pub const UNKNOWN_ALERT: &str = "unknown";

/// The label value of an alert: its name in snake case (`bad_certificate`),
/// made once per defined code.
fn alert_label(code: AlertCode) -> Option<&'static str> {
    // The names are 'static; the snake-case forms are leaked once per
    // defined code (a fixed, small set) when the first registry is made.
    use std::sync::OnceLock;
    static LABELS: OnceLock<Vec<(AlertCode, &'static str)>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| {
        AlertCode::ALL
            .iter()
            .filter_map(|c| {
                let name = c.name()?;
                let snake: String = name
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                    .collect();
                Some((*c, &*Box::leak(snake.into_boxed_str())))
            })
            .collect()
    });
    labels.iter().find(|(c, _)| *c == code).map(|(_, l)| *l)
}

/// Every series of one process. Clone the handles it gives out freely:
/// they share the registry's atomics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    accepted: Counter,
    refused: Vec<(RefusalReason, Counter)>,
    handshakes_completed: Counter,
    /// Indexed by alert code; the last two are [`UNKNOWN_ALERT`] and
    /// [`NO_ALERT`].
    handshakes_failed: Vec<Counter>,
    handshake_duration: Histogram,
    sessions_open: Gauge,
    streams_open: Gauge,
    bytes_received: Counter,
    bytes_sent: Counter,
    rekeys: Counter,
    reload_success: Counter,
    reload_failure: Counter,
    last_reload: Gauge,
    not_after: Family<ListenerLabel, Gauge>,
    next_update: Family<ListenerLabel, Gauge>,
    backend_up: Family<BackendLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Makes every series (at zero) and registers it.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let accepted = Counter::default();
        registry.register(
            "connections_accepted",
            "Connections accepted from a listener and handled (those refused at the connection limit are not among them)",
            accepted.clone(),
        );
        let refused_family = Family::<ReasonLabel, Counter>::default();
        let refused = RefusalReason::ALL
            .iter()
            .map(|r| {
                (
                    *r,
                    refused_family
                        .get_or_create(&ReasonLabel { reason: *r })
                        .clone(),
                )
            })
            .collect();
        registry.register(
            "connections_refused",
            "Connections refused before a session, by reason",
            refused_family,
        );
        let handshakes_completed = Counter::default();
        registry.register(
            "handshakes_completed",
            "Handshakes completed",
            handshakes_completed.clone(),
        );
        let failed_family = Family::<AlertLabel, Counter>::default();
        let mut handshakes_failed = Vec::with_capacity(258);
        for code in 0..=u8::MAX {
            let label = alert_label(AlertCode(code)).unwrap_or(UNKNOWN_ALERT);
            handshakes_failed.push(
                failed_family
                    .get_or_create(&AlertLabel { alert: label })
                    .clone(),
            );
        }
        handshakes_failed.push(
            failed_family
                .get_or_create(&AlertLabel {
                    alert: UNKNOWN_ALERT,
                })
                .clone(),
        );
        handshakes_failed.push(
            failed_family
                .get_or_create(&AlertLabel { alert: NO_ALERT })
                .clone(),
        );
        registry.register(
            "handshakes_failed",
            "Handshakes that failed, by the alert sent or received (none: the connection ended without one)",
            failed_family,
        );
        // 1 ms to 16 s, doubling.
        let handshake_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "handshake_duration_seconds",
            "Time from the first byte of the ClientHello to a completed handshake",
            handshake_duration.clone(),
        );
        let sessions_open = Gauge::default();
        registry.register(
            "sessions_open",
            "Secure sessions open now",
            sessions_open.clone(),
        );
        let streams_open = Gauge::default();
        registry.register(
            "streams_open",
            "Streams open now in multiplexed sessions",
            streams_open.clone(),
        );
        let bytes = Family::<DirectionLabel, Counter>::default();
        let bytes_received = bytes
            .get_or_create(&DirectionLabel {
                direction: Direction::received,
            })
            .clone();
        let bytes_sent = bytes
            .get_or_create(&DirectionLabel {
                direction: Direction::sent,
            })
            .clone();
        registry.register(
            "session_bytes",
            "Application bytes of ended sessions (and streams), received from or sent to the peer",
            bytes,
        );
        let rekeys = Counter::default();
        registry.register(
            "rekeys_completed",
            "Re-keys completed by sessions (one of a single stream when it ends)",
            rekeys.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        let reload_success = reloads
            .get_or_create(&ResultLabel {
                result: ReloadResult::success,
            })
            .clone();
        let reload_failure = reloads
            .get_or_create(&ResultLabel {
                result: ReloadResult::failure,
            })
            .clone();
        registry.register(
            "reloads",
            "Credential reloads (one per listener per reload), by result",
            reloads,
        );
        let last_reload = Gauge::default();
        registry.register(
            "last_reload_timestamp_seconds",
            "Unix time of the last reload (0: none yet)",
            last_reload.clone(),
        );
        let not_after = Family::<ListenerLabel, Gauge>::default();
        registry.register(
            "certificate_not_after_timestamp_seconds",
            "Unix time at which the certificate in force expires, per listener",
            not_after.clone(),
        );
        let next_update = Family::<ListenerLabel, Gauge>::default();
        registry.register(
            "crl_next_update_timestamp_seconds",
            "Unix time of the nextUpdate of the CRL in force, per listener (listeners with a CRL only)",
            next_update.clone(),
        );
        let backend_up = Family::<BackendLabel, Gauge>::default();
        registry.register(
            "backend_up",
            "Whether a configured backend of a route passes its health check (1) or not (0)",
            backend_up.clone(),
        );
        Self {
            registry,
            accepted,
            refused,
            handshakes_completed,
            handshakes_failed,
            handshake_duration,
            sessions_open,
            streams_open,
            bytes_received,
            bytes_sent,
            rekeys,
            reload_success,
            reload_failure,
            last_reload,
            not_after,
            next_update,
            backend_up,
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every series.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String does not fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// A connection was taken from a listener to be handled.
    pub fn connection_accepted(&self) {
        self.accepted.inc();
    }

    /// A connection was refused for `reason`.
    pub fn connection_refused(&self, reason: RefusalReason) {
        if let Some((_, c)) = self.refused.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
    }

    /// A handshake completed in `took`.
    pub fn handshake_completed(&self, took: Duration) {
        self.handshakes_completed.inc();
        self.handshake_duration.observe(took.as_secs_f64());
    }

    /// A handshake failed with `alert` (sent or received); `None`: it
    /// ended without one.
    pub fn handshake_failed(&self, alert: Option<AlertCode>) {
        let i = match alert {
            Some(code) if code.is_known() => usize::from(code.0),
            Some(_) => 256,
            None => 257,
        };
        if let Some(c) = self.handshakes_failed.get(i) {
            c.inc();
        }
    }

    /// A session is open until the guard is dropped.
    pub fn session_open(&self) -> OpenGuard {
        OpenGuard::new(&self.sessions_open)
    }

    /// A stream is open until the guard is dropped.
    pub fn stream_open(&self) -> OpenGuard {
        OpenGuard::new(&self.streams_open)
    }

    /// Application bytes an ended session (or stream) moved.
    pub fn bytes(&self, received: u64, sent: u64) {
        self.bytes_received.inc_by(received);
        self.bytes_sent.inc_by(sent);
    }

    /// Re-keys an ended session completed.
    pub fn rekeys(&self, n: u64) {
        self.rekeys.inc_by(n);
    }

    /// Re-keys of a session that goes on: it has completed `total`, of
    /// which `counted` are counted already; `counted` becomes `total`.
    pub fn rekeys_so_far(&self, counted: &mut u64, total: u64) {
        self.rekeys.inc_by(total.saturating_sub(*counted));
        *counted = (*counted).max(total);
    }

    /// A reload (of one listener) succeeded or failed at Unix time `now`.
    pub fn reload(&self, ok: bool, now: u64) {
        if ok {
            self.reload_success.inc();
        } else {
            self.reload_failure.inc();
        }
        self.last_reload.set(clamp(now));
    }

    /// The certificate `listener` uses expires at Unix time `not_after`.
    pub fn certificate_not_after(&self, listener: &str, not_after: u64) {
        self.not_after
            .get_or_create(&ListenerLabel {
                listener: listener.to_owned(),
            })
            .set(clamp(not_after));
    }

    /// The CRL `listener` uses is due for an update at Unix time
    /// `next_update` (`None`: the listener has no CRL, or it names no next
    /// update).
    pub fn crl_next_update(&self, listener: &str, next_update: Option<u64>) {
        let label = ListenerLabel {
            listener: listener.to_owned(),
        };
        match next_update {
            Some(t) => {
                self.next_update.get_or_create(&label).set(clamp(t));
            }
            None => {
                self.next_update.remove(&label);
            }
        }
    }

    /// A configured backend of a configured route is (not) healthy. Both
    /// names must come from the configuration, never from a peer.
    pub fn backend_health(&self, route: &str, backend: &str, up: bool) {
        self.backend_up
            .get_or_create(&BackendLabel {
                route: route.to_owned(),
                backend: backend.to_owned(),
            })
            .set(i64::from(up));
    }
}

fn clamp(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Holds one unit of an "open now" gauge; gives it back when dropped.
#[derive(Debug)]
pub struct OpenGuard(Gauge);

impl OpenGuard {
    fn new(g: &Gauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_values() {
        let m = Metrics::new();
        m.connection_accepted();
        m.connection_refused(RefusalReason::source_connection_limit);
        m.handshake_failed(Some(AlertCode::BAD_CERTIFICATE));
        m.handshake_failed(Some(AlertCode(0xee)));
        m.handshake_failed(None);
        m.handshake_completed(Duration::from_millis(3));
        m.bytes(10, 20);
        let g = m.session_open();
        m.certificate_not_after("127.0.0.1:7000", 1_900_000_000);
        let text = m.encode();
        for line in [
            "sovereign_chain_connections_accepted_total 1",
            "sovereign_chain_connections_refused_total{reason=\"source_connection_limit\"} 1",
            "sovereign_chain_connections_refused_total{reason=\"connection_limit\"} 0",
            "sovereign_chain_handshakes_failed_total{alert=\"bad_certificate\"} 1",
            "sovereign_chain_handshakes_failed_total{alert=\"unknown\"} 1",
            "sovereign_chain_handshakes_failed_total{alert=\"none\"} 1",
            "sovereign_chain_handshakes_completed_total 1",
            "sovereign_chain_handshake_duration_seconds_count 1",
            "sovereign_chain_session_bytes_total{direction=\"received\"} 10",
            "sovereign_chain_session_bytes_total{direction=\"sent\"} 20",
            "sovereign_chain_sessions_open 1",
            "sovereign_chain_certificate_not_after_timestamp_seconds{listener=\"127.0.0.1:7000\"} 1900000000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        drop(g);
        assert!(m.encode().contains("sovereign_chain_sessions_open 0\n"));
    }

    #[test]
    fn a_session_s_rekeys_are_counted_once_however_often_they_are_looked_at() {
        let m = Metrics::new();
        let mut counted = 0;
        for total in [0, 1, 1, 3, 3] {
            m.rekeys_so_far(&mut counted, total);
        }
        m.rekeys(2);
        assert_eq!(counted, 3);
        assert!(m
            .encode()
            .contains("sovereign_chain_rekeys_completed_total 5\n"));
    }
}

#[cfg(test)]
mod cost {
    use std::time::Instant;

    use super::*;

    /// What one session costs the metrics on the exit's path (accepted,
    /// handshake completed with its histogram, session open and closed, its
    /// bytes): an upper bound independent of the machine's noise.
    #[test]
    #[ignore = "a measurement: cargo test --release -p sc-status -- --ignored --nocapture record_cost"]
    fn record_cost() {
        let m = Metrics::new();
        let n = 2_000_000u32;
        let started = Instant::now();
        for i in 0..n {
            m.connection_accepted();
            m.handshake_completed(Duration::from_micros(u64::from(i % 5000)));
            let open = m.session_open();
            m.bytes(u64::from(i), 2);
            drop(open);
        }
        let per = started.elapsed() / n;
        println!("metrics per session: {per:?}");
        assert!(per < Duration::from_micros(5));
    }
}
