//! The relay's retry rule, with the library `Relay` and raw TCP backends on
//! loopback: a backend that closes or resets the connection before its
//! first byte is treated like one that refuses (marked down, the same bytes
//! go to the next backend, the client sees nothing); when every backend of
//! the route fails so, the client gets the `no route` alert; once a backend
//! has sent a byte, the session is its. The ClientHello is built with
//! `sc-wire` alone: nothing here holds a key.
//!
//! Every wait is bounded; every fake backend is a task aborted when dropped.

use std::time::{Duration, Instant};

use sc_net::proxy_protocol::SIGNATURE;
use sc_net::Endpoint;
use sc_relay::{BackendStatus, Relay, RelayListenerSettings, RelaySettings, Route};
use sc_wire::{
    AlertCode, CipherSuite, ClientHello, Codec, HandshakeMessage, MlKemEncapsulationKey,
    ProtocolVersion, Random, RecordHeader, RecordKind, RouteName, X25519Public,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

/// The bound of every wait.
const WAIT: Duration = Duration::from_secs(10);

/// The length of the PROXY v2 header the relay sends for an IPv4 client.
const PROXY_V4_LEN: usize = 16 + 12;

/// A ClientHello record for `route` (the keys are filler: the relay reads
/// only the framing and the route).
fn hello(route: &str) -> Vec<u8> {
    let msg = HandshakeMessage::ClientHello(ClientHello {
        version: ProtocolVersion(0x5c01),
        random: Random::from([1; 32]),
        x25519: X25519Public::from([2; 32]),
        mlkem: MlKemEncapsulationKey::from([3; 1184]),
        suites: vec![CipherSuite(1)],
        route: Some(RouteName::new(route).expect("route")),
    })
    .encoded();
    let mut record = RecordHeader {
        kind: RecordKind::HANDSHAKE,
        len: msg.len(),
    }
    .encoded();
    record.extend_from_slice(&msg);
    record
}

/// What a fake backend does once it has read the relay's first bytes.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Resets the connection (SO_LINGER 0) without sending anything.
    Reset,
    /// Closes it (a clean end of stream) without sending anything.
    Close,
    /// Sends `OK`, then echoes until the relay half-closes, then closes.
    Answer,
    /// Sends one byte, then resets the connection.
    AnswerThenReset,
    /// Reads until the relay half-closes, then sends `BYE` and closes.
    AnswerAfterEof,
}

/// A fake backend: reads `first` bytes of each connection, reports them,
/// then does `then`. Aborted when dropped.
struct Backend {
    endpoint: Endpoint,
    got: mpsc::UnboundedReceiver<Vec<u8>>,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    async fn start(first: usize, then: Then) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = Endpoint::Tcp(listener.local_addr().expect("addr").to_string());
        let (tx, got) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                conns.spawn(async move {
                    let mut buf = vec![0u8; first];
                    if tcp.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let _ = tx.send(buf);
                    serve(tcp, then).await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Self {
            endpoint,
            got,
            task,
        }
    }

    /// The first bytes of every connection so far.
    fn connections(&mut self) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        while let Ok(bytes) = self.got.try_recv() {
            all.push(bytes);
        }
        all
    }
}

async fn serve(mut tcp: TcpStream, then: Then) {
    match then {
        Then::Reset => reset(tcp),
        Then::Close => drop(tcp),
        Then::Answer => {
            let _ = tcp.write_all(b"OK").await;
            let (mut r, mut w) = tcp.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        }
        Then::AnswerThenReset => {
            let _ = tcp.write_all(b"A").await;
            // Let the byte leave before the reset.
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset(tcp);
        }
        Then::AnswerAfterEof => {
            let mut rest = Vec::new();
            let _ = tcp.read_to_end(&mut rest).await;
            let _ = tcp.write_all(b"BYE").await;
            let _ = tcp.shutdown().await;
        }
    }
}

/// Closes `tcp` with a reset.
fn reset(tcp: TcpStream) {
    // SO_LINGER 0 does not block on close (the deprecation is about
    // non-zero lingers).
    #[allow(deprecated)]
    let _ = tcp.set_linger(Some(Duration::ZERO));
    drop(tcp);
}

/// A relay with one route, `svc.test`, to `backends` (in that order), no
/// health probes (only the passive checks).
async fn relay(backends: &[&Backend], proxy_v2: bool) -> (Relay, RelayAddr) {
    relay_with(backends, |l| l.send_proxy_v2 = proxy_v2).await
}

/// As [`relay`], with `edit` applied to the listener's settings.
async fn relay_with(
    backends: &[&Backend],
    edit: impl FnOnce(&mut RelayListenerSettings),
) -> (Relay, RelayAddr) {
    let mut listener = RelayListenerSettings::new(Endpoint::Tcp("127.0.0.1:0".into()));
    listener.routes.push(Route {
        name: RouteName::new("svc.test").expect("route"),
        backends: backends.iter().map(|b| b.endpoint.clone()).collect(),
    });
    edit(&mut listener);
    let relay = Relay::bind(RelaySettings {
        listeners: vec![listener],
        health_interval: None,
    })
    .await
    .expect("relay");
    let Endpoint::Tcp(addr) = relay.local_endpoints().remove(0) else {
        panic!("a TCP listener");
    };
    (relay, RelayAddr(addr))
}

/// The relay's address.
struct RelayAddr(String);

impl RelayAddr {
    /// A client that has sent its ClientHello for `svc.test`.
    async fn hello(&self) -> TcpStream {
        let mut c = timeout(WAIT, TcpStream::connect(&self.0))
            .await
            .expect("connect in time")
            .expect("connect");
        c.write_all(&hello("svc.test")).await.expect("write");
        c
    }
}

/// Everything until the peer closes (bounded); an error if it reset.
async fn read_to_close(c: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    timeout(WAIT, c.read_to_end(&mut all))
        .await
        .expect("closed in time")?;
    Ok(all)
}

fn health(relay: &Relay, b: &Backend) -> BackendStatus {
    relay
        .backends()
        .into_iter()
        .find(|s| s.endpoint == b.endpoint)
        .expect("a backend of the relay")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_that_reset_or_close_before_answering_are_skipped_and_marked_down() {
    let len = hello("svc.test").len();
    let mut resets = Backend::start(len, Then::Reset).await;
    let mut closes = Backend::start(len, Then::Close).await;
    let mut good = Backend::start(len, Then::Answer).await;
    let (relay, to) = relay(&[&resets, &closes, &good], false).await;
    for i in 0..20 {
        let mut c = to.hello().await;
        let mut ok = [0u8; 2];
        timeout(WAIT, c.read_exact(&mut ok))
            .await
            .expect("an answer in time")
            .unwrap_or_else(|e| panic!("session {i}: {e}"));
        assert_eq!(&ok, b"OK", "session {i}");
        c.write_all(b"ping").await.expect("write");
        c.shutdown().await.expect("half-close");
        assert_eq!(read_to_close(&mut c).await.expect("read"), b"ping");
    }
    // The first session met both failing backends (each is tried first in
    // turn), so both are down; the sessions after it went to the good one.
    assert!(!health(&relay, &resets).healthy);
    assert!(!health(&relay, &closes).healthy);
    assert!(health(&relay, &good).healthy);
    let hello = hello("svc.test");
    for (name, b) in [("resets", &mut resets), ("closes", &mut closes)] {
        let got = b.connections();
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0], hello, "{name}");
    }
    let got = good.connections();
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|g| *g == hello));
    relay.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_replays_the_proxy_header_and_the_client_hello_unchanged() {
    let len = PROXY_V4_LEN + hello("svc.test").len();
    let mut resets = Backend::start(len, Then::Reset).await;
    let mut good = Backend::start(len, Then::Answer).await;
    let (relay, to) = relay(&[&resets, &good], true).await;
    let mut c = to.hello().await;
    let client_port = c.local_addr().expect("addr").port().to_be_bytes();
    let mut ok = [0u8; 2];
    timeout(WAIT, c.read_exact(&mut ok))
        .await
        .expect("in time")
        .expect("answer");
    assert_eq!(&ok, b"OK");
    drop(c);
    let first = resets.connections();
    let second = good.connections();
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_eq!(first[0], second[0]);
    assert_eq!(first[0][..SIGNATURE.len()], SIGNATURE);
    // The header names this client (its port, source address first).
    assert_eq!(first[0][24..26], client_port);
    assert_eq!(first[0][PROXY_V4_LEN..], hello("svc.test"));
    assert!(!health(&relay, &resets).healthy);
    relay.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_backend_fails_before_answering_the_client_gets_no_route_at_once() {
    let len = hello("svc.test").len();
    let resets = Backend::start(len, Then::Reset).await;
    let closes = Backend::start(len, Then::Close).await;
    let (relay, to) = relay(&[&resets, &closes], false).await;
    // Twice: once while both are up, once when both are down (each is then
    // tried once more, as a last resort).
    for _ in 0..2 {
        let started = Instant::now();
        let mut c = to.hello().await;
        let got = read_to_close(&mut c)
            .await
            .expect("the alert, then a close");
        assert_eq!(got, [0xc2, 0, 0, 1, AlertCode::NO_ROUTE.0]);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(!health(&relay, &resets).healthy);
        assert!(!health(&relay, &closes).healthy);
    }
    relay.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_has_answered_keeps_the_session() {
    let len = hello("svc.test").len();
    let answers = Backend::start(len, Then::AnswerThenReset).await;
    let mut good = Backend::start(len, Then::Answer).await;
    let (relay, to) = relay(&[&answers, &good], false).await;
    let mut c = to.hello().await;
    // Its byte, then the cut: no retry, no alert.
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        match timeout(WAIT, c.read(&mut buf)).await.expect("in time") {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(got, b"A");
    assert!(good.connections().is_empty());
    assert!(health(&relay, &answers).healthy);
    relay.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_before_the_answer_is_carried_through() {
    // While the relay waits for the backend's first byte, a client's
    // half-close still reaches the backend (which here answers only then).
    let len = hello("svc.test").len();
    let waits = Backend::start(len, Then::AnswerAfterEof).await;
    let (relay, to) = relay(&[&waits], false).await;
    let mut c = to.hello().await;
    c.shutdown().await.expect("half-close");
    assert_eq!(read_to_close(&mut c).await.expect("read"), b"BYE");
    relay.shutdown(WAIT).await;
}

/// A TCP connection to `addr` from the loopback source address `from`.
async fn tcp_from(from: &str, addr: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("source"))
        .expect("bind the source address");
    timeout(WAIT, socket.connect(addr.parse().expect("address")))
        .await
        .expect("connect in time")
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_address_cannot_take_every_connection_slot() {
    let answers = Backend::start(hello("svc.test").len(), Then::Answer).await;
    let (_relay, RelayAddr(addr)) =
        relay_with(&[&answers], |l| l.limits.max_connections_per_source = 2).await;
    // Three silent connections from 127.0.0.6: two hold its share (which
    // two depends on the order the relay's tasks run), one is refused at
    // once with `going away`.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(tcp_from("127.0.0.6", &addr).await);
    }
    let mut refused = 0;
    let mut held = Vec::new();
    for mut c in conns {
        let mut got = [0u8; 5];
        match timeout(Duration::from_secs(2), c.read_exact(&mut got)).await {
            Ok(Ok(_)) => {
                assert_eq!(got, [0xc2, 0, 0, 1, AlertCode::GOING_AWAY.0]);
                refused += 1;
            }
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => held.push(c),
        }
    }
    assert_eq!((refused, held.len()), (1, 2), "one refused, two held");
    // Another address is relayed.
    let mut other = tcp_from("127.0.0.7", &addr).await;
    other.write_all(&hello("svc.test")).await.expect("hello");
    let mut ok = [0u8; 2];
    timeout(WAIT, other.read_exact(&mut ok))
        .await
        .expect("answer in time")
        .expect("read");
    assert_eq!(&ok, b"OK");
}
