//! `SignatureCache`: the Ed25519 checks of certificate chains and CRLs that
//! succeeded, remembered across verifications by one verifier, so that a
//! server seeing the same client intermediate a thousand times checks its
//! signature once.
//!
//! An Ed25519 check (`verify_strict`) is a pure function of its public key,
//! message and signature, so remembering its answer changes no decision.
//! Only successes are remembered: a cached entry says no more than "this
//! exact triple verified", and a check that failed is made again every time
//! it is asked, so nothing an attacker sends can make a later check pass or
//! fail.
//!
//! Bounded: at most `capacity` entries of 32 bytes (a SHA-256 of the triple;
//! see [`CacheKey`]), in a ring of at most that many slots with an index of
//! the same keys; when the ring is full a new entry takes the slot of an old one
//! (CLOCK, "second chance": an entry found since the hand last passed it is
//! skipped once). Nothing else is stored, so no input can make it grow.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest, Sha256};

/// The capacity of a new verifier's cache: 4096 entries (a ring of 4096
/// slots of 33 bytes and a B-tree index of the same keys with their
/// positions, about 0.4 MiB together when full; nothing until the first
/// entry). A client chain root → intermediate → leaf takes one entry per
/// certificate below the root, and one per CRL consulted; the
/// intermediate's is shared by every client it issued.
pub const DEFAULT_SIGNATURE_CACHE: usize = 4096;

/// Labels the encoding hashed into a [`CacheKey`], so that no other SHA-256
/// in this code base can be taken for one.
const KEY_LABEL: &[u8] = b"Sovereign-Chain sc-pki verified Ed25519 signature v1\0";

/// The SHA-256 of an unambiguous encoding of (public key, signature,
/// message): a label, then each of the three prefixed with its length as a
/// 64-bit big-endian number. The encoding is injective (the lengths say
/// where each part ends), so two distinct triples have the same key only if
/// they are a SHA-256 collision; finding one for a triple in the cache would
/// take a second preimage. So a key found in the cache stands for the one
/// triple that was verified.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct CacheKey([u8; 32]);

impl CacheKey {
    pub(super) fn of(public_key: &[u8], message: &[u8], signature: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update(KEY_LABEL);
        for part in [public_key, signature, message] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        Self(hash.finalize().into())
    }
}

/// Successful Ed25519 checks, remembered; see the module documentation.
/// Shared by clones of a verifier (it holds nothing but facts about
/// signatures, true for any verifier); a verifier made anew (a reload)
/// starts with an empty one.
pub(super) struct SignatureCache {
    capacity: usize,
    state: Mutex<Clock>,
}

/// The ring and its index. Invariant: `index` maps each key of `slots` to
/// its position, and `slots.len() <= capacity`.
#[derive(Default)]
struct Clock {
    slots: Vec<Slot>,
    index: BTreeMap<CacheKey, usize>,
    /// The next slot to consider for eviction.
    hand: usize,
}

struct Slot {
    key: CacheKey,
    /// Found since the hand last passed: skipped once by eviction.
    referenced: bool,
}

impl SignatureCache {
    /// An empty cache of at most `capacity` entries; 0 remembers nothing.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(Clock::default()),
        }
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` by
    /// `public_key`, as `check` (the Ed25519 check of exactly this triple)
    /// says: answered from the cache if this triple verified before, else
    /// checked, and remembered if valid. The cache knows nothing of Ed25519
    /// itself: the check is the caller's.
    pub(super) fn verify(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
        check: impl FnOnce() -> bool,
    ) -> bool {
        if self.capacity == 0 {
            return check();
        }
        // Hashing and checking happen outside the lock; it is held only to
        // look up or insert 32 bytes.
        let key = CacheKey::of(public_key, message, signature);
        if self.contains(&key) {
            return true;
        }
        let valid = check();
        if valid {
            self.insert(key);
        }
        valid
    }

    /// Whether `key` is remembered (and, if so, marks it as used).
    fn contains(&self, key: &CacheKey) -> bool {
        let mut state = self.lock();
        let Some(&at) = state.index.get(key) else {
            return false;
        };
        if let Some(slot) = state.slots.get_mut(at) {
            slot.referenced = true;
        }
        true
    }

    /// Remembers `key`, in a free slot or in place of the first entry the
    /// hand finds unused since it last passed.
    fn insert(&self, key: CacheKey) {
        let capacity = self.capacity;
        let mut state = self.lock();
        let clock = &mut *state;
        if capacity == 0 || clock.index.contains_key(&key) {
            return;
        }
        if clock.slots.len() < capacity {
            if clock.slots.capacity() == 0 {
                clock.slots.reserve_exact(capacity);
            }
            clock.index.insert(key, clock.slots.len());
            clock.slots.push(Slot {
                key,
                referenced: false,
            });
            return;
        }
        // Full: at most one turn clears every mark, so this ends within
        // `capacity + 1` steps.
        loop {
            let at = clock.hand % capacity;
            clock.hand = (at + 1) % capacity;
            let Some(slot) = clock.slots.get_mut(at) else {
                return;
            };
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            let old = std::mem::replace(
                slot,
                Slot {
                    key,
                    referenced: false,
                },
            );
            clock.index.remove(&old.key);
            clock.index.insert(key, at);
            return;
        }
    }

    /// The number of entries remembered.
    pub(super) fn len(&self) -> usize {
        self.lock().index.len()
    }

    /// The most entries it remembers.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The slots allocated for the ring (tests only): never more than the
    /// capacity.
    #[cfg(test)]
    pub(super) fn allocated_for_testing_only(&self) -> usize {
        self.lock().slots.capacity()
    }

    fn lock(&self) -> MutexGuard<'_, Clock> {
        match self.state.lock() {
            Ok(state) => state,
            // A panic while the lock was held may have left the ring and
            // its index out of step: start again empty (everything in it was
            // verified, but an empty cache is surely within its bound).
            Err(poisoned) => {
                let mut state = poisoned.into_inner();
                *state = Clock::default();
                self.state.clear_poison();
                state
            }
        }
    }
}

impl fmt::Debug for SignatureCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ed25519::{signature_checks_for_testing_only, verify_ed25519};
    use super::*;

    impl SignatureCache {
        /// [`verify`](Self::verify) with the real Ed25519 check.
        pub(in crate::verify) fn check(
            &self,
            public_key: &[u8],
            message: &[u8],
            signature: &[u8],
        ) -> bool {
            self.verify(public_key, message, signature, || {
                verify_ed25519(public_key, message, signature)
            })
        }
    }
    use crate::test_util::rng;
    use crate::KeyPair;

    /// `count` distinct valid triples by one key.
    fn signed(key: &KeyPair, count: usize) -> Vec<(Vec<u8>, [u8; 64])> {
        (0..count)
            .map(|i| {
                let message = format!("message {i}").into_bytes();
                let signature = key.sign(&message);
                (message, signature)
            })
            .collect()
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let key = KeyPair::generate(&mut rng(150));
        let public = key.public_key();
        let cache = SignatureCache::new(16);
        assert_eq!((cache.len(), cache.allocated_for_testing_only()), (0, 0));
        for (i, (message, signature)) in signed(&key, 1000).iter().enumerate() {
            assert!(cache.check(&public, message, signature));
            assert_eq!(cache.len(), (i + 1).min(16));
            assert!(cache.allocated_for_testing_only() <= cache.capacity());
        }
        assert_eq!(cache.len(), 16);
        assert_eq!(cache.lock().slots.len(), 16);
        // The ring and the index hold the same keys.
        let state = cache.lock();
        for (at, slot) in state.slots.iter().enumerate() {
            assert_eq!(state.index.get(&slot.key), Some(&at));
        }
    }

    #[test]
    fn an_entry_in_use_outlives_a_stream_of_new_ones() {
        let key = KeyPair::generate(&mut rng(151));
        let public = key.public_key();
        let cache = SignatureCache::new(8);
        let triples = signed(&key, 201);
        let (hot, rest) = triples.split_first().expect("triples");
        assert!(cache.check(&public, &hot.0, &hot.1));
        for (message, signature) in rest {
            assert!(cache.check(&public, message, signature));
            // The hot entry is asked for again after every new one: always
            // found, never checked again.
            let before = signature_checks_for_testing_only();
            assert!(cache.check(&public, &hot.0, &hot.1));
            assert_eq!(signature_checks_for_testing_only(), before);
        }
        // An entry not asked for again is gone after `capacity` new ones.
        let before = signature_checks_for_testing_only();
        assert!(cache.check(&public, &rest[0].0, &rest[0].1));
        assert_eq!(signature_checks_for_testing_only(), before + 1);
    }

    #[test]
    fn a_failed_check_is_never_remembered() {
        let key = KeyPair::generate(&mut rng(152));
        let other = KeyPair::generate(&mut rng(153));
        let public = key.public_key();
        let message = b"tbsCertificate".as_slice();
        let good = key.sign(message);
        let mut bad = good;
        bad[10] ^= 0x01;
        let cache = SignatureCache::new(4);
        let checks = signature_checks_for_testing_only;

        // A bad signature first: refused, checked, not remembered.
        let before = checks();
        assert!(!cache.check(&public, message, &bad));
        assert_eq!((checks() - before, cache.len()), (1, 0));
        // The good one: checked once, then found.
        assert!(cache.check(&public, message, &good));
        assert!(cache.check(&public, message, &good));
        assert_eq!((checks() - before, cache.len()), (2, 1));
        // The bad one again, with the same key and message: checked again
        // and refused again; so is a changed message, another key, and
        // signature bytes of the wrong length.
        assert!(!cache.check(&public, message, &bad));
        assert!(!cache.check(&public, b"tbsCertificatE", &good));
        assert!(!cache.check(&other.public_key(), message, &good));
        assert_eq!(checks() - before, 5);
        assert!(!cache.check(&public, message, &good[..63]));
        assert!(!cache.check(&public[..31], message, &good));
        assert_eq!(cache.len(), 1);
        // Without a capacity nothing is remembered.
        let none = SignatureCache::new(0);
        assert!(none.check(&public, message, &good));
        assert!(none.check(&public, message, &good));
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn keys_tell_the_parts_apart() {
        // Moving bytes from one part to the next changes the key.
        let a = CacheKey::of(b"ab", b"c", b"d");
        assert!(a != CacheKey::of(b"a", b"bc", b"d"));
        assert!(a != CacheKey::of(b"ab", b"", b"cd"));
        assert!(a != CacheKey::of(b"ab", b"d", b"c"));
        assert!(a == CacheKey::of(b"ab", b"c", b"d"));
    }
}
