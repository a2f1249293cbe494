//! **INSECURE. FOR FUZZING ONLY.** A crypto provider whose checks always pass.
//!
//! This module exists only when the crate is compiled with `--cfg fuzzing`
//! (cargo-fuzz sets it for every crate it builds); no normal build, test or
//! release contains it. It lets a fuzzer that mutates handshake messages and
//! records get past the MACs, signatures and AEAD tags that would otherwise
//! stop every mutated input at the first check, so the code behind those
//! checks (the later states of both state machines, the record layer after
//! the handshake) is reached at all. rustls does the same for its fuzzers.
//!
//! What it does instead of cryptography:
//!
//! * the AEADs are the identity: `seal` leaves the plaintext as it is and
//!   returns an all-zero tag; `open` accepts any tag and leaves the bytes;
//! * `hmac_verify` always succeeds (HMAC itself is still computed, so both
//!   sides of an in-memory handshake agree);
//! * signature verification always succeeds.
//!
//! SHA-256, HKDF, X25519 and ML-KEM-768 are the real RustCrypto ones: the
//! key schedule still runs, and the X25519 all-zero check and the FIPS 203
//! modulus check on received ML-KEM keys are still fuzzed.
//!
//! Nothing here authenticates or hides anything.

use super::rustcrypto;
use super::*;

/// **INSECURE, FUZZING ONLY**: every MAC, signature and AEAD tag check
/// passes, and the AEADs do not encrypt. Exists only under `cfg(fuzzing)`.
pub static INSECURE_FUZZING_ONLY: CryptoProvider = CryptoProvider {
    name: "INSECURE fuzzing-only provider: no MAC, signature or AEAD check",
    aeads: &[
        &IdentityAead(CipherSuite::CHACHA20_POLY1305),
        &IdentityAead(CipherSuite::AES_256_GCM),
    ],
    hash: &AcceptAnyMac,
    kx: &rustcrypto::X25519,
    kem: &rustcrypto::MlKem768,
    signature: &AcceptAnySignature,
};

/// INSECURE: an "AEAD" that neither encrypts nor authenticates.
#[derive(Debug)]
struct IdentityAead(CipherSuite);

impl Aead for IdentityAead {
    fn suite(&self) -> CipherSuite {
        self.0
    }

    fn seal_in_place(
        &self,
        _key: &[u8; AEAD_KEY_LEN],
        _nonce: &[u8; NONCE_LEN],
        _aad: &[u8],
        _buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        Ok([0; TAG_LEN])
    }

    fn open_in_place(
        &self,
        _key: &[u8; AEAD_KEY_LEN],
        _nonce: &[u8; NONCE_LEN],
        _aad: &[u8],
        _buf: &mut [u8],
        _tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        Ok(())
    }
}

/// INSECURE: real SHA-256, HMAC and HKDF, but every HMAC tag verifies.
#[derive(Debug)]
struct AcceptAnyMac;

impl Hash for AcceptAnyMac {
    fn start(&self) -> Box<dyn HashContext> {
        rustcrypto::Sha256Hash.start()
    }

    fn hmac(&self, key: &[u8], parts: &[&[u8]]) -> [u8; SECRET_LEN] {
        rustcrypto::Sha256Hash.hmac(key, parts)
    }

    fn hmac_verify(&self, _key: &[u8], _parts: &[&[u8]], _tag: &[u8]) -> Result<(), CryptoError> {
        Ok(())
    }

    fn hkdf_extract(&self, salt: &[u8], ikm: &[&[u8]]) -> Secret {
        rustcrypto::Sha256Hash.hkdf_extract(salt, ikm)
    }

    fn hkdf_expand(&self, prk: &Secret, info: &[&[u8]], out: &mut [u8]) -> Result<(), CryptoError> {
        rustcrypto::Sha256Hash.hkdf_expand(prk, info, out)
    }
}

/// INSECURE: every signature verifies.
#[derive(Debug)]
struct AcceptAnySignature;

impl SignatureVerifier for AcceptAnySignature {
    fn verify(
        &self,
        _public_key: &[u8; 32],
        _msg: &[u8],
        _sig: &Signature,
    ) -> Result<(), CryptoError> {
        Ok(())
    }

    fn prepare(&self, _public_key: &[u8; 32]) -> Result<Box<dyn PreparedKey>, CryptoError> {
        Ok(Box::new(AcceptAnySignature))
    }
}

impl PreparedKey for AcceptAnySignature {
    fn verify(&self, _msg: &[u8], _sig: &Signature) -> Result<(), CryptoError> {
        Ok(())
    }
}
