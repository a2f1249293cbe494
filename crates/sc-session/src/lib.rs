//! Sovereign-Chain sessions: the seed-code record ratchet and the message API,
//! over the 13-step handshake, sans-I/O and over tokio.
//!
//! [`Connection`] is the sans-I/O core: feed it the peer's bytes with
//! [`Connection::receive`], send what [`Connection::take_outgoing`] returns,
//! and exchange whole messages with [`Connection::send_message`] and
//! [`Connection::recv_message`], or write a byte stream with
//! [`Connection::write_stream`], which seals one record and returns how many
//! bytes it took. [`record`] holds the ratchet: every record has
//! its own key and nonce from a one-way chain per direction, salted with the
//! seed code, and every chain key is erased once used.
//!
//! A session whose two ends agreed on it re-keys ([`rekey`], SPEC §15):
//! fresh X25519 and ML-KEM-768 secrets signed by both identity keys replace
//! the chains every 120 s or 1 GiB, or on [`Connection::request_rekey`], so a
//! stolen session state stops working at the next re-key.
//!
//! With [`SessionConfig::trace`] on, a connection records its handshake
//! ([`trace`]): each record's handshake messages in the order processed and
//! its size on the wire, and over tokio when it was sent or received
//! ([`SecureStream::handshake_trace`]); `sc-client --trace` draws it.
//!
//! With the `tokio` feature (on by default), [`Connector`] and [`Acceptor`]
//! run the handshake over any `AsyncRead + AsyncWrite + Unpin` transport
//! (a `TcpStream`, a `UnixStream`, `tokio::io::duplex`) and return a
//! [`SecureStream`]: an `AsyncRead`/`AsyncWrite` byte stream with TCP
//! half-close carried through, plus a message API that keeps boundaries.
//!
//! ```text
//!  application        SecureStream (or its two halves)                            transport
//!  write(bytes) ──▶ write_stream: seal ≤ 64 KiB per record ──▶ ≤ 256 KiB ciphertext ──▶ poll_write
//!  send_message ──▶ send_message: seal the whole message ──┘
//!  read(buf)    ◀── open in place ◀── receive buffer ◀── one chunk, when asked ◀── poll_read
//!  recv_message ◀──┘
//!  shutdown()   ──▶ authenticated Close, flush, shut down the write side only
//! ```
//!
//! A program that copies between a socket and a session (a tunnel) can skip
//! its own buffer both ways: [`WriteHalf::poll_write_from`] reads the
//! socket straight into the record it seals, and
//! [`ReadHalf::poll_read_into`] writes the socket straight from where the
//! record was opened (the same on a stream of a session of streams, from
//! the stream's buffer). A failure says which side it was on
//! ([`CopyError`]).
//!
//! A client and a server over an in-memory pipe:
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::sync::Arc;
//! use rand_core::OsRng;
//! use sc_handshake::{ClientConfig, ServerConfig};
//! use sc_pki::{throwaway::ThrowawayPki, ServerName, UnixTime};
//! use sc_session::{Acceptor, Connector, Error};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! // A throwaway CA with a server certificate for "db.internal" and a client one.
//! let pki = ThrowawayPki::new("db.internal", "app-1", UnixTime::now(), &mut OsRng)?;
//! let client_config = ClientConfig::builder()
//!     .with_server_verifier(Arc::new(pki.server_verifier()?))
//!     .with_credential(pki.client.clone())
//!     .build();
//! let server_config = ServerConfig::builder()
//!     .with_client_verifier(Arc::new(pki.client_verifier()?))
//!     .with_credential(pki.server.clone())
//!     .build();
//! let connector = Connector::new(Arc::new(client_config));
//! let acceptor = Acceptor::new(Arc::new(server_config));
//!
//! // Any AsyncRead + AsyncWrite works: a TcpStream, a UnixStream, a pipe.
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//!
//! let server = tokio::spawn(async move {
//!     let mut stream = acceptor.accept(server_io).await?;
//!     assert_eq!(stream.peer().common_name.as_deref(), Some("app-1"));
//!     // Echo each message until the client's authenticated Close.
//!     while let Some(msg) = stream.recv_message().await? {
//!         stream.send_message(&[b"echo: ", &msg[..]].concat()).await?;
//!     }
//!     stream.shutdown().await?;
//!     Ok::<_, Error>(())
//! });
//!
//! let name = ServerName::try_from("db.internal")?.to_owned();
//! let mut stream = connector.connect(name, None, client_io).await?;
//! println!(
//!     "cipher {}, steps 7-10 in order {}, handshake {:?}",
//!     stream.cipher(),
//!     stream.step_order(),
//!     stream.handshake_duration()
//! );
//! stream.send_message(b"hello").await?;
//! assert_eq!(stream.recv_message().await?.as_deref(), Some(&b"echo: hello"[..]));
//!
//! // Half-close: send our Close, then read (as a byte stream) the rest of
//! // what the server sends until its own Close.
//! stream.send_message(b"bye").await?;
//! stream.shutdown().await?;
//! let mut rest = Vec::new();
//! stream.read_to_end(&mut rest).await?;
//! assert_eq!(rest, b"echo: bye");
//! server.await??;
//! # Ok(()) }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! ## Many streams in one session
//!
//! When both configurations say `.with_streams(true)`, the handshake agrees
//! on streams (SPEC §14) and [`MuxSession`] takes the [`SecureStream`] over:
//! one driver task owns the transport, and every
//! [`open_stream`](MuxSession::open_stream) /
//! [`accept_stream`](MuxSession::accept_stream) is a [`SessionStream`], an
//! `AsyncRead + AsyncWrite` byte stream with its own half-close, flow
//! control and reset, that costs no handshake and no round trip. Its
//! errors come as `io::Error`s; [`mux::stream_error`] gives the reason (a
//! reset by the peer with its words, or the session lost). A peer that does
//! not offer streams leaves [`MuxSession::new`] the `SecureStream` to use
//! as above.
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::sync::Arc;
//! use rand_core::OsRng;
//! use sc_handshake::{ClientConfig, ServerConfig};
//! use sc_pki::{throwaway::ThrowawayPki, ServerName, UnixTime};
//! use sc_session::mux::stream_error;
//! use sc_session::streams::StreamError;
//! use sc_session::{Acceptor, Connector, MuxSession};
//! use sc_wire::streams::{ResetCode, ServiceName};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let pki = ThrowawayPki::new("db.internal", "app-1", UnixTime::now(), &mut OsRng)?;
//! let client_config = ClientConfig::builder()
//!     .with_server_verifier(Arc::new(pki.server_verifier()?))
//!     .with_credential(pki.client.clone())
//!     .build()
//!     .with_streams(true);
//! let server_config = ServerConfig::builder()
//!     .with_client_verifier(Arc::new(pki.client_verifier()?))
//!     .with_credential(pki.server.clone())
//!     .build()
//!     .with_streams(true);
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//!
//! let server = tokio::spawn(async move {
//!     let secure = Acceptor::new(Arc::new(server_config)).accept(server_io).await?;
//!     let session = MuxSession::new(secure).map_err(|_| "the client offered no streams")?;
//!     // Every stream the client opens: echo the "echo" service, refuse the rest.
//!     while let Ok((mut stream, service)) = session.accept_stream().await {
//!         if service.as_ref().map(ServiceName::as_str) != Some("echo") {
//!             stream.reset(ResetCode::UNKNOWN_SERVICE, "no such service");
//!             continue;
//!         }
//!         tokio::spawn(async move {
//!             let (mut r, mut w) = stream.into_split();
//!             tokio::io::copy(&mut r, &mut w).await?;
//!             w.shutdown().await // half-close: our Fin after theirs
//!         });
//!     }
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! });
//!
//! let name = ServerName::try_from("db.internal")?.to_owned();
//! let secure = Connector::new(Arc::new(client_config)).connect(name, None, client_io).await?;
//! let session = MuxSession::new(secure).map_err(|_| "the server takes no streams")?;
//!
//! // Two streams at once, each with its own end.
//! let echo = Some(ServiceName::new("echo")?);
//! let mut a = session.open_stream(echo.clone())?;
//! let mut b = session.open_stream(echo)?;
//! a.write_all(b"first").await?;
//! b.write_all(b"second").await?;
//! a.shutdown().await?;
//! b.shutdown().await?;
//! let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
//! a.read_to_end(&mut got_a).await?;
//! b.read_to_end(&mut got_b).await?;
//! assert_eq!((&got_a[..], &got_b[..]), (&b"first"[..], &b"second"[..]));
//!
//! // A refused stream fails with the peer's reason, its siblings go on.
//! let mut c = session.open_stream(Some(ServiceName::new("admin")?))?;
//! let e = c.read(&mut [0u8; 16]).await.expect_err("reset");
//! assert!(matches!(stream_error(&e), Some(StreamError::Reset { by_peer: true, .. })));
//!
//! // The session ends once its streams are let go.
//! drop((a, b, c));
//! session.close();
//! session.closed().await;
//! server.await?.map_err(|e| e.to_string())?;
//! # Ok(()) }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "tokio")]
mod connect;
mod connection;
mod error;
#[cfg(feature = "tokio")]
pub mod mux;
pub mod pair;
pub mod record;
pub mod rekey;
mod side;
#[cfg(feature = "tokio")]
pub mod stream;
pub mod streams;
pub mod trace;

#[cfg(feature = "tokio")]
pub use connect::{Acceptor, Connector};
pub use connection::{
    Connection, Padding, SessionConfig, Stats, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_MESSAGE_LEN,
    RECEIVE_CHUNK_LEN, SERVER_REKEY_SLACK,
};
pub use error::{Error, IoError, RekeyError};
#[cfg(feature = "tokio")]
pub use mux::{MuxSession, SessionStream};
pub use rekey::{RekeyDone, RekeyPolicy};
pub use side::Side;
#[cfg(feature = "tokio")]
pub use stream::{CopyError, ReadHalf, SecureStream, SessionInfo, WriteHalf};
pub use trace::HandshakeTrace;
