//! The one signature algorithm rustls-webpki checks chains and CRLs with:
//! Ed25519 (RFC 8410), on ed25519-dalek.

use ed25519_dalek::{Signature, VerifyingKey};
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm,
};

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
        let public_key = <&[u8; 32]>::try_from(public_key).map_err(|_| InvalidSignature)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature = Signature::from_slice(signature).map_err(|_| InvalidSignature)?;
        key.verify_strict(message, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}

/// The signature algorithms accepted in certificate chains (and CRLs): Ed25519 only.
pub static SUPPORTED_SIG_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[&Ed25519Verify];
