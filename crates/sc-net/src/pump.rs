//! The one copy loop: bytes both ways between two connections until both
//! directions have ended, one side fails, nothing moves for the idle
//! timeout, the far side does not answer in time, or the caller stops it.
//!
//! ```text
//!  a's read half ──▶ [copy buffer] ──▶ b's write half    (a → b)
//!  a's write half ◀── [copy buffer] ◀── b's read half    (b → a)
//! ```
//!
//! * Each direction reads until end of stream, then shuts the other side's
//!   write half down (the half-close is carried through) and the other
//!   direction goes on.
//! * A direction's copy buffer ([`COPY_BUFFER`]) exists only while data
//!   flows: it is freed whenever a read would wait, so an idle connection
//!   holds none.
//! * Counts are kept outside the copies, so they are exact when the pump is
//!   stopped ([`Options::stop`]) as well as when it ends by itself.
//! * An [`Observer`] per direction sees every chunk as it passes (the
//!   relay's record trace); it cannot change or fail the connection.
//! * The idle watchdog reads the counts a few times per period: there is no
//!   clock read on the data path.
//! * [`pump_direct`] skips the copy buffers where `b` has buffers of its
//!   own: a secure stream reads `a`'s bytes straight into the record it
//!   seals ([`FillFrom`]) and writes what it opened straight to `a`
//!   ([`DrainInto`]), so no byte is copied between two buffers of ours.

use core::fmt;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Copy buffer per direction (256 KiB): a read fills up to four full
/// records, so each record pays its per-record key once for as much data as
/// it can carry, and a busy connection makes fewer syscalls. Held only while
/// data flows.
pub const COPY_BUFFER: usize = 256 * 1024;

/// One of the two connections of a pump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The first (`a` of [`pump`]).
    A,
    /// The second (`b` of [`pump`]).
    B,
}

impl Side {
    fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::A => 1,
            Self::B => 2,
        }
    }
}

/// What a failed half-close means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CloseErrors {
    /// The pump ends as failed: the end of stream may not have reached the
    /// peer (a secure stream whose authenticated Close could not be sent).
    #[default]
    Report,
    /// Ignored: the other direction tells how the connection ended (a raw
    /// relay, whose peer may have gone already).
    Ignore,
}

/// Sees every chunk one direction of a pump moves, before it is written.
pub trait Observer: Send {
    /// `bytes` are about to be written to the other side.
    fn chunk(&mut self, bytes: &[u8]);
}

/// Which connection one direct move failed on.
#[derive(Debug)]
pub enum MoveError {
    /// The connection passed in (`a`, the plaintext side).
    Passed(io::Error),
    /// The connection that moves the bytes itself (`b`).
    Own(io::Error),
}

/// A write half with a buffer of its own, that takes its bytes straight
/// from a reader (a secure stream reading plaintext into the record it
/// seals).
pub trait FillFrom: AsyncWrite + Unpin {
    /// Reads once from `from` straight into its own buffer and sends what
    /// it read: `Ready(Ok(n))` with the bytes moved, 0 when `from` has
    /// ended. `Pending` when `from` has nothing or this side has no room
    /// (the waker is with whichever it waits for).
    fn poll_fill_from<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
    ) -> Poll<Result<usize, MoveError>>;
}

/// A read half with a buffer of its own, that writes its bytes straight to
/// a writer (a secure stream writing plaintext from where it opened it).
pub trait DrainInto: AsyncRead + Unpin {
    /// Writes once from its own buffer straight to `to`: `Ready(Ok(n))`
    /// with the bytes `to` took, 0 when this side has ended. `Pending` when
    /// it has nothing or `to` takes nothing now.
    fn poll_drain_into<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut W,
    ) -> Poll<Result<usize, MoveError>>;
}

/// How to run one pump.
#[derive(Default)]
pub struct Options<'a> {
    /// End the pump when no byte has moved either way for this long.
    pub idle: Option<Duration>,
    /// `b` must send its first byte within this (a relayed backend's answer).
    pub answer: Option<Duration>,
    /// What a failed half-close means.
    pub close_errors: CloseErrors,
    /// Ends the pump (with [`End::Stopped`] and the counts so far).
    pub stop: Option<&'a CancellationToken>,
    /// Sees what `a` sends.
    pub observe_a: Option<&'a mut dyn Observer>,
    /// Sees what `b` sends.
    pub observe_b: Option<&'a mut dyn Observer>,
}

impl fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("idle", &self.idle)
            .field("answer", &self.answer)
            .field("close_errors", &self.close_errors)
            .field("stop", &self.stop.is_some())
            .field("observe_a", &self.observe_a.is_some())
            .field("observe_b", &self.observe_b.is_some())
            .finish()
    }
}

/// How a pump ended.
#[derive(Debug)]
pub enum End {
    /// Both directions reached their end of stream; `first` ended first.
    Closed {
        /// The side whose end of stream came first.
        first: Side,
    },
    /// No byte moved either way for this long.
    Idle(Duration),
    /// `b` sent nothing within this long.
    NoAnswer(Duration),
    /// Reading from or writing to `side` failed.
    Failed {
        /// The side at fault.
        side: Side,
        /// The error, as the side's stream gave it (a secure stream's typed
        /// error is reachable through it).
        error: io::Error,
    },
    /// [`Options::stop`] was cancelled.
    Stopped,
}

/// What a pump moved, and how it ended.
#[derive(Debug)]
pub struct Report {
    /// Bytes written to `b` (read from `a`).
    pub a_to_b: u64,
    /// Bytes written to `a` (read from `b`).
    pub b_to_a: u64,
    /// How it ended.
    pub end: End,
}

enum Stop {
    Failed(Side, io::Error),
    NoAnswer(Duration),
}

/// Moves bytes both ways between `a` and `b` (each given as its read and
/// write halves) until the pump ends; see the [module](self) for how.
pub async fn pump<AR, AW, BR, BW>(a: (AR, AW), b: (BR, BW), opts: Options<'_>) -> Report
where
    AR: AsyncRead + Unpin,
    AW: AsyncWrite + Unpin,
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
{
    let (ar, aw) = a;
    let (br, bw) = b;
    let counts = Counts::default();
    let (forward, back) = counts.directions(&opts);
    let (observe_a, observe_b) = (opts.observe_a, opts.observe_b);
    // Pinned here and lent to `run`: a future moved into another one would
    // take room in both.
    let forward = pin!(copy(ar, bw, forward.observed(observe_a)));
    let back = pin!(copy(br, aw, back.observed(observe_b)));
    counts.run(forward, back, opts.idle, opts.stop).await
}

/// As [`pump`], with no copy buffer of ours either way: `b` reads `a`'s
/// bytes into its own buffer ([`FillFrom`]) and writes its bytes to `a`
/// from its own ([`DrainInto`]). Observers are not called (there is no
/// chunk of ours to show them).
pub async fn pump_direct<AR, AW, BR, BW>(a: (AR, AW), b: (BR, BW), opts: Options<'_>) -> Report
where
    AR: AsyncRead + Unpin,
    AW: AsyncWrite + Unpin,
    BR: DrainInto,
    BW: FillFrom,
{
    let (ar, aw) = a;
    let (br, bw) = b;
    let counts = Counts::default();
    let (forward, back) = counts.directions(&opts);
    let forward = pin!(fill(ar, bw, forward));
    let back = pin!(drain(br, aw, back));
    counts.run(forward, back, opts.idle, opts.stop).await
}

/// What both directions of one pump share.
#[derive(Default)]
struct Counts {
    a_to_b: AtomicU64,
    b_to_a: AtomicU64,
    first_closed: AtomicU8,
}

impl Counts {
    fn directions<'a>(
        &'a self,
        opts: &Options<'_>,
    ) -> (Direction<'a, 'static>, Direction<'a, 'static>) {
        (
            Direction {
                from: Side::A,
                moved: &self.a_to_b,
                first_closed: &self.first_closed,
                answer: None,
                observer: None,
                close_errors: opts.close_errors,
            },
            Direction {
                from: Side::B,
                moved: &self.b_to_a,
                first_closed: &self.first_closed,
                answer: opts.answer,
                observer: None,
                close_errors: opts.close_errors,
            },
        )
    }

    /// Runs both directions to the pump's end.
    async fn run(
        &self,
        forward: Pin<&mut impl Future<Output = Result<(), Stop>>>,
        back: Pin<&mut impl Future<Output = Result<(), Stop>>>,
        idle: Option<Duration>,
        stop: Option<&CancellationToken>,
    ) -> Report {
        let both = async { tokio::try_join!(forward, back) };
        let watchdog = async {
            let Some(idle) = idle else {
                return std::future::pending::<Duration>().await;
            };
            // Reads the counts a few times per period: no clock reads on the
            // data path.
            let tick = (idle / 4).max(Duration::from_millis(10));
            let mut seen = 0;
            let mut since = Instant::now();
            loop {
                tokio::time::sleep(tick).await;
                let total =
                    self.a_to_b.load(Ordering::Relaxed) + self.b_to_a.load(Ordering::Relaxed);
                if total != seen {
                    seen = total;
                    since = Instant::now();
                } else if since.elapsed() >= idle {
                    return idle;
                }
            }
        };
        let stopped = async {
            match stop {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let end = tokio::select! {
            biased;
            () = stopped => End::Stopped,
            r = both => match r {
                Ok(((), ())) => End::Closed {
                    first: if self.first_closed.load(Ordering::Relaxed) == Side::B.code() {
                        Side::B
                    } else {
                        Side::A
                    },
                },
                Err(Stop::Failed(side, error)) => End::Failed { side, error },
                Err(Stop::NoAnswer(d)) => End::NoAnswer(d),
            },
            d = watchdog => End::Idle(d),
        };
        Report {
            a_to_b: self.a_to_b.load(Ordering::Relaxed),
            b_to_a: self.b_to_a.load(Ordering::Relaxed),
            end,
        }
    }
}

/// One direction's bookkeeping.
struct Direction<'a, 'o> {
    from: Side,
    moved: &'a AtomicU64,
    first_closed: &'a AtomicU8,
    answer: Option<Duration>,
    observer: Option<&'o mut dyn Observer>,
    close_errors: CloseErrors,
}

impl<'a> Direction<'a, 'static> {
    fn observed<'o>(self, observer: Option<&'o mut dyn Observer>) -> Direction<'a, 'o> {
        Direction {
            from: self.from,
            moved: self.moved,
            first_closed: self.first_closed,
            answer: self.answer,
            observer,
            close_errors: self.close_errors,
        }
    }
}

impl Direction<'_, '_> {
    /// Waits for `read`, within the answer time for the first read of a
    /// direction that has one.
    async fn first_answer<T>(
        &mut self,
        read: impl std::future::Future<Output = T>,
    ) -> Result<T, Stop> {
        match self.answer.take() {
            // Boxed: only the relay waits for an answer, and the timer
            // would otherwise take room in every pump's future.
            Some(limit) => Box::pin(tokio::time::timeout(limit, read))
                .await
                .map_err(|_| Stop::NoAnswer(limit)),
            None => Ok(read.await),
        }
    }

    /// The direction's end of stream: shuts `w` down.
    async fn ended<W: AsyncWrite + Unpin>(self, w: &mut W) -> Result<(), Stop> {
        let _ = self.first_closed.compare_exchange(
            0,
            self.from.code(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let closed = w.shutdown().await;
        match (closed, self.close_errors) {
            (Err(e), CloseErrors::Report) => Err(Stop::Failed(self.from.other(), e)),
            _ => Ok(()),
        }
    }
}

/// Moves bytes from `r` to `w` until end of stream, then shuts `w` down.
async fn copy<R, W>(mut r: R, mut w: W, mut d: Direction<'_, '_>) -> Result<(), Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let to = d.from.other();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.clear();
        let read = std::future::poll_fn(|cx| {
            if buf.capacity() == 0 {
                buf.reserve_exact(COPY_BUFFER);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut r), cx, &mut buf) {
                Poll::Pending => {
                    // Nothing to copy now: hold no buffer while waiting.
                    buf = Vec::new();
                    Poll::Pending
                }
                ready => ready,
            }
        });
        let n = d
            .first_answer(read)
            .await?
            .map_err(|e| Stop::Failed(d.from, e))?;
        if n == 0 {
            return d.ended(&mut w).await;
        }
        if let Some(o) = d.observer.as_mut() {
            o.chunk(&buf[..n]);
        }
        w.write_all(&buf[..n])
            .await
            .map_err(|e| Stop::Failed(to, e))?;
        d.moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// `a` to `b` with no buffer of ours: `b` reads from `a` itself.
async fn fill<R, W>(mut r: R, w: W, d: Direction<'_, '_>) -> Result<(), Stop>
where
    R: AsyncRead + Unpin,
    W: FillFrom,
{
    direct(w, |w, cx| w.poll_fill_from(cx, &mut r), d).await
}

/// `b` to `a` with no buffer of ours: `b` writes to `a` itself.
async fn drain<R, W>(mut r: R, w: W, d: Direction<'_, '_>) -> Result<(), Stop>
where
    R: DrainInto,
    W: AsyncWrite + Unpin,
{
    direct(w, |w, cx| r.poll_drain_into(cx, w), d).await
}

/// Runs `step` (one direct move into or through `w`) until it moves
/// nothing, then shuts `w` down.
async fn direct<W, F>(mut w: W, mut step: F, mut d: Direction<'_, '_>) -> Result<(), Stop>
where
    W: AsyncWrite + Unpin,
    F: FnMut(&mut W, &mut Context<'_>) -> Poll<Result<usize, MoveError>>,
{
    loop {
        let moved = std::future::poll_fn(|cx| step(&mut w, cx));
        let n = d.first_answer(moved).await?.map_err(|e| match e {
            MoveError::Passed(e) => Stop::Failed(Side::A, e),
            MoveError::Own(e) => Stop::Failed(Side::B, e),
        })?;
        if n == 0 {
            return d.ended(&mut w).await;
        }
        d.moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, DuplexStream};

    use super::*;

    fn pair() -> (DuplexStream, DuplexStream) {
        tokio::io::duplex(1024)
    }

    struct Seen(Vec<u8>);

    impl Observer for Seen {
        fn chunk(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }

    #[tokio::test]
    async fn both_ways_with_half_close_counts_and_observer() {
        let (a_far, a_near) = pair();
        let (b_near, b_far) = pair();
        let mut seen = Seen(Vec::new());
        let ends = tokio::spawn(async move {
            let (mut ar, mut aw) = tokio::io::split(a_far);
            let (mut br, mut bw) = tokio::io::split(b_far);
            aw.write_all(b"to b").await.expect("write");
            aw.shutdown().await.expect("shutdown");
            let mut got = Vec::new();
            br.read_to_end(&mut got).await.expect("read");
            assert_eq!(got, b"to b");
            // b answers after a's half-close.
            bw.write_all(b"back to a").await.expect("write");
            bw.shutdown().await.expect("shutdown");
            let mut got = Vec::new();
            ar.read_to_end(&mut got).await.expect("read");
            assert_eq!(got, b"back to a");
        });
        let report = pump(
            tokio::io::split(a_near),
            tokio::io::split(b_near),
            Options {
                observe_b: Some(&mut seen),
                ..Options::default()
            },
        )
        .await;
        ends.await.expect("ends");
        assert_eq!((report.a_to_b, report.b_to_a), (4, 9));
        assert!(matches!(report.end, End::Closed { first: Side::A }));
        assert_eq!(seen.0, b"back to a");
    }

    /// `b` with buffers of its own: what it is sent lands in `got`, what it
    /// sends comes from `send`; `fail` makes its own side fail.
    #[derive(Default)]
    struct Own {
        got: Vec<u8>,
        send: Vec<u8>,
        shut: bool,
        fail: bool,
    }

    impl AsyncRead for &mut Own {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
        }
    }

    impl AsyncWrite for &mut Own {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    impl FillFrom for &mut Own {
        fn poll_fill_from<R: AsyncRead + Unpin>(
            &mut self,
            cx: &mut Context<'_>,
            from: &mut R,
        ) -> Poll<Result<usize, MoveError>> {
            if self.fail {
                return Poll::Ready(Err(MoveError::Own(io::ErrorKind::BrokenPipe.into())));
            }
            let before = self.got.len();
            let mut room = Vec::with_capacity(7);
            match tokio_util::io::poll_read_buf(Pin::new(from), cx, &mut room) {
                Poll::Ready(Ok(n)) => {
                    self.got.extend_from_slice(&room[..n]);
                    Poll::Ready(Ok(self.got.len() - before))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(MoveError::Passed(e))),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    impl DrainInto for &mut Own {
        fn poll_drain_into<W: AsyncWrite + Unpin>(
            &mut self,
            cx: &mut Context<'_>,
            to: &mut W,
        ) -> Poll<Result<usize, MoveError>> {
            if self.send.is_empty() {
                return Poll::Ready(Ok(0));
            }
            match Pin::new(to).poll_write(cx, &self.send) {
                Poll::Ready(Ok(n)) => {
                    self.send.drain(..n);
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(MoveError::Passed(e))),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn direct_moves_both_ways_with_half_close_and_counts() {
        let (a_far, a_near) = pair();
        let mut reader = Own {
            send: b"from b, straight".to_vec(),
            ..Own::default()
        };
        let mut writer = Own::default();
        let ends = tokio::spawn(async move {
            let (mut ar, mut aw) = tokio::io::split(a_far);
            aw.write_all(b"to b, read in place").await.expect("write");
            aw.shutdown().await.expect("shutdown");
            let mut got = Vec::new();
            ar.read_to_end(&mut got).await.expect("read");
            got
        });
        let report = pump_direct(
            tokio::io::split(a_near),
            (&mut reader, &mut writer),
            Options::default(),
        )
        .await;
        assert_eq!(ends.await.expect("ends"), b"from b, straight");
        assert_eq!(writer.got, b"to b, read in place");
        assert!(writer.shut, "a's end of stream shuts b's write half");
        assert_eq!((report.a_to_b, report.b_to_a), (19, 16));
        assert!(matches!(report.end, End::Closed { .. }));
    }

    #[tokio::test]
    async fn direct_blames_the_side_that_failed() {
        // b's own side fails.
        let (_a_far, a_near) = pair();
        let mut reader = Own::default();
        let mut writer = Own {
            fail: true,
            ..Own::default()
        };
        let report = pump_direct(
            tokio::io::split(a_near),
            (&mut reader, &mut writer),
            Options::default(),
        )
        .await;
        assert!(
            matches!(report.end, End::Failed { side: Side::B, .. }),
            "{:?}",
            report.end
        );
        // a is gone while b writes to it.
        let (a_far, a_near) = pair();
        drop(a_far);
        let mut reader = Own {
            send: b"nobody reads this".to_vec(),
            ..Own::default()
        };
        let mut writer = Own::default();
        let report = pump_direct(
            tokio::io::split(a_near),
            (&mut reader, &mut writer),
            Options::default(),
        )
        .await;
        assert!(
            matches!(report.end, End::Failed { side: Side::A, .. }),
            "{:?}",
            report.end
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_pump_keeps_its_counts() {
        let (a_far, a_near) = pair();
        let (b_near, _b_far) = pair();
        let stop = CancellationToken::new();
        let (_ar, mut aw) = tokio::io::split(a_far);
        aw.write_all(b"12345").await.expect("write");
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stopper.cancel();
        });
        let report = pump(
            tokio::io::split(a_near),
            tokio::io::split(b_near),
            Options {
                stop: Some(&stop),
                ..Options::default()
            },
        )
        .await;
        assert!(matches!(report.end, End::Stopped));
        assert_eq!(report.a_to_b, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_no_answer_end_it() {
        async fn quiet(opts: Options<'_>) -> End {
            let (_a_far, a_near) = pair();
            let (b_near, _b_far) = pair();
            pump(tokio::io::split(a_near), tokio::io::split(b_near), opts)
                .await
                .end
        }
        let end = quiet(Options {
            idle: Some(Duration::from_secs(2)),
            ..Options::default()
        })
        .await;
        assert!(matches!(end, End::Idle(d) if d == Duration::from_secs(2)));
        let end = quiet(Options {
            answer: Some(Duration::from_secs(1)),
            ..Options::default()
        })
        .await;
        assert!(matches!(end, End::NoAnswer(d) if d == Duration::from_secs(1)));
    }
}
