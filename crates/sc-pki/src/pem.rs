//! PEM helpers for certificates.

use der::pem::LineEnding;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::cert::parse_certificate;
use crate::error::PkiError;

/// The PEM label of a certificate.
const CERT_PEM_LABEL: &str = "CERTIFICATE";

/// Every `CERTIFICATE` block of a PEM document, in order, as DER exactly as
/// encoded (other blocks, such as keys, are skipped).
///
/// Each certificate must parse as X.509. No certificate at all is
/// [`PkiError::NoCertificates`].
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    // rustls-pki-types' PEM reader rather than x509-cert's `load_pem_chain`:
    // it keeps the exact DER bytes (so fingerprints are stable) and does not
    // panic on empty input.
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = item.map_err(|e| PkiError::Malformed(format!("PEM: {e}")))?;
        parse_certificate(&cert)?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(PkiError::NoCertificates);
    }
    Ok(certs)
}

/// The label of the first PEM block (its `-----BEGIN <label>-----` line), if any.
pub(crate) fn first_pem_label(pem: &str) -> Option<&str> {
    pem.lines().find_map(|line| {
        line.trim()
            .strip_prefix("-----BEGIN ")?
            .strip_suffix("-----")
    })
}

/// Encodes a DER certificate as a PEM `CERTIFICATE` block (LF line endings).
pub fn cert_to_pem(cert: &CertificateDer<'_>) -> Result<String, PkiError> {
    der::pem::encode_string(CERT_PEM_LABEL, LineEnding::LF, cert.as_ref())
        .map_err(|e| PkiError::Encoding(format!("PEM: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{rng, Ca, P256_CERT_PEM, P256_KEY_PEM};
    use crate::LeafSpec;

    #[test]
    fn cert_pem_round_trip() {
        let mut rng = rng(40);
        let root = Ca::root("Test Root", &mut rng);
        let inter = root.intermediate("Test Intermediate", &mut rng);
        let leaf = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
        let certs = [
            leaf.chain()[0].clone(),
            inter.cert.clone(),
            root.cert.clone(),
        ];
        let mut pem = String::new();
        for cert in &certs {
            let block = cert_to_pem(cert).expect("encode");
            assert!(block.starts_with("-----BEGIN CERTIFICATE-----\n"));
            assert!(block.ends_with("-----END CERTIFICATE-----\n"));
            pem.push_str(&block);
        }
        assert_eq!(certs_from_pem(&pem).expect("decode"), certs);
    }

    #[test]
    fn other_blocks_are_skipped() {
        let pem = format!("{P256_KEY_PEM}\n{P256_CERT_PEM}");
        assert_eq!(certs_from_pem(&pem).expect("decode").len(), 1);
    }

    #[test]
    fn no_certificates_is_an_error() {
        assert_eq!(certs_from_pem(""), Err(PkiError::NoCertificates));
        assert_eq!(certs_from_pem("\n\n"), Err(PkiError::NoCertificates));
        assert_eq!(certs_from_pem(P256_KEY_PEM), Err(PkiError::NoCertificates));
    }

    #[test]
    fn bad_certificates_are_malformed() {
        let not_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            certs_from_pem(not_base64),
            Err(PkiError::Malformed(_))
        ));
        let not_x509 = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            certs_from_pem(not_x509),
            Err(PkiError::Malformed(_))
        ));
    }
}
