//! Re-key messages (SPEC §15): the contents of the RekeyInit, RekeyReply
//! and RekeySwitch records of a session that agreed on re-keying.
//!
//! ```text
//! RekeyInit    epoch (u32, ≥ 1) || x25519 (32) || ML-KEM-768 key (1184) || signature (64)
//! RekeyReply   epoch (u32, ≥ 1) || x25519 (32) || ML-KEM-768 ciphertext (1088) || signature (64)
//! RekeySwitch  epoch (u32, ≥ 1)
//! ```
//!
//! The signature covers a context string naming the signer's role and the
//! message, a zero byte, the session hash and the message's other fields
//! ([`RekeyInit::signed`], [`RekeyReply::signed`]).

use crate::codec::{Codec, Reader};
use crate::error::InvalidMessage;
use crate::messages::{MlKemCiphertext, MlKemEncapsulationKey, Signature, X25519Public};

/// The context strings of the re-key signatures: protocol, version, the
/// signer's role and the message, as the handshake's (SPEC §5.5), so no
/// signature of one role or message stands in for another.
pub mod context {
    /// A client's RekeyInit.
    pub const CLIENT_INIT: &[u8] = b"Sovereign-Chain/1 client RekeyInit";
    /// A server's RekeyInit.
    pub const SERVER_INIT: &[u8] = b"Sovereign-Chain/1 server RekeyInit";
    /// A client's RekeyReply.
    pub const CLIENT_REPLY: &[u8] = b"Sovereign-Chain/1 client RekeyReply";
    /// A server's RekeyReply.
    pub const SERVER_REPLY: &[u8] = b"Sovereign-Chain/1 server RekeyReply";
}

/// Encoded length of a RekeyInit.
pub const INIT_LEN: usize = 4 + 32 + 1184 + 64;
/// Encoded length of a RekeyReply.
pub const REPLY_LEN: usize = 4 + 32 + 1088 + 64;

fn read_epoch(r: &mut Reader<'_>) -> Result<u32, InvalidMessage> {
    let epoch = u32::from_be_bytes(r.array::<4>("epoch")?);
    if epoch == 0 {
        // Epoch 0 is the handshake's; a re-key only ever starts a later one.
        return Err(InvalidMessage::InvalidValue { what: "epoch 0" });
    }
    Ok(epoch)
}

/// Starts a re-key: the initiator's fresh shares for epoch `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RekeyInit {
    /// The epoch this re-key starts (the current one plus one).
    pub epoch: u32,
    /// The initiator's fresh X25519 public key.
    pub x25519: X25519Public,
    /// The initiator's fresh ML-KEM-768 encapsulation key.
    pub mlkem: MlKemEncapsulationKey,
    /// The initiator's identity signature over [`RekeyInit::signed`].
    pub signature: Signature,
}

impl RekeyInit {
    /// What the signature covers: `context || 0x00 || session hash || epoch
    /// || x25519 || ML-KEM key`, `context` naming the signer's role
    /// ([`context::CLIENT_INIT`] or [`context::SERVER_INIT`]).
    pub fn signed(&self, context: &[u8], session_hash: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(context.len() + 1 + 32 + 4 + 32 + 1184);
        out.extend_from_slice(context);
        out.push(0);
        out.extend_from_slice(session_hash);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        self.x25519.encode(&mut out);
        self.mlkem.encode(&mut out);
        out
    }
}

impl Codec for RekeyInit {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch.to_be_bytes());
        self.x25519.encode(out);
        self.mlkem.encode(out);
        self.signature.encode(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            epoch: read_epoch(r)?,
            x25519: X25519Public::read(r)?,
            mlkem: MlKemEncapsulationKey::read(r)?,
            signature: Signature::read(r)?,
        })
    }
}

/// Answers a RekeyInit: the responder's fresh shares for the same epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RekeyReply {
    /// The epoch of the RekeyInit it answers.
    pub epoch: u32,
    /// The responder's fresh X25519 public key.
    pub x25519: X25519Public,
    /// The ML-KEM-768 ciphertext to the initiator's encapsulation key.
    pub mlkem: MlKemCiphertext,
    /// The responder's identity signature over [`RekeyReply::signed`].
    pub signature: Signature,
}

impl RekeyReply {
    /// What the signature covers: `context || 0x00 || session hash || epoch
    /// || SHA-256(RekeyInit encoding) || x25519 || ML-KEM ciphertext`,
    /// `context` naming the signer's role ([`context::CLIENT_REPLY`] or
    /// [`context::SERVER_REPLY`]); `init_hash` covers the Init's signature too.
    pub fn signed(&self, context: &[u8], session_hash: &[u8; 32], init_hash: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(context.len() + 1 + 32 + 4 + 32 + 32 + 1088);
        out.extend_from_slice(context);
        out.push(0);
        out.extend_from_slice(session_hash);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(init_hash);
        self.x25519.encode(&mut out);
        self.mlkem.encode(&mut out);
        out
    }
}

impl Codec for RekeyReply {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch.to_be_bytes());
        self.x25519.encode(out);
        self.mlkem.encode(out);
        self.signature.encode(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            epoch: read_epoch(r)?,
            x25519: X25519Public::read(r)?,
            mlkem: MlKemCiphertext::read(r)?,
            signature: Signature::read(r)?,
        })
    }
}

/// The last record its sender seals under the old epoch (the initiator's
/// switch point; the responder's is its RekeyReply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeySwitch {
    /// The epoch the sender switches to.
    pub epoch: u32,
}

impl Codec for RekeySwitch {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch.to_be_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            epoch: read_epoch(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() -> RekeyInit {
        RekeyInit {
            epoch: 1,
            x25519: [1u8; 32].into(),
            mlkem: [2u8; 1184].into(),
            signature: [3u8; 64].into(),
        }
    }

    #[test]
    fn each_message_round_trips_and_has_its_length() {
        let i = init();
        let bytes = i.encoded();
        assert_eq!(bytes.len(), INIT_LEN);
        assert_eq!(RekeyInit::decode(&bytes), Ok(i));

        let r = RekeyReply {
            epoch: 7,
            x25519: [4u8; 32].into(),
            mlkem: [5u8; 1088].into(),
            signature: [6u8; 64].into(),
        };
        let bytes = r.encoded();
        assert_eq!(bytes.len(), REPLY_LEN);
        assert_eq!(RekeyReply::decode(&bytes), Ok(r));

        let s = RekeySwitch { epoch: u32::MAX };
        assert_eq!(s.encoded(), [0xff; 4]);
        assert_eq!(RekeySwitch::decode(&s.encoded()), Ok(s));
    }

    #[test]
    fn short_long_and_epoch_zero_are_malformed() {
        let bytes = init().encoded();
        for cut in [0, 3, 4, 36, bytes.len() - 1] {
            assert!(
                matches!(
                    RekeyInit::decode(&bytes[..cut]),
                    Err(InvalidMessage::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            RekeyInit::decode(&long),
            Err(InvalidMessage::TrailingData { .. })
        ));
        let mut zero = bytes;
        zero[..4].copy_from_slice(&[0; 4]);
        assert_eq!(
            RekeyInit::decode(&zero),
            Err(InvalidMessage::InvalidValue { what: "epoch 0" })
        );
        assert!(RekeySwitch::decode(&[0, 0, 0, 0]).is_err());
    }

    #[test]
    fn the_signed_bytes_bind_context_session_epoch_and_shares() {
        let i = init();
        let a = i.signed(context::CLIENT_INIT, &[9; 32]);
        assert!(a.starts_with(context::CLIENT_INIT));
        assert_eq!(a[context::CLIENT_INIT.len()], 0);
        assert_ne!(a, i.signed(context::SERVER_INIT, &[9; 32]), "another role");
        assert_ne!(
            a,
            i.signed(context::CLIENT_INIT, &[8; 32]),
            "another session"
        );
        let mut later = i.clone();
        later.epoch = 2;
        assert_ne!(
            a,
            later.signed(context::CLIENT_INIT, &[9; 32]),
            "another epoch"
        );
        // The signature itself is not part of what it signs.
        let mut resigned = i.clone();
        resigned.signature = [0u8; 64].into();
        assert_eq!(a, resigned.signed(context::CLIENT_INIT, &[9; 32]));

        let r = RekeyReply {
            epoch: 1,
            x25519: [4u8; 32].into(),
            mlkem: [5u8; 1088].into(),
            signature: [6u8; 64].into(),
        };
        let b = r.signed(context::SERVER_REPLY, &[9; 32], &[1; 32]);
        assert_ne!(
            b,
            r.signed(context::SERVER_REPLY, &[9; 32], &[2; 32]),
            "another Init"
        );
        assert_ne!(
            b,
            r.signed(context::CLIENT_REPLY, &[9; 32], &[1; 32]),
            "another role"
        );
    }
}
