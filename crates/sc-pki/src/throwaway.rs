//! A throwaway PKI for demos, tests and benchmarks: a root CA (and, if
//! asked, an intermediate under it), a server certificate and a client
//! certificate, made in memory in one call.
//!
//! Nothing here is weaker than real issuance; it just skips the CA directory.
//! Do not use it for a deployment: the CA key dies with the value.

use std::sync::Arc;

use rand_core::CryptoRngCore;

use crate::{
    issue_intermediate, issue_leaf, issue_root, CertificateDer, Credential, Issuer, KeyPair,
    LeafSpec, PkiError, TrustAnchors, UnixTime, Validity, WebPkiClientVerifier,
    WebPkiServerVerifier,
};

/// A root CA with one server and one client certificate, issued by the root
/// or by an intermediate under it.
pub struct ThrowawayPki {
    /// The root certificate (the trust anchor).
    pub ca_cert: CertificateDer<'static>,
    /// The intermediate CA certificate that issues the leaves, if there is
    /// one ([`with_intermediate`](Self::with_intermediate)); the leaves'
    /// chains carry it.
    pub intermediate_cert: Option<CertificateDer<'static>>,
    /// The key that issues the leaves: the intermediate's if there is one,
    /// else the root's.
    issuing_key: KeyPair,
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
        Self::make(server_name, client_name, now, false, rng)
    }

    /// As [`new`](Self::new), with the leaves issued by an intermediate
    /// "Sovereign-Chain Throwaway Intermediate CA" under the root: each
    /// side's chain is leaf → intermediate, verified up to the root (two
    /// signatures per chain, as a deployment with an issuing CA has).
    pub fn with_intermediate<R: CryptoRngCore + ?Sized>(
        server_name: &str,
        client_name: &str,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<Self, PkiError> {
        Self::make(server_name, client_name, now, true, rng)
    }

    fn make<R: CryptoRngCore + ?Sized>(
        server_name: &str,
        client_name: &str,
        now: UnixTime,
        intermediate: bool,
        rng: &mut R,
    ) -> Result<Self, PkiError> {
        let validity = Validity::days_from(now, 1);
        let ca_key = KeyPair::generate(rng);
        let ca_cert = issue_root(&ca_key, "Sovereign-Chain Throwaway CA", validity, rng)?;
        let (intermediate_cert, issuing_key) = if intermediate {
            let key = KeyPair::generate(rng);
            let root = Issuer {
                cert: &ca_cert,
                key: &ca_key,
            };
            let cert = issue_intermediate(
                &root,
                &key.public_key(),
                "Sovereign-Chain Throwaway Intermediate CA",
                validity,
                rng,
            )?;
            (Some(cert), key)
        } else {
            (None, ca_key)
        };
        let issuing_cert = intermediate_cert.as_ref().unwrap_or(&ca_cert);
        let server = issue_from(
            issuing_cert,
            intermediate_cert.as_ref(),
            &issuing_key,
            &LeafSpec::server(server_name),
            validity,
            rng,
        )?;
        let client = issue_from(
            issuing_cert,
            intermediate_cert.as_ref(),
            &issuing_key,
            &LeafSpec::client(client_name),
            validity,
            rng,
        )?;
        Ok(Self {
            ca_cert,
            intermediate_cert,
            issuing_key,
            server,
            client,
            validity,
        })
    }

    /// Issues another leaf from this CA (from the intermediate, if there is
    /// one: the leaf's chain then carries it).
    pub fn issue<R: CryptoRngCore + ?Sized>(
        &self,
        spec: &LeafSpec,
        rng: &mut R,
    ) -> Result<Arc<Credential>, PkiError> {
        issue_from(
            self.intermediate_cert.as_ref().unwrap_or(&self.ca_cert),
            self.intermediate_cert.as_ref(),
            &self.issuing_key,
            spec,
            self.validity,
            rng,
        )
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

/// A leaf for `spec` issued by `cert` and `key`, its chain carrying
/// `intermediate` if there is one.
fn issue_from<R: CryptoRngCore + ?Sized>(
    cert: &CertificateDer<'static>,
    intermediate: Option<&CertificateDer<'static>>,
    key: &KeyPair,
    spec: &LeafSpec,
    validity: Validity,
    rng: &mut R,
) -> Result<Arc<Credential>, PkiError> {
    let leaf_key = KeyPair::generate(rng);
    let issuer = Issuer { cert, key };
    let leaf = issue_leaf(&issuer, &leaf_key.public_key(), spec, validity, rng)?;
    let chain = std::iter::once(leaf).chain(intermediate.cloned()).collect();
    Ok(Arc::new(Credential::new(chain, leaf_key)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{now, rng};
    use crate::{ClientCertVerifier, ServerCertVerifier, ServerName};

    #[test]
    fn both_sides_verify_with_and_without_an_intermediate() {
        for intermediate in [false, true] {
            let mut rng = rng(170);
            let make = if intermediate {
                ThrowawayPki::with_intermediate
            } else {
                ThrowawayPki::new
            };
            let pki = make("server.test", "client-1", now(), &mut rng).expect("pki");
            let length = if intermediate { 2 } else { 1 };
            assert_eq!(pki.intermediate_cert.is_some(), intermediate);
            let other = pki
                .issue(&LeafSpec::client("client-2"), &mut rng)
                .expect("leaf");
            for chain in [pki.server.chain(), pki.client.chain(), other.chain()] {
                assert_eq!(chain.len(), length);
                assert_eq!(chain.get(1), pki.intermediate_cert.as_ref());
            }
            let name = ServerName::try_from("server.test").expect("name");
            let servers = pki.server_verifier().expect("verifier");
            assert!(servers
                .verify_server(pki.server.chain(), &name, now())
                .is_ok());
            let clients = pki.client_verifier().expect("verifier");
            assert!(clients.verify_client(pki.client.chain(), now()).is_ok());
            assert!(clients.verify_client(other.chain(), now()).is_ok());
            // Without the intermediate, a leaf under it has no path.
            if intermediate {
                assert!(clients
                    .verify_client(&pki.client.chain()[..1], now())
                    .is_err());
            }
        }
    }
}
