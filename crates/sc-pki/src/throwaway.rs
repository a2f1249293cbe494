//! A throwaway PKI for demos, tests and benchmarks: a root CA, a server
//! certificate and a client certificate, made in memory in one call.
//!
//! Nothing here is weaker than real issuance; it just skips the CA directory.
//! Do not use it for a deployment: the CA key dies with the value.

use std::sync::Arc;

use rand_core::CryptoRngCore;

use crate::{
    issue_leaf, issue_root, CertificateDer, Credential, Issuer, KeyPair, LeafSpec, PkiError,
    TrustAnchors, UnixTime, Validity, WebPkiClientVerifier, WebPkiServerVerifier,
};

/// A root CA with one server and one client certificate.
pub struct ThrowawayPki {
    /// The root certificate (the trust anchor).
    pub ca_cert: CertificateDer<'static>,
    ca_key: KeyPair,
    /// The server's credential (EKU serverAuth, DNS name as given).
    pub server: Arc<Credential>,
    /// The client's credential (EKU clientAuth).
    pub client: Arc<Credential>,
    validity: Validity,
}

impl core::fmt::Debug for ThrowawayPki {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ThrowawayPki")
            .field("server", &self.server)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl ThrowawayPki {
    /// A root "Sovereign-Chain Throwaway CA", a server certificate for
    /// `server_name` and a client certificate for `client_name`, valid for a
    /// day from `now`.
    pub fn new<R: CryptoRngCore + ?Sized>(
        server_name: &str,
        client_name: &str,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<Self, PkiError> {
        let validity = Validity::days_from(now, 1);
        let ca_key = KeyPair::generate(rng);
        let ca_cert = issue_root(&ca_key, "Sovereign-Chain Throwaway CA", validity, rng)?;
        let server = leaf(
            &ca_cert,
            &ca_key,
            &LeafSpec::server(server_name),
            validity,
            rng,
        )?;
        let client = leaf(
            &ca_cert,
            &ca_key,
            &LeafSpec::client(client_name),
            validity,
            rng,
        )?;
        Ok(Self {
            ca_cert,
            ca_key,
            server,
            client,
            validity,
        })
    }

    /// Issues another leaf from this CA.
    pub fn issue<R: CryptoRngCore + ?Sized>(
        &self,
        spec: &LeafSpec,
        rng: &mut R,
    ) -> Result<Arc<Credential>, PkiError> {
        leaf(&self.ca_cert, &self.ca_key, spec, self.validity, rng)
    }

    /// The trust anchors: this CA only.
    pub fn anchors(&self) -> Result<TrustAnchors, PkiError> {
        TrustAnchors::from_der(std::slice::from_ref(&self.ca_cert))
    }

    /// A server verifier trusting this CA.
    pub fn server_verifier(&self) -> Result<WebPkiServerVerifier, PkiError> {
        Ok(WebPkiServerVerifier::new(self.anchors()?))
    }

    /// A client verifier trusting this CA (anonymous clients refused).
    pub fn client_verifier(&self) -> Result<WebPkiClientVerifier, PkiError> {
        Ok(WebPkiClientVerifier::new(self.anchors()?))
    }
}

fn leaf<R: CryptoRngCore + ?Sized>(
    ca_cert: &CertificateDer<'static>,
    ca_key: &KeyPair,
    spec: &LeafSpec,
    validity: Validity,
    rng: &mut R,
) -> Result<Arc<Credential>, PkiError> {
    let key = KeyPair::generate(rng);
    let issuer = Issuer {
        cert: ca_cert,
        key: ca_key,
    };
    let cert = issue_leaf(&issuer, &key.public_key(), spec, validity, rng)?;
    Ok(Arc::new(Credential::new(vec![cert], key)?))
}
