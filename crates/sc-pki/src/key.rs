//! Ed25519 key pairs.

use std::fmt;

use der::pem::LineEnding;
use ed25519_dalek::pkcs8::{self, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::error::PkiError;
use crate::util::Hex;

/// The PEM label of a PKCS#8 private key.
const PKCS8_PEM_LABEL: &str = "PRIVATE KEY";

/// An Ed25519 key pair.
///
/// The secret key is zeroized on drop. `Debug` prints only the public key (hex).
pub struct KeyPair {
    signing: SigningKey,
}

impl KeyPair {
    /// Generates a fresh key pair from `rng`.
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        Self {
            signing: SigningKey::generate(rng),
        }
    }

    /// Loads a key pair from a DER-encoded PKCS#8 `PrivateKeyInfo` (RFC 5958, v1 or v2).
    ///
    /// A well-formed PKCS#8 key of another algorithm gives [`PkiError::UnsupportedKey`].
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, PkiError> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| PkiError::Malformed(format!("PKCS#8 private key: {e}")))?;
        if info.algorithm.oid != pkcs8::ALGORITHM_OID {
            return Err(PkiError::UnsupportedKey);
        }
        let signing = SigningKey::try_from(info)
            .map_err(|e| PkiError::Malformed(format!("Ed25519 PKCS#8 private key: {e}")))?;
        Ok(Self { signing })
    }

    /// Loads a key pair from a PEM `PRIVATE KEY` (PKCS#8) document.
    ///
    /// A PKCS#8 key of another algorithm gives [`PkiError::UnsupportedKey`];
    /// other PEM labels (e.g. `ENCRYPTED PRIVATE KEY`, `EC PRIVATE KEY`) give
    /// [`PkiError::Malformed`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, PkiError> {
        let (label, der) = der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| PkiError::Malformed(format!("PEM private key: {e}")))?;
        let der = Zeroizing::new(der);
        if label != PKCS8_PEM_LABEL {
            return Err(PkiError::Malformed(format!(
                "expected a PEM \"{PKCS8_PEM_LABEL}\" (PKCS#8) block, found \"{label}\""
            )));
        }
        Self::from_pkcs8_der(&der)
    }

    /// Encodes the key pair as an unencrypted PKCS#8 PEM document (LF line endings).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, PkiError> {
        self.signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| PkiError::Encoding(format!("PKCS#8 private key: {e}")))
    }

    /// Encodes the key pair as an unencrypted DER PKCS#8 document.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        self.signing
            .to_pkcs8_der()
            .map(|doc| doc.to_bytes())
            .map_err(|e| PkiError::Encoding(format!("PKCS#8 private key: {e}")))
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Signs `msg` (pure Ed25519, RFC 8032).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }
}

// `SigningKey` zeroizes itself on drop.
impl zeroize::ZeroizeOnDrop for KeyPair {}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_key", &Hex(&self.public_key()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, VerifyingKey};

    use super::*;
    use crate::test_util::{rng, P256_KEY_PEM};
    use crate::util::hex;

    #[test]
    fn pem_round_trip() {
        let key = KeyPair::generate(&mut rng(1));
        let pem = key.to_pkcs8_pem().expect("encode");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = KeyPair::from_pkcs8_pem(&pem).expect("decode");
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(back.sign(b"m"), key.sign(b"m"));
    }

    #[test]
    fn der_round_trip() {
        let key = KeyPair::generate(&mut rng(2));
        let der = key.to_pkcs8_der().expect("encode");
        let back = KeyPair::from_pkcs8_der(&der).expect("decode");
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn p256_key_is_unsupported() {
        assert_eq!(
            KeyPair::from_pkcs8_pem(P256_KEY_PEM).map(|k| k.public_key()),
            Err(PkiError::UnsupportedKey)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            KeyPair::from_pkcs8_der(b"not a key"),
            Err(PkiError::Malformed(_))
        ));
        assert!(matches!(
            KeyPair::from_pkcs8_pem("nonsense"),
            Err(PkiError::Malformed(_))
        ));
        let cert_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            KeyPair::from_pkcs8_pem(cert_pem),
            Err(PkiError::Malformed(_))
        ));
    }

    #[test]
    fn signatures_verify() {
        let key = KeyPair::generate(&mut rng(3));
        let sig = key.sign(b"hello");
        let vk = VerifyingKey::from_bytes(&key.public_key()).expect("valid key");
        assert!(vk
            .verify_strict(b"hello", &Signature::from_bytes(&sig))
            .is_ok());
        assert!(vk
            .verify_strict(b"hellO", &Signature::from_bytes(&sig))
            .is_err());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = KeyPair::generate(&mut rng(4));
        let secret = key.signing_key().to_bytes();
        let debug = format!("{key:?}");
        assert!(debug.contains(&hex(&key.public_key())), "{debug}");
        assert!(!debug.contains(&hex(&secret)), "{debug}");
        assert!(!debug.to_uppercase().contains(&hex(&secret).to_uppercase()));
        assert!(!debug.contains(&format!("{secret:?}")));
        let alt = format!("{key:#?}");
        assert!(!alt.contains(&hex(&secret)));
    }
}
