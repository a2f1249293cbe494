//! A tunnel's data path: bytes both ways between a secure session and a
//! plaintext stream, with half-close carried through each way, an idle
//! timeout, byte counts, and the reason it ended.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use sc_session::{ReadHalf, SecureStream, WriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Copy buffer per direction (256 KiB): a read fills up to four full
/// records, so each record pays its per-record key once for as much data as
/// it can carry, and a busy tunnel makes fewer syscalls. Held only while
/// data flows.
pub const COPY_BUFFER: usize = 256 * 1024;

/// How a tunnel ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpliceEnd {
    /// Both directions ended cleanly (EOF on the plaintext side, the
    /// authenticated close on the secure side).
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle(Duration),
    /// The secure side failed (with its reason).
    Secure(String),
    /// The plaintext side failed (with its reason).
    Plain(String),
}

impl core::fmt::Display for SpliceEnd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Closed => f.write_str("closed"),
            Self::Idle(d) => write!(f, "idle timeout ({}s)", d.as_secs()),
            Self::Secure(e) => write!(f, "session error: {e}"),
            Self::Plain(e) => write!(f, "plaintext side error: {e}"),
        }
    }
}

/// What a finished tunnel moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpliceReport {
    /// Bytes from the plaintext side into the session.
    pub plain_to_secure: u64,
    /// Bytes from the session to the plaintext side.
    pub secure_to_plain: u64,
    /// How it ended.
    pub end: SpliceEnd,
}

enum Side {
    Secure,
    Plain,
}

/// Moves bytes from `r` to `w` until EOF, then shuts `w` down (half-close).
async fn pump<R, W>(
    mut r: R,
    mut w: W,
    moved: Arc<AtomicU64>,
    touched: Arc<AtomicU64>,
    epoch: Instant,
    read_side: Side,
) -> Result<(), (Side, String)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let write_side = match read_side {
        Side::Secure => Side::Plain,
        Side::Plain => Side::Secure,
    };
    // The 64 KiB buffer exists only while data flows: it is freed whenever
    // a read would wait, so an idle tunnel holds no copy buffers (issue 4's
    // memory target: a few KiB per idle session, not 2 × 64 KiB).
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
        let n = match read.await {
            Ok(n) => n,
            Err(e) => return Err((read_side, describe(&e))),
        };
        touched.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        if n == 0 {
            // Half-close: pass the end on, keep the other direction going.
            return w.shutdown().await.map_err(|e| (write_side, describe(&e)));
        }
        if let Err(e) = w.write_all(&buf[..n]).await {
            return Err((write_side, describe(&e)));
        }
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn describe(e: &std::io::Error) -> String {
    match sc_session::Error::from_io_error(e) {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

/// Splices `secure` and `plain` until both directions are done, one side
/// fails, or nothing moves for `idle` (if set).
pub async fn splice<S, P>(secure: SecureStream<S>, plain: P, idle: Option<Duration>) -> SpliceReport
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sr, sw): (ReadHalf<S>, WriteHalf<S>) = secure.into_split();
    let (pr, pw) = tokio::io::split(plain);
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let touched = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let to_secure = pump(pr, sw, up.clone(), touched.clone(), epoch, Side::Plain);
    let to_plain = pump(sr, pw, down.clone(), touched.clone(), epoch, Side::Secure);
    let both = async { tokio::try_join!(to_secure, to_plain) };
    let watchdog = async {
        let Some(idle) = idle else {
            return std::future::pending::<Duration>().await;
        };
        loop {
            let last = Duration::from_millis(touched.load(Ordering::Relaxed));
            let quiet = epoch.elapsed().saturating_sub(last);
            if quiet >= idle {
                return idle;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    };
    let end = tokio::select! {
        r = both => match r {
            Ok(((), ())) => SpliceEnd::Closed,
            Err((Side::Secure, e)) => SpliceEnd::Secure(e),
            Err((Side::Plain, e)) => SpliceEnd::Plain(e),
        },
        d = watchdog => SpliceEnd::Idle(d),
    };
    SpliceReport {
        plain_to_secure: up.load(Ordering::Relaxed),
        secure_to_plain: down.load(Ordering::Relaxed),
        end,
    }
}
