//! The codec trait and the bounded reader every decoder is written against.

use crate::error::InvalidMessage;

/// A value with one wire encoding.
///
/// `read` consumes exactly the value's bytes from a [`Reader`]; [`Codec::decode`]
/// additionally insists that nothing is left over.
pub trait Codec: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value from `r`, consuming exactly its bytes.
    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage>;

    /// Returns the encoding of `self` as a new vector.
    fn encoded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes a value that must span all of `bytes`.
    fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let value = Self::read(&mut r)?;
        r.expect_empty("message")?;
        Ok(value)
    }
}

/// A cursor over a byte slice that never reads past its end.
///
/// Every read names what it was reading, so a short input reports which field
/// was cut off.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over all of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Everything not yet read, consuming it.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    /// Fails with [`InvalidMessage::TrailingData`] unless everything was read.
    pub fn expect_empty(&self, what: &'static str) -> Result<(), InvalidMessage> {
        match self.left() {
            0 => Ok(()),
            n => Err(InvalidMessage::TrailingData { what, len: n }),
        }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], InvalidMessage> {
        if self.left() < n {
            return Err(InvalidMessage::Truncated { what });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], InvalidMessage> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// A sub-reader over the next `len` bytes (for nested, length-prefixed values).
    pub fn sub(&mut self, len: usize, what: &'static str) -> Result<Reader<'a>, InvalidMessage> {
        Ok(Reader::new(self.take(len, what)?))
    }

    /// Reads a `u8`.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, InvalidMessage> {
        Ok(self.take(1, what)?[0])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, InvalidMessage> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian 24-bit unsigned integer.
    pub fn u24(&mut self, what: &'static str) -> Result<u32, InvalidMessage> {
        let [a, b, c] = self.array(what)?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    /// Reads a length prefix of `width` bytes (1, 2 or 3) and checks it against
    /// `min..=max` before anything is read or allocated.
    pub fn length(
        &mut self,
        width: LengthWidth,
        min: usize,
        max: usize,
        what: &'static str,
    ) -> Result<usize, InvalidMessage> {
        let len = match width {
            LengthWidth::U8 => usize::from(self.u8(what)?),
            LengthWidth::U16 => usize::from(self.u16(what)?),
            LengthWidth::U24 => self.u24(what)? as usize,
        };
        if len > max {
            return Err(InvalidMessage::TooLong { what, len, max });
        }
        if len < min {
            return Err(InvalidMessage::TooShort { what, len, min });
        }
        Ok(len)
    }

    /// Reads a length-prefixed byte string with `min..=max` bytes.
    pub fn bytes(
        &mut self,
        width: LengthWidth,
        min: usize,
        max: usize,
        what: &'static str,
    ) -> Result<&'a [u8], InvalidMessage> {
        let len = self.length(width, min, max, what)?;
        self.take(len, what)
    }
}

/// Width of a length prefix on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthWidth {
    /// One byte.
    U8,
    /// Two bytes, big-endian.
    U16,
    /// Three bytes, big-endian.
    U24,
}

/// Appends a big-endian 24-bit integer. `v` must be below 2^24.
pub(crate) fn put_u24(out: &mut Vec<u8>, v: usize) {
    debug_assert!(v < (1 << 24), "u24 overflow: {v}");
    let b = (v as u32).to_be_bytes();
    out.extend_from_slice(&b[1..]);
}

/// Appends `bytes` behind a length prefix of the given width.
///
/// Encoders only ever write values their types allow, so the length always fits;
/// this is checked in debug builds.
pub(crate) fn put_bytes(out: &mut Vec<u8>, width: LengthWidth, bytes: &[u8]) {
    match width {
        LengthWidth::U8 => {
            debug_assert!(bytes.len() <= 0xff);
            out.push(bytes.len() as u8);
        }
        LengthWidth::U16 => {
            debug_assert!(bytes.len() <= 0xffff);
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        }
        LengthWidth::U24 => put_u24(out, bytes.len()),
    }
    out.extend_from_slice(bytes);
}

/// Defines a wire enum as a newtype over its number, with named constants, so an
/// unknown value is a clean error rather than a panic (rustls's `enum_builder!`).
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr => $text:expr, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $repr);

        impl $name {
            $( $(#[$vmeta])* pub const $variant: Self = Self($value); )+

            /// Every value this version of the protocol defines.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )+ ];

            /// The value's name, or `None` if this version does not define it.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( Self::$variant => Some($text), )+
                    _ => None,
                }
            }

            /// Whether this version of the protocol defines the value.
            pub fn is_known(self) -> bool {
                self.name().is_some()
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}(0x{:x})", stringify!($name), self.0),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(self, f)
            }
        }
    };
}
pub(crate) use wire_enum;
