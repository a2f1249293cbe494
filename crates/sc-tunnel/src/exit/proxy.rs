//! PROXY protocol v2 on a listener: which sources may send a header (the
//! header is read with `sc-net`'s [`read_header`](sc_net::proxy_protocol::read_header)),
//! refusing it from everyone else, and the header a tunnel exit sends to
//! its backend.
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
//!   The check costs nothing on the normal path: it is made on the bytes
//!   read while waiting for the ClientHello, and a Sovereign-Chain record
//!   never starts with the signature's first byte (`0x0d`).

use std::net::SocketAddr;
use std::time::Duration;

use sc_net::proxy_protocol::{ProxyError, ProxyHeader, TLV_CLIENT_IDENTITY};
use sc_net::Cidr;

/// Longest wait for a trusted source's PROXY header, from the TCP connection
/// (5 s, or the handshake timeout if that is shorter). A balancer sends the
/// header as soon as it has connected.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// not start ([`StartError::ProxyProtocol`](super::StartError::ProxyProtocol)).
    pub trusted: Vec<Cidr>,
    /// Forward mode: start every backend connection with a PROXY v2 header
    /// carrying the client's address (the one a trusted header reported,
    /// else the TCP peer) and its verified identity
    /// ([`TLV_CLIENT_IDENTITY`](TLV_CLIENT_IDENTITY)).
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
            tlvs: vec![(TLV_CLIENT_IDENTITY, identity.as_bytes().to_vec())],
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(h.tlv(TLV_CLIENT_IDENTITY), Some(&b"app-1"[..]));

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
}
