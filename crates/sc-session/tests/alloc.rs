//! Heap allocations of the data path in the steady state: none per record.
//!
//! A counting global allocator (dhat's, in its testing mode) counts every
//! allocation of this test binary. Each case sets a session up, moves a
//! few records to warm the buffers, then counts the allocations made while
//! many more 64 KiB records go one way: the record buffers are reused, so
//! the count must not grow with the number of records. One test (one
//! profiler at a time): the cases run in turn.

use std::sync::Arc;

use rand_chacha::rand_core::OsRng;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_session::{Acceptor, Connector, MuxSession, SessionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let s = setup(false);
    let (c, sv) = tokio::io::duplex(256 * 1024);
    let (client, server) = tokio::join!(
        s.connector
            .connect(ServerName::try_from("server.test").expect("name"), None, c),
        s.acceptor.accept(sv)
    );
    let (mut client, mut server) = (client.expect("client"), server.expect("server"));
    let data = vec![0x5a; RECORD];
    let mut buf = vec![0; 256 * 1024];
    move_records(&mut client, &mut server, WARM, &data, &mut buf).await;
    let before = blocks();
    move_records(&mut client, &mut server, COUNTED, &data, &mut buf).await;
    blocks() - before
}

async fn stream_of_a_session_per_run() -> u64 {
    let s = setup(true);
    let (c, sv) = tokio::io::duplex(256 * 1024);
    let (client, server) = tokio::join!(
        s.connector
            .connect(ServerName::try_from("server.test").expect("name"), None, c),
        s.acceptor.accept(sv)
    );
    let client = MuxSession::new(client.expect("client")).expect("streams agreed");
    let server = MuxSession::new(server.expect("server")).expect("streams agreed");
    let mut out = client.open_stream(None).expect("open");
    // The stream reaches the server with its first bytes.
    out.write_all(b"x").await.expect("write");
    let (mut inn, _) = server.accept_stream().await.expect("accept");
    let mut one = [0u8; 1];
    inn.read_exact(&mut one).await.expect("first byte");
    let data = vec![0x5a; RECORD];
    let mut buf = vec![0; 256 * 1024];
    move_records(&mut out, &mut inn, WARM, &data, &mut buf).await;
    let before = blocks();
    move_records(&mut out, &mut inn, COUNTED, &data, &mut buf).await;
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
    println!(
        "allocations while {COUNTED} records of {} KiB went one way: \
         single stream {single}, a stream of a session {stream}",
        RECORD / 1024
    );
    assert_eq!(single, 0, "a single stream allocates per record");
    // A stream's receive buffer may still grow now and then (a reader that
    // fell behind): a few allocations, not one per record.
    assert!(
        stream < COUNTED as u64 / 16,
        "a stream of a session allocates per record: {stream}"
    );
}
