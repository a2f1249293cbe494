//! Credential snapshots built from PEM text in one step, so a server can
//! rebuild them on reload and swap them atomically: sessions keep the
//! `Arc`s they started with.

use std::sync::Arc;
use std::time::Duration;

use crate::credential::Credential;
use crate::crl::crls_from_pem;
use crate::error::PkiError;
use crate::identity::KeyPin;
use crate::key::KeyPair;
use crate::pem::certs_from_pem;
use crate::verify::{ClientPolicy, TrustAnchors, WebPkiClientVerifier, WebPkiServerVerifier};

/// What a server needs: its credential and how it verifies clients.
#[derive(Clone, Debug)]
pub struct ServerCredentials {
    /// The server's certificate chain and key.
    pub credential: Arc<Credential>,
    /// How client certificates are verified and which clients are admitted.
    pub client_verifier: Arc<WebPkiClientVerifier>,
}

impl ServerCredentials {
    /// Builds a snapshot from PEM text (the caller reads the files).
    ///
    /// * `cert_chain_pem`: the server's leaf, then its intermediates;
    /// * `key_pem`: its key, plain or encrypted (then `key_passphrase` is needed);
    /// * `ca_bundle_pem`: the CA certificates client chains must lead to;
    /// * `crl_pem`: CRLs (one or more `X509 CRL` blocks) to check clients against;
    /// * `policy`, `allow_anonymous`, `clock_skew`: see [`WebPkiClientVerifier`].
    ///
    /// Errors, each its own [`PkiError`]: no certificate in the chain
    /// ([`NoCertificates`](PkiError::NoCertificates)), a key that is not
    /// Ed25519 ([`UnsupportedKey`](PkiError::UnsupportedKey)), a certificate
    /// that does not match the key ([`KeyMismatch`](PkiError::KeyMismatch)),
    /// [`PassphraseRequired`](PkiError::PassphraseRequired) /
    /// [`WrongPassphrase`](PkiError::WrongPassphrase), an empty CA bundle
    /// ([`EmptyCaBundle`](PkiError::EmptyCaBundle)), a CA that is not a CA
    /// ([`NotCa`](PkiError::NotCa)), a CRL file without a CRL
    /// ([`NoCrl`](PkiError::NoCrl)) or a malformed CRL
    /// ([`MalformedCrl`](PkiError::MalformedCrl)), malformed PEM or DER
    /// ([`Malformed`](PkiError::Malformed)).
    #[allow(clippy::too_many_arguments)]
    pub fn from_pem(
        cert_chain_pem: &str,
        key_pem: &str,
        key_passphrase: Option<&[u8]>,
        ca_bundle_pem: &str,
        crl_pem: Option<&str>,
        policy: ClientPolicy,
        allow_anonymous: bool,
        clock_skew: Duration,
    ) -> Result<Self, PkiError> {
        let credential = credential_from_pem(cert_chain_pem, key_pem, key_passphrase)?;
        let mut verifier = WebPkiClientVerifier::new(ca_bundle(ca_bundle_pem)?)
            .allow_anonymous(allow_anonymous)
            .with_policy(policy)
            .with_clock_skew(clock_skew);
        if let Some(pem) = crl_pem {
            verifier = verifier.with_crls(crls_from_pem(pem)?)?;
        }
        Ok(Self {
            credential: Arc::new(credential),
            client_verifier: Arc::new(verifier),
        })
    }
}

/// What a client needs: its credential, if it has one, and how it verifies
/// servers.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    /// The client's certificate chain and key; `None` for a client without a
    /// certificate (it then connects anonymously, where servers allow it).
    pub credential: Option<Arc<Credential>>,
    /// How server certificates are verified.
    pub server_verifier: Arc<WebPkiServerVerifier>,
}

impl ClientCredentials {
    /// Builds a snapshot from PEM text (the caller reads the files).
    ///
    /// * `identity`: the client's `(certificate chain, key)` PEM, if it has one;
    /// * `key_passphrase`: for an encrypted key;
    /// * `ca_bundle_pem`: the CA certificates server chains must lead to;
    /// * `crl_pem`: CRLs to check servers against;
    /// * `pins`, `clock_skew`: see [`WebPkiServerVerifier`].
    ///
    /// Errors as for [`ServerCredentials::from_pem`].
    pub fn from_pem(
        identity: Option<(&str, &str)>,
        key_passphrase: Option<&[u8]>,
        ca_bundle_pem: &str,
        crl_pem: Option<&str>,
        pins: Vec<KeyPin>,
        clock_skew: Duration,
    ) -> Result<Self, PkiError> {
        let credential = identity
            .map(|(chain, key)| credential_from_pem(chain, key, key_passphrase))
            .transpose()?;
        let mut verifier = WebPkiServerVerifier::new(ca_bundle(ca_bundle_pem)?)
            .with_pins(pins)
            .with_clock_skew(clock_skew);
        if let Some(pem) = crl_pem {
            verifier = verifier.with_crls(crls_from_pem(pem)?)?;
        }
        Ok(Self {
            credential: credential.map(Arc::new),
            server_verifier: Arc::new(verifier),
        })
    }
}

fn credential_from_pem(
    chain_pem: &str,
    key_pem: &str,
    passphrase: Option<&[u8]>,
) -> Result<Credential, PkiError> {
    let chain = certs_from_pem(chain_pem)?;
    let key = KeyPair::from_pem(key_pem, passphrase)?;
    Credential::new(chain, key)
}

fn ca_bundle(pem: &str) -> Result<TrustAnchors, PkiError> {
    match certs_from_pem(pem) {
        Err(PkiError::NoCertificates) => Err(PkiError::EmptyCaBundle),
        Err(other) => Err(other),
        Ok(certs) => TrustAnchors::from_der(&certs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{at, now, rng, Ca, DAY, NOW_SECS, P256_CERT_PEM, P256_KEY_PEM};
    use crate::{
        cert_serial, cert_to_pem, crl_to_pem, issue_crl, issue_leaf, CertError, ClientCertVerifier,
        LeafSpec, RevokedEntry, ServerCertVerifier, ServerName, Validity,
    };

    /// PEM of a chain and its key, issued by `ca` for `spec`.
    fn issue_pem(ca: &Ca, spec: &LeafSpec, rng: &mut rand_chacha::ChaCha20Rng) -> (String, String) {
        let key = KeyPair::generate(rng);
        let cert = issue_leaf(
            &ca.issuer(),
            &key.public_key(),
            spec,
            Validity::days_from(now(), 30),
            rng,
        )
        .expect("leaf");
        (
            cert_to_pem(&cert).expect("pem"),
            key.to_pkcs8_pem().expect("pem").to_string(),
        )
    }

    struct Setup {
        ca_pem: String,
        server: (String, String),
        alice: (String, String),
        bob: (String, String),
        crl_pem: String,
    }

    fn setup(seed: u8) -> Setup {
        let mut rng = rng(seed);
        let root = Ca::root("Test Root", &mut rng);
        let server = issue_pem(&root, &LeafSpec::server("api.internal"), &mut rng);
        let alice = issue_pem(&root, &LeafSpec::client("alice.clients"), &mut rng);
        let bob = issue_pem(&root, &LeafSpec::client("bob.clients"), &mut rng);
        let bob_cert = crate::certs_from_pem(&bob.0).expect("pem");
        let entry = RevokedEntry {
            serial: cert_serial(&bob_cert[0]).expect("serial"),
            revoked_at: now(),
            reason: None,
        };
        let crl = issue_crl(&root.issuer(), &[entry], now(), at(NOW_SECS + DAY), 1).expect("crl");
        Setup {
            ca_pem: cert_to_pem(&root.cert).expect("pem"),
            server,
            alice,
            bob,
            crl_pem: crl_to_pem(&crl).expect("pem"),
        }
    }

    fn chain(pem: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
        crate::certs_from_pem(pem).expect("pem")
    }

    #[test]
    fn server_snapshot_from_pem() {
        let s = setup(120);
        let mut rng = rng(121);
        let key = KeyPair::from_pem(&s.server.1, None).expect("key");
        let encrypted = key
            .to_encrypted_pkcs8_pem(b"pass", &mut rng)
            .expect("encrypt");
        let policy = ClientPolicy {
            allow_names: vec!["alice.clients".into(), "bob.clients".into()],
            allow_pins: Vec::new(),
        };
        let snapshot = ServerCredentials::from_pem(
            &s.server.0,
            &encrypted,
            Some(b"pass"),
            &s.ca_pem,
            Some(&s.crl_pem),
            policy.clone(),
            true,
            Duration::from_secs(5),
        )
        .expect("snapshot");
        assert_eq!(snapshot.credential.public_key(), key.public_key());
        let verifier = &snapshot.client_verifier;
        assert!(verifier.anonymous_allowed());
        assert_eq!(verifier.policy(), &policy);
        assert_eq!(verifier.clock_skew(), Duration::from_secs(5));
        assert_eq!(verifier.crl_count(), 1);
        assert!(verifier.verify_client(&chain(&s.alice.0), now()).is_ok());
        assert_eq!(
            verifier.verify_client(&chain(&s.bob.0), now()),
            Err(CertError::Revoked)
        );
        // Debug shows no secret.
        let debug = format!("{snapshot:?}");
        assert!(debug.contains("ServerCredentials"), "{debug}");
        assert!(!debug.contains(&crate::util::hex(&key.signing_key().to_bytes())));
    }

    #[test]
    fn server_snapshot_errors_are_distinct() {
        let s = setup(122);
        let build = |chain: &str, key: &str, pass: Option<&[u8]>, ca: &str, crl: Option<&str>| {
            ServerCredentials::from_pem(
                chain,
                key,
                pass,
                ca,
                crl,
                ClientPolicy::default(),
                false,
                Duration::ZERO,
            )
            .map(|_| ())
        };
        let (chain, key) = (&s.server.0, &s.server.1);
        assert_eq!(build(chain, key, None, &s.ca_pem, None), Ok(()));
        assert_eq!(
            build(chain, &s.alice.1, None, &s.ca_pem, None),
            Err(PkiError::KeyMismatch)
        );
        assert_eq!(
            build(chain, P256_KEY_PEM, None, &s.ca_pem, None),
            Err(PkiError::UnsupportedKey)
        );
        assert_eq!(
            build(P256_CERT_PEM, key, None, &s.ca_pem, None),
            Err(PkiError::UnsupportedKey)
        );
        assert_eq!(
            build("", key, None, &s.ca_pem, None),
            Err(PkiError::NoCertificates)
        );
        assert_eq!(
            build(chain, key, None, "", None),
            Err(PkiError::EmptyCaBundle)
        );
        assert_eq!(
            build(chain, key, None, &s.crl_pem, None),
            Err(PkiError::EmptyCaBundle)
        );
        assert_eq!(build(chain, key, None, chain, None), Err(PkiError::NotCa));
        assert_eq!(
            build(chain, key, None, &s.ca_pem, Some("")),
            Err(PkiError::NoCrl)
        );
        let bad_crl = "-----BEGIN X509 CRL-----\nMAMCAQE=\n-----END X509 CRL-----\n";
        assert!(matches!(
            build(chain, key, None, &s.ca_pem, Some(bad_crl)),
            Err(PkiError::MalformedCrl(_))
        ));
        let mut rng = rng(123);
        let encrypted = KeyPair::from_pem(key, None)
            .expect("key")
            .to_encrypted_pkcs8_pem(b"pass", &mut rng)
            .expect("encrypt");
        assert_eq!(
            build(chain, &encrypted, None, &s.ca_pem, None),
            Err(PkiError::PassphraseRequired)
        );
        assert_eq!(
            build(chain, &encrypted, Some(b"nope"), &s.ca_pem, None),
            Err(PkiError::WrongPassphrase)
        );
        assert!(matches!(
            build(chain, "garbage", None, &s.ca_pem, None),
            Err(PkiError::Malformed(_))
        ));
    }

    #[test]
    fn client_snapshot_from_pem() {
        let s = setup(124);
        let name = ServerName::try_from("api.internal").expect("name");
        let server_chain = chain(&s.server.0);
        let server_pin = KeyPin::of_cert(&server_chain[0]).expect("pin");

        let with_cert = ClientCredentials::from_pem(
            Some((&s.alice.0, &s.alice.1)),
            None,
            &s.ca_pem,
            Some(&s.crl_pem),
            vec![server_pin],
            DEFAULT_SKEW,
        )
        .expect("snapshot");
        let credential = with_cert.credential.as_ref().expect("credential");
        assert_eq!(credential.chain(), chain(&s.alice.0).as_slice());
        assert_eq!(with_cert.server_verifier.pins(), &[server_pin]);
        assert!(with_cert
            .server_verifier
            .verify_server(&server_chain, &name, now())
            .is_ok());

        let anonymous = ClientCredentials::from_pem(
            None,
            None,
            &s.ca_pem,
            None,
            vec![KeyPin([7; 32])],
            DEFAULT_SKEW,
        )
        .expect("snapshot");
        assert!(anonymous.credential.is_none());
        assert_eq!(
            anonymous
                .server_verifier
                .verify_server(&server_chain, &name, now()),
            Err(CertError::PinMismatch {
                presented: server_pin
            })
        );
        assert_eq!(
            ClientCredentials::from_pem(
                Some((&s.alice.0, &s.bob.1)),
                None,
                &s.ca_pem,
                None,
                Vec::new(),
                DEFAULT_SKEW
            )
            .map(|_| ()),
            Err(PkiError::KeyMismatch)
        );
        assert_eq!(
            ClientCredentials::from_pem(None, None, "", None, Vec::new(), DEFAULT_SKEW).map(|_| ()),
            Err(PkiError::EmptyCaBundle)
        );
    }

    const DEFAULT_SKEW: Duration = crate::DEFAULT_CLOCK_SKEW;
}

/// The current snapshot of something reloadable (credentials, a server
/// config), swapped as a whole.
///
/// [`current`](Self::current) hands out an `Arc` of the snapshot in force;
/// [`reload`](Self::reload) builds a new one and swaps it in only if building
/// succeeded, so a failed reload keeps the old snapshot. Whoever took an `Arc`
/// before a swap (a session that already exists) keeps using what it had.
#[derive(Debug)]
pub struct CredentialStore<T> {
    current: std::sync::RwLock<Arc<T>>,
}

impl<T> CredentialStore<T> {
    /// A store holding `initial`.
    pub fn new(initial: T) -> Self {
        Self {
            current: std::sync::RwLock::new(Arc::new(initial)),
        }
    }

    /// The snapshot in force now.
    pub fn current(&self) -> Arc<T> {
        // A poisoned lock still holds a whole snapshot (swaps are one
        // assignment), so it is safe to keep serving it.
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Swaps in `next`; later [`current`](Self::current) calls return it.
    pub fn replace(&self, next: T) {
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// Builds a new snapshot with `build` and swaps it in; on error nothing
    /// changes and the error is returned (for the caller to log).
    pub fn reload<E>(&self, build: impl FnOnce() -> Result<T, E>) -> Result<(), E> {
        let next = build()?;
        self.replace(next);
        Ok(())
    }
}

#[cfg(test)]
mod store_tests {
    use super::CredentialStore;

    #[test]
    fn a_failed_reload_keeps_the_old_snapshot() {
        let store = CredentialStore::new(1u32);
        let held = store.current();
        assert_eq!(store.reload(|| Err::<u32, &str>("bad CRL")), Err("bad CRL"));
        assert_eq!(*store.current(), 1);
        store.reload(|| Ok::<u32, ()>(2)).expect("reload");
        assert_eq!(*store.current(), 2);
        assert_eq!(*held, 1, "a holder keeps what it had");
    }
}
