//! Man pages and shell completions, made from a binary's own clap
//! definitions (as ripgrep's `--generate` and rage's `generate-completions`
//! do), so they never disagree with `--help`.
//!
//! Each binary answers the hidden `--generate-to DIR` (the only argument) by
//! writing
//!
//! * `DIR/man/man1/NAME.1`, and for a binary with subcommands one page per
//!   subcommand as well (`sc-ca-issue-server.1`, to which `sc-ca.1` and
//!   `sc-ca-issue.1` refer), in the layout `man` looks for (`MANPATH=DIR/man`);
//! * `DIR/completions/bash/NAME`, `DIR/completions/zsh/_NAME` and
//!   `DIR/completions/fish/NAME.fish`, named as each shell's completion
//!   directory expects them;
//!
//! printing each file's path, and exits 0. `dist/generate.sh DIR` runs it
//! for all four binaries.
//!
//! The flag is read before clap parses the command line: `sc-ca`'s parser
//! demands a subcommand, and the daemons would resolve and check their
//! settings. It is not in `--help` and not in the completions.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Command, CommandFactory};
use clap_complete::Shell;

use crate::cli::units::civil_from_days;
use crate::cli::{finish, CliError};

/// The four binaries, whose pages refer to each other.
const BINARIES: [&str; 4] = ["sc-ca", "sc-server", "sc-client", "sc-proxy"];

/// The hidden flag, which must be the first argument: `--generate-to DIR`.
pub const FLAG: &str = "--generate-to";

/// The start of a binary's `main`: with `--generate-to DIR` as its
/// arguments, writes the man pages and completions of `C` (the binary's
/// `Cli`) under `DIR` and returns the exit status; otherwise `None`, and
/// `main` goes on to parse its command line.
pub fn generate_if_asked<C: CommandFactory>() -> Option<ExitCode> {
    generate_for_args(C::command(), std::env::args_os().skip(1))
}

fn generate_for_args(cmd: Command, args: impl IntoIterator<Item = OsString>) -> Option<ExitCode> {
    let mut args = args.into_iter();
    if args.next()? != FLAG {
        return None;
    }
    let result = match (args.next(), args.next()) {
        (Some(dir), None) => generate_to(cmd, Path::new(&dir)).map(|files| {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }),
        _ => Err(CliError::usage(format!(
            "usage: {} {FLAG} DIR",
            cmd.get_name()
        ))),
    };
    Some(finish(result))
}

/// Writes the man pages and the bash, zsh and fish completions of `cmd`
/// under `dir` (layout in the [module docs](self)), creating the
/// directories; returns the files written.
pub fn generate_to(cmd: Command, dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    // As clap_mangen's own generate_to: no page for clap's `help`
    // subcommand (the completions still offer it). Before building, which
    // adds it.
    let mut man_cmd = cmd.clone().disable_help_subcommand(true);
    man_cmd.build();
    let mut cmd = cmd;
    cmd.build();
    let name = cmd.get_name().to_owned();
    let date = page_date();
    let source = format!(
        "Sovereign-Chain {}",
        cmd.get_version().unwrap_or(env!("CARGO_PKG_VERSION"))
    );
    let mut written = Vec::new();

    let man_dir = dir.join("man").join("man1");
    create_dir(&man_dir)?;
    man_pages(&man_cmd, &date, &source, &man_dir, &mut written)?;

    for (shell, file) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let shell_dir = dir.join("completions").join(shell.to_string());
        create_dir(&shell_dir)?;
        let path = shell_dir.join(file);
        // Into memory first: clap_complete panics on a failed write.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut script);
        write_file(&path, |w| w.write_all(&script))?;
        written.push(path);
    }
    Ok(written)
}

/// The page of `cmd` and, recursively, of its visible subcommands (whose
/// names clap has built as `sc-ca-issue-server`).
fn man_pages(
    cmd: &Command,
    date: &str,
    source: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), CliError> {
    let man = clap_mangen::Man::new(cmd.clone())
        .date(date)
        .source(source)
        .manual("User Commands");
    let mut page = Vec::new();
    man.render(&mut page).map_err(|e| {
        CliError::new(format!(
            "cannot render the man page of {name}: {e}",
            name = cmd.get_name()
        ))
    })?;
    let page = String::from_utf8(page)
        .map_err(|_| CliError::new("clap_mangen made a page that is not UTF-8"))?;
    let path = dir.join(man.get_filename());
    write_file(&path, |w| w.write_all(finish_page(&page, cmd).as_bytes()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, date, source, dir, written)?;
    }
    Ok(())
}

/// The date in the pages' title line (`.TH`): of `SOURCE_DATE_EPOCH` where
/// it is set (reproducible builds), else today, as `2026-12-07` (UTC). Never
/// empty: clap_mangen writes an empty date as no argument at all, which
/// shifts the source and manual into its place.
fn page_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// clap_mangen's page with the long help's text (`after_long_help`: examples,
/// limits, signals, config file) under a heading that says what it is rather
/// than `EXTRA`, and for a binary's own page a `SEE ALSO` naming the others.
fn finish_page(page: &str, cmd: &Command) -> String {
    let mut page = page.replacen("\n.SH EXTRA\n", "\n.SH DETAILS\n", 1);
    let name = cmd.get_name();
    if BINARIES.contains(&name) {
        let others: Vec<String> = BINARIES
            .iter()
            .filter(|b| **b != name)
            .map(|b| format!(".BR {} (1)", b.replace('-', "\\-")))
            .collect();
        page.push_str(".SH \"SEE ALSO\"\n");
        page.push_str(&others.join(",\n"));
        page.push('\n');
    }
    page
}

fn create_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::io(format!("cannot create {}", dir.display()), &e))
}

fn write_file(
    path: &Path,
    render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let fail = |e: std::io::Error| CliError::io(format!("cannot write {}", path.display()), &e);
    let mut w = BufWriter::new(File::create(path).map_err(fail)?);
    render(&mut w).map_err(fail)?;
    w.flush().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> Command {
        Command::new("sc-test").version("1.2.3")
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_429), (2025, 12, 7));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn other_arguments_are_left_to_clap() {
        assert!(generate_for_args(cmd(), []).is_none());
        assert!(generate_for_args(cmd(), ["--listen".into(), FLAG.into()]).is_none());
        assert!(generate_for_args(cmd(), ["--help".into()]).is_none());
    }

    #[test]
    fn a_missing_or_extra_directory_is_a_usage_error() {
        let usage = CliError::usage("").exit_code();
        assert_eq!(generate_for_args(cmd(), [FLAG.into()]), Some(usage));
        assert_eq!(
            generate_for_args(cmd(), [FLAG.into(), "a".into(), "b".into()]),
            Some(CliError::usage("").exit_code())
        );
    }
}
