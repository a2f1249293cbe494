//! [`SecureStream`]: an established session over any tokio `AsyncRead +
//! AsyncWrite`, as a byte stream and as a message API.
//!
//! The glue is thin (tokio-rustls's shape): [`Connection`] does all the
//! protocol work; this module moves bytes between it and the transport,
//! turns `Poll::Pending` into waiting, and wraps the typed [`Error`] in an
//! [`io::Error`] (get it back with [`Error::from_io_error`]).
//!
//! * **Reading** touches the transport only when the application asks for
//!   data and nothing decrypted is waiting, and then reads at most one
//!   [`RECEIVE_CHUNK_LEN`](crate::RECEIVE_CHUNK_LEN)-sized chunk straight into
//!   the core's receive buffer (no intermediate copy). Records are opened
//!   there in place, and a record's plaintext is copied from there into the
//!   caller's buffer: the one copy on this side, and no allocation per
//!   record. A peer that sends while the application does not read fills
//!   the kernel's buffer, not ours. The buffers of a session that moves
//!   nothing for a while are freed (and come back with the next bytes).
//! * **Writing** goes through the core's byte-stream writer,
//!   [`Connection::write_stream`], not the message API: each call seals one
//!   record (up to 64 KiB of the caller's bytes) and returns how many bytes
//!   it took, and `poll_write` returns the sum. A `poll_write` seals up to
//!   three records and writes them at once, without waiting to coalesce.
//!   Ciphertext the transport has not taken waits in one buffer of at most
//!   [`WRITE_BUFFER_LEN`] bytes; when that is full `poll_write` returns
//!   `Pending` until the transport takes more. The core's output buffer is
//!   swapped in, not copied.
//! * **Shutdown** sends the authenticated Close for our direction, flushes it
//!   and shuts down the transport's write side; reading goes on (half-close).

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use rand_core::OsRng;
use sc_handshake::{HandshakeSummary, StepOrder};
use sc_pki::{PeerIdentity, UnixTime};
use sc_wire::record::{INNER_TRAILER_LEN, MAX_FRAGMENT_LEN, RECORD_HEADER_LEN, TAG_LEN};
use sc_wire::{AlertCode, CipherSuite, ProtocolVersion, RouteName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Connection, Error, HandshakeTrace, Side, Stats};

/// Most ciphertext a stream holds that the transport has not yet taken
/// (256 KiB). `poll_write` accepts data only while a whole record still fits.
pub const WRITE_BUFFER_LEN: usize = 256 * 1024;

/// The largest sealed record on the wire.
const MAX_RECORD_LEN: usize = RECORD_HEADER_LEN + MAX_FRAGMENT_LEN + INNER_TRAILER_LEN + TAG_LEN;

/// Records `poll_write` seals before it writes. Three (up to 192 KiB per
/// write syscall): measured between two processes (the anchors harness,
/// tunnel entry side) 0.76 ns/byte against 0.87 with one record per write;
/// within one process one record per write was slightly faster.
const RECORDS_PER_WRITE: usize = 3;

/// A session whose transport has had nothing to read, and which has moved
/// no byte either way, for this long frees its record buffers (they come
/// back with the next bytes). Not at once: a busy session finds its
/// transport empty between records, and would allocate them again for
/// every read.
const SHRINK_AFTER: Duration = Duration::from_millis(100);

/// What an established session knows about itself; the same for the whole
/// session.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    side: Side,
    summary: HandshakeSummary,
    handshake_duration: Duration,
    trace: Option<HandshakeTrace>,
}

impl SessionInfo {
    pub(crate) fn new(
        side: Side,
        summary: HandshakeSummary,
        handshake_duration: Duration,
        trace: Option<HandshakeTrace>,
    ) -> Self {
        Self {
            side,
            summary,
            handshake_duration,
            trace,
        }
    }

    /// Which end of the session this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Who the peer proved to be: its names, certificate fingerprint, and
    /// whether it is anonymous.
    pub fn peer(&self) -> &PeerIdentity {
        &self.summary.peer
    }

    /// The protocol version the handshake ran (SPEC §16.1).
    pub fn version(&self) -> ProtocolVersion {
        self.summary.version
    }

    /// The AEAD of the records.
    pub fn cipher(&self) -> CipherSuite {
        self.summary.suite
    }

    /// The order steps 7–10 ran in.
    pub fn step_order(&self) -> StepOrder {
        self.summary.order
    }

    /// The route name the client sent, if any.
    pub fn route(&self) -> Option<&RouteName> {
        self.summary.route.as_ref()
    }

    /// The transcript hash through step 12: the same on both sides and
    /// different for every session (for channel binding).
    pub fn session_hash(&self) -> &[u8; 32] {
        &self.summary.session_hash
    }

    /// Wall-clock time from the start of `connect`/`accept` to the completed
    /// handshake.
    pub fn handshake_duration(&self) -> Duration {
        self.handshake_duration
    }

    /// Everything the handshake established.
    pub fn summary(&self) -> &HandshakeSummary {
        &self.summary
    }

    /// The handshake as it ran, with times from the start of
    /// `connect`/`accept`, when [`SessionConfig::trace`](crate::SessionConfig::trace)
    /// asked for it.
    pub fn handshake_trace(&self) -> Option<&HandshakeTrace> {
        self.trace.as_ref()
    }
}

/// The I/O state of one session, apart from the transport itself.
pub(crate) struct State {
    pub(crate) conn: Connection,
    /// Sealed bytes not yet taken by the transport: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// The transport's write side has been shut down.
    write_shut: bool,
    /// Wakes a reader at the next re-key deadline (SPEC §15): the interval
    /// of an idle session, a wait for the peer.
    rekey_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When the buffers of a quiet session are freed ([`SHRINK_AFTER`]),
    /// and the bytes moved when it was set.
    shrink_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    shrink_mark: u64,
}

impl core::fmt::Debug for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("State")
            .field("conn", &self.conn)
            .field("pending_write", &self.pending_write())
            .finish_non_exhaustive()
    }
}

impl State {
    pub(crate) fn new(conn: Connection) -> Self {
        Self {
            conn,
            out: Vec::new(),
            out_pos: 0,
            write_shut: false,
            rekey_timer: None,
            shrink_timer: None,
            shrink_mark: 0,
        }
    }

    fn pending_write(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Sealed bytes not yet taken by the transport, in our buffer and still
    /// in the core's.
    pub(crate) fn waiting(&self) -> usize {
        self.pending_write() + self.conn.outgoing_len()
    }

    /// Moves what the core has sealed behind the bytes already waiting.
    fn collect(&mut self) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 0 && self.conn.has_outgoing() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        // Swaps rather than copies when `out` is empty.
        self.conn.write_outgoing(&mut self.out);
    }

    /// Writes everything sealed so far: `Ready(Ok)` once all of it is
    /// written, `Pending` when the transport takes no more for now.
    pub(crate) fn poll_write_out<IO: AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.collect();
        while self.out_pos < self.out.len() {
            match ready!(Pin::new(&mut *io).poll_write(cx, &self.out[self.out_pos..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.out_pos += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads one chunk of the peer's bytes into the core and processes it:
    /// `Ready(Ok(n))` with the bytes read, 0 when the transport ended cleanly
    /// after the peer's Close. On a protocol error the alert the core queued
    /// is written if the transport takes it at once. When the transport has
    /// nothing, the empty buffers are freed: an idle session holds none.
    pub(crate) fn poll_fill<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let r = ready!(self.poll_read_in(io, cx));
        if r.is_err() && self.conn.has_outgoing() {
            // Best effort: the session is over either way.
            let _ = self.poll_write_out(io, cx);
        }
        Poll::Ready(r)
    }

    /// [`poll_fill`](Self::poll_fill) from a transport's read side only:
    /// on an error the alert the core queued is the caller's to write.
    pub(crate) fn poll_read_in<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let buf = self.conn.receive_buffer();
        let n = match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf) {
            Poll::Ready(n) => n?,
            Poll::Pending => {
                if let Err(e) = self.rekey_idle(cx) {
                    return Poll::Ready(Err(e.into()));
                }
                self.shrink_when_quiet(cx);
                return Poll::Pending;
            }
        };
        let result = if n == 0 {
            self.conn.receive_eof()
        } else {
            self.conn
                .process_received(UnixTime::now(), &mut OsRng)
                .and_then(|()| self.drive_rekey())
        };
        if let Err(e) = result {
            return Poll::Ready(Err(e.into()));
        }
        Poll::Ready(Ok(n))
    }

    /// Re-keying (SPEC §15) on this session's activity: starts a re-key
    /// that is due (interval, volume, a request), fails one left unanswered,
    /// logs the finished ones. A session of streams also runs it on a timer
    /// (its driver); a single stream only when it reads or writes.
    pub(crate) fn drive_rekey(&mut self) -> Result<(), Error> {
        if !self.conn.has_rekey() {
            return Ok(());
        }
        let now = tokio::time::Instant::now().into_std();
        self.conn.poll_rekey(now, &mut OsRng).map(drop)
    }

    /// Re-keying while the transport has nothing to read (SPEC §15): caught
    /// up, a re-key answer not in by now is late; an idle session's
    /// interval is checked; and the reader is woken at the next deadline.
    /// A RekeyInit this seals is the caller's to write.
    fn rekey_idle(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        if !self.conn.has_rekey() {
            return Ok(());
        }
        let now = tokio::time::Instant::now().into_std();
        self.conn.handle_rekey_timeout(now)?;
        self.conn.poll_rekey(now, &mut OsRng)?;
        let Some(deadline) = self.conn.rekey_deadline() else {
            self.rekey_timer = None;
            return Ok(());
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let timer = self
            .rekey_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_ready() {
            // Due, and nothing to do yet (a partial record is still coming
            // in): the bytes that complete it wake the reader.
            self.rekey_timer = None;
        }
        Ok(())
    }

    /// The transport has nothing to read: once the session has moved no
    /// byte for [`SHRINK_AFTER`], its buffers are freed, so an idle session
    /// holds none; until then the reader is woken when that time is up.
    fn shrink_when_quiet(&mut self, cx: &mut Context<'_>) {
        let stats = self.conn.stats();
        let moved = stats.bytes_received.wrapping_add(stats.bytes_sent);
        if moved != self.shrink_mark {
            // Bytes moved since the buffers were last freed (or the timer
            // last set): free them SHRINK_AFTER from now.
            self.shrink_mark = moved;
            let deadline = tokio::time::Instant::now() + SHRINK_AFTER;
            match &mut self.shrink_timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.shrink_timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        // None: freed already, and quiet since.
        let Some(timer) = &mut self.shrink_timer else {
            return;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return;
        }
        self.conn.shrink_buffers();
        if self.pending_write() == 0 {
            self.out = Vec::new();
            self.out_pos = 0;
        }
        // Nothing more to free until bytes move again (no timer meanwhile).
        self.shrink_timer = None;
    }

    /// Writes what earlier writes left behind, without waiting: a reader
    /// that wrote and did not flush still gets its request out. Only where
    /// the reader is also the writer (not on a split read half, whose
    /// transport write waker belongs to the write half).
    fn push_pending<IO: AsyncWrite + Unpin>(&mut self, io: &mut IO, cx: &mut Context<'_>) {
        if self.pending_write() > 0 || self.conn.has_outgoing() {
            let _ = self.poll_write_out(io, cx);
        }
    }

    pub(crate) fn poll_read<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        push_writes: bool,
    ) -> Poll<io::Result<()>> {
        if push_writes {
            self.push_pending(io, cx);
        }
        let mut copied = false;
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Copied out of the receive buffer, where the record was
            // opened: the one copy of the plaintext on this side.
            if let Some(data) = self.conn.readable() {
                let n = buf.remaining().min(data.len());
                buf.put_slice(&data[..n]);
                self.conn.consume(n);
                copied = true;
                continue;
            }
            if copied || self.conn.peer_closed() {
                // Data, or end of stream after the peer's authenticated Close.
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = self.conn.error() {
                return Poll::Ready(Err(e.clone().into()));
            }
            // 0 (a clean end) means the peer's Close is in: the loop ends.
            let filled = self.poll_fill(io, cx);
            if push_writes {
                // What reading sealed (a RekeyReply or Switch, SPEC §15;
                // an idle session's RekeyInit) goes out now, not with the
                // next write.
                self.push_pending(io, cx);
            }
            ready!(filled)?;
        }
    }

    pub(crate) fn poll_recv_message<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
        push_writes: bool,
    ) -> Poll<Result<Option<Vec<u8>>, Error>> {
        if push_writes {
            self.push_pending(io, cx);
        }
        loop {
            // After a partial byte read: the rest of that message.
            if let Some(msg) = self.conn.recv_message() {
                return Poll::Ready(Ok(Some(msg)));
            }
            if self.conn.peer_closed() {
                return Poll::Ready(Ok(None));
            }
            if let Some(e) = self.conn.error() {
                return Poll::Ready(Err(e.clone()));
            }
            let filled = self.poll_fill(io, cx);
            if push_writes {
                // What reading sealed (a RekeyReply or Switch, SPEC §15;
                // an idle session's RekeyInit) goes out now, not with the
                // next write.
                self.push_pending(io, cx);
            }
            ready!(filled)?;
        }
    }

    pub(crate) fn poll_write<IO: AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.conn.error() {
            return Poll::Ready(Err(e.clone().into()));
        }
        if self.conn.sent_close() {
            return Poll::Ready(Err(Error::Closed.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if let Err(e) = self.drive_rekey() {
            // The alert it queued goes out if the transport takes it.
            let _ = self.poll_write_out(io, cx);
            return Poll::Ready(Err(e.into()));
        }
        if self.waiting() > WRITE_BUFFER_LEN - MAX_RECORD_LEN {
            // Pending here means the transport holds our waker. Ready means
            // everything was written: the first record below fits.
            ready!(self.poll_write_out(io, cx))?;
        }
        let mut accepted = 0;
        let mut records = 0;
        while accepted < buf.len()
            && records < RECORDS_PER_WRITE
            && self.waiting() + MAX_RECORD_LEN <= WRITE_BUFFER_LEN
        {
            records += 1;
            match self.conn.write_stream(&buf[accepted..]) {
                Ok(n) => accepted += n,
                Err(e) if accepted == 0 => return Poll::Ready(Err(e.into())),
                // What was accepted is sealed; the error comes with the next call.
                Err(_) => break,
            }
        }
        // Out at once, without waiting for more to coalesce. Whatever the
        // transport does not take now goes with the next write or flush.
        if let Poll::Ready(Err(e)) = self.poll_write_out(io, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(accepted))
    }

    /// As [`poll_write`](Self::poll_write) of what one read of `from`
    /// gives, read straight into the record and sealed there. A full read
    /// waits for the next one while the write buffer has room for another
    /// record (several records to the transport in one write); a short
    /// read, the end of `from` or a wait for it writes out what is sealed.
    pub(crate) fn poll_write_from<IO: AsyncWrite + Unpin, R: AsyncRead + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
        from: &mut R,
    ) -> Poll<Result<usize, CopyError>> {
        if let Some(e) = self.conn.error() {
            return Poll::Ready(Err(CopyError::Secure(e.clone().into())));
        }
        if self.conn.sent_close() {
            return Poll::Ready(Err(CopyError::Secure(Error::Closed.into())));
        }
        if let Err(e) = self.drive_rekey() {
            // The alert it queued goes out if the transport takes it.
            let _ = self.poll_write_out(io, cx);
            return Poll::Ready(Err(CopyError::Secure(e.into())));
        }
        if self.waiting() > WRITE_BUFFER_LEN - MAX_RECORD_LEN {
            ready!(self.poll_write_out(io, cx)).map_err(CopyError::Secure)?;
        }
        let mut max = 0;
        let filled = self.conn.write_stream_from(|out, room| {
            max = room;
            read_appending(from, cx, out, room)
        });
        let (n, read) = match filled {
            Ok(filled) => filled,
            Err(e) => {
                let _ = self.poll_write_out(io, cx);
                return Poll::Ready(Err(CopyError::Secure(e.into())));
            }
        };
        let more_now = matches!(read, Poll::Ready(Ok(_)))
            && n == max
            && self.waiting() + MAX_RECORD_LEN <= WRITE_BUFFER_LEN;
        if !more_now {
            if let Poll::Ready(Err(e)) = self.poll_write_out(io, cx) {
                return Poll::Ready(Err(CopyError::Secure(e)));
            }
        }
        match read {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(CopyError::Plain(e))),
            Poll::Pending => {
                self.free_written();
                Poll::Pending
            }
        }
    }

    /// Waiting for plaintext with everything written: the empty write
    /// buffer is freed (the next record's buffer comes from the core).
    pub(crate) fn free_written(&mut self) {
        if self.waiting() == 0 {
            self.out = Vec::new();
            self.out_pos = 0;
        }
    }

    /// As [`poll_read`](Self::poll_read) into `to`: what is opened is
    /// written from the receive buffer, where it was opened, straight to
    /// `to`. `Ready(Ok(n))` with the bytes `to` took; 0 at the end.
    pub(crate) fn poll_read_into<IO: AsyncRead + AsyncWrite + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
        to: &mut W,
    ) -> Poll<Result<usize, CopyError>> {
        loop {
            if let Some(data) = self.conn.readable() {
                let n = match ready!(Pin::new(&mut *to).poll_write(cx, data)) {
                    Ok(0) => {
                        return Poll::Ready(Err(CopyError::Plain(io::ErrorKind::WriteZero.into())))
                    }
                    Ok(n) => n,
                    Err(e) => return Poll::Ready(Err(CopyError::Plain(e))),
                };
                self.conn.consume(n);
                return Poll::Ready(Ok(n));
            }
            if self.conn.peer_closed() {
                return Poll::Ready(Ok(0));
            }
            if let Some(e) = self.conn.error() {
                return Poll::Ready(Err(CopyError::Secure(e.clone().into())));
            }
            ready!(self.poll_fill(io, cx)).map_err(CopyError::Secure)?;
        }
    }

    pub(crate) fn poll_flush<IO: AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_write_out(io, cx))?;
        Pin::new(io).poll_flush(cx)
    }

    pub(crate) fn poll_shutdown<IO: AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.conn.sent_close() {
            self.conn.close().map_err(io::Error::from)?;
        }
        ready!(self.poll_flush(io, cx))?;
        if !self.write_shut {
            ready!(Pin::new(io).poll_shutdown(cx))?;
            self.write_shut = true;
        }
        Poll::Ready(Ok(()))
    }

    /// Seals one message (its records may exceed [`WRITE_BUFFER_LEN`]: a
    /// message is sealed whole).
    fn start_message(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.conn.send_message(msg)
    }

    fn start_keepalive(&mut self) -> Result<(), Error> {
        self.conn.send_keepalive()?;
        self.drive_rekey()
    }

    fn start_rekey(&mut self) -> Result<(), Error> {
        self.conn.request_rekey()?;
        self.drive_rekey()
    }

    fn start_abort(&mut self, code: AlertCode) {
        self.conn.abort(code);
    }
}

/// An established Sovereign-Chain session over the transport `IO`.
///
/// * [`AsyncRead`]/[`AsyncWrite`]: a byte stream. Message boundaries are not
///   kept. `poll_read` returns end of stream (`Ok(0)`) only after the peer's
///   authenticated Close; a transport that ends without one fails with
///   [`io::ErrorKind::UnexpectedEof`] carrying [`Error::Truncated`]. Every
///   protocol failure is an [`io::Error`] that carries the typed [`Error`]
///   ([`Error::from_io_error`]); transport errors pass through unchanged.
///   `poll_write` seals and writes at once; what the transport does not take
///   at once goes with the next write, read or flush (call `flush` to be
///   sure everything accepted has been handed to the transport). `poll_shutdown`
///   sends the authenticated Close and shuts down the transport's write side
///   only: the peer can go on sending and we go on reading (half-close).
/// * [`send_message`](Self::send_message)/[`recv_message`](Self::recv_message):
///   whole messages with their boundaries. The two APIs may be mixed on one
///   stream, but the byte stream ignores boundaries: `recv_message` after a
///   partial `read` returns the rest of that message.
///
/// Dropping the stream drops the transport without a Close: the peer sees a
/// truncated session. Shut it down first.
///
/// [`into_split`](Self::into_split) gives a read half and a write half that
/// can be used from two tasks.
pub struct SecureStream<IO> {
    io: IO,
    state: State,
    info: Arc<SessionInfo>,
}

impl<IO: core::fmt::Debug> core::fmt::Debug for SecureStream<IO> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecureStream")
            .field("io", &self.io)
            .field("state", &self.state)
            .field("info", &self.info)
            .finish()
    }
}

impl<IO> SecureStream<IO> {
    pub(crate) fn new(io: IO, state: State, info: SessionInfo) -> Self {
        Self {
            io,
            state,
            info: Arc::new(info),
        }
    }

    /// What the handshake established.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The transport, the I/O state and what the handshake established:
    /// what a [`MuxSession`](crate::mux::MuxSession) is made of.
    pub(crate) fn into_parts(self) -> (IO, State, Arc<SessionInfo>) {
        (self.io, self.state, self.info)
    }

    /// Who the peer proved to be.
    pub fn peer(&self) -> &PeerIdentity {
        self.info.peer()
    }

    /// The protocol version the handshake ran.
    pub fn version(&self) -> ProtocolVersion {
        self.info.version()
    }

    /// The AEAD of the records.
    pub fn cipher(&self) -> CipherSuite {
        self.info.cipher()
    }

    /// The order steps 7–10 ran in.
    pub fn step_order(&self) -> StepOrder {
        self.info.step_order()
    }

    /// Time from the start of `connect`/`accept` to the completed handshake.
    pub fn handshake_duration(&self) -> Duration {
        self.info.handshake_duration()
    }

    /// The handshake as it ran, when
    /// [`SessionConfig::trace`](crate::SessionConfig::trace) asked for it.
    pub fn handshake_trace(&self) -> Option<&HandshakeTrace> {
        self.info.handshake_trace()
    }

    /// The transcript hash through step 12, the same on both sides.
    pub fn session_hash(&self) -> &[u8; 32] {
        self.info.session_hash()
    }

    /// Bytes and messages each way so far, handshake included ([`Stats`]
    /// says what each counts: writes through `AsyncWrite` are not messages).
    pub fn stats(&self) -> Stats {
        self.state.conn.stats()
    }

    /// The sans-I/O session underneath (for example to see
    /// [`Connection::peer_closed`] or [`Connection::error`]).
    pub fn connection(&self) -> &Connection {
        &self.state.conn
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The transport, for example to set socket options. Reading or writing
    /// it directly corrupts the session.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> SecureStream<IO> {
    /// Sends `msg` as one message and writes it out (it is sealed whole, so
    /// a message may hold up to the maximum message length of ciphertext
    /// beyond [`WRITE_BUFFER_LEN`]). If the future is dropped before it
    /// completes, the message is still sent with the next write or flush.
    pub async fn send_message(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.state.start_message(msg)?;
        poll_fn(|cx| self.state.poll_flush(&mut self.io, cx)).await?;
        Ok(())
    }

    /// The next whole message from the peer; `None` after the peer's
    /// authenticated Close. Cancel-safe: a message is never lost.
    pub async fn recv_message(&mut self) -> Result<Option<Vec<u8>>, Error> {
        poll_fn(|cx| self.state.poll_recv_message(&mut self.io, cx, true)).await
    }

    /// Sends a keepalive record (ignored by the peer's application) and
    /// writes it out.
    pub async fn send_keepalive(&mut self) -> Result<(), Error> {
        let started = self.state.start_keepalive();
        // Also when it failed: the alert it queued goes out.
        let flushed = poll_fn(|cx| self.state.poll_flush(&mut self.io, cx)).await;
        started?;
        flushed?;
        Ok(())
    }

    /// Ends the session with the alert `code` (for example
    /// [`AlertCode::GOING_AWAY`]) and writes it out; the session is over.
    pub async fn abort(&mut self, code: AlertCode) -> Result<(), Error> {
        self.state.start_abort(code);
        poll_fn(|cx| self.state.poll_flush(&mut self.io, cx)).await?;
        Ok(())
    }

    /// Starts a re-key now (SPEC §15; after the one in flight, if any) and
    /// writes its RekeyInit out. It completes as the session goes on reading
    /// (the peer's RekeyReply); [`Connection::rekeys_completed`] counts it.
    /// An error if the session did not agree on re-keying.
    ///
    /// A single stream re-keys by itself (interval, volume) only when it
    /// reads or writes; a [`MuxSession`](crate::MuxSession) also on a timer.
    pub async fn rekey(&mut self) -> Result<(), Error> {
        let started = self.state.start_rekey();
        // Also when it failed: the alert it queued goes out.
        let flushed = poll_fn(|cx| self.state.poll_flush(&mut self.io, cx)).await;
        started?;
        flushed?;
        Ok(())
    }

    /// Splits the stream into a read half and a write half that two tasks
    /// can use at once (a tunnel copying both ways).
    ///
    /// Both halves share the stream behind a mutex that each poll holds only
    /// while it runs (like [`tokio::io::split`]); records are opened and
    /// sealed under it, so the two directions of one session do not encrypt
    /// in parallel. The transport must keep separate wakers for reading and
    /// writing, as tokio's sockets and `DuplexStream` do. A failure seen by
    /// the read half wakes a write half that is waiting.
    pub fn into_split(self) -> (ReadHalf<IO>, WriteHalf<IO>) {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                io: self.io,
                state: self.state,
                writer: None,
            }),
            info: self.info,
        });
        (
            ReadHalf {
                shared: shared.clone(),
            },
            WriteHalf { shared },
        )
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for SecureStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.state.poll_read(&mut this.io, cx, buf, true)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SecureStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.state.poll_write(&mut this.io, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.state.poll_flush(&mut this.io, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.state.poll_shutdown(&mut this.io, cx)
    }
}

/// How a copy straight between a secure stream and a plaintext
/// connection failed ([`WriteHalf::poll_write_from`],
/// [`ReadHalf::poll_read_into`] and the same on a stream of a session of
/// streams): on which side.
#[derive(Debug)]
pub enum CopyError {
    /// Reading from or writing to the plaintext connection.
    Plain(io::Error),
    /// The session (or the stream), as its `AsyncRead`/`AsyncWrite` would
    /// have failed.
    Secure(io::Error),
}

/// Reads once from `from` into the spare room of `out`, at most `max`
/// bytes, without zeroing the room first.
pub(crate) fn read_appending<R: AsyncRead + Unpin>(
    from: &mut R,
    cx: &mut Context<'_>,
    out: &mut Vec<u8>,
    max: usize,
) -> Poll<io::Result<usize>> {
    use tokio_util::bytes::BufMut;
    tokio_util::io::poll_read_buf(Pin::new(from), cx, &mut out.limit(max))
}

struct Inner<IO> {
    io: IO,
    state: State,
    /// The write half's task while it waits on the transport.
    writer: Option<Waker>,
}

struct Shared<IO> {
    inner: Mutex<Inner<IO>>,
    info: Arc<SessionInfo>,
}

impl<IO> Shared<IO> {
    fn lock(&self) -> MutexGuard<'_, Inner<IO>> {
        // A panic while the lock was held leaves nothing half-updated that
        // matters more than the panic itself; go on with the state as is.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<IO> Inner<IO> {
    /// After a read-side failure: the read path may have written the alert
    /// with the reader's waker and the session is over, so the writer must
    /// poll again.
    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    /// After the read half read: on a failure (`failed`) the writer must
    /// poll again. Records that reading sealed of its own (a RekeyReply or
    /// Switch, SPEC §15) are sent by the write half if it waits on the
    /// transport, else from here: a peer that only writes would otherwise
    /// wait for them in vain.
    fn after_read(&mut self, cx: &mut Context<'_>, failed: bool)
    where
        IO: AsyncWrite + Unpin,
    {
        if failed {
            self.wake_writer();
        } else if self.state.waiting() > 0 {
            if self.writer.is_some() {
                self.wake_writer();
            } else {
                let _ = self.state.poll_write_out(&mut self.io, cx);
            }
        }
    }

    fn park_writer<T>(&mut self, cx: &Context<'_>, poll: Poll<T>) -> Poll<T> {
        if poll.is_pending() {
            match &self.writer {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => self.writer = Some(cx.waker().clone()),
            }
        }
        poll
    }
}

/// The reading half of a [`SecureStream`] (from
/// [`SecureStream::into_split`]).
pub struct ReadHalf<IO> {
    shared: Arc<Shared<IO>>,
}

/// The writing half of a [`SecureStream`] (from
/// [`SecureStream::into_split`]). Shut it down to send the authenticated
/// Close; the read half keeps reading.
pub struct WriteHalf<IO> {
    shared: Arc<Shared<IO>>,
}

impl<IO> core::fmt::Debug for ReadHalf<IO> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReadHalf")
            .field("info", &self.shared.info)
            .finish_non_exhaustive()
    }
}

impl<IO> core::fmt::Debug for WriteHalf<IO> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WriteHalf")
            .field("info", &self.shared.info)
            .finish_non_exhaustive()
    }
}

impl<IO> ReadHalf<IO> {
    /// What the handshake established.
    pub fn info(&self) -> &SessionInfo {
        &self.shared.info
    }

    /// Bytes and messages each way so far (as [`SecureStream::stats`]).
    pub fn stats(&self) -> Stats {
        self.shared.lock().state.conn.stats()
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<Error> {
        self.shared.lock().state.conn.error().cloned()
    }

    /// Re-keys the session completed so far (as
    /// [`Connection::rekeys_completed`]).
    pub fn rekeys_completed(&self) -> u64 {
        self.shared.lock().state.conn.rekeys_completed()
    }

    /// Joins the two halves of one stream again; gives them back if `write`
    /// belongs to another stream.
    pub fn reunite(self, write: WriteHalf<IO>) -> Result<SecureStream<IO>, (Self, WriteHalf<IO>)> {
        if !Arc::ptr_eq(&self.shared, &write.shared) {
            return Err((self, write));
        }
        drop(write);
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => {
                let inner = shared
                    .inner
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(SecureStream {
                    io: inner.io,
                    state: inner.state,
                    info: shared.info,
                })
            }
            // Only the two halves hold the stream, and one was just dropped.
            Err(shared) => Err((
                Self {
                    shared: shared.clone(),
                },
                WriteHalf { shared },
            )),
        }
    }
}

impl<IO> WriteHalf<IO> {
    /// What the handshake established.
    pub fn info(&self) -> &SessionInfo {
        &self.shared.info
    }

    /// Bytes and messages each way so far (as [`SecureStream::stats`]).
    pub fn stats(&self) -> Stats {
        self.shared.lock().state.conn.stats()
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<Error> {
        self.shared.lock().state.conn.error().cloned()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> ReadHalf<IO> {
    /// As [`SecureStream::recv_message`].
    pub async fn recv_message(&mut self) -> Result<Option<Vec<u8>>, Error> {
        poll_fn(|cx| {
            let mut guard = self.shared.lock();
            let inner = &mut *guard;
            let poll = inner.state.poll_recv_message(&mut inner.io, cx, false);
            inner.after_read(cx, poll.is_ready() && !matches!(poll, Poll::Ready(Ok(_))));
            poll
        })
        .await
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> WriteHalf<IO> {
    fn flush_pending(&mut self) -> impl core::future::Future<Output = Result<(), Error>> + '_ {
        poll_fn(|cx| {
            let mut guard = self.shared.lock();
            let inner = &mut *guard;
            let poll = inner.state.poll_flush(&mut inner.io, cx);
            inner.park_writer(cx, poll).map_err(Error::from)
        })
    }

    /// As [`SecureStream::send_message`].
    pub async fn send_message(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.shared.lock().state.start_message(msg)?;
        self.flush_pending().await
    }

    /// As [`SecureStream::send_keepalive`].
    pub async fn send_keepalive(&mut self) -> Result<(), Error> {
        let started = self.shared.lock().state.start_keepalive();
        // Also when it failed: the alert it queued goes out.
        let flushed = self.flush_pending().await;
        started?;
        flushed
    }

    /// As [`SecureStream::abort`].
    pub async fn abort(&mut self, code: AlertCode) -> Result<(), Error> {
        self.shared.lock().state.start_abort(code);
        self.flush_pending().await
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> ReadHalf<IO> {
    /// Reads once and writes the plaintext straight to `to` from where it
    /// was opened, with no copy through a buffer of the caller's (a tunnel
    /// exit): `Ready(Ok(n))` with the bytes `to` took, 0 after the peer's
    /// authenticated Close. `Pending` when nothing is in yet or `to` takes
    /// nothing now.
    pub fn poll_read_into<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut W,
    ) -> Poll<Result<usize, CopyError>> {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let poll = inner.state.poll_read_into(&mut inner.io, cx, to);
        inner.after_read(cx, matches!(poll, Poll::Ready(Err(CopyError::Secure(_)))));
        poll
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> WriteHalf<IO> {
    /// Reads once from `from` straight into a record, seals it in place and
    /// sends it, with no copy through a buffer of the caller's (a tunnel
    /// entry): `Ready(Ok(n))` with the bytes sent, 0 when `from` has ended
    /// (then shut this half down, as after any end of input). `Pending`
    /// when `from` has nothing or the transport takes nothing now.
    ///
    /// After a full read the records may wait for the next call, to go to
    /// the transport together; a caller that stops calling flushes (or
    /// shuts down) to send them.
    pub fn poll_write_from<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
    ) -> Poll<Result<usize, CopyError>> {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let poll = inner.state.poll_write_from(&mut inner.io, cx, from);
        inner.park_writer(cx, poll)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for ReadHalf<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let poll = inner.state.poll_read(&mut inner.io, cx, buf, false);
        inner.after_read(cx, matches!(poll, Poll::Ready(Err(_))));
        poll
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WriteHalf<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let poll = inner.state.poll_write(&mut inner.io, cx, buf);
        inner.park_writer(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let poll = inner.state.poll_flush(&mut inner.io, cx);
        inner.park_writer(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let poll = inner.state.poll_shutdown(&mut inner.io, cx);
        inner.park_writer(cx, poll)
    }
}
