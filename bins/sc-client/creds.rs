//! The client's files, read and checked one by one so an error names the
//! file it is about, then turned into a [`Connector`] per session.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sc_handshake::ClientConfig;
use sc_pki::{certs_from_pem, ClientCredentials, Credential, KeyPair, KeyPin, PkiError};
use sc_session::{Connector, RekeyPolicy, SessionConfig};
use sc_tunnel::entry::TunnelConfig;
use sc_tunnel::Target;
use sc_wire::{CipherSuite, ProtocolVersion};
use sovereign_chain::cli::CliError;
use zeroize::Zeroizing;

use crate::settings::{CredSettings, SessionSettings, TunnelSettings};
use crate::CipherChoice;

/// The client's identity and trust, loaded.
pub(crate) struct Creds {
    credential: Option<Arc<Credential>>,
    ca_pem: String,
    crl_pem: Option<String>,
    clock_skew: Duration,
}

impl core::fmt::Debug for Creds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Creds")
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// Reads a whole file as text, naming it (as `what`) in any error.
fn read_text(path: &Path, what: &str) -> Result<String, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::io(format!("cannot read the {what} {}", path.display()), &e))?;
    String::from_utf8(bytes).map_err(|_| {
        CliError::new(format!(
            "the {what} {} is not a PEM file (not text)",
            path.display()
        ))
        .hint("certificates, CRLs and keys are read in PEM form (-----BEGIN ...-----)")
    })
}

/// Reads a private key, refusing one that group or others can read (as
/// OpenSSH and sc-ca do).
fn read_private(path: &Path, what: &str) -> Result<Zeroizing<String>, CliError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| CliError::io(format!("cannot read the {what} {}", path.display()), &e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CliError::new(format!(
                "refusing to use the {what} {}: it is readable by group or others (mode {mode:04o})",
                path.display()
            ))
            .hint(format!("chmod 600 {}", path.display())));
        }
    }
    read_text(path, what).map(Zeroizing::new)
}

fn pki_error(what: &str, path: &Path, e: PkiError) -> CliError {
    let shown = path.display();
    match e {
        PkiError::NoCertificates | PkiError::EmptyCaBundle => {
            CliError::new(format!("the {what} {shown} holds no certificate"))
                .hint("it must hold PEM blocks -----BEGIN CERTIFICATE-----")
        }
        PkiError::NotCa => CliError::new(format!(
            "the {what} {shown} holds a certificate that is not a CA certificate"
        ))
        .hint("pass the CA's certificate (ca/ca.pem of `sc-ca init`), not a server's"),
        other => CliError::new(format!("the {what} {shown}: {other}")),
    }
}

/// Reads and checks every file named in `c`.
pub(crate) fn load(c: &CredSettings) -> Result<Creds, CliError> {
    let ca_pem = read_text(&c.ca, "CA bundle")?;
    // The CA bundle alone, then with the CRL: each error names its file.
    ClientCredentials::from_pem(None, None, &ca_pem, None, Vec::new(), c.clock_skew)
        .map_err(|e| pki_error("CA bundle", &c.ca, e))?;
    let crl_pem = match &c.crl {
        Some(path) => {
            let pem = read_text(path, "CRL")?;
            ClientCredentials::from_pem(None, None, &ca_pem, Some(&pem), Vec::new(), c.clock_skew)
                .map_err(|e| pki_error("CRL", path, e))?;
            Some(pem)
        }
        None => None,
    };
    let credential = match &c.identity {
        None => None,
        Some(files) => {
            let chain_pem = read_text(&files.cert, "certificate")?;
            let chain =
                certs_from_pem(&chain_pem).map_err(|e| pki_error("certificate", &files.cert, e))?;
            let key_pem = read_private(&files.key, "key")?;
            let passphrase = match &files.passphrase_file {
                Some(path) => Some(read_passphrase(path)?),
                None => None,
            };
            let key = KeyPair::from_pem(&key_pem, passphrase.as_ref().map(|p| p.as_bytes()))
                .map_err(|e| key_error(&files.key, e))?;
            let credential = Credential::new(chain, key).map_err(|e| match e {
                PkiError::KeyMismatch => CliError::new(format!(
                    "the certificate {} does not match the key {}",
                    files.cert.display(),
                    files.key.display()
                ))
                .hint("pass the key that was issued with this certificate"),
                other => pki_error("certificate", &files.cert, other),
            })?;
            Some(Arc::new(credential))
        }
    };
    Ok(Creds {
        credential,
        ca_pem,
        crl_pem,
        clock_skew: c.clock_skew,
    })
}

fn key_error(path: &Path, e: PkiError) -> CliError {
    let shown = path.display();
    match e {
        PkiError::PassphraseRequired => CliError::new(format!(
            "the key {shown} is encrypted and no passphrase was given"
        ))
        .hint("give its passphrase with --key-passphrase-file FILE"),
        PkiError::WrongPassphrase => CliError::new(format!(
            "wrong passphrase for the key {shown} (or the key is damaged)"
        )),
        other => CliError::new(format!("the key {shown}: {other}")),
    }
}

/// The first line of a passphrase file.
fn read_passphrase(path: &Path) -> Result<Zeroizing<String>, CliError> {
    let text = Zeroizing::new(read_text(path, "passphrase file")?);
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(CliError::new(format!(
            "the passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(Zeroizing::new(line.to_owned()))
}

impl Creds {
    fn client_config(
        &self,
        pins: &[KeyPin],
        cipher: CipherChoice,
        min_version: ProtocolVersion,
        max_version: ProtocolVersion,
        streams: bool,
    ) -> Result<Arc<ClientConfig>, CliError> {
        let verifier = ClientCredentials::from_pem(
            None,
            None,
            &self.ca_pem,
            self.crl_pem.as_deref(),
            pins.to_vec(),
            self.clock_skew,
        )
        .map_err(|e| CliError::new(format!("cannot build the server verifier: {e}")))?
        .server_verifier;
        let builder = ClientConfig::builder().with_server_verifier(verifier);
        let builder = match &self.credential {
            Some(c) => builder.with_credential(c.clone()),
            None => builder.with_anonymous_identity(),
        };
        let config = match cipher {
            CipherChoice::Auto => builder.build(),
            CipherChoice::ChaCha20Poly1305 => builder
                .build_with_suites(&[CipherSuite::CHACHA20_POLY1305])
                .map_err(|e| CliError::new(e.to_string()))?,
            CipherChoice::Aes256Gcm => builder
                .build_with_suites(&[CipherSuite::AES_256_GCM])
                .map_err(|e| CliError::new(e.to_string()))?,
        };
        let config = config
            .with_streams(streams)
            .with_rekey(true)
            .with_min_version(min_version)
            .and_then(|c| c.with_max_version(max_version))
            .map_err(|e| CliError::new(e.to_string()))?;
        Ok(Arc::new(config))
    }

    /// Where one session goes; `streams`: offer to multiplex.
    pub(crate) fn target(&self, s: &SessionSettings, streams: bool) -> Result<Target, CliError> {
        let session = SessionConfig {
            max_message_len: s.max_message,
            handshake_timeout: s.handshake_timeout,
            rekey: RekeyPolicy {
                interval: s.rekey_interval,
                ..RekeyPolicy::default()
            },
            ..SessionConfig::default()
        };
        Ok(Target {
            connect: s.connect.clone(),
            server_name: s.server_name.clone(),
            route: s.route.clone(),
            connector: Connector::new(self.client_config(
                &s.pins,
                s.cipher,
                s.min_version,
                s.max_version,
                streams,
            )?)
            .with_session_config(session),
        })
    }

    /// One tunnel.
    pub(crate) fn tunnel(&self, t: &TunnelSettings) -> Result<TunnelConfig, CliError> {
        Ok(TunnelConfig {
            listen: t.listen.clone(),
            target: self.target(&t.session, t.multiplex)?,
            idle_timeout: t.idle_timeout,
            max_connections: t.max_connections,
            max_handshakes: t.max_handshakes,
            multiplex: t.multiplex,
            sessions: t.sessions,
            eager: t.eager,
            service: t.service.clone(),
            keepalive: sc_tunnel::entry::DEFAULT_KEEPALIVE,
            pool: None,
            // Set by the tunnel runner when --status is on.
            metrics: None,
        })
    }
}
