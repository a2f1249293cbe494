//! Records: the outer framing of every byte on the wire, the inner plaintext of
//! sealed records, alerts, and a bounded deframer.
//!
//! ```text
//! record  = kind (u8) || length (u24) || body[length]
//! kind    = 0xc1 Handshake (plaintext; steps 1 and 2 only)
//!         | 0xc2 Alert     (plaintext; before handshake keys exist)
//!         | 0xc3 Sealed    (AEAD ciphertext || 16-byte tag)
//! sealed plaintext = content || zeros[pad] || pad (u16) || inner type (u8)
//! ```

use crate::codec::{wire_enum, Codec, Reader};
use crate::error::InvalidMessage;

/// Length of the record header.
pub const RECORD_HEADER_LEN: usize = 4;
/// Most content plus padding one sealed record can carry (64 KiB).
pub const MAX_FRAGMENT_LEN: usize = 64 * 1024;
/// Length of the inner trailer: padding length (u16) and inner type (u8).
pub const INNER_TRAILER_LEN: usize = 3;
/// Length of the AEAD tag.
pub const TAG_LEN: usize = 16;
/// Largest sealed record body.
pub const MAX_SEALED_LEN: usize = MAX_FRAGMENT_LEN + INNER_TRAILER_LEN + TAG_LEN;
/// Smallest sealed record body (empty content, no padding).
pub const MIN_SEALED_LEN: usize = INNER_TRAILER_LEN + TAG_LEN;
/// Largest plaintext handshake record body (a ClientHello is at most 1,527 bytes).
pub const MAX_PLAIN_HANDSHAKE_LEN: usize = 2048;
/// Length of an alert body.
pub const ALERT_LEN: usize = 1;
/// Most padding one record may carry (the u16 field's range).
pub const MAX_PADDING: usize = 0xffff;

wire_enum! {
    /// The outer record kind: the only part of a sealed record's type an observer sees.
    RecordKind(u8) {
        /// A plaintext handshake record (steps 1 and 2).
        HANDSHAKE = 0xc1 => "Handshake",
        /// A plaintext alert, sent when no handshake keys exist yet.
        ALERT = 0xc2 => "Alert",
        /// An AEAD-sealed record.
        SEALED = 0xc3 => "Sealed",
    }
}

impl RecordKind {
    /// The allowed body lengths of this kind of record.
    pub fn body_len_range(self) -> (usize, usize) {
        match self {
            Self::HANDSHAKE => (1, MAX_PLAIN_HANDSHAKE_LEN),
            Self::ALERT => (ALERT_LEN, ALERT_LEN),
            _ => (MIN_SEALED_LEN, MAX_SEALED_LEN),
        }
    }
}

/// A record header: kind and body length, both checked on decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The record kind.
    pub kind: RecordKind,
    /// The body length.
    pub len: usize,
}

impl RecordHeader {
    /// The four header bytes (the AAD of a sealed record).
    pub fn to_bytes(self) -> [u8; RECORD_HEADER_LEN] {
        let l = (self.len as u32).to_be_bytes();
        [self.kind.0, l[1], l[2], l[3]]
    }
}

impl Codec for RecordHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let kind = RecordKind(r.u8("record kind")?);
        if !kind.is_known() {
            return Err(InvalidMessage::UnknownType {
                what: "record kind",
                value: kind.0.into(),
            });
        }
        let (min, max) = kind.body_len_range();
        let len = r.length(crate::codec::LengthWidth::U24, min, max, "record")?;
        Ok(Self { kind, len })
    }
}

wire_enum! {
    /// The type of a sealed record's content, hidden inside the encryption.
    InnerType(u8) {
        /// Handshake messages.
        HANDSHAKE = 0x01 => "Handshake",
        /// Application data: the last (or only) fragment of a message.
        DATA = 0x02 => "Data",
        /// Application data: a fragment with more of the same message to follow.
        DATA_MORE = 0x03 => "DataMore",
        /// An alert: the sender has failed and closes the connection.
        ALERT = 0x04 => "Alert",
        /// Authenticated close: the sender sends nothing more (half-close).
        CLOSE = 0x05 => "Close",
        /// Keepalive: no content for the application.
        KEEPALIVE = 0x06 => "KeepAlive",
        /// Stream frames, in a session that multiplexes streams (SPEC §14).
        STREAMS = 0x07 => "Streams",
        /// Starts a re-key, in a session that agreed on re-keying (SPEC §15).
        REKEY_INIT = 0x08 => "RekeyInit",
        /// Answers a RekeyInit: the responder's last record of the old epoch
        /// (SPEC §15).
        REKEY_REPLY = 0x09 => "RekeyReply",
        /// The initiator's last record of the old epoch (SPEC §15).
        REKEY_SWITCH = 0x0a => "RekeySwitch",
    }
}

/// Appends the inner trailer of a sealed record: `pad` zero bytes, the padding
/// length and the inner type. The content must already be in `out`.
pub fn put_inner_trailer(out: &mut Vec<u8>, typ: InnerType, pad: u16) {
    out.resize(out.len() + usize::from(pad), 0);
    out.extend_from_slice(&pad.to_be_bytes());
    out.push(typ.0);
}

/// Splits a decrypted sealed record into its inner type and content.
///
/// Checks that the trailer is present, the padding fits and is all zero, and
/// the inner type is known.
pub fn split_inner(plaintext: &[u8]) -> Result<(InnerType, &[u8]), InvalidMessage> {
    let Some(body_len) = plaintext.len().checked_sub(INNER_TRAILER_LEN) else {
        return Err(InvalidMessage::Truncated {
            what: "inner trailer",
        });
    };
    let trailer = &plaintext[body_len..];
    let pad = usize::from(u16::from_be_bytes([trailer[0], trailer[1]]));
    let typ = InnerType(trailer[2]);
    if !typ.is_known() {
        return Err(InvalidMessage::UnknownType {
            what: "inner type",
            value: typ.0.into(),
        });
    }
    let Some(content_len) = body_len.checked_sub(pad) else {
        return Err(InvalidMessage::InvalidValue {
            what: "padding length",
        });
    };
    if plaintext[content_len..body_len].iter().any(|&b| b != 0) {
        return Err(InvalidMessage::InvalidValue { what: "padding" });
    }
    Ok((typ, &plaintext[..content_len]))
}

wire_enum! {
    /// Why a peer ended the connection. One byte on the wire.
    AlertCode(u8) {
        /// A message arrived that is not allowed at this point.
        UNEXPECTED_MESSAGE = 0x01 => "unexpected message",
        /// A sealed record failed to decrypt (tampered, replayed, reordered or dropped record).
        BAD_RECORD = 0x02 => "bad record",
        /// A record, message or field is larger than allowed.
        TOO_LARGE = 0x03 => "too large",
        /// Bytes that do not decode.
        MALFORMED = 0x04 => "malformed message",
        /// No protocol version in common.
        PROTOCOL_VERSION = 0x05 => "protocol version not supported",
        /// No cipher suite in common.
        NO_COMMON_CIPHER = 0x06 => "no cipher suite in common",
        /// A signature or key confirmation over the transcript did not verify.
        HANDSHAKE_FAILURE = 0x07 => "handshake failure",
        /// A certificate is malformed or its signature is invalid.
        BAD_CERTIFICATE = 0x08 => "bad certificate",
        /// A certificate was issued by a CA the peer does not trust.
        UNKNOWN_ISSUER = 0x09 => "unknown issuer",
        /// A certificate has expired.
        CERTIFICATE_EXPIRED = 0x0a => "certificate expired",
        /// A certificate is not yet valid.
        CERTIFICATE_NOT_YET_VALID = 0x0b => "certificate not yet valid",
        /// A certificate has been revoked.
        CERTIFICATE_REVOKED = 0x0c => "certificate revoked",
        /// A certificate does not name the expected peer.
        NAME_MISMATCH = 0x0d => "name mismatch",
        /// A certificate is not valid for this purpose (EKU).
        WRONG_PURPOSE = 0x0e => "certificate not valid for this purpose",
        /// A certificate has a key type other than Ed25519.
        UNSUPPORTED_CERTIFICATE = 0x0f => "unsupported certificate",
        /// The peer's identity is not authorised by policy.
        NOT_AUTHORISED = 0x10 => "not authorised",
        /// The server does not accept anonymous clients.
        ANONYMOUS_NOT_ALLOWED = 0x11 => "anonymous clients not allowed",
        /// A key share or encapsulation key is invalid.
        ILLEGAL_PARAMETER = 0x12 => "illegal parameter",
        /// The peer took too long.
        TIMEOUT = 0x13 => "timeout",
        /// A relay has no route for the requested name.
        NO_ROUTE = 0x14 => "no route",
        /// The sender is shutting down.
        GOING_AWAY = 0x15 => "going away",
        /// The sender failed internally.
        INTERNAL_ERROR = 0x16 => "internal error",
        /// Stream data beyond the window the receiver granted (SPEC §14).
        FLOW_CONTROL = 0x17 => "stream flow control violation",
        /// A stream frame that its stream's state does not allow: for a
        /// stream never opened, a reused stream id, data after the end
        /// (SPEC §14).
        STREAM_STATE = 0x18 => "bad stream state",
        /// The peer left a re-key the sender required unanswered, or went
        /// on past the volume limit of its epoch (SPEC §15).
        REKEY_REQUIRED = 0x19 => "re-key required",
    }
}

/// An alert record's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Why the sender ended the connection.
    pub code: AlertCode,
}

impl Alert {
    /// The alert as a whole plaintext record (`0xc2 00 00 01 code`): what a
    /// side sends before it has keys, and all a relay, which holds none, can
    /// send.
    pub fn plaintext_record(self) -> [u8; RECORD_HEADER_LEN + ALERT_LEN] {
        let [k0, l0, l1, l2] = RecordHeader {
            kind: RecordKind::ALERT,
            len: ALERT_LEN,
        }
        .to_bytes();
        [k0, l0, l1, l2, self.code.0]
    }
}

impl Codec for Alert {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.code.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        // Unknown codes are kept (a newer peer may send one) and shown by number.
        Ok(Self {
            code: AlertCode(r.u8("alert code")?),
        })
    }
}

/// A record as it sits in the deframer's buffer, ready for in-place opening.
#[derive(Debug)]
pub struct RawRecord<'a> {
    /// The decoded header.
    pub header: RecordHeader,
    /// The body, mutable so a sealed record can be decrypted in place.
    pub body: &'a mut [u8],
}

/// Splits a byte stream into records.
///
/// It holds the bytes it was given that do not yet form a whole record; a
/// header announcing an unknown kind or a length beyond the kind's maximum is
/// rejected as soon as its four bytes arrive, without waiting for the body.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    used: usize,
}

impl Deframer {
    /// An empty deframer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the peer.
    pub fn push(&mut self, data: &[u8]) {
        self.discard_used();
        self.buf.extend_from_slice(data);
    }

    fn discard_used(&mut self) {
        if self.used > 0 {
            self.buf.drain(..self.used);
            self.used = 0;
        }
    }

    /// Bytes buffered that are not yet part of a returned record.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.used
    }

    /// Checks the header of the next record, if its four bytes have arrived.
    pub fn peek_header(&self) -> Result<Option<RecordHeader>, InvalidMessage> {
        let avail = &self.buf[self.used..];
        if avail.len() < RECORD_HEADER_LEN {
            return Ok(None);
        }
        RecordHeader::decode(&avail[..RECORD_HEADER_LEN]).map(Some)
    }

    /// The next complete record, or `None` if more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<RawRecord<'_>>, InvalidMessage> {
        let Some(header) = self.peek_header()? else {
            return Ok(None);
        };
        let start = self.used + RECORD_HEADER_LEN;
        let end = start + header.len;
        if self.buf.len() < end {
            return Ok(None);
        }
        self.used = end;
        Ok(Some(RawRecord {
            header,
            body: &mut self.buf[start..end],
        }))
    }
}
