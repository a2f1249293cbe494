//! PROXY protocol v2 on a listener: which sources may send a header, reading
//! it from them (bounded in time and size), refusing it from everyone else,
//! and the header a tunnel exit sends to its backend.
//!
//! * A connection from a trusted source ([`ProxyProtocol::trusted`]) must
//!   start with a PROXY v2 header; its source address then stands for the
//!   client everywhere (logs, the header sent to a backend). A header without
//!   a client address (the `LOCAL` command a balancer's health check sends,
//!   or an unspecified family) leaves the connection as it is: from its TCP
//!   peer. A trusted connection that closes before sending anything (a
//!   connect probe, a health check) is closed quietly.
//! * Every other connection that starts with the PROXY v2 signature is
//!   refused: only a trusted balancer may say where a client comes from.
//!   The check costs nothing on the normal path: a Sovereign-Chain record
//!   never starts with the signature's first byte (`0x0d`).

use core::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::proxy_protocol::{ProxyError, ProxyHeader, FIXED_LEN, SIGNATURE};
use crate::Stream;

/// Longest wait for a trusted source's PROXY header, from the TCP connection
/// (5 s, or the handshake timeout if that is shorter). A balancer sends the
/// header as soon as it has connected.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A range of IP addresses: `10.0.0.0/8`, `127.0.0.1/32`, `::1/128`, or a
/// single address (`192.0.2.7`, a /32 or /128).
///
/// The address must be the first of its range (`10.0.0.1/8` is refused, with
/// `10.0.0.0/8` suggested): a typo must not widen or narrow what is trusted
/// unnoticed. IPv4 ranges also match IPv4-mapped IPv6 peers
/// (`::ffff:10.0.0.1`, as a dual-stack `[::]` listener sees IPv4 clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR range that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid address range '{given}': {why}")]
pub struct CidrError {
    given: String,
    why: String,
}

impl Cidr {
    /// The first address of the range.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length (32 or 128 for one address).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl core::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: String| CidrError {
            given: s.to_owned(),
            why,
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                err("not an IPv4 or IPv6 address (use 10.0.0.0/8, 127.0.0.1/32, ::1/128)".into())
            })?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => {
                    return Err(err(format!(
                        "the prefix length must be a number from 0 to {max}"
                    )))
                }
            },
        };
        let first = Self { addr, prefix }.first();
        if first != addr {
            return Err(err(format!(
                "{addr} is not the first address of a /{prefix} (did you mean {first}/{prefix}?)"
            )));
        }
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    /// The range's first address (the address with its host bits cleared).
    fn first(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// PROXY protocol v2 on one listener (HAProxy or any L4 load balancer in
/// front, or a tunnel exit's backend behind). The default uses none: every
/// connection is taken as from its TCP peer, and one that starts with a
/// PROXY header is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// Sources (the TCP peer's address) that must start every connection
    /// with a PROXY v2 header, whose client address is then taken as the
    /// peer's. A PROXY header from any other source is refused. Only TCP
    /// peers can match: a Unix socket listener with trusted sources does
    /// not start ([`StartError::ProxyProtocol`](super::StartError)).
    pub trusted: Vec<Cidr>,
    /// Forward mode: start every backend connection with a PROXY v2 header
    /// carrying the client's address (the one a trusted header reported,
    /// else the TCP peer) and its verified identity
    /// ([`TLV_CLIENT_IDENTITY`](crate::proxy_protocol::TLV_CLIENT_IDENTITY)).
    pub send: bool,
}

impl ProxyProtocol {
    /// Whether `peer` (as the accept loop names it) is a trusted source.
    pub(crate) fn trusts(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_some_and(|p| self.trusted.iter().any(|c| c.contains(p.ip())))
    }
}

/// Where a connection comes from.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    /// The TCP peer (or `unix:/path`), as accepted.
    pub(crate) tcp_peer: String,
    /// The client's address, from a trusted source's PROXY header.
    pub(crate) client: Option<SocketAddr>,
    /// The address the client connected to, from that header.
    pub(crate) destination: Option<SocketAddr>,
}

impl Origin {
    /// The address that stands for the client in logs.
    pub(crate) fn peer(&self) -> String {
        match self.client {
            Some(c) => c.to_string(),
            None => self.tcp_peer.clone(),
        }
    }

    /// The balancer the connection came through, if a header named the client.
    pub(crate) fn via(&self) -> Option<&str> {
        self.client.map(|_| self.tcp_peer.as_str())
    }

    /// The PROXY v2 header for a backend: the client's address (from the
    /// header, else the TCP peer), the address it connected to (from the
    /// header, else `local`), and `identity` as TLV `0xe0`. A client over a
    /// Unix socket has no address: the header is then `LOCAL` with the TLV.
    pub(crate) fn header_for_backend(
        &self,
        local: Option<SocketAddr>,
        identity: &str,
    ) -> Result<Vec<u8>, ProxyError> {
        let source = self.client.or_else(|| self.tcp_peer.parse().ok());
        let destination = match self.client {
            Some(_) => self.destination.or(local),
            None => local,
        };
        let (source, destination) = match (source, destination) {
            (Some(s), Some(d)) => (Some(s), Some(d)),
            _ => (None, None),
        };
        ProxyHeader {
            source,
            destination,
            tlvs: vec![(
                crate::proxy_protocol::TLV_CLIENT_IDENTITY,
                identity.as_bytes().to_vec(),
            )],
        }
        .encode()
    }
}

/// What reading a trusted source's header came to.
#[derive(Debug)]
pub(crate) enum HeaderRead {
    /// A header (possibly without a client address).
    Header(ProxyHeader),
    /// The source closed before sending a byte (a connect probe).
    Silent,
    /// Refused, and why.
    Refused(String),
}

/// Reads a PROXY v2 header from the start of `io`, never past its end (the
/// handshake that follows reads the rest), within `within`.
pub(crate) async fn read_header(io: &mut Stream, within: Duration) -> HeaderRead {
    // Only the bytes that came are in `buf` (its length is reported when
    // the wait is over), never more than the header's own length.
    let mut buf = Vec::with_capacity(FIXED_LEN);
    let reading = async {
        let mut want = FIXED_LEN;
        let mut chunk = [0u8; 256];
        loop {
            let have = buf.len();
            let room = (want - have).min(chunk.len());
            let n = match io.read(&mut chunk[..room]).await {
                Ok(n) => n,
                // A probe that resets the connection at once is as silent
                // as one that closes it.
                Err(_) if have == 0 => 0,
                Err(e) => {
                    return Err(format!(
                        "connection failed in the middle of its PROXY v2 header: {e}"
                    ));
                }
            };
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
            match ProxyHeader::decode(&buf) {
                Ok((header, _)) => return Ok(Some(header)),
                Err(ProxyError::Incomplete(total)) => want = total.max(buf.len() + 1),
                Err(ProxyError::NotProxy) => {
                    return Err(
                        "no PROXY v2 header from a trusted source (it sent other bytes first)"
                            .into(),
                    )
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    match tokio::time::timeout(within, reading).await {
        Ok(Ok(Some(header))) => HeaderRead::Header(header),
        Ok(Ok(None)) if buf.is_empty() => HeaderRead::Silent,
        Ok(Ok(None)) => HeaderRead::Refused(format!(
            "closed after {} bytes of its PROXY v2 header",
            buf.len()
        )),
        Ok(Err(reason)) => HeaderRead::Refused(reason),
        Err(_) if buf.is_empty() => HeaderRead::Refused(format!(
            "no PROXY v2 header from a trusted source within {}",
            super::session::secs(within)
        )),
        Err(_) => HeaderRead::Refused(format!(
            "PROXY v2 header incomplete after {} ({} bytes came)",
            super::session::secs(within),
            buf.len()
        )),
    }
}

/// After a header without a client address: waits (within `within`) for
/// the connection's first byte. `false`: it closed without sending one (a
/// health check); `true`: something came, or the wait is over (the handshake
/// and its timeout take it from there).
pub(crate) async fn sends_something(io: &Stream, within: Duration) -> bool {
    let Stream::Tcp(tcp) = io else { return true };
    let mut one = [0u8; 1];
    match tokio::time::timeout(within, tcp.peek(&mut one)).await {
        Ok(Ok(0)) | Ok(Err(_)) => false,
        Ok(Ok(_)) | Err(_) => true,
    }
}

/// The server's side of a connection: the stream, and, for a source that is
/// not trusted, a check that its first bytes are not a PROXY header.
#[derive(Debug)]
pub(crate) struct Inbound {
    inner: Stream,
    check: Check,
}

#[derive(Debug)]
enum Check {
    /// Collecting the first bytes while they match the signature.
    Watching {
        head: [u8; SIGNATURE.len()],
        have: usize,
        tripped: Arc<AtomicBool>,
    },
    /// Handing back the bytes collected, then reading straight through.
    Passing {
        head: [u8; SIGNATURE.len()],
        pos: usize,
        have: usize,
    },
}

/// The error a watched connection's read fails with when it starts with
/// the PROXY v2 signature.
#[derive(Debug, thiserror::Error)]
#[error("PROXY header from a source that is not trusted")]
pub(crate) struct UntrustedHeader;

impl Inbound {
    /// A connection whose bytes go straight through (a trusted source, whose
    /// header has been read).
    pub(crate) fn plain(inner: Stream) -> Self {
        Self {
            inner,
            check: Check::Passing {
                head: [0; SIGNATURE.len()],
                pos: 0,
                have: 0,
            },
        }
    }

    /// A connection whose first bytes must not be a PROXY header; `tripped`
    /// is set if they are (and reading fails with [`UntrustedHeader`]).
    pub(crate) fn watched(inner: Stream, tripped: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            check: Check::Watching {
                head: [0; SIGNATURE.len()],
                have: 0,
                tripped,
            },
        }
    }
}

impl AsyncRead for Inbound {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.check {
                Check::Passing { head, pos, have } => {
                    if *pos < *have {
                        let n = (*have - *pos).min(buf.remaining());
                        buf.put_slice(&head[*pos..*pos + n]);
                        *pos += n;
                        return Poll::Ready(Ok(()));
                    }
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                Check::Watching {
                    head,
                    have,
                    tripped,
                } => {
                    let mut rb = ReadBuf::new(&mut head[*have..]);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => {
                            let n = rb.filled().len();
                            *have += n;
                            if n > 0 && head[..*have] == SIGNATURE[..*have] {
                                if *have == SIGNATURE.len() {
                                    tripped.store(true, Ordering::Relaxed);
                                    return Poll::Ready(Err(io::Error::new(
                                        io::ErrorKind::InvalidData,
                                        UntrustedHeader,
                                    )));
                                }
                                continue;
                            }
                            // Not the signature (or the end of the stream):
                            // hand back what came, then read through.
                            this.check = Check::Passing {
                                head: *head,
                                pos: 0,
                                have: *have,
                            };
                        }
                    }
                }
            }
        }
    }
}

impl AsyncWrite for Inbound {
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

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ranges_parse_and_match() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("127.0.0.1/32").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1/32").contains(ip("127.0.0.2")));
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("::1/128").contains(ip("::1")));
        assert!(cidr("[::1]/128").contains(ip("::1")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!cidr("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        // A dual-stack listener sees IPv4 clients as mapped IPv6 addresses.
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("::1/128").contains(ip("127.0.0.1")));
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("::1").to_string(), "::1/128");
    }

    #[test]
    fn bad_ranges_say_why() {
        for (bad, why) in [
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("10.0.0.0/33", "from 0 to 32"),
            ("::/129", "from 0 to 128"),
            ("10.0.0.0/", "from 0 to 32"),
            ("10.0.0.0/+8", "from 0 to 32"),
            ("10.0.0.0/x", "from 0 to 32"),
            ("localhost/32", "not an IPv4 or IPv6 address"),
            ("", "not an IPv4 or IPv6 address"),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
        ] {
            let e = bad.parse::<Cidr>().expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_header_for_a_backend_names_the_real_client() {
        let proxied = Origin {
            tcp_peer: "10.0.0.2:40000".into(),
            client: Some("203.0.113.7:51234".parse().expect("addr")),
            destination: Some("198.51.100.1:443".parse().expect("addr")),
        };
        let bytes = proxied
            .header_for_backend(Some("10.0.0.3:7000".parse().expect("addr")), "app-1")
            .expect("encode");
        let (h, n) = ProxyHeader::decode(&bytes).expect("decode");
        assert_eq!(n, bytes.len());
        assert_eq!(h.source, proxied.client);
        assert_eq!(h.destination, proxied.destination);
        assert_eq!(
            h.tlv(crate::proxy_protocol::TLV_CLIENT_IDENTITY),
            Some(&b"app-1"[..])
        );

        let direct = Origin {
            tcp_peer: "192.0.2.5:6000".into(),
            client: None,
            destination: None,
        };
        let bytes = direct
            .header_for_backend(Some("192.0.2.1:7000".parse().expect("addr")), "x")
            .expect("encode");
        let (h, _) = ProxyHeader::decode(&bytes).expect("decode");
        assert_eq!(h.source, Some("192.0.2.5:6000".parse().expect("addr")));
        assert_eq!(h.destination, Some("192.0.2.1:7000".parse().expect("addr")));

        let unix = Origin {
            tcp_peer: "unix:/run/sc.sock".into(),
            client: None,
            destination: None,
        };
        let (h, _) = ProxyHeader::decode(&unix.header_for_backend(None, "y").expect("encode"))
            .expect("decode");
        assert_eq!(h.source, None);
        assert_eq!(h.tlv(0xe0), Some(&b"y"[..]));

        // An identity too long for a header is an error, not a panic.
        let long = "a".repeat(2000);
        assert!(direct.header_for_backend(None, &long).is_err());
    }

    #[tokio::test]
    async fn a_watched_stream_passes_a_client_hello_and_trips_on_the_signature() {
        use tokio::io::AsyncWriteExt;
        for (sent, trips) in [
            (vec![0xc1u8, 0, 5, 1, 2, 3, 4, 5], false),
            (SIGNATURE[..5].to_vec(), false),
            ([&SIGNATURE[..], &[0x21, 0x11, 0, 0]].concat(), true),
            (
                vec![
                    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b,
                ],
                false,
            ),
        ] {
            let (a, b) = tokio::net::UnixStream::pair().expect("pair");
            let tripped = Arc::new(AtomicBool::new(false));
            let mut watched = Inbound::watched(Stream::Unix(a), tripped.clone());
            let mut b = b;
            // Byte by byte: the check must not depend on how bytes arrive.
            let writer = tokio::spawn(async move {
                for byte in sent.clone() {
                    let _ = b.write_all(&[byte]).await;
                    tokio::task::yield_now().await;
                }
                let _ = b.shutdown().await;
                sent
            });
            let mut got = Vec::new();
            let r = watched.read_to_end(&mut got).await;
            let sent = writer.await.expect("writer");
            assert_eq!(tripped.load(Ordering::Relaxed), trips, "{sent:02x?}");
            if trips {
                let e = r.expect_err("refused");
                assert!(e.get_ref().is_some_and(|i| i.is::<UntrustedHeader>()));
            } else {
                r.expect("read");
                assert_eq!(got, sent);
            }
        }
    }
}
