//! Reloading a server's credentials: sessions that exist keep what they had,
//! new sessions get the new certificate, and a reload that fails keeps the
//! credentials in force.

use std::sync::Arc;
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sovereign_chain::handshake::{ClientConfig, ServerConfig};
use sovereign_chain::pki::{
    cert_to_pem, issue_leaf, issue_root, ClientPolicy, CredentialStore, Issuer, KeyPair, LeafSpec,
    PkiError, ServerCredentials, ServerName, TrustAnchors, UnixTime, Validity,
    WebPkiServerVerifier, DEFAULT_CLOCK_SKEW,
};
use sovereign_chain::session::pair::Pair;
use sovereign_chain::session::SessionConfig;

/// A server's files, as PEM text.
struct Files {
    chain: String,
    key: String,
}

fn server_config(files: &Files, ca_pem: &str) -> Result<ServerConfig, PkiError> {
    let creds = ServerCredentials::from_pem(
        &files.chain,
        &files.key,
        None,
        ca_pem,
        None,
        ClientPolicy::default(),
        false,
        DEFAULT_CLOCK_SKEW,
    )?;
    Ok(ServerConfig::builder()
        .with_client_verifier(creds.client_verifier)
        .with_credential(creds.credential)
        .build())
}

#[test]
fn reload_swaps_credentials_for_new_sessions_only() {
    let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let validity = Validity::days_from(now, 30);
    let ca_key = KeyPair::generate(&mut rng);
    let ca = issue_root(&ca_key, "Reload CA", validity, &mut rng).expect("root");
    let ca_pem = cert_to_pem(&ca).expect("pem");
    let issuer = Issuer {
        cert: &ca,
        key: &ca_key,
    };
    let mut leaf = |spec: &LeafSpec| {
        let key = KeyPair::generate(&mut rng);
        let cert = issue_leaf(&issuer, &key.public_key(), spec, validity, &mut rng).expect("leaf");
        (cert, key)
    };
    let files = |(cert, key): (sovereign_chain::pki::CertificateDer<'static>, KeyPair)| Files {
        chain: cert_to_pem(&cert).expect("pem"),
        key: key.to_pkcs8_pem().expect("pem").to_string(),
    };
    let first = files(leaf(&LeafSpec::server("server.test")));
    let renewed = files(leaf(&LeafSpec::server("server.test")));
    let (client_cert, client_key) = leaf(&LeafSpec::client("client-1"));

    let store = CredentialStore::new(server_config(&first, &ca_pem).expect("first"));
    let client = Arc::new(
        ClientConfig::builder()
            .with_server_verifier(Arc::new(WebPkiServerVerifier::new(
                TrustAnchors::from_pem(&ca_pem).expect("anchors"),
            )))
            .with_credential(Arc::new(
                sovereign_chain::pki::Credential::new(vec![client_cert], client_key)
                    .expect("client"),
            ))
            .build(),
    );
    let name = ServerName::try_from("server.test").expect("name");
    let pair = |seed: u8, server: Arc<ServerConfig>| {
        Pair::new(
            client.clone(),
            server,
            name.clone(),
            SessionConfig::default(),
            now,
            Box::new(ChaCha20Rng::from_seed([seed; 32])),
        )
        .expect("start")
    };

    // A session on the first credentials.
    let mut old = pair(6, store.current());
    old.handshake().expect("first session");
    let old_fp = old.client.summary().expect("done").peer.fingerprint;

    // Reload: a renewed server certificate with a new key.
    store
        .reload(|| server_config(&renewed, &ca_pem))
        .expect("reload");
    // A reload that fails (the key does not match the certificate) changes nothing.
    let broken = Files {
        chain: renewed.chain.clone(),
        key: first.key.clone(),
    };
    assert!(matches!(
        store.reload(|| server_config(&broken, &ca_pem)),
        Err(PkiError::KeyMismatch)
    ));

    // The old session still works.
    old.client.send_message(b"still here").expect("send");
    old.drive().expect("old session");
    assert_eq!(
        old.server.recv_message().as_deref(),
        Some(&b"still here"[..])
    );

    // A new session gets the renewed certificate.
    let mut new = pair(7, store.current());
    new.handshake().expect("new session");
    let new_fp = new.client.summary().expect("done").peer.fingerprint;
    assert_ne!(
        old_fp, new_fp,
        "new sessions present the renewed certificate"
    );
    assert_eq!(new_fp, store.current().credential().fingerprint());
}
