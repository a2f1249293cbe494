//! The one error a binary ends with, and its exit status.

/// The one error a binary ends with: a line naming the reason, and where it
/// helps, a line saying what to do (`error: …` / `hint: …`, the style of
/// `sc-ca`). Usage mistakes (flags, config file) exit with 2 as clap's own,
/// everything else with 1.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    usage: bool,
}

impl CliError {
    /// A failure at run time (files, addresses, the peer): exit status 1.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            usage: false,
        }
    }

    /// A mistake in the flags or the config file: exit status 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            usage: true,
            ..Self::new(message)
        }
    }

    /// A file that cannot be read: `what` names it ("cannot read the CA
    /// bundle ca.pem").
    pub fn io(what: String, e: &std::io::Error) -> Self {
        Self::new(format!("{what}: {}", sc_net::io_reason(e)))
    }

    /// Adds what to do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The reason alone, for a log line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> std::process::ExitCode {
        if self.usage {
            std::process::ExitCode::from(2)
        } else {
            std::process::ExitCode::FAILURE
        }
    }
}

impl core::fmt::Display for CliError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl From<sc_tunnel::exit::StartError> for CliError {
    fn from(e: sc_tunnel::exit::StartError) -> Self {
        use sc_tunnel::exit::StartError;
        let usage = matches!(e, StartError::Limits { .. } | StartError::NoListeners);
        Self {
            message: e.to_string(),
            hint: e.hint(),
            usage,
        }
    }
}

impl From<sc_tunnel::ConnectError> for CliError {
    fn from(e: sc_tunnel::ConnectError) -> Self {
        let hint = e.hint();
        let err = Self::new(e.to_string());
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

impl From<sc_relay::RelayStartError> for CliError {
    fn from(e: sc_relay::RelayStartError) -> Self {
        let err = Self::new(e.to_string());
        match e.hint() {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

impl From<sc_pki::PkiError> for CliError {
    fn from(e: sc_pki::PkiError) -> Self {
        Self::new(e.to_string())
    }
}
