//! The CAs a verifier trusts: `TrustAnchors`, from DER certificates or a PEM
//! bundle.

use rustls_pki_types::{CertificateDer, TrustAnchor};

use crate::cert::ParsedCert;
use crate::error::PkiError;
use crate::pem::certs_from_pem;

/// One or more trust anchors (a CA bundle; several roots are allowed, for
/// roll-over).
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    pub(super) anchors: Vec<TrustAnchor<'static>>,
    subjects: Vec<Vec<u8>>,
}

impl TrustAnchors {
    /// Trusts each of `certs`. Each must parse, carry an Ed25519 key and be a
    /// CA certificate; at least one is required.
    pub fn from_der(certs: &[CertificateDer<'_>]) -> Result<Self, PkiError> {
        if certs.is_empty() {
            return Err(PkiError::NoCertificates);
        }
        let mut anchors = Vec::with_capacity(certs.len());
        let mut subjects = Vec::with_capacity(certs.len());
        for cert in certs {
            let info = ParsedCert::parse(cert)?;
            if !info.is_ca() {
                return Err(PkiError::NotCa);
            }
            subjects.push(info.subject_der()?);
            let anchor = webpki::anchor_from_trusted_cert(cert)
                .map_err(|e| PkiError::Malformed(format!("trust anchor: {e:?}")))?;
            anchors.push(anchor.to_owned());
        }
        Ok(Self { anchors, subjects })
    }

    /// Trusts every `CERTIFICATE` in a PEM bundle (see [`TrustAnchors::from_der`]).
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::from_der(&certs_from_pem(pem)?)
    }

    /// DER-encoded subject Names of the anchors, in order.
    pub fn subject_names(&self) -> &[Vec<u8>] {
        &self.subjects
    }

    /// The number of anchors.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Always false: a `TrustAnchors` holds at least one anchor.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}
