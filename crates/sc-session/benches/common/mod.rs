//! Shared by the bench binaries: finding this run's criterion estimates and
//! reading them back, so each binary can print its ratio table from what it
//! has just measured.
//!
//! Criterion writes `<home>/<group>/<function>/<value>/new/estimates.json`
//! for every benchmark it runs, with `<home>` chosen as: `$CRITERION_HOME`,
//! else `$CARGO_TARGET_DIR/criterion`, else the target directory `cargo
//! metadata` names (only when run by cargo), else `./target`, joined with
//! `criterion`. This module follows the same order, finding the target
//! directory by walking up from the bench executable instead of calling
//! cargo, and tries `./target/criterion` after it. A file older than the start
//! of this run is from an earlier run and is reported as missing, never used.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One run of a bench binary.
pub(crate) struct Run {
    started: SystemTime,
    benchmarking: bool,
}

/// A benchmark's typical time per iteration, as criterion reports it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Estimate {
    /// Nanoseconds per iteration: the slope of the linear regression where
    /// criterion sampled linearly, else the mean.
    pub(crate) ns: f64,
}

/// Why an estimate is not available.
#[derive(Clone, Debug)]
pub(crate) enum Missing {
    /// No criterion output directory was found.
    NoHome,
    /// The benchmark did not run in this run (filtered out, or results not
    /// saved, e.g. `--baseline`).
    NotRun,
    /// The estimates file could not be read or parsed.
    Unreadable(String),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHome => f.write_str("no criterion directory found"),
            Self::NotRun => f.write_str("not measured in this run"),
            Self::Unreadable(why) => write!(f, "unreadable estimates: {why}"),
        }
    }
}

impl Run {
    /// Call first thing in `main`, before criterion runs anything.
    pub(crate) fn start() -> Self {
        // Allow for file systems with coarse timestamps; a result from an
        // earlier run is older than that by the length of a whole run.
        let started = SystemTime::now()
            .checked_sub(Duration::from_secs(2))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Self {
            started,
            benchmarking: benchmarking(),
        }
    }

    /// Whether criterion is measuring (`cargo bench`), as opposed to running
    /// each benchmark once (`cargo test --benches`, `--test`), listing or
    /// profiling; only then are there estimates to read.
    pub(crate) fn benchmarking(&self) -> bool {
        self.benchmarking
    }

    /// Where the estimates are looked for, for a table's heading.
    pub(crate) fn searched(&self) -> String {
        let homes = criterion_homes();
        if homes.is_empty() {
            return "no criterion directory found".to_owned();
        }
        homes
            .iter()
            .map(|h| h.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// The estimate this run wrote for the benchmark `id`
    /// (`group/function[/value]`).
    pub(crate) fn estimate(&self, id: &str) -> Result<Estimate, Missing> {
        let homes = criterion_homes();
        if homes.is_empty() {
            return Err(Missing::NoHome);
        }
        let fresh = homes
            .iter()
            .map(|home| home.join(id).join("new").join("estimates.json"))
            .find(|path| {
                std::fs::metadata(path)
                    .and_then(|meta| meta.modified())
                    .is_ok_and(|modified| modified >= self.started)
            });
        let Some(path) = fresh else {
            return Err(Missing::NotRun);
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| Missing::Unreadable(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Missing::Unreadable(e.to_string()))?;
        let ns = json["slope"]["point_estimate"]
            .as_f64()
            .or_else(|| json["mean"]["point_estimate"].as_f64())
            .ok_or_else(|| Missing::Unreadable("no slope or mean".to_owned()))?;
        Ok(Estimate { ns })
    }
}

/// Criterion's output directory, found the way criterion finds it: one
/// directory when it is named by the environment, else the candidates for
/// `cargo metadata`'s target directory and `./target`.
fn criterion_homes() -> Vec<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return vec![PathBuf::from(home)];
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return vec![PathBuf::from(target).join("criterion")];
    }
    let mut homes = Vec::new();
    // The executable is <target>/[<triple>/]<profile>/deps/<name>-<hash>:
    // the nearest ancestor holding a `criterion` directory is the target.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(home) = exe
            .ancestors()
            .skip(1)
            .map(|dir| dir.join("criterion"))
            .find(|candidate| candidate.is_dir())
        {
            homes.push(home);
        }
    }
    let local = Path::new("target").join("criterion");
    if local.is_dir() && !homes.iter().any(|h| same_dir(h, &local)) {
        homes.push(local);
    }
    homes
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Criterion's own rule: it measures only under `--bench` (which `cargo
/// bench` passes) without `--test`, `--list` or `--profile-time`.
fn benchmarking() -> bool {
    let mut bench = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bench" => bench = true,
            "--test" | "--list" => return false,
            a if a.starts_with("--profile-time") => return false,
            _ => {}
        }
    }
    bench
}
