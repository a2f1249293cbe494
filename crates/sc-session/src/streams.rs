//! Many streams in one session (SPEC §14), sans-I/O: the state of every
//! stream, flow control, and the frames that go out.
//!
//! A [`Connection`](crate::Connection) whose handshake agreed on streams
//! holds one `Streams`; its `stream_*` methods are the way in. Frames the
//! peer sends are applied by [`Streams::receive`]; frames this side owes
//! the peer (Open, Fin, Reset, Window) queue up until the connection seals
//! them, in front of the next data it sends or on their own.
//!
//! Memory is bounded: a stream holds at most its receive window of unread
//! bytes ([`STREAM_WINDOW`]), all streams together at most the session's
//! ([`SESSION_WINDOW`]); the peer may have at most `max_streams` streams
//! open here; at most [`MAX_PENDING_FRAMES`] frames wait to go out.
//!
//! A side whose `max_streams` is not [`DEFAULT_MAX_STREAMS`] says so in a
//! Limit frame, the first frame it sends; until a Limit arrives, the other
//! side assumes the default. A stream counts against the limit from its Open
//! until it is closed both ways (both Fins sent and received) or reset,
//! as each side sees it. Frames go out in order, so whatever closed a
//! stream at the opener (its own Fin or Reset, or the acceptor's) reaches
//! the acceptor before the opener's next Open: the opener never opens past
//! the limit the acceptor counts.

use std::collections::{HashMap, VecDeque};

use sc_wire::streams::{
    frames, Frame, FrameType, ResetCode, ServiceName, StreamId, DATA_OVERHEAD, MAX_DATA_LEN,
};
use sc_wire::AlertCode;

use crate::error::Error;
use crate::side::Side;

/// Every stream's initial receive window, both ways (4 MiB): what a sender
/// may send on a new stream before the receiver grants more.
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;

/// Receive buffers a session keeps for its streams' next bytes once read
/// empty, so a busy stream allocates none per record; freed with the other
/// buffers when the session idles ([`Streams::shrink`]).
const SPARE_BUFFERS: usize = 2;

/// The largest receive buffer kept spare (one a slow reader made grow
/// beyond this is freed).
const SPARE_BUFFER_MAX: usize = 1024 * 1024;
/// The session's initial receive window, both ways (16 MiB): what a sender
/// may send on all streams together before the receiver grants more.
pub const SESSION_WINDOW: u32 = 16 * 1024 * 1024;
/// Streams the peer may hold open at once, by default (256).
pub const DEFAULT_MAX_STREAMS: usize = 256;
/// Frames this side may owe the peer at once (window grants, resets of
/// refused streams, ...): a peer that makes more pile up without reading
/// is a flood, and the session ends with `too large`.
pub const MAX_PENDING_FRAMES: usize = 4096;
/// Largest window a sender may be granted (2³¹ − 1, as in HTTP/2).
const MAX_WINDOW: u64 = (1 << 31) - 1;

/// How a stream ended for this side's application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The stream was reset, by the peer (`by_peer`) or by this side.
    Reset {
        /// Why, as a code.
        code: ResetCode,
        /// Why, in words (the peer's, or ours).
        reason: String,
        /// Whether the peer reset it.
        by_peer: bool,
    },
    /// A write after this side's own finish.
    Finished,
    /// Not opened: the peer takes at most this many streams at once, and
    /// that many are open.
    Limit(usize),
    /// The session ended; every stream ends with it.
    Session(Error),
}

impl core::fmt::Display for StreamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Reset {
                code,
                reason,
                by_peer,
            } => {
                let who = if *by_peer { "peer" } else { "this side" };
                if reason.is_empty() {
                    write!(f, "stream reset by {who} ({code})")
                } else {
                    write!(f, "stream reset by {who}: {reason}")
                }
            }
            Self::Finished => f.write_str("stream already finished for writing"),
            Self::Limit(n) => write!(
                f,
                "stream limit reached: the peer takes {n} streams at once, and that many are open"
            ),
            Self::Session(e) => write!(f, "session lost: {e}"),
        }
    }
}

impl std::error::Error for StreamError {}

/// What [`Streams::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// This many bytes were copied.
    Data(usize),
    /// The peer finished the stream and every byte has been read.
    End,
    /// Nothing to read yet.
    Pending,
}

/// What [`Streams::writable`] allows.
#[derive(Debug, PartialEq, Eq)]
pub enum Writable {
    /// Up to this many bytes may go now.
    Bytes(usize),
    /// The stream's or the session's send window is shut: wait for the
    /// peer's Window frame.
    Blocked,
}

/// Unread bytes of one stream: `buf[start..]`.
#[derive(Debug, Default)]
struct RecvBuf {
    buf: Vec<u8>,
    start: usize,
}

impl RecvBuf {
    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    fn push(&mut self, data: &[u8], spare: &mut Vec<Vec<u8>>) {
        if self.buf.capacity() == 0 {
            if let Some(buf) = spare.pop() {
                self.buf = buf;
            }
        }
        if self.start > 0 && self.start >= self.len() {
            // What was read is as long as what is left: drop it (a reader
            // that never quite catches up must not make the buffer grow
            // past twice its window).
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Hands up to `max` unread bytes to `copy`, which says how many of
    /// them it took; how many. Read to the end, the buffer goes to `spare`
    /// (or is freed): an idle stream holds none, and the next bytes of a
    /// busy one find it again.
    fn take_with(
        &mut self,
        max: usize,
        copy: impl FnOnce(&[u8]) -> usize,
        spare: &mut Vec<Vec<u8>>,
    ) -> usize {
        let n = max.min(self.len());
        let n = copy(&self.buf[self.start..self.start + n]).min(n);
        self.start += n;
        if self.start == self.buf.len() {
            let mut buf = core::mem::take(&mut self.buf);
            self.start = 0;
            if spare.len() < SPARE_BUFFERS && buf.capacity() <= SPARE_BUFFER_MAX {
                buf.clear();
                spare.push(buf);
            }
        }
        n
    }
}

#[derive(Debug)]
struct Stream {
    service: Option<ServiceName>,
    opened_by_peer: bool,
    recv: RecvBuf,
    /// What the peer may still send on it.
    recv_window: u32,
    /// Read by the application since our last grant.
    recv_unacked: u32,
    recv_fin: bool,
    /// What we may still send on it.
    send_window: u64,
    /// Our Fin is queued or sent.
    send_fin: bool,
    reset: Option<StreamError>,
    /// The application let go of it (or never took it).
    released: bool,
    /// It counts against the stream limit (it is not closed yet).
    counted: bool,
}

impl Stream {
    fn new(service: Option<ServiceName>, opened_by_peer: bool) -> Self {
        Self {
            service,
            opened_by_peer,
            recv: RecvBuf::default(),
            recv_window: STREAM_WINDOW,
            recv_unacked: 0,
            recv_fin: false,
            send_window: u64::from(STREAM_WINDOW),
            send_fin: false,
            reset: None,
            released: false,
            counted: true,
        }
    }

    /// Closed both ways, as far as the stream limit is concerned: both
    /// Fins sent and received, or reset.
    fn closed(&self) -> bool {
        self.reset.is_some() || (self.send_fin && self.recv_fin)
    }

    /// Nothing more can happen on it: both ends finished and read, or reset.
    fn done(&self) -> bool {
        self.reset.is_some() || (self.send_fin && self.recv_fin && self.recv.len() == 0)
    }
}

/// A frame this side owes the peer.
#[derive(Debug)]
enum Owed {
    Open(StreamId, Option<ServiceName>),
    Fin(StreamId),
    Reset(StreamId, ResetCode, String),
    Window(StreamId, u32),
    Limit(u32),
}

impl Owed {
    fn frame(&self) -> Frame<'static> {
        match self {
            Self::Open(id, service) => Frame::Open {
                id: *id,
                service: service.clone(),
            },
            Self::Fin(id) => Frame::Fin { id: *id },
            Self::Reset(id, code, reason) => Frame::Reset {
                id: *id,
                code: *code,
                reason: reason.clone(),
            },
            Self::Window(id, increment) => Frame::Window {
                id: *id,
                increment: *increment,
            },
            Self::Limit(max_streams) => Frame::Limit {
                max_streams: *max_streams,
            },
        }
    }
}

/// What changed for the application since it last asked
/// ([`Streams::take_events`]).
#[derive(Debug, Default)]
pub struct Events {
    /// Streams that can be read (data, their end, or a reset came).
    pub readable: Vec<StreamId>,
    /// Streams whose send window opened (or that were reset).
    pub writable: Vec<StreamId>,
    /// The session's send window opened: every blocked writer may go on.
    pub session_window: bool,
    /// A stream waits to be accepted.
    pub accept: bool,
}

/// The streams of one session.
#[derive(Debug)]
pub struct Streams {
    side: Side,
    max_streams: usize,
    streams: HashMap<StreamId, Stream>,
    /// The next id this side opens.
    next_local: u32,
    /// The highest id the peer has opened.
    last_peer: u32,
    /// Streams the peer opened that are not closed.
    peer_open: usize,
    /// Streams this side opened that are not closed.
    local_open: usize,
    /// The peer's limit: streams it takes from this side at once.
    peer_limit: usize,
    /// Streams opened so far, by either side (refused ones not counted).
    opened: u64,
    accept: VecDeque<StreamId>,
    owed: VecDeque<Owed>,
    /// The encoded length of every owed frame.
    owed_bytes: usize,
    session_send_window: u64,
    session_recv_window: u32,
    session_recv_unacked: u32,
    events: Events,
    /// Emptied receive buffers, for the next bytes of any stream.
    spare: Vec<Vec<u8>>,
}

impl Streams {
    /// The streams of a session on `side`, the peer allowed `max_streams`
    /// (which the first frame sent tells it, unless it is the default).
    pub fn new(side: Side, max_streams: usize) -> Self {
        let mut owed = VecDeque::new();
        let mut owed_bytes = 0;
        if max_streams != DEFAULT_MAX_STREAMS {
            let limit = Owed::Limit(u32::try_from(max_streams).unwrap_or(u32::MAX));
            owed_bytes = limit.frame().encoded_len();
            owed.push_back(limit);
        }
        Self {
            side,
            max_streams,
            streams: HashMap::new(),
            next_local: match side {
                Side::Client => 1,
                Side::Server => 2,
            },
            last_peer: 0,
            peer_open: 0,
            local_open: 0,
            peer_limit: DEFAULT_MAX_STREAMS,
            opened: 0,
            accept: VecDeque::new(),
            owed,
            owed_bytes,
            session_send_window: u64::from(SESSION_WINDOW),
            session_recv_window: SESSION_WINDOW,
            session_recv_unacked: 0,
            spare: Vec::new(),
            events: Events::default(),
        }
    }

    /// Streams here now (open, or waiting for the application to let go).
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Opens a stream for `service`; the Open frame goes out with the
    /// stream's first data, or on its own with the next record. Refused
    /// with [`StreamError::Limit`] when the peer's limit is reached (the
    /// session goes on); [`StreamError::Session`] is the session's failure.
    pub fn open(&mut self, service: Option<ServiceName>) -> Result<StreamId, StreamError> {
        if self.local_open >= self.peer_limit {
            return Err(StreamError::Limit(self.peer_limit));
        }
        let id = StreamId(self.next_local);
        self.next_local =
            self.next_local
                .checked_add(2)
                .ok_or(StreamError::Session(Error::Internal(
                    "stream ids exhausted",
                )))?;
        self.owe(Owed::Open(id, service.clone()))
            .map_err(StreamError::Session)?;
        self.streams.insert(id, Stream::new(service, false));
        self.local_open += 1;
        self.opened += 1;
        Ok(id)
    }

    /// Streams this session has carried so far (opened by either side and
    /// not refused).
    pub fn carried(&self) -> u64 {
        self.opened
    }

    /// The peer's limit: streams it takes from this side at once (its Limit
    /// frame, or the default until one came).
    pub fn peer_limit(&self) -> usize {
        self.peer_limit
    }

    /// Whether [`open`](Self::open) would be within the peer's limit.
    pub fn can_open(&self) -> bool {
        self.local_open < self.peer_limit
    }

    /// The next stream the peer opened, with the service it asked for.
    pub fn accept(&mut self) -> Option<(StreamId, Option<ServiceName>)> {
        while let Some(id) = self.accept.pop_front() {
            if let Some(s) = self.streams.get(&id) {
                return Some((id, s.service.clone()));
            }
        }
        None
    }

    /// Copies unread bytes of `id` into `out`.
    pub fn read(&mut self, id: StreamId, out: &mut [u8]) -> Result<Read, StreamError> {
        let max = out.len();
        self.read_with(id, max, |chunk| {
            out[..chunk.len()].copy_from_slice(chunk);
            chunk.len()
        })
    }

    /// Hands up to `max` unread bytes of `id` to `copy` (in one slice), as
    /// [`read`](Self::read) copies them: for a destination that is not a
    /// plain slice (a buffer not yet initialised, or a socket written
    /// straight from here). `copy` says how many of them it took (those are
    /// read; the rest stay); [`Read::Data`] says so too, and may be 0.
    pub fn read_with(
        &mut self,
        id: StreamId,
        max: usize,
        copy: impl FnOnce(&[u8]) -> usize,
    ) -> Result<Read, StreamError> {
        let s = self.streams.get_mut(&id).ok_or_else(gone)?;
        if let Some(e) = &s.reset {
            return Err(e.clone());
        }
        if s.recv.len() == 0 {
            return Ok(if s.recv_fin { Read::End } else { Read::Pending });
        }
        let n = s.recv.take_with(max, copy, &mut self.spare);
        // Grant the peer what was read once it is half a window.
        s.recv_unacked += n as u32;
        let mut owed = [None, None];
        if s.recv_unacked >= STREAM_WINDOW / 2 && !s.recv_fin {
            owed[0] = Some(Owed::Window(id, s.recv_unacked));
            s.recv_window += s.recv_unacked;
            s.recv_unacked = 0;
        }
        self.session_recv_unacked += n as u32;
        if self.session_recv_unacked >= SESSION_WINDOW / 2 {
            owed[1] = Some(Owed::Window(StreamId::SESSION, self.session_recv_unacked));
            self.session_recv_window += self.session_recv_unacked;
            self.session_recv_unacked = 0;
        }
        for o in owed.into_iter().flatten() {
            // Window grants are few (one per half window read): they cannot
            // overflow the queue, and if they did the session is failing.
            let _ = self.owe(o);
        }
        self.reap(id);
        Ok(Read::Data(n))
    }

    /// How much `id` may send now.
    pub fn writable(&self, id: StreamId) -> Result<Writable, StreamError> {
        let s = self.streams.get(&id).ok_or_else(gone)?;
        if let Some(e) = &s.reset {
            return Err(e.clone());
        }
        if s.send_fin {
            return Err(StreamError::Finished);
        }
        let n = s.send_window.min(self.session_send_window);
        Ok(if n == 0 {
            Writable::Blocked
        } else {
            Writable::Bytes(n.min(MAX_DATA_LEN as u64) as usize)
        })
    }

    /// Takes the frames this side owes the peer, as many as fit in `room`
    /// bytes, appended to `out`; `true` if any were.
    pub fn take_owed(&mut self, out: &mut Vec<u8>, mut room: usize) -> bool {
        let mut any = false;
        while let Some(o) = self.owed.front() {
            let frame = o.frame();
            let len = frame.encoded_len();
            if len > room {
                break;
            }
            frame.encode(out);
            room -= len;
            self.owed_bytes -= len;
            any = true;
            if let Some(
                Owed::Open(id, _) | Owed::Fin(id) | Owed::Reset(id, ..) | Owed::Window(id, _),
            ) = self.owed.pop_front()
            {
                self.reap(id);
            }
        }
        any
    }

    /// Whether frames are owed.
    pub fn has_owed(&self) -> bool {
        !self.owed.is_empty()
    }

    /// The encoded length of the frames owed.
    pub fn owed_bytes(&self) -> usize {
        self.owed_bytes
    }

    /// The header of a Data frame of `len` bytes (1–65,535) for `id`: the
    /// bytes follow it.
    pub fn data_header(id: StreamId, len: usize) -> [u8; DATA_OVERHEAD] {
        let [i0, i1, i2, i3] = id.0.to_be_bytes();
        let [l0, l1] = (len.min(MAX_DATA_LEN) as u16).to_be_bytes();
        [FrameType::DATA.0, i0, i1, i2, i3, l0, l1]
    }

    /// Takes `n` bytes sent on `id` (at most what [`writable`](Self::writable)
    /// allowed) off the send windows.
    pub fn charge(&mut self, id: StreamId, n: usize) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.send_window -= (n as u64).min(s.send_window);
        }
        self.session_send_window -= (n as u64).min(self.session_send_window);
    }

    /// The Data frame's cost on top of its bytes.
    pub const DATA_OVERHEAD: usize = DATA_OVERHEAD;

    /// Finishes this side of `id` (half-close).
    pub fn finish(&mut self, id: StreamId) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or_else(gone)?;
        if let Some(e) = &s.reset {
            return Err(e.clone());
        }
        if s.send_fin {
            return Ok(());
        }
        s.send_fin = true;
        self.settle(id);
        self.owe(Owed::Fin(id)).map_err(StreamError::Session)
    }

    /// Resets `id` both ways, telling the peer `code` and `reason`.
    pub fn reset(&mut self, id: StreamId, code: ResetCode, reason: &str) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.reset.is_some() || (s.send_fin && s.recv_fin) {
            return;
        }
        s.reset = Some(StreamError::Reset {
            code,
            reason: reason.to_owned(),
            by_peer: false,
        });
        let unread = s.recv.len() as u32;
        s.recv = RecvBuf::default();
        self.settle(id);
        self.credit_session(unread);
        let _ = self.owe(Owed::Reset(id, code, reason.to_owned()));
    }

    /// The application lets go of `id`: if either end is still open, the
    /// stream is reset (cancelled), as closing a socket with unread data
    /// resets it.
    pub fn release(&mut self, id: StreamId) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.released = true;
        if s.reset.is_none() && !(s.send_fin && s.recv_fin) {
            self.reset(id, ResetCode::CANCELLED, "");
        } else if s.recv.len() > 0 {
            // Both ends finished; what was never read is given back.
            let unread = s.recv.len() as u32;
            s.recv = RecvBuf::default();
            self.credit_session(unread);
        }
        self.reap(id);
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Events {
        core::mem::take(&mut self.events)
    }

    /// Events since the last call, into `into` (cleared first): its vectors
    /// are kept for the next events, so taking them allocates nothing.
    pub fn take_events_into(&mut self, into: &mut Events) {
        into.readable.clear();
        into.writable.clear();
        into.session_window = false;
        into.accept = false;
        core::mem::swap(into, &mut self.events);
    }

    /// Frees the spare receive buffers (the session is idle).
    pub fn shrink(&mut self) {
        self.spare = Vec::new();
    }

    /// Ends every stream with the session's error.
    pub fn fail_all(&mut self, e: &Error) {
        for (id, s) in &mut self.streams {
            if s.reset.is_none() {
                s.reset = Some(StreamError::Session(e.clone()));
            }
            self.events.readable.push(*id);
            self.events.writable.push(*id);
        }
        self.events.accept = true;
        self.owed.clear();
        self.owed_bytes = 0;
    }

    fn owe(&mut self, o: Owed) -> Result<(), Error> {
        if self.owed.len() >= MAX_PENDING_FRAMES {
            return Err(violation(
                AlertCode::TOO_LARGE,
                format!("more than {MAX_PENDING_FRAMES} stream frames owed to a peer that does not read"),
            ));
        }
        self.owed_bytes += o.frame().encoded_len();
        self.owed.push_back(o);
        Ok(())
    }

    /// Gives the session window back for bytes that were received but will
    /// never be read (a reset stream, a stream already gone).
    fn credit_session(&mut self, n: u32) {
        self.session_recv_unacked += n;
        if self.session_recv_unacked >= SESSION_WINDOW / 2 {
            let inc = self.session_recv_unacked;
            self.session_recv_window += inc;
            self.session_recv_unacked = 0;
            let _ = self.owe(Owed::Window(StreamId::SESSION, inc));
        }
    }

    /// Takes `id` off the count of open streams once it is closed.
    fn settle(&mut self, id: StreamId) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.counted && s.closed() {
            s.counted = false;
            if s.opened_by_peer {
                self.peer_open -= 1;
            } else {
                self.local_open -= 1;
            }
        }
    }

    /// Removes `id` once nothing more can happen on it and the application
    /// let go, and no frame for it is still owed.
    fn reap(&mut self, id: StreamId) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        if !(s.released && s.done()) {
            return;
        }
        if self.owed.iter().any(|o| match o {
            Owed::Open(i, _) | Owed::Fin(i) | Owed::Reset(i, ..) | Owed::Window(i, _) => *i == id,
            Owed::Limit(_) => false,
        }) {
            return;
        }
        self.settle(id);
        self.streams.remove(&id);
    }

    fn peer_opens(&self, id: StreamId) -> bool {
        id.is_client_opened() == (self.side == Side::Server)
    }

    /// Whether `id` was opened at some time (by either side).
    fn was_opened(&self, id: StreamId) -> bool {
        if self.peer_opens(id) {
            id.0 <= self.last_peer
        } else {
            id.0 < self.next_local
        }
    }

    /// Applies the frames of one Streams record.
    pub fn receive(&mut self, content: &[u8]) -> Result<(), Error> {
        for frame in frames(content) {
            self.apply(frame?)?;
        }
        Ok(())
    }

    fn apply(&mut self, frame: Frame<'_>) -> Result<(), Error> {
        let id = frame.id();
        if let Frame::Window {
            id: StreamId::SESSION,
            increment,
        } = frame
        {
            self.session_send_window += u64::from(increment);
            if self.session_send_window > MAX_WINDOW {
                return Err(violation(
                    AlertCode::FLOW_CONTROL,
                    "session send window grown past 2^31 - 1".into(),
                ));
            }
            self.events.session_window = true;
            return Ok(());
        }
        if let Frame::Limit { max_streams } = frame {
            self.peer_limit = usize::try_from(max_streams).unwrap_or(usize::MAX);
            return Ok(());
        }
        if let Frame::Open { service, .. } = frame {
            if !self.peer_opens(id) || id.0 <= self.last_peer {
                return Err(violation(
                    AlertCode::STREAM_STATE,
                    format!("Open for stream {id}, which the peer may not open now"),
                ));
            }
            self.last_peer = id.0;
            if self.peer_open >= self.max_streams {
                self.owe(Owed::Reset(
                    id,
                    ResetCode::REFUSED,
                    format!("stream limit reached ({} open)", self.max_streams),
                ))?;
                return Ok(());
            }
            self.peer_open += 1;
            self.opened += 1;
            self.streams.insert(id, Stream::new(service, true));
            self.accept.push_back(id);
            self.events.accept = true;
            return Ok(());
        }
        // Data takes from the session window whatever becomes of it.
        if let Frame::Data { data, .. } = &frame {
            let n = data.len() as u32;
            if n > self.session_recv_window {
                return Err(violation(
                    AlertCode::FLOW_CONTROL,
                    format!(
                        "{n} bytes on stream {id} beyond the session window ({} left)",
                        self.session_recv_window
                    ),
                ));
            }
            self.session_recv_window -= n;
        }
        let Some(s) = self.streams.get_mut(&id) else {
            if !self.was_opened(id) {
                return Err(violation(
                    AlertCode::STREAM_STATE,
                    format!(
                        "{} for stream {id}, which was never opened",
                        frame_name(&frame)
                    ),
                ));
            }
            // A stream that is over (and gone) here: late frames are
            // dropped, data given back to the session window.
            if let Frame::Data { data, .. } = frame {
                self.credit_session(data.len() as u32);
            }
            return Ok(());
        };
        match frame {
            Frame::Data { data, .. } => {
                let n = data.len() as u32;
                if s.recv_fin {
                    return Err(violation(
                        AlertCode::STREAM_STATE,
                        format!("data on stream {id} after its end"),
                    ));
                }
                if n > s.recv_window {
                    return Err(violation(
                        AlertCode::FLOW_CONTROL,
                        format!(
                            "{n} bytes on stream {id} beyond its window ({} left)",
                            s.recv_window
                        ),
                    ));
                }
                s.recv_window -= n;
                if s.reset.is_some() {
                    // Reset here, in flight there: dropped.
                    self.credit_session(n);
                } else {
                    s.recv.push(data, &mut self.spare);
                    self.events.readable.push(id);
                }
            }
            Frame::Fin { .. } => {
                if s.recv_fin {
                    return Err(violation(
                        AlertCode::STREAM_STATE,
                        format!("second end of stream {id}"),
                    ));
                }
                s.recv_fin = true;
                self.events.readable.push(id);
                self.settle(id);
                self.reap(id);
            }
            Frame::Reset { code, reason, .. } => {
                if s.reset.is_none() {
                    s.reset = Some(StreamError::Reset {
                        code,
                        reason,
                        by_peer: true,
                    });
                    let unread = s.recv.len() as u32;
                    s.recv = RecvBuf::default();
                    self.settle(id);
                    self.credit_session(unread);
                }
                self.events.readable.push(id);
                self.events.writable.push(id);
                self.reap(id);
            }
            Frame::Window { increment, .. } => {
                s.send_window += u64::from(increment);
                if s.send_window > MAX_WINDOW {
                    return Err(violation(
                        AlertCode::FLOW_CONTROL,
                        format!("send window of stream {id} grown past 2^31 - 1"),
                    ));
                }
                self.events.writable.push(id);
            }
            // Handled above, before the stream is looked up.
            Frame::Open { .. } | Frame::Limit { .. } => {}
        }
        Ok(())
    }
}

fn frame_name(f: &Frame<'_>) -> &'static str {
    match f {
        Frame::Open { .. } => "Open",
        Frame::Data { .. } => "Data",
        Frame::Fin { .. } => "Fin",
        Frame::Reset { .. } => "Reset",
        Frame::Window { .. } => "Window",
        Frame::Limit { .. } => "Limit",
    }
}

fn violation(alert: AlertCode, what: String) -> Error {
    Error::StreamViolation { alert, what }
}

fn gone() -> StreamError {
    StreamError::Session(Error::Internal("no such stream (already let go)"))
}

#[cfg(test)]
mod tests {
    use super::{RecvBuf, Streams};
    use crate::side::Side;
    use sc_wire::streams::{Frame, StreamId, DATA_OVERHEAD};

    /// A peer that floods one-byte Data frames (legal, within the windows)
    /// makes the receiver hold the bytes and nothing per frame: 200,000
    /// frames in records of 16 KiB leave 200,000 bytes buffered (in a
    /// buffer at most twice that) and owe the peer nothing until the
    /// application reads.
    #[test]
    fn a_flood_of_tiny_frames_holds_only_their_bytes() {
        let mut s = Streams::new(Side::Server, 256);
        let id = StreamId(1);
        let mut open = Vec::new();
        Frame::Open { id, service: None }.encode(&mut open);
        s.receive(&open).expect("open");
        let per_record = 16 * 1024 / (DATA_OVERHEAD + 1);
        let mut record = Vec::new();
        for _ in 0..per_record {
            Frame::Data { id, data: b"x" }.encode(&mut record);
        }
        let mut sent = 0;
        while sent < 200_000 {
            let n = per_record.min(200_000 - sent);
            s.receive(&record[..n * (DATA_OVERHEAD + 1)]).expect("data");
            sent += n;
        }
        let held = &s.streams[&id].recv;
        assert_eq!(held.len(), 200_000);
        assert!(
            held.buf.capacity() <= 2 * 200_000,
            "{}",
            held.buf.capacity()
        );
        assert_eq!(s.owed_bytes(), 0);
    }

    /// A reader that always leaves a little unread: the buffer keeps the
    /// bytes in order and does not grow past twice what is unread.
    #[test]
    fn a_reader_that_never_catches_up_does_not_grow_the_buffer() {
        let mut b = RecvBuf::default();
        let mut spare = Vec::new();
        let mut next = 0u8;
        let mut expect = 0u8;
        for _ in 0..10_000 {
            let chunk: Vec<u8> = (0..100)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            b.push(&chunk, &mut spare);
            // Read all but 10 bytes.
            let want = b.len() - 10;
            let mut got = Vec::new();
            while got.len() < want {
                b.take_with(
                    want - got.len(),
                    |c| {
                        got.extend_from_slice(c);
                        c.len()
                    },
                    &mut spare,
                );
            }
            for byte in got {
                expect = expect.wrapping_add(1);
                assert_eq!(byte, expect);
            }
            assert!(
                b.buf.len() <= 2 * b.len() + 100,
                "{} bytes held",
                b.buf.len()
            );
        }
        // Read to the end: the stream holds nothing; its buffer is kept
        // spare for the session's next bytes.
        let rest = b.len();
        b.take_with(rest, |c| c.len(), &mut spare);
        assert_eq!((b.len(), b.buf.capacity()), (0, 0));
        assert_eq!(spare.len(), 1);
        // More bytes take the spare buffer back.
        b.push(b"x", &mut spare);
        assert!(spare.is_empty() && b.buf.capacity() > 0);
    }
}
