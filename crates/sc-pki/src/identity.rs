//! Who a peer is: [`PeerIdentity`], [`VerifiedPeer`], the key pin
//! [`KeyPin`], and the allow-list entries that name peers ([`AllowEntry`]).
//!
//! Plain values that import nothing of this crate but `util`, so that every
//! other module (the errors included) can name them. Reading a pin from a
//! certificate or from text, and an allow-list entry from text, can fail
//! with a `PkiError`, which is why those constructors live in `pin.rs`,
//! above `error.rs`.

use std::fmt;
use std::net::IpAddr;

use der::asn1::BitStringRef;
use der::Encode;
use ed25519_dalek::pkcs8::ALGORITHM_OID;
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use crate::util::Hex;

/// What a successful verification proves about the peer.
///
/// For a CA-issued certificate the names are the leaf's. For an anonymous
/// certificate all names are empty: its names are self-asserted, so only the
/// key (its pin, and the certificate's fingerprint) is authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The leaf's subject common name, if any.
    pub common_name: Option<String>,
    /// The leaf's DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// The leaf's IP address subject alternative names.
    pub ip_addrs: Vec<IpAddr>,
    /// The leaf's URI subject alternative names.
    pub uris: Vec<String>,
    /// SHA-256 of the leaf certificate's DER encoding.
    pub fingerprint: [u8; 32],
    /// The pin of the leaf's key (SHA-256 of its `SubjectPublicKeyInfo`).
    pub spki_pin: KeyPin,
    /// Whether the peer authenticated with an anonymous (self-signed) certificate.
    pub anonymous: bool,
    /// Which kind of name a server's allow-list matched (that name is then
    /// the first of its list): what [`Display`](fmt::Display) shows. `None`
    /// where no allow-list matched a name.
    pub matched: Option<NameKind>,
}

/// A kind of name in a certificate.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A DNS subject alternative name.
    Dns,
    /// A URI subject alternative name.
    Uri,
    /// An IP address subject alternative name.
    Ip,
    /// The subject common name.
    Cn,
}

impl fmt::Display for PeerIdentity {
    /// One name, prefixed with its type, so that no certificate can make its
    /// identity read as another kind (a CN `anonymous:…` is `cn:anonymous:…`):
    ///
    /// * `anonymous:sha256:<first 16 hex digits of the fingerprint>` for an
    ///   anonymous peer;
    /// * else `dns:<first DNS name>`, else `uri:<first URI>`, else
    ///   `ip:<first IP address>`, else `cn:<common name>`;
    /// * else `sha256:<first 16 hex digits of the fingerprint>`.
    ///
    /// A server's [`WebPkiClientVerifier`](crate::WebPkiClientVerifier)
    /// moves the name its allow-list matched to the front of its list, so
    /// this is the name the allow-list matched, of whatever type.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = Hex(&self.fingerprint[..8]);
        if self.anonymous {
            return write!(f, "anonymous:sha256:{short}");
        }
        match self.matched {
            Some(NameKind::Dns) if !self.dns_names.is_empty() => {
                return write!(f, "dns:{}", self.dns_names[0])
            }
            Some(NameKind::Uri) if !self.uris.is_empty() => {
                return write!(f, "uri:{}", self.uris[0])
            }
            Some(NameKind::Ip) if !self.ip_addrs.is_empty() => {
                return write!(f, "ip:{}", self.ip_addrs[0])
            }
            Some(NameKind::Cn) => {
                if let Some(cn) = &self.common_name {
                    return write!(f, "cn:{cn}");
                }
            }
            _ => {}
        }
        if let Some(dns) = self.dns_names.first() {
            write!(f, "dns:{dns}")
        } else if let Some(uri) = self.uris.first() {
            write!(f, "uri:{uri}")
        } else if let Some(ip) = self.ip_addrs.first() {
            write!(f, "ip:{ip}")
        } else if let Some(cn) = &self.common_name {
            write!(f, "cn:{cn}")
        } else {
            write!(f, "sha256:{short}")
        }
    }
}

impl PeerIdentity {
    /// Whether the certificate has a DNS, URI or IP subject alternative name.
    pub fn has_alt_names(&self) -> bool {
        !(self.dns_names.is_empty() && self.uris.is_empty() && self.ip_addrs.is_empty())
    }
}

/// A name on a server's client allow-list: which field of a client
/// certificate it is compared with. Written `dns:NAME`, `uri:URI`,
/// `ip:ADDRESS`, `cn:NAME`, `anonymous`, or a bare `NAME` (untyped); see
/// [`AllowEntry`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedName {
    /// `dns:NAME`: a DNS subject alternative name, ASCII case-insensitively
    /// (a wildcard SAN matches only the same text, it is not expanded).
    Dns(String),
    /// `uri:URI`: a URI subject alternative name, byte for byte.
    Uri(String),
    /// `ip:ADDRESS`: an IP address subject alternative name.
    Ip(IpAddr),
    /// `cn:NAME`: the subject common name, byte for byte, whatever SANs the
    /// certificate has.
    Cn(String),
    /// A bare `NAME`, as before entries had types: a DNS, URI or IP SAN as
    /// above, or the common name **only if the certificate has no DNS, URI
    /// or IP SAN**. Accepted with a warning
    /// ([`AllowEntry::untyped_warning`]).
    Untyped(String),
    /// `anonymous`: anonymous clients (self-signed, authenticated only as
    /// their key). It admits nothing by itself: it says that a server that
    /// also allows anonymous clients means to, and never matches a
    /// CA-issued certificate.
    Anonymous,
}

/// Which name of a [`PeerIdentity`] an [`AllowedName`] matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameAt {
    Dns(usize),
    Uri(usize),
    Ip(usize),
    Cn,
}

impl AllowedName {
    /// The name of `identity` this one matches, if any (never one of an
    /// anonymous identity: its names are self-asserted).
    pub(crate) fn find(&self, identity: &PeerIdentity) -> Option<NameAt> {
        if identity.anonymous {
            return None;
        }
        let dns = |name: &str| {
            identity
                .dns_names
                .iter()
                .position(|d| d.eq_ignore_ascii_case(name))
                .map(NameAt::Dns)
        };
        let uri = |name: &str| {
            identity
                .uris
                .iter()
                .position(|u| u == name)
                .map(NameAt::Uri)
        };
        let ip = |addr: &IpAddr| {
            identity
                .ip_addrs
                .iter()
                .position(|a| a == addr)
                .map(NameAt::Ip)
        };
        let cn = |name: &str| (identity.common_name.as_deref() == Some(name)).then_some(NameAt::Cn);
        match self {
            Self::Dns(name) => dns(name),
            Self::Uri(name) => uri(name),
            Self::Ip(addr) => ip(addr),
            Self::Cn(name) => cn(name),
            Self::Untyped(name) => dns(name)
                .or_else(|| uri(name))
                .or_else(|| name.parse::<IpAddr>().ok().and_then(|a| ip(&a)))
                .or_else(|| {
                    if identity.has_alt_names() {
                        None
                    } else {
                        cn(name)
                    }
                }),
            Self::Anonymous => None,
        }
    }

    /// Whether it matches one of `identity`'s names.
    pub fn matches(&self, identity: &PeerIdentity) -> bool {
        self.find(identity).is_some()
    }

    /// The typed spelling an untyped name most likely means: `ip:` if it
    /// parses as an IP address, `uri:` if it has a `:`, else `dns:`.
    pub fn typed_spelling(&self) -> Option<String> {
        let Self::Untyped(name) = self else {
            return None;
        };
        Some(if name.parse::<IpAddr>().is_ok() {
            format!("ip:{name}")
        } else if name.contains(':') {
            format!("uri:{name}")
        } else {
            format!("dns:{name}")
        })
    }
}

impl fmt::Display for AllowedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => write!(f, "dns:{name}"),
            Self::Uri(uri) => write!(f, "uri:{uri}"),
            Self::Ip(addr) => write!(f, "ip:{addr}"),
            Self::Cn(name) => write!(f, "cn:{name}"),
            Self::Untyped(name) => f.write_str(name),
            Self::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// One entry of a server's client allow-list: a name
/// ([`AllowedName`]), optionally tied to one trust anchor.
///
/// Text form ([`FromStr`](std::str::FromStr), in `pin.rs`):
/// `[TYPE:]NAME[@ANCHOR]`, or `anonymous`.
///
/// * `TYPE` is `dns`, `uri`, `ip` or `cn` (lower case); without one the
///   entry is untyped ([`AllowedName::Untyped`]).
/// * `@ANCHOR` admits the name only in a certificate whose chain leads to
///   a trust anchor whose subject common name is `ANCHOR` (byte for byte;
///   with several anchors of that name, any of them). The entry is split at
///   its **last** `@`, so a name that contains `@` (a CN `alice@example.com`,
///   a URI with a user) must end with `@ANCHOR`, or with `@*` for any
///   anchor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    /// The name.
    pub name: AllowedName,
    /// The subject common name of the trust anchor the client's chain must
    /// lead to; `None`: any anchor.
    pub anchor: Option<String>,
}

impl AllowEntry {
    /// For an untyped entry, the warning to give once (at start or reload):
    /// what it matches, and the typed spelling to write instead.
    pub fn untyped_warning(&self) -> Option<String> {
        let typed = self.name.typed_spelling()?;
        let AllowedName::Untyped(name) = &self.name else {
            return None;
        };
        let at = match &self.anchor {
            Some(anchor) => format!("@{anchor}"),
            None => String::new(),
        };
        Some(format!(
            "allow-list entry '{self}' has no type: it matches a DNS, URI or IP name, and the CN \
             only of a certificate without those; write '{typed}{at}' (or 'cn:{name}{at}' for \
             the CN)"
        ))
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        match &self.anchor {
            Some(anchor) => write!(f, "@{anchor}"),
            // A name with an `@` needs the explicit "any anchor" to read back.
            None if self.name.to_string().contains('@') => f.write_str("@*"),
            None => Ok(()),
        }
    }
}

/// The result of a successful verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPeer {
    /// The leaf's Ed25519 public key: the handshake checks the peer's
    /// signatures with it.
    pub public_key: [u8; 32],
    /// Who the peer is.
    pub identity: PeerIdentity,
}

/// A SHA-256 public-key pin: the hash of a certificate's DER-encoded
/// `SubjectPublicKeyInfo`, as in HPKP (RFC 7469) and curl's `--pinnedpubkey`.
///
/// A pin names a key, not a certificate: it survives renewal of a certificate
/// for the same key (`sc-ca renew` without `--rekey`).
///
/// Written as `sha256:<64 hex digits>` ([`Display`](fmt::Display)); parsed from
/// that or from HPKP's `sha256//<base64>` ([`FromStr`](std::str::FromStr)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPin(pub [u8; 32]);

impl KeyPin {
    /// The pin of an Ed25519 public key: SHA-256 of its RFC 8410
    /// `SubjectPublicKeyInfo` DER, so `KeyPin::of_key(&key)` equals
    /// [`KeyPin::of_cert`] of any certificate for that key.
    pub fn of_key(public_key: &[u8; 32]) -> Self {
        Self::of_spki_der(&ed25519_spki_der(public_key))
    }

    /// SHA-256 of a DER `SubjectPublicKeyInfo`.
    pub(crate) fn of_spki_der(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }
}

/// The DER `SubjectPublicKeyInfo` of an Ed25519 key (44 bytes).
pub(crate) fn ed25519_spki_der(public_key: &[u8; 32]) -> Vec<u8> {
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: ALGORITHM_OID,
            parameters: None,
        },
        subject_public_key: BitStringRef::from_bytes(public_key)
            .expect("a 32-byte BIT STRING is always encodable"),
    };
    spki.to_der()
        .expect("an Ed25519 SubjectPublicKeyInfo (44 bytes) is always encodable")
}

impl fmt::Display for KeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", Hex(&self.0))
    }
}

impl fmt::Debug for KeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPin({self})")
    }
}
