//! The PROXY protocol, version 2 (HAProxy's binary header), so many servers
//! can sit behind a relay or an L4 load balancer and still see the client's
//! real address.
//!
//! ```text
//! signature  0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a      (12 bytes)
//! ver_cmd    0x20 LOCAL | 0x21 PROXY                  (version 2)
//! fam        0x11 TCP/IPv4 | 0x21 TCP/IPv6 | 0x00 UNSPEC (also with LOCAL)
//! len        u16: bytes that follow (addresses, then TLVs)
//! addresses  IPv4: src 4, dst 4, src port 2, dst port 2; IPv6: 16, 16, 2, 2
//! TLVs       type u8, length u16, value
//! ```
//!
//! Sovereign-Chain adds one TLV in the custom range: [`TLV_CLIENT_IDENTITY`]
//! (`0xe0`), the client identity a tunnel exit verified, as UTF-8 text
//! `TYPE:NAME`, the type first so that no name can pass for another kind:
//!
//! ```text
//! dns:app-1                      a DNS subject alternative name
//! uri:spiffe://example/app-1     a URI subject alternative name
//! ip:10.0.0.7                    an IP address subject alternative name
//! cn:app-1                       the subject common name (no SAN above)
//! sha256:<16 hex digits>         a certificate without any of those names
//! anonymous:sha256:<16 hex>      an anonymous client (fresh key, self-signed)
//! ```
//!
//! The hex digits are the first 8 bytes of the SHA-256 of the client's
//! certificate. The name is the one the exit's allow-list matched when its
//! type is the first the certificate has, else the first name of the first
//! type present in the order above. A backend splits at the first `:`.
//!
//! The codec ([`ProxyHeader`], [`signature`]) is pure functions over bytes;
//! [`read_header`] reads a trusted source's header off a connection, bounded
//! in time and size; [`Cidr`] names the trusted sources.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

mod cidr;
mod read;

pub use cidr::{Cidr, CidrError};
pub use read::{read_header, sends_something, HeaderRead};

/// The 12-byte signature every v2 header starts with.
pub const SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];
/// The fixed part: signature, version/command, family, length.
pub const FIXED_LEN: usize = 16;
/// Longest header this implementation accepts (HAProxy's own recommended
/// maximum for a first segment is 536 bytes; TLVs beyond are refused).
pub const MAX_HEADER_LEN: usize = 1024;
/// TLV carrying the client identity verified by a Sovereign-Chain tunnel
/// exit: UTF-8 `TYPE:NAME` (`dns:app-1`, `anonymous:sha256:…`; see the
/// [module documentation](self)).
pub const TLV_CLIENT_IDENTITY: u8 = 0xe0;

/// A PROXY v2 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client's address and port as the sender saw them (`None`: LOCAL
    /// command or an unspecified family: use the connection's own addresses).
    pub source: Option<SocketAddr>,
    /// The address the client connected to.
    pub destination: Option<SocketAddr>,
    /// TLVs in order (type, value).
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// More bytes are needed (this many in all, at least).
    #[error("PROXY header incomplete")]
    Incomplete(usize),
    /// The bytes do not start with the v2 signature.
    #[error("not a PROXY v2 header (bad signature)")]
    NotProxy,
    /// A header that breaks the format.
    #[error("malformed PROXY v2 header: {0}")]
    Malformed(&'static str),
    /// Longer than [`MAX_HEADER_LEN`].
    #[error("PROXY v2 header too large ({0} bytes)")]
    TooLarge(usize),
}

/// How far the first bytes of a connection match the v2 signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// They are not the start of a PROXY v2 header.
    Absent,
    /// Every byte so far matches, but not all 12 have come.
    Partial,
    /// The whole signature is there.
    Present,
}

/// Whether `bytes`, the first of a connection, are a PROXY v2 header's
/// signature: a listener refuses one from a source it does not trust.
pub fn signature(bytes: &[u8]) -> Signature {
    let n = bytes.len().min(SIGNATURE.len());
    if bytes[..n] != SIGNATURE[..n] {
        Signature::Absent
    } else if n == SIGNATURE.len() {
        Signature::Present
    } else {
        Signature::Partial
    }
}

impl ProxyHeader {
    /// A PROXY header for a TCP connection from `source` to `destination`
    /// (both of one family; a mismatch is described as IPv6 with mapped
    /// IPv4 addresses).
    pub fn tcp(source: SocketAddr, destination: SocketAddr) -> Self {
        Self {
            source: Some(source),
            destination: Some(destination),
            tlvs: Vec::new(),
        }
    }

    /// Adds a TLV.
    pub fn with_tlv(mut self, typ: u8, value: Vec<u8>) -> Self {
        self.tlvs.push((typ, value));
        self
    }

    /// The value of the first TLV of `typ`.
    pub fn tlv(&self, typ: u8) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|(t, _)| *t == typ)
            .map(|(_, v)| v.as_slice())
    }

    /// Encodes the header. Fails only if it would exceed [`MAX_HEADER_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, ProxyError> {
        let mut out = SIGNATURE.to_vec();
        let mut body = Vec::new();
        match (self.source, self.destination) {
            (Some(SocketAddr::V4(s)), Some(SocketAddr::V4(d))) => {
                out.extend_from_slice(&[0x21, 0x11]);
                body.extend_from_slice(&s.ip().octets());
                body.extend_from_slice(&d.ip().octets());
                body.extend_from_slice(&s.port().to_be_bytes());
                body.extend_from_slice(&d.port().to_be_bytes());
            }
            (Some(s), Some(d)) => {
                let v6 = |a: SocketAddr| match a.ip() {
                    IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                    IpAddr::V6(ip) => ip,
                };
                out.extend_from_slice(&[0x21, 0x21]);
                body.extend_from_slice(&v6(s).octets());
                body.extend_from_slice(&v6(d).octets());
                body.extend_from_slice(&s.port().to_be_bytes());
                body.extend_from_slice(&d.port().to_be_bytes());
            }
            _ => out.extend_from_slice(&[0x20, 0x00]),
        }
        for (typ, value) in &self.tlvs {
            let len = u16::try_from(value.len()).map_err(|_| ProxyError::TooLarge(value.len()))?;
            body.push(*typ);
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(value);
        }
        let total = FIXED_LEN + body.len();
        if total > MAX_HEADER_LEN {
            return Err(ProxyError::TooLarge(total));
        }
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a header at the start of `bytes`; returns it and its length.
    /// [`ProxyError::Incomplete`] says how many bytes to wait for.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), ProxyError> {
        let sig_len = bytes.len().min(SIGNATURE.len());
        if bytes[..sig_len] != SIGNATURE[..sig_len] {
            return Err(ProxyError::NotProxy);
        }
        if bytes.len() < FIXED_LEN {
            return Err(ProxyError::Incomplete(FIXED_LEN));
        }
        let ver_cmd = bytes[12];
        if ver_cmd >> 4 != 2 {
            return Err(ProxyError::Malformed("version is not 2"));
        }
        let command = ver_cmd & 0x0f;
        if command > 1 {
            return Err(ProxyError::Malformed("unknown command"));
        }
        let fam = bytes[13];
        let len = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        let total = FIXED_LEN + len;
        if total > MAX_HEADER_LEN {
            return Err(ProxyError::TooLarge(total));
        }
        if bytes.len() < total {
            return Err(ProxyError::Incomplete(total));
        }
        let body = &bytes[FIXED_LEN..total];
        let addr_len = match fam {
            0x00 => 0,
            0x11 | 0x12 => 12,
            0x21 | 0x22 => 36,
            0x31 | 0x32 => 216,
            _ => return Err(ProxyError::Malformed("unknown address family or protocol")),
        };
        if body.len() < addr_len {
            return Err(ProxyError::Malformed("addresses longer than the header"));
        }
        let (source, destination) = match (command, fam) {
            (1, 0x11) => {
                let ip = |at: usize| {
                    IpAddr::V4(Ipv4Addr::new(
                        body[at],
                        body[at + 1],
                        body[at + 2],
                        body[at + 3],
                    ))
                };
                let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
                (
                    Some(SocketAddr::new(ip(0), port(8))),
                    Some(SocketAddr::new(ip(4), port(10))),
                )
            }
            (1, 0x21) => {
                let ip = |at: usize| {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&body[at..at + 16]);
                    IpAddr::V6(Ipv6Addr::from(o))
                };
                let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
                (
                    Some(SocketAddr::new(ip(0), port(32))),
                    Some(SocketAddr::new(ip(16), port(34))),
                )
            }
            // LOCAL, UDP, Unix sockets: no TCP addresses to report.
            _ => (None, None),
        };
        let mut tlvs = Vec::new();
        let mut rest = &body[addr_len..];
        while !rest.is_empty() {
            if rest.len() < 3 {
                return Err(ProxyError::Malformed("truncated TLV"));
            }
            let typ = rest[0];
            let vlen = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
            if rest.len() < 3 + vlen {
                return Err(ProxyError::Malformed("TLV longer than the header"));
            }
            tlvs.push((typ, rest[3..3 + vlen].to_vec()));
            rest = &rest[3 + vlen..];
        }
        Ok((
            Self {
                source,
                destination,
                tlvs,
            },
            total,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_told_byte_by_byte() {
        assert_eq!(signature(&[]), Signature::Partial);
        for n in 1..SIGNATURE.len() {
            assert_eq!(signature(&SIGNATURE[..n]), Signature::Partial, "{n}");
        }
        assert_eq!(signature(&SIGNATURE), Signature::Present);
        assert_eq!(
            signature(&[&SIGNATURE[..], &[0x21]].concat()),
            Signature::Present
        );
        // A ClientHello record, and a near miss in the last byte.
        assert_eq!(signature(&[0xc1, 0, 5]), Signature::Absent);
        let mut near = SIGNATURE;
        near[11] = 0x0b;
        assert_eq!(signature(&near), Signature::Absent);
    }

    #[test]
    fn headers_round_trip() {
        let h = ProxyHeader::tcp(
            "192.0.2.1:51000".parse().expect("addr"),
            "198.51.100.7:7000".parse().expect("addr"),
        )
        .with_tlv(TLV_CLIENT_IDENTITY, b"dns:app-1".to_vec());
        let bytes = h.encode().expect("encode");
        assert_eq!(&bytes[..12], &SIGNATURE);
        assert_eq!(ProxyHeader::decode(&bytes), Ok((h.clone(), bytes.len())));
        let h6 = ProxyHeader::tcp(
            "[2001:db8::1]:443".parse().expect("addr"),
            "[2001:db8::2]:7000".parse().expect("addr"),
        );
        let b6 = h6.encode().expect("encode");
        assert_eq!(ProxyHeader::decode(&b6), Ok((h6, b6.len())));
        let local = ProxyHeader {
            source: None,
            destination: None,
            tlvs: vec![],
        };
        let bl = local.encode().expect("encode");
        assert_eq!(bl.len(), 16);
        assert_eq!(ProxyHeader::decode(&bl), Ok((local, 16)));
    }

    #[test]
    fn a_known_haproxy_header_decodes() {
        // PROXY TCP4 127.0.0.1:56324 -> 127.0.0.1:8443, no TLV (as HAProxy sends).
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&[
            0x21, 0x11, 0x00, 0x0c, 127, 0, 0, 1, 127, 0, 0, 1, 0xdc, 0x04, 0x20, 0xfb,
        ]);
        let (h, n) = ProxyHeader::decode(&b).expect("decodes");
        assert_eq!(n, 28);
        assert_eq!(h.source, Some("127.0.0.1:56324".parse().expect("addr")));
        assert_eq!(h.destination, Some("127.0.0.1:8443".parse().expect("addr")));
    }

    #[test]
    fn bad_headers_are_refused_without_panics() {
        assert_eq!(
            ProxyHeader::decode(b"GET / HTTP/1.1\r\n"),
            Err(ProxyError::NotProxy)
        );
        assert_eq!(
            ProxyHeader::decode(&SIGNATURE[..5]),
            Err(ProxyError::Incomplete(16))
        );
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(
            ProxyHeader::decode(&b),
            Err(ProxyError::TooLarge(16 + 0xffff))
        );
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&[0x31, 0x11, 0, 0]);
        assert!(matches!(
            ProxyHeader::decode(&b),
            Err(ProxyError::Malformed(_))
        ));
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(matches!(
            ProxyHeader::decode(&b),
            Err(ProxyError::Malformed(_))
        ));
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&[0x21, 0x00, 0, 2, 0xe0, 0x00]);
        assert!(matches!(
            ProxyHeader::decode(&b),
            Err(ProxyError::Malformed(_))
        ));
        // Every prefix of a good header is Incomplete or NotProxy, never a panic.
        let good = ProxyHeader::tcp(
            "10.0.0.1:1".parse().expect("addr"),
            "10.0.0.2:2".parse().expect("addr"),
        )
        .with_tlv(0xe0, vec![7; 40])
        .encode()
        .expect("encode");
        for cut in 0..good.len() {
            assert!(
                matches!(
                    ProxyHeader::decode(&good[..cut]),
                    Err(ProxyError::Incomplete(_))
                ),
                "cut {cut}"
            );
        }
    }
}
