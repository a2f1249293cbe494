//! Which end of a session this is: the one type the connection and its
//! streams both need, kept apart so that neither imports the other for it.

/// Which end of the session this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The side that sent the ClientHello.
    Client,
    /// The side that answered it.
    Server,
}
