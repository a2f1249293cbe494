//! The sans-I/O connection: the handshake and the record layer together.
//!
//! Bytes from the peer go in through [`Connection::receive`] (or, without a
//! copy, through [`Connection::receive_buffer`] and
//! [`Connection::process_received`]); bytes for the peer come out of
//! [`Connection::take_outgoing`]. Time and randomness are arguments. Nothing
//! here reads a socket or a clock.
//!
//! Two ways in for application data, as in rustls (its `Writer` apart from
//! its messages): [`Connection::send_message`] seals a whole message, and
//! [`Connection::write_stream`] seals one record of a byte stream and says
//! how many bytes it took. [`Stats`] counts the two apart.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;
use sc_handshake::{
    Action, ClientConfig, ClientHandshake, CryptoProvider, HandshakeSummary, Level, RekeyKeys,
    Secret, ServerConfig, ServerHandshake,
};
use sc_pki::{ServerName, UnixTime};
use sc_wire::record::{MAX_FRAGMENT_LEN, RECORD_HEADER_LEN};
use sc_wire::streams::{ResetCode, ServiceName, StreamId};
use sc_wire::{
    Alert, AlertCode, CipherSuite, Codec, InnerType, RecordHeader, RecordKind, RouteName,
};
use zeroize::Zeroize;

use crate::error::{Error, RekeyError};
use crate::record::{Direction, RecordOpener, RecordSealer};
use crate::rekey::{InitOutcome, Rekey, RekeyDone, RekeyPolicy, Waiting};
use crate::side::Side;
use crate::streams::{Events, Read, StreamError, Streams, Writable, DEFAULT_MAX_STREAMS};
use crate::trace::HandshakeTrace;

/// How much later than its interval a server starts a re-key by time (1 s):
/// with equal intervals, the client's RekeyInit (its epoch clock starts
/// half a round trip earlier) arrives first.
pub const SERVER_REKEY_SLACK: Duration = Duration::from_secs(1);

/// Default handshake timeout (30 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default largest message the message API accepts and reassembles (1 MiB).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1024 * 1024;

/// Spare room [`Connection::receive_buffer`] makes for the peer's next bytes
/// (256 KiB: several whole records per read; a full record is 64 KiB + 23,
/// so a 64 KiB read never held one). Freed again when the session idles.
pub const RECEIVE_CHUNK_LEN: usize = 256 * 1024;

/// The room a fill gets at first, and again after one that did not fill
/// its room: a quiet connection's output buffer stays this small, and a
/// bulk transfer gets whole records from its second read on.
const FIRST_FILL: usize = 16 * 1024;

/// The room after a fill that brought `n` bytes into `room`.
fn next_fill_room(n: usize, room: usize) -> usize {
    if n >= room {
        usize::MAX
    } else {
        FIRST_FILL
    }
}

/// How records are padded, to hide message lengths from an observer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// No padding.
    #[default]
    None,
    /// Pad every sealed record's content up to a multiple of this many bytes
    /// (1–65535; capped by the record size limit); empty content is padded
    /// to one block.
    Block(u16),
}

/// Session tuning, shared by both sides.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Largest message [`Connection::send_message`] accepts and the receiver
    /// reassembles; larger ones fail with a "too large" error. Default 1 MiB.
    pub max_message_len: usize,
    /// Record padding. Default none.
    pub padding: Padding,
    /// Most content bytes per record (1–65536). Default 65536.
    pub max_fragment_len: usize,
    /// Time from the start of the connection to a complete handshake, after
    /// which [`Connection::handle_timeout`] ends it. Default 30 s; at least
    /// 1 s. Counted in the whole seconds of the `now` the caller passes.
    pub handshake_timeout: Duration,
    /// In a session of streams (SPEC §14): how many streams the peer may
    /// hold open here at once; one more is refused. Default 256.
    pub max_streams: usize,
    /// In a session that re-keys (SPEC §15): when this side starts a
    /// re-key by itself. Default every 120 s, 1 GiB or 2²⁴ records.
    pub rekey: RekeyPolicy,
    /// Record the handshake as it runs ([`HandshakeTrace`]: each record's
    /// handshake messages in the order processed, its size on the wire and,
    /// from the I/O layer, its time), for a picture or a test. Default off:
    /// then nothing is recorded.
    pub trace: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            padding: Padding::None,
            max_fragment_len: MAX_FRAGMENT_LEN,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_streams: DEFAULT_MAX_STREAMS,
            rekey: RekeyPolicy::default(),
            trace: false,
        }
    }
}

/// Byte and message counts of one session.
///
/// On the wire a byte-stream record ([`Connection::write_stream`]) is a
/// message of one record, the same record kind and inner type as a short
/// [`Connection::send_message`]: the sender counts the two apart, the
/// receiver cannot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes this side put on the wire (headers, padding and tags included).
    pub bytes_sent: u64,
    /// Bytes received from the wire and processed.
    pub bytes_received: u64,
    /// Bytes this side put on the wire during the handshake (every record up
    /// to and including its last handshake record).
    pub handshake_bytes_sent: u64,
    /// Messages sent with [`Connection::send_message`], counted when sealed
    /// (one queued before the keys exist counts when it goes out). Byte-stream
    /// writes are not messages: see `stream_bytes_sent`.
    pub messages_sent: u64,
    /// Application bytes sent with [`Connection::write_stream`] (what
    /// `AsyncWrite` on a `SecureStream` accepted),
    /// counted when sealed.
    pub stream_bytes_sent: u64,
    /// Messages received whole: every message the peer sent with
    /// `send_message`, and also every record of the peer's byte stream (each
    /// is a one-record message on the wire, so the two cannot be told apart
    /// here). Counted when the last record of the message is processed, not
    /// when it is read.
    pub messages_received: u64,
}

/// Application data waiting for our write keys.
enum Queued {
    /// A whole message from [`Connection::send_message`].
    Message(Vec<u8>),
    /// One record's worth of byte stream from [`Connection::write_stream`].
    Stream(Vec<u8>),
}

enum Handshake {
    Client(ClientHandshake),
    Server(ServerHandshake),
    Done,
}

/// The peer's bytes that are not yet processed: `buf[start..]`.
///
/// Whole records are opened in place in `buf` (sc-wire's `Deframer` rules:
/// a header is checked as soon as its four bytes are in, a record is handed
/// on only when its whole body is). Bytes before `start` belong to records
/// already processed; the plaintext of a message of one record stays where
/// it was opened until it is read ([`Inbound::InPlace`]), and everything
/// before the first such message is dropped when room is made for more.
#[derive(Default)]
struct ReceiveBuffer {
    buf: Vec<u8>,
    start: usize,
}

impl ReceiveBuffer {
    /// Bytes received and not yet part of a processed record.
    fn pending(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Makes at least `room` bytes of spare capacity, dropping the bytes
    /// before `keep` (at most `start`) first, without moving anything when
    /// nothing after them is kept. Returns how far the kept bytes moved
    /// towards the front.
    fn make_room(&mut self, room: usize, keep: usize) -> usize {
        let keep = keep.min(self.start);
        let mut moved = 0;
        if keep >= self.buf.len() {
            moved = keep;
            self.buf.clear();
            self.start = 0;
        } else if keep > 0 && self.buf.capacity() - self.buf.len() < room {
            self.buf.drain(..keep);
            self.start -= keep;
            moved = keep;
        }
        self.buf.reserve(room);
        moved
    }
}

/// A whole message from the peer, waiting to be read.
#[derive(Debug)]
enum Inbound {
    /// Reassembled from several records.
    Owned(Vec<u8>),
    /// The content of one record, where it was opened in the receive
    /// buffer: `buf[start..start + len]` (no copy, no allocation).
    InPlace { start: usize, len: usize },
}

enum ReadState {
    Plaintext,
    Sealed { level: Level, opener: RecordOpener },
}

/// One end of a Sovereign-Chain session, without I/O.
pub struct Connection {
    side: Side,
    provider: &'static CryptoProvider,
    config: SessionConfig,
    started: UnixTime,
    handshake: Handshake,
    summary: Option<HandshakeSummary>,
    received: ReceiveBuffer,
    read: ReadState,
    write_hs: Option<RecordSealer>,
    write_app: Option<RecordSealer>,
    outgoing: Vec<u8>,
    queued: VecDeque<Queued>,
    queued_bytes: usize,
    close_queued: bool,
    inbox: VecDeque<Inbound>,
    /// Bytes of the first message in `inbox` already read as bytes.
    inbox_read: usize,
    partial: Vec<u8>,
    sent_close: bool,
    received_close: bool,
    failed: Option<Error>,
    stats: Stats,
    /// Set when the handshake agreed on streams.
    streams: Option<Streams>,
    /// The frames owed the peer, encoded on their way into a record: kept
    /// (empty) for the next ones.
    owed_frames: Vec<u8>,
    /// The room the next fill gets ([`Self::write_stream_from`]): a whole
    /// record after a fill that filled its room (bulk), else
    /// [`FIRST_FILL`], so a quiet connection's output buffer stays small.
    fill_room: usize,
    /// What the handshake kept for re-keying, until it completes.
    rekey_keys: Option<Box<RekeyKeys>>,
    /// Set when the handshake agreed on re-keying.
    rekey: Option<Rekey>,
    /// The handshake as it ran, when [`SessionConfig::trace`] asks for it.
    trace: Option<HandshakeTrace>,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("handshaking", &self.is_handshaking())
            .field("sent_close", &self.sent_close)
            .field("received_close", &self.received_close)
            .field("failed", &self.failed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A client connection to `server_name`; flight 1 is ready in
    /// [`take_outgoing`](Self::take_outgoing).
    pub fn client(
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
        route: Option<RouteName>,
        session: SessionConfig,
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Self, Error> {
        let provider = config.provider();
        let (hs, actions) = ClientHandshake::start(config, server_name, route, rng)?;
        let mut conn = Self::new(Side::Client, provider, session, now, Handshake::Client(hs));
        conn.apply(actions)?;
        Ok(conn)
    }

    /// A server connection, accepted at `now`, waiting for a ClientHello.
    pub fn server(config: Arc<ServerConfig>, session: SessionConfig, now: UnixTime) -> Self {
        let provider = config.provider();
        let hs = Handshake::Server(ServerHandshake::new(config));
        Self::new(Side::Server, provider, session, now, hs)
    }

    fn new(
        side: Side,
        provider: &'static CryptoProvider,
        mut config: SessionConfig,
        now: UnixTime,
        handshake: Handshake,
    ) -> Self {
        config.max_fragment_len = config.max_fragment_len.clamp(1, MAX_FRAGMENT_LEN);
        config.handshake_timeout = config.handshake_timeout.max(Duration::from_secs(1));
        let trace = config.trace.then(|| HandshakeTrace::new(side));
        Self {
            side,
            provider,
            config,
            started: now,
            handshake,
            summary: None,
            received: ReceiveBuffer::default(),
            read: ReadState::Plaintext,
            write_hs: None,
            write_app: None,
            outgoing: Vec::new(),
            queued: VecDeque::new(),
            queued_bytes: 0,
            close_queued: false,
            inbox: VecDeque::new(),
            inbox_read: 0,
            partial: Vec::new(),
            sent_close: false,
            received_close: false,
            failed: None,
            stats: Stats::default(),
            streams: None,
            owed_frames: Vec::new(),
            fill_room: FIRST_FILL,
            rekey_keys: None,
            rekey: None,
            trace,
        }
    }

    /// Which side this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        !matches!(self.handshake, Handshake::Done)
    }

    /// What the handshake established, once complete.
    pub fn summary(&self) -> Option<&HandshakeSummary> {
        self.summary.as_ref()
    }

    /// Byte and message counts (see [`Stats`] for what each one counts).
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The handshake as it ran so far, when [`SessionConfig::trace`] is on.
    pub fn handshake_trace(&self) -> Option<&HandshakeTrace> {
        self.trace.as_ref()
    }

    /// Takes the handshake trace out of the connection (for an I/O layer
    /// that keeps it with what the handshake established).
    pub fn take_handshake_trace(&mut self) -> Option<HandshakeTrace> {
        self.trace.take()
    }

    /// For the trace ([`SessionConfig::trace`]): the I/O layer's time, from
    /// the start of the handshake. Records sent and not yet stamped are
    /// stamped with it (call it as they are handed to the transport), and
    /// records received from now on carry it (call it before processing
    /// what was read). Does nothing when the trace is off.
    pub fn set_trace_time(&mut self, since_start: Duration) {
        if let Some(trace) = &mut self.trace {
            trace.stamp_sent(since_start);
            trace.set_clock(since_start);
        }
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&Error> {
        self.failed.as_ref()
    }

    /// Whether the peer has closed its sending direction with an
    /// authenticated close.
    pub fn peer_closed(&self) -> bool {
        self.received_close
    }

    /// Whether we have sent our authenticated close.
    pub fn sent_close(&self) -> bool {
        self.sent_close
    }

    /// Bytes waiting to be written to the peer.
    pub fn has_outgoing(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// How many bytes wait to be written to the peer (what
    /// [`take_outgoing`](Self::take_outgoing) would return), for a caller
    /// that bounds its buffering by calling [`write_stream`](Self::write_stream)
    /// only while a whole record still fits.
    pub fn outgoing_len(&self) -> usize {
        self.outgoing.len()
    }

    /// Takes the bytes to write to the peer.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.outgoing)
    }

    /// Appends the bytes to write to the peer to `out`. When `out` is empty
    /// the two buffers are swapped instead of copied, so a caller that
    /// alternates between writing `out` and calling this reuses both
    /// allocations and copies nothing.
    pub fn write_outgoing(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            core::mem::swap(out, &mut self.outgoing);
        } else {
            out.append(&mut self.outgoing);
        }
    }

    /// The next complete message from the peer (after a partial
    /// [`consume`](Self::consume), the rest of it). Messages received whole
    /// before a failure stay readable after it.
    pub fn recv_message(&mut self) -> Option<Vec<u8>> {
        let read = core::mem::take(&mut self.inbox_read);
        match self.inbox.pop_front()? {
            Inbound::Owned(mut msg) => {
                msg.drain(..read.min(msg.len()));
                Some(msg)
            }
            Inbound::InPlace { start, len } => Some(
                self.received
                    .buf
                    .get(start + read.min(len)..start + len)
                    .unwrap_or_default()
                    .to_vec(),
            ),
        }
    }

    /// The unread bytes of the next message, read where the record was
    /// opened (for a byte-stream reader: copy them out, then
    /// [`consume`](Self::consume) what was taken). `None` when no message
    /// waits; empty messages are skipped.
    pub fn readable(&mut self) -> Option<&[u8]> {
        loop {
            let (start, len) = match self.inbox.front()? {
                Inbound::Owned(msg) => (None, msg.len()),
                Inbound::InPlace { start, len } => (Some(*start), *len),
            };
            // Read, or (never for bytes only appended to the receive
            // buffer) no longer there: gone.
            let gone = start.is_some_and(|s| s + len > self.received.buf.len());
            if self.inbox_read >= len || gone {
                self.inbox.pop_front();
                self.inbox_read = 0;
                continue;
            }
            let from = self.inbox_read;
            return match (start, self.inbox.front()) {
                (None, Some(Inbound::Owned(msg))) => msg.get(from..),
                (Some(start), _) => self.received.buf.get(start + from..start + len),
                _ => None,
            };
        }
    }

    /// Marks `n` bytes of [`readable`](Self::readable) as read; the message
    /// is gone once all of it is.
    pub fn consume(&mut self, n: usize) {
        let len = match self.inbox.front() {
            Some(Inbound::Owned(msg)) => msg.len(),
            Some(Inbound::InPlace { len, .. }) => *len,
            None => return,
        };
        self.inbox_read = self.inbox_read.saturating_add(n);
        if self.inbox_read >= len {
            self.inbox.pop_front();
            self.inbox_read = 0;
        }
    }

    /// Makes room for `room` more received bytes, keeping the plaintext of
    /// the messages that wait in place.
    fn make_receive_room(&mut self, room: usize) {
        let keep = self
            .inbox
            .iter()
            .find_map(|m| match m {
                Inbound::InPlace { start, .. } => Some(*start),
                Inbound::Owned(_) => None,
            })
            .unwrap_or(usize::MAX);
        let moved = self.received.make_room(room, keep);
        if moved > 0 {
            for m in &mut self.inbox {
                if let Inbound::InPlace { start, .. } = m {
                    *start -= moved;
                }
            }
        }
    }

    /// Complete messages waiting in [`recv_message`](Self::recv_message).
    pub fn pending_messages(&self) -> usize {
        self.inbox.len()
    }

    /// Processes bytes received from the peer. On error the session is over:
    /// an alert naming the reason is queued for the peer (unless the peer
    /// ended it), and every later call returns the same error.
    pub fn receive(
        &mut self,
        data: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.make_receive_room(data.len());
        self.received.buf.extend_from_slice(data);
        self.process_received(now, rng)
    }

    /// The buffer the peer's bytes go into, with at least
    /// [`RECEIVE_CHUNK_LEN`] bytes of spare capacity: append what arrives
    /// (for example by reading from a socket straight into the spare
    /// capacity), then call [`process_received`](Self::process_received).
    /// This is [`receive`](Self::receive) without the copy.
    ///
    /// The bytes already in the vector are received bytes not yet processed
    /// (a partial record); only append to it.
    pub fn receive_buffer(&mut self) -> &mut Vec<u8> {
        self.make_receive_room(RECEIVE_CHUNK_LEN);
        &mut self.received.buf
    }

    /// Processes the bytes appended to [`receive_buffer`](Self::receive_buffer),
    /// as [`receive`](Self::receive) does.
    pub fn process_received(
        &mut self,
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut received = core::mem::take(&mut self.received);
        let result = self.process(&mut received, now, rng);
        self.received = received;
        result.map_err(|e| self.fail(e))
    }

    /// Bytes received from the peer that do not yet form a whole record.
    pub fn pending_received(&self) -> usize {
        self.received.pending()
    }

    /// Frees the receive and outgoing buffers where they hold nothing, so an
    /// idle session keeps no buffer memory; they are allocated again when
    /// needed. For an I/O layer to call when the transport has nothing to
    /// read.
    pub fn shrink_buffers(&mut self) {
        let in_place = self
            .inbox
            .iter()
            .any(|m| matches!(m, Inbound::InPlace { .. }));
        if self.received.pending() == 0 && !in_place {
            self.received = ReceiveBuffer::default();
        }
        if self.outgoing.is_empty() {
            self.outgoing = Vec::new();
        }
        if let Some(streams) = &mut self.streams {
            streams.shrink();
        }
        self.owed_frames = Vec::new();
    }

    /// The peer closed the transport (TCP FIN). Clean only after the peer's
    /// authenticated close; otherwise data may have been cut off.
    pub fn receive_eof(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.received_close && self.received.pending() == 0 {
            return Ok(());
        }
        Err(self.fail(Error::Truncated))
    }

    /// When the handshake times out, while it is running.
    pub fn handshake_deadline(&self) -> Option<UnixTime> {
        if !self.is_handshaking() || self.failed.is_some() {
            return None;
        }
        let deadline = self
            .started
            .as_secs()
            .saturating_add(self.config.handshake_timeout.as_secs());
        Some(UnixTime::since_unix_epoch(Duration::from_secs(deadline)))
    }

    /// Ends the session with a timeout error (and a timeout alert to the
    /// peer) if the handshake is still running at its deadline.
    pub fn handle_timeout(&mut self, now: UnixTime) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.handshake_deadline() {
            Some(deadline) if now.as_secs() >= deadline.as_secs() => {
                Err(self.fail(Error::Timeout {
                    after: self.config.handshake_timeout,
                }))
            }
            _ => Ok(()),
        }
    }

    /// Sends one message; the peer receives it whole, with its boundaries
    /// (for a byte stream, see [`write_stream`](Self::write_stream)).
    /// Before our write keys exist (client: until the server's step-9 flight
    /// is in; server: until the handshake completes) the message is queued
    /// and goes out with the first flight that can carry it.
    pub fn send_message(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.can_send()?;
        if msg.len() > self.config.max_message_len {
            return Err(Error::MessageTooLarge {
                len: msg.len(),
                max: self.config.max_message_len,
            });
        }
        if self.write_app.is_none() {
            if self.queued_bytes + msg.len() > self.config.max_message_len {
                return Err(Error::QueueFull {
                    max: self.config.max_message_len,
                });
            }
            self.queued_bytes += msg.len();
            self.queued.push_back(Queued::Message(msg.to_vec()));
            return Ok(());
        }
        self.seal_message(msg).map_err(|e| self.fail(e))
    }

    /// Writes the start of `data` as one record of a byte stream and returns
    /// how many of its bytes were taken; call again with the rest. A record
    /// takes at most [`SessionConfig::max_fragment_len`] bytes (and no more
    /// than [`SessionConfig::max_message_len`]: the peer reassembles it as a
    /// message). Empty `data` takes 0 bytes and seals nothing.
    ///
    /// The byte stream keeps no boundaries. The peer sees each record as a
    /// message of one record (the wire does not mark stream records apart);
    /// here they count in [`Stats::stream_bytes_sent`], not as messages.
    ///
    /// Before our write keys exist the bytes are queued as
    /// [`send_message`](Self::send_message) queues messages, within the same
    /// limit: this takes what still fits, and fails with
    /// [`Error::QueueFull`] only when nothing does.
    pub fn write_stream(&mut self, data: &[u8]) -> Result<usize, Error> {
        self.can_send()?;
        if data.is_empty() {
            return Ok(0);
        }
        let record_len = self
            .config
            .max_fragment_len
            .min(self.config.max_message_len);
        if record_len == 0 {
            // A maximum message length of 0: no record with data fits.
            return Err(Error::MessageTooLarge {
                len: data.len(),
                max: self.config.max_message_len,
            });
        }
        let n = data.len().min(record_len);
        if self.write_app.is_none() {
            let n = n.min(
                self.config
                    .max_message_len
                    .saturating_sub(self.queued_bytes),
            );
            if n == 0 {
                return Err(Error::QueueFull {
                    max: self.config.max_message_len,
                });
            }
            self.queued_bytes += n;
            self.queued.push_back(Queued::Stream(data[..n].to_vec()));
            return Ok(n);
        }
        self.seal_stream(&data[..n]).map_err(|e| self.fail(e))?;
        Ok(n)
    }

    /// As [`write_stream`](Self::write_stream), with the record's bytes
    /// appended by `fill` straight into the record, where they are sealed
    /// in place: no copy between the caller's buffer and the record (a
    /// tunnel entry reads its plaintext socket straight into the record).
    ///
    /// `fill` gets the output buffer and the most it may append; it must
    /// only append (a read into the buffer's spare room), and what it
    /// returns is handed back with how many bytes it appended. Appending
    /// nothing seals nothing.
    pub fn write_stream_from<R>(
        &mut self,
        fill: impl FnOnce(&mut Vec<u8>, usize) -> R,
    ) -> Result<(usize, R), Error> {
        self.can_send()?;
        let record_len = self
            .config
            .max_fragment_len
            .min(self.config.max_message_len);
        if self.write_app.is_none() || record_len == 0 {
            // Before our keys (the bytes are queued) or with no room in a
            // record (an error): the copying path says what happens.
            let mut bytes = Vec::new();
            let r = fill(&mut bytes, record_len.max(1));
            return Ok((self.write_stream(&bytes)?, r));
        }
        let room = record_len.min(self.fill_room);
        let sealed = self
            .seal_stream_from(room, fill)
            .map_err(|e| self.fail(e))?;
        self.fill_room = next_fill_room(sealed.0, room);
        Ok(sealed)
    }

    /// Sends the authenticated close: we send nothing more, the peer can tell
    /// a clean end from a cut connection. Reading goes on (half-close).
    pub fn close(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.sent_close || self.close_queued {
            return Ok(());
        }
        if self.write_app.is_none() {
            self.close_queued = true;
            return Ok(());
        }
        self.seal_app(InnerType::CLOSE, &[])?;
        self.sent_close = true;
        Ok(())
    }

    /// Sends a keepalive record (ignored by the peer's application).
    pub fn send_keepalive(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.write_app.is_none() || self.sent_close {
            return Ok(());
        }
        self.seal_app(InnerType::KEEPALIVE, &[])
    }

    /// Ends the session with `code` (for example a timeout decided by the
    /// caller): the alert is queued for the peer.
    pub fn abort(&mut self, code: AlertCode) {
        if self.failed.is_none() {
            self.fail(Error::Aborted(code));
            self.send_alert(code);
        }
    }

    // --- Re-keying (SPEC §15) ----------------------------------------------

    /// Whether the session re-keys (the handshake agreed on it).
    pub fn has_rekey(&self) -> bool {
        self.rekey.is_some()
    }

    /// The newest epoch (0: the handshake's keys), in a session that re-keys.
    pub fn rekey_epoch(&self) -> Option<u32> {
        self.rekey.as_ref().map(Rekey::epoch)
    }

    /// Re-keys completed so far (started by either side).
    pub fn rekeys_completed(&self) -> u64 {
        self.rekey.as_ref().map_or(0, Rekey::completed)
    }

    /// Whether a re-key is in flight.
    pub fn rekey_in_progress(&self) -> bool {
        self.rekey.as_ref().is_some_and(Rekey::in_progress)
    }

    /// Asks for a re-key: it starts at the next
    /// [`poll_rekey`](Self::poll_rekey), or after the one in flight.
    pub fn request_rekey(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.rekey.as_mut() {
            Some(r) => {
                r.request();
                Ok(())
            }
            None => Err(Error::Internal("this session does not re-key")),
        }
    }

    /// Drives re-keying, given the time (any monotonic clock): starts a
    /// re-key that is due (asked for, the epoch older than the interval, or
    /// a direction past the volume limit), ends the session if the peer sent
    /// over twice the volume limit in one epoch, and returns the re-keys
    /// finished since the last call (each also logged). Call it after
    /// processing received bytes, after writing, and at
    /// [`rekey_deadline`](Self::rekey_deadline). The waits for the peer are
    /// [`handle_rekey_timeout`](Self::handle_rekey_timeout)'s.
    pub fn poll_rekey(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<RekeyDone>, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(rekey) = self.rekey.as_mut() else {
            return Ok(Vec::new());
        };
        let done = rekey.tick(now);
        for d in &done {
            tracing::debug!(
                target: "sc_session",
                side = ?self.side,
                epoch = d.epoch,
                initiator = ?d.initiator,
                "re-key complete: epoch {}, started by the {}, took {:.1} ms",
                d.epoch,
                match d.initiator {
                    Side::Client => "client",
                    Side::Server => "server",
                },
                d.duration.as_secs_f64() * 1e3
            );
        }
        if self.sent_close || self.received_close || self.write_app.is_none() {
            // A closed direction ends re-keying: the side that closed sends
            // nothing more, not even a RekeyReply.
            return Ok(done);
        }
        let policy = self.config.rekey;
        let (read_records, read_bytes) = match &self.read {
            ReadState::Sealed { opener, .. } => (opener.seq(), opener.bytes()),
            ReadState::Plaintext => (0, 0),
        };
        if read_records > policy.max_records.saturating_mul(2)
            || read_bytes > policy.max_bytes.saturating_mul(2)
        {
            return Err(self.fail(Error::Rekey(RekeyError::Required {
                records: read_records,
                bytes: read_bytes,
            })));
        }
        let (write_records, write_bytes) = self
            .write_app
            .as_ref()
            .map_or((0, 0), |w| (w.seq(), w.bytes()));
        let interval = self.rekey_interval();
        let Some(rekey) = self.rekey.as_mut() else {
            return Ok(done);
        };
        if rekey.in_progress() {
            return Ok(done);
        }
        let old = match (interval, rekey.epoch_started()) {
            (Some(interval), Some(started)) => now.saturating_duration_since(started) >= interval,
            _ => false,
        };
        let volume = read_records >= policy.max_records
            || write_records >= policy.max_records
            || read_bytes >= policy.max_bytes
            || write_bytes >= policy.max_bytes;
        if rekey.requested() || old || volume {
            let started = rekey.start(now, rng);
            let sealed = started.and_then(|init| self.seal_app(InnerType::REKEY_INIT, &init));
            sealed.map_err(|e| self.fail(e))?;
        }
        Ok(done)
    }

    /// This side's time trigger: the configured interval, and for the
    /// server [`SERVER_REKEY_SLACK`] more, so that with equal intervals the
    /// client's re-key comes first and the server does not make shares it
    /// must then drop (SPEC §15.5).
    fn rekey_interval(&self) -> Option<Duration> {
        let interval = self.config.rekey.interval?;
        Some(match self.side {
            Side::Client => interval,
            Side::Server => interval.saturating_add(SERVER_REKEY_SLACK),
        })
    }

    /// Ends the session if the peer has left a re-key in flight waiting
    /// for the handshake timeout: no RekeyReply to our RekeyInit
    /// ([`RekeyError::Unanswered`]), or no RekeySwitch after our RekeyReply
    /// ([`RekeyError::NoSwitch`]; an attacker holding a stolen state would
    /// otherwise go on forging the peer's direction under the old epoch).
    ///
    /// Call it only when every byte received so far is processed and the
    /// transport has nothing more to read (a read returned "would block"):
    /// an answer waiting unread in the transport is not a late one.
    pub fn handle_rekey_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some((waiting, since)) = self.rekey.as_ref().and_then(Rekey::waiting_since) else {
            return Ok(());
        };
        let after = now.saturating_duration_since(since);
        if after < self.config.handshake_timeout || self.received.pending() > 0 {
            return Ok(());
        }
        let e = match waiting {
            Waiting::Reply => RekeyError::Unanswered { after },
            Waiting::Switch => RekeyError::NoSwitch { after },
        };
        Err(self.fail(Error::Rekey(e)))
    }

    /// When [`poll_rekey`](Self::poll_rekey) or
    /// [`handle_rekey_timeout`](Self::handle_rekey_timeout) next has
    /// something to do by time alone (the interval, or a wait for the
    /// peer), if ever.
    pub fn rekey_deadline(&self) -> Option<Instant> {
        let rekey = self.rekey.as_ref()?;
        if self.failed.is_some() {
            return None;
        }
        if let Some((_, since)) = rekey.waiting_since() {
            return since.checked_add(self.config.handshake_timeout);
        }
        if rekey.in_progress() || self.sent_close || self.received_close {
            return None;
        }
        let started = rekey.epoch_started()?;
        if rekey.requested() {
            return Some(started);
        }
        started.checked_add(self.rekey_interval()?)
    }

    // --- Streams (SPEC §14) ------------------------------------------------

    /// Whether the session carries streams (the handshake agreed on them).
    pub fn has_streams(&self) -> bool {
        self.streams.is_some()
    }

    /// Streams held now (open, or waiting to be let go).
    pub fn stream_count(&self) -> usize {
        self.streams.as_ref().map_or(0, Streams::len)
    }

    fn streams_mut(&mut self) -> Result<&mut Streams, StreamError> {
        if let Some(e) = &self.failed {
            return Err(StreamError::Session(e.clone()));
        }
        self.streams
            .as_mut()
            .ok_or(StreamError::Session(Error::Internal(
                "this session carries no streams",
            )))
    }

    /// Opens a stream for `service` (`None`: the default service). Its Open
    /// frame goes out with its first data, or with the next record sealed.
    pub fn open_stream(&mut self, service: Option<ServiceName>) -> Result<StreamId, StreamError> {
        if self.sent_close || self.close_queued {
            return Err(StreamError::Session(Error::Closed));
        }
        match self.streams_mut()?.open(service) {
            Err(StreamError::Session(e)) => Err(StreamError::Session(self.fail(e))),
            r => r,
        }
    }

    /// The peer's stream limit (SPEC §14.5), in a session of streams.
    pub fn peer_stream_limit(&self) -> Option<usize> {
        self.streams.as_ref().map(Streams::peer_limit)
    }

    /// Whether a stream can be opened now: the session carries streams, is
    /// not failing or closing, and the peer's stream limit is not reached.
    pub fn can_open_stream(&self) -> bool {
        self.failed.is_none()
            && !(self.sent_close || self.close_queued)
            && self.streams.as_ref().is_some_and(Streams::can_open)
    }

    /// The next stream the peer opened, and the service it asked for.
    pub fn accept_stream(&mut self) -> Option<(StreamId, Option<ServiceName>)> {
        self.streams.as_mut()?.accept()
    }

    /// Streams the session has carried so far (opened by either side).
    pub fn streams_carried(&self) -> u64 {
        self.streams.as_ref().map_or(0, Streams::carried)
    }

    /// Hands up to `max` unread bytes of stream `id` to `copy`, in one
    /// slice (for a destination that is not a plain slice); `copy` says how
    /// many it took.
    pub fn stream_read_with(
        &mut self,
        id: StreamId,
        max: usize,
        copy: impl FnOnce(&[u8]) -> usize,
    ) -> Result<Read, StreamError> {
        self.streams_mut()?.read_with(id, max, copy)
    }

    /// Copies unread bytes of stream `id` into `out`.
    pub fn stream_read(&mut self, id: StreamId, out: &mut [u8]) -> Result<Read, StreamError> {
        self.streams_mut()?.read(id, out)
    }

    /// Seals up to one record of `data` on stream `id` (with any frames owed
    /// the peer in front) and says how much it took; 0: the stream's or the
    /// session's send window is shut (wait for an event).
    pub fn stream_write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        if data.is_empty() {
            // A stream that is gone, reset or finished still says so.
            self.streams_mut()?.writable(id)?;
            return Ok(0);
        }
        // The caller's bytes, copied once, straight into the record.
        let sealed = self.stream_record(id, usize::MAX, |out, max| {
            let n = data.len().min(max);
            out.extend_from_slice(&data[..n]);
        })?;
        Ok(sealed.map_or(0, |(n, ())| n))
    }

    /// As [`stream_write`](Self::stream_write), with the Data frame's bytes
    /// appended by `fill` straight into the record, where they are sealed
    /// in place (see [`write_stream_from`](Self::write_stream_from) for
    /// `fill`). `None`: the stream's or the session's send window is shut,
    /// and `fill` was not called. Appending nothing seals no Data frame;
    /// frames owed the peer go out all the same.
    pub fn stream_write_from<R>(
        &mut self,
        id: StreamId,
        fill: impl FnOnce(&mut Vec<u8>, usize) -> R,
    ) -> Result<Option<(usize, R)>, StreamError> {
        let mut given = None;
        let sealed = self.stream_record(id, self.fill_room, |out, max| {
            given = Some(max);
            fill(out, max)
        })?;
        if let (Some(room), Some((n, _))) = (given, &sealed) {
            self.fill_room = next_fill_room(*n, room);
        }
        Ok(sealed)
    }

    /// Seals one record of stream `id`: the frames owed the peer in front
    /// (the stream's own Open among them: all of them, so that none for
    /// this stream is left behind; many go out in records of their own
    /// first), then a Data frame of what `fill` appends straight into the
    /// record, at most `room` bytes and within the windows. `None`: a
    /// window is shut and `fill` was not called.
    fn stream_record<R>(
        &mut self,
        id: StreamId,
        room: usize,
        fill: impl FnOnce(&mut Vec<u8>, usize) -> R,
    ) -> Result<Option<(usize, R)>, StreamError> {
        let allowed = match self.streams_mut()?.writable(id)? {
            Writable::Bytes(n) => n,
            Writable::Blocked => return Ok(None),
        };
        if self.write_app.is_none() {
            return Err(StreamError::Session(
                self.fail(Error::Internal("no application keys")),
            ));
        }
        if self.streams.as_ref().map_or(0, Streams::owed_bytes) > MAX_FRAGMENT_LEN / 4 {
            self.flush_streams().map_err(StreamError::Session)?;
        }
        let Some(streams) = self.streams.as_mut() else {
            return Ok(None);
        };
        let mut owed = core::mem::take(&mut self.owed_frames);
        owed.clear();
        streams.take_owed(&mut owed, usize::MAX);
        let want = allowed
            .min(MAX_FRAGMENT_LEN - Streams::DATA_OVERHEAD - owed.len())
            .min(room);
        self.outgoing.reserve(
            RecordSealer::overhead(0)
                + owed.len()
                + Streams::DATA_OVERHEAD
                + want
                + self.padding_block(),
        );
        let at = RecordSealer::begin(&mut self.outgoing);
        self.outgoing.extend_from_slice(&owed);
        self.owed_frames = owed;
        let header_at = self.outgoing.len();
        // The Data frame's header, its length written once it is known.
        self.outgoing
            .extend_from_slice(&Streams::data_header(id, 0));
        let start = self.outgoing.len();
        let r = fill(&mut self.outgoing, want);
        let n = self.outgoing.len() - start;
        if n > want {
            RecordSealer::discard(&mut self.outgoing, at);
            let e = self.fail(Error::Internal("a fill appended more than it was allowed"));
            return Err(StreamError::Session(e));
        }
        if n == 0 {
            // No Data frame; the frames owed go out alone, if any.
            self.outgoing.truncate(header_at);
        } else {
            self.outgoing[header_at..start].copy_from_slice(&Streams::data_header(id, n));
        }
        let content = self.outgoing.len() - at - RECORD_HEADER_LEN;
        if content == 0 {
            self.outgoing.truncate(at);
            self.free_empty_outgoing();
            return Ok(Some((0, r)));
        }
        if let Some(streams) = self.streams.as_mut() {
            streams.charge(id, n);
        }
        self.seal_begun(InnerType::STREAMS, at, content)
            .map_err(|e| StreamError::Session(self.fail(e)))?;
        Ok(Some((n, r)))
    }

    /// Finishes this side of stream `id` (half-close); the Fin goes out
    /// with the next record.
    pub fn stream_finish(&mut self, id: StreamId) -> Result<(), StreamError> {
        self.streams_mut()?.finish(id)
    }

    /// Resets stream `id` both ways with `code` and `reason`.
    pub fn stream_reset(&mut self, id: StreamId, code: ResetCode, reason: &str) {
        if let Some(s) = self.streams.as_mut() {
            s.reset(id, code, reason);
        }
    }

    /// The application lets go of stream `id` (a stream still open either
    /// way is reset).
    pub fn stream_release(&mut self, id: StreamId) {
        if let Some(s) = self.streams.as_mut() {
            s.release(id);
        }
    }

    /// Whether frames are owed the peer (a window grant after a read).
    pub fn has_streams_owed(&self) -> bool {
        self.streams.as_ref().is_some_and(Streams::has_owed)
    }

    /// What changed for the streams since the last call.
    pub fn take_stream_events(&mut self) -> Events {
        self.streams
            .as_mut()
            .map(Streams::take_events)
            .unwrap_or_default()
    }

    /// As [`take_stream_events`](Self::take_stream_events), into `into`
    /// (cleared first), whose vectors are reused: no allocation.
    pub fn take_stream_events_into(&mut self, into: &mut Events) {
        match self.streams.as_mut() {
            Some(streams) => streams.take_events_into(into),
            None => *into = Events::default(),
        }
    }

    /// Seals the frames owed the peer (window grants, Open, Fin, Reset) into
    /// records, if any.
    pub fn flush_streams(&mut self) -> Result<(), Error> {
        if self.failed.is_some() || self.sent_close {
            return Ok(());
        }
        loop {
            let Some(streams) = self.streams.as_mut() else {
                return Ok(());
            };
            if !streams.has_owed() {
                return Ok(());
            }
            let mut content = core::mem::take(&mut self.owed_frames);
            content.clear();
            streams.take_owed(&mut content, MAX_FRAGMENT_LEN);
            let r = self.seal_streams(&[&content]);
            self.owed_frames = content;
            r.map_err(|e| self.fail(e))?;
        }
    }

    #[doc(hidden)]
    /// Seals `content` as a Streams record as it is, frames unchecked, with
    /// the frames owed the peer in front (as in every Streams record): only
    /// for tests that play a peer breaking the rules.
    pub fn seal_streams_record_for_testing_only(&mut self, content: &[u8]) -> Result<(), Error> {
        let mut owed = Vec::new();
        if let Some(streams) = self.streams.as_mut() {
            streams.take_owed(&mut owed, usize::MAX);
        }
        self.seal_streams(&[&owed, content])
    }

    #[doc(hidden)]
    /// Seals `content` as an application record of inner type `typ`, as it
    /// is: only for tests that play a peer breaking the rules.
    pub fn seal_record_for_testing_only(
        &mut self,
        typ: InnerType,
        content: &[u8],
    ) -> Result<(), Error> {
        self.seal_app(typ, content)
    }

    fn seal_streams(&mut self, parts: &[&[u8]]) -> Result<(), Error> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let pad = self.padding_for(len);
        let before = self.outgoing.len();
        let sealer = self
            .write_app
            .as_mut()
            .ok_or(Error::Internal("no application keys"))?;
        sealer.seal_parts(InnerType::STREAMS, parts, pad, &mut self.outgoing)?;
        self.count_sent(before);
        Ok(())
    }

    /// Whether messages and the byte stream can be sent: not after a
    /// failure or our close, and not on a session of streams.
    fn can_send(&self) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.streams.is_some() {
            return Err(Error::Internal(
                "this session carries streams: open one to send",
            ));
        }
        if self.sent_close || self.close_queued {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Seals the record begun at `at` whose `len` bytes of content are in
    /// `outgoing` already (see [`RecordSealer::begin`]).
    fn seal_begun(&mut self, typ: InnerType, at: usize, len: usize) -> Result<(), Error> {
        let pad = self.padding_for(len);
        let Some(sealer) = self.write_app.as_mut() else {
            RecordSealer::discard(&mut self.outgoing, at);
            return Err(Error::Internal("no application keys"));
        };
        sealer.seal_begun(typ, pad, &mut self.outgoing, at)?;
        self.count_sent(at);
        Ok(())
    }

    /// After a fill that brought nothing (its socket had nothing to read):
    /// an empty output buffer is freed, so a connection waiting for its
    /// plaintext holds none, as a copy loop frees its buffer when a read
    /// would wait.
    fn free_empty_outgoing(&mut self) {
        if self.outgoing.is_empty() {
            self.outgoing = Vec::new();
        }
    }

    /// The most padding a record can get (room to reserve for it).
    fn padding_block(&self) -> usize {
        match self.config.padding {
            Padding::None => 0,
            Padding::Block(b) => usize::from(b),
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        if let Some(code) = e.alert() {
            self.send_alert(code);
        }
        tracing::debug!(target: "sc_session", side = ?self.side, error = %e, "session failed");
        self.failed = Some(e.clone());
        if let Some(streams) = &mut self.streams {
            streams.fail_all(&e);
        }
        // Messages already received whole stay readable: they were
        // authenticated before the failure. What can no longer complete or be
        // sent is dropped.
        self.queued.clear();
        self.partial.clear();
        e
    }

    fn send_alert(&mut self, code: AlertCode) {
        let alert = Alert { code }.encoded();
        let before = self.outgoing.len();
        let sealer = self.write_app.as_mut().or(self.write_hs.as_mut());
        let sealed = match sealer {
            Some(s) => s
                .seal(InnerType::ALERT, &alert, 0, &mut self.outgoing)
                .is_ok(),
            None => false,
        };
        if !sealed {
            RecordHeader {
                kind: RecordKind::ALERT,
                len: alert.len(),
            }
            .encode(&mut self.outgoing);
            self.outgoing.extend_from_slice(&alert);
        }
        self.count_sent(before);
    }

    fn count_sent(&mut self, before: usize) -> u64 {
        let n = (self.outgoing.len() - before) as u64;
        self.stats.bytes_sent += n;
        n
    }

    fn padding_for(&self, len: usize) -> u16 {
        match self.config.padding {
            Padding::None => 0,
            Padding::Block(b) => {
                // Up to the next multiple of the block, and empty content to
                // one whole block, so keepalives and empty messages look
                // like any other short record.
                let b = usize::from(b.max(1));
                let target = len.div_ceil(b).max(1) * b;
                (target - len)
                    .min(MAX_FRAGMENT_LEN - len)
                    .min(usize::from(u16::MAX)) as u16
            }
        }
    }

    fn seal_app(&mut self, typ: InnerType, content: &[u8]) -> Result<(), Error> {
        let pad = self.padding_for(content.len());
        let before = self.outgoing.len();
        let sealer = self
            .write_app
            .as_mut()
            .ok_or(Error::Internal("no application keys"))?;
        sealer.seal(typ, content, pad, &mut self.outgoing)?;
        self.count_sent(before);
        Ok(())
    }

    fn seal_message(&mut self, msg: &[u8]) -> Result<(), Error> {
        let frag = self.config.max_fragment_len;
        let mut chunks = msg.chunks(frag).peekable();
        if chunks.peek().is_none() {
            self.seal_app(InnerType::DATA, &[])?;
        }
        while let Some(chunk) = chunks.next() {
            let typ = if chunks.peek().is_some() {
                InnerType::DATA_MORE
            } else {
                InnerType::DATA
            };
            self.seal_app(typ, chunk)?;
        }
        self.stats.messages_sent += 1;
        Ok(())
    }

    /// Seals one record of the byte stream: on the wire the same as a
    /// message of one record. `chunk` is not empty.
    fn seal_stream(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.seal_stream_from(chunk.len(), |out, _| out.extend_from_slice(chunk))
            .map(drop)
    }

    /// Seals one record of the byte stream whose content `fill` appends
    /// straight into the output, at most `room` bytes, where it is sealed
    /// in place; nothing appended seals nothing (and frees an empty output
    /// buffer). An error leaves none of the fill's bytes behind; failing
    /// the session is the caller's.
    fn seal_stream_from<R>(
        &mut self,
        room: usize,
        fill: impl FnOnce(&mut Vec<u8>, usize) -> R,
    ) -> Result<(usize, R), Error> {
        self.outgoing
            .reserve(RecordSealer::overhead(0) + room + self.padding_block());
        let at = RecordSealer::begin(&mut self.outgoing);
        let start = self.outgoing.len();
        let r = fill(&mut self.outgoing, room);
        let n = self.outgoing.len() - start;
        if n == 0 {
            self.outgoing.truncate(at);
            self.free_empty_outgoing();
            return Ok((0, r));
        }
        if n > room {
            RecordSealer::discard(&mut self.outgoing, at);
            return Err(Error::Internal("a fill appended more than it was allowed"));
        }
        self.seal_begun(InnerType::DATA, at, n)?;
        self.stats.stream_bytes_sent += n as u64;
        Ok((n, r))
    }

    fn process(
        &mut self,
        received: &mut ReceiveBuffer,
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), Error> {
        // The caller may have shortened the buffer it was lent.
        received.start = received.start.min(received.buf.len());
        // Application records that arrive with a handshake flight are part
        // of it in the trace.
        let traced_flight = self.trace.is_some() && self.is_handshaking();
        loop {
            let avail = &received.buf[received.start..];
            let Some(header_bytes) = avail.get(..RECORD_HEADER_LEN) else {
                return Ok(());
            };
            // Checked as soon as its four bytes are in: a bad kind or length
            // fails without waiting for the body it announces.
            let header = RecordHeader::decode(header_bytes)?;
            let end = RECORD_HEADER_LEN + header.len;
            if avail.len() < end {
                return Ok(());
            }
            let body_start = received.start + RECORD_HEADER_LEN;
            received.start += end;
            let body = &mut received.buf[body_start..received.start];
            self.stats.bytes_received += (RECORD_HEADER_LEN + header.len) as u64;
            if self.received_close {
                return Err(Error::UnexpectedRecord {
                    what: "record after the peer's close",
                });
            }
            match header.kind {
                RecordKind::HANDSHAKE => {
                    if !matches!(self.read, ReadState::Plaintext) {
                        return Err(Error::UnexpectedRecord {
                            what: "plaintext handshake record after keys were set",
                        });
                    }
                    if let Some(trace) = &mut self.trace {
                        trace.received(Level::Plaintext, body, RECORD_HEADER_LEN + header.len);
                    }
                    self.handshake_input(Level::Plaintext, body, now, rng)?;
                }
                RecordKind::ALERT => {
                    // Plaintext alerts are unauthenticated. During the
                    // handshake the peer may have no keys to seal one with;
                    // afterwards a plaintext alert can only be an injection,
                    // and its code is not reported as the peer's reason.
                    if !self.is_handshaking() {
                        return Err(Error::UnexpectedRecord {
                            what: "unauthenticated (plaintext) alert after the handshake",
                        });
                    }
                    let alert = Alert::decode(body)?;
                    return Err(Error::PeerAlert(alert.code));
                }
                _ => {
                    let ReadState::Sealed { level, opener } = &mut self.read else {
                        return Err(Error::UnexpectedRecord {
                            what: "sealed record before keys were set",
                        });
                    };
                    let level = *level;
                    let (typ, content) = opener.open(header, &mut *body)?;
                    if let Some(trace) = &mut self.trace {
                        let wire_len = RECORD_HEADER_LEN + header.len;
                        if typ == InnerType::HANDSHAKE && !matches!(self.handshake, Handshake::Done)
                        {
                            trace.received(level, content, wire_len);
                        } else if traced_flight {
                            trace.received_data(wire_len);
                        }
                    }
                    let result = self.sealed_input(level, typ, content, body_start, now, rng);
                    if typ == InnerType::HANDSHAKE {
                        // Decrypted in place: wipe it (step 6 holds the seed code).
                        body.zeroize();
                    }
                    result?;
                }
            }
        }
    }

    fn sealed_input(
        &mut self,
        level: Level,
        typ: InnerType,
        content: &[u8],
        at: usize,
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), Error> {
        match typ {
            InnerType::HANDSHAKE => self.handshake_input(level, content, now, rng),
            InnerType::ALERT => Err(Error::PeerAlert(Alert::decode(content)?.code)),
            _ if self.is_handshaking() => Err(Error::UnexpectedRecord {
                what: "application record during the handshake",
            }),
            InnerType::STREAMS => match &mut self.streams {
                Some(streams) => streams.receive(content),
                None => Err(Error::UnexpectedRecord {
                    what: "Streams record in a session without streams",
                }),
            },
            InnerType::DATA | InnerType::DATA_MORE if self.streams.is_some() => {
                Err(Error::UnexpectedRecord {
                    what: "Data record in a session of streams",
                })
            }
            InnerType::DATA | InnerType::DATA_MORE => {
                if self.partial.len() + content.len() > self.config.max_message_len {
                    return Err(Error::MessageTooLarge {
                        len: self.partial.len() + content.len(),
                        max: self.config.max_message_len,
                    });
                }
                if typ == InnerType::DATA && self.partial.is_empty() {
                    // Read where it was opened: `at` is where `content`
                    // starts in the receive buffer.
                    self.inbox.push_back(Inbound::InPlace {
                        start: at,
                        len: content.len(),
                    });
                } else {
                    self.partial.extend_from_slice(content);
                    if typ == InnerType::DATA {
                        self.inbox
                            .push_back(Inbound::Owned(core::mem::take(&mut self.partial)));
                    }
                }
                if typ == InnerType::DATA {
                    self.stats.messages_received += 1;
                }
                Ok(())
            }
            InnerType::CLOSE => {
                if !self.partial.is_empty() {
                    return Err(Error::UnexpectedRecord {
                        what: "close inside a fragmented message",
                    });
                }
                self.received_close = true;
                if let Some(rekey) = &mut self.rekey {
                    // The peer sends nothing more: no Reply or Switch will
                    // come for a re-key in flight.
                    rekey.abandon();
                }
                if let Some(streams) = &mut self.streams {
                    // Streams still open when the peer closes the session
                    // are cut.
                    streams.fail_all(&Error::PeerClosed);
                }
                Ok(())
            }
            InnerType::KEEPALIVE => Ok(()),
            InnerType::REKEY_INIT | InnerType::REKEY_REPLY | InnerType::REKEY_SWITCH => {
                self.rekey_input(typ, content, rng)
            }
            _ => Err(Error::UnexpectedRecord {
                what: "record of unknown inner type",
            }),
        }
    }

    /// A re-key record (SPEC §15.4): each direction's switch point is the
    /// record that carries it.
    fn rekey_input(
        &mut self,
        typ: InnerType,
        content: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), Error> {
        let suite = self
            .summary
            .as_ref()
            .map(|s| s.suite)
            .ok_or(Error::Internal("no handshake summary"))?;
        let Some(rekey) = self.rekey.as_mut() else {
            return Err(Error::UnexpectedRecord {
                what: "re-key record in a session that does not re-key",
            });
        };
        match typ {
            InnerType::REKEY_INIT => {
                if self.sent_close {
                    // We send nothing more: the peer sees our Close and drops
                    // its re-key.
                    return Ok(());
                }
                match rekey.on_init(content, rng)? {
                    InitOutcome::Ignore => Ok(()),
                    InitOutcome::Reply { reply, write_chain } => {
                        // The Reply is our last record of the old epoch.
                        self.seal_app(InnerType::REKEY_REPLY, &reply)?;
                        self.switch_write(suite, write_chain)
                    }
                }
            }
            InnerType::REKEY_REPLY => {
                let out = rekey.on_reply(content)?;
                // Every record of the peer's after its Reply is of the new
                // epoch.
                self.switch_read(suite, out.read_chain)?;
                if !self.sent_close {
                    // The Switch is our last record of the old epoch.
                    self.seal_app(InnerType::REKEY_SWITCH, &out.switch)?;
                    self.switch_write(suite, out.write_chain)?;
                }
                Ok(())
            }
            _ => {
                let chain = rekey.on_switch(content)?;
                self.switch_read(suite, chain)
            }
        }
    }

    /// Opens the peer's records from now on with `chain` (a new epoch's);
    /// the old opener and its chain key are dropped and zeroized.
    fn switch_read(&mut self, suite: CipherSuite, chain: Secret) -> Result<(), Error> {
        let opener = RecordOpener::new(self.provider, suite, self.direction(false), chain)?;
        self.read = ReadState::Sealed {
            level: Level::Application,
            opener,
        };
        Ok(())
    }

    /// Seals our records from now on with `chain` (a new epoch's); the old
    /// sealer and its chain key are dropped and zeroized.
    fn switch_write(&mut self, suite: CipherSuite, chain: Secret) -> Result<(), Error> {
        let sealer = RecordSealer::new(self.provider, suite, self.direction(true), chain)?;
        self.write_app = Some(sealer);
        Ok(())
    }

    fn handshake_input(
        &mut self,
        level: Level,
        content: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), Error> {
        let actions = match &mut self.handshake {
            Handshake::Client(c) => c.handle(level, content, now, rng)?,
            Handshake::Server(s) => s.handle(level, content, now, rng)?,
            Handshake::Done => {
                return Err(Error::UnexpectedRecord {
                    what: "handshake record after the handshake",
                })
            }
        };
        self.apply(actions)
    }

    fn direction(&self, ours: bool) -> Direction {
        match (self.side, ours) {
            (Side::Client, true) | (Side::Server, false) => Direction::ClientToServer,
            _ => Direction::ServerToClient,
        }
    }

    fn apply(&mut self, actions: Vec<Action>) -> Result<(), Error> {
        // Application data queued before our write key existed goes out after
        // the whole batch: on the server, SecureAck (sent under the new key in
        // the same batch) must be the first application-chain record.
        let mut flush = false;
        for action in actions {
            match action {
                Action::Send { level, messages } => {
                    let before = self.outgoing.len();
                    match level {
                        Level::Plaintext => {
                            RecordHeader {
                                kind: RecordKind::HANDSHAKE,
                                len: messages.len(),
                            }
                            .encode(&mut self.outgoing);
                            self.outgoing.extend_from_slice(&messages);
                        }
                        Level::Handshake => {
                            let pad = self.padding_for(messages.len());
                            let s = self
                                .write_hs
                                .as_mut()
                                .ok_or(Error::Internal("no handshake keys"))?;
                            s.seal(InnerType::HANDSHAKE, &messages, pad, &mut self.outgoing)?;
                        }
                        Level::Application => {
                            let pad = self.padding_for(messages.len());
                            let s = self
                                .write_app
                                .as_mut()
                                .ok_or(Error::Internal("no application keys"))?;
                            s.seal(InnerType::HANDSHAKE, &messages, pad, &mut self.outgoing)?;
                        }
                    }
                    let sent = self.count_sent(before);
                    self.stats.handshake_bytes_sent += sent;
                    if let Some(trace) = &mut self.trace {
                        trace.sent(level, &messages, sent as usize);
                    }
                }
                Action::SetReadKey {
                    level,
                    suite,
                    chain0,
                } => {
                    let opener =
                        RecordOpener::new(self.provider, suite, self.direction(false), chain0)?;
                    // The previous opener (and its chain key) is dropped and zeroized.
                    self.read = ReadState::Sealed { level, opener };
                }
                Action::SetWriteKey {
                    level,
                    suite,
                    chain0,
                } => {
                    let sealer =
                        RecordSealer::new(self.provider, suite, self.direction(true), chain0)?;
                    match level {
                        Level::Application => {
                            self.write_app = Some(sealer);
                            // No handshake record is sent after this point.
                            self.write_hs = None;
                            flush = true;
                        }
                        _ => self.write_hs = Some(sealer),
                    }
                }
                Action::KeepForRekey(keys) => self.rekey_keys = Some(keys),
                Action::Complete(summary) => {
                    tracing::info!(
                        target: "sc_session",
                        side = ?self.side,
                        peer = %summary.peer,
                        version = %summary.version,
                        cipher = %summary.suite,
                        order = %summary.order,
                        "handshake complete: peer {}, protocol {}, cipher {}, order of steps 7-10: {}",
                        summary.peer,
                        summary.version,
                        summary.suite,
                        summary.order
                    );
                    if summary.streams {
                        self.streams = Some(Streams::new(self.side, self.config.max_streams));
                    }
                    if let Some(keys) = self.rekey_keys.take() {
                        self.rekey = Some(Rekey::new(
                            self.provider,
                            self.side,
                            summary.session_hash,
                            *keys,
                        ));
                    }
                    self.summary = Some(*summary);
                    self.handshake = Handshake::Done;
                }
            }
        }
        if flush {
            let before = self.outgoing.len();
            self.flush_queued()?;
            if let Some(trace) = &mut self.trace {
                trace.sent_data(self.outgoing.len() - before);
            }
        }
        Ok(())
    }

    fn flush_queued(&mut self) -> Result<(), Error> {
        while let Some(queued) = self.queued.pop_front() {
            match queued {
                Queued::Message(msg) => {
                    self.queued_bytes -= msg.len();
                    self.seal_message(&msg)?;
                }
                Queued::Stream(chunk) => {
                    self.queued_bytes -= chunk.len();
                    self.seal_stream(&chunk)?;
                }
            }
        }
        if self.close_queued {
            self.close_queued = false;
            self.seal_app(InnerType::CLOSE, &[])?;
            self.sent_close = true;
        }
        Ok(())
    }
}
