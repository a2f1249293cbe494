//! The cryptographic provider: every primitive the protocol uses, behind one
//! small interface (as snow's resolver and rustls's `CryptoProvider`).
//!
//! The protocol fixes everything but the AEAD: SHA-256 (transcript, HMAC,
//! HKDF), X25519 + ML-KEM-768 (key exchange), Ed25519 (signatures). A faster
//! backend can replace any part by building its own [`CryptoProvider`].
//! [`RUSTCRYPTO`], on the RustCrypto crates alone, is the reference; `RING`
//! (feature `ring`) takes ring's AEADs, and `LIBCRUX` (feature `libcrux`)
//! also libcrux's ML-KEM-768 and X25519 agreement. [`default_provider`] is the fastest compiled in.

use core::fmt;

use rand_core::CryptoRngCore;
use sc_wire::{CipherSuite, MlKemCiphertext, MlKemEncapsulationKey, Signature, X25519Public};
use zeroize::Zeroizing;

/// Length of every secret in the key schedule (the SHA-256 output length).
pub const SECRET_LEN: usize = 32;
/// Length of an AEAD key (both suites use 256-bit keys).
pub const AEAD_KEY_LEN: usize = 32;
/// Length of an AEAD nonce (both suites use 96-bit nonces).
pub const NONCE_LEN: usize = 12;
/// Length of an AEAD tag.
pub const TAG_LEN: usize = 16;

/// A 32-byte secret: zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<[u8; SECRET_LEN]>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: [u8; SECRET_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies a 32-byte slice straight into zeroizing storage; `None` if the
    /// slice has another length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        if bytes.len() != SECRET_LEN {
            return None;
        }
        out.copy_from_slice(bytes);
        Some(Self(out))
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A primitive refused its input. Deliberately opaque (age's `DecryptionFailed`):
/// the caller knows which operation failed and says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cryptographic operation failed")]
pub struct CryptoError;

/// An AEAD, keyed per call: every record has its own key.
pub trait Aead: Send + Sync + fmt::Debug {
    /// The suite this AEAD implements.
    fn suite(&self) -> CipherSuite;

    /// Encrypts `buf` in place and returns the tag.
    fn seal_in_place(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError>;

    /// Checks the tag and decrypts `buf` in place. On failure `buf` is
    /// unspecified and must not be used.
    fn open_in_place(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError>;
}

/// A running SHA-256 (the transcript hash).
pub trait HashContext: Send + Sync {
    /// Absorbs `data`.
    fn update(&mut self, data: &[u8]);
    /// A copy of the current state.
    fn fork(&self) -> Box<dyn HashContext>;
    /// The hash of everything absorbed.
    fn finish(self: Box<Self>) -> [u8; SECRET_LEN];
}

/// SHA-256, HMAC-SHA256 and HKDF-SHA256.
pub trait Hash: Send + Sync + fmt::Debug {
    /// A new running hash.
    fn start(&self) -> Box<dyn HashContext>;

    /// SHA-256 of `data`.
    fn hash(&self, data: &[u8]) -> [u8; SECRET_LEN] {
        let mut h = self.start();
        h.update(data);
        h.finish()
    }

    /// HMAC-SHA256 of the concatenation of `parts` under `key`.
    fn hmac(&self, key: &[u8], parts: &[&[u8]]) -> [u8; SECRET_LEN];

    /// Checks an HMAC-SHA256 tag in constant time.
    fn hmac_verify(&self, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<(), CryptoError>;

    /// HKDF-Extract (RFC 5869) with the concatenation of `ikm` as input keying material.
    fn hkdf_extract(&self, salt: &[u8], ikm: &[&[u8]]) -> Secret;

    /// HKDF-Expand (RFC 5869) of `prk` with the concatenation of `info`, filling `out`.
    fn hkdf_expand(&self, prk: &Secret, info: &[&[u8]], out: &mut [u8]) -> Result<(), CryptoError>;
}

/// An ephemeral X25519 secret: used once, then gone.
pub trait KxSecret: Send + Sync {
    /// The shared secret with `peer`. Fails if the result is all zero (a
    /// low-order peer key: RFC 7748 §6.1).
    fn agree(self: Box<Self>, peer: &X25519Public) -> Result<Secret, CryptoError>;
}

/// X25519 key agreement.
pub trait KeyExchange: Send + Sync + fmt::Debug {
    /// A fresh ephemeral secret and its public key.
    fn generate(&self, rng: &mut dyn CryptoRngCore) -> (Box<dyn KxSecret>, X25519Public);
}

/// An ML-KEM-768 decapsulation key.
pub trait KemSecret: Send + Sync {
    /// The shared secret inside `ct`. ML-KEM decapsulation never fails on a
    /// well-sized ciphertext (implicit rejection); a wrong ciphertext yields an
    /// unrelated secret, caught later by the transcript signatures.
    fn decapsulate(&self, ct: &MlKemCiphertext) -> Result<Secret, CryptoError>;
}

/// ML-KEM-768 (FIPS 203).
pub trait Kem: Send + Sync + fmt::Debug {
    /// A fresh key pair.
    fn generate(&self, rng: &mut dyn CryptoRngCore) -> (Box<dyn KemSecret>, MlKemEncapsulationKey);

    /// Checks a received encapsulation key (FIPS 203 §7.2 modulus check: every
    /// coefficient below q).
    fn check_encapsulation_key(&self, ek: &MlKemEncapsulationKey) -> Result<(), CryptoError>;

    /// Encapsulates a fresh secret to `ek`, which must pass the modulus check.
    fn encapsulate(
        &self,
        ek: &MlKemEncapsulationKey,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(MlKemCiphertext, Secret), CryptoError>;
}

/// Ed25519 signature verification (signing is done by the credential's key).
pub trait SignatureVerifier: Send + Sync + fmt::Debug {
    /// Checks `sig` over `msg` under `public_key` (RFC 8032, strict).
    fn verify(&self, public_key: &[u8; 32], msg: &[u8], sig: &Signature)
        -> Result<(), CryptoError>;

    /// `public_key` parsed once (for Ed25519 a point decompression, 3.4 µs
    /// of a 36.5 µs check here) for several checks under it: the client
    /// checks the server's key twice a handshake. Fails where
    /// [`verify`](Self::verify) would fail for any message.
    fn prepare(&self, public_key: &[u8; 32]) -> Result<Box<dyn PreparedKey>, CryptoError>;
}

/// A public key parsed by [`SignatureVerifier::prepare`].
pub trait PreparedKey: Send + Sync {
    /// Checks `sig` over `msg` under this key, as
    /// [`SignatureVerifier::verify`] does.
    fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), CryptoError>;
}

/// Every primitive the protocol uses.
#[derive(Debug)]
pub struct CryptoProvider {
    /// A name for logs.
    pub name: &'static str,
    /// The AEADs, in no particular order (preference is separate).
    pub aeads: &'static [&'static dyn Aead],
    /// SHA-256 and what is built on it.
    pub hash: &'static dyn Hash,
    /// X25519.
    pub kx: &'static dyn KeyExchange,
    /// ML-KEM-768.
    pub kem: &'static dyn Kem,
    /// Ed25519 verification.
    pub signature: &'static dyn SignatureVerifier,
}

impl CryptoProvider {
    /// The AEAD for `suite`, if this provider has it.
    pub fn aead(&self, suite: CipherSuite) -> Option<&'static dyn Aead> {
        self.aeads.iter().copied().find(|a| a.suite() == suite)
    }

    /// The suites in default preference order, hardware-aware as in BoringSSL
    /// and rustls: AES-256-GCM first where the CPU has AES and carry-less
    /// multiply instructions, ChaCha20-Poly1305 first elsewhere.
    pub fn default_suites(&self) -> Vec<CipherSuite> {
        let order = if aes_hardware() {
            [CipherSuite::AES_256_GCM, CipherSuite::CHACHA20_POLY1305]
        } else {
            [CipherSuite::CHACHA20_POLY1305, CipherSuite::AES_256_GCM]
        };
        order
            .into_iter()
            .filter(|s| self.aead(*s).is_some())
            .collect()
    }
}

/// Whether this CPU has AES and carry-less multiplication instructions.
pub fn aes_hardware() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The provider the config builders start from: the fastest compiled in.
/// [`LIBCRUX`] with this crate's `libcrux` feature (libcrux's ML-KEM-768 and
/// X25519 agreement, ring's AEADs), else [`RING`] with its `ring` feature (ring's AEADs), else
/// [`RUSTCRYPTO`].
pub fn default_provider() -> &'static CryptoProvider {
    #[cfg(feature = "libcrux")]
    {
        &LIBCRUX
    }
    #[cfg(all(feature = "ring", not(feature = "libcrux")))]
    {
        &RING
    }
    #[cfg(not(feature = "ring"))]
    {
        &RUSTCRYPTO
    }
}

/// The provider on the RustCrypto crates alone.
pub static RUSTCRYPTO: CryptoProvider = CryptoProvider {
    name: "RustCrypto",
    aeads: &[
        &rustcrypto::ChaCha20Poly1305Aead::new(CipherSuite::CHACHA20_POLY1305),
        &rustcrypto::Aes256GcmAead::new(CipherSuite::AES_256_GCM),
    ],
    hash: &rustcrypto::Sha256Hash,
    kx: &rustcrypto::X25519,
    kem: &rustcrypto::MlKem768,
    signature: &rustcrypto::Ed25519,
};

/// RustCrypto for everything but the AEADs, which come from ring (assembly
/// AES-GCM and ChaCha20-Poly1305). ring does not zeroize its expanded key
/// schedules: the last record's may stay in freed stack memory until it is
/// overwritten (SPEC §11.5).
#[cfg(feature = "ring")]
pub static RING: CryptoProvider = CryptoProvider {
    name: "ring (AEAD) + RustCrypto",
    aeads: &[
        &ring_aead::RingAead::new(
            CipherSuite::CHACHA20_POLY1305,
            &ring::aead::CHACHA20_POLY1305,
        ),
        &ring_aead::RingAead::new(CipherSuite::AES_256_GCM, &ring::aead::AES_256_GCM),
    ],
    hash: &rustcrypto::Sha256Hash,
    kx: &rustcrypto::X25519,
    kem: &rustcrypto::MlKem768,
    signature: &rustcrypto::Ed25519,
};

/// [`RING`] with libcrux's ML-KEM-768 (`libcrux-ml-kem`: AVX2 or NEON
/// where the CPU has it), which does key generation, encapsulation and
/// decapsulation in about 0.4 of `ml-kem`'s time on the development machine
/// (`cargo bench -p sc-session --bench handshake` compares the providers).
/// and libcrux's (HACL*) X25519 agreement (0.72 of x25519-dalek's time).
/// X25519 key generation, Ed25519 and SHA-256 stay RustCrypto's: the dalek
/// crates measured faster here than libcrux's (HACL*) X25519 key generation
/// (12.1 vs 28.7 µs) and Ed25519 (sign 13.3 vs 40.0 µs, verify 36.5 vs
/// 52.3 µs; ring's verify 34.2 µs does not refuse small-order keys as
/// `verify_strict` does). It draws the same bytes from the RNG as
/// [`RUSTCRYPTO`], so seeded handshakes are byte-identical with both.
#[cfg(feature = "libcrux")]
pub static LIBCRUX: CryptoProvider = CryptoProvider {
    name: "libcrux (ML-KEM, X25519 agreement) + ring (AEAD) + RustCrypto",
    aeads: RING.aeads,
    hash: &rustcrypto::Sha256Hash,
    kx: &libcrux::X25519,
    kem: &libcrux::MlKem768,
    signature: &rustcrypto::Ed25519,
};

#[cfg(feature = "libcrux")]
mod libcrux;

#[cfg(feature = "ring")]
mod ring_aead {
    use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey};

    use super::*;

    /// A ring AEAD, keyed per call.
    pub(super) struct RingAead {
        suite: CipherSuite,
        alg: &'static ring::aead::Algorithm,
    }

    impl RingAead {
        pub(super) const fn new(suite: CipherSuite, alg: &'static ring::aead::Algorithm) -> Self {
            Self { suite, alg }
        }

        fn key(&self, key: &[u8; AEAD_KEY_LEN]) -> Result<LessSafeKey, CryptoError> {
            Ok(LessSafeKey::new(
                UnboundKey::new(self.alg, key).map_err(|_| CryptoError)?,
            ))
        }
    }

    impl fmt::Debug for RingAead {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "RingAead({})", self.suite)
        }
    }

    impl Aead for RingAead {
        fn suite(&self) -> CipherSuite {
            self.suite
        }

        fn seal_in_place(
            &self,
            key: &[u8; AEAD_KEY_LEN],
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Result<[u8; TAG_LEN], CryptoError> {
            let tag = self
                .key(key)?
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    buf,
                )
                .map_err(|_| CryptoError)?;
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            Ok(out)
        }

        fn open_in_place(
            &self,
            key: &[u8; AEAD_KEY_LEN],
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), CryptoError> {
            let tag = Tag::from(*tag);
            self.key(key)?
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    tag,
                    buf,
                    0..,
                )
                .map(|_| ())
                .map_err(|_| CryptoError)
        }
    }
}

mod rustcrypto {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use hmac::{Hmac, Mac};
    use ml_kem::kem::{Decapsulate, Encapsulate};
    use ml_kem::{EncodedSizeUser, KemCore};
    use sha2::{Digest, Sha256};
    use zeroize::Zeroize;

    use super::*;

    /// A RustCrypto AEAD with a 256-bit key and a 96-bit nonce, keyed per call.
    pub(super) struct RustCryptoAead<A> {
        suite: CipherSuite,
        cipher: core::marker::PhantomData<fn() -> A>,
    }

    impl<A> RustCryptoAead<A> {
        pub(super) const fn new(suite: CipherSuite) -> Self {
            Self {
                suite,
                cipher: core::marker::PhantomData,
            }
        }
    }

    impl<A> fmt::Debug for RustCryptoAead<A> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "RustCryptoAead({})", self.suite)
        }
    }

    pub(super) type ChaCha20Poly1305Aead = RustCryptoAead<chacha20poly1305::ChaCha20Poly1305>;
    pub(super) type Aes256GcmAead = RustCryptoAead<aes_gcm::Aes256Gcm>;

    impl<A> Aead for RustCryptoAead<A>
    where
        A: KeyInit<KeySize = aes_gcm::aead::consts::U32>
            + AeadInPlace<
                NonceSize = aes_gcm::aead::consts::U12,
                TagSize = aes_gcm::aead::consts::U16,
            >,
    {
        fn suite(&self) -> CipherSuite {
            self.suite
        }

        fn seal_in_place(
            &self,
            key: &[u8; AEAD_KEY_LEN],
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Result<[u8; TAG_LEN], CryptoError> {
            let tag = A::new(key.into())
                .encrypt_in_place_detached(nonce.into(), aad, buf)
                .map_err(|_| CryptoError)?;
            Ok(tag.into())
        }

        fn open_in_place(
            &self,
            key: &[u8; AEAD_KEY_LEN],
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), CryptoError> {
            A::new(key.into())
                .decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
                .map_err(|_| CryptoError)
        }
    }

    #[derive(Debug)]
    pub(super) struct Sha256Hash;

    struct Sha256Context(Sha256);

    impl HashContext for Sha256Context {
        fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }

        fn fork(&self) -> Box<dyn HashContext> {
            Box::new(Sha256Context(self.0.clone()))
        }

        fn finish(self: Box<Self>) -> [u8; SECRET_LEN] {
            self.0.finalize().into()
        }
    }

    fn hmac_over(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for p in parts {
            mac.update(p);
        }
        mac
    }

    impl Hash for Sha256Hash {
        fn start(&self) -> Box<dyn HashContext> {
            Box::new(Sha256Context(Sha256::new()))
        }

        fn hmac(&self, key: &[u8], parts: &[&[u8]]) -> [u8; SECRET_LEN] {
            hmac_over(key, parts).finalize().into_bytes().into()
        }

        fn hmac_verify(&self, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<(), CryptoError> {
            hmac_over(key, parts)
                .verify_slice(tag)
                .map_err(|_| CryptoError)
        }

        fn hkdf_extract(&self, salt: &[u8], ikm: &[&[u8]]) -> Secret {
            let mut ext = hkdf::HkdfExtract::<Sha256>::new(Some(salt));
            for part in ikm {
                ext.input_ikm(part);
            }
            let (mut prk, _) = ext.finalize();
            let out = Secret::new(prk.into());
            prk.zeroize();
            out
        }

        fn hkdf_expand(
            &self,
            prk: &Secret,
            info: &[&[u8]],
            out: &mut [u8],
        ) -> Result<(), CryptoError> {
            let hk = hkdf::Hkdf::<Sha256>::from_prk(prk.expose()).map_err(|_| CryptoError)?;
            hk.expand_multi_info(info, out).map_err(|_| CryptoError)
        }
    }

    #[derive(Debug)]
    pub(super) struct X25519;

    struct X25519Secret(x25519_dalek::EphemeralSecret);

    impl KxSecret for X25519Secret {
        fn agree(self: Box<Self>, peer: &X25519Public) -> Result<Secret, CryptoError> {
            let peer = x25519_dalek::PublicKey::from(*peer.as_bytes());
            let shared = self.0.diffie_hellman(&peer);
            if !shared.was_contributory() {
                return Err(CryptoError);
            }
            Ok(Secret::new(shared.to_bytes()))
        }
    }

    impl KeyExchange for X25519 {
        fn generate(&self, rng: &mut dyn CryptoRngCore) -> (Box<dyn KxSecret>, X25519Public) {
            let secret = x25519_dalek::EphemeralSecret::random_from_rng(&mut *rng);
            let public = x25519_dalek::PublicKey::from(&secret);
            (
                Box::new(X25519Secret(secret)),
                X25519Public::from(public.to_bytes()),
            )
        }
    }

    #[derive(Debug)]
    pub(super) struct MlKem768;

    type Params = ml_kem::MlKem768;

    type DecapsulationKey = <Params as KemCore>::DecapsulationKey;
    type EncapsulationKey = <Params as KemCore>::EncapsulationKey;

    // ml-kem's DecapsulationKey zeroizes itself on drop (feature `zeroize`).
    struct MlKemSecret(DecapsulationKey);

    fn shared(mut key: ml_kem::SharedKey<Params>) -> Secret {
        let mut out = [0u8; SECRET_LEN];
        out.copy_from_slice(&key);
        key.zeroize();
        let s = Secret::new(out);
        out.zeroize();
        s
    }

    impl KemSecret for MlKemSecret {
        fn decapsulate(&self, ct: &MlKemCiphertext) -> Result<Secret, CryptoError> {
            let ct = ml_kem::Ciphertext::<Params>::try_from(&ct.as_bytes()[..])
                .map_err(|_| CryptoError)?;
            let key = self.0.decapsulate(&ct).map_err(|()| CryptoError)?;
            Ok(shared(key))
        }
    }

    fn encapsulation_key(ek: &MlKemEncapsulationKey) -> Result<EncapsulationKey, CryptoError> {
        let encoded = ml_kem::Encoded::<EncapsulationKey>::try_from(&ek.as_bytes()[..])
            .map_err(|_| CryptoError)?;
        let key = EncapsulationKey::from_bytes(&encoded);
        // FIPS 203 §7.2 modulus check: decoding reduces every coefficient mod q,
        // so a key with a coefficient ≥ q does not re-encode to itself.
        if key.as_bytes() != encoded {
            return Err(CryptoError);
        }
        Ok(key)
    }

    impl Kem for MlKem768 {
        fn generate(
            &self,
            rng: &mut dyn CryptoRngCore,
        ) -> (Box<dyn KemSecret>, MlKemEncapsulationKey) {
            let (dk, ek) = <Params as KemCore>::generate(&mut &mut *rng);
            let mut bytes = Box::new([0u8; sc_wire::messages::MLKEM768_EK_LEN]);
            bytes.copy_from_slice(&ek.as_bytes());
            (Box::new(MlKemSecret(dk)), MlKemEncapsulationKey(bytes))
        }

        fn check_encapsulation_key(&self, ek: &MlKemEncapsulationKey) -> Result<(), CryptoError> {
            encapsulation_key(ek).map(|_| ())
        }

        fn encapsulate(
            &self,
            ek: &MlKemEncapsulationKey,
            rng: &mut dyn CryptoRngCore,
        ) -> Result<(MlKemCiphertext, Secret), CryptoError> {
            let ek = encapsulation_key(ek)?;
            let (ct, key) = ek.encapsulate(&mut &mut *rng).map_err(|()| CryptoError)?;
            let mut bytes = Box::new([0u8; sc_wire::messages::MLKEM768_CT_LEN]);
            bytes.copy_from_slice(&ct);
            Ok((MlKemCiphertext(bytes), shared(key)))
        }
    }

    #[derive(Debug)]
    pub(super) struct Ed25519;

    impl SignatureVerifier for Ed25519 {
        fn verify(
            &self,
            public_key: &[u8; 32],
            msg: &[u8],
            sig: &Signature,
        ) -> Result<(), CryptoError> {
            let key =
                ed25519_dalek::VerifyingKey::from_bytes(public_key).map_err(|_| CryptoError)?;
            Ed25519Key(key).verify(msg, sig)
        }

        fn prepare(&self, public_key: &[u8; 32]) -> Result<Box<dyn PreparedKey>, CryptoError> {
            let key =
                ed25519_dalek::VerifyingKey::from_bytes(public_key).map_err(|_| CryptoError)?;
            Ok(Box::new(Ed25519Key(key)))
        }
    }

    /// A decompressed Ed25519 public key.
    struct Ed25519Key(ed25519_dalek::VerifyingKey);

    impl PreparedKey for Ed25519Key {
        fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
            let sig = ed25519_dalek::Signature::from_bytes(sig.as_bytes());
            self.0.verify_strict(msg, &sig).map_err(|_| CryptoError)
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    #[test]
    fn kem_round_trip_and_modulus_check() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let p = &RUSTCRYPTO;
        let (dk, ek) = p.kem.generate(&mut rng);
        assert_eq!(p.kem.check_encapsulation_key(&ek), Ok(()));
        let (ct, ss) = p.kem.encapsulate(&ek, &mut rng).expect("valid key");
        assert_eq!(dk.decapsulate(&ct).expect("decapsulates"), ss);

        // A coefficient of 0xfff (≥ q = 3329) in the first 12-bit slot.
        let mut bad = ek.clone();
        bad.0[0] = 0xff;
        bad.0[1] |= 0x0f;
        assert_eq!(p.kem.check_encapsulation_key(&bad), Err(CryptoError));
        assert!(p.kem.encapsulate(&bad, &mut rng).is_err());
    }

    #[test]
    fn x25519_rejects_low_order_points() {
        let mut rng = ChaCha20Rng::from_seed([2; 32]);
        let (secret, _) = RUSTCRYPTO.kx.generate(&mut rng);
        assert_eq!(
            secret.agree(&X25519Public::from([0u8; 32])),
            Err(CryptoError)
        );
    }

    fn providers() -> Vec<&'static CryptoProvider> {
        #[allow(unused_mut)]
        let mut v = vec![&RUSTCRYPTO];
        #[cfg(feature = "ring")]
        v.push(&RING);
        #[cfg(feature = "libcrux")]
        v.push(&LIBCRUX);
        v
    }

    /// Every provider's AEAD opens what every other provider's sealed.
    #[test]
    fn providers_interoperate() {
        for suite in [CipherSuite::AES_256_GCM, CipherSuite::CHACHA20_POLY1305] {
            for a in providers() {
                for b in providers() {
                    let (sealer, opener) =
                        (a.aead(suite).expect("suite"), b.aead(suite).expect("suite"));
                    let mut buf = b"interop across backends".to_vec();
                    let tag = sealer
                        .seal_in_place(&[4; 32], &[5; 12], b"hdr", &mut buf)
                        .expect("seal");
                    opener
                        .open_in_place(&[4; 32], &[5; 12], b"hdr", &mut buf, &tag)
                        .expect("open");
                    assert_eq!(buf, b"interop across backends", "{} -> {}", a.name, b.name);
                }
            }
        }
    }

    #[test]
    fn aeads_round_trip_and_reject_tampering() {
        for aead in providers().into_iter().flat_map(|p| p.aeads.iter()) {
            let key = [7u8; 32];
            let nonce = [9u8; 12];
            let mut buf = b"hello".to_vec();
            let tag = aead
                .seal_in_place(&key, &nonce, b"aad", &mut buf)
                .expect("seals");
            assert_ne!(buf, b"hello");
            let mut copy = buf.clone();
            aead.open_in_place(&key, &nonce, b"aad", &mut copy, &tag)
                .expect("opens");
            assert_eq!(copy, b"hello");
            let mut copy = buf.clone();
            assert!(aead
                .open_in_place(&key, &nonce, b"aaD", &mut copy, &tag)
                .is_err());
        }
    }

    /// The builders start from the fastest provider compiled in.
    #[test]
    fn default_provider_is_the_fastest_compiled_in() {
        let want: &CryptoProvider = if cfg!(feature = "libcrux") {
            providers()[2]
        } else if cfg!(feature = "ring") {
            providers()[1]
        } else {
            &RUSTCRYPTO
        };
        assert!(core::ptr::eq(default_provider(), want), "{}", want.name);
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret::new([0xaa; 32])),
            "Secret(<redacted>)"
        );
    }
}

/// **INSECURE, FUZZING ONLY**: see the module. Compiled only with `--cfg fuzzing`.
#[cfg(fuzzing)]
pub mod insecure;
