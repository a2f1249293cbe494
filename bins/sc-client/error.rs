//! The one error sc-client ends with: a line naming the reason, and where it
//! helps, a line saying what to do (the style of `sc-ca`).

use core::fmt;
use std::process::ExitCode;

use sc_relay::client::ConnectError;

/// A failed run.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    hint: Option<String>,
    usage: bool,
}

impl CliError {
    /// A failure at run time (files, network, the server): exit status 1.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            usage: false,
        }
    }

    /// A mistake in the flags or the config file: exit status 2, as clap's
    /// own usage errors.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            usage: true,
            ..Self::new(message)
        }
    }

    /// A file that cannot be read: `what` names it ("cannot read the CA
    /// bundle ca.pem").
    pub(crate) fn io(what: String, e: &std::io::Error) -> Self {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => sc_relay::client::io_reason(e),
        };
        Self::new(format!("{what}: {reason}"))
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.usage {
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl From<ConnectError> for CliError {
    fn from(e: ConnectError) -> Self {
        let hint = e.hint();
        let err = Self::new(e.to_string());
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}
