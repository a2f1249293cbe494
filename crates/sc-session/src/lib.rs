//! Sovereign-Chain sessions: the seed-code record ratchet and the message API,
//! over the 13-step handshake.
//!
//! [`Connection`] is the sans-I/O core: feed it the peer's bytes with
//! [`Connection::receive`], send what [`Connection::take_outgoing`] returns,
//! and exchange whole messages with [`Connection::send_message`] and
//! [`Connection::recv_message`]. [`record`] holds the ratchet: every record has
//! its own key and nonce from a one-way chain per direction, salted with the
//! seed code, and every chain key is erased once used.

#![forbid(unsafe_code)]

mod connection;
mod error;
pub mod pair;
pub mod record;

pub use connection::{
    Connection, Padding, SessionConfig, Side, Stats, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_LEN,
};
pub use error::Error;
