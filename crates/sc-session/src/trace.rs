//! An opt-in record of one handshake as it ran ([`SessionConfig::trace`]):
//! every record this side sent or received until the handshake completed,
//! with the handshake messages it carried in the order they were processed
//! and its size on the wire. What `sc-client --trace` and the demo draw as a
//! sequence diagram.
//!
//! The core records without I/O and without a clock: the times are the I/O
//! layer's ([`Connector`](crate::Connector) stamps them from the start of
//! `connect`); a core driven by hand, such as [`Pair`](crate::pair::Pair),
//! leaves them `None`. Off by default; when off, nothing is recorded and
//! nothing is parsed.
//!
//! [`SessionConfig::trace`]: crate::SessionConfig::trace

use std::time::Duration;

use sc_handshake::Level;
use sc_wire::messages::HANDSHAKE_HEADER_LEN;
use sc_wire::HandshakeType;

use crate::Side;

/// One record of the handshake, as this side sent or received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// Who sent it.
    pub from: Side,
    /// Its protection: plaintext, a handshake chain or an application chain.
    pub level: Level,
    /// The types of the handshake messages it carried, in the order they
    /// were processed (sent or handled); empty for application data held
    /// until the keys existed (SPEC §4.1).
    pub messages: Vec<HandshakeType>,
    /// Its bytes on the wire: record header, content, padding, inner type
    /// and tag. For application data, all of its records together.
    pub wire_len: usize,
    /// When it was sent or received, from the start of the handshake, where
    /// the I/O layer keeps a clock.
    pub at: Option<Duration>,
}

impl TraceRecord {
    /// Whether it carries application data rather than handshake messages.
    pub fn is_application_data(&self) -> bool {
        self.messages.is_empty()
    }
}

/// What a flight is, in SPEC §4.1's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlightLabel {
    /// One of the six flights (1–6). After a cookie retry the client's
    /// CookieEcho ‖ ClientHello is flight 1 again.
    Numbered(u8),
    /// The server's HelloRetry (SPEC §4.5): not one of the six.
    Retry,
}

/// Records of one direction in a row: one flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceFlight<'a> {
    /// Which flight.
    pub label: FlightLabel,
    /// Who sent it.
    pub from: Side,
    /// Its records, in order.
    pub records: &'a [TraceRecord],
}

impl TraceFlight<'_> {
    /// Its handshake messages' types, in the order processed.
    pub fn messages(&self) -> impl Iterator<Item = HandshakeType> + '_ {
        self.records.iter().flat_map(|r| r.messages.iter().copied())
    }

    /// Its bytes on the wire (application data held for it included).
    pub fn wire_len(&self) -> usize {
        self.records.iter().map(|r| r.wire_len).sum()
    }

    /// When its first record was sent or received.
    pub fn at(&self) -> Option<Duration> {
        self.records.first().and_then(|r| r.at)
    }
}

/// The records of one handshake, from this side's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeTrace {
    side: Side,
    records: Vec<TraceRecord>,
    /// The I/O layer's time, for what is received next.
    clock: Option<Duration>,
}

impl HandshakeTrace {
    pub(crate) fn new(side: Side) -> Self {
        Self {
            side,
            records: Vec::new(),
            clock: None,
        }
    }

    /// The side that recorded it.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Every record, in the order this side sent or received it.
    pub fn records(&self) -> &[TraceRecord] {
        &self.records
    }

    /// The records grouped into flights: each run of records in one
    /// direction is one flight.
    pub fn flights(&self) -> Vec<TraceFlight<'_>> {
        let mut flights = Vec::new();
        let mut number = 0u8;
        let mut start = 0;
        while start < self.records.len() {
            let from = self.records[start].from;
            let len = self.records[start..]
                .iter()
                .take_while(|r| r.from == from)
                .count();
            let records = &self.records[start..start + len];
            let has = |t: HandshakeType| records.iter().any(|r| r.messages.contains(&t));
            let label = if has(HandshakeType::HELLO_RETRY) {
                FlightLabel::Retry
            } else if has(HandshakeType::CLIENT_HELLO) {
                number = 1;
                FlightLabel::Numbered(1)
            } else {
                number = number.saturating_add(1);
                FlightLabel::Numbered(number)
            };
            flights.push(TraceFlight {
                label,
                from,
                records,
            });
            start += len;
        }
        flights
    }

    /// Sets the time that records received from now on are stamped with.
    pub(crate) fn set_clock(&mut self, now: Duration) {
        self.clock = Some(now);
    }

    /// Stamps the records sent and not yet stamped with `now`: the I/O
    /// layer calls it as it hands them to the transport.
    pub(crate) fn stamp_sent(&mut self, now: Duration) {
        let side = self.side;
        for r in self.records.iter_mut().rev() {
            if r.from != side || r.at.is_some() {
                break;
            }
            r.at = Some(now);
        }
    }

    /// A record this side sealed (or wrote in plaintext).
    pub(crate) fn sent(&mut self, level: Level, messages: &[u8], wire_len: usize) {
        self.records.push(TraceRecord {
            from: self.side,
            level,
            messages: message_types(messages),
            wire_len,
            at: None,
        });
    }

    /// Application data held until the keys existed, sent in one go.
    pub(crate) fn sent_data(&mut self, wire_len: usize) {
        if wire_len > 0 {
            self.records.push(TraceRecord {
                from: self.side,
                level: Level::Application,
                messages: Vec::new(),
                wire_len,
                at: None,
            });
        }
    }

    /// An application-level record from the peer that came with its last
    /// handshake flight (early data in flight 5, the server's data behind
    /// SecureAck): it belongs to that flight, also where our answer to the
    /// flight's handshake record was recorded first; records in a row are
    /// counted together.
    pub(crate) fn received_data(&mut self, wire_len: usize) {
        let from = self.peer();
        let Some(last) = self.records.iter().rposition(|r| r.from == from) else {
            return;
        };
        let record = &mut self.records[last];
        if record.is_application_data() {
            record.wire_len += wire_len;
            return;
        }
        let at = record.at;
        self.records.insert(
            last + 1,
            TraceRecord {
                from,
                level: Level::Application,
                messages: Vec::new(),
                wire_len,
                at,
            },
        );
    }

    fn peer(&self) -> Side {
        match self.side {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    /// A handshake record from the peer, before it is handled.
    pub(crate) fn received(&mut self, level: Level, messages: &[u8], wire_len: usize) {
        let from = self.peer();
        self.records.push(TraceRecord {
            from,
            level,
            messages: message_types(messages),
            wire_len,
            at: self.clock,
        });
    }
}

/// The types of the handshake messages in `content` (type u8 ‖ length u24
/// ‖ body, one after the other), without decoding them: as far as whole
/// headers go. The state machine checks them.
pub fn message_types(content: &[u8]) -> Vec<HandshakeType> {
    let mut types = Vec::new();
    let mut rest = content;
    while let Some(header) = rest.get(..HANDSHAKE_HEADER_LEN) {
        types.push(HandshakeType(header[0]));
        let len =
            usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
        rest = rest.get(HANDSHAKE_HEADER_LEN + len..).unwrap_or(&[]);
    }
    types
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use sc_handshake::{ClientConfig, ServerConfig};
    use sc_pki::throwaway::ThrowawayPki;
    use sc_pki::{ServerName, UnixTime};

    use super::*;
    use crate::pair::Pair;
    use crate::SessionConfig;

    fn pair(seed: u8, trace: bool) -> Pair {
        let mut rng = ChaCha20Rng::from_seed([seed; 32]);
        let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
        let pki =
            ThrowawayPki::new("server.test", "client-1", now, &mut rng).expect("throwaway PKI");
        let client = ClientConfig::builder()
            .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
            .with_credential(pki.client.clone())
            .build();
        let server = ServerConfig::builder()
            .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
            .with_credential(pki.server.clone())
            .build();
        let name = ServerName::try_from("server.test").expect("name");
        let session = SessionConfig {
            trace,
            ..SessionConfig::default()
        };
        Pair::new(
            client.into(),
            server.into(),
            name,
            session,
            now,
            Box::new(rng),
        )
        .expect("pair")
    }

    /// Both sides' traces of a real handshake: the six flights of SPEC
    /// §4.1, steps 1–13 each once, 7–10 as the session ordered them, and
    /// the bytes the pair moved.
    #[test]
    fn a_handshake_traces_six_flights_of_thirteen_steps() {
        for seed in 1..=8 {
            let mut p = pair(seed, true);
            // Early data rides in flight 5 (and is counted there).
            p.client.send_message(b"early").expect("queued");
            p.handshake().expect("handshake");
            let order = p.client.summary().expect("summary").order;
            assert_eq!(p.flights.len(), 6, "the pair moved six flights");
            for conn in [&p.client, &p.server] {
                let trace = conn.handshake_trace().expect("trace on");
                assert_eq!(trace.side(), conn.side());
                let flights = trace.flights();
                assert_eq!(flights.len(), 6, "{:#?}", trace.records());
                let [s7_9, s8_10] = [order.sent_by(true), order.sent_by(false)];
                let t = HandshakeType;
                let expected: [(Side, Vec<HandshakeType>); 6] = [
                    (Side::Client, vec![t(1)]),
                    (Side::Server, vec![t(2), t(3), t(4)]),
                    (Side::Client, vec![t(5)]),
                    (Side::Server, vec![t(6), s7_9[0], s7_9[1]]),
                    (Side::Client, vec![s8_10[0], s8_10[1], t(11)]),
                    (Side::Server, vec![t(12), t(13)]),
                ];
                let mut steps = Vec::new();
                for (i, (flight, (from, messages))) in flights.iter().zip(expected).enumerate() {
                    assert_eq!(flight.label, FlightLabel::Numbered(i as u8 + 1));
                    assert_eq!(flight.from, from, "flight {}", i + 1);
                    assert_eq!(flight.messages().collect::<Vec<_>>(), messages);
                    assert_eq!(flight.wire_len(), p.flights[i].bytes.len());
                    assert_eq!(p.flights[i].from, from);
                    assert!(flight.at().is_none(), "no clock in the pair");
                    steps.extend(flight.messages().map(HandshakeType::step));
                }
                let mut sorted = steps.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (1..=13).collect::<Vec<u8>>(), "each step once");
                // Flight 5 carries the early data after its handshake record.
                let f5 = &flights[4];
                assert_eq!(f5.records.len(), 2);
                assert!(f5.records[1].is_application_data());
                let first =
                    <sc_wire::RecordHeader as sc_wire::Codec>::decode(&p.flights[4].bytes[..4])
                        .expect("header");
                assert_eq!(f5.records[0].wire_len, 4 + first.len);
                // 2 and 13 are the only plaintext / application-level ones.
                assert_eq!(flights[1].records[0].level, Level::Plaintext);
                assert_eq!(flights[5].records[1].level, Level::Application);
            }
        }
    }

    #[test]
    fn off_by_default() {
        let mut p = pair(9, false);
        p.handshake().expect("handshake");
        assert!(p.client.handshake_trace().is_none());
        assert!(p.server.handshake_trace().is_none());
    }

    #[test]
    fn a_retry_is_not_one_of_the_six() {
        let mut trace = HandshakeTrace::new(Side::Client);
        trace.sent(Level::Plaintext, &[1, 0, 0, 0], 8);
        trace.received(Level::Plaintext, &[0x81, 0, 0, 0], 8);
        trace.sent(Level::Plaintext, &[0x82, 0, 0, 0, 1, 0, 0, 0], 12);
        trace.received(Level::Plaintext, &[2, 0, 0, 0], 8);
        trace.received(Level::Handshake, &[3, 0, 0, 0, 4, 0, 0, 0], 31);
        let labels: Vec<_> = trace.flights().iter().map(|f| f.label).collect();
        assert_eq!(
            labels,
            [
                FlightLabel::Numbered(1),
                FlightLabel::Retry,
                FlightLabel::Numbered(1),
                FlightLabel::Numbered(2)
            ]
        );
        assert_eq!(trace.flights()[3].wire_len(), 39);
    }

    #[test]
    fn message_types_walks_the_headers() {
        let content = [6, 0, 0, 2, 0xaa, 0xbb, 9, 0, 0, 0, 7, 0, 0, 1];
        assert_eq!(
            message_types(&content),
            [
                HandshakeType::SEED_CODE,
                HandshakeType::KEY_CONFIRM_1,
                HandshakeType::KEY_EXCHANGE_1
            ]
        );
        assert!(message_types(&[1, 0, 0]).is_empty());
    }
}
