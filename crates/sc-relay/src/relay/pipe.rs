//! The relay's data path: raw bytes both ways between a client and a
//! backend, with the half-close carried through each way, an idle timeout,
//! a first-answer timeout, byte counts, how it ended, and (at debug level
//! only) the header of every record that passes.

use core::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sc_wire::record::RECORD_HEADER_LEN;
use sc_wire::{Codec, RecordHeader};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{tcp, unix};
use tokio_util::sync::CancellationToken;

use crate::client::io_reason;
use crate::{Stream, COPY_BUFFER};

/// One side of a relayed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Backend,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Client => "client",
            Self::Backend => "backend",
        })
    }
}

/// How a relayed connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PipeEnd {
    /// Both directions ended with a close; `first` closed first.
    Closed { first: Side },
    /// No byte moved either way for this long.
    Idle(Duration),
    /// The backend sent nothing this long after it got the ClientHello.
    NoAnswer(Duration),
    /// Reading from or writing to `side` failed.
    Failed { side: Side, reason: String },
    /// The relay is shutting down (grace period over).
    Shutdown,
}

impl fmt::Display for PipeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed { first } => write!(f, "closed ({first} first)"),
            Self::Idle(d) => write!(f, "idle timeout ({}s)", d.as_secs_f64()),
            Self::NoAnswer(d) => write!(
                f,
                "backend accepted but sent nothing within {}s of the ClientHello",
                d.as_secs_f64()
            ),
            Self::Failed { side, reason } => write!(f, "{side} failed: {reason}"),
            Self::Shutdown => f.write_str("relay shutting down (grace period over)"),
        }
    }
}

/// What a finished relayed connection moved, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PipeReport {
    /// Bytes the relay wrote to the backend (what it had read before the
    /// pipe included).
    pub(crate) up: u64,
    /// Bytes the relay wrote to the client.
    pub(crate) down: u64,
    pub(crate) end: PipeEnd,
}

/// How to run one pipe.
#[derive(Debug)]
pub(crate) struct PipeOptions<'a> {
    /// Bytes already read from the client and already written to the
    /// backend (the ClientHello), for the count and the record trace.
    pub(crate) sent_ahead: &'a [u8],
    pub(crate) idle: Option<Duration>,
    /// The backend's first byte must come within this.
    pub(crate) answer: Option<Duration>,
    /// Log every record header at debug level, naming the client.
    pub(crate) trace: Option<&'a str>,
}

// ---------------------------------------------------------------------------
// Owned halves of a Stream (no lock between the two directions)

#[derive(Debug)]
enum ReadHalf {
    Tcp(tcp::OwnedReadHalf),
    Unix(unix::OwnedReadHalf),
}

#[derive(Debug)]
enum WriteHalf {
    Tcp(tcp::OwnedWriteHalf),
    Unix(unix::OwnedWriteHalf),
}

fn split(s: Stream) -> (ReadHalf, WriteHalf) {
    match s {
        Stream::Tcp(s) => {
            let (r, w) = s.into_split();
            (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
        }
        Stream::Unix(s) => {
            let (r, w) = s.into_split();
            (ReadHalf::Unix(r), WriteHalf::Unix(w))
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

// ---------------------------------------------------------------------------
// The passive record trace (debug level only)

/// Follows the record stream of one direction as bytes pass, logging each
/// record header; it never holds more than a header's four bytes and never
/// fails the connection (bytes that are not records end the trace).
#[derive(Debug)]
pub(crate) struct RecordTrace<'a> {
    client: &'a str,
    direction: &'static str,
    header: [u8; RECORD_HEADER_LEN],
    have: usize,
    skip: usize,
    stopped: bool,
}

impl<'a> RecordTrace<'a> {
    pub(crate) fn new(client: &'a str, from: Side) -> Self {
        Self {
            client,
            direction: match from {
                Side::Client => "client->backend",
                Side::Backend => "backend->client",
            },
            header: [0; RECORD_HEADER_LEN],
            have: 0,
            skip: 0,
            stopped: false,
        }
    }

    /// Records that start in `bytes` are logged; a header split over two
    /// calls is joined.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.stopped {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (RECORD_HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < RECORD_HEADER_LEN {
                return;
            }
            self.have = 0;
            match RecordHeader::decode(&self.header) {
                Ok(h) => {
                    tracing::debug!(
                        client = %self.client,
                        direction = %self.direction,
                        kind = %h.kind,
                        length = h.len,
                        "record"
                    );
                    self.skip = h.len;
                }
                Err(e) => {
                    tracing::debug!(
                        client = %self.client,
                        direction = %self.direction,
                        "not a record ({e}): record trace stopped for this direction"
                    );
                    self.stopped = true;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The pumps

/// Which pump failed, and how.
enum Stop {
    Failed(Side, String),
    NoAnswer(Duration),
}

/// Moves bytes from `r` (on side `from`) to `w` until EOF, then shuts `w`
/// down (half-close). The copy buffer exists only while data flows.
#[allow(clippy::too_many_arguments)]
async fn pump(
    mut r: ReadHalf,
    mut w: WriteHalf,
    from: Side,
    moved: &AtomicU64,
    first_closed: &AtomicU8,
    mut answer: Option<Duration>,
    mut trace: Option<RecordTrace<'_>>,
) -> Result<(), Stop> {
    let to = match from {
        Side::Client => Side::Backend,
        Side::Backend => Side::Client,
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.clear();
        let read = std::future::poll_fn(|cx| {
            if buf.capacity() == 0 {
                buf.reserve_exact(COPY_BUFFER);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut r), cx, &mut buf) {
                Poll::Pending => {
                    buf = Vec::new();
                    Poll::Pending
                }
                ready => ready,
            }
        });
        let read = match answer.take() {
            Some(limit) => match tokio::time::timeout(limit, read).await {
                Ok(r) => r,
                Err(_) => return Err(Stop::NoAnswer(limit)),
            },
            None => read.await,
        };
        let n = read.map_err(|e| Stop::Failed(from, io_reason(&e)))?;
        if n == 0 {
            let _ = first_closed.compare_exchange(
                0,
                side_code(from),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            // The other side may have gone already; the other direction
            // tells how.
            let _ = w.shutdown().await;
            return Ok(());
        }
        if let Some(t) = trace.as_mut() {
            t.feed(&buf[..n]);
        }
        w.write_all(&buf[..n])
            .await
            .map_err(|e| Stop::Failed(to, io_reason(&e)))?;
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn side_code(s: Side) -> u8 {
    match s {
        Side::Client => 1,
        Side::Backend => 2,
    }
}

/// Relays `client` ⇄ `backend` until both directions are done, one side
/// fails, nothing moves for the idle timeout, the backend does not answer
/// in time, or `stop` is cancelled.
pub(crate) async fn pipe(
    client: Stream,
    backend: Stream,
    opts: PipeOptions<'_>,
    stop: &CancellationToken,
) -> PipeReport {
    let (cr, cw) = split(client);
    let (br, bw) = split(backend);
    let up = AtomicU64::new(opts.sent_ahead.len() as u64);
    let down = AtomicU64::new(0);
    let first_closed = AtomicU8::new(0);
    let (up_trace, down_trace) = match opts.trace {
        Some(client) => {
            let mut t = RecordTrace::new(client, Side::Client);
            t.feed(opts.sent_ahead);
            (Some(t), Some(RecordTrace::new(client, Side::Backend)))
        }
        None => (None, None),
    };
    let to_backend = pump(cr, bw, Side::Client, &up, &first_closed, None, up_trace);
    let to_client = pump(
        br,
        cw,
        Side::Backend,
        &down,
        &first_closed,
        opts.answer,
        down_trace,
    );
    let both = async { tokio::try_join!(to_backend, to_client) };
    let watchdog = async {
        let Some(idle) = opts.idle else {
            return std::future::pending::<Duration>().await;
        };
        // Checks the counters a few times per period: no clock reads on the
        // data path.
        let tick = (idle / 4).max(Duration::from_millis(10));
        let mut seen = 0;
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(tick).await;
            let total = up.load(Ordering::Relaxed) + down.load(Ordering::Relaxed);
            if total != seen {
                seen = total;
                since = Instant::now();
            } else if since.elapsed() >= idle {
                return idle;
            }
        }
    };
    let end = tokio::select! {
        biased;
        _ = stop.cancelled() => PipeEnd::Shutdown,
        r = both => match r {
            Ok(((), ())) => PipeEnd::Closed {
                first: if first_closed.load(Ordering::Relaxed) == side_code(Side::Backend) {
                    Side::Backend
                } else {
                    Side::Client
                },
            },
            Err(Stop::Failed(side, reason)) => PipeEnd::Failed { side, reason },
            Err(Stop::NoAnswer(d)) => PipeEnd::NoAnswer(d),
        },
        d = watchdog => PipeEnd::Idle(d),
    };
    PipeReport {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_follows_records_split_anywhere_and_stops_on_garbage() {
        let mut stream = vec![0xc1, 0, 0, 3, 1, 2, 3];
        stream.extend_from_slice(&[0xc3, 0, 0, 20]);
        stream.extend_from_slice(&[0; 20]);
        stream.extend_from_slice(&[0xc2, 0, 0, 1, 0x14]);
        for cut in 0..stream.len() {
            let mut t = RecordTrace::new("peer", Side::Client);
            t.feed(&stream[..cut]);
            t.feed(&stream[cut..]);
            assert!(!t.stopped && t.have == 0 && t.skip == 0, "cut {cut}");
        }
        let mut t = RecordTrace::new("peer", Side::Backend);
        t.feed(b"GET / HTTP/1.1\r\n");
        assert!(t.stopped);
        t.feed(&stream);
        assert!(t.stopped);
    }
}
