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

#[cfg(test)]
mod tests {
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::super::{Kem as _, RUSTCRYPTO};
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
