//! A certificate chain with the leaf's private key.

use std::fmt;

use rustls_pki_types::CertificateDer;

use crate::cert::{parse_certificate, ParsedCert};
use crate::error::PkiError;
use crate::key::KeyPair;
use crate::util::Hex;

/// A certificate chain (leaf first, then intermediates; never the root) and
/// the leaf's private key.
///
/// `Debug` shows the chain length and the leaf's SHA-256 fingerprint, never
/// the key.
pub struct Credential {
    chain: Vec<CertificateDer<'static>>,
    key: KeyPair,
    fingerprint: [u8; 32],
    anonymous: bool,
}

impl Credential {
    /// Pairs a chain with its leaf key.
    ///
    /// Errors: an empty chain ([`PkiError::NoCertificates`]), a certificate
    /// that does not parse ([`PkiError::Malformed`]), a leaf without an Ed25519
    /// key ([`PkiError::UnsupportedKey`]), or a key that is not the leaf's
    /// ([`PkiError::KeyMismatch`]).
    pub fn new(chain: Vec<CertificateDer<'static>>, key: KeyPair) -> Result<Self, PkiError> {
        Self::build(chain, key, false)
    }

    /// A credential made by [`anonymous_credential`](crate::anonymous_credential).
    pub(crate) fn anonymous(cert: CertificateDer<'static>, key: KeyPair) -> Result<Self, PkiError> {
        Self::build(vec![cert], key, true)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: KeyPair,
        anonymous: bool,
    ) -> Result<Self, PkiError> {
        let (leaf, rest) = chain.split_first().ok_or(PkiError::NoCertificates)?;
        let info = ParsedCert::parse(leaf)?;
        if info.public_key != key.public_key() {
            return Err(PkiError::KeyMismatch);
        }
        for cert in rest {
            parse_certificate(cert)?;
        }
        Ok(Self {
            fingerprint: info.fingerprint,
            chain,
            key,
            anonymous,
        })
    }

    /// The chain: leaf first, then intermediates.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf's Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// SHA-256 of the leaf certificate's DER encoding.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Signs `msg` with the leaf's key.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg)
    }

    /// Whether this credential was made by
    /// [`anonymous_credential`](crate::anonymous_credential).
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("chain_len", &self.chain.len())
            .field("fingerprint", &Hex(&self.fingerprint))
            .field("anonymous", &self.anonymous)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, VerifyingKey};

    use super::*;
    use crate::test_util::{now, rng, Ca, P256_CERT_PEM};
    use crate::util::hex;
    use crate::{anonymous_credential, certs_from_pem, issue_leaf, LeafSpec, Validity};

    #[test]
    fn credential_pairs_chain_and_key() {
        let mut rng = rng(50);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        let key = KeyPair::generate(&mut rng);
        let public_key = key.public_key();
        let leaf = issue_leaf(
            &inter.issuer(),
            &public_key,
            &LeafSpec::server("api.internal"),
            Validity::days_from(now(), 90),
            &mut rng,
        )
        .expect("leaf");
        let cred =
            Credential::new(vec![leaf.clone(), inter.cert.clone()], key).expect("credential");
        assert_eq!(cred.chain(), &[leaf.clone(), inter.cert.clone()]);
        assert_eq!(cred.public_key(), public_key);
        assert_eq!(cred.fingerprint(), crate::util::fingerprint(&leaf));
        assert!(!cred.is_anonymous());
        let sig = cred.sign(b"transcript");
        VerifyingKey::from_bytes(&public_key)
            .expect("key")
            .verify_strict(b"transcript", &Signature::from_bytes(&sig))
            .expect("signature verifies");
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let mut rng = rng(51);
        let root = Ca::root("Test Root", &mut rng);
        let cred = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let other = KeyPair::generate(&mut rng);
        let err = Credential::new(cred.chain().to_vec(), other).map(|c| c.public_key());
        assert_eq!(err, Err(PkiError::KeyMismatch));
        assert_eq!(
            PkiError::KeyMismatch.to_string(),
            "certificate does not match its key"
        );
        // The CA's key with the leaf's certificate neither.
        let ca_key = KeyPair::from_pkcs8_der(&root.key.to_pkcs8_der().expect("der")).expect("key");
        assert_eq!(
            Credential::new(cred.chain().to_vec(), ca_key).map(|c| c.public_key()),
            Err(PkiError::KeyMismatch)
        );
    }

    #[test]
    fn bad_chains_are_rejected() {
        let mut rng = rng(52);
        let key = KeyPair::generate(&mut rng);
        assert_eq!(
            Credential::new(Vec::new(), key).map(|c| c.public_key()),
            Err(PkiError::NoCertificates)
        );
        let p256 = certs_from_pem(P256_CERT_PEM).expect("fixture");
        let key = KeyPair::generate(&mut rng);
        assert_eq!(
            Credential::new(p256, key).map(|c| c.public_key()),
            Err(PkiError::UnsupportedKey)
        );
    }

    #[test]
    fn garbage_intermediate_is_malformed() {
        let mut rng = rng(53);
        let root = Ca::root("Test Root", &mut rng);
        let key = KeyPair::generate(&mut rng);
        let leaf = issue_leaf(
            &root.issuer(),
            &key.public_key(),
            &LeafSpec::server("api.internal"),
            Validity::days_from(now(), 90),
            &mut rng,
        )
        .expect("leaf");
        let chain = vec![leaf, CertificateDer::from(vec![0x30, 0x00])];
        assert!(matches!(
            Credential::new(chain, key),
            Err(PkiError::Malformed(_))
        ));
    }

    #[test]
    fn anonymous_credentials_are_marked() {
        let mut rng = rng(54);
        let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
        assert!(anon.is_anonymous());
        let info = ParsedCert::parse(&anon.chain()[0]).expect("parses");
        assert_eq!(info.common_name.as_deref(), Some("anonymous"));
        assert!(!info.is_ca());
        assert!(info.is_self_issued());
        let (not_before, not_after) = info.validity_secs();
        assert_eq!(not_after - not_before, 35 * 60);
        assert_eq!(not_after, now().as_secs() + 30 * 60);
        // Fresh key each time.
        let again = anonymous_credential(&mut rng, now()).expect("anonymous");
        assert_ne!(again.public_key(), anon.public_key());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let mut rng = rng(55);
        let root = Ca::root("Test Root", &mut rng);
        let cred = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let secret = cred.key.signing_key().to_bytes();
        for debug in [format!("{cred:?}"), format!("{cred:#?}")] {
            assert!(debug.contains(&hex(&cred.fingerprint())), "{debug}");
            assert!(debug.contains("chain_len: 1"), "{debug}");
            assert!(!debug.contains(&hex(&secret)), "{debug}");
            assert!(!debug.contains(&format!("{secret:?}")), "{debug}");
            assert!(!debug.contains(&hex(&cred.public_key())), "{debug}");
        }
    }
}
