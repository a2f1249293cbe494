//! The thirteen handshake messages.
//!
//! Every message travels as `type (u8) || length (u24) || body`; the type
//! number is the message's step number (1–13). Fixed-size fields have no
//! prefix; every variable field has a length prefix and a maximum.
//!
//! Protocol version 2 (SPEC §16) changes the body of four messages, not
//! their types: ServerHello (2), ClientCertRequest (4), KeyExchange1 (7)
//! and KeyConfirm1 (9). A ServerHello says its own version in its first
//! field, and is decoded in that version's layout; the other three are
//! decoded in the layout of the version the handshake runs
//! ([`HandshakeMessage::read_for`]). [`Codec::read`] decodes version 1's.

use core::fmt;

use zeroize::Zeroizing;

use crate::codec::{put_bytes, put_u24, wire_enum, Codec, LengthWidth, Reader};
use crate::error::InvalidMessage;

/// Length of an X25519 public key.
pub const X25519_LEN: usize = 32;
/// Length of an ML-KEM-768 encapsulation key (FIPS 203).
pub const MLKEM768_EK_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext (FIPS 203).
pub const MLKEM768_CT_LEN: usize = 1088;
/// Length of a hello random.
pub const RANDOM_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a MAC (HMAC-SHA256) and of a transcript hash (SHA-256).
pub const MAC_LEN: usize = 32;
/// Length of the seed code (step 6).
pub const SEED_CODE_LEN: usize = 64;
/// Length of the order seed (step 6).
pub const ORDER_SEED_LEN: usize = 32;
/// Length of the client certificate hash in step 6.
pub const CERT_HASH_LEN: usize = 32;

/// Most cipher suites a ClientHello may offer.
pub const MAX_SUITES: usize = 8;
/// Longest route name.
pub const MAX_ROUTE_LEN: usize = 255;
/// Most certificates in a chain.
pub const MAX_CHAIN_CERTS: usize = 8;
/// Longest DER certificate.
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// Largest total of the certificates in one chain.
pub const MAX_CHAIN_BYTES: usize = 32 * 1024;
/// Most CA names in a ClientCertRequest.
pub const MAX_CA_NAMES: usize = 16;
/// Longest DER-encoded CA name.
pub const MAX_CA_NAME_LEN: usize = 1024;
/// Length of a handshake message header (type and u24 length).
pub const HANDSHAKE_HEADER_LEN: usize = 4;
/// Largest body any handshake message can have (a version 2
/// ClientCertRequest with every CA name at its maximum); the header's length
/// is checked against the message type's own maximum.
pub const MAX_HANDSHAKE_BODY: usize = MAX_CLIENT_CERT_REQUEST_V1 + SIGNATURE_LEN;
/// Largest body of a version 1 ClientCertRequest (every CA name at its
/// maximum).
const MAX_CLIENT_CERT_REQUEST_V1: usize = 2 + MAX_CA_NAMES * (2 + MAX_CA_NAME_LEN);

wire_enum! {
    /// The protocol version, carried in both hellos.
    ProtocolVersion(u16) {
        /// Sovereign-Chain version 1 (`0x5c01`). Also the version field of
        /// every ClientHello: a client that speaks version 2 offers it with
        /// [`CipherSuite::VERSION_2`] (SPEC §16.1).
        V1 = 0x5c01 => "SC/1",
        /// Sovereign-Chain version 2 (`0x5c02`, SPEC §16): the server proves
        /// its key in step 4, and an ML-KEM-768 secret protects the
        /// handshake from flight 2 on.
        V2 = 0x5c02 => "SC/2",
    }
}

wire_enum! {
    /// An AEAD for the records. The rest of the suite (X25519 + ML-KEM-768,
    /// Ed25519, HKDF-SHA256) is fixed by the protocol version.
    CipherSuite(u16) {
        /// ChaCha20-Poly1305 (RFC 8439).
        CHACHA20_POLY1305 = 0x0001 => "ChaCha20-Poly1305",
        /// AES-256-GCM (NIST SP 800-38D).
        AES_256_GCM = 0x0002 => "AES-256-GCM",
        /// Not an AEAD: the client offers to multiplex streams (SPEC §14).
        /// Capabilities ride in the offered suites, as TLS's signalling
        /// suite values do: a server that does not know one ignores it.
        STREAMS = 0xfe01 => "streams (capability)",
        /// Not an AEAD: the client offers in-session re-keying (SPEC §15).
        REKEY = 0xfe02 => "re-keying (capability)",
        /// Not an AEAD: the client can answer a HelloRetry with a
        /// CookieEcho (SPEC §4.5).
        COOKIE = 0xfe03 => "cookie retry (capability)",
        /// Not an AEAD: the client speaks protocol version 2 (SPEC §16.1);
        /// a server that does too answers with a version 2 ServerHello.
        VERSION_2 = 0xfe04 => "version 2 (capability)",
    }
}

impl CipherSuite {
    /// Whether this value offers a capability rather than naming an AEAD
    /// (`0xfe00`–`0xfeff`); a server never chooses one.
    pub fn is_capability(self) -> bool {
        self.0 & 0xff00 == 0xfe00
    }
}

wire_enum! {
    /// The handshake message type: the message's step number (1–13), or
    /// one of the two messages of the cookie retry, which are not steps.
    HandshakeType(u8) {
        /// Step 1.
        CLIENT_HELLO = 1 => "ClientHello",
        /// Step 2.
        SERVER_HELLO = 2 => "ServerHello",
        /// Step 3.
        SERVER_CERT_SEND = 3 => "ServerCertSend",
        /// Step 4.
        CLIENT_CERT_REQUEST = 4 => "ClientCertRequest",
        /// Step 5.
        CLIENT_CERT_SEND = 5 => "ClientCertSend",
        /// Step 6.
        SEED_CODE = 6 => "SeedCode",
        /// Step 7.
        KEY_EXCHANGE_1 = 7 => "KeyExchange1",
        /// Step 8.
        KEY_EXCHANGE_2 = 8 => "KeyExchange2",
        /// Step 9.
        KEY_CONFIRM_1 = 9 => "KeyConfirm1",
        /// Step 10.
        KEY_CONFIRM_2 = 10 => "KeyConfirm2",
        /// Step 11.
        CLIENT_AUTH = 11 => "ClientAuth",
        /// Step 12.
        SERVER_AUTH = 12 => "ServerAuth",
        /// Step 13.
        SECURE_ACK = 13 => "SecureAck",
        /// Not a step: a server under load asks for its cookie back
        /// (SPEC §4.5).
        HELLO_RETRY = 0x81 => "HelloRetry",
        /// Not a step: the client returns the cookie, before its
        /// ClientHello again.
        COOKIE_ECHO = 0x82 => "CookieEcho",
    }
}

impl HandshakeType {
    /// The step number (1–13); for the retry messages, their type.
    pub fn step(self) -> u8 {
        self.0
    }
}

/// The most bytes a cookie may have.
pub const MAX_COOKIE_LEN: usize = 64;

/// The opaque cookie of a HelloRetry and its CookieEcho (1–64 bytes). Only
/// the server that made it reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(Vec<u8>);

impl Cookie {
    /// Wraps a cookie, checking its length.
    pub fn new(bytes: Vec<u8>) -> Result<Self, InvalidMessage> {
        Self::check(&bytes)?;
        Ok(Self(bytes))
    }

    fn check(bytes: &[u8]) -> Result<(), InvalidMessage> {
        match bytes.len() {
            0 => Err(InvalidMessage::TooShort {
                what: "cookie",
                len: 0,
                min: 1,
            }),
            n if n > MAX_COOKIE_LEN => Err(InvalidMessage::TooLong {
                what: "cookie",
                len: n,
                max: MAX_COOKIE_LEN,
            }),
            _ => Ok(()),
        }
    }

    /// The cookie's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cookie({} bytes)", self.0.len())
    }
}

impl Codec for Cookie {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, LengthWidth::U8, &self.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let bytes = r.bytes(LengthWidth::U8, 1, MAX_COOKIE_LEN, "cookie")?;
        Ok(Self(bytes.to_vec()))
    }
}

wire_enum! {
    /// What kind of certificate a client presents in step 5.
    ClientCertKind(u8) {
        /// A chain issued by a CA the server trusts.
        CERTIFIED = 0 => "certified",
        /// A single self-signed certificate made for this connection.
        ANONYMOUS = 1 => "anonymous",
    }
}

/// Formats bytes as lowercase hex.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A public fixed-size byte string.
macro_rules! public_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(pub Box<[u8; $len]>);

        impl $name {
            /// The bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(v: [u8; $len]) -> Self {
                Self(Box::new(v))
            }
        }

        impl Codec for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0[..]);
            }

            fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
                let bytes = r.take($len, $what)?;
                let mut v = Box::new([0u8; $len]);
                v.copy_from_slice(bytes);
                Ok(Self(v))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if $len > 64 {
                    write!(f, "{}({:?}…)", stringify!($name), Hex(&self.0[..16]))
                } else {
                    write!(f, "{}({:?})", stringify!($name), Hex(&self.0[..]))
                }
            }
        }
    };
}

public_bytes!(
    /// A 32-byte hello random.
    Random, RANDOM_LEN, "random"
);
public_bytes!(
    /// An X25519 public key.
    X25519Public, X25519_LEN, "X25519 public key"
);
public_bytes!(
    /// An ML-KEM-768 encapsulation key.
    MlKemEncapsulationKey, MLKEM768_EK_LEN, "ML-KEM-768 encapsulation key"
);
public_bytes!(
    /// An ML-KEM-768 ciphertext.
    MlKemCiphertext, MLKEM768_CT_LEN, "ML-KEM-768 ciphertext"
);
public_bytes!(
    /// An Ed25519 signature.
    Signature, SIGNATURE_LEN, "signature"
);
public_bytes!(
    /// An HMAC-SHA256 tag.
    Mac, MAC_LEN, "MAC"
);

/// A secret fixed-size byte string: zeroized on drop, never printed.
macro_rules! secret_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Zeroizing<[u8; $len]>);

        impl $name {
            /// Wraps secret bytes.
            pub fn new(v: [u8; $len]) -> Self {
                Self(Zeroizing::new(v))
            }

            /// The secret bytes.
            pub fn expose(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl Codec for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0[..]);
            }

            fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
                let mut v = Zeroizing::new([0u8; $len]);
                v.copy_from_slice(r.take($len, $what)?);
                Ok(Self(v))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<secret>)", stringify!($name))
            }
        }
    };
}

secret_bytes!(
    /// The 64-byte seed code of step 6: salts both record chains.
    SeedCodeSecret, SEED_CODE_LEN, "seed code"
);
secret_bytes!(
    /// The 32-byte order seed of step 6: selects the order of steps 7–10.
    OrderSeed, ORDER_SEED_LEN, "order seed"
);

/// A route name: the relay's routing key, sent in plaintext like TLS SNI.
/// 1–255 printable ASCII characters (`!`..=`~`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RouteName(String);

impl RouteName {
    /// Checks and wraps a route name.
    pub fn new(name: &str) -> Result<Self, InvalidMessage> {
        Self::check(name.as_bytes())?;
        Ok(Self(name.to_owned()))
    }

    fn check(bytes: &[u8]) -> Result<(), InvalidMessage> {
        if bytes.is_empty() {
            return Err(InvalidMessage::TooShort {
                what: "route name",
                len: 0,
                min: 1,
            });
        }
        if bytes.len() > MAX_ROUTE_LEN {
            return Err(InvalidMessage::TooLong {
                what: "route name",
                len: bytes.len(),
                max: MAX_ROUTE_LEN,
            });
        }
        if !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(InvalidMessage::InvalidValue { what: "route name" });
        }
        Ok(())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One DER certificate (1–16 KiB). Its content is checked by the PKI layer,
/// not here.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateBytes(Vec<u8>);

impl CertificateBytes {
    /// Wraps a DER certificate, checking its length.
    pub fn new(der: Vec<u8>) -> Result<Self, InvalidMessage> {
        match der.len() {
            0 => Err(InvalidMessage::TooShort {
                what: "certificate",
                len: 0,
                min: 1,
            }),
            n if n > MAX_CERT_LEN => Err(InvalidMessage::TooLong {
                what: "certificate",
                len: n,
                max: MAX_CERT_LEN,
            }),
            _ => Ok(Self(der)),
        }
    }

    /// The DER bytes.
    pub fn as_der(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for CertificateBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({} bytes)", self.0.len())
    }
}

/// A certificate chain, leaf first: `count (u8, 1–8)`, then each certificate
/// as `length (u16, 1–16384) || DER`; at most 32 KiB of certificates in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertChain(Vec<CertificateBytes>);

impl CertChain {
    /// Checks the count and total size of a chain.
    pub fn new(certs: Vec<CertificateBytes>) -> Result<Self, InvalidMessage> {
        if certs.is_empty() {
            return Err(InvalidMessage::TooShort {
                what: "certificate chain",
                len: 0,
                min: 1,
            });
        }
        if certs.len() > MAX_CHAIN_CERTS {
            return Err(InvalidMessage::TooLong {
                what: "certificate chain",
                len: certs.len(),
                max: MAX_CHAIN_CERTS,
            });
        }
        let total: usize = certs.iter().map(|c| c.0.len()).sum();
        if total > MAX_CHAIN_BYTES {
            return Err(InvalidMessage::TooLong {
                what: "certificate chain bytes",
                len: total,
                max: MAX_CHAIN_BYTES,
            });
        }
        Ok(Self(certs))
    }

    /// The certificates, leaf first.
    pub fn certs(&self) -> &[CertificateBytes] {
        &self.0
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateBytes {
        // A chain has at least one certificate by construction.
        &self.0[0]
    }
}

impl Codec for CertChain {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.0.len() as u8);
        for c in &self.0 {
            put_bytes(out, LengthWidth::U16, &c.0);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let n = r.length(LengthWidth::U8, 1, MAX_CHAIN_CERTS, "certificate chain")?;
        let mut certs = Vec::with_capacity(n);
        for _ in 0..n {
            let der = r.bytes(LengthWidth::U16, 1, MAX_CERT_LEN, "certificate")?;
            certs.push(CertificateBytes(der.to_vec()));
        }
        Self::new(certs)
    }
}

/// A DER-encoded X.501 Name of a CA the server accepts (1–1024 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct DistinguishedName(Vec<u8>);

impl DistinguishedName {
    /// Wraps a DER name, checking its length.
    pub fn new(der: Vec<u8>) -> Result<Self, InvalidMessage> {
        match der.len() {
            0 => Err(InvalidMessage::TooShort {
                what: "CA name",
                len: 0,
                min: 1,
            }),
            n if n > MAX_CA_NAME_LEN => Err(InvalidMessage::TooLong {
                what: "CA name",
                len: n,
                max: MAX_CA_NAME_LEN,
            }),
            _ => Ok(Self(der)),
        }
    }

    /// The DER bytes.
    pub fn as_der(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DistinguishedName({:?})", Hex(&self.0))
    }
}

/// Step 1, client → server, in plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// Protocol version.
    pub version: ProtocolVersion,
    /// Client random.
    pub random: Random,
    /// Client's ephemeral X25519 public key.
    pub x25519: X25519Public,
    /// Client's ephemeral ML-KEM-768 encapsulation key (the server encapsulates to it in step 7).
    pub mlkem: MlKemEncapsulationKey,
    /// Offered AEADs, most preferred first: `count (u8, 1–8) || u16 each`.
    /// Unknown values are allowed (and ignored by the server).
    pub suites: Vec<CipherSuite>,
    /// The route name for a relay: `length (u8, 0 = none) || ASCII`.
    pub route: Option<RouteName>,
}

impl ClientHello {
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.0.to_be_bytes());
        self.random.encode(out);
        self.x25519.encode(out);
        self.mlkem.encode(out);
        out.push(self.suites.len() as u8);
        for s in &self.suites {
            out.extend_from_slice(&s.0.to_be_bytes());
        }
        match &self.route {
            Some(r) => put_bytes(out, LengthWidth::U8, r.0.as_bytes()),
            None => out.push(0),
        }
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let version = ProtocolVersion(r.u16("version")?);
        let random = Random::read(r)?;
        let x25519 = X25519Public::read(r)?;
        let mlkem = MlKemEncapsulationKey::read(r)?;
        let n = r.length(LengthWidth::U8, 1, MAX_SUITES, "cipher suites")?;
        let mut suites = Vec::with_capacity(n);
        for _ in 0..n {
            suites.push(CipherSuite(r.u16("cipher suite")?));
        }
        let route = match r.bytes(LengthWidth::U8, 0, MAX_ROUTE_LEN, "route name")? {
            [] => None,
            name => {
                RouteName::check(name)?;
                // check() admits only ASCII, which is valid UTF-8.
                let name = String::from_utf8(name.to_vec())
                    .map_err(|_| InvalidMessage::InvalidValue { what: "route name" })?;
                Some(RouteName(name))
            }
        };
        Ok(Self {
            version,
            random,
            x25519,
            mlkem,
            suites,
            route,
        })
    }
}

/// Step 2, server → client, in plaintext: the version 1 layout.
///
/// A ServerHello is decoded by its version field: `0x5c02` is
/// [`ServerHelloV2`]'s layout, every other value this one's (the client then
/// refuses the version). So `version` is never [`ProtocolVersion::V2`] here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHello {
    /// Protocol version: [`ProtocolVersion::V1`], or one the client will
    /// refuse; never [`ProtocolVersion::V2`].
    pub version: ProtocolVersion,
    /// Server random.
    pub random: Random,
    /// Server's ephemeral X25519 public key.
    pub x25519: X25519Public,
    /// Server's ephemeral ML-KEM-768 encapsulation key (the client encapsulates to it in step 8).
    pub mlkem: MlKemEncapsulationKey,
    /// The AEAD the server chose from the client's offer.
    pub suite: CipherSuite,
}

impl ServerHello {
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.0.to_be_bytes());
        self.random.encode(out);
        self.x25519.encode(out);
        self.mlkem.encode(out);
        out.extend_from_slice(&self.suite.0.to_be_bytes());
    }

    /// The body after its version field, which the caller has read.
    fn read_rest(version: ProtocolVersion, r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            version,
            random: Random::read(r)?,
            x25519: X25519Public::read(r)?,
            mlkem: MlKemEncapsulationKey::read(r)?,
            suite: CipherSuite(r.u16("cipher suite")?),
        })
    }
}

/// Step 2 of version 2, server → client, in plaintext: `version (u16 =
/// 0x5c02) || random || x25519 || mlkem_ct || suite` (1,156 bytes). The
/// server encapsulates to the ClientHello's ML-KEM-768 key here, so the
/// handshake secret is hybrid from flight 2 on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHelloV2 {
    /// Server random.
    pub random: Random,
    /// Server's ephemeral X25519 public key.
    pub x25519: X25519Public,
    /// ML-KEM-768 ciphertext to the ClientHello's encapsulation key.
    pub mlkem_ct: MlKemCiphertext,
    /// The AEAD the server chose from the client's offer.
    pub suite: CipherSuite,
}

impl ServerHelloV2 {
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&ProtocolVersion::V2.0.to_be_bytes());
        self.random.encode(out);
        self.x25519.encode(out);
        self.mlkem_ct.encode(out);
        out.extend_from_slice(&self.suite.0.to_be_bytes());
    }

    /// The body after its version field (`0x5c02`), which the caller has read.
    fn read_rest(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            random: Random::read(r)?,
            x25519: X25519Public::read(r)?,
            mlkem_ct: MlKemCiphertext::read(r)?,
            suite: CipherSuite(r.u16("cipher suite")?),
        })
    }
}

/// Step 4, server → client: which client certificates the server accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertRequest {
    /// Whether an anonymous (self-signed, per-connection) certificate is acceptable.
    /// On the wire: a flags byte, bit 0; bits 3–7 must be zero.
    pub anonymous_allowed: bool,
    /// The server multiplexes streams in this session (flags bit 1); only
    /// when the client offered [`CipherSuite::STREAMS`].
    pub streams: bool,
    /// The session re-keys (flags bit 2, SPEC §15); only when the client
    /// offered [`CipherSuite::REKEY`].
    pub rekey: bool,
    /// Subject names of the CAs the server trusts: `count (u8, 0–16)`, each
    /// `length (u16, 1–1024) || DER`.
    pub ca_names: Vec<DistinguishedName>,
}

impl ClientCertRequest {
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(
            u8::from(self.anonymous_allowed)
                | u8::from(self.streams) << 1
                | u8::from(self.rekey) << 2,
        );
        out.push(self.ca_names.len() as u8);
        for n in &self.ca_names {
            put_bytes(out, LengthWidth::U16, &n.0);
        }
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let flags = r.u8("flags")?;
        if flags & !0b111 != 0 {
            return Err(InvalidMessage::InvalidValue {
                what: "ClientCertRequest flags",
            });
        }
        let n = r.length(LengthWidth::U8, 0, MAX_CA_NAMES, "CA names")?;
        let mut ca_names = Vec::with_capacity(n);
        for _ in 0..n {
            let der = r.bytes(LengthWidth::U16, 1, MAX_CA_NAME_LEN, "CA name")?;
            ca_names.push(DistinguishedName(der.to_vec()));
        }
        Ok(Self {
            anonymous_allowed: flags & 1 == 1,
            streams: flags & 0b10 != 0,
            rekey: flags & 0b100 != 0,
            ca_names,
        })
    }
}

/// Step 4 of version 2: the request of version 1, then the server's
/// Ed25519 signature over the transcript through step 3 (SPEC §16.2), which
/// the client checks before it sends its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertRequestV2 {
    /// The request, as in version 1.
    pub request: ClientCertRequest,
    /// `Sign(server leaf key, context₄ || 0x00 || th_3)`.
    pub signature: Signature,
}

impl ClientCertRequestV2 {
    fn encode_body(&self, out: &mut Vec<u8>) {
        self.request.encode_body(out);
        self.signature.encode(out);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            request: ClientCertRequest::read_body(r)?,
            signature: Signature::read(r)?,
        })
    }
}

/// Step 5, client → server: the client's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertSend {
    /// Certified chain or anonymous certificate.
    pub kind: ClientCertKind,
    /// The chain; exactly one certificate when anonymous.
    pub chain: CertChain,
}

impl ClientCertSend {
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.kind.0);
        self.chain.encode(out);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let kind = ClientCertKind(r.u8("client certificate kind")?);
        if !kind.is_known() {
            return Err(InvalidMessage::UnknownType {
                what: "client certificate kind",
                value: kind.0.into(),
            });
        }
        let chain = CertChain::read(r)?;
        if kind == ClientCertKind::ANONYMOUS && chain.0.len() != 1 {
            return Err(InvalidMessage::InvalidValue {
                what: "anonymous certificate chain",
            });
        }
        Ok(Self { kind, chain })
    }
}

/// Step 6, server → client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedCode {
    /// 64 random bytes that salt both record chains.
    pub code: SeedCodeSecret,
    /// 32 random bytes that select the order of steps 7–10.
    pub order_seed: OrderSeed,
    /// SHA-256 of the client's leaf certificate from step 5 (binding).
    pub client_cert_hash: [u8; CERT_HASH_LEN],
}

impl SeedCode {
    fn encode_body(&self, out: &mut Vec<u8>) {
        self.code.encode(out);
        self.order_seed.encode(out);
        out.extend_from_slice(&self.client_cert_hash);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            code: SeedCodeSecret::read(r)?,
            order_seed: OrderSeed::read(r)?,
            client_cert_hash: r.array("client certificate hash")?,
        })
    }
}

/// One handshake message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeMessage {
    /// Step 1.
    ClientHello(ClientHello),
    /// Step 2 (version 1's layout).
    ServerHello(ServerHello),
    /// Step 2 of version 2: a ciphertext in place of the encapsulation key.
    ServerHelloV2(ServerHelloV2),
    /// Step 3: the server's certificate chain.
    ServerCertSend(CertChain),
    /// Step 4 (version 1).
    ClientCertRequest(ClientCertRequest),
    /// Step 4 of version 2: signed by the server over the transcript through
    /// step 3.
    ClientCertRequestV2(ClientCertRequestV2),
    /// Step 5.
    ClientCertSend(ClientCertSend),
    /// Step 6.
    SeedCode(SeedCode),
    /// Step 7 (version 1): ML-KEM-768 ciphertext to the client's step-1 key.
    KeyExchange1(MlKemCiphertext),
    /// Step 7 of version 2: the server's fresh ML-KEM-768 encapsulation key.
    KeyExchange1V2(MlKemEncapsulationKey),
    /// Step 8: ML-KEM-768 ciphertext to the server's key (version 1: of
    /// step 2; version 2: of step 7).
    KeyExchange2(MlKemCiphertext),
    /// Step 9 (version 1): the server's signature over the transcript
    /// through step 6.
    KeyConfirm1(Signature),
    /// Step 9 of version 2: the server's MAC over the transcript through
    /// step 6.
    KeyConfirm1V2(Mac),
    /// Step 10: the client's MAC over the transcript through step 6.
    KeyConfirm2(Mac),
    /// Step 11: the client's signature over the transcript through step 10.
    ClientAuth(Signature),
    /// Step 12: the server's signature over the transcript through step 11.
    ServerAuth(Signature),
    /// Step 13: the server's MAC over the transcript through step 12,
    /// sent under the final record keys.
    SecureAck(Mac),
    /// Not a step: the server's answer to a ClientHello under load (SPEC
    /// §4.5), in place of the ServerHello.
    HelloRetry(Cookie),
    /// Not a step: the client's cookie, before its ClientHello again.
    CookieEcho(Cookie),
}

impl HandshakeMessage {
    /// The message's type (its step number).
    pub fn typ(&self) -> HandshakeType {
        match self {
            Self::ClientHello(_) => HandshakeType::CLIENT_HELLO,
            Self::ServerHello(_) | Self::ServerHelloV2(_) => HandshakeType::SERVER_HELLO,
            Self::ServerCertSend(_) => HandshakeType::SERVER_CERT_SEND,
            Self::ClientCertRequest(_) | Self::ClientCertRequestV2(_) => {
                HandshakeType::CLIENT_CERT_REQUEST
            }
            Self::ClientCertSend(_) => HandshakeType::CLIENT_CERT_SEND,
            Self::SeedCode(_) => HandshakeType::SEED_CODE,
            Self::KeyExchange1(_) | Self::KeyExchange1V2(_) => HandshakeType::KEY_EXCHANGE_1,
            Self::KeyExchange2(_) => HandshakeType::KEY_EXCHANGE_2,
            Self::KeyConfirm1(_) | Self::KeyConfirm1V2(_) => HandshakeType::KEY_CONFIRM_1,
            Self::KeyConfirm2(_) => HandshakeType::KEY_CONFIRM_2,
            Self::ClientAuth(_) => HandshakeType::CLIENT_AUTH,
            Self::ServerAuth(_) => HandshakeType::SERVER_AUTH,
            Self::SecureAck(_) => HandshakeType::SECURE_ACK,
            Self::HelloRetry(_) => HandshakeType::HELLO_RETRY,
            Self::CookieEcho(_) => HandshakeType::COOKIE_ECHO,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Self::ClientHello(m) => m.encode_body(out),
            Self::ServerHello(m) => m.encode_body(out),
            Self::ServerHelloV2(m) => m.encode_body(out),
            Self::ServerCertSend(c) => c.encode(out),
            Self::ClientCertRequest(m) => m.encode_body(out),
            Self::ClientCertRequestV2(m) => m.encode_body(out),
            Self::ClientCertSend(m) => m.encode_body(out),
            Self::SeedCode(m) => m.encode_body(out),
            Self::KeyExchange1(ct) | Self::KeyExchange2(ct) => ct.encode(out),
            Self::KeyExchange1V2(ek) => ek.encode(out),
            Self::KeyConfirm1(s) | Self::ClientAuth(s) | Self::ServerAuth(s) => s.encode(out),
            Self::KeyConfirm2(m) | Self::KeyConfirm1V2(m) | Self::SecureAck(m) => m.encode(out),
            Self::HelloRetry(c) | Self::CookieEcho(c) => c.encode(out),
        }
    }

    /// The largest body a message of type `typ` can have in version 1.
    pub fn max_body_len(typ: HandshakeType) -> usize {
        Self::max_body_len_for(ProtocolVersion::V1, typ)
    }

    /// The largest body a message of type `typ` can have in a handshake of
    /// `version` (any version but 2 reads as version 1). A ServerHello's
    /// maximum is that of both layouts, as its version is in its body.
    pub fn max_body_len_for(version: ProtocolVersion, typ: HandshakeType) -> usize {
        let v2 = version == ProtocolVersion::V2;
        match typ {
            HandshakeType::CLIENT_HELLO => {
                2 + RANDOM_LEN
                    + X25519_LEN
                    + MLKEM768_EK_LEN
                    + 1
                    + 2 * MAX_SUITES
                    + 1
                    + MAX_ROUTE_LEN
            }
            // Version 1's layout is the larger: an encapsulation key, not a
            // ciphertext.
            HandshakeType::SERVER_HELLO => 2 + RANDOM_LEN + X25519_LEN + MLKEM768_EK_LEN + 2,
            HandshakeType::SERVER_CERT_SEND => 1 + MAX_CHAIN_CERTS * 2 + MAX_CHAIN_BYTES,
            HandshakeType::CLIENT_CERT_REQUEST if v2 => MAX_HANDSHAKE_BODY,
            HandshakeType::CLIENT_CERT_REQUEST => MAX_CLIENT_CERT_REQUEST_V1,
            HandshakeType::CLIENT_CERT_SEND => 2 + MAX_CHAIN_CERTS * 2 + MAX_CHAIN_BYTES,
            HandshakeType::SEED_CODE => SEED_CODE_LEN + ORDER_SEED_LEN + CERT_HASH_LEN,
            HandshakeType::KEY_EXCHANGE_1 if v2 => MLKEM768_EK_LEN,
            HandshakeType::KEY_EXCHANGE_1 | HandshakeType::KEY_EXCHANGE_2 => MLKEM768_CT_LEN,
            HandshakeType::KEY_CONFIRM_1 if v2 => MAC_LEN,
            HandshakeType::KEY_CONFIRM_1
            | HandshakeType::CLIENT_AUTH
            | HandshakeType::SERVER_AUTH => SIGNATURE_LEN,
            HandshakeType::KEY_CONFIRM_2 | HandshakeType::SECURE_ACK => MAC_LEN,
            HandshakeType::HELLO_RETRY | HandshakeType::COOKIE_ECHO => 1 + MAX_COOKIE_LEN,
            _ => 0,
        }
    }

    /// Reads just the header of the next message: its type and body length,
    /// both checked (against version 1's maxima).
    pub fn read_header(r: &mut Reader<'_>) -> Result<(HandshakeType, usize), InvalidMessage> {
        Self::read_header_for(ProtocolVersion::V1, r)
    }

    /// Reads just the header of the next message of a handshake of
    /// `version`: its type and body length, both checked.
    pub fn read_header_for(
        version: ProtocolVersion,
        r: &mut Reader<'_>,
    ) -> Result<(HandshakeType, usize), InvalidMessage> {
        let typ = HandshakeType(r.u8("handshake type")?);
        if !typ.is_known() {
            return Err(InvalidMessage::UnknownType {
                what: "handshake type",
                value: typ.0.into(),
            });
        }
        let len = r.length(
            LengthWidth::U24,
            0,
            Self::max_body_len_for(version, typ),
            "handshake message",
        )?;
        Ok((typ, len))
    }

    /// Reads one message of a handshake of `version`: steps 4, 7 and 9 in
    /// that version's layout (any version but 2 reads as version 1). A
    /// ServerHello is read in the layout its own version field names, since
    /// the client learns the version from it.
    pub fn read_for(version: ProtocolVersion, r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let v2 = version == ProtocolVersion::V2;
        let (typ, len) = Self::read_header_for(version, r)?;
        let mut body = r.sub(len, "handshake message")?;
        let msg = match typ {
            HandshakeType::CLIENT_HELLO => Self::ClientHello(ClientHello::read_body(&mut body)?),
            HandshakeType::SERVER_HELLO => match ProtocolVersion(body.u16("version")?) {
                ProtocolVersion::V2 => Self::ServerHelloV2(ServerHelloV2::read_rest(&mut body)?),
                other => Self::ServerHello(ServerHello::read_rest(other, &mut body)?),
            },
            HandshakeType::SERVER_CERT_SEND => Self::ServerCertSend(CertChain::read(&mut body)?),
            HandshakeType::CLIENT_CERT_REQUEST if v2 => {
                Self::ClientCertRequestV2(ClientCertRequestV2::read_body(&mut body)?)
            }
            HandshakeType::CLIENT_CERT_REQUEST => {
                Self::ClientCertRequest(ClientCertRequest::read_body(&mut body)?)
            }
            HandshakeType::CLIENT_CERT_SEND => {
                Self::ClientCertSend(ClientCertSend::read_body(&mut body)?)
            }
            HandshakeType::SEED_CODE => Self::SeedCode(SeedCode::read_body(&mut body)?),
            HandshakeType::KEY_EXCHANGE_1 if v2 => {
                Self::KeyExchange1V2(MlKemEncapsulationKey::read(&mut body)?)
            }
            HandshakeType::KEY_EXCHANGE_1 => Self::KeyExchange1(MlKemCiphertext::read(&mut body)?),
            HandshakeType::KEY_EXCHANGE_2 => Self::KeyExchange2(MlKemCiphertext::read(&mut body)?),
            HandshakeType::KEY_CONFIRM_1 if v2 => Self::KeyConfirm1V2(Mac::read(&mut body)?),
            HandshakeType::KEY_CONFIRM_1 => Self::KeyConfirm1(Signature::read(&mut body)?),
            HandshakeType::KEY_CONFIRM_2 => Self::KeyConfirm2(Mac::read(&mut body)?),
            HandshakeType::CLIENT_AUTH => Self::ClientAuth(Signature::read(&mut body)?),
            HandshakeType::SERVER_AUTH => Self::ServerAuth(Signature::read(&mut body)?),
            HandshakeType::SECURE_ACK => Self::SecureAck(Mac::read(&mut body)?),
            HandshakeType::HELLO_RETRY => Self::HelloRetry(Cookie::read(&mut body)?),
            HandshakeType::COOKIE_ECHO => Self::CookieEcho(Cookie::read(&mut body)?),
            _ => {
                return Err(InvalidMessage::UnknownType {
                    what: "handshake type",
                    value: typ.0.into(),
                })
            }
        };
        body.expect_empty(typ.name().unwrap_or("handshake message"))?;
        Ok(msg)
    }

    /// Decodes one message of a handshake of `version` that must span all of
    /// `bytes` (see [`HandshakeMessage::read_for`]).
    pub fn decode_for(version: ProtocolVersion, bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let msg = Self::read_for(version, &mut r)?;
        r.expect_empty("message")?;
        Ok(msg)
    }
}

impl Codec for HandshakeMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.typ().0);
        let len_at = out.len();
        put_u24(out, 0);
        self.encode_body(out);
        let body_len = out.len() - len_at - 3;
        let b = (body_len as u32).to_be_bytes();
        out[len_at..len_at + 3].copy_from_slice(&b[1..]);
    }

    /// Reads a message in version 1's layouts (a ServerHello in the layout
    /// its version field names); [`HandshakeMessage::read_for`] reads those
    /// of another version.
    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Self::read_for(ProtocolVersion::V1, r)
    }
}
