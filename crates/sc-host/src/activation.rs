//! Socket activation: the listening sockets systemd (or
//! `systemd-socket-activate`) passed in `LISTEN_FDS`, checked against
//! `LISTEN_PID` and named by `LISTEN_FDNAMES`, for
//! [`sc_net::inherited::inherit`].

use sc_net::inherited::{Inherited, InheritedSocket};

/// The first passed file descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// Why the passed sockets cannot be used. Each is a broken environment, not
/// a mistake in the flags: the daemons exit with status 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// `LISTEN_FDS` is not a number.
    #[error("LISTEN_FDS={0}: not a number of file descriptors")]
    NotANumber(String),
    /// `LISTEN_FDS` without `LISTEN_PID`.
    #[error(
        "LISTEN_FDS={0} is set without LISTEN_PID: the sockets may be meant for another process"
    )]
    NoPid(String),
    /// `LISTEN_PID` is not a number.
    #[error("LISTEN_PID={0}: not a process id")]
    BadPid(String),
    /// `LISTEN_PID` names another process.
    #[error("LISTEN_PID={given} is not this process ({ours}): the sockets in LISTEN_FDS are meant for another process")]
    NotOurs {
        /// The variable's value.
        given: String,
        /// Our process id.
        ours: u32,
    },
    /// `LISTEN_FDNAMES` does not name every socket.
    #[error("LISTEN_FDNAMES has {names} names for LISTEN_FDS={fds} sockets")]
    NameCount {
        /// Names given.
        names: usize,
        /// Sockets passed.
        fds: usize,
    },
    /// A passed descriptor is not a listening TCP or Unix stream socket.
    #[error("LISTEN_FDS: fd {fd} (name {name}) is not a TCP or Unix stream socket: {reason}")]
    NotAListener {
        /// The descriptor.
        fd: i32,
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// What the environment says, parsed: how many sockets and their names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passed {
    /// One name per socket, from fd 3 on (`unknown` without
    /// `LISTEN_FDNAMES`, as `sd_listen_fds_with_names(3)`).
    pub names: Vec<String>,
}

/// Checks the variables (given as values, so it is testable): `None`
/// without `LISTEN_FDS`.
pub fn parse(
    listen_fds: Option<&str>,
    listen_pid: Option<&str>,
    listen_fdnames: Option<&str>,
    our_pid: u32,
) -> Result<Option<Passed>, ActivationError> {
    let Some(fds) = listen_fds else {
        return Ok(None);
    };
    let n: usize = fds
        .trim()
        .parse()
        .map_err(|_| ActivationError::NotANumber(fds.to_owned()))?;
    let pid = listen_pid.ok_or_else(|| ActivationError::NoPid(fds.to_owned()))?;
    let pid_n: u32 = pid
        .trim()
        .parse()
        .map_err(|_| ActivationError::BadPid(pid.to_owned()))?;
    if pid_n != our_pid {
        return Err(ActivationError::NotOurs {
            given: pid.to_owned(),
            ours: our_pid,
        });
    }
    if n == 0 {
        // Nothing passed: the daemon binds its own listeners.
        return Ok(None);
    }
    let names: Vec<String> = match listen_fdnames {
        Some(list) => list.split(':').map(str::to_owned).collect(),
        _ => vec!["unknown".to_owned(); n],
    };
    if names.len() != n {
        return Err(ActivationError::NameCount {
            names: names.len(),
            fds: n,
        });
    }
    Ok(Some(Passed { names }))
}

/// Reads `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` and takes the
/// sockets: `None` when the process was not socket-activated.
pub fn from_env() -> Result<Option<Vec<Inherited>>, ActivationError> {
    let var = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let (fds, pid, names) = (var("LISTEN_FDS"), var("LISTEN_PID"), var("LISTEN_FDNAMES"));
    let Some(passed) = parse(
        fds.as_deref(),
        pid.as_deref(),
        names.as_deref(),
        std::process::id(),
    )?
    else {
        return Ok(None);
    };
    let mut fds = listenfd::ListenFd::from_env();
    let mut sockets = Vec::with_capacity(passed.names.len());
    for (i, name) in passed.names.into_iter().enumerate() {
        let fd = FIRST_FD.saturating_add(i32::try_from(i).unwrap_or(i32::MAX));
        let not_a_listener = |reason: String| ActivationError::NotAListener {
            fd,
            name: name.clone(),
            reason,
        };
        let socket = match fds.take_tcp_listener(i) {
            Ok(Some(l)) => InheritedSocket::Tcp(l),
            Ok(None) => return Err(not_a_listener("already taken".into())),
            Err(tcp) => match fds.take_unix_listener(i) {
                Ok(Some(l)) => InheritedSocket::Unix(l),
                Ok(None) => return Err(not_a_listener("already taken".into())),
                Err(_) => return Err(not_a_listener(tcp.to_string())),
            },
        };
        sockets.push(Inherited { name, fd, socket });
    }
    Ok(Some(sockets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_listen_fds_nothing_was_passed() {
        assert_eq!(parse(None, Some("12"), None, 12), Ok(None));
    }

    #[test]
    fn names_are_split_and_default_to_unknown() {
        assert_eq!(
            parse(Some("2"), Some("12"), Some("web:status"), 12),
            Ok(Some(Passed {
                names: vec!["web".into(), "status".into()]
            }))
        );
        assert_eq!(
            parse(Some("1"), Some("12"), None, 12),
            Ok(Some(Passed {
                names: vec!["unknown".into()]
            }))
        );
    }

    #[test]
    fn broken_variables_are_named() {
        assert_eq!(
            parse(Some("two"), Some("12"), None, 12),
            Err(ActivationError::NotANumber("two".into()))
        );
        assert_eq!(
            parse(Some("1"), None, None, 12),
            Err(ActivationError::NoPid("1".into()))
        );
        assert_eq!(
            parse(Some("1"), Some("x"), None, 12),
            Err(ActivationError::BadPid("x".into()))
        );
        assert_eq!(
            parse(Some("1"), Some("13"), None, 12),
            Err(ActivationError::NotOurs {
                given: "13".into(),
                ours: 12
            })
        );
        assert_eq!(
            parse(Some("2"), Some("12"), Some("a"), 12),
            Err(ActivationError::NameCount { names: 1, fds: 2 })
        );
    }
}
