//! Where a CA key's passphrase comes from: `--passphrase-file FILE`, else the
//! `SC_CA_PASSPHRASE` environment variable, else a prompt on the terminal.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::PathBuf;

use zeroize::Zeroizing;

use sovereign_chain::cli::CliError;

/// The environment variable holding a CA passphrase.
pub(crate) const ENV: &str = "SC_CA_PASSPHRASE";

/// A passphrase source, read at most once per command.
#[derive(Debug)]
pub(crate) struct Passphrase {
    file: Option<PathBuf>,
    cached: RefCell<Option<Zeroizing<String>>>,
}

impl Passphrase {
    pub(crate) fn new(file: Option<PathBuf>) -> Self {
        Self {
            file,
            cached: RefCell::new(None),
        }
    }

    /// The passphrase; `prompt` is shown on a terminal; `confirm` asks twice
    /// (when a new key is encrypted).
    pub(crate) fn get(&self, prompt: &str, confirm: bool) -> Result<Zeroizing<String>, CliError> {
        if let Some(p) = self.cached.borrow().as_ref() {
            return Ok(p.clone());
        }
        let p = self.read(prompt, confirm)?;
        if p.is_empty() {
            return Err(CliError::new("the passphrase is empty").hint("use a non-empty passphrase"));
        }
        *self.cached.borrow_mut() = Some(p.clone());
        Ok(p)
    }

    fn read(&self, prompt: &str, confirm: bool) -> Result<Zeroizing<String>, CliError> {
        if let Some(path) = &self.file {
            let text = Zeroizing::new(crate::fsutil::read_private(path)?);
            let line = text.lines().next().unwrap_or("");
            return Ok(Zeroizing::new(line.to_owned()));
        }
        if let Ok(p) = std::env::var(ENV) {
            return Ok(Zeroizing::new(p));
        }
        if !std::io::stdin().is_terminal() {
            return Err(CliError::new(format!(
                "{prompt} needed, and there is no terminal to ask on"
            ))
            .hint(format!(
                "give it with --passphrase-file FILE or the {ENV} environment variable"
            )));
        }
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("{prompt}: "))
                .map_err(|e| CliError::io("cannot read the passphrase".into(), &e))?,
        );
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password("again: ")
                    .map_err(|e| CliError::io("cannot read the passphrase".into(), &e))?,
            );
            if *again != *first {
                return Err(
                    CliError::new("the two passphrases differ").hint("run the command again")
                );
            }
        }
        Ok(first)
    }
}
