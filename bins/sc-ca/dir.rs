//! A CA directory: everything the CA knows lives in it.
//!
//! ```text
//! DIR/ca.pem             root certificate: the trust anchor to distribute
//! DIR/ca.key             root key (0600; may be encrypted; may be taken offline
//!                        when there is an intermediate)
//! DIR/intermediate.pem   intermediate certificate (with --intermediate)
//! DIR/intermediate.key   intermediate key: signs leaves and CRLs
//! DIR/index.toml         the CA's state: every certificate issued, its status
//! DIR/NAME.pem           a leaf and its intermediate, ready to present
//! DIR/NAME.key           the leaf's key (0600); none for a certificate issued
//!                        from a request (`issue --csr`): that key stays on its host
//! DIR/crl.pem            the latest CRL
//! ```
//!
//! The index is written last, so a directory without one is a CA whose
//! creation did not finish. Every file is written atomically.

use std::path::{Path, PathBuf};

use sc_pki::{CertificateDer, KeyPair, UnixTime};
use serde::{Deserialize, Serialize};

use crate::fsutil::{read_private, read_text, write_atomic, PUBLIC_MODE};
use crate::pass::Passphrase;
use crate::time::{parse_rfc3339, rfc3339};
use sovereign_chain::cli::CliError;

pub(crate) const INDEX: &str = "index.toml";
pub(crate) const ROOT_CERT: &str = "ca.pem";
pub(crate) const ROOT_KEY: &str = "ca.key";
pub(crate) const INTER_CERT: &str = "intermediate.pem";
pub(crate) const INTER_KEY: &str = "intermediate.key";
pub(crate) const CRL: &str = "crl.pem";
const FORMAT: u32 = 1;

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Server,
    Client,
    Intermediate,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
            Self::Intermediate => "intermediate",
        }
    }
}

/// Where a certificate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Valid,
    Revoked,
    /// Replaced by a renewal; still valid until it expires, unless revoked.
    Superseded,
}

/// One certificate the CA issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// serialNumber, lowercase hex.
    pub(crate) serial: String,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) not_before: String,
    pub(crate) not_after: String,
    pub(crate) status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) uris: Vec<String>,
}

impl Entry {
    pub(crate) fn not_after(&self) -> Option<UnixTime> {
        parse_rfc3339(&self.not_after)
    }
}

/// The CA's state file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Index {
    pub(crate) format: u32,
    pub(crate) name: String,
    pub(crate) created: String,
    /// Whether an intermediate signs (else the root signs).
    pub(crate) intermediate: bool,
    /// The number of the last CRL written (0: none yet).
    pub(crate) crl_number: u64,
    #[serde(default, rename = "cert")]
    pub(crate) certs: Vec<Entry>,
}

impl Index {
    pub(crate) fn new(name: &str, now: UnixTime, intermediate: bool) -> Self {
        Self {
            format: FORMAT,
            name: name.to_owned(),
            created: rfc3339(now),
            intermediate,
            crl_number: 0,
            certs: Vec::new(),
        }
    }

    /// The current certificate of `name` (not revoked, not superseded).
    pub(crate) fn current(&self, name: &str) -> Option<&Entry> {
        self.certs
            .iter()
            .rev()
            .find(|e| e.name == name && e.status == Status::Valid && e.kind != Kind::Intermediate)
    }

    pub(crate) fn by_serial_mut(&mut self, serial: &str) -> Option<&mut Entry> {
        self.certs
            .iter_mut()
            .find(|e| e.serial.eq_ignore_ascii_case(serial))
    }
}

/// A CA directory, locked for the duration of the command.
#[derive(Debug)]
pub(crate) struct CaDir {
    pub(crate) dir: PathBuf,
    pub(crate) index: Index,
    _lock: crate::fsutil::DirLock,
}

/// The CA that signs: its certificate, key, and the chain a leaf carries.
pub(crate) struct Signer {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: KeyPair,
    /// What goes after the leaf in NAME.pem (the intermediate, if any).
    pub(crate) chain_tail: Vec<CertificateDer<'static>>,
    pub(crate) not_before: UnixTime,
    pub(crate) not_after: UnixTime,
}

impl CaDir {
    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Opens (and locks) an existing CA directory.
    pub(crate) fn open(dir: &Path) -> Result<Self, CliError> {
        if !dir.is_dir() {
            return Err(CliError::new(format!(
                "{} is not a CA directory (it does not exist)",
                dir.display()
            ))
            .hint(format!(
                "create one with: sc-ca init --dir {}",
                dir.display()
            )));
        }
        let lock = crate::fsutil::DirLock::acquire(dir)?;
        let index_path = dir.join(INDEX);
        if !index_path.exists() {
            let hint = if dir.join(ROOT_CERT).exists() {
                format!(
                    "{} holds a half-written CA (no {INDEX}): remove it and run sc-ca init again",
                    dir.display()
                )
            } else {
                format!("create one with: sc-ca init --dir {}", dir.display())
            };
            return Err(CliError::new(format!(
                "{} is not a CA directory (no {INDEX})",
                dir.display()
            ))
            .hint(hint));
        }
        let text = read_text(&index_path)?;
        let index: Index = toml::from_str(&text).map_err(|e| {
            let reason = e.message().lines().collect::<Vec<_>>().join("; ");
            CliError::new(format!("{} is damaged: {reason}", index_path.display()))
                .hint("restore it from a backup; sc-ca never writes a partial index")
        })?;
        if index.format != FORMAT {
            return Err(CliError::new(format!(
                "{} has format {}, this sc-ca reads format {FORMAT}",
                index_path.display(),
                index.format
            )));
        }
        Ok(Self {
            dir: dir.to_owned(),
            index,
            _lock: lock,
        })
    }

    /// Locks a directory for `init` (which creates the index).
    pub(crate) fn create(dir: &Path, index: Index) -> Result<Self, CliError> {
        let lock = crate::fsutil::DirLock::acquire(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            index,
            _lock: lock,
        })
    }

    pub(crate) fn save(&self) -> Result<(), CliError> {
        let text = toml::to_string_pretty(&self.index)
            .map_err(|e| CliError::new(format!("cannot encode the index: {e}")))?;
        let body = format!(
            "# Sovereign-Chain CA state, written by sc-ca. No private key is stored here.\n{text}"
        );
        write_atomic(&self.path(INDEX), body.as_bytes(), PUBLIC_MODE)
    }

    /// Reads one certificate file (a single certificate).
    pub(crate) fn read_cert(&self, file: &str) -> Result<CertificateDer<'static>, CliError> {
        let path = self.path(file);
        let mut certs = sc_pki::certs_from_pem(&read_text(&path)?)
            .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(CliError::new(format!(
                "{} holds no certificate",
                path.display()
            )));
        }
        Ok(certs.remove(0))
    }

    /// Reads a private key (refusing loose permissions), asking for its
    /// passphrase if it is encrypted.
    pub(crate) fn read_key(&self, file: &str, pass: &Passphrase) -> Result<KeyPair, CliError> {
        let path = self.path(file);
        if !path.exists() {
            return Err(CliError::new(format!("{} is missing", path.display())));
        }
        let pem = read_private(&path)?;
        let passphrase = if KeyPair::pem_is_encrypted(&pem) {
            Some(pass.get(&format!("passphrase for {}", path.display()), false)?)
        } else {
            None
        };
        KeyPair::from_pem(&pem, passphrase.as_ref().map(|p| p.as_bytes())).map_err(|e| {
            let err = CliError::new(format!("{}: {e}", path.display()));
            match e {
                sc_pki::PkiError::WrongPassphrase => {
                    err.hint("check --passphrase-file or SC_CA_PASSPHRASE")
                }
                _ => err,
            }
        })
    }

    /// The signing CA (intermediate if there is one, else the root), checked
    /// to be valid at `now`.
    pub(crate) fn signer(&self, pass: &Passphrase, now: UnixTime) -> Result<Signer, CliError> {
        let (cert_file, key_file) = if self.index.intermediate {
            (INTER_CERT, INTER_KEY)
        } else {
            (ROOT_CERT, ROOT_KEY)
        };
        let cert = self.read_cert(cert_file)?;
        let info = sc_pki::cert_info(&cert, now)?;
        let path = self.path(cert_file);
        if now.as_secs() > info.not_after.as_secs() {
            return Err(CliError::new(format!(
                "the CA certificate {} expired on {}",
                path.display(),
                crate::time::date(info.not_after)
            ))
            .hint("a CA cannot sign after it expires: create a new CA with sc-ca init and distribute its ca.pem"));
        }
        if now.as_secs() < info.not_before.as_secs() {
            return Err(CliError::new(format!(
                "the CA certificate {} is not valid until {}",
                path.display(),
                crate::time::minute(info.not_before)
            ))
            .hint("check this machine's clock"));
        }
        let key = self.read_key(key_file, pass)?;
        if sc_pki::KeyPin::of_key(&key.public_key()) != sc_pki::KeyPin::of_cert(&cert)? {
            return Err(CliError::new(format!(
                "{} does not match {}",
                self.path(key_file).display(),
                path.display()
            )));
        }
        let chain_tail = if self.index.intermediate {
            vec![cert.clone()]
        } else {
            Vec::new()
        };
        Ok(Signer {
            cert,
            key,
            chain_tail,
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }
}

/// Checks a certificate name: it becomes a file name, so only
/// `A-Z a-z 0-9 . _ -`, 1–64 characters, not starting with a dot or dash.
pub(crate) fn check_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(
            CliError::usage(format!("invalid certificate name '{name}'")).hint(
                "use 1-64 letters, digits, '.', '_' or '-' (it becomes the file name NAME.pem)",
            ),
        )
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
