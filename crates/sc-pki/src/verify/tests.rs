//! Tests of the verifiers: chains, names, purposes, signatures, anonymous
//! clients, CRLs, clock skew, key pins and the client policy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use der::Decode;
use rand_chacha::ChaCha20Rng;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, ServerName, SignatureVerificationAlgorithm,
    UnixTime,
};
use webpki::EndEntityCert;
use x509_cert::Certificate;

use super::cache::SignatureCache;
use super::chain::{CLIENT_AUTH, MAX_SIGNATURE_CHECKS, SERVER_AUTH};
use super::ed25519::{signature_checks_for_testing_only, SignatureBudget};
use super::{
    ClientCertVerifier, ClientPolicy, ServerCertVerifier, TrustAnchors, WebPkiClientVerifier,
    WebPkiServerVerifier, DEFAULT_CLOCK_SKEW,
};
use crate::cert::ParsedCert;
use crate::error::{CertError, PkiError};
use crate::identity::{KeyPin, VerifiedPeer};
use crate::issue::{issue_leaf_with_spki, issue_self_signed_leaf};
use crate::test_util::{at, chain_of, now, rng, Ca, DAY, NOW_SECS, P256_CERT_PEM};
use crate::{
    anonymous_credential, cert_serial, certs_from_pem, issue_crl, Credential, KeyPair, LeafSpec,
    RevocationReason, RevokedEntry, Usage, Validity,
};

fn server_verifier(roots: &[&Ca]) -> WebPkiServerVerifier {
    let certs: Vec<_> = roots.iter().map(|ca| ca.cert.clone()).collect();
    WebPkiServerVerifier::new(TrustAnchors::from_der(&certs).expect("anchors"))
}

fn client_verifier(roots: &[&Ca]) -> WebPkiClientVerifier {
    let certs: Vec<_> = roots.iter().map(|ca| ca.cert.clone()).collect();
    WebPkiClientVerifier::new(TrustAnchors::from_der(&certs).expect("anchors"))
}

fn dns(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_owned()).expect("valid DNS name")
}

#[test]
fn purposes_agree_with_webpki() {
    for purpose in [SERVER_AUTH, CLIENT_AUTH] {
        let arcs: Vec<usize> = purpose.webpki.oid_values().collect();
        let expected: Vec<usize> = purpose.oid.arcs().map(|arc| arc as usize).collect();
        assert_eq!(arcs, expected);
    }
}

#[test]
fn root_to_leaf_server_chain_verifies() {
    let mut rng = rng(10);
    let root = Ca::root("Test Root", &mut rng);
    let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let peer = server_verifier(&[&root])
        .verify_server(server.chain(), &dns("api.internal"), now())
        .expect("valid chain");
    assert_eq!(peer.public_key, server.public_key());
    assert_eq!(peer.identity.dns_names, vec!["api.internal".to_owned()]);
    assert_eq!(peer.identity.common_name.as_deref(), Some("api.internal"));
    assert_eq!(peer.identity.fingerprint, server.fingerprint());
    assert!(!peer.identity.anonymous);
    assert_eq!(peer.identity.to_string(), "dns:api.internal");
}

#[test]
fn root_to_intermediate_to_leaf_chain_verifies() {
    let mut rng = rng(11);
    let root = Ca::root("Test Root", &mut rng);
    let inter = root.intermediate("Test Intermediate", &mut rng);
    let server = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let chain = chain_of(&server, &[&inter.cert]);
    let peer = server_verifier(&[&root])
        .verify_server(&chain, &dns("api.internal"), now())
        .expect("valid chain");
    assert_eq!(peer.public_key, server.public_key());

    // Without the intermediate there is no path.
    assert_eq!(
        server_verifier(&[&root]).verify_server(server.chain(), &dns("api.internal"), now()),
        Err(CertError::UnknownIssuer)
    );

    let client = inter.leaf(&LeafSpec::client("spiffe://sc/client/alice"), &mut rng);
    let chain = chain_of(&client, &[&inter.cert]);
    let peer = client_verifier(&[&root])
        .verify_client(&chain, now())
        .expect("valid client chain");
    assert_eq!(
        peer.identity.uris,
        vec!["spiffe://sc/client/alice".to_owned()]
    );
    assert_eq!(peer.identity.to_string(), "uri:spiffe://sc/client/alice");
}

#[test]
fn ip_address_server_names_verify() {
    let mut rng = rng(12);
    let root = Ca::root("Test Root", &mut rng);
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let spec = LeafSpec {
        common_name: "node7".into(),
        ip_addrs: vec![v4, v6],
        ..LeafSpec::default()
    };
    let server = root.leaf(&spec, &mut rng);
    let verifier = server_verifier(&[&root]);
    for ip in [v4, v6] {
        let peer = verifier
            .verify_server(server.chain(), &ServerName::IpAddress(ip.into()), now())
            .expect("valid for its IP");
        assert_eq!(peer.identity.ip_addrs, vec![v4, v6]);
        assert_eq!(peer.identity.to_string(), "ip:10.0.0.7");
    }
    let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8));
    assert_eq!(
        verifier.verify_server(server.chain(), &ServerName::IpAddress(other.into()), now()),
        Err(CertError::NameMismatch {
            expected: "10.0.0.8".into(),
            presented: vec!["10.0.0.7".into(), "::1".into()],
        })
    );
    // A DNS name is not matched against IP SANs (nor the common name).
    assert!(matches!(
        verifier.verify_server(server.chain(), &dns("node7"), now()),
        Err(CertError::NameMismatch { .. })
    ));
    // A leaf from LeafSpec::server with an IP puts it in an IP SAN.
    let server = root.leaf(&LeafSpec::server("192.0.2.1"), &mut rng);
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    assert!(verifier
        .verify_server(server.chain(), &ServerName::IpAddress(ip.into()), now())
        .is_ok());
}

#[test]
fn unknown_ca_is_rejected() {
    let mut rng = rng(13);
    let root = Ca::root("Test Root", &mut rng);
    let other = Ca::root("Other Root", &mut rng);
    let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    assert_eq!(
        server_verifier(&[&other]).verify_server(server.chain(), &dns("api.internal"), now()),
        Err(CertError::UnknownIssuer)
    );
    let client = root.leaf(&LeafSpec::client("alice.clients"), &mut rng);
    assert_eq!(
        client_verifier(&[&other]).verify_client(client.chain(), now()),
        Err(CertError::UnknownIssuer)
    );
}

#[test]
fn impostor_root_with_the_same_name_is_rejected() {
    // Same subject name, different key: webpki reports the signature
    // failure, which it ranks above "unknown issuer".
    let mut rng = rng(14);
    let root = Ca::root("Test Root", &mut rng);
    let impostor = Ca::root("Test Root", &mut rng);
    let server = impostor.leaf(&LeafSpec::server("api.internal"), &mut rng);
    assert_eq!(
        server_verifier(&[&root]).verify_server(server.chain(), &dns("api.internal"), now()),
        Err(CertError::BadSignature)
    );
}

#[test]
fn several_roots_allow_roll_over() {
    let mut rng = rng(15);
    let old = Ca::root("Root 2024", &mut rng);
    let new = Ca::root("Root 2025", &mut rng);
    let verifier = server_verifier(&[&old, &new]);
    for ca in [&old, &new] {
        let server = ca.leaf(&LeafSpec::server("api.internal"), &mut rng);
        assert!(verifier
            .verify_server(server.chain(), &dns("api.internal"), now())
            .is_ok());
    }
}

#[test]
fn expired_and_not_yet_valid_are_distinct() {
    let mut rng = rng(16);
    let root = Ca::root("Test Root", &mut rng);
    let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let verifier = server_verifier(&[&root]);
    let name = dns("api.internal");

    let later = at(NOW_SECS + 91 * DAY);
    assert_eq!(
        verifier.verify_server(server.chain(), &name, later),
        Err(CertError::Expired {
            not_after: at(NOW_SECS + 90 * DAY),
            now: later,
        })
    );
    let earlier = at(NOW_SECS - 3600);
    assert_eq!(
        verifier.verify_server(server.chain(), &name, earlier),
        Err(CertError::NotYetValid {
            not_before: at(NOW_SECS - 300),
            now: earlier,
        })
    );
    // The back-dating covers 5 minutes of clock skew.
    assert!(verifier
        .verify_server(server.chain(), &name, at(NOW_SECS - 299))
        .is_ok());

    // A leaf valid only in the future.
    let future = Validity {
        not_before: at(NOW_SECS + DAY),
        not_after: at(NOW_SECS + 2 * DAY),
    };
    let server = root.leaf_with_validity(&LeafSpec::server("api.internal"), future, &mut rng);
    assert!(matches!(
        verifier.verify_server(server.chain(), &name, now()),
        Err(CertError::NotYetValid { .. })
    ));
}

#[test]
fn wrong_eku_is_wrong_purpose() {
    let mut rng = rng(17);
    let root = Ca::root("Test Root", &mut rng);
    let client = root.leaf(&LeafSpec::client("api.internal"), &mut rng);
    let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    assert_eq!(
        server_verifier(&[&root]).verify_server(client.chain(), &dns("api.internal"), now()),
        Err(CertError::WrongPurpose)
    );
    assert_eq!(
        client_verifier(&[&root]).verify_client(server.chain(), now()),
        Err(CertError::WrongPurpose)
    );

    // A certificate for both works for both.
    let spec = LeafSpec {
        usage: Usage::ServerAndClient,
        ..LeafSpec::server("api.internal")
    };
    let both = root.leaf(&spec, &mut rng);
    assert!(server_verifier(&[&root])
        .verify_server(both.chain(), &dns("api.internal"), now())
        .is_ok());
    assert!(client_verifier(&[&root])
        .verify_client(both.chain(), now())
        .is_ok());
}

#[test]
fn ca_certificate_as_leaf_is_wrong_purpose() {
    let mut rng = rng(18);
    let root = Ca::root("Test Root", &mut rng);
    let inter = root.intermediate("Test Intermediate", &mut rng);
    assert_eq!(
        client_verifier(&[&root]).verify_client(std::slice::from_ref(&inter.cert), now()),
        Err(CertError::WrongPurpose)
    );
}

#[test]
fn wrong_name_lists_the_presented_names() {
    let mut rng = rng(19);
    let root = Ca::root("Test Root", &mut rng);
    let spec = LeafSpec {
        dns_names: vec!["api.internal".into(), "api2.internal".into()],
        ip_addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))],
        ..LeafSpec::server("api.internal")
    };
    let server = root.leaf(&spec, &mut rng);
    let err = server_verifier(&[&root])
        .verify_server(server.chain(), &dns("db.internal"), now())
        .expect_err("wrong name");
    assert_eq!(
        err,
        CertError::NameMismatch {
            expected: "db.internal".into(),
            presented: vec![
                "api.internal".into(),
                "api2.internal".into(),
                "10.1.2.3".into()
            ],
        }
    );
    assert_eq!(
        err.to_string(),
        "certificate is not valid for 'db.internal' \
         (it names: api.internal, api2.internal, 10.1.2.3)"
    );
}

#[test]
fn wildcard_names_match_one_label() {
    let mut rng = rng(20);
    let root = Ca::root("Test Root", &mut rng);
    let spec = LeafSpec {
        dns_names: vec!["*.svc.internal".into()],
        ..LeafSpec::default()
    };
    let server = root.leaf(&spec, &mut rng);
    let verifier = server_verifier(&[&root]);
    assert!(verifier
        .verify_server(server.chain(), &dns("a.svc.internal"), now())
        .is_ok());
    assert!(matches!(
        verifier.verify_server(server.chain(), &dns("a.b.svc.internal"), now()),
        Err(CertError::NameMismatch { .. })
    ));
}

#[test]
fn tampered_signature_never_verifies() {
    let mut rng = rng(21);
    let root = Ca::root("Test Root", &mut rng);
    let inter = root.intermediate("Test Intermediate", &mut rng);
    let server = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let verifier = server_verifier(&[&root]);
    let name = dns("api.internal");

    // The signature BIT STRING is the last element: flip its last byte.
    let mut leaf = server.chain()[0].to_vec();
    let last = leaf.len() - 1;
    leaf[last] ^= 0x01;
    let chain = vec![CertificateDer::from(leaf), inter.cert.clone()];
    assert_eq!(
        verifier.verify_server(&chain, &name, now()),
        Err(CertError::BadSignature)
    );

    // Every single-byte change of the leaf signature fails.
    let good = server.chain()[0].to_vec();
    for i in good.len() - 64..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x80;
        let chain = vec![CertificateDer::from(bad), inter.cert.clone()];
        let result = verifier.verify_server(&chain, &name, now());
        assert!(
            matches!(
                result,
                Err(CertError::BadSignature | CertError::Malformed(_))
            ),
            "byte {i}: {result:?}"
        );
    }

    // A tampered intermediate signature fails too.
    let mut bad_inter = inter.cert.to_vec();
    let last = bad_inter.len() - 1;
    bad_inter[last] ^= 0x01;
    let chain = vec![server.chain()[0].clone(), CertificateDer::from(bad_inter)];
    assert_eq!(
        verifier.verify_server(&chain, &name, now()),
        Err(CertError::BadSignature)
    );

    // A changed to-be-signed part (here: the DNS name) breaks the signature.
    let good = server.chain()[0].to_vec();
    let pos = good
        .windows(b"api.internal".len())
        .rposition(|w| w == b"api.internal")
        .expect("SAN present");
    let mut bad = good.clone();
    bad[pos] = b'x';
    let chain = vec![CertificateDer::from(bad), inter.cert.clone()];
    let result = verifier.verify_server(&chain, &dns("xpi.internal"), now());
    assert!(
        matches!(
            result,
            Err(CertError::BadSignature | CertError::Malformed(_))
        ),
        "{result:?}"
    );
}

#[test]
fn garbage_and_empty_chains_are_malformed() {
    let mut rng = rng(22);
    let root = Ca::root("Test Root", &mut rng);
    let verifier = server_verifier(&[&root]);
    assert!(matches!(
        verifier.verify_server(&[], &dns("api.internal"), now()),
        Err(CertError::Malformed(_))
    ));
    assert!(matches!(
        verifier.verify_server(
            &[CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01])],
            &dns("api.internal"),
            now()
        ),
        Err(CertError::Malformed(_))
    ));
    assert!(matches!(
        client_verifier(&[&root]).verify_client(&[], now()),
        Err(CertError::Malformed(_))
    ));
}

#[test]
fn non_ed25519_leaf_is_unsupported_key() {
    let mut rng = rng(23);
    let root = Ca::root("Test Root", &mut rng);
    // The openssl-made P-256 certificate, as is...
    let p256 = certs_from_pem(P256_CERT_PEM).expect("fixture");
    assert_eq!(
        server_verifier(&[&root]).verify_server(&p256, &dns("p256.test"), now()),
        Err(CertError::UnsupportedKey)
    );
    // ...and its P-256 key in a leaf our root signs: webpki alone would
    // accept this chain (it does not check the leaf's key type).
    let spki = Certificate::from_der(&p256[0])
        .expect("fixture parses")
        .tbs_certificate
        .subject_public_key_info;
    let cert = issue_leaf_with_spki(
        &root.issuer(),
        spki,
        &LeafSpec {
            usage: Usage::ServerAndClient,
            ..LeafSpec::server("p256.test")
        },
        Validity::days_from(now(), 30),
        &mut rng,
    )
    .expect("issue");
    let chain = [cert];
    assert_eq!(
        server_verifier(&[&root]).verify_server(&chain, &dns("p256.test"), now()),
        Err(CertError::UnsupportedKey)
    );
    assert_eq!(
        client_verifier(&[&root]).verify_client(&chain, now()),
        Err(CertError::UnsupportedKey)
    );
    assert_eq!(
        client_verifier(&[&root])
            .allow_anonymous(true)
            .verify_anonymous(&p256[0], now()),
        Err(CertError::UnsupportedKey)
    );
}

#[test]
fn anonymous_credential_verifies_when_allowed() {
    let mut rng = rng(24);
    let root = Ca::root("Test Root", &mut rng);
    let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
    assert!(anon.is_anonymous());
    assert_eq!(anon.chain().len(), 1);

    let verifier = client_verifier(&[&root]).allow_anonymous(true);
    assert!(verifier.anonymous_allowed());
    let peer = verifier
        .verify_anonymous(&anon.chain()[0], now())
        .expect("valid anonymous");
    assert_eq!(peer.public_key, anon.public_key());
    assert!(peer.identity.anonymous);
    assert_eq!(peer.identity.common_name, None);
    assert!(peer.identity.dns_names.is_empty());
    let fp = crate::util::hex(&anon.fingerprint());
    assert_eq!(
        peer.identity.to_string(),
        format!("anonymous:sha256:{}", &fp[..16])
    );

    // It is no CA-issued certificate.
    assert_eq!(
        verifier.verify_client(anon.chain(), now()),
        Err(CertError::UnknownIssuer)
    );
}

#[test]
fn anonymous_not_allowed_by_default() {
    let mut rng = rng(25);
    let root = Ca::root("Test Root", &mut rng);
    let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
    let verifier = client_verifier(&[&root]);
    assert!(!verifier.anonymous_allowed());
    assert_eq!(
        verifier.verify_anonymous(&anon.chain()[0], now()),
        Err(CertError::AnonymousNotAllowed)
    );
    assert_eq!(
        verifier
            .allow_anonymous(false)
            .verify_anonymous(&anon.chain()[0], now()),
        Err(CertError::AnonymousNotAllowed)
    );
}

#[test]
fn anonymous_expires_after_30_minutes() {
    let mut rng = rng(26);
    let root = Ca::root("Test Root", &mut rng);
    let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
    let verifier = client_verifier(&[&root])
        .allow_anonymous(true)
        .with_clock_skew(Duration::ZERO);
    let cert = &anon.chain()[0];
    assert!(verifier
        .verify_anonymous(cert, at(NOW_SECS + 30 * 60))
        .is_ok());
    assert_eq!(
        verifier.verify_anonymous(cert, at(NOW_SECS + 30 * 60 + 1)),
        Err(CertError::Expired {
            not_after: at(NOW_SECS + 30 * 60),
            now: at(NOW_SECS + 30 * 60 + 1),
        })
    );
    // Back-dated by 5 minutes for clock skew, no more.
    assert!(verifier.verify_anonymous(cert, at(NOW_SECS - 300)).is_ok());
    assert!(matches!(
        verifier.verify_anonymous(cert, at(NOW_SECS - 301)),
        Err(CertError::NotYetValid { .. })
    ));
    // The default skew (60 s) applies to anonymous certificates too.
    let verifier = verifier.with_clock_skew(DEFAULT_CLOCK_SKEW);
    assert!(verifier
        .verify_anonymous(cert, at(NOW_SECS + 31 * 60))
        .is_ok());
    assert!(verifier.verify_anonymous(cert, at(NOW_SECS - 360)).is_ok());
    assert_eq!(
        verifier.verify_anonymous(cert, at(NOW_SECS + 31 * 60 + 1)),
        Err(CertError::Expired {
            not_after: at(NOW_SECS + 30 * 60),
            now: at(NOW_SECS + 31 * 60 + 1),
        })
    );
}

#[test]
fn ca_issued_certificate_is_not_anonymous() {
    let mut rng = rng(27);
    let root = Ca::root("Test Root", &mut rng);
    let client = root.leaf_with_validity(
        &LeafSpec::client("alice.clients"),
        Validity::backdated(now(), 30 * 60),
        &mut rng,
    );
    let verifier = client_verifier(&[&root]).allow_anonymous(true);
    assert!(matches!(
        verifier.verify_anonymous(&client.chain()[0], now()),
        Err(CertError::InvalidAnonymous(_))
    ));
    // Nor is the (self-signed, but CA) root.
    assert_eq!(
        verifier.verify_anonymous(&root.cert, now()),
        Err(CertError::WrongPurpose)
    );
}

#[test]
fn long_lived_self_signed_certificate_is_not_anonymous() {
    let mut rng = rng(28);
    let root = Ca::root("Test Root", &mut rng);
    let key = KeyPair::generate(&mut rng);
    let cert = issue_self_signed_leaf(
        &key,
        "anonymous",
        Usage::Client,
        Validity::days_from(now(), 365),
        &mut rng,
    )
    .expect("issue");
    let verifier = client_verifier(&[&root]).allow_anonymous(true);
    assert_eq!(
        verifier.verify_anonymous(&cert, now()),
        Err(CertError::InvalidAnonymous(
            "lifetime of 31536300 s exceeds the 2100 s allowed".into()
        ))
    );
    // 35 minutes is the limit; one second more is refused.
    let validity = Validity {
        not_before: at(NOW_SECS - 300),
        not_after: at(NOW_SECS + 30 * 60 + 1),
    };
    let cert = issue_self_signed_leaf(&key, "anonymous", Usage::Client, validity, &mut rng)
        .expect("issue");
    assert!(matches!(
        verifier.verify_anonymous(&cert, now()),
        Err(CertError::InvalidAnonymous(_))
    ));
}

#[test]
fn anonymous_needs_client_auth_and_its_own_signature() {
    let mut rng = rng(29);
    let root = Ca::root("Test Root", &mut rng);
    let verifier = client_verifier(&[&root]).allow_anonymous(true);
    let key = KeyPair::generate(&mut rng);
    let validity = Validity::backdated(now(), 30 * 60);
    let server_only = issue_self_signed_leaf(&key, "anonymous", Usage::Server, validity, &mut rng)
        .expect("issue");
    assert_eq!(
        verifier.verify_anonymous(&server_only, now()),
        Err(CertError::WrongPurpose)
    );

    let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
    let mut bad = anon.chain()[0].to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    assert_eq!(
        verifier.verify_anonymous(&CertificateDer::from(bad), now()),
        Err(CertError::BadSignature)
    );
}

#[test]
fn trust_anchors_and_ca_names() {
    let mut rng = rng(30);
    let a = Ca::root("Root A", &mut rng);
    let b = Ca::root("Root B", &mut rng);
    let pem = format!(
        "{}{}",
        crate::cert_to_pem(&a.cert).expect("pem"),
        crate::cert_to_pem(&b.cert).expect("pem")
    );
    let anchors = TrustAnchors::from_pem(&pem).expect("bundle");
    assert_eq!(anchors.len(), 2);
    let verifier = WebPkiClientVerifier::new(anchors);
    let names: Vec<Vec<u8>> = [&a, &b]
        .iter()
        .map(|ca| {
            der::Encode::to_der(
                &Certificate::from_der(&ca.cert)
                    .expect("parses")
                    .tbs_certificate
                    .subject,
            )
            .expect("encodes")
        })
        .collect();
    assert_eq!(verifier.ca_names(), names.as_slice());
    let name = x509_cert::name::Name::from_der(&verifier.ca_names()[0]).expect("a Name");
    assert_eq!(name.to_string(), "CN=Root A");

    assert_eq!(
        TrustAnchors::from_der(&[]).map(|a| a.len()),
        Err(PkiError::NoCertificates)
    );
    let leaf = a.leaf(&LeafSpec::server("api.internal"), &mut rng);
    assert_eq!(
        TrustAnchors::from_der(leaf.chain()).map(|a| a.len()),
        Err(PkiError::NotCa)
    );
    let p256 = certs_from_pem(P256_CERT_PEM).expect("fixture");
    assert_eq!(
        TrustAnchors::from_der(&p256).map(|a| a.len()),
        Err(PkiError::UnsupportedKey)
    );
}

#[test]
fn verifiers_are_shareable() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<WebPkiServerVerifier>();
    assert_send_sync::<WebPkiClientVerifier>();
    let mut rng = rng(31);
    let root = Ca::root("Test Root", &mut rng);
    let _: std::sync::Arc<dyn ServerCertVerifier> = std::sync::Arc::new(server_verifier(&[&root]));
    let _: std::sync::Arc<dyn ClientCertVerifier> = std::sync::Arc::new(client_verifier(&[&root]));
}

// ---- CRLs, clock skew, pins and the client policy ----

fn crl_of(
    ca: &Ca,
    revoked: &[&Credential],
    this_update: UnixTime,
    next_update: UnixTime,
) -> CertificateRevocationListDer<'static> {
    let entries: Vec<RevokedEntry> = revoked
        .iter()
        .map(|cred| RevokedEntry {
            serial: cert_serial(&cred.chain()[0]).expect("serial"),
            revoked_at: at(NOW_SECS - 60),
            reason: Some(RevocationReason::KeyCompromise),
        })
        .collect();
    issue_crl(&ca.issuer(), &entries, this_update, next_update, 1).expect("crl")
}

/// A CRL issued now, due again in a week.
fn fresh_crl(ca: &Ca, revoked: &[&Credential]) -> CertificateRevocationListDer<'static> {
    crl_of(ca, revoked, now(), at(NOW_SECS + 7 * DAY))
}

fn ca_with_validity(parent: &Ca, name: &str, validity: Validity, rng: &mut ChaCha20Rng) -> Ca {
    let key = KeyPair::generate(rng);
    let cert = crate::issue_intermediate(&parent.issuer(), &key.public_key(), name, validity, rng)
        .expect("intermediate");
    Ca { key, cert }
}

#[test]
fn revoked_leaf_of_a_root_is_refused() {
    let mut rng = rng(110);
    let root = Ca::root("Test Root", &mut rng);
    let bad = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let good = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let verifier = server_verifier(&[&root])
        .with_crls(vec![fresh_crl(&root, &[&bad])])
        .expect("crl");
    assert_eq!(verifier.crl_count(), 1);
    let name = dns("api.internal");
    assert_eq!(
        verifier.verify_server(bad.chain(), &name, now()),
        Err(CertError::Revoked)
    );
    assert!(verifier.verify_server(good.chain(), &name, now()).is_ok());

    let bad_client = root.leaf(&LeafSpec::client("alice.clients"), &mut rng);
    let good_client = root.leaf(&LeafSpec::client("bob.clients"), &mut rng);
    let verifier = client_verifier(&[&root])
        .with_crls(vec![fresh_crl(&root, &[&bad_client])])
        .expect("crl");
    assert_eq!(
        verifier.verify_client(bad_client.chain(), now()),
        Err(CertError::Revoked)
    );
    assert!(verifier.verify_client(good_client.chain(), now()).is_ok());
    assert_eq!(
        CertError::Revoked.to_string(),
        "certificate has been revoked"
    );
}

#[test]
fn revoked_leaf_of_an_intermediate_is_refused() {
    let mut rng = rng(111);
    let root = Ca::root("Test Root", &mut rng);
    let inter = root.intermediate("Test Intermediate", &mut rng);
    let bad = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let good = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let name = dns("api.internal");
    let (bad_chain, good_chain) = (
        chain_of(&bad, &[&inter.cert]),
        chain_of(&good, &[&inter.cert]),
    );

    // The intermediate's CRL covers its leaves.
    let verifier = server_verifier(&[&root])
        .with_crls(vec![fresh_crl(&inter, &[&bad])])
        .expect("crl");
    assert_eq!(
        verifier.verify_server(&bad_chain, &name, now()),
        Err(CertError::Revoked)
    );
    assert!(verifier.verify_server(&good_chain, &name, now()).is_ok());

    // The root's CRL does not: it lists serials of the root's certificates.
    let root_crl = crl_of(&root, &[&bad], now(), at(NOW_SECS + DAY));
    let verifier = server_verifier(&[&root])
        .with_crls(vec![root_crl])
        .expect("crl");
    assert!(verifier.verify_server(&bad_chain, &name, now()).is_ok());

    // A revoked intermediate (in the root's CRL) takes its leaves with it.
    let entry = RevokedEntry {
        serial: cert_serial(&inter.cert).expect("serial"),
        revoked_at: at(NOW_SECS - 60),
        reason: Some(RevocationReason::CaCompromise),
    };
    let root_crl = issue_crl(&root.issuer(), &[entry], now(), at(NOW_SECS + DAY), 2).expect("crl");
    let verifier = server_verifier(&[&root])
        .with_crls(vec![root_crl, fresh_crl(&inter, &[])])
        .expect("crls");
    assert_eq!(verifier.crl_count(), 2);
    assert_eq!(
        verifier.verify_server(&good_chain, &name, now()),
        Err(CertError::Revoked)
    );
}

#[test]
fn crl_of_another_ca_is_ignored_and_an_impostor_crl_refused() {
    let mut rng = rng(112);
    let root = Ca::root("Test Root", &mut rng);
    let other = Ca::root("Other Root", &mut rng);
    let leaf = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let name = dns("api.internal");

    // Another CA's CRL, even listing this serial, says nothing about it:
    // the leaf's issuer has no CRL, and unknown status is allowed.
    let verifier = server_verifier(&[&root])
        .with_crls(vec![fresh_crl(&other, &[&leaf])])
        .expect("crl");
    assert!(verifier.verify_server(leaf.chain(), &name, now()).is_ok());
    // Also when that CRL is out of date.
    let stale = crl_of(&other, &[], at(NOW_SECS - 9 * DAY), at(NOW_SECS - 2 * DAY));
    let verifier = server_verifier(&[&root])
        .with_crls(vec![stale])
        .expect("crl");
    assert!(verifier.verify_server(leaf.chain(), &name, now()).is_ok());

    // A CA with the same name but another key: its CRL names the leaf's
    // issuer, so it is used, and its signature fails.
    let impostor = Ca::root("Test Root", &mut rng);
    let verifier = server_verifier(&[&root])
        .with_crls(vec![fresh_crl(&impostor, &[])])
        .expect("crl");
    assert_eq!(
        verifier.verify_server(leaf.chain(), &name, now()),
        Err(CertError::CrlBadSignature)
    );
}

#[test]
fn expired_crl_is_refused_unless_within_the_skew() {
    let mut rng = rng(113);
    let root = Ca::root("Test Root", &mut rng);
    let leaf = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let name = dns("api.internal");
    let this_update = at(NOW_SECS - 8 * DAY);

    let next_update = at(NOW_SECS - DAY);
    let verifier = server_verifier(&[&root])
        .with_crls(vec![crl_of(&root, &[], this_update, next_update)])
        .expect("crl");
    let err = verifier
        .verify_server(leaf.chain(), &name, now())
        .expect_err("stale CRL");
    assert_eq!(
        err,
        CertError::CrlExpired {
            next_update,
            now: now()
        }
    );
    assert_eq!(
        err.to_string(),
        "the issuer's CRL is out of date (next update was due 2025-06-14T15:06:40Z, \
         now 2025-06-15T15:06:40Z)"
    );

    // Due 30 s ago: within the default 60 s skew.
    let next_update = at(NOW_SECS - 30);
    let verifier = server_verifier(&[&root])
        .with_crls(vec![crl_of(&root, &[], this_update, next_update)])
        .expect("crl");
    assert!(verifier.verify_server(leaf.chain(), &name, now()).is_ok());
    // ...and a revocation in it still counts.
    let bad = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let verifier = server_verifier(&[&root])
        .with_crls(vec![crl_of(&root, &[&bad], this_update, next_update)])
        .expect("crl");
    assert_eq!(
        verifier.verify_server(bad.chain(), &name, now()),
        Err(CertError::Revoked)
    );
    // Without skew, a CRL is out of date at its nextUpdate instant.
    let verifier = server_verifier(&[&root])
        .with_clock_skew(Duration::ZERO)
        .with_crls(vec![crl_of(&root, &[], this_update, now())])
        .expect("crl");
    assert_eq!(
        verifier.verify_server(leaf.chain(), &name, now()),
        Err(CertError::CrlExpired {
            next_update: now(),
            now: now()
        })
    );
}

#[test]
fn malformed_crls_are_refused_when_loaded() {
    let mut rng = rng(114);
    let root = Ca::root("Test Root", &mut rng);
    for bad in [vec![0x30, 0x00], vec![1, 2, 3], root.cert.to_vec()] {
        let crl = CertificateRevocationListDer::from(bad);
        assert!(matches!(
            server_verifier(&[&root]).with_crls(vec![crl.clone()]),
            Err(PkiError::MalformedCrl(_))
        ));
        assert!(matches!(
            client_verifier(&[&root]).with_crls(vec![crl]),
            Err(PkiError::MalformedCrl(_))
        ));
    }
}

#[test]
fn clock_skew_accepts_small_differences_only() {
    let mut rng = rng(115);
    let root = Ca::root("Test Root", &mut rng);
    let name = dns("api.internal");
    let spec = LeafSpec::server("api.internal");
    let verifier = server_verifier(&[&root]);
    assert_eq!(verifier.clock_skew(), Duration::from_secs(60));
    let strict = server_verifier(&[&root]).with_clock_skew(Duration::ZERO);
    let lenient = server_verifier(&[&root]).with_clock_skew(Duration::from_secs(120));
    let valid = |from: u64, to: u64| Validity {
        not_before: at(from),
        not_after: at(to),
    };

    // Not yet valid by 60 s: accepted; by 61 s: refused (reported at now).
    let soon = root.leaf_with_validity(&spec, valid(NOW_SECS + 60, NOW_SECS + DAY), &mut rng);
    assert!(verifier.verify_server(soon.chain(), &name, now()).is_ok());
    assert_eq!(
        strict.verify_server(soon.chain(), &name, now()),
        Err(CertError::NotYetValid {
            not_before: at(NOW_SECS + 60),
            now: now()
        })
    );
    let later = root.leaf_with_validity(&spec, valid(NOW_SECS + 61, NOW_SECS + DAY), &mut rng);
    assert_eq!(
        verifier.verify_server(later.chain(), &name, now()),
        Err(CertError::NotYetValid {
            not_before: at(NOW_SECS + 61),
            now: now()
        })
    );
    assert!(lenient.verify_server(later.chain(), &name, now()).is_ok());

    // Expired 60 s ago: accepted; 61 s ago: refused.
    let just = root.leaf_with_validity(&spec, valid(NOW_SECS - DAY, NOW_SECS - 60), &mut rng);
    assert!(verifier.verify_server(just.chain(), &name, now()).is_ok());
    assert_eq!(
        strict.verify_server(just.chain(), &name, now()),
        Err(CertError::Expired {
            not_after: at(NOW_SECS - 60),
            now: now()
        })
    );
    let gone = root.leaf_with_validity(&spec, valid(NOW_SECS - DAY, NOW_SECS - 61), &mut rng);
    assert_eq!(
        verifier.verify_server(gone.chain(), &name, now()),
        Err(CertError::Expired {
            not_after: at(NOW_SECS - 61),
            now: now()
        })
    );
    assert!(lenient.verify_server(gone.chain(), &name, now()).is_ok());

    // The skew covers the whole chain at one time: an intermediate that
    // expired 30 s ago and a leaf valid only from 30 s from now have no
    // time in common.
    let inter = ca_with_validity(
        &root,
        "Old Intermediate",
        valid(NOW_SECS - DAY, NOW_SECS - 30),
        &mut rng,
    );
    let leaf = inter.leaf_with_validity(&spec, valid(NOW_SECS - DAY, NOW_SECS + DAY), &mut rng);
    let chain = chain_of(&leaf, &[&inter.cert]);
    assert!(verifier.verify_server(&chain, &name, now()).is_ok());
    let leaf = inter.leaf_with_validity(&spec, valid(NOW_SECS + 30, NOW_SECS + DAY), &mut rng);
    let chain = chain_of(&leaf, &[&inter.cert]);
    let err = verifier
        .verify_server(&chain, &name, now())
        .expect_err("no common time");
    assert!(
        matches!(
            err,
            CertError::NotYetValid { now: t, .. } | CertError::Expired { now: t, .. } if t == now()
        ),
        "{err:?}"
    );
    // Client verifiers have the same allowance.
    let client = root.leaf_with_validity(
        &LeafSpec::client("alice.clients"),
        valid(NOW_SECS + 30, NOW_SECS + DAY),
        &mut rng,
    );
    assert!(client_verifier(&[&root])
        .verify_client(client.chain(), now())
        .is_ok());
    assert!(matches!(
        client_verifier(&[&root])
            .with_clock_skew(Duration::ZERO)
            .verify_client(client.chain(), now()),
        Err(CertError::NotYetValid { .. })
    ));
}

#[test]
fn server_key_pins() {
    let mut rng = rng(116);
    let root = Ca::root("Test Root", &mut rng);
    let server = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let other = root.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let name = dns("api.internal");
    let pin = KeyPin::of_cert(&server.chain()[0]).expect("pin");

    let pinned = server_verifier(&[&root]).with_pins(vec![pin]);
    assert_eq!(pinned.pins(), &[pin]);
    let peer = pinned
        .verify_server(server.chain(), &name, now())
        .expect("pinned key");
    assert_eq!(peer.identity.spki_pin, pin);
    let other_pin = KeyPin::of_key(&other.public_key());
    assert_eq!(
        pinned.verify_server(other.chain(), &name, now()),
        Err(CertError::PinMismatch {
            presented: other_pin
        })
    );
    assert_eq!(
        CertError::PinMismatch {
            presented: other_pin
        }
        .to_string(),
        format!("certificate key {other_pin} matches none of the pinned keys")
    );
    // Either of several pins; pins parsed from text.
    let both = server_verifier(&[&root])
        .with_pins(vec![other_pin])
        .with_pins(vec![pin.to_string().parse().expect("pin")]);
    assert!(both.verify_server(server.chain(), &name, now()).is_ok());
    assert!(both.verify_server(other.chain(), &name, now()).is_ok());
    // A pin does not replace the chain: a pinned key under an unknown CA fails.
    let stranger = Ca::root("Stranger", &mut rng);
    let rogue = stranger.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let rogue_pinned =
        server_verifier(&[&root]).with_pins(vec![KeyPin::of_key(&rogue.public_key())]);
    assert_eq!(
        rogue_pinned.verify_server(rogue.chain(), &name, now()),
        Err(CertError::UnknownIssuer)
    );
    // No pins: no pinning.
    assert!(server_verifier(&[&root])
        .with_pins(Vec::new())
        .verify_server(other.chain(), &name, now())
        .is_ok());
}

#[test]
fn client_policy_admits_by_name_or_pin() {
    let mut rng = rng(117);
    let root = Ca::root("Test Root", &mut rng);
    let dns_client = root.leaf(&LeafSpec::client("alice.clients"), &mut rng);
    let uri_client = root.leaf(&LeafSpec::client("spiffe://sc/client/bob"), &mut rng);
    let cn_client = root.leaf(
        &LeafSpec {
            common_name: "Carol".into(),
            dns_names: vec!["carol-laptop.clients".into()],
            ..LeafSpec::client("x")
        },
        &mut rng,
    );
    let pinned_client = root.leaf(&LeafSpec::client("dave.clients"), &mut rng);
    let stranger = root.leaf(&LeafSpec::client("mallory.clients"), &mut rng);
    let policy = ClientPolicy {
        allow_names: vec![
            "ALICE.clients".into(),
            "spiffe://sc/client/bob".into(),
            // Carol's certificate has a DNS SAN: only a typed entry names
            // its CN (an untyped "Carol" no longer does, issue 15).
            "cn:Carol".into(),
        ],
        allow_pins: vec![KeyPin::of_key(&pinned_client.public_key())],
    };
    let verifier = client_verifier(&[&root]).with_policy(policy.clone());
    assert_eq!(verifier.policy(), &policy);
    for client in [&dns_client, &uri_client, &cn_client, &pinned_client] {
        assert!(
            verifier.verify_client(client.chain(), now()).is_ok(),
            "{:?}",
            client
        );
    }
    let err = verifier
        .verify_client(stranger.chain(), now())
        .expect_err("not allowed");
    assert_eq!(
        err,
        CertError::NotAuthorised("client 'dns:mallory.clients' is not in the allow-list".into())
    );
    assert_eq!(
        err.to_string(),
        "peer is not authorised: client 'dns:mallory.clients' is not in the allow-list"
    );
    // URIs and common names are matched exactly (case-sensitively).
    let strict = client_verifier(&[&root]).with_policy(ClientPolicy {
        allow_names: vec!["SPIFFE://sc/client/bob".into(), "cn:carol".into()],
        allow_pins: Vec::new(),
    });
    assert!(matches!(
        strict.verify_client(uri_client.chain(), now()),
        Err(CertError::NotAuthorised(_))
    ));
    assert!(matches!(
        strict.verify_client(cn_client.chain(), now()),
        Err(CertError::NotAuthorised(_))
    ));
    // The policy comes after the chain: an allowed name from an unknown CA fails.
    let other = Ca::root("Other Root", &mut rng);
    let fake_alice = other.leaf(&LeafSpec::client("alice.clients"), &mut rng);
    assert_eq!(
        verifier.verify_client(fake_alice.chain(), now()),
        Err(CertError::UnknownIssuer)
    );
    // An empty policy admits every valid client.
    assert!(client_verifier(&[&root])
        .with_policy(ClientPolicy::default())
        .verify_client(stranger.chain(), now())
        .is_ok());
}

#[test]
fn anonymous_clients_and_the_policy() {
    let mut rng = rng(118);
    let root = Ca::root("Test Root", &mut rng);
    let anon = anonymous_credential(&mut rng, now()).expect("anonymous");
    let policy = ClientPolicy {
        allow_names: vec!["anonymous".into(), "alice.clients".into()],
        allow_pins: vec![KeyPin::of_key(&anon.public_key())],
    };
    // Refused unless allowed, whatever the policy says...
    let refusing = client_verifier(&[&root]).with_policy(policy.clone());
    assert_eq!(
        refusing.verify_anonymous(&anon.chain()[0], now()),
        Err(CertError::AnonymousNotAllowed)
    );
    // ...admitted when allowed, whatever the policy says.
    let allowing = client_verifier(&[&root])
        .with_policy(ClientPolicy {
            allow_names: vec!["alice.clients".into()],
            allow_pins: Vec::new(),
        })
        .allow_anonymous(true);
    let peer = allowing
        .verify_anonymous(&anon.chain()[0], now())
        .expect("anonymous allowed");
    assert!(peer.identity.anonymous);
    assert_eq!(peer.identity.spki_pin, KeyPin::of_key(&anon.public_key()));
    // The policy never matches an anonymous identity's self-asserted names.
    assert!(!policy.admits(&peer.identity));
    assert!(ClientPolicy::default().admits(&peer.identity));
}

// ---- What a chain costs to refuse ----

/// Verifies `chain` as a client chain `runs` times: the last result, the
/// Ed25519 verifications one verification makes, and the mean time it takes.
fn cost_of(
    verifier: &WebPkiClientVerifier,
    chain: &[CertificateDer<'_>],
    runs: u32,
) -> (Result<VerifiedPeer, CertError>, u64, Duration) {
    let before = signature_checks_for_testing_only();
    let started = Instant::now();
    let mut result = verifier.verify_client(chain, now());
    for _ in 1..runs {
        result = verifier.verify_client(chain, now());
    }
    let took = started.elapsed() / runs;
    let checks = (signature_checks_for_testing_only() - before) / u64::from(runs);
    (result, checks, took)
}

/// A chain made to be expensive to refuse (issue 15): a leaf that names the
/// real CA `ca_name` as its issuer but is signed by the attacker, four
/// self-signed certificates with the CA's name, and three with the CA's name
/// issued by CAs nobody trusts, not valid until 10, 20 and 30 s from now
/// (each a validity error within the clock skew).
fn crafted_chain(ca_name: &str, rng: &mut ChaCha20Rng) -> Vec<CertificateDer<'static>> {
    let impostor = Ca::root(ca_name, rng);
    let leaf = impostor.leaf(&LeafSpec::client("mallory.clients"), rng);
    let mut chain = leaf.chain().to_vec();
    for _ in 0..4 {
        chain.push(Ca::root(ca_name, rng).cert);
    }
    for i in 1..=3u64 {
        let nowhere = Ca::root(&format!("Nowhere {i}"), rng);
        let validity = Validity {
            not_before: at(NOW_SECS + 10 * i),
            not_after: at(NOW_SECS + DAY),
        };
        chain.push(ca_with_validity(&nowhere, ca_name, validity, rng).cert);
    }
    chain
}

#[test]
fn a_crafted_chain_costs_at_most_twice_an_honest_one() {
    let mut rng = rng(130);
    let root = Ca::root("Test Root", &mut rng);
    // Without the signature cache: an honest chain seen for the first time.
    let verifier = client_verifier(&[&root]).with_signature_cache(0);
    let honest = root.leaf(&LeafSpec::client("alice.clients"), &mut rng);
    let crafted = crafted_chain("Test Root", &mut rng);
    assert_eq!(crafted.len(), 8, "the most a CertChain carries");

    let (result, honest_checks, honest_time) = cost_of(&verifier, honest.chain(), 20);
    assert!(result.is_ok(), "{result:?}");
    let (result, crafted_checks, crafted_time) = cost_of(&verifier, &crafted, 20);
    assert!(result.is_err(), "{result:?}");
    // With it, the crafted chain's checks all fail, so none is remembered:
    // it costs as much every time, and leaves the cache empty.
    let cached = client_verifier(&[&root]);
    let (result, cached_checks, _) = cost_of(&cached, &crafted, 20);
    assert!(result.is_err(), "{result:?}");
    assert_eq!(cached_checks, crafted_checks);
    assert_eq!(cached.chain.cache.len(), 0);
    eprintln!(
        "honest chain: {honest_checks} signature checks, {honest_time:?}; \
         crafted chain: {crafted_checks} signature checks, {crafted_time:?} \
         ({:.1}x the time)",
        crafted_time.as_secs_f64() / honest_time.as_secs_f64()
    );
    assert!(
        crafted_checks <= 2 * honest_checks,
        "the crafted chain costs {crafted_checks} signature checks, an honest one {honest_checks}"
    );
}

/// What the budget does on its own (without leaving out the self-issued
/// certificates): the crafted chain's checks against the anchor's key are
/// asked for again for every order of the self-signed certificates, and
/// again by the re-check within the skew, but each is made once; and a
/// search that needs more than the budget fails as such.
#[test]
fn each_signature_check_is_made_once_within_one_budget() {
    let mut rng = rng(131);
    let root = Ca::root("Test Root", &mut rng);
    let anchors = TrustAnchors::from_der(std::slice::from_ref(&root.cert)).expect("anchors");
    let crafted = crafted_chain("Test Root", &mut rng);
    let (leaf, rest) = crafted.split_first().expect("a leaf");
    let info = ParsedCert::parse(leaf).expect("leaf");
    let ee = EndEntityCert::try_from(leaf).expect("leaf");
    let check = |time: UnixTime, budget: &SignatureBudget<'_>| {
        CLIENT_AUTH.verify_within(&ee, &info, &anchors.anchors, rest, time, None, budget)
    };

    let budget = SignatureBudget::new(MAX_SIGNATURE_CHECKS);
    let before = signature_checks_for_testing_only();
    assert!(matches!(
        check(now(), &budget),
        Err(CertError::NotYetValid { .. })
    ));
    assert!(check(at(NOW_SECS + 10), &budget).is_err());
    // The leaf and the four self-signed certificates, against the anchor's
    // key (rustls-webpki asks 65 times in each search).
    assert_eq!(signature_checks_for_testing_only() - before, 5);
    assert!(!budget.exhausted());

    let small = SignatureBudget::new(3);
    assert_eq!(
        check(now(), &small),
        Err(CertError::Other(
            "more than 3 signature checks needed".into()
        ))
    );
    assert!(small.exhausted());
}

// ---- The signature cache ----

/// The Ed25519 checks `verify` makes on this thread, and its result.
fn checks_of<T>(verify: impl FnOnce() -> T) -> (T, u64) {
    let before = signature_checks_for_testing_only();
    let result = verify();
    (result, signature_checks_for_testing_only() - before)
}

#[test]
fn a_chain_seen_a_thousand_times_is_checked_once() {
    let mut rng = rng(160);
    let root = Ca::root("Test Root", &mut rng);
    let inter = root.intermediate("Test Intermediate", &mut rng);
    let alice = inter.leaf(&LeafSpec::client("alice.clients"), &mut rng);
    let bob = inter.leaf(&LeafSpec::client("bob.clients"), &mut rng);
    let (alice, bob) = (
        chain_of(&alice, &[&inter.cert]),
        chain_of(&bob, &[&inter.cert]),
    );

    for crls in [vec![], vec![fresh_crl(&root, &[]), fresh_crl(&inter, &[])]] {
        let with_crls = !crls.is_empty();
        let verifier = client_verifier(&[&root]).with_crls(crls).expect("crls");
        // The root's signature on the intermediate, the intermediate's on
        // the leaf, and each CRL's.
        let one = if with_crls { 4 } else { 2 };
        let (result, first) = checks_of(|| verifier.verify_client(&alice, now()));
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(first, one, "CRLs: {with_crls}");
        let (results, again) = checks_of(|| {
            (1..1000)
                .map(|_| verifier.verify_client(&alice, now()))
                .collect::<Vec<_>>()
        });
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(again, 0, "999 more verifications, CRLs: {with_crls}");
        assert_eq!(verifier.chain.cache.len() as u64, one);
        // Another client of the same intermediate: only its own leaf is new.
        let (result, bob_checks) = checks_of(|| verifier.verify_client(&bob, now()));
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(bob_checks, 1, "CRLs: {with_crls}");
        // Clones share the cache; a verifier made anew (a reload) does not.
        let (_, cloned) = checks_of(|| verifier.clone().verify_client(&alice, now()));
        assert_eq!(cloned, 0);
        let (_, fresh) = checks_of(|| {
            client_verifier(&[&root])
                .with_crls(vec![fresh_crl(&root, &[]), fresh_crl(&inter, &[])])
                .expect("crls")
                .verify_client(&alice, now())
        });
        assert_eq!(fresh, 4);
    }

    // Without a cache, every verification checks every signature again.
    let uncached = client_verifier(&[&root]).with_signature_cache(0);
    let (results, checks) = checks_of(|| {
        (0..10)
            .map(|_| uncached.verify_client(&alice, now()))
            .collect::<Vec<_>>()
    });
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(checks, 20);
    assert_eq!(uncached.chain.cache.len(), 0);
}

#[test]
fn the_cache_holds_no_more_than_its_capacity_however_many_chains() {
    let mut rng = rng(161);
    let root = Ca::root("Test Root", &mut rng);
    let verifier = client_verifier(&[&root]).with_signature_cache(8);
    assert_eq!(verifier.chain.cache.capacity(), 8);
    for i in 0..40 {
        let client = root.leaf(&LeafSpec::client(&format!("c{i}.clients")), &mut rng);
        assert!(verifier.verify_client(client.chain(), now()).is_ok());
        assert_eq!(verifier.chain.cache.len(), (i + 1).min(8));
        assert!(verifier.chain.cache.allocated_for_testing_only() <= 8);
    }
    assert_eq!(
        format!("{:?}", verifier.chain.cache),
        "SignatureCache { len: 8, capacity: 8 }"
    );
    // The default.
    assert_eq!(
        client_verifier(&[&root]).chain.cache.capacity(),
        crate::DEFAULT_SIGNATURE_CACHE
    );
}

#[test]
fn a_failed_check_is_made_again_every_time() {
    let mut rng = rng(162);
    let root = Ca::root("Test Root", &mut rng);
    let inter = root.intermediate("Test Intermediate", &mut rng);
    let server = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let name = dns("api.internal");
    let verifier = server_verifier(&[&root]);
    let good = chain_of(&server, &[&inter.cert]);
    assert!(verifier.verify_server(&good, &name, now()).is_ok());
    assert_eq!(verifier.chain.cache.len(), 2);

    // The same leaf (key and message) with its signature changed: refused,
    // and checked again each time (the intermediate's signature is found).
    let mut leaf = server.chain()[0].to_vec();
    let last = leaf.len() - 1;
    leaf[last] ^= 0x01;
    let bad_signature = vec![CertificateDer::from(leaf), inter.cert.clone()];
    // The same signature over a changed message (the DNS name).
    let mut leaf = server.chain()[0].to_vec();
    let pos = leaf
        .windows(b"api.internal".len())
        .rposition(|w| w == b"api.internal")
        .expect("SAN present");
    leaf[pos] = b'x';
    let bad_message = vec![CertificateDer::from(leaf), inter.cert.clone()];
    for _ in 0..3 {
        let (result, checks) = checks_of(|| verifier.verify_server(&bad_signature, &name, now()));
        assert_eq!(result, Err(CertError::BadSignature));
        assert_eq!(checks, 1);
        let (result, checks) =
            checks_of(|| verifier.verify_server(&bad_message, &dns("xpi.internal"), now()));
        assert_eq!(result, Err(CertError::BadSignature));
        assert_eq!(checks, 1);
    }
    assert_eq!(verifier.chain.cache.len(), 2);
    // The good chain is still found.
    let (result, checks) = checks_of(|| verifier.verify_server(&good, &name, now()));
    assert!(result.is_ok());
    assert_eq!(checks, 0);
}

#[test]
fn a_warm_cache_changes_no_decision() {
    let mut rng = rng(163);
    let root = Ca::root("Test Root", &mut rng);
    let other = Ca::root("Other Root", &mut rng);
    let inter = root.intermediate("Test Intermediate", &mut rng);
    let alice = inter.leaf(&LeafSpec::client("alice.clients"), &mut rng);
    let revoked = inter.leaf(&LeafSpec::client("mallory.clients"), &mut rng);
    let server = inter.leaf(&LeafSpec::server("api.internal"), &mut rng);
    let alice = chain_of(&alice, &[&inter.cert]);
    let revoked = chain_of(&revoked, &[&inter.cert]);
    let server = chain_of(&server, &[&inter.cert]);
    let crls = vec![fresh_crl(&inter, &[])];
    // A CRL revoking mallory, for a second round.
    let revoking = {
        let serial = cert_serial(&revoked[0]).expect("serial");
        let entry = RevokedEntry {
            serial,
            revoked_at: at(NOW_SECS - 60),
            reason: Some(RevocationReason::KeyCompromise),
        };
        issue_crl(&inter.issuer(), &[entry], now(), at(NOW_SECS + 7 * DAY), 2).expect("crl")
    };
    let policy = ClientPolicy {
        allow_names: vec!["dns:alice.clients@Test Root".into()],
        allow_pins: Vec::new(),
    };
    let make = |crls: Vec<CertificateRevocationListDer<'static>>| {
        client_verifier(&[&root, &other])
            .with_policy(policy.clone())
            .with_crls(crls)
            .expect("crls")
    };
    for crls in [crls, vec![revoking]] {
        let warm = make(crls.clone());
        // Every signature of every chain below is found in the cache.
        for chain in [&alice, &revoked, &server] {
            let _ = warm.verify_client(chain, now());
            let _ = warm.verify_client(chain, at(NOW_SECS + 100 * DAY));
        }
        let cold = || make(crls.clone()).with_signature_cache(0);
        let mut compared = 0;
        for chain in [&alice, &revoked, &server] {
            for time in [
                now(),
                at(NOW_SECS - DAY),
                at(NOW_SECS + 89 * DAY),
                at(NOW_SECS + 100 * DAY),
            ] {
                let (result, checks) = checks_of(|| warm.verify_client(chain, time));
                assert_eq!(result, cold().verify_client(chain, time), "at {time:?}");
                assert_eq!(checks, 0);
                compared += 1;
            }
        }
        assert_eq!(compared, 12);
    }
    // The decisions compared include each kind.
    let warm = make(vec![]);
    assert!(warm.verify_client(&alice, now()).is_ok());
    assert!(matches!(
        warm.verify_client(&alice, at(NOW_SECS + 100 * DAY)),
        Err(CertError::Expired { .. })
    ));
    assert_eq!(
        warm.verify_client(&server, now()),
        Err(CertError::WrongPurpose)
    );
    assert!(matches!(
        warm.verify_client(&revoked, now()),
        Err(CertError::NotAuthorised(_))
    ));
}

/// A check answered from the cache costs no Ed25519 verification but counts
/// against the budget as one made does: the budget runs out at the same
/// point with a warm cache as with none, so it changes no decision.
#[test]
fn a_check_found_in_the_cache_counts_against_the_budget() {
    let key = KeyPair::generate(&mut rng(164));
    let public = key.public_key();
    let (first, second) = (b"first".as_slice(), b"second".as_slice());
    let cache = SignatureCache::new(4);
    assert!(cache.check(&public, first, &key.sign(first)));
    assert!(cache.check(&public, second, &key.sign(second)));
    for budget in [
        SignatureBudget::new(1),
        SignatureBudget::with_cache(1, &cache),
    ] {
        let (answers, checks) = checks_of(|| {
            [first, first, second].map(|message| {
                budget
                    .verify_signature(&public, message, &key.sign(message))
                    .is_ok()
            })
        });
        // The first is made (or found), and asked again is answered from
        // memory; the second is over the budget either way.
        assert_eq!(answers, [true, true, false], "{budget:?}");
        assert!(budget.exhausted());
        let cached = format!("{budget:?}").contains("cached: true");
        assert_eq!(checks, if cached { 0 } else { 1 });
    }
}

#[test]
fn threads_share_one_cache() {
    let mut rng = rng(165);
    let root = Ca::root("Test Root", &mut rng);
    let inter = root.intermediate("Test Intermediate", &mut rng);
    let chains: Vec<_> = (0..6)
        .map(|i| {
            let leaf = inter.leaf(&LeafSpec::client(&format!("c{i}.clients")), &mut rng);
            chain_of(&leaf, &[&inter.cert])
        })
        .collect();
    // Room for the seven distinct checks: once in, none is evicted.
    let verifier = client_verifier(&[&root]).with_signature_cache(8);
    // Each thread verifies every chain 50 times; the counter is per thread.
    let checks: Vec<u64> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    checks_of(|| {
                        for _ in 0..50 {
                            for chain in &chains {
                                assert!(verifier.verify_client(chain, now()).is_ok());
                            }
                        }
                    })
                    .1
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("no panic"))
            .collect()
    });
    assert_eq!(verifier.chain.cache.len(), 7);
    // Seven distinct checks (the intermediate's and six leaves') for 1200
    // verifications: each made at least once, and by each thread at most
    // once (two threads may miss the same one at the same time); without
    // the cache, 2400.
    let total: u64 = checks.iter().sum();
    assert!((7..=4 * 7).contains(&total), "{checks:?}");
}
