//! The seed-code ratchet: one key and nonce per record, one-way chains per
//! direction.
//!
//! ```text
//! chain₀ (application) = HKDF-Extract(salt = seed code, IKM = c_ap / s_ap)   (from sc-handshake)
//! chain₀ (handshake)   = c_hs / s_hs traffic secret                            (from sc-handshake)
//! key_n || nonce_n || chain_{n+1} = Expand-Label(chain_n, "c record" | "s record", "", 76)
//! ```
//!
//! Record `n` is sealed under `key_n` and `nonce_n`; then `chain_n` is replaced
//! by `chain_{n+1}` and erased. Nothing a side holds after record `n` can
//! recompute `key_n` or any earlier key (HKDF is one-way). The label differs
//! per direction, so a record can never be reflected back to its sender.

use sc_handshake::crypto::{Aead, CryptoProvider, AEAD_KEY_LEN, NONCE_LEN, TAG_LEN};
use sc_handshake::schedule::expand_label;
use sc_handshake::Secret;
use sc_wire::record::{put_inner_trailer, split_inner, MAX_FRAGMENT_LEN, RECORD_HEADER_LEN};
use sc_wire::{CipherSuite, InnerType, RecordHeader, RecordKind};
use zeroize::{Zeroize, Zeroizing};

use crate::error::Error;

/// Label of the client→server record chain.
pub const LABEL_C_RECORD: &[u8] = b"c record";
/// Label of the server→client record chain.
pub const LABEL_S_RECORD: &[u8] = b"s record";

/// Which way records travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    ClientToServer,
    /// Server to client.
    ServerToClient,
}

impl Direction {
    fn label(self) -> &'static [u8] {
        match self {
            Self::ClientToServer => LABEL_C_RECORD,
            Self::ServerToClient => LABEL_S_RECORD,
        }
    }
}

/// The per-record key material: zeroized on drop.
struct RecordKeys {
    key: Zeroizing<[u8; AEAD_KEY_LEN]>,
    nonce: [u8; NONCE_LEN],
    next: Secret,
}

/// One direction's chain.
struct Ratchet {
    provider: &'static CryptoProvider,
    direction: Direction,
    chain: Secret,
    seq: u64,
    /// Sealed bytes (record bodies) through this chain.
    bytes: u64,
}

impl Ratchet {
    /// The keys of the current record; the state does not change.
    fn keys(&self) -> Result<RecordKeys, Error> {
        let mut okm = Zeroizing::new([0u8; AEAD_KEY_LEN + NONCE_LEN + 32]);
        expand_label(
            self.provider,
            &self.chain,
            self.direction.label(),
            &[],
            &mut okm[..],
        )
        .map_err(|_| Error::Internal("record key derivation failed"))?;
        let mut key = Zeroizing::new([0u8; AEAD_KEY_LEN]);
        key.copy_from_slice(&okm[..AEAD_KEY_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&okm[AEAD_KEY_LEN..AEAD_KEY_LEN + NONCE_LEN]);
        let next = Secret::from_slice(&okm[AEAD_KEY_LEN + NONCE_LEN..])
            .ok_or(Error::Internal("record key derivation failed"))?;
        Ok(RecordKeys { key, nonce, next })
    }

    /// Moves to the next record (of `len` sealed bytes): the old chain key
    /// is dropped and zeroized.
    fn advance(&mut self, next: Secret, len: usize) -> Result<(), Error> {
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or(Error::Internal("record sequence exhausted"))?;
        self.bytes = self.bytes.saturating_add(len as u64);
        self.chain = next;
        Ok(())
    }
}

impl core::fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ratchet")
            .field("direction", &self.direction)
            .field("seq", &self.seq)
            .finish()
    }
}

/// Seals one direction's records.
#[derive(Debug)]
pub struct RecordSealer {
    aead: &'static dyn Aead,
    ratchet: Ratchet,
}

/// Opens one direction's records.
#[derive(Debug)]
pub struct RecordOpener {
    aead: &'static dyn Aead,
    ratchet: Ratchet,
}

fn new_ratchet(
    provider: &'static CryptoProvider,
    suite: CipherSuite,
    direction: Direction,
    chain0: Secret,
) -> Result<(&'static dyn Aead, Ratchet), Error> {
    let aead = provider
        .aead(suite)
        .ok_or(Error::Internal("negotiated AEAD is not available"))?;
    Ok((
        aead,
        Ratchet {
            provider,
            direction,
            chain: chain0,
            seq: 0,
            bytes: 0,
        },
    ))
}

impl RecordSealer {
    /// A sealer for `direction` starting at `chain0`.
    pub fn new(
        provider: &'static CryptoProvider,
        suite: CipherSuite,
        direction: Direction,
        chain0: Secret,
    ) -> Result<Self, Error> {
        let (aead, ratchet) = new_ratchet(provider, suite, direction, chain0)?;
        Ok(Self { aead, ratchet })
    }

    /// How many records have been sealed.
    pub fn seq(&self) -> u64 {
        self.ratchet.seq
    }

    /// How many bytes (record bodies) have been sealed.
    pub fn bytes(&self) -> u64 {
        self.ratchet.bytes
    }

    /// Seals `content` as one record of inner type `typ` with `pad` zero bytes
    /// of padding, appending the whole record (header included) to `out`.
    pub fn seal(
        &mut self,
        typ: InnerType,
        content: &[u8],
        pad: u16,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        self.seal_parts(typ, &[content], pad, out)
    }

    /// As [`seal`](Self::seal), the content given in parts (copied once,
    /// straight into `out`).
    pub fn seal_parts(
        &mut self,
        typ: InnerType,
        parts: &[&[u8]],
        pad: u16,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let content_len: usize = parts.iter().map(|p| p.len()).sum();
        if content_len + usize::from(pad) > MAX_FRAGMENT_LEN {
            return Err(Error::Internal("record content over the fragment limit"));
        }
        out.reserve(Self::overhead(pad) + content_len);
        let at = Self::begin(out);
        for p in parts {
            out.extend_from_slice(p);
        }
        self.seal_begun(typ, pad, out, at)
    }

    /// What a record adds to `pad` bytes of padding and its content: header,
    /// inner trailer and tag.
    pub fn overhead(pad: u16) -> usize {
        RECORD_HEADER_LEN + usize::from(pad) + sc_wire::record::INNER_TRAILER_LEN + TAG_LEN
    }

    /// Starts a record at the end of `out`, for content the caller appends
    /// itself (plaintext read from a socket straight into the record): room
    /// for the header, which [`seal_begun`](Self::seal_begun) writes once
    /// the content's length is known. Returns where the record starts.
    pub fn begin(out: &mut Vec<u8>) -> usize {
        let at = out.len();
        out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
        at
    }

    /// Drops the record begun at `at` (or anything from there on): its
    /// bytes are wiped, then cut off, so no plaintext stays behind in the
    /// buffer's spare room.
    pub fn discard(out: &mut Vec<u8>, at: usize) {
        let at = at.min(out.len());
        out[at..].zeroize();
        out.truncate(at);
    }

    /// Seals the record [`begin`](Self::begin) started at `at`, whose
    /// content is everything appended to `out` since, in place: its header,
    /// then `pad` zero bytes, the inner trailer and the tag. On an error
    /// nothing of the record stays in `out` (its plaintext is wiped).
    pub fn seal_begun(
        &mut self,
        typ: InnerType,
        pad: u16,
        out: &mut Vec<u8>,
        at: usize,
    ) -> Result<(), Error> {
        let start = at + RECORD_HEADER_LEN;
        let content_len = out.len().saturating_sub(start);
        if out.len() < start || content_len + usize::from(pad) > MAX_FRAGMENT_LEN {
            Self::discard(out, at);
            return Err(Error::Internal("record content over the fragment limit"));
        }
        let len = content_len + usize::from(pad) + sc_wire::record::INNER_TRAILER_LEN + TAG_LEN;
        let header = RecordHeader {
            kind: RecordKind::SEALED,
            len,
        }
        .to_bytes();
        let keys = match self.ratchet.keys() {
            Ok(keys) => keys,
            Err(e) => {
                Self::discard(out, at);
                return Err(e);
            }
        };
        out[at..start].copy_from_slice(&header);
        put_inner_trailer(out, typ, pad);
        let tag = match self
            .aead
            .seal_in_place(&keys.key, &keys.nonce, &header, &mut out[start..])
        {
            Ok(tag) => tag,
            Err(_) => {
                // Nothing of a record that failed stays behind: not its
                // header, and not its plaintext (wiped before the cut).
                Self::discard(out, at);
                return Err(Error::Internal("AEAD seal failed"));
            }
        };
        out.extend_from_slice(&tag);
        self.ratchet.advance(keys.next, len)
    }

    #[doc(hidden)]
    /// The current chain key. Only for tests that show what a stolen state can
    /// and cannot open.
    pub fn chain_for_testing_only(&self) -> Secret {
        self.ratchet.chain.clone()
    }
}

impl RecordOpener {
    /// An opener for `direction` starting at `chain0`.
    pub fn new(
        provider: &'static CryptoProvider,
        suite: CipherSuite,
        direction: Direction,
        chain0: Secret,
    ) -> Result<Self, Error> {
        let (aead, ratchet) = new_ratchet(provider, suite, direction, chain0)?;
        Ok(Self { aead, ratchet })
    }

    /// How many records have been opened.
    pub fn seq(&self) -> u64 {
        self.ratchet.seq
    }

    /// How many bytes (record bodies) have been opened.
    pub fn bytes(&self) -> u64 {
        self.ratchet.bytes
    }

    /// Opens a sealed record in place: checks the tag (header as AAD) under
    /// this position's key, and only then moves the chain on. A record that
    /// fails leaves the opener exactly as it was.
    pub fn open<'a>(
        &mut self,
        header: RecordHeader,
        body: &'a mut [u8],
    ) -> Result<(InnerType, &'a [u8]), Error> {
        let Some(ct_len) = body.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptFailed);
        };
        let (ct, tag) = body.split_at_mut(ct_len);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let keys = self.ratchet.keys()?;
        self.aead
            .open_in_place(&keys.key, &keys.nonce, &header.to_bytes(), ct, &tag_bytes)
            .map_err(|_| Error::DecryptFailed)?;
        self.ratchet.advance(keys.next, ct_len + TAG_LEN)?;
        Ok(split_inner(ct)?)
    }
}
