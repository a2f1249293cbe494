//! The Landlock sandbox: from [`Sandbox::enforce`] on, the process (and
//! every thread it starts later) may use only the file system paths it was
//! given, whatever its user may do.
//!
//! Landlock restricts the calling thread and the threads it creates after
//! that (restricting threads that already run needs Landlock ABI 8, Linux
//! 7.0), so a daemon enforces its sandbox before its async runtime starts
//! its threads: every file it opens later, at start (certificates, keys) as
//! at a reload, must be in the sandbox.
//!
//! What a daemon gets:
//!
//! * read access ([`Sandbox::read_beneath`]) to the directories of its
//!   files: certificate, key, CA bundle, CRL, key passphrase, config file
//!   (directories, not the files, so a reload can read files that were
//!   replaced by a rename, as certificate tools and editors do);
//! * Unix socket rights ([`Sandbox::sockets_in`]) in the directories of its
//!   Unix listeners: make the socket, remove a stale one and its own at
//!   exit;
//! * what name resolution reads ([`Sandbox::with_name_resolution`]):
//!   `/etc/hosts`, `/etc/resolv.conf` (and where its symlink leads),
//!   `/etc/nsswitch.conf`, `/etc/host.conf`, `/etc/gai.conf`,
//!   `/etc/services`, and read and execute on the library directories for
//!   the C library's NSS modules.
//!
//! Everything else is refused with `EACCES` (permission denied). The rights
//! handled are those of Landlock ABI 5 (Linux 6.10) and older: all file
//! system rights up to then, so connecting to a Unix socket (a backend,
//! `NOTIFY_SOCKET`) stays possible on kernels with a newer ABI.

use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, BitFlags, LandlockStatus, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, ABI,
};

/// The newest ABI whose file system rights the sandbox handles (tested).
const HANDLED_ABI: ABI = ABI::V5;

/// Files name resolution reads.
const RESOLVER_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
];

/// Where the C library's NSS modules are.
const LIBRARY_DIRS: &[&str] = &["/lib", "/lib64", "/usr/lib", "/usr/lib64"];

/// What the sandbox did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SandboxStatus {
    /// Every right handled is enforced.
    Full {
        /// The Landlock ABI of this kernel (as far as the crate knows it).
        abi: i32,
    },
    /// Some rights are enforced; the kernel's Landlock is older than the
    /// rights asked for (e.g. no `Truncate` before ABI 3).
    Partial {
        /// The Landlock ABI of this kernel.
        abi: i32,
    },
    /// The kernel has no Landlock (not built in, or not enabled at boot).
    NotSupported {
        /// Why, in a few words.
        why: &'static str,
    },
    /// Turned off (`--no-sandbox`).
    Off,
}

impl core::fmt::Display for SandboxStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Full { abi } => write!(f, "Landlock sandbox enforced fully (Landlock ABI {abi})"),
            Self::Partial { abi } => write!(
                f,
                "Landlock sandbox enforced partially (Landlock ABI {abi} has only some of the rights)"
            ),
            Self::NotSupported { why } => {
                write!(f, "Landlock sandbox not enforced: not supported by this kernel ({why})")
            }
            Self::Off => f.write_str("Landlock sandbox off (--no-sandbox)"),
        }
    }
}

/// Why the sandbox could not be set up (a bug or a kernel refusing a
/// ruleset it claims to support, not a missing feature).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the Landlock sandbox: {0}")]
pub struct SandboxError(String);

/// The paths a process keeps; see the [module](self).
#[derive(Clone, Debug, Default)]
pub struct Sandbox {
    read: Vec<PathBuf>,
    resolver: Vec<PathBuf>,
    sockets: Vec<PathBuf>,
    libraries: Vec<PathBuf>,
}

/// The directory a file is in (`.` for a bare name), and where a symlink
/// to it leads, when that is elsewhere.
fn directories_of(file: &Path) -> Vec<PathBuf> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut dirs = vec![parent];
    if let Ok(real) = std::fs::canonicalize(file) {
        if let Some(p) = real.parent() {
            if !dirs.iter().any(|d| d == p) {
                dirs.push(p.to_path_buf());
            }
        }
    }
    dirs
}

impl Sandbox {
    /// No access at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read access to the directory `file` is in (and, for a symlink, to
    /// the directory it leads to).
    pub fn read_beneath(mut self, file: &Path) -> Self {
        for dir in directories_of(file) {
            if !self.read.contains(&dir) {
                self.read.push(dir);
            }
        }
        self
    }

    /// Unix socket rights (make one, remove one) in the directory of the
    /// socket `path`.
    pub fn sockets_in(mut self, path: &Path) -> Self {
        self.sockets.extend(directories_of(path));
        self
    }

    /// What name resolution needs (see the [module](self)).
    pub fn with_name_resolution(mut self) -> Self {
        for f in RESOLVER_FILES {
            let path = Path::new(f);
            self.resolver.push(path.to_path_buf());
            if let Ok(real) = std::fs::canonicalize(path) {
                if real != path {
                    self.resolver.push(real);
                }
            }
        }
        self.libraries
            .extend(LIBRARY_DIRS.iter().map(PathBuf::from));
        self
    }

    /// The directories with read access (besides name resolution's files),
    /// for the log line.
    pub fn readable(&self) -> &[PathBuf] {
        &self.read
    }

    /// Restricts this thread and every thread it starts from now on.
    /// Paths that do not exist are left out (they stay inaccessible).
    pub fn enforce(&self) -> Result<SandboxStatus, SandboxError> {
        let err = |e: landlock::RulesetError| SandboxError(e.to_string());
        let read = AccessFs::ReadFile | AccessFs::ReadDir;
        let sockets: BitFlags<AccessFs> = read | AccessFs::MakeSock | AccessFs::RemoveFile;
        let libraries: BitFlags<AccessFs> = read | AccessFs::Execute;
        let mut rules: Vec<PathBeneath<PathFd>> = Vec::new();
        let mut add = |paths: &[PathBuf], access: BitFlags<AccessFs>| {
            for p in paths {
                if let Ok(fd) = PathFd::new(p) {
                    // A file takes only the rights files have.
                    let access = if p.is_dir() {
                        access
                    } else {
                        access & AccessFs::from_file(HANDLED_ABI)
                    };
                    rules.push(PathBeneath::new(fd, access));
                }
            }
        };
        add(&self.read, read);
        add(&self.resolver, read);
        add(&self.sockets, sockets);
        add(&self.libraries, libraries);
        let status = Ruleset::default()
            .handle_access(AccessFs::from_all(HANDLED_ABI))
            .map_err(err)?
            .create()
            .map_err(err)?
            .add_rules(rules.into_iter().map(Ok::<_, landlock::RulesetError>))
            .map_err(err)?
            .restrict_self()
            .map_err(err)?;
        let abi = match status.landlock {
            LandlockStatus::Available {
                effective_abi,
                kernel_abi,
            } => kernel_abi.unwrap_or(effective_abi as i32),
            LandlockStatus::NotEnabled => {
                return Ok(SandboxStatus::NotSupported {
                    why: "Landlock is built in but not enabled at boot (lsm=)",
                })
            }
            LandlockStatus::NotImplemented => {
                return Ok(SandboxStatus::NotSupported {
                    why: "Landlock is not built into this kernel",
                })
            }
        };
        Ok(match status.ruleset {
            RulesetStatus::FullyEnforced => SandboxStatus::Full { abi },
            RulesetStatus::PartiallyEnforced => SandboxStatus::Partial { abi },
            RulesetStatus::NotEnforced => SandboxStatus::NotSupported {
                why: "no Landlock ABI this build can use",
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a thread of its own (Landlock restricts the calling thread and
    /// those it starts): the allowed directory stays readable, another file
    /// is refused, where the kernel has Landlock.
    #[test]
    fn only_the_allowed_directory_stays_readable() {
        let dir = std::env::temp_dir().join(format!("sc-host-sandbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let allowed = dir.join("allowed.pem");
        std::fs::write(&allowed, "x").expect("write");
        let outside = std::env::current_exe().expect("test binary");
        let result = std::thread::spawn(move || {
            let status = Sandbox::new().read_beneath(&allowed).enforce();
            (
                status.map_err(|e| e.to_string()),
                std::fs::read(&allowed).map(|_| ()),
                std::fs::File::open(&outside).map(|_| ()),
            )
        })
        .join()
        .expect("thread");
        let _ = std::fs::remove_dir_all(&dir);
        let (status, inside, outside) = result;
        let status = status.expect("enforce");
        println!("{status}");
        assert!(inside.is_ok(), "the allowed file: {inside:?}");
        match status {
            SandboxStatus::Full { .. } | SandboxStatus::Partial { .. } => assert_eq!(
                outside.map_err(|e| e.kind()),
                Err(std::io::ErrorKind::PermissionDenied)
            ),
            other => println!("could not check the refusal: {other}"),
        }
    }
}
