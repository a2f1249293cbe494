//! A session of streams over tokio (SPEC §14): [`MuxSession`] turns an
//! established [`SecureStream`] whose handshake agreed on streams into many
//! [`SessionStream`]s, each an `AsyncRead + AsyncWrite` byte stream with its
//! own half-close, reset and flow control.
//!
//! ```text
//!  SessionStream ─┐  (lock) seal Data into the core's output, write it out ──▶ transport (write half)
//!  SessionStream ─┼──▶ Connection (Streams) ◀── driver task ◀── transport (read half)
//!  accept_stream ─┘  (lock) read from the stream's buffer
//! ```
//!
//! One driver task per session reads the peer's records and wakes the
//! streams they concern; it also writes what nobody else will (frames owed,
//! the rest of what a writer left when the transport was full). A writer
//! writes its own record to the transport at once, under the session's
//! lock, so a stream's bytes cost no hop through the driver. Writers that
//! find more than [`WRITE_BUFFER_LEN`] of
//! ciphertext waiting queue up and are woken in turn as it drains, so a
//! bulk stream cannot hold the others back by more than that buffer (and
//! what TCP holds).

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use sc_wire::streams::{ResetCode, ServiceName, StreamId};
use sc_wire::AlertCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf};

use crate::stream::{read_appending, CopyError, SessionInfo, State};

/// Ciphertext a session of streams lets wait for the transport before its
/// writers queue up (64 KiB: one record). Kept small, since a stream's
/// record waits behind all of it: the kernel's socket buffer already keeps
/// a bulk stream busy, and every KiB here is latency for the others.
pub const WRITE_BUFFER_LEN: usize = 64 * 1024;
use crate::streams::{Events, Read, StreamError};
use crate::{Error, SecureStream, Stats};

/// The I/O side of a stream error: a reset is `ConnectionReset` (by the
/// peer) or `ConnectionAborted` (by this side), a lost session carries its
/// kind; the [`StreamError`] is inside ([`stream_error`]).
fn io_error(e: StreamError) -> io::Error {
    let kind = match &e {
        StreamError::Reset { by_peer: true, .. } => io::ErrorKind::ConnectionReset,
        StreamError::Reset { by_peer: false, .. } => io::ErrorKind::ConnectionAborted,
        StreamError::Finished => io::ErrorKind::BrokenPipe,
        StreamError::Limit(_) => io::ErrorKind::Other,
        StreamError::Session(s) => match s.io_kind() {
            io::ErrorKind::UnexpectedEof => io::ErrorKind::ConnectionReset,
            k => k,
        },
    };
    io::Error::new(kind, e)
}

/// The stream error inside an [`io::Error`] from a [`SessionStream`].
pub fn stream_error(e: &io::Error) -> Option<&StreamError> {
    e.get_ref()?.downcast_ref::<StreamError>()
}

/// A transport's write half.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

struct Inner {
    state: State,
    /// The transport's write half: whoever has sealed bytes writes them.
    writer: Writer,
    /// Tasks waiting to read, by stream.
    readers: HashMap<StreamId, Waker>,
    /// Tasks waiting for a stream's or the session's window, by stream.
    writers: HashMap<StreamId, Waker>,
    /// Tasks waiting for ciphertext to drain, in order.
    out_waiters: VecDeque<Waker>,
    accept: Option<Waker>,
    driver: Option<Waker>,
    /// Why the session is over (the driver has ended).
    ended: Option<Error>,
    /// Close the session once no stream is left.
    closing: bool,
    /// Wakers of `closed()`.
    closed: Vec<Waker>,
    /// The last events' vectors, kept for the next ones.
    events: Events,
}

impl Inner {
    fn wake_driver(&mut self) {
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    /// Writes what is sealed now, from the caller's task; what the
    /// transport does not take (or an error) is the driver's.
    fn write_now(&mut self, cx: &mut Context<'_>) {
        let Self { state, writer, .. } = self;
        if matches!(state.poll_write_out(writer, cx), Poll::Ready(Ok(()))) {
            // Drained: a writer that waited for room goes on.
            if let Some(w) = self.out_waiters.pop_front() {
                w.wake();
            }
        } else {
            // The driver polls the write side again, so its waker is the
            // one the transport wakes when it has room.
            self.wake_driver();
        }
    }

    /// After a read: a window grant it made owed is sent now, from the
    /// reader's task, so the sender waits no longer than it must.
    fn grant(&mut self, cx: &mut Context<'_>) {
        if self.state.conn.has_streams_owed() {
            if self.state.conn.flush_streams().is_ok() {
                self.write_now(cx);
            } else {
                self.wake_driver();
            }
        }
    }

    fn end(&mut self, e: Error) {
        if self.ended.is_none() {
            tracing::debug!(target: "sc_session", error = %e, "session of streams ended");
            self.ended = Some(e);
        }
        for (_, w) in self.readers.drain() {
            w.wake();
        }
        for (_, w) in self.writers.drain() {
            w.wake();
        }
        for w in self.out_waiters.drain(..) {
            w.wake();
        }
        if let Some(w) = self.accept.take() {
            w.wake();
        }
        for w in self.closed.drain(..) {
            w.wake();
        }
    }

    fn session_error(&self) -> Option<StreamError> {
        self.ended.clone().map(StreamError::Session)
    }

    /// Wakes whoever the core's events concern.
    fn dispatch(&mut self) {
        // Taken into the vectors of the last events: no allocation.
        let mut ev = core::mem::take(&mut self.events);
        self.state.conn.take_stream_events_into(&mut ev);
        for id in ev.readable.drain(..) {
            if let Some(w) = self.readers.remove(&id) {
                w.wake();
            }
        }
        for id in ev.writable.drain(..) {
            if let Some(w) = self.writers.remove(&id) {
                w.wake();
            }
        }
        if ev.session_window {
            for (_, w) in self.writers.drain() {
                w.wake();
            }
        }
        if ev.accept {
            if let Some(w) = self.accept.take() {
                w.wake();
            }
        }
        self.events = ev;
    }
}

struct Shared {
    inner: Mutex<Inner>,
    info: Arc<SessionInfo>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A session that carries many streams. Cloning it gives another handle on
/// the same session; the session lives while its driver runs (until the
/// peer ends it, it fails, or [`close`](Self::close) completes).
#[derive(Clone)]
pub struct MuxSession {
    shared: Arc<Shared>,
}

impl core::fmt::Debug for MuxSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MuxSession")
            .field("info", &self.shared.info)
            .finish_non_exhaustive()
    }
}

impl MuxSession {
    /// Takes over `stream` if its handshake agreed on streams (else gives it
    /// back) and spawns its driver on the current tokio runtime.
    pub fn new<IO>(stream: SecureStream<IO>) -> Result<Self, Box<SecureStream<IO>>>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if !stream.connection().has_streams() {
            return Err(Box::new(stream));
        }
        let (io, state, info) = stream.into_parts();
        let (reader, writer) = tokio::io::split(io);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                state,
                writer: Box::new(writer),
                readers: HashMap::new(),
                writers: HashMap::new(),
                out_waiters: VecDeque::new(),
                accept: None,
                driver: None,
                ended: None,
                closing: false,
                closed: Vec::new(),
                events: Events::default(),
            }),
            info,
        });
        tokio::spawn(Driver {
            shared: shared.clone(),
            reader,
            shut: false,
        });
        Ok(Self { shared })
    }

    /// What the handshake established.
    pub fn info(&self) -> &SessionInfo {
        &self.shared.info
    }

    /// Bytes each way so far.
    pub fn stats(&self) -> Stats {
        self.shared.lock().state.conn.stats()
    }

    /// Streams the session has carried so far (opened by either side).
    pub fn streams_carried(&self) -> u64 {
        self.shared.lock().state.conn.streams_carried()
    }

    /// Streams held now (open, or not yet let go).
    pub fn stream_count(&self) -> usize {
        self.shared.lock().state.conn.stream_count()
    }

    /// How many streams the peer takes from this side at once: its Limit
    /// frame, or the default (256) until one has come.
    pub fn peer_stream_limit(&self) -> usize {
        let inner = self.shared.lock();
        inner.state.conn.peer_stream_limit().unwrap_or(0)
    }

    /// Whether [`open_stream`](Self::open_stream) would succeed now: the
    /// session is live, not closing, and below the peer's stream limit.
    pub fn can_open_stream(&self) -> bool {
        let inner = self.shared.lock();
        inner.ended.is_none() && !inner.closing && inner.state.conn.can_open_stream()
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<Error> {
        self.shared.lock().ended.clone()
    }

    /// Opens a stream for `service` (`None`: the peer's default). Costs no
    /// round trip: the Open goes out with the first bytes written.
    pub fn open_stream(&self, service: Option<ServiceName>) -> Result<SessionStream, StreamError> {
        let mut inner = self.shared.lock();
        if let Some(e) = inner.session_error() {
            return Err(e);
        }
        if inner.closing {
            return Err(StreamError::Session(Error::Closed));
        }
        let id = inner.state.conn.open_stream(service.clone())?;
        // The Open goes out now, even if no byte follows (a protocol whose
        // server speaks first); bytes written at once may share its record.
        inner.wake_driver();
        drop(inner);
        Ok(SessionStream::new(self.shared.clone(), id, service))
    }

    /// Opens a stream for `service` with its first bytes: the Open and as
    /// much of `first` as the windows and one record allow (returned) go
    /// out in one record. The rest, if any, is the caller's to write.
    pub fn open_stream_with(
        &self,
        service: Option<ServiceName>,
        first: &[u8],
    ) -> Result<(SessionStream, usize), StreamError> {
        let mut inner = self.shared.lock();
        if let Some(e) = inner.session_error() {
            return Err(e);
        }
        if inner.closing {
            return Err(StreamError::Session(Error::Closed));
        }
        let id = inner.state.conn.open_stream(service.clone())?;
        // Written under the same lock: the driver cannot send the Open on
        // its own first.
        let sent = inner.state.conn.stream_write(id, first);
        inner.wake_driver();
        drop(inner);
        let stream = SessionStream::new(self.shared.clone(), id, service);
        Ok((stream, sent?))
    }

    #[doc(hidden)]
    /// Seals `content` as a Streams record as it is, frames unchecked: only
    /// for tests that play a peer breaking the rules.
    pub fn send_frames_for_testing_only(&self, content: &[u8]) -> Result<(), Error> {
        let mut inner = self.shared.lock();
        inner
            .state
            .conn
            .seal_streams_record_for_testing_only(content)?;
        inner.wake_driver();
        Ok(())
    }

    /// The next stream the peer opens, with the service it asks for; an
    /// error once the session has ended.
    pub async fn accept_stream(&self) -> Result<(SessionStream, Option<ServiceName>), StreamError> {
        poll_fn(|cx| {
            let mut inner = self.shared.lock();
            if let Some((id, service)) = inner.state.conn.accept_stream() {
                drop(inner);
                let s = SessionStream::new(self.shared.clone(), id, service.clone());
                return Poll::Ready(Ok((s, service)));
            }
            if let Some(e) = inner.session_error() {
                return Poll::Ready(Err(e));
            }
            inner.accept = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Starts a re-key now (SPEC §15; after the one in flight, if any). An
    /// error if the session did not agree on re-keying.
    pub fn rekey(&self) -> Result<(), Error> {
        let mut inner = self.shared.lock();
        inner.state.conn.request_rekey()?;
        inner.wake_driver();
        Ok(())
    }

    /// Re-keys completed so far (started by either side).
    pub fn rekeys_completed(&self) -> u64 {
        self.shared.lock().state.conn.rekeys_completed()
    }

    /// The newest epoch (0: the handshake's keys); `None` if the session
    /// did not agree on re-keying.
    pub fn rekey_epoch(&self) -> Option<u32> {
        self.shared.lock().state.conn.rekey_epoch()
    }

    /// Sends a KeepAlive record (keeps NAT state, finds a dead peer).
    pub fn send_keepalive(&self) {
        let mut inner = self.shared.lock();
        if inner.ended.is_none() && inner.state.conn.send_keepalive().is_ok() {
            inner.wake_driver();
        }
    }

    /// Closes the session once its last stream is let go: no new streams,
    /// then the authenticated Close; the driver ends when the peer's Close
    /// (or the end of the transport) comes.
    pub fn close(&self) {
        let mut inner = self.shared.lock();
        inner.closing = true;
        inner.wake_driver();
    }

    /// Ends the session at once with `code`: every stream fails.
    pub fn abort(&self, code: AlertCode) {
        let mut inner = self.shared.lock();
        inner.state.conn.abort(code);
        inner.wake_driver();
    }

    /// Waits until the session has ended; returns why.
    pub async fn closed(&self) -> Error {
        poll_fn(|cx| {
            let mut inner = self.shared.lock();
            match &inner.ended {
                Some(e) => Poll::Ready(e.clone()),
                None => {
                    inner.closed.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// The task that reads a session's transport (and writes what nobody else
/// will).
struct Driver<IO> {
    shared: Arc<Shared>,
    reader: ReadHalf<IO>,
    /// The transport's write side is shut.
    shut: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Future for Driver<IO> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut inner = shared.lock();
        if inner.ended.is_some() {
            return Poll::Ready(());
        }
        match &inner.driver {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.driver = Some(cx.waker().clone()),
        }
        loop {
            // Frames owed (window grants, Fin, Reset, Open) go out first.
            if let Err(e) = inner.state.conn.flush_streams() {
                inner.end(e);
                return Poll::Ready(());
            }
            // A re-key that is due (the writers' volume, a request; the
            // reader's timer wakes this task at the interval and at a wait
            // for the peer); a failure is handled with the others below.
            let _ = inner.state.drive_rekey();
            // Our Close once the application closes and its streams are
            // let go, or in answer to the peer's (which cut every stream).
            if (inner.closing && inner.state.conn.stream_count() == 0
                || inner.state.conn.peer_closed())
                && !inner.state.conn.sent_close()
            {
                let _ = inner.state.conn.close();
            }
            let mut progress = false;
            let Inner { state, writer, .. } = &mut *inner;
            match state.poll_write_out(writer, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    inner.end(Error::from(e));
                    return Poll::Ready(());
                }
                Poll::Pending => {}
            }
            if inner.state.waiting() < WRITE_BUFFER_LEN {
                // Room again: the writers that waited go on, in turn.
                if let Some(w) = inner.out_waiters.pop_front() {
                    w.wake();
                }
            }
            if inner.state.conn.sent_close() && inner.state.waiting() == 0 && !this.shut {
                match Pin::new(&mut inner.writer).poll_shutdown(cx) {
                    Poll::Ready(_) => this.shut = true,
                    Poll::Pending => {}
                }
            }
            match inner.state.poll_read_in(&mut this.reader, cx) {
                Poll::Ready(Ok(0)) => {
                    // The transport ended: after the peer's Close, a clean
                    // end (`PeerClosed`); without it, a truncation. Streams
                    // still open are cut either way.
                    let e = match inner.state.conn.receive_eof() {
                        Ok(()) => Error::PeerClosed,
                        Err(e) => e,
                    };
                    inner.dispatch();
                    inner.end(e);
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(_)) => {
                    inner.dispatch();
                    progress = true;
                }
                Poll::Ready(Err(e)) => {
                    // The alert the core queued, if the transport takes it.
                    let Inner { state, writer, .. } = &mut *inner;
                    let _ = state.poll_write_out(writer, cx);
                    inner.dispatch();
                    let e = Error::from(e);
                    inner.end(e);
                    return Poll::Ready(());
                }
                Poll::Pending => {}
            }
            if let Some(e) = inner.state.conn.error().cloned() {
                // Failed on our side (a stream rule, an abort): the alert
                // is written if the transport takes it.
                let Inner { state, writer, .. } = &mut *inner;
                let _ = state.poll_write_out(writer, cx);
                inner.dispatch();
                inner.end(e);
                return Poll::Ready(());
            }
            if !progress && !inner.state.conn.has_outgoing() {
                return Poll::Pending;
            }
        }
    }
}

/// One stream's handle; the stream is let go (reset, if either end is still
/// open) when the last handle on it is dropped.
struct Handle {
    shared: Arc<Shared>,
    id: StreamId,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.state.conn.stream_release(self.id);
        inner.readers.remove(&self.id);
        inner.writers.remove(&self.id);
        // The driver sends a Reset owed, or the Close of a closing session
        // whose last stream this was; a stream that ended both ways needs
        // nothing.
        if inner.state.conn.has_streams_owed() || inner.closing {
            inner.wake_driver();
        }
    }
}

/// One stream of a [`MuxSession`]: an `AsyncRead + AsyncWrite` byte stream.
///
/// * `poll_read` returns end of stream (`Ok(0)`) after the peer's Fin, and
///   fails with [`io::ErrorKind::ConnectionReset`] when the peer reset the
///   stream or the session was lost ([`stream_error`] gives the reason).
/// * `poll_write` seals the bytes into the session at once (up to one
///   record's worth, within the stream's and the session's windows);
///   `poll_shutdown` sends the Fin (half-close): reading goes on.
/// * [`reset`](Self::reset) ends it both ways with a reason for the peer.
/// * Dropping it with either end open resets it (as closing a socket with
///   unread data does).
pub struct SessionStream {
    handle: Arc<Handle>,
    service: Option<ServiceName>,
}

impl core::fmt::Debug for SessionStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionStream")
            .field("id", &self.handle.id)
            .field("service", &self.service)
            .finish()
    }
}

impl SessionStream {
    fn new(shared: Arc<Shared>, id: StreamId, service: Option<ServiceName>) -> Self {
        Self {
            handle: Arc::new(Handle { shared, id }),
            service,
        }
    }

    /// The stream's number in the session.
    pub fn id(&self) -> StreamId {
        self.handle.id
    }

    /// The service it was opened for (`None`: the default).
    pub fn service(&self) -> Option<&ServiceName> {
        self.service.as_ref()
    }

    /// The session's handshake.
    pub fn info(&self) -> &SessionInfo {
        &self.handle.shared.info
    }

    /// Resets the stream both ways, telling the peer `code` and `reason`.
    pub fn reset(&self, code: ResetCode, reason: &str) {
        reset(&self.handle, code, reason);
    }

    /// A handle that can reset the stream later (with a reason for the
    /// peer), after the stream itself has been handed on; it keeps the
    /// stream from being let go until it is dropped too.
    pub fn reset_handle(&self) -> StreamResetter {
        StreamResetter {
            handle: self.handle.clone(),
        }
    }

    /// A read half and a write half, for two tasks; the stream is let go
    /// when both are dropped.
    pub fn into_split(self) -> (StreamReadHalf, StreamWriteHalf) {
        (
            StreamReadHalf {
                handle: self.handle.clone(),
            },
            StreamWriteHalf {
                handle: self.handle,
            },
        )
    }
}

fn reset(handle: &Handle, code: ResetCode, reason: &str) {
    let mut inner = handle.shared.lock();
    inner.state.conn.stream_reset(handle.id, code, reason);
    inner.wake_driver();
}

fn poll_read(handle: &Handle, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    let mut inner = handle.shared.lock();
    // Copied straight into the caller's buffer, initialised or not (a
    // pump's is 256 KiB of uninitialised memory: zeroing it first would
    // cost as much as the copy).
    let mut read = Ok(Read::Pending);
    let mut copied = false;
    while buf.remaining() > 0 {
        let max = buf.remaining();
        read = inner.state.conn.stream_read_with(handle.id, max, |chunk| {
            buf.put_slice(chunk);
            chunk.len()
        });
        match read {
            Ok(Read::Data(_)) => copied = true,
            _ => break,
        }
    }
    if copied {
        // What came is the caller's; an end or an error comes next time.
        read = Ok(Read::Data(0));
    }
    match read {
        Ok(Read::Data(_)) => {
            inner.grant(cx);
            Poll::Ready(Ok(()))
        }
        Ok(Read::End) => Poll::Ready(Ok(())),
        Ok(Read::Pending) => {
            if let Some(e) = inner.session_error() {
                return Poll::Ready(Err(io_error(e)));
            }
            inner.readers.insert(handle.id, cx.waker().clone());
            Poll::Pending
        }
        Err(e) => Poll::Ready(Err(io_error(e))),
    }
}

fn poll_write(handle: &Handle, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        return Poll::Ready(Ok(0));
    }
    let mut inner = handle.shared.lock();
    if let Some(e) = inner.session_error() {
        return Poll::Ready(Err(io_error(e)));
    }
    if inner.state.waiting() >= WRITE_BUFFER_LEN {
        inner.out_waiters.push_back(cx.waker().clone());
        inner.wake_driver();
        return Poll::Pending;
    }
    // Records of up to 64 KiB, as many as the windows and the write buffer
    // take: one lock and one write to the transport for a large buffer.
    let mut taken = 0;
    while taken < buf.len() && inner.state.waiting() < WRITE_BUFFER_LEN {
        match inner.state.conn.stream_write(handle.id, &buf[taken..]) {
            Ok(0) => break,
            Ok(n) => taken += n,
            Err(e) if taken == 0 => return Poll::Ready(Err(io_error(e))),
            // The error comes again with the next write.
            Err(_) => break,
        }
    }
    if taken == 0 {
        // A window is shut: the peer's grant wakes us.
        inner.writers.insert(handle.id, cx.waker().clone());
        inner.wake_driver();
        return Poll::Pending;
    }
    inner.write_now(cx);
    Poll::Ready(Ok(taken))
}

fn poll_shutdown(handle: &Handle, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut inner = handle.shared.lock();
    let r = inner.state.conn.stream_finish(handle.id);
    // The Fin goes out now, from this task.
    if inner.state.conn.flush_streams().is_ok() {
        inner.write_now(cx);
    } else {
        inner.wake_driver();
    }
    Poll::Ready(r.map_err(io_error))
}

impl AsyncRead for SessionStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(&self.handle, cx, buf)
    }
}

impl AsyncWrite for SessionStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write(&self.handle, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.handle, cx)
    }
}

/// Resets a [`SessionStream`] that has been handed on
/// ([`SessionStream::reset_handle`]).
pub struct StreamResetter {
    handle: Arc<Handle>,
}

impl core::fmt::Debug for StreamResetter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamResetter")
            .field("id", &self.handle.id)
            .finish()
    }
}

impl StreamResetter {
    /// Resets the stream both ways (nothing if it has ended already).
    pub fn reset(&self, code: ResetCode, reason: &str) {
        reset(&self.handle, code, reason);
    }
}

/// The read half of a [`SessionStream`].
pub struct StreamReadHalf {
    handle: Arc<Handle>,
}

/// The write half of a [`SessionStream`]; shutting it down sends the Fin.
pub struct StreamWriteHalf {
    handle: Arc<Handle>,
}

impl core::fmt::Debug for StreamReadHalf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamReadHalf")
            .field("id", &self.handle.id)
            .finish()
    }
}

impl core::fmt::Debug for StreamWriteHalf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamWriteHalf")
            .field("id", &self.handle.id)
            .finish()
    }
}

impl StreamReadHalf {
    /// As [`ReadHalf::poll_read_into`](crate::ReadHalf::poll_read_into):
    /// writes the stream's bytes straight from the stream's buffer to `to`,
    /// with no copy through a buffer of the caller's. 0 after the peer's
    /// Fin.
    pub fn poll_read_into<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut W,
    ) -> Poll<Result<usize, CopyError>> {
        let handle = &self.handle;
        let mut inner = handle.shared.lock();
        let mut wrote = None;
        let read = inner
            .state
            .conn
            .stream_read_with(handle.id, usize::MAX, |chunk| {
                let w = Pin::new(&mut *to).poll_write(cx, chunk);
                let n = match &w {
                    Poll::Ready(Ok(n)) => *n,
                    _ => 0,
                };
                wrote = Some(w);
                n
            });
        match read {
            Ok(Read::Data(_)) => {
                let n = match wrote {
                    Some(Poll::Ready(Ok(0))) => {
                        return Poll::Ready(Err(CopyError::Plain(io::ErrorKind::WriteZero.into())))
                    }
                    Some(Poll::Ready(Ok(n))) => n,
                    Some(Poll::Ready(Err(e))) => return Poll::Ready(Err(CopyError::Plain(e))),
                    // `to` is full: its waker is ours.
                    Some(Poll::Pending) | None => return Poll::Pending,
                };
                inner.grant(cx);
                Poll::Ready(Ok(n))
            }
            Ok(Read::End) => Poll::Ready(Ok(0)),
            Ok(Read::Pending) => {
                if let Some(e) = inner.session_error() {
                    return Poll::Ready(Err(CopyError::Secure(io_error(e))));
                }
                inner.readers.insert(handle.id, cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(CopyError::Secure(io_error(e)))),
        }
    }
}

impl StreamWriteHalf {
    /// As [`WriteHalf::poll_write_from`](crate::WriteHalf::poll_write_from):
    /// reads once from `from` straight into a record of this stream, seals
    /// it in place and writes it out. 0 when `from` has ended (then shut
    /// this half down to send the Fin).
    pub fn poll_write_from<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
    ) -> Poll<Result<usize, CopyError>> {
        let handle = &self.handle;
        let mut inner = handle.shared.lock();
        if let Some(e) = inner.session_error() {
            return Poll::Ready(Err(CopyError::Secure(io_error(e))));
        }
        if inner.state.waiting() >= WRITE_BUFFER_LEN {
            inner.out_waiters.push_back(cx.waker().clone());
            inner.wake_driver();
            return Poll::Pending;
        }
        let before = inner.state.waiting();
        let filled = inner
            .state
            .conn
            .stream_write_from(handle.id, |out, max| read_appending(from, cx, out, max));
        let read = match filled {
            Err(e) => return Poll::Ready(Err(CopyError::Secure(io_error(e)))),
            Ok(None) => {
                // A window is shut: the peer's grant wakes us.
                inner.writers.insert(handle.id, cx.waker().clone());
                inner.wake_driver();
                return Poll::Pending;
            }
            Ok(Some((_, read))) => read,
        };
        if inner.state.waiting() > before {
            inner.write_now(cx);
        }
        match read {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(CopyError::Plain(e))),
            Poll::Pending => {
                inner.state.free_written();
                Poll::Pending
            }
        }
    }
}

impl AsyncRead for StreamReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(&self.handle, cx, buf)
    }
}

impl AsyncWrite for StreamWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write(&self.handle, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.handle, cx)
    }
}
