//! The order of steps 7–10, derived from the order seed of step 6.
//!
//! ```text
//! prk   = HKDF-Extract(salt = "Sovereign-Chain/1 step order", IKM = order seed)
//! x_i   = u64 from Expand-Label(prk, "order", [i], 8)       i = 0, 1, 2, …
//! index = x_i mod 24  for the first i with x_i < 2^64 − (2^64 mod 24)   (rejection sampling)
//! order = the index-th permutation of (7, 8, 9, 10) in lexicographic order
//! ```
//!
//! Rejection sampling makes every one of the 24 orders exactly equally likely
//! given a uniform seed; the chance that a draw is rejected is 16 / 2^64.

use core::fmt;

use sc_wire::{HandshakeType, OrderSeed};

use crate::crypto::{CryptoError, CryptoProvider};
use crate::schedule::{expand_label, LABEL_ORDER, ORDER_SALT};

/// Number of possible orders of steps 7–10.
pub const ORDER_COUNT: u8 = 24;

/// One of the 24 orders of steps 7–10.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepOrder {
    index: u8,
    steps: [u8; 4],
}

impl StepOrder {
    /// The `index`-th permutation (0–23) of steps 7–10 in lexicographic order;
    /// `None` if `index` is 24 or more.
    pub fn from_index(index: u8) -> Option<Self> {
        if index >= ORDER_COUNT {
            return None;
        }
        // Factorial number system (Lehmer code): digits of index in bases 6, 2, 1.
        let mut pool = vec![7u8, 8, 9, 10];
        let mut rest = usize::from(index);
        let mut steps = [0u8; 4];
        for (i, radix) in [6usize, 2, 1, 1].into_iter().enumerate() {
            let pick = rest / radix;
            rest %= radix;
            steps[i] = pool.remove(pick);
        }
        Some(Self { index, steps })
    }

    /// The order selected by `seed`.
    pub fn from_seed(provider: &CryptoProvider, seed: &OrderSeed) -> Result<Self, CryptoError> {
        const LIMIT: u64 = u64::MAX - (u64::MAX % ORDER_COUNT as u64) - 1;
        let prk = provider.hash.hkdf_extract(ORDER_SALT, &[seed.expose()]);
        let mut x = 0u64;
        for counter in 0..=u8::MAX {
            let mut bytes = [0u8; 8];
            expand_label(provider, &prk, LABEL_ORDER, &[counter], &mut bytes)?;
            x = u64::from_be_bytes(bytes);
            if x <= LIMIT {
                break;
            }
        }
        // After 256 rejections (probability 2^-15360) the last draw is used.
        Self::from_index((x % u64::from(ORDER_COUNT)) as u8).ok_or(CryptoError)
    }

    /// All 24 orders.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..ORDER_COUNT).filter_map(Self::from_index)
    }

    /// This order's index (0–23).
    pub fn index(self) -> u8 {
        self.index
    }

    /// Steps 7–10 in this order.
    pub fn steps(self) -> [HandshakeType; 4] {
        self.steps.map(HandshakeType)
    }

    /// The steps of this order sent by one side, in the order they are sent:
    /// 7 and 9 for the server, 8 and 10 for the client.
    pub fn sent_by(self, server: bool) -> [HandshakeType; 2] {
        let mine = |s: &&u8| (**s % 2 == 1) == server;
        let mut it = self.steps.iter().filter(mine).map(|s| HandshakeType(*s));
        let first = it.next().unwrap_or(HandshakeType(0));
        let second = it.next().unwrap_or(HandshakeType(0));
        [first, second]
    }
}

impl fmt::Display for StepOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.steps;
        write!(f, "{a} → {b} → {c} → {d}")
    }
}

impl fmt::Debug for StepOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StepOrder#{}({self})", self.index)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::crypto::RUSTCRYPTO;

    #[test]
    fn indices_are_the_24_distinct_permutations() {
        let all: Vec<_> = StepOrder::all().collect();
        assert_eq!(all.len(), 24);
        let distinct: HashSet<[u8; 4]> = all.iter().map(|o| o.steps).collect();
        assert_eq!(distinct.len(), 24);
        for o in &all {
            let mut s = o.steps;
            s.sort_unstable();
            assert_eq!(s, [7, 8, 9, 10]);
        }
        assert_eq!(all[0].steps, [7, 8, 9, 10]);
        assert_eq!(all[23].steps, [10, 9, 8, 7]);
        assert!(StepOrder::from_index(24).is_none());
    }

    #[test]
    fn each_side_sends_its_own_two_steps_in_order() {
        let o = StepOrder::from_index(23).expect("valid index"); // 10, 9, 8, 7
        assert_eq!(o.sent_by(true), [HandshakeType(9), HandshakeType(7)]);
        assert_eq!(o.sent_by(false), [HandshakeType(10), HandshakeType(8)]);
    }

    /// A chi-square test of uniformity over 48,000 seeds (23 degrees of
    /// freedom; the 99.99th percentile is 55.0). The seeds are a fixed
    /// sequence, so the test is deterministic.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "48,000 HKDF derivations take hours under Miri; `cargo test` runs it"
    )]
    fn orders_are_uniform() {
        const N: usize = 48_000;
        let mut counts = [0usize; 24];
        for i in 0..N {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let o = StepOrder::from_seed(&RUSTCRYPTO, &OrderSeed::new(seed)).expect("derives");
            counts[usize::from(o.index())] += 1;
        }
        let expected = N as f64 / 24.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 55.0, "chi-square {chi2:.1} over counts {counts:?}");
    }
}
