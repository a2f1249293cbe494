//! The binaries' config files, one dialect for all: TOML whose keys are the
//! flags' names with `_` for `-`, process-wide keys at the top level, and
//! table keys both at the top level (defaults) and in `[[TABLE]]` tables
//! ([`config_file!`](crate::config_file) defines them once per binary).
//! Flags override the file. Reading is bounded; an error is one line that
//! says where, which key and what is wrong, with a hint for a misspelt key.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::CliError;

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

/// Reads and parses the config file at `path` (given to `--config`) into
/// `T`; `keys` are the keys it may hold (for the hint on an unknown one),
/// `tool` the binary's name.
pub fn parse<T: DeserializeOwned>(
    path: &Path,
    keys: &[&'static str],
    tool: &str,
) -> Result<T, CliError> {
    parse_explained(path, keys, tool, |_| None)
}

/// As [`parse`], where `explain` may replace a parser message that would
/// not help (an untagged value that matches no form) with one that does.
pub fn parse_explained<T: DeserializeOwned>(
    path: &Path,
    keys: &[&'static str],
    tool: &str,
    explain: impl Fn(&str) -> Option<&'static str>,
) -> Result<T, CliError> {
    let text = read(path)?;
    toml::from_str(&text).map_err(|e| match explain(e.message()) {
        Some(better) => describe(path, &text, better, e.span(), &[], tool),
        None => describe(path, &text, e.message(), e.span(), keys, tool),
    })
}

/// Where a value came from, for error lines: a flag, a key at the top level
/// of the config file, or one in its `[[TABLE]]` number N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin<'a> {
    /// A command-line flag.
    Flag,
    /// The config file's top level.
    File(&'a Path),
    /// A table of the config file: its path, the tables' name, the table's
    /// number (from 1).
    Table(&'a Path, &'static str, usize),
}

impl Origin<'_> {
    /// `--max-connections`, `config FILE, max_connections`, `config FILE
    /// ([[listener]] 2), max_connections`: where `key` was set.
    pub fn key(self, key: &str) -> String {
        match self {
            Self::Flag => format!("--{}", key.replace('_', "-")),
            Self::File(p) => format!("config {}, {key}", p.display()),
            Self::Table(p, t, n) => format!("config {} ([[{t}]] {n}), {key}", p.display()),
        }
    }

    /// A usage error about the value of `key` set here.
    pub fn bad(self, key: &str, why: &str) -> CliError {
        CliError::usage(format!("{}: {why}", self.key(key)))
    }
}

/// What [`layered`] checks besides merging.
#[derive(Clone, Copy, Debug, Default)]
pub struct OneTable<'s> {
    /// A key set at the top level that only tables may hold once there are
    /// tables (`listen`), if the caller found one.
    pub table_only_key: Option<&'s str>,
    /// Flags given that describe one table (`--listen, --echo and
    /// --forward`), if any: an error when the file has several.
    pub flags: Option<&'s str>,
}

/// A file's `[[NAME]]` tables merged over the top level's defaults with
/// `over` (the top level alone when the file has no tables), each with
/// where its values are reported from; see [`OneTable`] for the errors.
pub fn layered<'a, T: Clone>(
    path: Option<&'a Path>,
    name: &'static str,
    defaults: T,
    tables: &[T],
    check: OneTable<'_>,
    over: impl Fn(&T, &T) -> T,
) -> Result<Vec<(T, Origin<'a>)>, CliError> {
    let top = path.map_or(Origin::Flag, Origin::File);
    if tables.is_empty() {
        return Ok(vec![(defaults, top)]);
    }
    if let Some(key) = check.table_only_key {
        return Err(CliError::usage(format!(
            "{}: `{key}` at the top level of a file with [[{name}]] tables",
            top.key(key)
        ))
        .hint(format!("move it into a [[{name}]] table")));
    }
    if let (Some(flags), true) = (check.flags, tables.len() > 1) {
        return Err(CliError::usage(format!(
            "{flags} describe one {name}, and the config file has {}",
            tables.len()
        ))
        .hint(format!("set them in the file's [[{name}]] tables")));
    }
    Ok(tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = match path {
                Some(p) if tables.len() > 1 => Origin::Table(p, name, i + 1),
                _ => top,
            };
            (over(t, &defaults), at)
        })
        .collect())
}

/// The first value that is set, with where it came from: layers in order
/// of precedence, such as `[(flag, Origin::Flag), (table_key, table),
/// (top_key, file)]`.
pub fn pick<'a, T, const N: usize>(
    layers: [(Option<T>, Origin<'a>); N],
) -> Option<(T, Origin<'a>)> {
    layers
        .into_iter()
        .find_map(|(value, origin)| value.map(|v| (v, origin)))
}

/// Defines a binary's config file once: its process-wide keys, and the keys
/// of its `[[TABLE]]` tables, which may also stand at the top level as
/// defaults for every table. Generates `FileConfig` (the whole file),
/// `Table` (one table; `over` merges it over the top level's defaults),
/// and `KEYS` (every key, for the hint on an unknown one). Every key is
/// optional; unknown keys are errors.
///
/// ```
/// use sovereign_chain::cli::units::Seconds;
///
/// sovereign_chain::config_file! {
///     tables: listener,
///     process { #[serde(alias = "grace")] shutdown_grace: Seconds }
///     table { listen: String, max_connections: usize }
/// }
///
/// # fn main() -> Result<(), toml::de::Error> {
/// let file: FileConfig = toml::from_str(
///     "grace = \"1m\"\nmax_connections = 10\n[[listener]]\nlisten = \"127.0.0.1:7000\"\n",
/// )?;
/// let first = file.listener[0].over(&file.defaults());
/// assert_eq!(first.max_connections, Some(10));
/// assert_eq!(file.shutdown_grace.map(|s| s.0.as_secs()), Some(60));
/// assert!(KEYS.contains(&"shutdown_grace"));
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! config_file {
    (
        tables: $tables:ident,
        process { $($(#[$pm:meta])* $pkey:ident : $pty:ty),* $(,)? }
        table { $($(#[$tm:meta])* $key:ident : $ty:ty),* $(,)? }
    ) => {
        /// A table of the config file, or the top level's table keys.
        #[derive(Clone, Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct Table {
            $($(#[$tm])* pub(crate) $key: Option<$ty>,)*
        }

        /// The whole config file.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct FileConfig {
            $($(#[$pm])* pub(crate) $pkey: Option<$pty>,)*
            #[serde(default)]
            pub(crate) $tables: Vec<Table>,
            $($(#[$tm])* pub(crate) $key: Option<$ty>,)*
        }

        #[allow(dead_code)]
        impl FileConfig {
            /// The top level's table keys: defaults for every table.
            pub(crate) fn defaults(&self) -> Table {
                Table { $($key: self.$key.clone(),)* }
            }
        }

        #[allow(dead_code)]
        impl Table {
            /// This table's keys, and `base`'s where this one has none (a
            /// key is taken as a whole).
            pub(crate) fn over(&self, base: &Table) -> Table {
                Table { $($key: self.$key.clone().or_else(|| base.$key.clone()),)* }
            }
        }

        /// Every key the file may hold.
        pub(crate) const KEYS: &[&str] = &[
            $(stringify!($pkey),)* stringify!($tables), $(stringify!($key),)*
        ];
    };
}

#[cfg(test)]
mod tests {
    use super::*;

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

#[cfg(test)]
mod layering {
    use super::*;

    #[test]
    fn origins_name_flags_keys_and_tables() {
        let p = Path::new("sc.toml");
        assert_eq!(Origin::Flag.key("max_connections"), "--max-connections");
        assert_eq!(Origin::File(p).key("grace"), "config sc.toml, grace");
        assert_eq!(
            Origin::Table(p, "tunnel", 2).key("listen"),
            "config sc.toml ([[tunnel]] 2), listen"
        );
        let got = pick([
            (None, Origin::Flag),
            (Some(2), Origin::Table(p, "tunnel", 1)),
            (Some(3), Origin::File(p)),
        ]);
        assert_eq!(got, Some((2, Origin::Table(p, "tunnel", 1))));
        assert_eq!(pick::<u8, 1>([(None, Origin::Flag)]), None);
    }
}
