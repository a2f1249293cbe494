//! The man pages and shell completions, made as README's "Install" says
//! (`dist/generate.sh OUTDIR BINDIR`, over the binaries' hidden
//! `--generate-to DIR`), checked by the tools that will read them: every
//! page that `sc-ca.1` refers to exists, every page names every flag its
//! command's `--help` names, `bash -n` accepts the bash completions and
//! bash completes a flag with them; `man -l` renders every page without a
//! warning, and `zsh -n` and `fish -n` accept theirs (those two tests are
//! ignored: a machine with only the Rust toolchain may lack man-db, zsh and
//! fish; `.ci/run` installs them and runs the ignored tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

const BINARIES: [&str; 4] = ["sc-ca", "sc-server", "sc-client", "sc-proxy"];
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/generate.sh");

/// A flag of each binary that its page and completions must carry.
const A_FLAG: [(&str, &str); 4] = [
    ("sc-ca", "--version"),
    ("sc-server", "--max-connections"),
    ("sc-client", "--server-name"),
    ("sc-proxy", "--health-interval"),
];

/// The files of `dist/generate.sh`, in a directory removed when dropped.
struct Generated(PathBuf);

impl Generated {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sc-dist-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let out = run(Command::new("sh").arg(SCRIPT).arg(&dir).arg(bin_dir()));
        assert!(
            out.status.success(),
            "dist/generate.sh failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir)
    }

    fn man_pages(&self) -> Vec<PathBuf> {
        let mut pages: Vec<PathBuf> = std::fs::read_dir(self.0.join("man/man1"))
            .expect("man/man1")
            .map(|e| e.expect("dir entry").path())
            .collect();
        pages.sort();
        pages
    }

    fn completion(&self, shell: &str, bin: &str) -> PathBuf {
        let file = match shell {
            "bash" => bin.to_owned(),
            "zsh" => format!("_{bin}"),
            "fish" => format!("{bin}.fish"),
            _ => unreachable!("no such shell in these tests: {shell}"),
        };
        self.0.join("completions").join(shell).join(file)
    }
}

impl Drop for Generated {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where cargo put the binaries under test.
fn bin_dir() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sc-server"))
        .parent()
        .expect("the binaries' directory")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A tool the ignored tests need: a clear failure where it is missing.
fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "FAILED: `{tool}` is not installed (Debian: apt-get install {package}); .ci/run installs it"
    );
}

/// `sc-ca-issue-server.1` → `["sc-ca", "issue", "server"]`.
fn command_of(page: &Path) -> Vec<String> {
    let stem = page
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a page name");
    let bin = BINARIES
        .iter()
        .filter(|b| stem == **b || stem.starts_with(&format!("{b}-")))
        .max_by_key(|b| b.len())
        .unwrap_or_else(|| panic!("a page of no binary: {stem}"));
    let mut words = vec![(*bin).to_owned()];
    if let Some(rest) = stem.strip_prefix(&format!("{bin}-")) {
        words.extend(rest.split('-').map(str::to_owned));
    }
    words
}

/// The long flags that `COMMAND --help` lists (its option lines only, not
/// the prose).
fn help_flags(command: &[String]) -> Vec<String> {
    let out = run(Command::new(bin_dir().join(&command[0]))
        .args(&command[1..])
        .arg("--help"));
    assert!(out.status.success(), "{command:?} --help: {}", out.status);
    let mut flags = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        for word in line.split_whitespace() {
            // `--verbose...`, `--route=NAME`, `-v,`: the name alone.
            let end = word
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(word.len());
            let flag = &word[..end];
            if flag.starts_with("--") && flag.len() > 2 && !flags.iter().any(|f| f == flag) {
                flags.push(flag.to_owned());
            }
        }
    }
    assert!(!flags.is_empty(), "{command:?} --help lists no flag");
    flags
}

/// The text of a roff page with its escaped hyphens plain.
fn roff_text(page: &Path) -> String {
    std::fs::read_to_string(page)
        .expect("read page")
        .replace("\\-", "-")
}

#[test]
fn every_page_and_completion_is_made_and_names_every_flag() {
    let gen = Generated::new();
    let pages = gen.man_pages();
    for bin in BINARIES {
        assert!(
            pages.iter().any(|p| p.ends_with(format!("{bin}.1"))),
            "no page for {bin}: {pages:?}"
        );
        for shell in ["bash", "zsh", "fish"] {
            let file = gen.completion(shell, bin);
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let flag = A_FLAG.iter().find(|(b, _)| *b == bin).expect("a flag").1;
            let bare = flag.trim_start_matches('-');
            assert!(
                text.contains(bare),
                "{} does not complete {flag}",
                file.display()
            );
            assert!(
                !text.contains("generate-to"),
                "{} offers the hidden --generate-to",
                file.display()
            );
        }
    }
    // sc-ca's subcommands have pages of their own, and every page referred to
    // exists.
    assert!(
        pages.len() > BINARIES.len(),
        "no subcommand pages: {pages:?}"
    );
    assert!(
        !pages.iter().any(|p| p.to_string_lossy().contains("-help")),
        "pages for clap's `help` subcommand: {pages:?}"
    );
    for page in &pages {
        let text = roff_text(page);
        for (i, _) in text.match_indices("(1)") {
            let start = text[..i]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |s| s + 1);
            let name = &text[start..i];
            if name.starts_with("sc-") {
                assert!(
                    gen.0.join(format!("man/man1/{name}.1")).exists(),
                    "{} refers to {name}(1), which was not made",
                    page.display()
                );
            }
        }
        // Every flag of the command's --help is on its page, and nothing
        // hidden is.
        let command = command_of(page);
        for flag in help_flags(&command) {
            assert!(
                text.contains(&flag),
                "{} does not mention {flag} ({command:?} --help does)",
                page.display()
            );
        }
        assert!(!text.contains("generate-to"), "{}", page.display());
    }
    let server = roff_text(&gen.0.join("man/man1/sc-server.1"));
    assert!(
        server.contains(r"\fB--max-connections\fR \fI<N>\fR"),
        "an option entry"
    );
    assert!(server.contains(".SH DETAILS"), "the long help's text");
    assert!(server.contains(".SH \"SEE ALSO\""));
}

#[test]
fn bash_accepts_the_completions_and_completes_a_flag() {
    let gen = Generated::new();
    for (bin, flag) in A_FLAG {
        let file = gen.completion("bash", bin);
        let out = run(Command::new("bash").arg("-n").arg(&file));
        assert!(
            out.status.success(),
            "bash -n {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // Load it as bash-completion would and complete the flag's first
        // letters the way bash calls the function on TAB.
        let prefix = &flag[..flag.len() - 2];
        let script = format!(
            r#"source "$1"
fn=$(complete -p {bin} | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
COMP_WORDS=({bin} {prefix}); COMP_CWORD=1
COMP_LINE="{bin} {prefix}"; COMP_POINT=${{#COMP_LINE}}
"$fn" {bin} {prefix} {bin}
printf '%s\n' "${{COMPREPLY[@]}}""#
        );
        let out = run(Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg("bash")
            .arg(&file));
        let replies = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && replies.lines().any(|l| l.trim() == flag),
            "bash completes `{bin} {prefix}` to {replies:?}, not {flag} ({})",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "needs zsh and fish: run by .ci/run"]
fn zsh_and_fish_accept_the_completions() {
    require("zsh", "zsh");
    require("fish", "fish");
    let gen = Generated::new();
    for (bin, flag) in A_FLAG {
        for shell in ["zsh", "fish"] {
            let file = gen.completion(shell, bin);
            let out = run(Command::new(shell).arg("-n").arg(&file));
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{shell} -n {}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // fish can ask its completion machinery directly.
        let prefix = &flag[..flag.len() - 2];
        let out = run(Command::new("fish")
            .arg("--no-config")
            .arg("-c")
            .arg(format!("source $argv[1]; complete -C '{bin} {prefix}'"))
            .arg(gen.completion("fish", bin)));
        let replies = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && replies.lines().any(|l| l.split('\t').next() == Some(flag)),
            "fish completes `{bin} {prefix}` to {replies:?}, not {flag}"
        );
    }
    println!("zsh -n and fish -n accept the completions of {BINARIES:?}");
}

#[test]
#[ignore = "needs man-db: run by .ci/run"]
fn man_renders_every_page() {
    require("man", "man-db");
    let gen = Generated::new();
    let pages = gen.man_pages();
    for page in &pages {
        // Plain ASCII, no hyphenation or justification, so flags stay whole;
        // --warnings=w: every kind of groff warning (the default is only
        // `mac`) to stderr, which must be empty.
        let out = run(Command::new("man")
            .args(["--warnings=w", "--nh", "--nj", "-E", "ascii", "-l"])
            .arg(page)
            .env("MANWIDTH", "100")
            .env_remove("MAN_KEEP_FORMATTING")
            .env_remove("PAGER")
            .env_remove("MANPAGER"));
        let text = String::from_utf8_lossy(&out.stdout);
        let stem = page.file_stem().and_then(|s| s.to_str()).expect("name");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "man -l {}: {}\n{}",
            page.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.starts_with(&format!("{stem}(1)")) && text.contains("SYNOPSIS"),
            "man -l {} rendered:\n{text}",
            page.display()
        );
        for flag in help_flags(&command_of(page)) {
            assert!(
                text.contains(&flag),
                "man -l {} does not show {flag}",
                page.display()
            );
        }
    }
    println!("man -l renders all {} pages", pages.len());
}
