//! ML-KEM-768 from `libcrux-ml-kem`, Cryspen's implementation written for
//! verification with hax and F* (the libcrux project states panic freedom and
//! functional correctness against FIPS 203 for its portable and AVX2 code).
//! Its build script compiles the AVX2 (x86-64) or NEON (aarch64) code next to
//! the portable code, and each call picks one at run time from the CPU's
//! features.
//!
//! Its API is deterministic: key generation takes the 64 bytes `d || z` and
//! encapsulation the 32 bytes `m` (FIPS 203 `ML-KEM.KeyGen_internal` and
//! `ML-KEM.Encaps_internal`). They are drawn here from the caller's RNG
//! exactly as the `ml-kem` crate of [`RUSTCRYPTO`] draws
//! them (`d`, then `z`, then later `m`, 32 bytes per call), so a seeded RNG
//! gives both providers the same keys, ciphertexts and secrets.
//!
//! libcrux's private-key type neither zeroizes itself nor prints (it has no
//! `Debug`); [`LibcruxKemSecret`] keeps it in one heap allocation and wipes it
//! on drop. As with `ml-kem`, the values libcrux returns by value (the key
//! pair, the shared secret) pass through its stack frames, which safe Rust
//! cannot wipe.

use libcrux_ml_kem::mlkem768;
use zeroize::Zeroize;

use super::*;

/// Length of libcrux's ML-KEM-768 private key: the FIPS 203 decapsulation
/// key (`dk_PKE || ek || H(ek) || z`).
const DK_LEN: usize = 2400;

/// ML-KEM-768 (FIPS 203) on libcrux.
#[derive(Debug)]
pub(super) struct MlKem768;

/// A decapsulation key, wiped on drop.
struct LibcruxKemSecret(Box<mlkem768::MlKem768PrivateKey>);

impl Drop for LibcruxKemSecret {
    fn drop(&mut self) {
        self.0[..DK_LEN].zeroize();
    }
}

fn shared(mut key: libcrux_ml_kem::MlKemSharedSecret) -> Secret {
    let s = Secret::new(key);
    key.zeroize();
    s
}

impl KemSecret for LibcruxKemSecret {
    fn decapsulate(&self, ct: &MlKemCiphertext) -> Result<Secret, CryptoError> {
        let ct = mlkem768::MlKem768Ciphertext::from(ct.as_bytes());
        Ok(shared(mlkem768::decapsulate(&self.0, &ct)))
    }
}

/// The received key in libcrux's type, if it passes the FIPS 203 §7.2
/// modulus check (every 12-bit coefficient below q = 3329).
fn encapsulation_key(
    ek: &MlKemEncapsulationKey,
) -> Result<mlkem768::MlKem768PublicKey, CryptoError> {
    let key = mlkem768::MlKem768PublicKey::from(ek.as_bytes());
    if mlkem768::validate_public_key(&key) {
        Ok(key)
    } else {
        Err(CryptoError)
    }
}

impl Kem for MlKem768 {
    fn generate(&self, rng: &mut dyn CryptoRngCore) -> (Box<dyn KemSecret>, MlKemEncapsulationKey) {
        // d, then z: two draws of 32 bytes, as ml-kem makes them.
        let mut seed = Zeroizing::new([0u8; libcrux_ml_kem::KEY_GENERATION_SEED_SIZE]);
        let (d, z) = seed.split_at_mut(32);
        rng.fill_bytes(d);
        rng.fill_bytes(z);
        let (mut sk, pk) = mlkem768::generate_key_pair(*seed).into_parts();
        let mut dk = Box::new(mlkem768::MlKem768PrivateKey::default());
        dk[..DK_LEN].copy_from_slice(&sk[..DK_LEN]);
        sk[..DK_LEN].zeroize();
        let ek = MlKemEncapsulationKey(Box::new(*pk.as_slice()));
        (Box::new(LibcruxKemSecret(dk)), ek)
    }

    fn check_encapsulation_key(&self, ek: &MlKemEncapsulationKey) -> Result<(), CryptoError> {
        encapsulation_key(ek).map(|_| ())
    }

    fn encapsulate(
        &self,
        ek: &MlKemEncapsulationKey,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(MlKemCiphertext, Secret), CryptoError> {
        // Checked before m is drawn, as in ml-kem: a refused key consumes no
        // randomness with either provider.
        let ek = encapsulation_key(ek)?;
        let mut m = Zeroizing::new([0u8; libcrux_ml_kem::SHARED_SECRET_SIZE]);
        rng.fill_bytes(&mut m[..]);
        let (ct, key) = mlkem768::encapsulate(&ek, *m);
        let ct = MlKemCiphertext(Box::new(*ct.as_slice()));
        Ok((ct, shared(key)))
    }
}

/// X25519: the agreement from `libcrux-curve25519` (HACL*'s Curve25519,
/// verified in F* and extracted to Rust: 28.7 µs here against 39.6 µs for
/// x25519-dalek's Montgomery ladder), the public key from x25519-dalek (its
/// precomputed base-point table: 12.1 µs against 28.7 µs for HACL*'s
/// ladder). The secret is 32 bytes drawn from the caller's RNG in one call,
/// as x25519-dalek's `EphemeralSecret::random_from_rng` draws it, so a
/// seeded RNG gives both providers the same key shares.
#[derive(Debug)]
pub(super) struct X25519;

/// An X25519 secret scalar (as drawn: both libraries clamp it when they
/// multiply), wiped on drop.
struct LibcruxKxSecret(Zeroizing<[u8; 32]>);

impl KxSecret for LibcruxKxSecret {
    fn agree(self: Box<Self>, peer: &X25519Public) -> Result<Secret, CryptoError> {
        let mut shared = Zeroizing::new([0u8; SECRET_LEN]);
        // HACL*'s ecdh refuses an all-zero result (a low-order peer point),
        // as x25519-dalek's `was_contributory` check does.
        libcrux_curve25519::ecdh(&mut shared, peer.as_bytes(), &self.0).map_err(|_| CryptoError)?;
        Ok(Secret::new(*shared))
    }
}

impl KeyExchange for X25519 {
    fn generate(&self, rng: &mut dyn CryptoRngCore) -> (Box<dyn KxSecret>, X25519Public) {
        let mut scalar = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut scalar[..]);
        // StaticSecret wipes its copy on drop (x25519-dalek's `zeroize`).
        let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*scalar));
        (
            Box::new(LibcruxKxSecret(scalar)),
            X25519Public::from(public.to_bytes()),
        )
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::super::{Kem as _, KeyExchange as _, RUSTCRYPTO};
    use super::*;

    #[test]
    fn private_key_length_is_libcruxs() {
        assert_eq!(mlkem768::MlKem768PrivateKey::len(), DK_LEN);
    }

    /// With the same RNG seed, libcrux and ml-kem make the same key pair,
    /// ciphertext and secret, and each decapsulates the other's ciphertext.
    #[test]
    fn same_randomness_same_results_as_rustcrypto() {
        for seed in 0..8u8 {
            let mut a = ChaCha20Rng::from_seed([seed; 32]);
            let mut b = ChaCha20Rng::from_seed([seed; 32]);
            let (dk_ref, ek_ref) = RUSTCRYPTO.kem.generate(&mut a);
            let (dk_fast, ek_fast) = MlKem768.generate(&mut b);
            assert_eq!(ek_ref, ek_fast, "seed {seed}: ek");

            let (ct_ref, k_ref) = RUSTCRYPTO.kem.encapsulate(&ek_ref, &mut a).expect("ref");
            let (ct_fast, k_fast) = MlKem768.encapsulate(&ek_fast, &mut b).expect("fast");
            assert_eq!(ct_ref, ct_fast, "seed {seed}: ct");
            assert_eq!(k_ref, k_fast, "seed {seed}: K");

            assert_eq!(dk_fast.decapsulate(&ct_ref), Ok(k_ref.clone()));
            assert_eq!(dk_ref.decapsulate(&ct_fast), Ok(k_fast));
            // Implicit rejection: a changed ciphertext gives another secret,
            // the same one with both providers.
            let mut bad = ct_ref.clone();
            bad.0[0] ^= 1;
            let (r_ref, r_fast) = (
                dk_ref.decapsulate(&bad).expect("ref"),
                dk_fast.decapsulate(&bad).expect("fast"),
            );
            assert_ne!(r_fast, k_ref);
            assert_eq!(r_ref, r_fast);
        }
    }

    /// With the same RNG seed, both providers make the same X25519 shares
    /// and agree on the same secret, whichever side uses which.
    #[test]
    fn x25519_same_randomness_same_results_as_rustcrypto() {
        for seed in 0..8u8 {
            let mut a = ChaCha20Rng::from_seed([seed; 32]);
            let mut b = ChaCha20Rng::from_seed([seed; 32]);
            let (ref_secret, ref_public) = RUSTCRYPTO.kx.generate(&mut a);
            let (fast_secret, fast_public) = X25519.generate(&mut b);
            assert_eq!(ref_public, fast_public, "seed {seed}: public key");
            let (peer_secret, peer_public) = X25519.generate(&mut a);
            let fast = fast_secret.agree(&peer_public).expect("fast agrees");
            let reference = ref_secret.agree(&peer_public).expect("reference agrees");
            assert_eq!(fast, reference, "seed {seed}: shared secret");
            assert_eq!(
                peer_secret.agree(&fast_public),
                Ok(fast),
                "seed {seed}: the other side"
            );
        }
    }

    /// RFC 7748 §6.1, and a low-order peer point refused as x25519-dalek's
    /// contributory check refuses it.
    #[test]
    fn x25519_rfc7748_and_low_order_points() {
        let alice = hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
            .expect("hex");
        let bob_public =
            hex::decode("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
                .expect("hex");
        let expected =
            hex::decode("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
                .expect("hex");
        let mut scalar = Zeroizing::new([0u8; 32]);
        scalar.copy_from_slice(&alice);
        let mut peer = [0u8; 32];
        peer.copy_from_slice(&bob_public);
        let shared = Box::new(LibcruxKxSecret(scalar.clone()))
            .agree(&X25519Public::from(peer))
            .expect("agrees");
        assert_eq!(shared.expose()[..], expected[..]);
        // The points of order 1, 2 (0 and 1 as u-coordinates) and 8.
        let low_order: [[u8; 32]; 3] = [
            [0; 32],
            {
                let mut p = [0; 32];
                p[0] = 1;
                p
            },
            {
                let mut p = [0u8; 32];
                p.copy_from_slice(
                    &hex::decode(
                        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
                    )
                    .expect("hex"),
                );
                p
            },
        ];
        for point in low_order {
            let secret = Box::new(LibcruxKxSecret(scalar.clone()));
            assert_eq!(secret.agree(&X25519Public::from(point)), Err(CryptoError));
        }
    }

    #[test]
    fn modulus_check_refuses_and_draws_nothing() {
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        let (_, ek) = MlKem768.generate(&mut rng);
        assert_eq!(MlKem768.check_encapsulation_key(&ek), Ok(()));
        // A coefficient of 0xfff (≥ q = 3329) in the last 12-bit slot of t.
        let mut bad = ek.clone();
        bad.0[1150] |= 0xf0;
        bad.0[1151] = 0xff;
        assert_eq!(MlKem768.check_encapsulation_key(&bad), Err(CryptoError));
        let before = rng.get_word_pos();
        assert!(MlKem768.encapsulate(&bad, &mut rng).is_err());
        assert_eq!(rng.get_word_pos(), before);
    }
}
