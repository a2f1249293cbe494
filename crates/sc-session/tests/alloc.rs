//! Heap allocations of the data path in the steady state: none per record.
//!
//! A counting global allocator (dhat's, in its testing mode) counts every
//! allocation of this test binary. Each case sets a session up, moves a
//! few records to warm the buffers, then counts the allocations made while
//! many more 64 KiB records go one way: the record buffers are reused, so
//! the count must not grow with the number of records. Each kind of stream
//! is counted both ways it can be used: through `AsyncWrite`/`AsyncRead`
//! with the caller's buffers, and the tunnel's way (read straight into the
//! record, written straight from where it was opened). One test (one
//! profiler at a time): the cases run in turn.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use rand_chacha::rand_core::OsRng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_session::mux::{StreamReadHalf, StreamWriteHalf};
use sc_session::{
    Acceptor, Connector, CopyError, MuxSession, ReadHalf, SecureStream, SessionConfig,
    SessionStream, WriteHalf,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Records of the warm-up, and of the counted run.
const WARM: usize = 64;
const COUNTED: usize = 256;
/// One full record of the byte stream.
const RECORD: usize = 64 * 1024;

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

struct Setup {
    connector: Connector,
    acceptor: Acceptor,
}

fn setup(streams: bool) -> Setup {
    let pki = ThrowawayPki::new("server.test", "client-1", UnixTime::now(), &mut OsRng)
        .expect("throwaway PKI");
    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
        .with_credential(pki.client.clone())
        .build()
        .with_streams(streams);
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
        .with_credential(pki.server.clone())
        .build()
        .with_streams(streams);
    Setup {
        connector: Connector::new(Arc::new(client)).with_session_config(SessionConfig::default()),
        acceptor: Acceptor::new(Arc::new(server)).with_session_config(SessionConfig::default()),
    }
}

/// A client and a server session over an in-memory pipe, handshake done.
async fn sessions(streams: bool) -> (SecureStream<DuplexStream>, SecureStream<DuplexStream>) {
    let s = setup(streams);
    let (c, sv) = tokio::io::duplex(256 * 1024);
    let (client, server) = tokio::join!(
        s.connector
            .connect(ServerName::try_from("server.test").expect("name"), None, c),
        s.acceptor.accept(sv)
    );
    (client.expect("client"), server.expect("server"))
}

/// One stream of a session of streams, open at both ends (its sessions
/// are kept alive with it).
async fn one_stream() -> ((MuxSession, MuxSession), SessionStream, SessionStream) {
    let (client, server) = sessions(true).await;
    let client = MuxSession::new(client).expect("streams agreed");
    let server = MuxSession::new(server).expect("streams agreed");
    let mut out = client.open_stream(None).expect("open");
    // The stream reaches the server with its first bytes.
    out.write_all(b"x").await.expect("write");
    let (mut inn, _) = server.accept_stream().await.expect("accept");
    let mut one = [0u8; 1];
    inn.read_exact(&mut one).await.expect("first byte");
    ((client, server), out, inn)
}

/// Writes `n` records from `w` and reads them at `r`, concurrently; the
/// reader checks it got every byte.
async fn move_records<W, R>(w: &mut W, r: &mut R, n: usize, data: &[u8], buf: &mut [u8])
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    let write = async {
        for _ in 0..n {
            w.write_all(data).await.expect("write");
        }
        w.flush().await.expect("flush");
    };
    let read = async {
        let mut left = n * data.len();
        while left > 0 {
            let got = r.read(buf).await.expect("read");
            assert!(got > 0, "end of stream with {left} bytes to come");
            left -= got;
        }
    };
    tokio::join!(write, read);
}

/// Allocations per counted run of one case, after its warm-up.
async fn single_stream_per_run() -> u64 {
    let (mut client, mut server) = sessions(false).await;
    let data = vec![0x5a; RECORD];
    let mut buf = vec![0; 256 * 1024];
    move_records(&mut client, &mut server, WARM, &data, &mut buf).await;
    let before = blocks();
    move_records(&mut client, &mut server, COUNTED, &data, &mut buf).await;
    blocks() - before
}

async fn stream_of_a_session_per_run() -> u64 {
    let (_sessions, mut out, mut inn) = one_stream().await;
    let data = vec![0x5a; RECORD];
    let mut buf = vec![0; 256 * 1024];
    move_records(&mut out, &mut inn, WARM, &data, &mut buf).await;
    let before = blocks();
    move_records(&mut out, &mut inn, COUNTED, &data, &mut buf).await;
    blocks() - before
}

/// As [`move_records`], the way a tunnel moves them: read straight into
/// the record (`write_from`, from a slice here) and written straight from
/// where it was opened (`read_into`, into a sink).
async fn move_records_direct<W, R>(w: &mut W, r: &mut R, n: usize, data: &[u8])
where
    W: DirectWrite,
    R: DirectRead,
{
    let write = async {
        for _ in 0..n {
            let mut from = data;
            while !from.is_empty() {
                poll_fn(|cx| w.write_from(cx, &mut from))
                    .await
                    .expect("write");
            }
        }
        w.flush().await.expect("flush");
    };
    let read = async {
        let mut left = n * data.len();
        let mut to = tokio::io::sink();
        while left > 0 {
            let got = poll_fn(|cx| r.read_into(cx, &mut to)).await.expect("read");
            assert!(got > 0, "end of stream with {left} bytes to come");
            left -= got;
        }
    };
    tokio::join!(write, read);
}

/// A write half that reads straight into its records.
trait DirectWrite: tokio::io::AsyncWrite + Unpin {
    fn write_from(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut &[u8],
    ) -> Poll<Result<usize, CopyError>>;
}

/// A read half that writes straight from where it opened.
trait DirectRead {
    fn read_into(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut tokio::io::Sink,
    ) -> Poll<Result<usize, CopyError>>;
}

impl DirectWrite for WriteHalf<DuplexStream> {
    fn write_from(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut &[u8],
    ) -> Poll<Result<usize, CopyError>> {
        self.poll_write_from(cx, from)
    }
}

impl DirectRead for ReadHalf<DuplexStream> {
    fn read_into(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut tokio::io::Sink,
    ) -> Poll<Result<usize, CopyError>> {
        self.poll_read_into(cx, to)
    }
}

impl DirectWrite for StreamWriteHalf {
    fn write_from(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut &[u8],
    ) -> Poll<Result<usize, CopyError>> {
        self.poll_write_from(cx, from)
    }
}

impl DirectRead for StreamReadHalf {
    fn read_into(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut tokio::io::Sink,
    ) -> Poll<Result<usize, CopyError>> {
        self.poll_read_into(cx, to)
    }
}

/// The tunnel's way on a single stream.
async fn single_stream_direct_per_run() -> u64 {
    let (client, server) = sessions(false).await;
    let (_cr, mut cw) = client.into_split();
    let (mut sr, _sw) = server.into_split();
    let data = vec![0x5a; RECORD];
    move_records_direct(&mut cw, &mut sr, WARM, &data).await;
    let before = blocks();
    move_records_direct(&mut cw, &mut sr, COUNTED, &data).await;
    blocks() - before
}

/// The tunnel's way on a stream of a session.
async fn stream_of_a_session_direct_per_run() -> u64 {
    let (_sessions, out, inn) = one_stream().await;
    let (_or, mut ow) = out.into_split();
    let (mut ir, _iw) = inn.into_split();
    let data = vec![0x5a; RECORD];
    move_records_direct(&mut ow, &mut ir, WARM, &data).await;
    let before = blocks();
    move_records_direct(&mut ow, &mut ir, COUNTED, &data).await;
    blocks() - before
}

#[test]
fn the_data_path_allocates_nothing_per_record_in_the_steady_state() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let single = rt.block_on(single_stream_per_run());
    let stream = rt.block_on(stream_of_a_session_per_run());
    let single_direct = rt.block_on(single_stream_direct_per_run());
    let stream_direct = rt.block_on(stream_of_a_session_direct_per_run());
    println!(
        "allocations while {COUNTED} records of {} KiB went one way: \
         single stream {single}, a stream of a session {stream}; \
         read straight into the record and written from where it was opened \
         (a tunnel's way): single stream {single_direct}, a stream of a session {stream_direct}",
        RECORD / 1024
    );
    assert_eq!(single, 0, "a single stream allocates per record");
    assert_eq!(
        single_direct, 0,
        "a single stream allocates per record, the tunnel's way"
    );
    assert!(
        stream_direct < COUNTED as u64 / 16,
        "a stream of a session allocates per record, the tunnel's way: {stream_direct}"
    );
    // A stream's receive buffer may still grow now and then (a reader that
    // fell behind): a few allocations, not one per record.
    assert!(
        stream < COUNTED as u64 / 16,
        "a stream of a session allocates per record: {stream}"
    );
}
