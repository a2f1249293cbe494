//! Ed25519 key pairs.

use std::fmt;

use der::asn1::OctetStringRef;
use der::pem::LineEnding;
use der::{Encode, SecretDocument};
use ed25519_dalek::{Signer, SigningKey};
use pkcs8::pkcs5::{self, pbes2, scrypt};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::error::PkiError;
use crate::pem::first_pem_label;
use crate::util::Hex;

/// The PEM label of a PKCS#8 private key.
pub(crate) const PKCS8_PEM_LABEL: &str = "PRIVATE KEY";

/// The PEM label of an encrypted PKCS#8 private key.
pub(crate) const ENCRYPTED_PKCS8_PEM_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// PEM labels of private keys of other algorithms (SEC1, PKCS#1, DSA).
const OTHER_KEY_PEM_LABELS: [&str; 3] = ["EC PRIVATE KEY", "RSA PRIVATE KEY", "DSA PRIVATE KEY"];

/// scrypt cost of [`KeyPair::to_encrypted_pkcs8_pem`]: log₂ N.
///
/// N = 2¹⁴, r = 8, p = 1 (16 MiB, about 50 ms per derivation) are scrypt's
/// interactive-login parameters and OpenSSL's `pkcs8 -scrypt` default. The
/// pkcs8 crate's default (N = 2¹⁷, 128 MiB) is more than OpenSSL 3 will use:
/// it refuses scrypt above 32 MiB, so it could not read the key.
pub const KEY_SCRYPT_LOG_N: u8 = 14;
/// scrypt block size `r` of [`KeyPair::to_encrypted_pkcs8_pem`].
pub const KEY_SCRYPT_R: u32 = 8;
/// scrypt parallelism `p` of [`KeyPair::to_encrypted_pkcs8_pem`].
pub const KEY_SCRYPT_P: u32 = 1;

/// The most memory scrypt may use to decrypt a key (1 GiB): bounds what a
/// damaged or hostile key file can make the loader allocate.
const MAX_SCRYPT_MEMORY: u128 = 1 << 30;

/// The most work scrypt may do to decrypt a key, in bytes mixed (128·r·N·p):
/// as much as one pass over [`MAX_SCRYPT_MEMORY`], a few seconds. Without it
/// a large `p` (which costs time, not memory) hangs the loader for hours.
const MAX_SCRYPT_WORK: u128 = 1 << 30;

/// The most PBKDF2 iterations a key file may ask for: 10 million, a few
/// seconds of HMAC-SHA256 (OpenSSL writes 2,048; OWASP advises 600,000).
/// A key with 2³¹ iterations would otherwise take many minutes to load.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

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
        if info.algorithm.oid != ed25519_dalek::pkcs8::ALGORITHM_OID {
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

    /// Loads a key pair from a PEM `PRIVATE KEY` (PKCS#8) or `ENCRYPTED
    /// PRIVATE KEY` (PKCS#8 `EncryptedPrivateKeyInfo`, PBES2) document.
    ///
    /// `passphrase` is needed only for an encrypted key (and ignored for a
    /// plain one). Errors: [`PkiError::PassphraseRequired`],
    /// [`PkiError::WrongPassphrase`], [`PkiError::UnsupportedKeyEncryption`],
    /// [`PkiError::UnsupportedKey`] (another algorithm, including SEC1 `EC
    /// PRIVATE KEY` and PKCS#1 `RSA PRIVATE KEY` documents), or
    /// [`PkiError::Malformed`].
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self, PkiError> {
        let (label, der) = der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| PkiError::Malformed(format!("PEM private key: {e}")))?;
        let der = Zeroizing::new(der);
        match label {
            PKCS8_PEM_LABEL => Self::from_pkcs8_der(&der),
            ENCRYPTED_PKCS8_PEM_LABEL => {
                let passphrase = passphrase.ok_or(PkiError::PassphraseRequired)?;
                Self::from_encrypted_pkcs8_der(&der, passphrase)
            }
            other if OTHER_KEY_PEM_LABELS.contains(&other) => Err(PkiError::UnsupportedKey),
            other => Err(PkiError::Malformed(format!(
                "expected a PEM \"{PKCS8_PEM_LABEL}\" or \"{ENCRYPTED_PKCS8_PEM_LABEL}\" \
                 block, found \"{other}\""
            ))),
        }
    }

    /// Whether a PEM document is an encrypted private key (its first block is
    /// `ENCRYPTED PRIVATE KEY`), i.e. [`KeyPair::from_pem`] needs a passphrase.
    pub fn pem_is_encrypted(pem: &str) -> bool {
        first_pem_label(pem) == Some(ENCRYPTED_PKCS8_PEM_LABEL)
    }

    /// Decrypts a DER PKCS#8 `EncryptedPrivateKeyInfo` with `passphrase`.
    pub fn from_encrypted_pkcs8_der(der: &[u8], passphrase: &[u8]) -> Result<Self, PkiError> {
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
            .map_err(|e| PkiError::Malformed(format!("encrypted PKCS#8 private key: {e}")))?;
        check_kdf_cost(&info.encryption_algorithm)?;
        let plain = info.decrypt(passphrase).map_err(|err| match err {
            pkcs8::Error::EncryptedPrivateKey(
                pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed,
            ) => PkiError::WrongPassphrase,
            pkcs8::Error::EncryptedPrivateKey(other) => {
                PkiError::UnsupportedKeyEncryption(other.to_string())
            }
            // The padding happened to check out, but the plaintext is no DER.
            _ => PkiError::WrongPassphrase,
        })?;
        Self::from_pkcs8_der(plain.as_bytes()).map_err(|err| match err {
            PkiError::Malformed(_) => PkiError::WrongPassphrase,
            other => other,
        })
    }

    /// Encodes the key pair as an encrypted PKCS#8 PEM document (`ENCRYPTED
    /// PRIVATE KEY`, LF line endings): PBES2 with scrypt ([`KEY_SCRYPT_LOG_N`],
    /// [`KEY_SCRYPT_R`], [`KEY_SCRYPT_P`]) and AES-256-CBC, a random 16-byte
    /// salt and IV from `rng`. OpenSSL reads it (`openssl pkey -passin …`).
    ///
    /// An empty passphrase is refused ([`PkiError::EmptyPassphrase`]).
    pub fn to_encrypted_pkcs8_pem<R: CryptoRngCore + ?Sized>(
        &self,
        passphrase: &[u8],
        rng: &mut R,
    ) -> Result<Zeroizing<String>, PkiError> {
        if passphrase.is_empty() {
            return Err(PkiError::EmptyPassphrase);
        }
        let encoding = |e: &dyn fmt::Display| PkiError::Encoding(format!("encrypted key: {e}"));
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut iv);
        let cost = scrypt::Params::new(KEY_SCRYPT_LOG_N, KEY_SCRYPT_R, KEY_SCRYPT_P, 32)
            .map_err(|e| encoding(&e))?;
        let params =
            pbes2::Parameters::scrypt_aes256cbc(cost, &salt, &iv).map_err(|e| encoding(&e))?;
        let der = self.to_pkcs8_der()?;
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| encoding(&e))?;
        let encrypted = info
            .encrypt_with_params(params, passphrase)
            .map_err(|e| encoding(&e))?;
        encrypted
            .to_pem(ENCRYPTED_PKCS8_PEM_LABEL, LineEnding::LF)
            .map_err(|e| encoding(&e))
    }

    /// Encodes the key pair as an unencrypted PKCS#8 PEM document (`PRIVATE
    /// KEY`, LF line endings); see [`KeyPair::to_pkcs8_der`].
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, PkiError> {
        self.pkcs8_document()?
            .to_pem(PKCS8_PEM_LABEL, LineEnding::LF)
            .map_err(|e| PkiError::Encoding(format!("PKCS#8 private key: {e}")))
    }

    /// Encodes the key pair as an unencrypted DER PKCS#8 document.
    ///
    /// It is a version 1 `PrivateKeyInfo` (RFC 5208/8410: the seed, without
    /// the public key), the form OpenSSL writes and the only one OpenSSL 3.0
    /// reads; the loaders here accept version 2 (RFC 5958) as well.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        Ok(self.pkcs8_document()?.to_bytes())
    }

    fn pkcs8_document(&self) -> Result<SecretDocument, PkiError> {
        let encoding = |e: der::Error| PkiError::Encoding(format!("PKCS#8 private key: {e}"));
        let seed = Zeroizing::new(self.signing.to_bytes());
        // RFC 8410 §7: CurvePrivateKey ::= OCTET STRING, inside the privateKey OCTET STRING.
        let curve_private_key = Zeroizing::new(
            OctetStringRef::new(&*seed)
                .and_then(|os| os.to_der())
                .map_err(encoding)?,
        );
        let info = pkcs8::PrivateKeyInfo::new(
            pkcs8::AlgorithmIdentifierRef {
                oid: ed25519_dalek::pkcs8::ALGORITHM_OID,
                parameters: None,
            },
            &curve_private_key,
        );
        SecretDocument::encode_msg(&info).map_err(encoding)
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

/// Refuses KDF parameters that would make decrypting a key take too much
/// memory ([`MAX_SCRYPT_MEMORY`]) or time ([`MAX_SCRYPT_WORK`],
/// [`MAX_PBKDF2_ITERATIONS`]).
fn check_kdf_cost(scheme: &pkcs5::EncryptionScheme<'_>) -> Result<(), PkiError> {
    let Some(params) = scheme.pbes2() else {
        return Ok(());
    };
    if let Some(pbkdf2) = params.kdf.pbkdf2() {
        if pbkdf2.iteration_count > MAX_PBKDF2_ITERATIONS {
            return Err(PkiError::UnsupportedKeyEncryption(format!(
                "PBKDF2 with {} iterations: more than 10,000,000",
                pbkdf2.iteration_count
            )));
        }
    }
    let Some(scrypt) = params.kdf.scrypt() else {
        return Ok(());
    };
    let (n, r, p) = (
        scrypt.cost_parameter,
        scrypt.block_size,
        scrypt.parallelization,
    );
    // scrypt's working memory: 128·r·N bytes for V plus 128·r·p for B.
    let memory = 128 * u128::from(r) * (u128::from(n) + u128::from(p));
    if memory > MAX_SCRYPT_MEMORY {
        return Err(PkiError::UnsupportedKeyEncryption(format!(
            "scrypt parameters N={n}, r={r}, p={p} need more than 1 GiB of memory"
        )));
    }
    // Its work: p passes of ROMix over 128·r·N bytes.
    let work = 128 * u128::from(r) * u128::from(n) * u128::from(p);
    if work > MAX_SCRYPT_WORK {
        return Err(PkiError::UnsupportedKeyEncryption(format!(
            "scrypt parameters N={n}, r={r}, p={p} need more work than 1 GiB of mixing"
        )));
    }
    Ok(())
}

/// How an encrypted PKCS#8 key is protected, e.g. `PBES2 (scrypt N=16384,
/// r=8, p=1; AES-256-CBC)`, for inspection.
pub(crate) fn describe_encryption(der: &[u8]) -> Result<String, PkiError> {
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| PkiError::Malformed(format!("encrypted PKCS#8 private key: {e}")))?;
    let Some(params) = info.encryption_algorithm.pbes2() else {
        return Ok("PBES1 (unsupported)".to_owned());
    };
    let kdf = match (params.kdf.scrypt(), params.kdf.pbkdf2()) {
        (Some(s), _) => format!(
            "scrypt N={}, r={}, p={}",
            s.cost_parameter, s.block_size, s.parallelization
        ),
        (None, Some(p)) => format!("PBKDF2 {:?}, {} iterations", p.prf, p.iteration_count),
        (None, None) => params.kdf.oid().to_string(),
    };
    let cipher = match params.encryption {
        pbes2::EncryptionScheme::Aes128Cbc { .. } => "AES-128-CBC".to_owned(),
        pbes2::EncryptionScheme::Aes192Cbc { .. } => "AES-192-CBC".to_owned(),
        pbes2::EncryptionScheme::Aes256Cbc { .. } => "AES-256-CBC".to_owned(),
        other => other.oid().to_string(),
    };
    Ok(format!("PBES2 ({kdf}; {cipher})"))
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
    use crate::test_util::{
        rng, OPENSSL_KEY_PASSPHRASE, OPENSSL_KEY_PUBLIC_HEX, OPENSSL_PBKDF2_KEY_PEM,
        OPENSSL_SCRYPT_KEY_PEM, P256_KEY_PEM,
    };
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
    fn pkcs8_is_version_1_and_version_2_loads() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let key = KeyPair::generate(&mut rng(9));
        let der = key.to_pkcs8_der().expect("encode");
        // RFC 8410 §10.3: 302e 020100 300506032b6570 04220420 || seed.
        assert_eq!(der.len(), 48);
        assert_eq!(hex(&der[..16]), "302e020100300506032b657004220420");
        assert_eq!(&der[16..], &key.signing_key().to_bytes());
        // What ed25519-dalek writes (v2, with the public key) loads too.
        let v2 = key.signing_key().to_pkcs8_der().expect("v2");
        assert_eq!(v2.as_bytes()[4], 0x01, "version 2");
        let back = KeyPair::from_pkcs8_der(v2.as_bytes()).expect("v2 loads");
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
    fn encrypted_key_round_trip() {
        let mut rng = rng(5);
        let key = KeyPair::generate(&mut rng);
        let pem = key
            .to_encrypted_pkcs8_pem(b"correct horse battery staple", &mut rng)
            .expect("encrypt");
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            "{}",
            *pem
        );
        assert!(KeyPair::pem_is_encrypted(&pem));
        let started = std::time::Instant::now();
        let back = KeyPair::from_pem(&pem, Some(b"correct horse battery staple")).expect("decrypt");
        let elapsed = started.elapsed();
        eprintln!("decrypting a key (scrypt N=2^{KEY_SCRYPT_LOG_N}, r={KEY_SCRYPT_R}, p={KEY_SCRYPT_P}) took {elapsed:?}");
        assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(back.sign(b"m"), key.sign(b"m"));
        // The salt and IV are fresh each time.
        let again = key
            .to_encrypted_pkcs8_pem(b"correct horse battery staple", &mut rng)
            .expect("encrypt");
        assert_ne!(*again, *pem);
        // The secret does not appear in the clear.
        let secret_b64 = {
            use base64ct::Encoding;
            base64ct::Base64::encode_string(&key.signing_key().to_bytes())
        };
        assert!(!pem.contains(&secret_b64[..20]));
    }

    #[test]
    fn wrong_or_missing_passphrase() {
        let mut rng = rng(6);
        let key = KeyPair::generate(&mut rng);
        let pem = key
            .to_encrypted_pkcs8_pem(b"right", &mut rng)
            .expect("encrypt");
        assert_eq!(
            KeyPair::from_pem(&pem, Some(b"wrong")).map(|k| k.public_key()),
            Err(PkiError::WrongPassphrase)
        );
        assert_eq!(
            KeyPair::from_pem(&pem, None).map(|k| k.public_key()),
            Err(PkiError::PassphraseRequired)
        );
        assert_eq!(
            PkiError::PassphraseRequired.to_string(),
            "the key is encrypted: a passphrase is needed"
        );
        assert_eq!(
            PkiError::WrongPassphrase.to_string(),
            "wrong passphrase (or damaged key)"
        );
        // The old loader names the problem too.
        assert!(matches!(
            KeyPair::from_pkcs8_pem(&pem),
            Err(PkiError::Malformed(_))
        ));
        assert_eq!(
            key.to_encrypted_pkcs8_pem(b"", &mut rng).map(|_| ()),
            Err(PkiError::EmptyPassphrase)
        );
        // A damaged ciphertext reads as a wrong passphrase.
        let (label, mut der) = der::pem::decode_vec(pem.as_bytes()).expect("pem");
        let last = der.len() - 1;
        der[last] ^= 1;
        let damaged = der::pem::encode_string(label, LineEnding::LF, &der).expect("pem");
        assert_eq!(
            KeyPair::from_pem(&damaged, Some(b"right")).map(|k| k.public_key()),
            Err(PkiError::WrongPassphrase)
        );
    }

    #[test]
    fn plain_key_loads_without_passphrase() {
        let key = KeyPair::generate(&mut rng(7));
        let pem = key.to_pkcs8_pem().expect("encode");
        assert!(!KeyPair::pem_is_encrypted(&pem));
        for passphrase in [None, Some(&b"ignored"[..])] {
            let back = KeyPair::from_pem(&pem, passphrase).expect("plain");
            assert_eq!(back.public_key(), key.public_key());
        }
        assert_eq!(
            KeyPair::from_pem(P256_KEY_PEM, None).map(|k| k.public_key()),
            Err(PkiError::UnsupportedKey)
        );
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(
            KeyPair::from_pem(sec1, None).map(|k| k.public_key()),
            Err(PkiError::UnsupportedKey)
        );
        let cert = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            KeyPair::from_pem(cert, None),
            Err(PkiError::Malformed(_))
        ));
        assert!(!KeyPair::pem_is_encrypted("nonsense"));
    }

    #[test]
    fn keys_encrypted_by_openssl_load() {
        for pem in [OPENSSL_PBKDF2_KEY_PEM, OPENSSL_SCRYPT_KEY_PEM] {
            assert!(KeyPair::pem_is_encrypted(pem));
            let key = KeyPair::from_pem(pem, Some(OPENSSL_KEY_PASSPHRASE)).expect("decrypt");
            assert_eq!(hex(&key.public_key()), OPENSSL_KEY_PUBLIC_HEX);
            assert_eq!(
                KeyPair::from_pem(pem, Some(b"openssl-pas")).map(|k| k.public_key()),
                Err(PkiError::WrongPassphrase)
            );
        }
    }

    #[test]
    fn costly_scrypt_parameters_are_refused() {
        let mut rng = rng(8);
        let key = KeyPair::generate(&mut rng);
        let pem = key
            .to_encrypted_pkcs8_pem(b"pass", &mut rng)
            .expect("encrypt");
        let (_, der) = der::pem::decode_vec(pem.as_bytes()).expect("pem");
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).expect("parses");
        let mut params = info.encryption_algorithm.pbes2().expect("PBES2").clone();
        let pbes2::Kdf::Scrypt(mut scrypt) = params.kdf else {
            panic!("scrypt expected");
        };
        // N = 2^24 with r = 8: 2 GiB.
        scrypt.cost_parameter = 1 << 24;
        params.kdf = scrypt.into();
        let costly = pkcs8::EncryptedPrivateKeyInfo {
            encryption_algorithm: params.into(),
            encrypted_data: info.encrypted_data,
        };
        let costly = der::Encode::to_der(&costly).expect("encodes");
        assert_eq!(
            KeyPair::from_encrypted_pkcs8_der(&costly, b"pass").map(|k| k.public_key()),
            Err(PkiError::UnsupportedKeyEncryption(
                "scrypt parameters N=16777216, r=8, p=1 need more than 1 GiB of memory".into()
            ))
        );
        // 2^20 (1 GiB minus a little) would be allowed; the default passes.
        assert!(KeyPair::from_encrypted_pkcs8_der(&der, b"pass").is_ok());
    }

    /// Re-encodes `der` (an encrypted key) with other KDF parameters; the
    /// ciphertext stays, so only the cost check can tell them apart.
    fn with_kdf(der: &[u8], kdf: pbes2::Kdf<'_>) -> Vec<u8> {
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der).expect("parses");
        let mut params = info.encryption_algorithm.pbes2().expect("PBES2").clone();
        params.kdf = kdf;
        let changed = pkcs8::EncryptedPrivateKeyInfo {
            encryption_algorithm: params.into(),
            encrypted_data: info.encrypted_data,
        };
        der::Encode::to_der(&changed).expect("encodes")
    }

    /// Found by review, confirmed with the pki_pem fuzz target's binary (a
    /// key with 2^31 - 1 PBKDF2 iterations ran past libFuzzer's timeout):
    /// parameters that cost time rather than memory are bounded too.
    #[test]
    fn slow_kdf_parameters_are_refused() {
        let mut rng = rng(9);
        let pem = KeyPair::generate(&mut rng)
            .to_encrypted_pkcs8_pem(b"pass", &mut rng)
            .expect("encrypt");
        let (_, der) = der::pem::decode_vec(pem.as_bytes()).expect("pem");
        let salt = [7u8; 16];
        let slow = |iterations: u32| -> Vec<u8> {
            let mut pbkdf2 = pbes2::Pbkdf2Params::hmac_with_sha256(1, &salt).expect("params");
            pbkdf2.iteration_count = iterations;
            with_kdf(&der, pbkdf2.into())
        };
        assert_eq!(
            KeyPair::from_encrypted_pkcs8_der(&slow(u32::MAX >> 1), b"pass").map(|_| ()),
            Err(PkiError::UnsupportedKeyEncryption(
                "PBKDF2 with 2147483647 iterations: more than 10,000,000".into()
            ))
        );
        // At the bound the check passes and decryption runs (and fails: the
        // ciphertext was made with scrypt) - not timed, only not refused.
        let at_bound = KeyPair::from_encrypted_pkcs8_der(&slow(1000), b"pass");
        assert_eq!(at_bound.map(|_| ()), Err(PkiError::WrongPassphrase));

        // scrypt with the largest p: 68 MiB of memory, but 65,535 passes.
        let scrypt = scrypt::Params::new(10, 8, 1, 32).expect("params");
        let mut params = pbes2::ScryptParams::from_params_and_salt(scrypt, &salt).expect("params");
        params.parallelization = u16::MAX;
        assert_eq!(
            KeyPair::from_encrypted_pkcs8_der(&with_kdf(&der, params.into()), b"pass").map(|_| ()),
            Err(PkiError::UnsupportedKeyEncryption(
                "scrypt parameters N=1024, r=8, p=65535 need more work than 1 GiB of mixing".into()
            ))
        );
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
