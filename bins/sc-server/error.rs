//! The one error sc-server ends with: a line naming the reason, and where it
//! helps, a line saying what to do (the style of `sc-ca`).

use core::fmt;
use std::process::ExitCode;

use sc_relay::server::StartError;

/// A failed start.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    hint: Option<String>,
    usage: bool,
}

impl CliError {
    /// A failure at run time (files, addresses): exit status 1.
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

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The reason alone, for a log line.
    pub(crate) fn message(&self) -> &str {
        &self.message
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

impl From<StartError> for CliError {
    fn from(e: StartError) -> Self {
        let usage = matches!(e, StartError::Limits { .. } | StartError::NoListeners);
        Self {
            message: e.to_string(),
            hint: e.hint(),
            usage,
        }
    }
}
