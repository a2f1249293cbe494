//! Stream frames: the content of a Streams record (inner type `0x07`) in a
//! session that multiplexes streams (SPEC §14). A record carries one or more
//! whole frames; a frame never spans two records.
//!
//! ```text
//! frame   = type (u8) || stream id (u32) || body
//! Open    0x01  service vec<u8, 1, 0..255>        (empty: the default service)
//! Data    0x02  data    vec<u8, 2, 1..65535>
//! Fin     0x03  —                                 (the sender sends no more on it)
//! Reset   0x04  code (u8) || reason vec<u8, 1, 0..255> (UTF-8)
//! Window  0x05  increment (u32, ≥ 1)              (stream id 0: the session's window)
//! Limit   0x06  max streams (u32)                 (stream id 0 only)
//! ```
//!
//! Decoding borrows: a Data frame's bytes are a slice of the record.

use core::fmt;

use crate::codec::{wire_enum, LengthWidth, Reader};
use crate::error::InvalidMessage;

/// Bytes of a frame's type and stream id.
pub const FRAME_HEADER_LEN: usize = 5;
/// Longest service name.
pub const MAX_SERVICE_LEN: usize = 255;
/// Longest reset reason.
pub const MAX_REASON_LEN: usize = 255;
/// Most data one Data frame carries (its length is a u16).
pub const MAX_DATA_LEN: usize = 0xffff;
/// Bytes a Data frame adds to its data.
pub const DATA_OVERHEAD: usize = FRAME_HEADER_LEN + 2;

wire_enum! {
    /// The type of a stream frame.
    FrameType(u8) {
        /// Opens a stream, naming the service it is for.
        OPEN = 0x01 => "Open",
        /// Bytes of a stream.
        DATA = 0x02 => "Data",
        /// The sender's end of a stream (half-close).
        FIN = 0x03 => "Fin",
        /// Ends a stream both ways at once, with a reason.
        RESET = 0x04 => "Reset",
        /// More room in a stream's receive window (or the session's, id 0).
        WINDOW = 0x05 => "Window",
        /// How many streams the sender takes from its peer at once.
        LIMIT = 0x06 => "Limit",
    }
}

wire_enum! {
    /// Why a stream was reset.
    ResetCode(u8) {
        /// The application gave the stream up.
        CANCELLED = 0x00 => "cancelled",
        /// Refused: the receiver holds as many streams as it allows.
        REFUSED = 0x01 => "refused",
        /// No such service at the receiver.
        UNKNOWN_SERVICE = 0x02 => "unknown service",
        /// The client may not use this service.
        NOT_AUTHORISED = 0x03 => "not authorised",
        /// The exit could not reach the service's backend.
        BACKEND_UNREACHABLE = 0x04 => "backend unreachable",
        /// The backend connection failed.
        BACKEND_FAILED = 0x05 => "backend failed",
        /// The sender failed on its side.
        INTERNAL_ERROR = 0x06 => "internal error",
        /// The sender is shutting down.
        GOING_AWAY = 0x07 => "going away",
    }
}

/// A stream's number: odd for streams the client opens, even for the
/// server's; 0 names the session in a Window frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u32);

impl StreamId {
    /// The session itself (Window frames only).
    pub const SESSION: Self = Self(0);

    /// Whether the client opened it (odd).
    pub fn is_client_opened(self) -> bool {
        self.0 % 2 == 1
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The service a stream asks for: 1–255 printable ASCII bytes without
/// spaces (as a route name).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServiceName(String);

impl ServiceName {
    /// Checks and wraps a service name.
    pub fn new(name: &str) -> Result<Self, InvalidMessage> {
        check_service(name.as_bytes())?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_service(bytes: &[u8]) -> Result<(), InvalidMessage> {
    if bytes.is_empty() || bytes.len() > MAX_SERVICE_LEN {
        return Err(InvalidMessage::InvalidValue {
            what: "service name",
        });
    }
    if !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(InvalidMessage::InvalidValue {
            what: "service name",
        });
    }
    Ok(())
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One stream frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Opens stream `id` for `service` (`None`: the default service).
    Open {
        /// The new stream.
        id: StreamId,
        /// The service asked for.
        service: Option<ServiceName>,
    },
    /// Bytes of stream `id`.
    Data {
        /// The stream.
        id: StreamId,
        /// 1–65,535 bytes.
        data: &'a [u8],
    },
    /// The sender's end of stream `id`.
    Fin {
        /// The stream.
        id: StreamId,
    },
    /// Stream `id` ends both ways.
    Reset {
        /// The stream.
        id: StreamId,
        /// Why, as a code.
        code: ResetCode,
        /// Why, for people (at most 255 bytes of UTF-8).
        reason: String,
    },
    /// The receiver of stream `id` (or of the session, id 0) takes
    /// `increment` more bytes.
    Window {
        /// The stream, or [`StreamId::SESSION`].
        id: StreamId,
        /// At least 1.
        increment: u32,
    },
    /// The sender takes at most `max_streams` streams opened by its peer
    /// at once (stream id 0). Each side sends one first; a later one
    /// replaces it.
    Limit {
        /// Streams the peer may hold open at the sender.
        max_streams: u32,
    },
}

impl<'a> Frame<'a> {
    /// The frame's stream.
    pub fn id(&self) -> StreamId {
        match self {
            Self::Open { id, .. }
            | Self::Data { id, .. }
            | Self::Fin { id }
            | Self::Reset { id, .. }
            | Self::Window { id, .. } => *id,
            Self::Limit { .. } => StreamId::SESSION,
        }
    }

    /// Its encoded length.
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_LEN
            + match self {
                Self::Open { service, .. } => 1 + service.as_ref().map_or(0, |s| s.0.len()),
                Self::Data { data, .. } => 2 + data.len(),
                Self::Fin { .. } => 0,
                Self::Reset { reason, .. } => 2 + reason.len().min(MAX_REASON_LEN),
                Self::Window { .. } | Self::Limit { .. } => 4,
            }
    }

    /// Appends the frame to `out`. A Data frame's data must be 1–65,535
    /// bytes and a reason longer than 255 bytes is cut (at a character
    /// boundary); the encoder checks neither more than that.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (typ, id) = match self {
            Self::Open { id, .. } => (FrameType::OPEN, id),
            Self::Data { id, .. } => (FrameType::DATA, id),
            Self::Fin { id } => (FrameType::FIN, id),
            Self::Reset { id, .. } => (FrameType::RESET, id),
            Self::Window { id, .. } => (FrameType::WINDOW, id),
            Self::Limit { .. } => (FrameType::LIMIT, &StreamId::SESSION),
        };
        out.push(typ.0);
        out.extend_from_slice(&id.0.to_be_bytes());
        match self {
            Self::Open { service, .. } => {
                let name = service.as_ref().map_or(&b""[..], |s| s.0.as_bytes());
                out.push(name.len() as u8);
                out.extend_from_slice(name);
            }
            Self::Data { data, .. } => {
                out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                out.extend_from_slice(data);
            }
            Self::Fin { .. } => {}
            Self::Reset { code, reason, .. } => {
                let mut cut = reason.len().min(MAX_REASON_LEN);
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push(code.0);
                out.push(cut as u8);
                out.extend_from_slice(&reason.as_bytes()[..cut]);
            }
            Self::Window { increment, .. } => out.extend_from_slice(&increment.to_be_bytes()),
            Self::Limit { max_streams } => out.extend_from_slice(&max_streams.to_be_bytes()),
        }
    }

    /// Reads one frame from `r`.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, InvalidMessage> {
        let typ = FrameType(r.u8("frame type")?);
        let id = StreamId(u32::from_be_bytes(r.array::<4>("stream id")?));
        let frame = match typ {
            FrameType::OPEN => {
                let name = r.bytes(LengthWidth::U8, 0, MAX_SERVICE_LEN, "service name")?;
                let service = if name.is_empty() {
                    None
                } else {
                    check_service(name)?;
                    // Printable ASCII: valid UTF-8.
                    Some(ServiceName(String::from_utf8_lossy(name).into_owned()))
                };
                Self::Open { id, service }
            }
            FrameType::DATA => Self::Data {
                id,
                data: r.bytes(LengthWidth::U16, 1, MAX_DATA_LEN, "stream data")?,
            },
            FrameType::FIN => Self::Fin { id },
            FrameType::RESET => {
                let code = ResetCode(r.u8("reset code")?);
                let reason = r.bytes(LengthWidth::U8, 0, MAX_REASON_LEN, "reset reason")?;
                let reason = core::str::from_utf8(reason)
                    .map_err(|_| InvalidMessage::InvalidValue {
                        what: "reset reason",
                    })?
                    .to_owned();
                Self::Reset { id, code, reason }
            }
            FrameType::WINDOW => {
                let increment = u32::from_be_bytes(r.array::<4>("window increment")?);
                if increment == 0 {
                    return Err(InvalidMessage::InvalidValue {
                        what: "window increment",
                    });
                }
                Self::Window { id, increment }
            }
            FrameType::LIMIT => {
                if id != StreamId::SESSION {
                    return Err(InvalidMessage::InvalidValue { what: "stream id" });
                }
                Self::Limit {
                    max_streams: u32::from_be_bytes(r.array::<4>("max streams")?),
                }
            }
            _ => {
                return Err(InvalidMessage::UnknownType {
                    what: "frame type",
                    value: u32::from(typ.0),
                })
            }
        };
        if id == StreamId::SESSION && !matches!(frame, Self::Window { .. } | Self::Limit { .. }) {
            return Err(InvalidMessage::InvalidValue { what: "stream id" });
        }
        Ok(frame)
    }
}

/// The frames of a Streams record's content, in order; an empty content or
/// a frame that does not decode (or does not end where the content ends) is
/// an error.
pub fn frames(content: &[u8]) -> Frames<'_> {
    Frames {
        reader: Reader::new(content),
        empty: content.is_empty(),
    }
}

/// The iterator [`frames`] returns.
#[derive(Debug)]
pub struct Frames<'a> {
    reader: Reader<'a>,
    empty: bool,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, InvalidMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.empty {
            self.empty = false;
            return Some(Err(InvalidMessage::TooShort {
                what: "Streams record",
                len: 0,
                min: FRAME_HEADER_LEN,
            }));
        }
        if self.reader.left() == 0 {
            return None;
        }
        let frame = Frame::read(&mut self.reader);
        if frame.is_err() {
            // Nothing after a bad frame can be trusted: stop.
            self.reader = Reader::new(&[]);
        }
        Some(frame)
    }
}
