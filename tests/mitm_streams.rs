//! A session of streams (SPEC §14) under attack, over real sockets, through
//! the record-aware proxy of `tests/mitm.rs` (`tests/mitm/proxy.rs`).
//!
//! The application: the client opens two streams, each with its first
//! message in the record of its Open (`MuxSession::open_stream_with`),
//! reads each stream's answer, half-closes both, reads their ends and
//! closes the session; the server (stream limit 4, not the default, so
//! its Limit frame is the first record it seals) answers each stream's
//! message, reads its end and half-closes it. After the handshake the
//! flights depend on timing, each direction's records do not: the proxy
//! numbers the records of one direction, and the targets are the first
//! records of the streams:
//!
//! | target | record |
//! |---|---|
//! | `C>S o1` | Open 1 + Data (the first message) |
//! | `C>S o3` | Open 3 + Data (the second message) |
//! | `S>C lim` | Limit 4 |
//! | `S>C d1` | Data on stream 1 (the first answer) |
//! | `S>C d3` | Data on stream 3 (the second answer) |
//!
//! **An attacker without the keys** flips every byte of every target (one
//! session per byte), truncates, writes one byte at a time, delays,
//! duplicates, reorders, replays another session's record, injects a
//! forged sealed record, or resets the connections. Required: the 1-byte
//! writes and the delay succeed (every message delivered both ways, both
//! ends clean); everything else fails closed: the end that receives the
//! altered bytes ends its session with a typed error (a timeout only where
//! a flip lengthened a record), no message the peer did not send is ever
//! read from a stream, and nothing hangs.
//!
//! **A peer with the keys that breaks the stream rules.** A frame for a
//! stream that was never opened, data past a stream's window, data after a
//! stream's end or more Opens than a receiver will owe refusals for can
//! only come from inside the session: forged by an outsider they fail the
//! record's authentication (the inject rows). So a client that sends them
//! on purpose (`send_frames_for_testing_only`) plays that peer, through the
//! same proxy; the server must end the session with the named alert, and
//! the client must read it. And a server that announces a higher limit
//! than it enforces shows that the receiver's limit holds whatever the
//! opener believes: the stream past it is refused with its reason, its
//! siblings and the session go on.
//!
//! `cargo test --test mitm_streams -- --nocapture` prints the table.

#[allow(dead_code)]
#[path = "mitm/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{OsRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_session::mux::stream_error;
use sc_session::streams::{StreamError, STREAM_WINDOW};
use sc_session::{Acceptor, Connector, Error, MuxSession, SessionConfig, SessionStream};
use sc_wire::streams::{Frame, StreamId};
use sc_wire::{AlertCode, Codec, RecordHeader, RecordKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use proxy::{Dir, Manipulation, Numbering, Plan, Pos, Recording};

/// The handshake timeout of both ends.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// The application's wait for bytes on a stream, or for the session's end.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// A side still running after this long hangs.
const HANG: Duration = Duration::from_secs(15);
/// Sessions at once.
const PARALLEL: usize = 16;
/// Sessions at once for the manipulations that must succeed.
const PARALLEL_QUIET: usize = 4;
/// The server's stream limit.
const LIMIT: usize = 4;
/// Every message's length.
const MSG_LEN: usize = 28;
/// Records of the handshake each way (no early data): C[CH] C[5] C[8/10,
/// 11]; S[SH] S[3+4] S[6+7/9] S[12] S[13].
const HANDSHAKE_C2S: usize = 3;
const HANDSHAKE_S2C: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Unit {
    Open1,
    Open3,
    Limit,
    Answer1,
    Answer3,
}

impl Unit {
    const ALL: [Self; 5] = [
        Self::Open1,
        Self::Open3,
        Self::Limit,
        Self::Answer1,
        Self::Answer3,
    ];

    fn short(self) -> &'static str {
        match self {
            Self::Open1 => "C>S o1",
            Self::Open3 => "C>S o3",
            Self::Limit => "S>C lim",
            Self::Answer1 => "S>C d1",
            Self::Answer3 => "S>C d3",
        }
    }

    fn dir(self) -> Dir {
        match self {
            Self::Open1 | Self::Open3 => Dir::ClientToServer,
            _ => Dir::ServerToClient,
        }
    }

    /// The unit's record, numbered in its direction.
    fn index(self) -> usize {
        match self {
            Self::Open1 => HANDSHAKE_C2S,
            Self::Open3 => HANDSHAKE_C2S + 1,
            Self::Limit => HANDSHAKE_S2C,
            Self::Answer1 => HANDSHAKE_S2C + 1,
            Self::Answer3 => HANDSHAKE_S2C + 2,
        }
    }

    /// The record's length: header, frames, inner trailer, tag.
    fn len(self) -> usize {
        let frames = match self {
            Self::Open1 | Self::Open3 => 6 + 7 + MSG_LEN,
            Self::Limit => 9,
            Self::Answer1 | Self::Answer3 => 7 + MSG_LEN,
        };
        4 + frames + 3 + 16
    }

    fn targets(self) -> Vec<Pos> {
        vec![Pos {
            flight: 0,
            index: self.index(),
        }]
    }

    /// The unit and the next record of its direction, which its sender
    /// sends without waiting for the unit to be delivered.
    fn reorder_targets(self) -> Vec<Pos> {
        let p = |index| Pos { flight: 0, index };
        vec![p(self.index()), p(self.index() + 1)]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Flip,
    Truncate,
    Split,
    Delay,
    Duplicate,
    Reorder,
    Replay,
    Inject,
    Reset,
}

impl Kind {
    const ALL: [Self; 9] = [
        Self::Flip,
        Self::Truncate,
        Self::Split,
        Self::Delay,
        Self::Duplicate,
        Self::Reorder,
        Self::Replay,
        Self::Inject,
        Self::Reset,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Flip => "flip (every byte)",
            Self::Truncate => "truncate + FIN",
            Self::Split => "1-byte writes [ok]",
            Self::Delay => "delay 500 ms [ok]",
            Self::Duplicate => "duplicate",
            Self::Reorder => "reorder",
            Self::Replay => "replay (other session)",
            Self::Inject => "inject forged record",
            Self::Reset => "reset (RST)",
        }
    }

    fn succeeds(self) -> bool {
        matches!(self, Self::Split | Self::Delay)
    }
}

/// What the client does after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Play {
    /// The application above.
    Honest,
    /// Data for stream 99, never opened.
    UnknownStream,
    /// Opens stream 1, then sends a window and more on it without a grant.
    PastWindow,
    /// Open, Data, Fin and then Data again for stream 1, in one record.
    DataAfterFin,
    /// 10,000 Opens in one record: the server would owe 9,996 refusals.
    OpenFlood,
    /// Five streams to a server that enforces 4 but announced 300.
    PastLimit,
}

impl Play {
    const HOSTILE: [Self; 5] = [
        Self::UnknownStream,
        Self::PastWindow,
        Self::DataAfterFin,
        Self::OpenFlood,
        Self::PastLimit,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Honest => "honest",
            Self::UnknownStream => "frame for a stream never opened",
            Self::PastWindow => "data past the stream's window",
            Self::DataAfterFin => "data after the stream's end",
            Self::OpenFlood => "flood of Opens past the limit",
            Self::PastLimit => "one stream past the limit",
        }
    }

    /// The alert the server must end the session with.
    fn alert(self) -> Option<AlertCode> {
        match self {
            Self::UnknownStream | Self::DataAfterFin => Some(AlertCode::STREAM_STATE),
            Self::PastWindow => Some(AlertCode::FLOW_CONTROL),
            Self::OpenFlood => Some(AlertCode::TOO_LARGE),
            Self::Honest | Self::PastLimit => None,
        }
    }

    /// Streams the client opens (and the server answers).
    fn streams(self) -> usize {
        match self {
            Self::PastLimit => LIMIT + 1,
            _ => 2,
        }
    }
}

struct World {
    connector: Connector,
    acceptor: Acceptor,
}

impl World {
    fn new() -> Self {
        let pki =
            ThrowawayPki::new("server.test", "client-1", UnixTime::now(), &mut OsRng).expect("pki");
        let client = ClientConfig::builder()
            .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
            .with_credential(pki.client.clone())
            .build()
            .with_streams(true);
        let server = ServerConfig::builder()
            .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
            .with_credential(pki.server.clone())
            .build()
            .with_streams(true);
        let session = SessionConfig {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            ..SessionConfig::default()
        };
        Self {
            connector: Connector::new(Arc::new(client)).with_session_config(session.clone()),
            acceptor: Acceptor::new(Arc::new(server)).with_session_config(SessionConfig {
                max_streams: LIMIT,
                ..session
            }),
        }
    }
}

/// The messages of one session, unique to it, all `MSG_LEN` bytes.
struct Markers {
    client: Vec<Vec<u8>>,
    server: Vec<Vec<u8>>,
}

impl Markers {
    fn new(id: u64) -> Self {
        let nonce = OsRng.next_u64();
        let make = |side: char| -> Vec<Vec<u8>> {
            (1..=LIMIT + 1)
                .map(|i| {
                    let m = format!("{side}{i}-{id:08x}-{nonce:016x}").into_bytes();
                    assert_eq!(m.len(), MSG_LEN);
                    m
                })
                .collect()
        };
        Self {
            client: make('c'),
            server: make('s'),
        }
    }
}

/// How one end's part ended.
#[derive(Debug)]
enum Ending {
    /// Every stream done, the session closed cleanly.
    Clean,
    /// The session failed with this error.
    Failed(Error),
    /// Nothing came within the idle timeout: the application aborted.
    IdleTimeout,
    /// A stream ended (or was reset) where the application expected bytes.
    StreamEnded(String),
    /// A stream delivered bytes that were not the expected message.
    Unexpected(Vec<u8>),
    /// Still running after `HANG`.
    Hang,
    /// The task panicked.
    Panicked,
}

#[derive(Debug)]
struct Report {
    handshake_done: bool,
    /// Messages read from streams, in the order read.
    delivered: Vec<Vec<u8>>,
    /// Streams reset by the peer: their reason.
    refused: Vec<String>,
    ending: Ending,
}

impl Report {
    fn new() -> Self {
        Self {
            handshake_done: false,
            delivered: Vec::new(),
            refused: Vec::new(),
            ending: Ending::Clean,
        }
    }

    fn ended(mut self, ending: Ending) -> Self {
        self.ending = ending;
        self
    }
}

/// How a stream operation's failure ended things: the session's error,
/// or the stream's reset.
async fn why(session: &MuxSession, e: &std::io::Error) -> Ending {
    match stream_error(e) {
        Some(StreamError::Session(err)) => Ending::Failed(err.clone()),
        Some(other) => Ending::StreamEnded(other.to_string()),
        // Not from the stream: the session's end, if it comes.
        None => match tokio::time::timeout(IDLE_TIMEOUT, session.closed()).await {
            Ok(err) => Ending::Failed(err),
            Err(_) => Ending::StreamEnded(e.to_string()),
        },
    }
}

/// Reads one message from `s`; on failure, how the session ended.
async fn read_msg(session: &MuxSession, s: &mut SessionStream) -> Result<Vec<u8>, Ending> {
    let mut buf = vec![0u8; MSG_LEN];
    match tokio::time::timeout(IDLE_TIMEOUT, s.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Ok(buf),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(Ending::StreamEnded("end of stream".into()))
        }
        Ok(Err(e)) => Err(why(session, &e).await),
        Err(_) => {
            session.abort(AlertCode::TIMEOUT);
            Err(Ending::IdleTimeout)
        }
    }
}

/// Reads `s` to its end, which must come with no more bytes.
async fn read_end(session: &MuxSession, s: &mut SessionStream) -> Result<(), Ending> {
    let mut rest = Vec::new();
    match tokio::time::timeout(IDLE_TIMEOUT, s.read_to_end(&mut rest)).await {
        Ok(Ok(_)) if rest.is_empty() => Ok(()),
        Ok(Ok(_)) => Err(Ending::Unexpected(rest)),
        Ok(Err(e)) => Err(why(session, &e).await),
        Err(_) => {
            session.abort(AlertCode::TIMEOUT);
            Err(Ending::IdleTimeout)
        }
    }
}

/// Closes the session and waits for its end: clean after both Closes.
async fn close(session: &MuxSession) -> Ending {
    session.close();
    match tokio::time::timeout(IDLE_TIMEOUT, session.closed()).await {
        Ok(Error::PeerClosed) => Ending::Clean,
        Ok(e) => Ending::Failed(e),
        Err(_) => {
            session.abort(AlertCode::TIMEOUT);
            Ending::IdleTimeout
        }
    }
}

fn frames(list: &[Frame<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in list {
        f.encode(&mut out);
    }
    out
}

async fn client_side(world: Arc<World>, addr: SocketAddr, m: Arc<Markers>, play: Play) -> Report {
    let mut r = Report::new();
    let tcp = match TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(e) => return r.ended(Ending::Failed(e.into())),
    };
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("server.test")
        .expect("name")
        .to_owned();
    let secure = match world.connector.connect(name, None, tcp).await {
        Ok(s) => s,
        Err(e) => return r.ended(Ending::Failed(e)),
    };
    r.handshake_done = true;
    let Ok(session) = MuxSession::new(secure) else {
        panic!("the handshake agreed on streams");
    };
    if play.alert().is_some() {
        // The hostile plays: send the frames, then wait for the server's
        // answer (its alert).
        let one = StreamId(1);
        let sent = match play {
            Play::UnknownStream => session.send_frames_for_testing_only(&frames(&[Frame::Data {
                id: StreamId(99),
                data: b"x",
            }])),
            Play::PastWindow => {
                let opened = session.open_stream_with(None, &m.client[0]);
                let Ok((_stream, _)) = opened else {
                    return r.ended(Ending::StreamEnded("open failed".into()));
                };
                let chunk = vec![0x5a; 64_000];
                let records = STREAM_WINDOW as usize / chunk.len() + 2;
                (0..records).try_for_each(|_| {
                    session.send_frames_for_testing_only(&frames(&[Frame::Data {
                        id: one,
                        data: &chunk,
                    }]))
                })
            }
            Play::DataAfterFin => session.send_frames_for_testing_only(&frames(&[
                Frame::Open {
                    id: one,
                    service: None,
                },
                Frame::Data {
                    id: one,
                    data: &m.client[0],
                },
                Frame::Fin { id: one },
                Frame::Data {
                    id: one,
                    data: b"x",
                },
            ])),
            _ => {
                let opens: Vec<Frame<'_>> = (0..10_000u32)
                    .map(|i| Frame::Open {
                        id: StreamId(2 * i + 1),
                        service: None,
                    })
                    .collect();
                session.send_frames_for_testing_only(&frames(&opens))
            }
        };
        if let Err(e) = sent {
            return r.ended(Ending::Failed(e));
        }
        return match tokio::time::timeout(IDLE_TIMEOUT, session.closed()).await {
            Ok(e) => r.ended(Ending::Failed(e)),
            Err(_) => {
                session.abort(AlertCode::TIMEOUT);
                r.ended(Ending::IdleTimeout)
            }
        };
    }
    if play == Play::PastLimit {
        // Opens once the server's word (its lie) has come.
        let deadline = Instant::now() + IDLE_TIMEOUT;
        while session.peer_stream_limit() != 300 {
            if Instant::now() > deadline {
                return r.ended(Ending::StreamEnded("no Limit from the server".into()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut streams = Vec::new();
    for msg in &m.client[..play.streams()] {
        match session.open_stream_with(None, msg) {
            Ok((s, n)) if n == msg.len() => streams.push(s),
            Ok(_) => return r.ended(Ending::StreamEnded("first message cut".into())),
            // The handshake completed and the session failed right behind
            // it (the same read brought the bad record): its error.
            Err(StreamError::Session(err)) => return r.ended(Ending::Failed(err)),
            Err(e) => return r.ended(Ending::StreamEnded(e.to_string())),
        }
    }
    let mut answered = Vec::new();
    for mut s in streams {
        match read_msg(&session, &mut s).await {
            Ok(msg) => {
                r.delivered.push(msg);
                answered.push(s);
            }
            Err(Ending::StreamEnded(why)) if play == Play::PastLimit => r.refused.push(why),
            Err(e) => return r.ended(e),
        }
    }
    for s in &mut answered {
        if let Err(e) = s.shutdown().await {
            return r.ended(why(&session, &e).await);
        }
    }
    for s in &mut answered {
        if let Err(e) = read_end(&session, s).await {
            return r.ended(e);
        }
    }
    drop(answered);
    let ending = close(&session).await;
    r.ended(ending)
}

async fn server_side(
    world: Arc<World>,
    listener: TcpListener,
    m: Arc<Markers>,
    play: Play,
) -> Report {
    let mut r = Report::new();
    let tcp = match listener.accept().await {
        Ok((tcp, _)) => tcp,
        Err(e) => return r.ended(Ending::Failed(e.into())),
    };
    drop(listener);
    let _ = tcp.set_nodelay(true);
    let secure = match world.acceptor.accept(tcp).await {
        Ok(s) => s,
        Err(e) => return r.ended(Ending::Failed(e)),
    };
    r.handshake_done = true;
    let Ok(session) = MuxSession::new(secure) else {
        panic!("the handshake agreed on streams");
    };
    if play == Play::PastLimit {
        // Announces more than it enforces (in the record of its real Limit,
        // which the lie replaces): the client opens five.
        let lie = frames(&[Frame::Limit { max_streams: 300 }]);
        if let Err(e) = session.send_frames_for_testing_only(&lie) {
            return r.ended(Ending::Failed(e));
        }
    }
    let expected = play.streams().min(LIMIT);
    let mut streams = Vec::new();
    for answer in &m.server[..expected] {
        let accepted = tokio::time::timeout(IDLE_TIMEOUT, session.accept_stream()).await;
        let mut s = match accepted {
            Ok(Ok((s, _))) => s,
            Ok(Err(StreamError::Session(e))) => return r.ended(Ending::Failed(e)),
            Ok(Err(e)) => return r.ended(Ending::StreamEnded(e.to_string())),
            Err(_) => {
                session.abort(AlertCode::TIMEOUT);
                return r.ended(Ending::IdleTimeout);
            }
        };
        match read_msg(&session, &mut s).await {
            Ok(msg) => r.delivered.push(msg),
            Err(e) => return r.ended(e),
        }
        if let Err(e) = s.write_all(answer).await {
            return r.ended(why(&session, &e).await);
        }
        streams.push(s);
    }
    for s in &mut streams {
        if let Err(e) = read_end(&session, s).await {
            return r.ended(e);
        }
        if let Err(e) = s.shutdown().await {
            return r.ended(why(&session, &e).await);
        }
    }
    drop(streams);
    // The client closes the session; ours answers it.
    let ending = match tokio::time::timeout(IDLE_TIMEOUT, session.closed()).await {
        Ok(Error::PeerClosed) => Ending::Clean,
        Ok(e) => Ending::Failed(e),
        Err(_) => {
            session.abort(AlertCode::TIMEOUT);
            Ending::IdleTimeout
        }
    };
    r.ended(ending)
}

async fn bounded(f: impl std::future::Future<Output = Report>) -> Report {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| Report::new().ended(Ending::Hang))
}

struct Session {
    client: Report,
    server: Report,
    rec: Option<Recording>,
    markers: Arc<Markers>,
}

async fn run_session(world: &Arc<World>, id: u64, plan: Plan, play: Play) -> Session {
    let markers = Arc::new(Markers::new(id));
    let server_l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy_l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server_addr = server_l.local_addr().expect("address");
    let proxy_addr = proxy_l.local_addr().expect("address");
    let server = tokio::spawn(bounded(server_side(
        world.clone(),
        server_l,
        markers.clone(),
        play,
    )));
    let mut proxy = tokio::spawn(async move {
        let (c, _) = proxy_l.accept().await.ok()?;
        drop(proxy_l);
        let s = TcpStream::connect(server_addr).await.ok()?;
        Some(proxy::run(c, s, plan).await)
    });
    let client = tokio::spawn(bounded(client_side(
        world.clone(),
        proxy_addr,
        markers.clone(),
        play,
    )));
    let panicked = || Report::new().ended(Ending::Panicked);
    let client = client.await.unwrap_or_else(|_| panicked());
    let server = server.await.unwrap_or_else(|_| panicked());
    let rec = match tokio::time::timeout(HANG, &mut proxy).await {
        Ok(Ok(rec)) => rec,
        _ => {
            proxy.abort();
            None
        }
    };
    Session {
        client,
        server,
        rec,
        markers,
    }
}

fn forward() -> Plan {
    Plan {
        targets: Vec::new(),
        manipulation: Manipulation::Forward,
        numbering: Numbering::Flights,
    }
}

struct Scenario {
    id: u64,
    unit: Unit,
    kind: Kind,
    plan: Plan,
    /// The flip makes the record's length field larger: only a timeout can
    /// end the receiver's wait.
    may_stall: bool,
}

fn scenarios(reference: &Recording, donor: &Recording) -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut push = |unit: Unit, kind, targets, manipulation, may_stall| {
        out.push(Scenario {
            id: 5000 + out.len() as u64,
            unit,
            kind,
            plan: Plan {
                targets,
                manipulation,
                numbering: Numbering::Direction(unit.dir()),
            },
            may_stall,
        });
    };
    for unit in Unit::ALL {
        let record = reference
            .nth(unit.dir(), unit.index())
            .expect("recorded")
            .to_vec();
        let len = record.len();
        for at in 0..len {
            let mask = 1 << (at % 8);
            let lengthens = (1..4).contains(&at) && {
                let mut head = [record[0], record[1], record[2], record[3]];
                head[at] ^= mask;
                let old = RecordHeader::decode(&record[..4]).expect("header");
                RecordHeader::decode(&head).is_ok_and(|new| new.len > old.len)
            };
            push(
                unit,
                Kind::Flip,
                unit.targets(),
                Manipulation::Flip { at, mask },
                lengthens,
            );
        }
        for keep in [1, 4, len / 2, len - 1] {
            push(
                unit,
                Kind::Truncate,
                unit.targets(),
                Manipulation::Truncate { keep },
                false,
            );
        }
        push(
            unit,
            Kind::Split,
            unit.targets(),
            Manipulation::Split,
            false,
        );
        push(
            unit,
            Kind::Delay,
            unit.targets(),
            Manipulation::Delay(Duration::from_millis(500)),
            false,
        );
        push(
            unit,
            Kind::Duplicate,
            unit.targets(),
            Manipulation::Duplicate,
            false,
        );
        if unit != Unit::Answer3 && unit != Unit::Open3 {
            push(
                unit,
                Kind::Reorder,
                unit.reorder_targets(),
                Manipulation::Reorder,
                false,
            );
        }
        let replayed = donor
            .nth(unit.dir(), unit.index())
            .expect("donor record")
            .to_vec();
        push(
            unit,
            Kind::Replay,
            unit.targets(),
            Manipulation::Replay(vec![replayed]),
            false,
        );
        let mut forged = record[..4].to_vec();
        let mut body = vec![0u8; len - 4];
        ChaCha20Rng::seed_from_u64(len as u64).fill_bytes(&mut body);
        forged.extend_from_slice(&body);
        push(
            unit,
            Kind::Inject,
            unit.targets(),
            Manipulation::Inject(forged),
            false,
        );
        for keep in [0, len / 2] {
            push(
                unit,
                Kind::Reset,
                unit.targets(),
                Manipulation::Reset { keep },
                false,
            );
        }
    }
    out
}

fn ending_kind(e: &Ending) -> String {
    match e {
        Ending::Clean => "clean".into(),
        Ending::Failed(Error::PeerAlert(code)) => format!("PeerAlert({code})"),
        Ending::Failed(Error::StreamViolation { alert, .. }) => {
            format!("StreamViolation({alert})")
        }
        Ending::Failed(Error::Io(io)) => format!("Io({:?})", io.kind()),
        Ending::Failed(e) => {
            let debug = format!("{e:?}");
            let cut = debug.find([' ', '{', '(', '"']).unwrap_or(debug.len());
            debug[..cut].to_owned()
        }
        Ending::IdleTimeout => "app idle timeout".into(),
        Ending::StreamEnded(why) => format!("STREAM ENDED: {why}"),
        Ending::Unexpected(bytes) => format!("UNEXPECTED BYTES ({})", bytes.len()),
        Ending::Hang => "HANG".into(),
        Ending::Panicked => "PANIC".into(),
    }
}

/// Violations of the requirement for an outsider's manipulation.
fn judge(sc: &Scenario, s: &Session) -> Vec<String> {
    let mut v = Vec::new();
    let tag = format!("{:?} {:?} #{}", sc.kind, sc.unit, sc.id);
    if !s.rec.as_ref().is_some_and(|r| r.applied) {
        v.push(format!("{tag}: the target never reached the proxy"));
    }
    for (side, rep, sent) in [
        ("client", &s.client, &s.markers.server),
        ("server", &s.server, &s.markers.client),
    ] {
        for msg in &rep.delivered {
            if !sent.contains(msg) {
                v.push(format!("{tag}: the {side} read bytes nobody sent"));
            }
        }
        match rep.ending {
            Ending::Hang | Ending::Panicked | Ending::Unexpected(_) => {
                v.push(format!("{tag}: {side} {}", ending_kind(&rep.ending)));
            }
            _ => {}
        }
    }
    let (receiver, peer) = match sc.unit.dir() {
        Dir::ClientToServer => (&s.server, &s.client),
        Dir::ServerToClient => (&s.client, &s.server),
    };
    if sc.kind.succeeds() {
        let clean = matches!(s.client.ending, Ending::Clean)
            && matches!(s.server.ending, Ending::Clean)
            && s.client.delivered == s.markers.server[..2]
            && s.server.delivered == s.markers.client[..2];
        if !clean {
            v.push(format!(
                "{tag}: did not succeed: client {}, server {}",
                ending_kind(&s.client.ending),
                ending_kind(&s.server.ending)
            ));
        }
        return v;
    }
    match &receiver.ending {
        Ending::Failed(_) => {}
        Ending::IdleTimeout if sc.may_stall => {}
        other => v.push(format!(
            "{tag}: the receiver did not fail closed: {}",
            ending_kind(other)
        )),
    }
    if matches!(peer.ending, Ending::Clean) && matches!(receiver.ending, Ending::Clean) {
        v.push(format!("{tag}: completed despite the manipulation"));
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_streams_under_attack() {
    let started = Instant::now();
    let world = Arc::new(World::new());

    // The reference and the donor: two clean sessions, their records.
    let mut recs = Vec::new();
    for id in [1, 2] {
        let s = run_session(&world, id, forward(), Play::Honest).await;
        assert!(
            matches!(
                (&s.client.ending, &s.server.ending),
                (Ending::Clean, Ending::Clean)
            ),
            "a clean session: client {:?}, server {:?}",
            s.client.ending,
            s.server.ending
        );
        assert_eq!(s.client.delivered, s.markers.server[..2]);
        assert_eq!(s.server.delivered, s.markers.client[..2]);
        recs.push(s.rec.expect("recorded"));
    }
    let (reference, donor) = (&recs[0], &recs[1]);
    for unit in Unit::ALL {
        let a = reference.nth(unit.dir(), unit.index()).expect("reference");
        let b = donor.nth(unit.dir(), unit.index()).expect("donor");
        assert_eq!(a[0], RecordKind::SEALED.0, "{unit:?} is sealed");
        assert_eq!(a.len(), unit.len(), "{unit:?}: the record expected there");
        assert_eq!(b.len(), unit.len(), "{unit:?}: the record expected there");
        assert_ne!(a, b, "{unit:?}: two sessions differ");
    }
    // The handshake records before them, as counted.
    assert_eq!(reference.c2s[0][0], RecordKind::HANDSHAKE.0);
    assert_eq!(reference.s2c[0][0], RecordKind::HANDSHAKE.0);

    let list = scenarios(reference, donor);
    let flipped: usize = list.iter().filter(|s| s.kind == Kind::Flip).count();
    let every: usize = Unit::ALL.iter().map(|u| u.len()).sum();
    assert_eq!(flipped, every, "every byte of every target flipped once");
    let n = list.len();
    let (quiet, flood): (Vec<_>, Vec<_>) = list.into_iter().partition(|s| s.kind.succeeds());

    let mut cells: BTreeMap<(Kind, Unit), (usize, usize)> = BTreeMap::new();
    let mut outcomes: BTreeMap<Kind, BTreeMap<String, usize>> = BTreeMap::new();
    let mut violations = Vec::new();
    for (batch, parallel) in [(quiet, PARALLEL_QUIET), (flood, PARALLEL)] {
        let gate = Arc::new(Semaphore::new(parallel));
        let mut tasks = Vec::new();
        for sc in batch {
            let (world, gate) = (world.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                let s = run_session(&world, sc.id, sc.plan.clone(), Play::Honest).await;
                let v = judge(&sc, &s);
                let (receiver, peer) = match sc.unit.dir() {
                    Dir::ClientToServer => (&s.server, &s.client),
                    Dir::ServerToClient => (&s.client, &s.server),
                };
                let outcome = format!(
                    "receiver {} / sender {}",
                    ending_kind(&receiver.ending),
                    ending_kind(&peer.ending)
                );
                (sc.kind, sc.unit, v, outcome)
            }));
        }
        for t in tasks {
            let (kind, unit, v, outcome) = t.await.expect("a scenario task panicked");
            let c = cells.entry((kind, unit)).or_default();
            c.0 += usize::from(v.is_empty());
            c.1 += 1;
            *outcomes
                .entry(kind)
                .or_default()
                .entry(outcome)
                .or_default() += 1;
            violations.extend(v);
        }
    }

    // The hostile peer, through the same proxy (forwarding).
    let mut hostile = Vec::new();
    for (i, play) in Play::HOSTILE.into_iter().enumerate() {
        let s = run_session(&world, 9000 + i as u64, forward(), play).await;
        let mut v = Vec::new();
        let got = format!(
            "server {} / client {}",
            ending_kind(&s.server.ending),
            ending_kind(&s.client.ending)
        );
        match play.alert() {
            Some(alert) => {
                let server_ok = matches!(
                    &s.server.ending,
                    Ending::Failed(Error::StreamViolation { alert: a, .. }) if *a == alert
                );
                let client_ok =
                    matches!(&s.client.ending, Ending::Failed(Error::PeerAlert(a)) if *a == alert);
                if !(server_ok && client_ok) {
                    v.push(format!(
                        "{}: expected {alert} both ends, got {got}",
                        play.name()
                    ));
                }
            }
            None => {
                let limit = format!("stream limit reached ({LIMIT} open)");
                let ok = matches!(s.server.ending, Ending::Clean)
                    && matches!(s.client.ending, Ending::Clean)
                    && s.client.delivered == s.markers.server[..LIMIT]
                    && s.server.delivered == s.markers.client[..LIMIT]
                    && s.client.refused.len() == 1
                    && s.client.refused[0].contains(&limit);
                if !ok {
                    v.push(format!(
                        "{}: expected {LIMIT} streams answered and one refused ({limit}), \
                         got {got}, refused {:?}",
                        play.name(),
                        s.client.refused
                    ));
                }
            }
        }
        let shown = match play.alert() {
            Some(a) => format!("{a}: {got}"),
            None => format!("{LIMIT} answered, refused: {:?}; {got}", s.client.refused),
        };
        hostile.push((play.name(), v.is_empty(), shown));
        violations.extend(v);
    }

    let mut t = String::new();
    writeln!(
        t,
        "\n{n} sessions of streams under attack in {:.1?} (handshake timeout \
         {HANDSHAKE_TIMEOUT:?}, idle timeout {IDLE_TIMEOUT:?})",
        started.elapsed()
    )
    .expect("write");
    writeln!(t, "as required / total:").expect("write");
    write!(t, "{:24}", "manipulation").expect("write");
    for unit in Unit::ALL {
        write!(t, "{:>10}", unit.short()).expect("write");
    }
    writeln!(t).expect("write");
    for kind in Kind::ALL {
        write!(t, "{:24}", kind.name()).expect("write");
        for unit in Unit::ALL {
            let cell = cells
                .get(&(kind, unit))
                .map_or_else(|| "n/a".to_owned(), |(ok, all)| format!("{ok}/{all}"));
            write!(t, "{cell:>10}").expect("write");
        }
        writeln!(t).expect("write");
    }
    writeln!(
        t,
        "\noutcomes (receiver = the end the altered bytes go to):"
    )
    .expect("write");
    for (kind, by) in &outcomes {
        writeln!(t, "  {}:", kind.name()).expect("write");
        for (what, count) in by {
            writeln!(t, "    {count:6}  {what}").expect("write");
        }
    }
    writeln!(t, "\na peer with the keys breaking the stream rules:").expect("write");
    for (name, ok, shown) in &hostile {
        let mark = if *ok { "ok  " } else { "FAIL" };
        writeln!(t, "  {mark} {name:34} {shown}").expect("write");
    }
    writeln!(
        t,
        "every byte of the {} targets ({every} bytes) flipped once",
        Unit::ALL.len()
    )
    .expect("write");
    println!("{t}");

    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for ((kind, unit), (ok, all)) in &cells {
        assert_eq!(ok, all, "{kind:?} × {unit:?}");
    }
    assert_eq!(cells.len(), Kind::ALL.len() * Unit::ALL.len() - 2);
}
