//! A deterministic in-memory client/server pair (quinn's `Pair`, rustls's
//! `do_handshake`): two [`Connection`]s, a virtual clock and an RNG, and
//! calls that move bytes between them. No sockets, no threads, no real time.
//!
//! ```
//! # use std::sync::Arc;
//! # use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
//! # use sc_handshake::{ClientConfig, ServerConfig};
//! # use sc_pki::{throwaway::ThrowawayPki, ServerName, UnixTime};
//! # use sc_session::{pair::Pair, SessionConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = ChaCha20Rng::from_seed([1; 32]);
//! let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
//! let pki = ThrowawayPki::new("server.test", "client-1", now, &mut rng)?;
//! let client = ClientConfig::builder()
//!     .with_server_verifier(Arc::new(pki.server_verifier()?))
//!     .with_credential(pki.client.clone())
//!     .build();
//! let server = ServerConfig::builder()
//!     .with_client_verifier(Arc::new(pki.client_verifier()?))
//!     .with_credential(pki.server.clone())
//!     .build();
//! let name = ServerName::try_from("server.test")?;
//! let mut pair = Pair::new(client.into(), server.into(), name, SessionConfig::default(), now, Box::new(rng))?;
//! pair.client.send_message(b"hello")?; // queued: goes out with flight 5 (2 RTT)
//! pair.handshake()?;
//! assert_eq!(pair.server.recv_message().as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Instant;

use rand_core::CryptoRngCore;
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::{ServerName, UnixTime};
use sc_wire::RouteName;

use crate::{Connection, Error, RekeyDone, SessionConfig, Side};

/// One write from one side: every byte it had ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flight {
    /// Who sent it.
    pub from: Side,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A side failed while the pair moved bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{side:?} failed: {error}")]
pub struct PairError {
    /// The side that failed.
    pub side: Side,
    /// Its error.
    pub error: Error,
}

/// Rounds [`Pair::drive`] allows before giving up (a handshake takes 4).
pub const MAX_ROUNDS: usize = 64;

/// A client and a server connected in memory.
pub struct Pair {
    /// The client.
    pub client: Connection,
    /// The server.
    pub server: Connection,
    /// The virtual clock both sides see.
    pub now: UnixTime,
    /// The randomness both sides use.
    pub rng: Box<dyn CryptoRngCore + Send>,
    /// Every flight moved so far, in order.
    pub flights: Vec<Flight>,
}

impl core::fmt::Debug for Pair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pair")
            .field("client", &self.client)
            .field("server", &self.server)
            .field("flights", &self.flights.len())
            .finish_non_exhaustive()
    }
}

impl Pair {
    /// A client (with flight 1 ready) and a server, without a route name.
    pub fn new(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        server_name: ServerName<'static>,
        session: SessionConfig,
        now: UnixTime,
        rng: Box<dyn CryptoRngCore + Send>,
    ) -> Result<Self, Error> {
        Self::with_route(client, server, server_name, None, session, now, rng)
    }

    /// As [`Pair::new`], with a route name in the ClientHello.
    pub fn with_route(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        server_name: ServerName<'static>,
        route: Option<RouteName>,
        session: SessionConfig,
        now: UnixTime,
        mut rng: Box<dyn CryptoRngCore + Send>,
    ) -> Result<Self, Error> {
        let client =
            Connection::client(client, server_name, route, session.clone(), now, &mut *rng)?;
        let server = Connection::server(server, session, now);
        Ok(Self {
            client,
            server,
            now,
            rng,
            flights: Vec::new(),
        })
    }

    /// The connection on `side`.
    pub fn side(&mut self, side: Side) -> &mut Connection {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Takes what `from` has to send and records it as a flight; `None` if
    /// it had nothing.
    pub fn take_flight(&mut self, from: Side) -> Option<Vec<u8>> {
        let bytes = self.side(from).take_outgoing();
        if bytes.is_empty() {
            return None;
        }
        self.flights.push(Flight {
            from,
            bytes: bytes.clone(),
        });
        Some(bytes)
    }

    /// Delivers `bytes` to `to`.
    pub fn deliver(&mut self, to: Side, bytes: &[u8]) -> Result<(), PairError> {
        let now = self.now;
        let (conn, rng) = match to {
            Side::Client => (&mut self.client, &mut self.rng),
            Side::Server => (&mut self.server, &mut self.rng),
        };
        conn.receive(bytes, now, &mut **rng)
            .map_err(|error| PairError { side: to, error })
    }

    /// Drives re-keying on `side` at `now`: [`Connection::poll_rekey`] with
    /// the pair's RNG; the re-keys finished since the last call.
    pub fn poll_rekey(&mut self, side: Side, now: Instant) -> Result<Vec<RekeyDone>, Error> {
        let (conn, rng) = match side {
            Side::Client => (&mut self.client, &mut self.rng),
            Side::Server => (&mut self.server, &mut self.rng),
        };
        conn.poll_rekey(now, &mut **rng)
    }

    /// Moves everything `from` has to send to the other side. Returns whether
    /// anything moved.
    pub fn transfer(&mut self, from: Side) -> Result<bool, PairError> {
        match self.take_flight(from) {
            Some(bytes) => {
                self.deliver(other(from), &bytes)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Moves bytes both ways until neither side has anything to send, for at
    /// most [`MAX_ROUNDS`] rounds.
    pub fn drive(&mut self) -> Result<(), PairError> {
        for _ in 0..MAX_ROUNDS {
            let c = self.transfer(Side::Client)?;
            let s = self.transfer(Side::Server)?;
            if !c && !s {
                return Ok(());
            }
        }
        Err(PairError {
            side: Side::Client,
            error: Error::Internal("pair did not go quiet"),
        })
    }

    /// Drives the pair and checks that both handshakes completed.
    pub fn handshake(&mut self) -> Result<(), PairError> {
        self.drive()?;
        for side in [Side::Client, Side::Server] {
            if self.side(side).is_handshaking() {
                return Err(PairError {
                    side,
                    error: Error::Internal("handshake stalled"),
                });
            }
        }
        Ok(())
    }
}

/// The other side.
pub fn other(side: Side) -> Side {
    match side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}
