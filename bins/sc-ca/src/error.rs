//! The one error a command ends with: a line naming the reason, and where it
//! helps, a line saying what to do.

use core::fmt;

/// A failed command.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    hint: Option<String>,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn io(what: String, e: std::io::Error) -> Self {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            std::io::ErrorKind::AlreadyExists => "it already exists".to_owned(),
            _ => e.to_string(),
        };
        Self::new(format!("{what}: {reason}"))
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
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

impl From<sc_pki::PkiError> for CliError {
    fn from(e: sc_pki::PkiError) -> Self {
        Self::new(e.to_string())
    }
}
