//! Files: atomic writes (a temporary file, fsync, rename, fsync of the
//! directory), private-key permissions, and the CA directory's lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sovereign_chain::cli::CliError;

/// Mode of files holding private keys.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of public files (certificates, CRL, index).
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Writes `bytes` to `path` so that a crash leaves either the old file or the
/// whole new one, never a truncated file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        opts.mode(mode);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced.
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(CliError::io(format!("cannot write {}", path.display()), &e));
    }
    Ok(())
}

/// Reads a whole file as UTF-8 text, naming the file in any error.
pub(crate) fn read_text(path: &Path) -> Result<String, CliError> {
    let bytes =
        fs::read(path).map_err(|e| CliError::io(format!("cannot read {}", path.display()), &e))?;
    String::from_utf8(bytes).map_err(|_| {
        CliError::new(format!("{} is not a PEM file (not text)", path.display()))
            .hint("certificates, CRLs and keys are read in PEM form (-----BEGIN …-----)")
    })
}

/// Reads a private key file, refusing one that others can read, as OpenSSH
/// refuses loose private keys.
pub(crate) fn read_private(path: &Path) -> Result<String, CliError> {
    #[cfg(unix)]
    {
        let meta = fs::metadata(path)
            .map_err(|e| CliError::io(format!("cannot read {}", path.display()), &e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CliError::new(format!(
                "refusing to use {}: it is readable by group or others (mode {mode:04o})",
                path.display()
            ))
            .hint(format!("chmod 600 {}", path.display())));
        }
    }
    read_text(path)
}

/// An exclusive lock on a CA directory, released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (waiting for no one: a second sc-ca fails at once).
    pub(crate) fn acquire(dir: &Path) -> Result<Self, CliError> {
        let path: PathBuf = dir.join(".lock");
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(false);
        #[cfg(unix)]
        opts.mode(PUBLIC_MODE);
        let file = opts
            .open(&path)
            .map_err(|e| CliError::io(format!("cannot open {}", path.display()), &e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(CliError::new(format!(
                "another sc-ca is working on {} right now",
                dir.display()
            ))
            .hint("wait for it to finish and run the command again")),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(CliError::io(format!("cannot lock {}", path.display()), &e))
            }
        }
    }
}

/// Creates a directory for a new CA (mode 0700 where supported).
pub(crate) fn create_dir(dir: &Path) -> Result<(), CliError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .map_err(|e| CliError::io(format!("cannot create {}", dir.display()), &e))
}
