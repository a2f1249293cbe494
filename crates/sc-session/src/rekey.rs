//! In-session re-keying (SPEC §15): fresh X25519 and ML-KEM-768 secrets,
//! signed by both identity keys, mixed into the epoch secret; each
//! direction's record chain restarts from the new epoch.
//!
//! ```text
//! dh      = X25519(own fresh secret, peer's fresh share)
//! ss      = ML-KEM-768 secret (responder encapsulates to the initiator's key)
//! rk_th   = SHA-256(sh || u32 epoch || RekeyInit || RekeyReply)
//! E_e     = HKDF-Extract(salt = E_(e-1), IKM = dh || ss || rk_th)
//! chain₀  = Expand-Label(E_e, "c epoch" | "s epoch", rk_th, 32)
//! ```
//!
//! This module only computes: it says what to send and which chain a
//! direction switches to; [`Connection`](crate::Connection) seals and opens
//! the records and decides when (the switch points of §15.4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;
use sc_handshake::crypto::{KemSecret, KxSecret};
use sc_handshake::schedule::expand_secret;
use sc_handshake::{CryptoProvider, RekeyKeys, Secret};
use sc_pki::Credential;
use sc_wire::rekey::{context, RekeyInit, RekeyReply, RekeySwitch};
use sc_wire::Codec;

use crate::error::{Error, RekeyError};
use crate::side::Side;

/// Label of the client→server chain of a new epoch.
pub const LABEL_C_EPOCH: &[u8] = b"c epoch";
/// Label of the server→client chain of a new epoch.
pub const LABEL_S_EPOCH: &[u8] = b"s epoch";

/// When a session re-keys by itself (SPEC §15.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// Re-key once an epoch is this old; `None`: never by time (the volume
    /// limits still apply). Default 120 s.
    pub interval: Option<Duration>,
    /// Re-key once either direction has carried this many record bytes in
    /// one epoch. Default 1 GiB.
    pub max_bytes: u64,
    /// Re-key once either direction has carried this many records in one
    /// epoch. Default 2²⁴.
    pub max_records: u64,
}

/// Default time between re-keys (120 s, as WireGuard's re-handshake).
pub const DEFAULT_REKEY_INTERVAL: Duration = Duration::from_secs(120);

impl Default for RekeyPolicy {
    fn default() -> Self {
        Self {
            interval: Some(DEFAULT_REKEY_INTERVAL),
            max_bytes: 1 << 30,
            max_records: 1 << 24,
        }
    }
}

/// A finished re-key, for the log and for callers that count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeyDone {
    /// The epoch both directions now use.
    pub epoch: u32,
    /// Who sent the RekeyInit.
    pub initiator: Side,
    /// From our RekeyInit (or, as responder, from the peer's arriving) to
    /// the last switch, as seen through the `now` passed in.
    pub duration: Duration,
}

/// A re-key in flight.
enum Pending {
    Idle,
    /// We sent a RekeyInit for `epoch` and wait for the Reply.
    Initiated {
        epoch: u32,
        kx: Box<dyn KxSecret>,
        kem: Box<dyn KemSecret>,
        init: Vec<u8>,
        sent: Instant,
    },
    /// We answered the peer's RekeyInit and wait for its Switch, after
    /// which its records open with `read_chain`.
    Replied {
        epoch: u32,
        read_chain: Secret,
        started: Option<Instant>,
    },
}

/// What a side in the middle of a re-key waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// The peer's RekeyReply to our RekeyInit.
    Reply,
    /// The peer's RekeySwitch after our RekeyReply.
    Switch,
}

/// What to do with a RekeyInit from the peer.
pub(crate) enum InitOutcome {
    /// Ignore it: our own RekeyInit wins (we are the client).
    Ignore,
    /// Send `reply` as our last record of the old epoch, then seal with
    /// `write_chain`.
    Reply { reply: Vec<u8>, write_chain: Secret },
}

/// The keys a Reply gives the initiator.
pub(crate) struct ReplyOutcome {
    /// The peer's records after its Reply open with this chain.
    pub(crate) read_chain: Secret,
    /// Ours, after our RekeySwitch.
    pub(crate) write_chain: Secret,
    /// The Switch to send as our last record of the old epoch.
    pub(crate) switch: Vec<u8>,
}

/// One session's re-key state: the current epoch secret, the identity keys,
/// the exchange in flight.
pub(crate) struct Rekey {
    provider: &'static CryptoProvider,
    side: Side,
    session_hash: [u8; 32],
    identity: Arc<Credential>,
    peer_key: [u8; 32],
    /// The epoch of the newest epoch secret (both directions reach it at
    /// their switch points).
    epoch: u32,
    /// `E_epoch`; the previous one is dropped (and zeroized) when a new one
    /// is derived.
    secret: Secret,
    pending: Pending,
    /// A re-key asked for through the API, not yet started.
    requested: bool,
    /// When the current epoch started, as first seen by [`Rekey::tick`].
    epoch_started: Option<Instant>,
    /// Finished re-keys not yet reported by [`Rekey::tick`].
    finished: Vec<(u32, Side, Option<Instant>)>,
    completed: u64,
}

impl core::fmt::Debug for Rekey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Rekey")
            .field("epoch", &self.epoch)
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}

fn init_context(signer: Side) -> &'static [u8] {
    match signer {
        Side::Client => context::CLIENT_INIT,
        Side::Server => context::SERVER_INIT,
    }
}

fn reply_context(signer: Side) -> &'static [u8] {
    match signer {
        Side::Client => context::CLIENT_REPLY,
        Side::Server => context::SERVER_REPLY,
    }
}

fn crypto(_: sc_handshake::crypto::CryptoError) -> Error {
    Error::Internal("re-key derivation failed")
}

/// The secrets of a new epoch (SPEC §15.3). `Debug` shows only `rk_th`.
pub struct EpochKeys {
    /// `rk_th`: the hash of the re-key.
    pub rk_th: [u8; 32],
    /// `E_e`.
    pub secret: Secret,
    /// chain₀ of the client→server records of the epoch.
    pub c_chain0: Secret,
    /// chain₀ of the server→client records of the epoch.
    pub s_chain0: Secret,
}

impl core::fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EpochKeys")
            .field("rk_th", &self.rk_th)
            .finish_non_exhaustive()
    }
}

/// Derives epoch `epoch` from the previous epoch secret, the session hash,
/// the two fresh shared secrets and the encodings of the RekeyInit and the
/// RekeyReply (SPEC §15.3). Pure: the test vector of SPEC §15.6 runs it.
#[allow(clippy::too_many_arguments)]
pub fn derive_epoch(
    provider: &CryptoProvider,
    previous: &Secret,
    session_hash: &[u8; 32],
    epoch: u32,
    dh: &Secret,
    ss: &Secret,
    init: &[u8],
    reply: &[u8],
) -> Result<EpochKeys, Error> {
    let hash = provider.hash;
    let mut ctx = hash.start();
    ctx.update(session_hash);
    ctx.update(&epoch.to_be_bytes());
    ctx.update(init);
    ctx.update(reply);
    let rk_th = ctx.finish();
    let secret = hash.hkdf_extract(previous.expose(), &[dh.expose(), ss.expose(), &rk_th]);
    Ok(EpochKeys {
        c_chain0: expand_secret(provider, &secret, LABEL_C_EPOCH, &rk_th).map_err(crypto)?,
        s_chain0: expand_secret(provider, &secret, LABEL_S_EPOCH, &rk_th).map_err(crypto)?,
        rk_th,
        secret,
    })
}

impl Rekey {
    pub(crate) fn new(
        provider: &'static CryptoProvider,
        side: Side,
        session_hash: [u8; 32],
        keys: RekeyKeys,
    ) -> Self {
        Self {
            provider,
            side,
            session_hash,
            identity: keys.identity,
            peer_key: keys.peer_key,
            epoch: 0,
            secret: keys.epoch0,
            pending: Pending::Idle,
            requested: false,
            epoch_started: None,
            finished: Vec::new(),
            completed: 0,
        }
    }

    /// The newest epoch number.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Re-keys completed in this session.
    pub(crate) fn completed(&self) -> u64 {
        self.completed
    }

    /// Whether an exchange is in flight.
    pub(crate) fn in_progress(&self) -> bool {
        !matches!(self.pending, Pending::Idle)
    }

    /// What we wait for from the peer, and since when: its RekeyReply to
    /// our Init, or its RekeySwitch after our Reply.
    pub(crate) fn waiting_since(&self) -> Option<(Waiting, Instant)> {
        match &self.pending {
            Pending::Initiated { sent, .. } => Some((Waiting::Reply, *sent)),
            Pending::Replied {
                started: Some(t), ..
            } => Some((Waiting::Switch, *t)),
            _ => None,
        }
    }

    pub(crate) fn request(&mut self) {
        self.requested = true;
    }

    pub(crate) fn requested(&self) -> bool {
        self.requested
    }

    pub(crate) fn epoch_started(&self) -> Option<Instant> {
        self.epoch_started
    }

    /// Notes the time: starts the epoch clock if a switch reset it, stamps
    /// the peer's re-key we answered, and returns the re-keys finished since.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<RekeyDone> {
        self.epoch_started.get_or_insert(now);
        if let Pending::Replied { started, .. } = &mut self.pending {
            started.get_or_insert(now);
        }
        self.finished
            .drain(..)
            .map(|(epoch, initiator, started)| RekeyDone {
                epoch,
                initiator,
                duration: started.map_or(Duration::ZERO, |s| now.saturating_duration_since(s)),
            })
            .collect()
    }

    /// Abandons an exchange that can no longer finish (a Close ended the
    /// direction it needed); its secrets are dropped and zeroized.
    pub(crate) fn abandon(&mut self) {
        self.pending = Pending::Idle;
        self.requested = false;
    }

    /// Starts a re-key at `now`: the RekeyInit to send under the current
    /// epoch.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, Error> {
        if self.in_progress() {
            return Err(Error::Internal("a re-key is already in flight"));
        }
        let epoch = self
            .epoch
            .checked_add(1)
            .ok_or(Error::Internal("re-key epochs exhausted"))?;
        let (kx, x25519) = self.provider.kx.generate(rng);
        let (kem, mlkem) = self.provider.kem.generate(rng);
        let mut init = RekeyInit {
            epoch,
            x25519,
            mlkem,
            signature: [0u8; 64].into(),
        };
        init.signature = self
            .identity
            .sign(&init.signed(init_context(self.side), &self.session_hash))
            .into();
        let encoded = init.encoded();
        self.pending = Pending::Initiated {
            epoch,
            kx,
            kem,
            init: encoded.clone(),
            sent: now,
        };
        self.requested = false;
        Ok(encoded)
    }

    /// Secrets of epoch `epoch` from `dh`, `ss` and both messages; `E_(epoch-1)`
    /// is replaced (and zeroized). Returns (client→server, server→client)
    /// chains.
    fn advance(
        &mut self,
        epoch: u32,
        dh: &Secret,
        ss: &Secret,
        init: &[u8],
        reply: &[u8],
    ) -> Result<(Secret, Secret), Error> {
        let keys = derive_epoch(
            self.provider,
            &self.secret,
            &self.session_hash,
            epoch,
            dh,
            ss,
            init,
            reply,
        )?;
        self.secret = keys.secret;
        self.epoch = epoch;
        Ok((keys.c_chain0, keys.s_chain0))
    }

    fn ours_then_theirs(&self, c: Secret, s: Secret) -> (Secret, Secret) {
        match self.side {
            Side::Client => (c, s),
            Side::Server => (s, c),
        }
    }

    /// The peer's RekeyInit.
    pub(crate) fn on_init(
        &mut self,
        body: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<InitOutcome, Error> {
        let init = RekeyInit::decode(body)?;
        let expected = self.epoch.checked_add(1);
        match &self.pending {
            Pending::Replied { .. } => {
                return Err(Error::UnexpectedRecord {
                    what: "RekeyInit before the RekeySwitch of the re-key in flight",
                })
            }
            // Both sides started at once: the client's RekeyInit wins. The
            // server drops its own (its secrets zeroized) below.
            Pending::Initiated { epoch, .. }
                if init.epoch == *epoch && self.side == Side::Client =>
            {
                return Ok(InitOutcome::Ignore);
            }
            Pending::Initiated { epoch, .. } if init.epoch == *epoch => {}
            _ if Some(init.epoch) != expected => {
                return Err(Error::UnexpectedRecord {
                    what: "RekeyInit for another epoch",
                })
            }
            _ => {}
        }
        self.provider
            .signature
            .verify(
                &self.peer_key,
                &init.signed(init_context(other(self.side)), &self.session_hash),
                &init.signature,
            )
            .map_err(|_| Error::Rekey(RekeyError::BadSignature))?;
        self.provider
            .kem
            .check_encapsulation_key(&init.mlkem)
            .map_err(|_| Error::Rekey(RekeyError::BadShare))?;
        self.pending = Pending::Idle;
        let (kx, x25519) = self.provider.kx.generate(rng);
        let dh = kx
            .agree(&init.x25519)
            .map_err(|_| Error::Rekey(RekeyError::BadShare))?;
        let (ct, ss) = self
            .provider
            .kem
            .encapsulate(&init.mlkem, rng)
            .map_err(|_| Error::Rekey(RekeyError::BadShare))?;
        let mut reply = RekeyReply {
            epoch: init.epoch,
            x25519,
            mlkem: ct,
            signature: [0u8; 64].into(),
        };
        let init_hash = self.provider.hash.hash(body);
        reply.signature = self
            .identity
            .sign(&reply.signed(reply_context(self.side), &self.session_hash, &init_hash))
            .into();
        let encoded = reply.encoded();
        let (c, s) = self.advance(init.epoch, &dh, &ss, body, &encoded)?;
        let (write_chain, read_chain) = self.ours_then_theirs(c, s);
        self.pending = Pending::Replied {
            epoch: init.epoch,
            read_chain,
            started: None,
        };
        Ok(InitOutcome::Reply {
            reply: encoded,
            write_chain,
        })
    }

    /// The peer's RekeyReply to our RekeyInit.
    pub(crate) fn on_reply(&mut self, body: &[u8]) -> Result<ReplyOutcome, Error> {
        let reply = RekeyReply::decode(body)?;
        let Pending::Initiated { epoch, .. } = &self.pending else {
            return Err(Error::UnexpectedRecord {
                what: "RekeyReply without a RekeyInit",
            });
        };
        if reply.epoch != *epoch {
            return Err(Error::UnexpectedRecord {
                what: "RekeyReply for another epoch",
            });
        }
        let Pending::Initiated {
            epoch,
            kx,
            kem,
            init,
            sent,
        } = core::mem::replace(&mut self.pending, Pending::Idle)
        else {
            return Err(Error::Internal("re-key state changed"));
        };
        let init_hash = self.provider.hash.hash(&init);
        self.provider
            .signature
            .verify(
                &self.peer_key,
                &reply.signed(
                    reply_context(other(self.side)),
                    &self.session_hash,
                    &init_hash,
                ),
                &reply.signature,
            )
            .map_err(|_| Error::Rekey(RekeyError::BadSignature))?;
        let dh = kx
            .agree(&reply.x25519)
            .map_err(|_| Error::Rekey(RekeyError::BadShare))?;
        let ss = kem
            .decapsulate(&reply.mlkem)
            .map_err(|_| Error::Rekey(RekeyError::BadShare))?;
        drop(kem);
        let (c, s) = self.advance(epoch, &dh, &ss, &init, body)?;
        let (write_chain, read_chain) = self.ours_then_theirs(c, s);
        self.finish(epoch, self.side, Some(sent));
        Ok(ReplyOutcome {
            read_chain,
            write_chain,
            switch: RekeySwitch { epoch }.encoded(),
        })
    }

    /// The peer's RekeySwitch: its records from now on open with the chain
    /// returned.
    pub(crate) fn on_switch(&mut self, body: &[u8]) -> Result<Secret, Error> {
        let switch = RekeySwitch::decode(body)?;
        match core::mem::replace(&mut self.pending, Pending::Idle) {
            Pending::Replied {
                epoch,
                read_chain,
                started,
            } if epoch == switch.epoch => {
                self.finish(epoch, other(self.side), started);
                Ok(read_chain)
            }
            other => {
                self.pending = other;
                Err(Error::UnexpectedRecord {
                    what: "RekeySwitch without a re-key in flight for its epoch",
                })
            }
        }
    }

    fn finish(&mut self, epoch: u32, initiator: Side, started: Option<Instant>) {
        self.completed += 1;
        self.epoch_started = None;
        self.finished.push((epoch, initiator, started));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The vector of SPEC §15.6: fixed inputs, every output of §15.3.
    #[test]
    fn the_spec_vector() {
        let init = RekeyInit {
            epoch: 1,
            x25519: [0x11; 32].into(),
            mlkem: [0x22; 1184].into(),
            signature: [0x33; 64].into(),
        }
        .encoded();
        let reply = RekeyReply {
            epoch: 1,
            x25519: [0x44; 32].into(),
            mlkem: [0x55; 1088].into(),
            signature: [0x66; 64].into(),
        }
        .encoded();
        let keys = derive_epoch(
            &sc_handshake::RUSTCRYPTO,
            &Secret::new([0x01; 32]),
            &[0x02; 32],
            1,
            &Secret::new([0x03; 32]),
            &Secret::new([0x04; 32]),
            &init,
            &reply,
        )
        .expect("derive");
        let got = [
            hex(&keys.rk_th),
            hex(keys.secret.expose()),
            hex(keys.c_chain0.expose()),
            hex(keys.s_chain0.expose()),
        ];
        assert_eq!(got, VECTOR, "{got:#?}");
    }

    /// rk_th, E₁, c_chain₀ and s_chain₀ of epoch 1; checked independently
    /// with Python's hashlib/hmac (SPEC §15.6).
    const VECTOR: [&str; 4] = [
        "eb6139ed88e88601f4aeacaf8240b226028404d06885aba16ece8b1bf48f31a3",
        "97783b20a3bf9b2e06eec517699245f37d926df480a9c18eb74ff530bc7f5210",
        "12c9c1dd0dfa29d2f23174859ae02208697fa6fc7115a452a98e1dd157db86bf",
        "28c52010f34942903472bbefb1be2956a5d576782987298b7fb5f964bc9cee46",
    ];
}
