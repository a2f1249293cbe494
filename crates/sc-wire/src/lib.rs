//! The Sovereign-Chain wire format.
//!
//! This crate knows how every byte on the wire is laid out and nothing else:
//! no cryptography, no I/O. It has
//!
//! * [`Codec`] and the bounded [`Reader`] every decoder is written against;
//! * the thirteen [handshake messages](messages) of the protocol, one per step
//!   (and the four whose body version 2 changes);
//! * [records](record): the outer header, the inner plaintext of sealed
//!   records, alerts, and a [`Deframer`] that splits a byte stream into records;
//! * [what the first bytes of a connection are](first) (a ClientHello and its
//!   route name, or not), for a relay and a server deciding before any
//!   cryptography.
//!
//! Decoding is strict: trailing bytes, unknown types, lengths beyond a field's
//! maximum and short input are all typed [`InvalidMessage`] errors, and no input
//! makes a decoder panic (property-tested). SPEC.md gives the byte layout of
//! every field.
//!
//! ```
//! use sc_wire::{Codec, HandshakeMessage, Mac};
//!
//! let msg = HandshakeMessage::SecureAck(Mac::from([7u8; 32]));
//! let bytes = msg.encoded();
//! assert_eq!(&bytes[..4], &[13, 0, 0, 32]); // type = step 13, u24 length
//! assert_eq!(HandshakeMessage::decode(&bytes), Ok(msg));
//! assert!(HandshakeMessage::decode(&bytes[..10]).is_err());
//! ```

#![forbid(unsafe_code)]

mod codec;
mod error;
pub mod first;
pub mod messages;
pub mod record;
pub mod rekey;
pub mod streams;

pub use codec::{Codec, LengthWidth, Reader};
pub use error::InvalidMessage;
pub use messages::{
    CertChain, CertificateBytes, CipherSuite, ClientCertKind, ClientCertRequest,
    ClientCertRequestV2, ClientCertSend, ClientHello, Cookie, DistinguishedName, HandshakeMessage,
    HandshakeType, Mac, MlKemCiphertext, MlKemEncapsulationKey, OrderSeed, ProtocolVersion, Random,
    RouteName, SeedCode, SeedCodeSecret, ServerHello, ServerHelloV2, Signature, X25519Public,
};
pub use record::{Alert, AlertCode, Deframer, InnerType, RawRecord, RecordHeader, RecordKind};
