//! The Sovereign-Chain handshake: thirteen steps, sans-I/O.
//!
//! [`ClientHandshake`] and [`ServerHandshake`] are state machines. They take
//! the handshake messages of one record at a time (with the protection level
//! the record arrived under), the current time and an RNG, and return
//! [`Action`]s: records to send, record keys to install, and completion. They
//! never touch a socket, a clock or the environment; the record layer
//! (`sc-session`) seals and opens what they produce.
//!
//! ```text
//!  client                                              server
//!  [1 ClientHello]                      ──plain──▶
//!                                       ◀──plain──   [2 ServerHello]
//!                                       ◀──hs─────   [3 ServerCertSend, 4 ClientCertRequest]
//!  [5 ClientCertSend]                   ──hs─────▶
//!                                       ◀──hs─────   [6 SeedCode, 7 KeyExchange1 / 9 KeyConfirm1]
//!  [8 KeyExchange2 / 10 KeyConfirm2,
//!   11 ClientAuth] + application data   ──hs─────▶
//!                                       ◀──hs─────   [12 ServerAuth]
//!                                       ◀──app────   [13 SecureAck] + application data
//! ```
//!
//! Steps 7–10 run in one of 24 orders chosen by the order seed of step 6; each
//! side's two messages share one encrypted record, so the order does not show
//! on the wire. Both sides absorb all four into the transcript in that order
//! and sign it at steps 11 and 12. SPEC.md gives every byte.
//!
//! Two protocol versions are spoken, negotiated in the handshake itself
//! (SPEC §16.1): a client offers version 2 as the capability `0xfe04` in a
//! ClientHello that stays version 1's, and a server that speaks it answers
//! with a version 2 ServerHello. In version 2 the ServerHello encapsulates
//! to the client's ML-KEM key (the handshake secret is hybrid from flight 2
//! on), step 4 carries the server's signature over the transcript through
//! step 3 (the client checks it before it sends its certificate), step 7 is
//! a fresh ML-KEM key of the server and step 9 a MAC. A client refuses a
//! version 1 server unless `with_min_version(1)` (a fallback would give its
//! certificate to an active attacker); a server accepts version 1 clients
//! unless `with_min_version(2)`. [`HandshakeSummary::version`] says which
//! ran.
//!
//! A complete handshake between an in-memory client and server:
//!
//! ```
//! # use std::sync::Arc;
//! # use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
//! # use sc_handshake::*;
//! # use sc_pki::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = ChaCha20Rng::from_seed([7; 32]);
//! let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
//! let validity = Validity::days_from(now, 30);
//!
//! // A CA, a server certificate for "db.internal" and a client certificate.
//! let ca_key = KeyPair::generate(&mut rng);
//! let ca_cert = issue_root(&ca_key, "Test CA", validity, &mut rng)?;
//! let ca = Issuer { cert: &ca_cert, key: &ca_key };
//! let mut leaf = |spec: LeafSpec, rng: &mut ChaCha20Rng| -> Result<Arc<Credential>, PkiError> {
//!     let key = KeyPair::generate(rng);
//!     let cert = issue_leaf(&ca, &key.public_key(), &spec, validity, rng)?;
//!     Ok(Arc::new(Credential::new(vec![cert], key)?))
//! };
//! let server_cred = leaf(LeafSpec::server("db.internal"), &mut rng)?;
//! let client_cred = leaf(LeafSpec::client("app-1"), &mut rng)?;
//! let anchors = || TrustAnchors::from_der(&[ca_cert.clone()]);
//!
//! let client_config = Arc::new(
//!     ClientConfig::builder()
//!         .with_server_verifier(Arc::new(WebPkiServerVerifier::new(anchors()?)))
//!         .with_credential(client_cred)
//!         .build(),
//! );
//! let server_config = Arc::new(
//!     ServerConfig::builder()
//!         .with_client_verifier(Arc::new(WebPkiClientVerifier::new(anchors()?)))
//!         .with_credential(server_cred)
//!         .build(),
//! );
//!
//! let name = ServerName::try_from("db.internal")?;
//! let (mut client, mut to_server) = ClientHandshake::start(client_config, name, None, &mut rng)?;
//! let mut server = ServerHandshake::new(server_config);
//! // Deliver each record to the other side until neither has anything to send.
//! let mut to_client = Vec::new();
//! while !(to_server.is_empty() && to_client.is_empty()) {
//!     for action in std::mem::take(&mut to_server) {
//!         if let Action::Send { level, messages } = action {
//!             to_client.extend(server.handle(level, &messages, now, &mut rng)?);
//!         }
//!     }
//!     for action in std::mem::take(&mut to_client) {
//!         if let Action::Send { level, messages } = action {
//!             to_server.extend(client.handle(level, &messages, now, &mut rng)?);
//!         }
//!     }
//! }
//! assert!(client.is_complete() && server.is_complete());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod client;
mod config;
pub mod cookie;
pub mod crypto;
mod error;
mod flight;
mod order;
pub mod schedule;
mod server;

pub use client::ClientHandshake;
pub use config::{
    ClientConfig, ClientIdentity, ClientReady, ConfigBuilder, ConfigError, ServerConfig,
    ServerReady, WantsClientIdentity, WantsServerCredential, WantsVerifier,
};
#[cfg(feature = "libcrux")]
pub use crypto::LIBCRUX;
#[cfg(feature = "ring")]
pub use crypto::RING;
pub use crypto::{default_provider, CryptoProvider, Secret, RUSTCRYPTO};
pub use error::{cert_alert, Error, PeerIncompatible, PeerMisbehaved};
pub use order::{StepOrder, ORDER_COUNT};
pub use schedule::KeyLog;
pub use server::ServerHandshake;

use std::sync::Arc;

use sc_pki::{Credential, PeerIdentity};
use sc_wire::{CipherSuite, ProtocolVersion, RouteName};

/// The protection a record is sent under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// No protection: steps 1 and 2.
    Plaintext,
    /// The handshake chains (version 1: from the X25519 secret; version 2:
    /// from it and step 2's ML-KEM-768 secret): steps 3–12.
    Handshake,
    /// The final record chains (hybrid secret salted with the seed code):
    /// step 13 and all application data.
    Application,
}

/// What the record layer must do, in the order given.
#[derive(Debug)]
pub enum Action {
    /// Send `messages` (encoded handshake messages) as one record under `level`.
    Send {
        /// The protection to seal the record under.
        level: Level,
        /// The encoded handshake messages of the record (zeroized on drop:
        /// step 6 carries the seed code).
        messages: zeroize::Zeroizing<Vec<u8>>,
    },
    /// Open the peer's records from now on with the chain starting at `chain0`.
    SetReadKey {
        /// The level the chain protects.
        level: Level,
        /// The AEAD negotiated.
        suite: CipherSuite,
        /// The first chain key.
        chain0: Secret,
    },
    /// Seal our records from now on with the chain starting at `chain0`.
    SetWriteKey {
        /// The level the chain protects.
        level: Level,
        /// The AEAD negotiated.
        suite: CipherSuite,
        /// The first chain key.
        chain0: Secret,
    },
    /// Keep these for re-keying (SPEC §15.1): only in a session that agreed
    /// on it, just before [`Action::Complete`].
    KeepForRekey(Box<RekeyKeys>),
    /// The handshake is complete.
    Complete(Box<HandshakeSummary>),
}

/// What a session that agreed on re-keying keeps from its handshake (SPEC
/// §15.1): the first epoch secret, its own identity key to sign re-keys
/// with, and the peer's identity public key to check them with.
///
/// `Debug` shows neither the secret nor the key.
pub struct RekeyKeys {
    /// `E₀ = Expand-Label(MS, "epoch", th_11)`.
    pub epoch0: Secret,
    /// This side's identity: the certificate key of the handshake (an
    /// anonymous client's per-connection key).
    pub identity: Arc<Credential>,
    /// The peer's identity public key (the leaf key the handshake verified).
    pub peer_key: [u8; 32],
}

impl core::fmt::Debug for RekeyKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RekeyKeys").finish_non_exhaustive()
    }
}

/// What a completed handshake established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeSummary {
    /// The protocol version the handshake ran (SPEC §16.1).
    pub version: ProtocolVersion,
    /// The AEAD of the records.
    pub suite: CipherSuite,
    /// The order steps 7–10 ran in.
    pub order: StepOrder,
    /// Who the peer proved to be.
    pub peer: PeerIdentity,
    /// The route name the client sent, if any.
    pub route: Option<RouteName>,
    /// The transcript hash through step 12: the same on both sides, and
    /// different for every session.
    pub session_hash: [u8; 32],
    /// Whether the session multiplexes streams (SPEC §14): the client
    /// offered it and the server took it up.
    pub streams: bool,
    /// Whether the session re-keys (SPEC §15): the client offered it and
    /// the server took it up.
    pub rekey: bool,
}
