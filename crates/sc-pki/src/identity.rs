//! Who a peer is: [`PeerIdentity`], [`VerifiedPeer`] and the key pin
//! [`KeyPin`].
//!
//! Plain values that import nothing of this crate but `util`, so that every
//! other module (the errors included) can name them. Reading a pin from a
//! certificate or from text can fail with a `PkiError`, which is why those
//! two constructors live in `pin.rs`, above `error.rs`.

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
}

impl fmt::Display for PeerIdentity {
    /// `anonymous:<first 16 hex digits of the fingerprint>` for an anonymous
    /// peer; else the first DNS name, else the first URI, else the first IP
    /// address, else the common name, else `sha256:<16 hex digits>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = Hex(&self.fingerprint[..8]);
        if self.anonymous {
            return write!(f, "anonymous:{short}");
        }
        if let Some(dns) = self.dns_names.first() {
            f.write_str(dns)
        } else if let Some(uri) = self.uris.first() {
            f.write_str(uri)
        } else if let Some(ip) = self.ip_addrs.first() {
            write!(f, "{ip}")
        } else if let Some(cn) = &self.common_name {
            f.write_str(cn)
        } else {
            write!(f, "sha256:{short}")
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
