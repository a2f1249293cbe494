//! Shared test fixtures: a deterministic RNG, a fixed clock and small CAs.

use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::{
    issue_intermediate, issue_leaf, issue_root, Credential, Issuer, KeyPair, LeafSpec, Validity,
};

/// The fixed "now" of the tests (2025-06-15T15:06:40Z).
pub(crate) const NOW_SECS: u64 = 1_750_000_000;

pub(crate) const DAY: u64 = 24 * 60 * 60;

/// A P-256 key and a self-signed P-256 certificate (CN and DNS SAN
/// `p256.test`, EKU serverAuth + clientAuth), generated once with:
///
/// ```text
/// openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256-key.pem
/// openssl req -new -x509 -key p256-key.pem -subj "/CN=p256.test" \
///   -addext "subjectAltName=DNS:p256.test" \
///   -addext "extendedKeyUsage=serverAuth,clientAuth" -days 36500 -out p256-cert.pem
/// ```
pub(crate) const P256_CERT_PEM: &str = include_str!("../tests/data/p256-cert.pem");
pub(crate) const P256_KEY_PEM: &str = include_str!("../tests/data/p256-key.pem");

/// One Ed25519 key encrypted by OpenSSL 3.0 under the passphrase
/// [`OPENSSL_KEY_PASSPHRASE`], made with:
///
/// ```text
/// openssl genpkey -algorithm ed25519 -out key.pem
/// openssl pkcs8 -topk8 -in key.pem -v2 aes-256-cbc -passout pass:openssl-pass  # PBKDF2
/// openssl pkcs8 -topk8 -in key.pem -scrypt -passout pass:openssl-pass          # scrypt
/// ```
pub(crate) const OPENSSL_PBKDF2_KEY_PEM: &str =
    include_str!("../tests/data/ed25519-openssl-pbkdf2.pem");
pub(crate) const OPENSSL_SCRYPT_KEY_PEM: &str =
    include_str!("../tests/data/ed25519-openssl-scrypt.pem");
pub(crate) const OPENSSL_KEY_PASSPHRASE: &[u8] = b"openssl-pass";
/// The public key of the OpenSSL-encrypted keys, in hex.
pub(crate) const OPENSSL_KEY_PUBLIC_HEX: &str =
    "f7816228da11b7c8c2c2925c2e47d02fd73c2cb4dfa2abe218168a483256149e";

pub(crate) fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

pub(crate) fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

pub(crate) fn now() -> UnixTime {
    at(NOW_SECS)
}

/// A CA certificate with its key.
pub(crate) struct Ca {
    pub(crate) key: KeyPair,
    pub(crate) cert: CertificateDer<'static>,
}

impl Ca {
    pub(crate) fn root(name: &str, rng: &mut ChaCha20Rng) -> Self {
        let key = KeyPair::generate(rng);
        let cert = issue_root(&key, name, Validity::days_from(now(), 3650), rng).expect("root");
        Self { key, cert }
    }

    pub(crate) fn intermediate(&self, name: &str, rng: &mut ChaCha20Rng) -> Self {
        let key = KeyPair::generate(rng);
        let cert = issue_intermediate(
            &self.issuer(),
            &key.public_key(),
            name,
            Validity::days_from(now(), 1825),
            rng,
        )
        .expect("intermediate");
        Self { key, cert }
    }

    pub(crate) fn issuer(&self) -> Issuer<'_> {
        Issuer {
            cert: &self.cert,
            key: &self.key,
        }
    }

    /// A leaf for `spec`, valid for 90 days from `now()`.
    pub(crate) fn leaf(&self, spec: &LeafSpec, rng: &mut ChaCha20Rng) -> Credential {
        self.leaf_with_validity(spec, Validity::days_from(now(), 90), rng)
    }

    pub(crate) fn leaf_with_validity(
        &self,
        spec: &LeafSpec,
        validity: Validity,
        rng: &mut ChaCha20Rng,
    ) -> Credential {
        let key = KeyPair::generate(rng);
        let cert =
            issue_leaf(&self.issuer(), &key.public_key(), spec, validity, rng).expect("leaf");
        Credential::new(vec![cert], key).expect("credential")
    }
}

/// `leaf` followed by `intermediates`, as a peer sends it.
pub(crate) fn chain_of(
    leaf: &Credential,
    intermediates: &[&CertificateDer<'static>],
) -> Vec<CertificateDer<'static>> {
    let mut chain = leaf.chain().to_vec();
    chain.extend(intermediates.iter().map(|c| (*c).clone()));
    chain
}
