//! Building a listener's [`ServerConfig`] from its files, with every error
//! naming the file at fault and what to do about it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sc_handshake::{ConfigError, ServerConfig};
use sc_net::io_reason;
use sc_pki::{
    cert_info, certs_from_pem, crls_from_pem, Credential, KeyPair, PkiError, TrustAnchors,
    UnixTime, WebPkiClientVerifier,
};
use sc_wire::CipherSuite;
use zeroize::Zeroizing;

use super::settings::{AccessError, CipherChoice, FileCredentials};

/// Largest PEM file read (1 MiB): anything bigger is not a certificate, key,
/// CA bundle or CRL a server should load.
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// Why a listener's credentials could not be built from its files.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A file could not be read.
    #[error("cannot read the {what} {}: {reason}", path.display())]
    Read {
        /// Which file ("certificate", "key", "CA bundle", …).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why (e.g. "no such file or directory").
        reason: String,
    },
    /// A file was read but does not hold what it should.
    #[error("{}", describe_invalid(what, path, source))]
    Invalid {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        source: PkiError,
    },
    /// The certificate is not the key's.
    #[error("certificate does not match its key (certificate {}, key {})", cert.display(), key.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The key is encrypted and no passphrase file was given.
    #[error("the key {} is encrypted and no passphrase was given", key.display())]
    PassphraseRequired {
        /// The key file.
        key: PathBuf,
    },
    /// The passphrase does not decrypt the key.
    #[error("the passphrase in {} does not decrypt the key {} (wrong passphrase or damaged key)", passphrase_file.display(), key.display())]
    WrongPassphrase {
        /// The key file.
        key: PathBuf,
        /// The passphrase file.
        passphrase_file: PathBuf,
    },
    /// The passphrase file's first line is empty.
    #[error("the passphrase file {} is empty", path.display())]
    EmptyPassphrase {
        /// The passphrase file.
        path: PathBuf,
    },
    /// The cipher choice cannot be built.
    #[error("cipher: {0}")]
    Cipher(#[from] ConfigError),
    /// The protocol versions (`min_version`, `max_version`) cannot be set.
    #[error("protocol versions: {0}")]
    Version(ConfigError),
    /// Loading did not finish (a file that never ends, such as a FIFO) or
    /// its thread failed.
    #[error("loading the credentials failed: {0}")]
    LoadFailed(String),
    /// The allow-list and the anonymous switch do not go together.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// An allow-list entry's `@ANCHOR` is the subject CN of no CA certificate
    /// of the bundle.
    #[error("allow-list entry '{entry}': no CA certificate in {} has the subject CN '{anchor}' (it has: {})", path.display(), known_anchors(known))]
    UnknownAnchor {
        /// The entry as given.
        entry: String,
        /// The anchor it names.
        anchor: String,
        /// The CA bundle.
        path: PathBuf,
        /// The subject CNs of the bundle's certificates.
        known: Vec<String>,
    },
}

fn known_anchors(known: &[String]) -> String {
    if known.is_empty() {
        "no certificate with a CN".to_owned()
    } else {
        known
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn describe_invalid(what: &str, path: &Path, source: &PkiError) -> String {
    let path = path.display();
    match source {
        PkiError::UnsupportedKey => {
            format!("the {what} {path} is not Ed25519 (only Ed25519 keys are supported)")
        }
        PkiError::NoCertificates => format!("the {what} {path} holds no PEM certificate"),
        PkiError::EmptyCaBundle => format!("the {what} {path} holds no PEM certificate"),
        PkiError::NotCa => {
            format!("the {what} {path} holds a certificate that is not a CA certificate")
        }
        other => format!("the {what} {path} is not usable: {other}"),
    }
}

impl CredentialError {
    /// What the user can do about it, where there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Read { what, reason, .. } if reason.contains("no such file") => format!(
                "check the path of the {what} (relative paths in a config file are relative to the file)"
            ),
            Self::Read { .. } => return None,
            Self::Invalid { source: PkiError::UnsupportedKey, .. } => {
                "make an Ed25519 key and certificate: `sc-ca issue server NAME --dir DIR`, or `openssl genpkey -algorithm ed25519`".into()
            }
            Self::Invalid { what: "CA bundle", .. } => {
                "--ca takes the certificate of the CA that issues the client certificates (sc-ca's DIR/ca.pem)".into()
            }
            Self::Invalid { what: "CRL", .. } => {
                "--crl takes the CRL the CA publishes (sc-ca's DIR/crl.pem, refreshed by `sc-ca crl`)".into()
            }
            Self::Invalid { .. } => return None,
            Self::KeyMismatch { .. } => {
                "give the key the certificate was issued for (sc-ca writes DIR/NAME.pem and DIR/NAME.key)".into()
            }
            Self::PassphraseRequired { .. } => {
                "give the passphrase with --key-passphrase-file FILE (key_passphrase_file in a config file): the first line of FILE".into()
            }
            Self::WrongPassphrase { .. } | Self::EmptyPassphrase { .. } => {
                "the passphrase file's first line must be the key's passphrase".into()
            }
            Self::Cipher(_) | Self::Version(_) | Self::LoadFailed(_) | Self::Access(_) => {
                return None
            }
            Self::UnknownAnchor { .. } => {
                "write NAME@CN with the subject CN of a CA certificate of --ca, or NAME@* for any of them (a name that contains '@' needs one of the two)".into()
            }
        })
    }
}

/// A listener's configuration, built from its files, with what to log about it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) config: ServerConfig,
    /// The certificate in one phrase: name, fingerprint, expiry.
    pub(crate) description: String,
    /// Things that will make clients refuse the certificate.
    pub(crate) warnings: Vec<String>,
    /// The leaf certificate's notAfter (Unix time), if it parses.
    pub(crate) not_after: Option<u64>,
    /// The (first) CRL's nextUpdate (Unix time), if there is a CRL that
    /// names one.
    pub(crate) crl_next_update: Option<u64>,
}

/// Reads the files and builds the configuration. Blocking (file reads, and
/// scrypt for an encrypted key): run it off the async threads.
pub(crate) fn load(creds: &FileCredentials, now: UnixTime) -> Result<Loaded, CredentialError> {
    let files = &creds.files;
    let chain_pem = read_text("certificate", &files.cert)?;
    let chain = certs_from_pem(&chain_pem).map_err(invalid("certificate", &files.cert))?;
    let key_pem = Zeroizing::new(read_text("key", &files.key)?);
    let passphrase = match &files.key_passphrase_file {
        Some(path) => Some(read_passphrase(path)?),
        None => None,
    };
    let key = KeyPair::from_pem(&key_pem, passphrase.as_ref().map(|p| p.as_bytes())).map_err(
        |e| match (e, &files.key_passphrase_file) {
            (PkiError::PassphraseRequired, _) => CredentialError::PassphraseRequired {
                key: files.key.clone(),
            },
            (PkiError::WrongPassphrase, Some(pass)) => CredentialError::WrongPassphrase {
                key: files.key.clone(),
                passphrase_file: pass.clone(),
            },
            (e, _) => invalid("key", &files.key)(e),
        },
    )?;
    let access = &creds.access;
    access.check()?;
    let not_after = chain
        .first()
        .and_then(|leaf| sc_pki::cert_info(leaf, now).ok())
        .map(|info| info.not_after.as_secs());
    let (description, mut warnings) = match chain.first() {
        Some(leaf) => describe_leaf(leaf, &files.cert, now),
        None => (String::new(), Vec::new()),
    };
    let credential = Credential::new(chain, key).map_err(|e| match e {
        PkiError::KeyMismatch => CredentialError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        },
        e => invalid("certificate", &files.cert)(e),
    })?;

    let ca_pem = read_text("CA bundle", &files.ca)?;
    let anchors = match certs_from_pem(&ca_pem) {
        Err(PkiError::NoCertificates) => Err(PkiError::EmptyCaBundle),
        other => other,
    }
    .and_then(|certs| TrustAnchors::from_der(&certs))
    .map_err(invalid("CA bundle", &files.ca))?;
    let policy = access.policy();
    let mut verifier = WebPkiClientVerifier::new(anchors)
        .allow_anonymous(access.allow_anonymous)
        .with_policy(policy.clone())
        .with_clock_skew(access.clock_skew);
    let known: Vec<String> = verifier.anchor_names().into_iter().flatten().collect();
    // `check` parsed every entry already.
    for entry in policy.entries().unwrap_or_default() {
        match &entry.anchor {
            Some(anchor) if !known.contains(anchor) => {
                return Err(CredentialError::UnknownAnchor {
                    entry: entry.to_string(),
                    anchor: anchor.clone(),
                    path: files.ca.clone(),
                    known,
                })
            }
            _ => {}
        }
    }
    warnings.extend(policy.warnings());
    let mut crl_next_update = None;
    if let Some(path) = &files.crl {
        let pem = read_text("CRL", path)?;
        if let Ok(sc_pki::PemContents::Crl(info)) = sc_pki::inspect_pem(&pem, now) {
            crl_next_update = info.next_update.map(|t| t.as_secs());
        }
        let crls = crls_from_pem(&pem).map_err(invalid("CRL", path))?;
        verifier = verifier.with_crls(crls).map_err(invalid("CRL", path))?;
    }

    let builder = ServerConfig::builder()
        .with_client_verifier(Arc::new(verifier))
        .with_credential(Arc::new(credential));
    let config = match creds.cipher {
        CipherChoice::Auto => builder.build(),
        CipherChoice::ChaCha20Poly1305 => {
            builder.build_with_suites(&[CipherSuite::CHACHA20_POLY1305])?
        }
        CipherChoice::Aes256Gcm => builder.build_with_suites(&[CipherSuite::AES_256_GCM])?,
    };
    // A client that offers streams gets them (SPEC §14), one that offers
    // re-keying gets it (§15); one that does not keeps one byte stream per
    // session, or its handshake keys.
    let config = config
        .with_streams(true)
        .with_rekey(true)
        .with_min_version(creds.min_version)
        .and_then(|c| c.with_max_version(creds.max_version))
        .map_err(CredentialError::Version)?;
    Ok(Loaded {
        config,
        description,
        warnings,
        not_after,
        crl_next_update,
    })
}

fn invalid<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(PkiError) -> CredentialError + 'a {
    move |source| CredentialError::Invalid {
        what,
        path: path.to_owned(),
        source,
    }
}

/// The certificate in one phrase, and what would make clients refuse it.
fn describe_leaf(
    leaf: &sc_pki::CertificateDer<'_>,
    path: &Path,
    now: UnixTime,
) -> (String, Vec<String>) {
    let Ok(info) = cert_info(leaf, now) else {
        return (String::new(), Vec::new());
    };
    let name = info
        .dns_names
        .first()
        .cloned()
        .or_else(|| info.ip_addrs.first().map(|ip| ip.to_string()))
        .or_else(|| info.common_name.clone())
        .unwrap_or_else(|| info.subject.clone());
    let fingerprint: String = info.fingerprint[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let description = format!(
        "{name} (sha256:{fingerprint}…, expires in {} days)",
        info.expires_in_days
    );
    let mut warnings = Vec::new();
    let path = path.display();
    if info.expires_in_days < 0 {
        warnings.push(format!(
            "the certificate {path} has expired: clients will refuse it"
        ));
    }
    if info.not_before.as_secs() > now.as_secs() {
        warnings.push(format!(
            "the certificate {path} is not valid yet: clients will refuse it"
        ));
    }
    if !info.ekus.is_empty() && !info.ekus.iter().any(|e| e == "serverAuth") {
        warnings.push(format!(
            "the certificate {path} is not for servers (EKU {}): clients will refuse it",
            info.ekus.join(", ")
        ));
    }
    (description, warnings)
}

/// Reads a PEM file of at most [`MAX_PEM_FILE`] bytes.
fn read_text(what: &'static str, path: &Path) -> Result<String, CredentialError> {
    let err = |reason: String| CredentialError::Read {
        what,
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(io_reason(&e)))?;
    let mut text = String::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => err("it is not a text (PEM) file".into()),
            _ => err(io_reason(&e)),
        })?;
    if text.len() as u64 > MAX_PEM_FILE {
        return Err(err("it is larger than 1 MiB, not a PEM file".into()));
    }
    Ok(text)
}

/// The first line of a passphrase file.
fn read_passphrase(path: &Path) -> Result<Zeroizing<String>, CredentialError> {
    let text = Zeroizing::new(read_text("passphrase file", path)?);
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(CredentialError::EmptyPassphrase {
            path: path.to_owned(),
        });
    }
    Ok(Zeroizing::new(line.to_owned()))
}
