//! Why a decoder refused its input.

/// Bytes that are not a valid encoding. Every decoder in this crate returns it;
/// none panics on any input.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// The input ended inside a field.
    #[error("malformed: {what} is truncated")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// Bytes were left after a complete value.
    #[error("malformed: {len} trailing bytes after {what}")]
    TrailingData {
        /// The value that was complete.
        what: &'static str,
        /// How many bytes were left.
        len: usize,
    },
    /// A length or count is above the field's maximum.
    #[error("too large: {what} has length {len}, the maximum is {max}")]
    TooLong {
        /// The field.
        what: &'static str,
        /// The length found.
        len: usize,
        /// The field's maximum.
        max: usize,
    },
    /// A length or count is below the field's minimum.
    #[error("malformed: {what} has length {len}, the minimum is {min}")]
    TooShort {
        /// The field.
        what: &'static str,
        /// The length found.
        len: usize,
        /// The field's minimum.
        min: usize,
    },
    /// A type number this version does not define.
    #[error("malformed: unknown {what} 0x{value:x}")]
    UnknownType {
        /// Which kind of type number.
        what: &'static str,
        /// The number found.
        value: u32,
    },
    /// A field whose value is not allowed (for example reserved bits set).
    #[error("malformed: invalid {what}")]
    InvalidValue {
        /// The field.
        what: &'static str,
    },
}
