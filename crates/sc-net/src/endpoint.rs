//! Where to listen and where to connect: TCP over IPv4 or IPv6 (a host name
//! is resolved at connect time), or a Unix socket (`unix:/path`).

use core::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{tcp, unix, TcpListener, TcpStream, UnixListener, UnixStream};

/// A listening or connecting address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `HOST:PORT`, `IPv4:PORT` or `[IPv6]:PORT`.
    Tcp(String),
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

/// An address that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid address '{given}': {why} (use HOST:PORT, [IPv6]:PORT or unix:/path)")]
pub struct EndpointError {
    given: String,
    why: &'static str,
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| EndpointError {
            given: s.to_owned(),
            why,
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(err("the socket path is empty"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(|| err("no port"))?;
        if host.is_empty() {
            return Err(err("no host"));
        }
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(err("an IPv6 address needs brackets"));
        }
        port.parse::<u16>()
            .map_err(|_| err("the port is not a number from 0 to 65535"))?;
        Ok(Self::Tcp(s.to_owned()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => f.write_str(a),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Endpoint {
    /// The host part of a TCP endpoint (without brackets), e.g. for a
    /// default server name; `None` for a Unix socket.
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::Tcp(a) => a
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')),
            Self::Unix(_) => None,
        }
    }

    /// Binds a listener. A stale Unix socket file is replaced; any other
    /// file at that path is left alone (and binding fails).
    pub async fn listen(&self) -> io::Result<Listener> {
        match self {
            Self::Tcp(a) => Ok(Listener::Tcp(listen_tcp(a).await?)),
            Self::Unix(p) => {
                if let Ok(meta) = std::fs::symlink_metadata(p) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() && UnixStream::connect(p).await.is_err() {
                        std::fs::remove_file(p)?;
                    }
                }
                Ok(Listener::Unix(UnixListener::bind(p)?, p.clone()))
            }
        }
    }

    /// Binds a listener ([`listen`](Self::listen)) and names the address it
    /// is bound to (with the real port when 0 was asked for). When the
    /// process was given sockets (socket activation, [`inherited`](crate::inherited)),
    /// it takes the one bound to this address instead, and binds nothing.
    pub async fn bind(&self) -> io::Result<(Listener, Endpoint)> {
        let listener = match crate::inherited::take_for(self).await {
            Some(inherited) => inherited?,
            None => self.listen().await?,
        };
        let local = listener.local_endpoint()?;
        Ok((listener, local))
    }

    /// As [`bind`](Self::bind), for a listener that socket activation
    /// names (`status`, [`STATUS_NAME`](crate::inherited::STATUS_NAME)):
    /// when the process was given sockets, it takes the one named `name`.
    pub async fn bind_as(&self, name: &str) -> io::Result<(Listener, Endpoint)> {
        let listener = match crate::inherited::take_named(name, self) {
            Some(inherited) => inherited?,
            None => self.listen().await?,
        };
        let local = listener.local_endpoint()?;
        Ok((listener, local))
    }

    /// Connects, with TCP_NODELAY on TCP.
    pub async fn connect(&self) -> io::Result<Stream> {
        match self {
            Self::Tcp(a) => {
                let s = TcpStream::connect(a.as_str()).await?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Self::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p).await?)),
        }
    }
}

/// Connections the kernel queues for a TCP listener before it accepts them
/// (the kernel caps it at `net.core.somaxconn`, 4,096 on current Linux).
/// The standard library's 128 overflows under a flood of connections, and
/// the kernel then drops handshakes or falls back to SYN cookies for
/// everyone; nginx uses 511, Go the kernel's maximum.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Binds a TCP listener on the first address `addr` resolves to that
/// binds (as `TcpListener::bind` does), with [`LISTEN_BACKLOG`].
async fn listen_tcp(addr: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = match a {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // As TcpListener::bind: a restarted server rebinds at once.
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// A Unix socket, and its path (removed when the listener is dropped).
    Unix(UnixListener, PathBuf),
    /// A Unix socket the service manager passed, and its path (left in
    /// place: the service manager owns it).
    UnixInherited(UnixListener, PathBuf),
}

impl Listener {
    /// Accepts one connection (TCP_NODELAY set) and names the peer.
    pub async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Self::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), addr.to_string()))
            }
            Self::Unix(l, path) | Self::UnixInherited(l, path) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), format!("unix:{}", path.display())))
            }
        }
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_endpoint(&self) -> io::Result<Endpoint> {
        match self {
            Self::Tcp(l) => Ok(Endpoint::Tcp(l.local_addr()?.to_string())),
            Self::Unix(_, p) | Self::UnixInherited(_, p) => Ok(Endpoint::Unix(p.clone())),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Self::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A connected stream, TCP or Unix.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix socket.
    Unix(UnixStream),
}

impl Stream {
    /// Splits the stream into halves that each direction owns (no lock
    /// between them, unlike `tokio::io::split`).
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Self::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
        }
    }

    /// The peer's address (TCP only).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(s) => s.peer_addr().ok(),
            Self::Unix(_) => None,
        }
    }

    /// Our own address (TCP only).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(s) => s.local_addr().ok(),
            Self::Unix(_) => None,
        }
    }

    /// Makes this TCP connection end with a reset (RST, by SO_LINGER 0)
    /// when it is closed: for a tunnel whose other side failed, so its
    /// application sees an error rather than a clean end of stream it
    /// could not tell from the real end. A Unix socket has no reset: it is
    /// closed as usual.
    pub fn reset_on_close(&self) {
        if let Self::Tcp(tcp) = self {
            // SO_LINGER 0 does not block on close (the deprecation is about
            // non-zero lingers).
            #[allow(deprecated)]
            let _ = tcp.set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

/// The read half of a [`Stream`] ([`Stream::into_split`]).
#[derive(Debug)]
pub enum ReadHalf {
    /// TCP.
    Tcp(tcp::OwnedReadHalf),
    /// A Unix socket.
    Unix(unix::OwnedReadHalf),
}

/// The write half of a [`Stream`] ([`Stream::into_split`]); shutting it
/// down half-closes the connection.
#[derive(Debug)]
pub enum WriteHalf {
    /// TCP.
    Tcp(tcp::OwnedWriteHalf),
    /// A Unix socket.
    Unix(unix::OwnedWriteHalf),
}

/// `AsyncRead` for an enum each of whose variants holds a reader.
macro_rules! read_by_variant {
    ($t:ty: $($v:ident),+) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
}

/// `AsyncWrite` for an enum each of whose variants holds a writer.
macro_rules! write_by_variant {
    ($t:ty: $($v:ident),+) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_write(cx, buf),)+
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_flush(cx),)+
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_shutdown(cx),)+
                }
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_write_vectored(cx, bufs),)+
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    $(Self::$v(s) => s.is_write_vectored(),)+
                }
            }
        }
    };
}

read_by_variant!(Stream: Tcp, Unix);
write_by_variant!(Stream: Tcp, Unix);
read_by_variant!(ReadHalf: Tcp, Unix);
write_by_variant!(WriteHalf: Tcp, Unix);

/// A stream whose first bytes were already read (to decide what the
/// connection is): they are handed back first, then reading goes on from
/// the stream. Writes go straight through.
#[derive(Debug)]
pub struct Replay<S> {
    head: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Replay<S> {
    /// `head`, the bytes already read from `inner`, come first.
    pub fn new(head: Vec<u8>, inner: S) -> Self {
        Self {
            head,
            pos: 0,
            inner,
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.head.len() {
            let n = (this.head.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.head[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.head.len() {
                this.head = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that accepts nothing still completes 600 TCP handshakes
    /// at once: its kernel queue is [`LISTEN_BACKLOG`], not the standard
    /// library's 128 (with 128, connection 130 or so waits for a SYN retry,
    /// a second or more).
    #[tokio::test]
    async fn the_kernel_queues_many_connections_before_they_are_accepted() {
        let (listener, local) = Endpoint::Tcp("127.0.0.1:0".into())
            .bind()
            .await
            .expect("bind");
        let mut held = Vec::new();
        for i in 0..600 {
            let conn = tokio::time::timeout(std::time::Duration::from_millis(500), local.connect())
                .await
                .unwrap_or_else(|_| panic!("connection {i} waited: the accept queue is full"))
                .expect("connect");
            held.push(conn);
        }
        drop(listener);
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            "127.0.0.1:80".parse(),
            Ok(Endpoint::Tcp("127.0.0.1:80".into()))
        );
        assert_eq!(
            "[::1]:443"
                .parse::<Endpoint>()
                .map(|e| e.host().map(str::to_owned)),
            Ok(Some("::1".into()))
        );
        assert_eq!(
            "db.internal:5432"
                .parse::<Endpoint>()
                .map(|e| e.host().map(str::to_owned)),
            Ok(Some("db.internal".into()))
        );
        assert_eq!(
            "unix:/run/sc.sock".parse(),
            Ok(Endpoint::Unix("/run/sc.sock".into()))
        );
        for bad in [
            "127.0.0.1",
            ":80",
            "::1:80",
            "host:99999",
            "unix:",
            "host:port",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_replay_hands_back_the_head_then_the_stream() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut b) = tokio::io::duplex(64);
        b.write_all(b" world").await.expect("write");
        drop(b);
        let mut r = Replay::new(b"hello".to_vec(), a);
        let mut one = [0u8; 3];
        r.read_exact(&mut one).await.expect("read");
        assert_eq!(&one, b"hel");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, b"lo world");
    }
}
