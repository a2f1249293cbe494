//! The one signature algorithm rustls-webpki checks chains and CRLs with:
//! Ed25519 (RFC 8410), on ed25519-dalek; and `SignatureBudget`, the same
//! algorithm with one budget for all the checks of one verification,
//! answered from a verifier's `SignatureCache` where it has one.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use ed25519_dalek::{Signature, VerifyingKey};
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm,
};

use super::cache::SignatureCache;

/// Ed25519 (RFC 8410) signature verification for rustls-webpki, on
/// ed25519-dalek's `verify_strict`.
#[derive(Debug)]
struct Ed25519Verify;

impl SignatureVerificationAlgorithm for Ed25519Verify {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        if verify_ed25519(public_key, message, signature) {
            Ok(())
        } else {
            Err(InvalidSignature)
        }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}

/// Whether `signature` is a valid Ed25519 signature of `message` by
/// `public_key` (ed25519-dalek's `verify_strict`): the one check behind
/// certificate chains, CRLs and certification requests.
pub(crate) fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(public_key) = <&[u8; 32]>::try_from(public_key) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    #[cfg(test)]
    CHECKS.with(|checks| checks.set(checks.get() + 1));
    key.verify_strict(message, &signature).is_ok()
}

#[cfg(test)]
thread_local! {
    /// Ed25519 verifications made on this thread (tests only).
    static CHECKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The number of Ed25519 verifications made so far on this thread (tests
/// only: other builds have no counter).
#[cfg(test)]
pub(super) fn signature_checks_for_testing_only() -> u64 {
    CHECKS.with(std::cell::Cell::get)
}

/// The signature algorithms accepted in certificate chains (and CRLs): Ed25519 only.
pub static SUPPORTED_SIG_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[&Ed25519Verify];

/// Ed25519 for the checks of one verification, under one budget.
///
/// rustls-webpki's path search asks for the same check (key, message,
/// signature) once for every candidate path through it, and a re-check at
/// another time within the clock skew asks again: each distinct check is
/// made once and its answer remembered. At most `limit` distinct checks are
/// made; any further one is refused without being made, and
/// [`exhausted`](Self::exhausted) then says so. rustls-webpki's own budget
/// (100 checks, asked or answered from memory) applies to each search on
/// top.
///
/// With a [`SignatureCache`] ([`with_cache`](Self::with_cache)), a check
/// not yet made in this verification is answered from the cache if that
/// triple verified before, else made (and remembered there if valid). A
/// check answered from the cache costs no Ed25519 verification but still
/// counts against `limit`: the budget then runs out at the same point of the
/// path search as without the cache, so the cache changes no decision, only
/// the work.
pub(super) struct SignatureBudget<'c> {
    limit: usize,
    cache: Option<&'c SignatureCache>,
    state: Mutex<BudgetState>,
}

#[derive(Default)]
struct BudgetState {
    made: Vec<Check>,
    exhausted: bool,
}

/// A check made, and its answer.
struct Check {
    public_key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
    valid: bool,
}

impl<'c> SignatureBudget<'c> {
    /// At most `limit` distinct checks, each made.
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            cache: None,
            state: Mutex::new(BudgetState::default()),
        }
    }

    /// At most `limit` distinct checks, each answered from `cache` or made.
    pub(super) fn with_cache(limit: usize, cache: &'c SignatureCache) -> Self {
        Self {
            cache: Some(cache),
            ..Self::new(limit)
        }
    }

    /// The most distinct checks made.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether a check was refused because the budget was spent.
    pub(super) fn exhausted(&self) -> bool {
        self.lock().exhausted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        // Nothing can be left half-updated: every update is one push or one store.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SignatureBudget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SignatureBudget")
            .field("limit", &self.limit)
            .field("made", &state.made.len())
            .field("exhausted", &state.exhausted)
            .field("cached", &self.cache.is_some())
            .finish()
    }
}

impl SignatureVerificationAlgorithm for SignatureBudget<'_> {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let mut state = self.lock();
        let known = state.made.iter().find(|check| {
            check.signature == signature
                && check.public_key == public_key
                && check.message == message
        });
        let valid = match known {
            Some(check) => check.valid,
            None if state.made.len() >= self.limit => {
                state.exhausted = true;
                false
            }
            None => {
                let valid = match self.cache {
                    Some(cache) => cache.verify(public_key, message, signature, || {
                        verify_ed25519(public_key, message, signature)
                    }),
                    None => verify_ed25519(public_key, message, signature),
                };
                state.made.push(Check {
                    public_key: public_key.to_vec(),
                    message: message.to_vec(),
                    signature: signature.to_vec(),
                    valid,
                });
                valid
            }
        };
        if valid {
            Ok(())
        } else {
            Err(InvalidSignature)
        }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}
