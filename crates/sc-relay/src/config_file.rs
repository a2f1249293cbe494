//! The binaries' config files: reading one (bounded), and one line for an
//! error in it that says where, which key and what is wrong, with a hint
//! for a misspelt key. Independent of the format: the binary parses (TOML)
//! and passes the parser's message and the byte span it points at.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use crate::ops::CliError;

/// Largest config file read (1 MiB).
pub const MAX_CONFIG_FILE: u64 = 1024 * 1024;

/// Reads the config file at `path` (given to `--config`): at most
/// [`MAX_CONFIG_FILE`] bytes of UTF-8 text.
pub fn read(path: &Path) -> Result<String, CliError> {
    let shown = path.display();
    let read = || -> std::io::Result<String> {
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(MAX_CONFIG_FILE + 1)
            .read_to_string(&mut text)?;
        Ok(text)
    };
    let text = read().map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            std::io::ErrorKind::InvalidData => "it is not a text file".to_owned(),
            _ => e.to_string(),
        };
        CliError::new(format!("cannot read the config file {shown}: {reason}"))
            .hint("check the path given to --config")
    })?;
    if text.len() as u64 > MAX_CONFIG_FILE {
        return Err(CliError::usage(format!(
            "the config file {shown} is larger than 1 MiB"
        )));
    }
    Ok(text)
}

/// A byte count, as a flag or a config string: `1048576`, `64KiB`, `1MiB`
/// (also `64K`, `1M`, `64KB`).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (use bytes, or KiB/MiB: 65536, 64KiB, 1MiB)"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1024,
        "m" | "mib" | "mb" => 1024 * 1024,
        _ => return Err(format!("'{s}': unknown unit (use KiB or MiB)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Where in a config file an error is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// `config FILE, line N` (without the line when the parser gave no span).
    pub at: String,
    /// The key set on that line, if it sets one.
    pub key: Option<String>,
}

/// Locates the byte `span` of `text`, the contents of the file `path`.
pub fn place(path: &Path, text: &str, span: Option<Range<usize>>) -> Place {
    let mut at = format!("config {}", path.display());
    let mut key = None;
    if let Some(span) = span {
        let start = span.start.min(text.len());
        let line_no = text.get(..start).unwrap_or(text).matches('\n').count() + 1;
        at.push_str(&format!(", line {line_no}"));
        let line = text.lines().nth(line_no - 1).unwrap_or("");
        key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('['));
    }
    Place { at, key }
}

/// One line for the parser's error `message` at `span` of the file `path`
/// holding `text`. An unknown key (serde's "unknown field") gets the
/// nearest of `keys` as a hint, naming `tool --help`.
pub fn describe(
    path: &Path,
    text: &str,
    message: &str,
    span: Option<Range<usize>>,
    keys: &[&'static str],
    tool: &str,
) -> CliError {
    let Place { at, key } = place(path, text, span);
    let message = message.trim().replace('\n', " ");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let unknown = rest.split('`').next().unwrap_or("");
        let err = CliError::usage(format!("{at}: unknown key `{unknown}`"));
        return match closest_key(unknown, keys) {
            Some(k) => err.hint(format!(
                "did you mean `{k}`? ({tool} --help lists the keys)"
            )),
            None => err.hint(format!(
                "{tool} --help lists the keys: the flags' names with _ for -"
            )),
        };
    }
    match key {
        Some(key) => CliError::usage(format!("{at} ({key}): {message}")),
        None => CliError::usage(format!("{at}: {message}")),
    }
}

/// The key of `keys` nearest to `unknown`, if it is a plausible typo.
pub fn closest_key(unknown: &str, keys: &[&'static str]) -> Option<&'static str> {
    let normalized = unknown.replace('-', "_");
    keys.iter()
        .map(|k| (edit_distance(&normalized, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size(" 64k "), Ok(64 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1GiB").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999999999999M").is_err());
    }

    #[test]
    fn errors_name_the_line_the_key_and_the_nearest_key() {
        let path = Path::new("relay.toml");
        let text = "listen = \"x\"\nhelth_interval = 2\n";
        let err = describe(
            path,
            text,
            "unknown field `helth_interval`, expected one of ...",
            Some(13..27),
            &["health_interval", "listen"],
            "sc-proxy",
        );
        assert_eq!(
            err.to_string(),
            "error: config relay.toml, line 2: unknown key `helth_interval`\n\
             hint: did you mean `health_interval`? (sc-proxy --help lists the keys)"
        );
        let err = describe(path, text, "invalid type", Some(0..5), &[], "sc-proxy");
        assert_eq!(
            err.to_string(),
            "error: config relay.toml, line 1 (listen): invalid type"
        );
        assert_eq!(
            closest_key("max-conections", &["max_connections"]),
            Some("max_connections")
        );
        assert_eq!(closest_key("certificate_authority", &["ca"]), None);
    }
}
