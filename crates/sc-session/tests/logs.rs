//! The handshake's logs, in a test binary of its own: tracing caches
//! callsite interest process-wide, so a thread-scoped subscriber is only
//! reliable when no other test thread logs at the same time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sc_handshake::{ClientConfig, KeyLog, ServerConfig};
use sc_pki::throwaway::ThrowawayPki;
use sc_pki::{ServerName, UnixTime};
use sc_session::pair::Pair;
use sc_session::SessionConfig;
use sc_wire::ProtocolVersion;

// ---------------------------------------------------------------------------
// Logs.
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Secrets(Mutex<Vec<Vec<u8>>>);

impl KeyLog for Secrets {
    fn log(&self, _label: &'static str, _client_random: &[u8; 32], secret: &[u8]) {
        self.0.lock().expect("secrets").push(secret.to_vec());
    }
}

#[test]
fn logs_show_the_13_steps_the_version_and_the_order_and_no_secret() {
    for (version, secrets_logged) in [(ProtocolVersion::V1, 11), (ProtocolVersion::V2, 12)] {
        logs_show_the_13_steps(version, secrets_logged);
    }
}

fn logs_show_the_13_steps(version: ProtocolVersion, secrets_logged: usize) {
    let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
    let pki = ThrowawayPki::new(
        "server.test",
        "client-1",
        now,
        &mut ChaCha20Rng::from_seed([20; 32]),
    )
    .expect("pki");
    let secrets = Arc::new(Secrets::default());
    let client = Arc::new(
        ClientConfig::builder()
            .with_server_verifier(Arc::new(pki.server_verifier().expect("verifier")))
            .with_credential(pki.client.clone())
            .dangerous_key_log(secrets.clone())
            .build()
            .with_max_version(version)
            .expect("version"),
    );
    let server = Arc::new(
        ServerConfig::builder()
            .with_client_verifier(Arc::new(pki.client_verifier().expect("verifier")))
            .with_credential(pki.server.clone())
            .build(),
    );
    let buf = Captured::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let name = ServerName::try_from("server.test").expect("name");
        let rng = Box::new(ChaCha20Rng::from_seed([71; 32]));
        let mut p =
            Pair::new(client, server, name, SessionConfig::default(), now, rng).expect("start");
        p.client.send_message(b"hello").expect("queued");
        p.handshake().expect("handshake");
    });
    let text = String::from_utf8(buf.0.lock().expect("log").clone()).expect("utf-8 logs");
    // Every step is logged behind the version it ran (the client's
    // ClientHello, sent before it knows, names the versions it offers).
    for step in 1..=13 {
        assert!(
            text.contains(&format!("{version} Step {step}/13: ")),
            "{version}: step {step} missing from logs:\n{text}"
        );
    }
    let other = if version == ProtocolVersion::V2 {
        ProtocolVersion::V1
    } else {
        ProtocolVersion::V2
    };
    assert!(!text.contains(&format!("{other} Step ")), "{text}");
    assert!(
        text.contains("Step 1/13: ClientHello sent: offered"),
        "{text}"
    );
    assert!(text.contains("order of steps 7-10: "), "{text}");
    assert!(
        text.contains(&format!("{version} Step 9/13: KeyConfirm1")),
        "{text}"
    );
    let logged = secrets.0.lock().expect("secrets");
    assert_eq!(
        logged.len(),
        secrets_logged,
        "{version}: every secret of the schedule is in the key log"
    );
    for s in logged.iter() {
        let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex[..16]), "a secret appears in the logs");
    }
}
