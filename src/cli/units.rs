//! Durations and sizes, the same on every command line and in every config
//! file: a duration is `30` (seconds), `0.5`, `30s`, `250ms`, `5m` or `1h`;
//! a size is `65536` (bytes), `64KiB`, `1MiB` or `1GiB` (also `64K`, `64KB`).

use core::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer};

/// The longest duration taken (about 31 years): beyond, a typo.
const MAX_SECS: f64 = 1e9;

/// A duration flag or config string: a non-negative number of seconds, or a
/// number with a unit (`ms`, `s`, `m`, `h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad =
        || format!("'{s}' is not a duration (use seconds, or ms, s, m, h: 30, 0.5, 250ms, 5m)");
    let value: f64 = number.parse().map_err(|_| bad())?;
    let factor = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    seconds(value * factor).map_err(|_| format!("'{s}' is out of range (0 to 1000000000 seconds)"))
}

/// A number of seconds as a duration: non-negative, finite, at most 10⁹.
fn seconds(v: f64) -> Result<Duration, String> {
    if !v.is_finite() || !(0.0..=MAX_SECS).contains(&v) {
        return Err(format!(
            "{v} is not a number of seconds from 0 to 1000000000"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A size flag or config string: a number of bytes, or a number with a unit
/// (`KiB`, `MiB`, `GiB`; also `K`, `KB`, `M`, `MB`, `G`, `GB`, all powers
/// of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits.parse().map_err(|_| {
        format!("'{s}' is not a size (use bytes, or KiB, MiB, GiB: 65536, 64KiB, 1MiB)")
    })?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => return Err(format!("'{s}': unknown unit (use KiB, MiB or GiB)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// A duration in a config file: a number of seconds, or a string with a
/// unit (`"250ms"`, `"5m"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds, or a string such as \"250ms\", \"30s\" or \"5m\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                seconds(v as f64).map(Seconds).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                seconds(v as f64).map(Seconds).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                seconds(v).map(Seconds).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                parse_duration(v).map(Seconds).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte count in a config file: an integer, or a string with a unit
/// (`"64KiB"`, `"1MiB"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub usize);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes, or a string such as \"64KiB\" or \"1MiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                usize::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size must be a positive number of bytes"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                usize::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("the size is too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Calendar dates of Unix days (proleptic Gregorian, UTC), for `sc-ca`'s
/// times and the man pages' date.
/// (year, month, day) of the day `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days from 1970-01-01 to the given date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s| parse_duration(s).expect(s);
        assert_eq!(ok("30"), Duration::from_secs(30));
        assert_eq!(ok("0.5"), Duration::from_millis(500));
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok(" 250ms "), Duration::from_millis(250));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("0"), Duration::ZERO);
        for bad in [
            "",
            "-1",
            "soon",
            "5 minutes",
            "1.2.3",
            "1e3",
            "5d",
            "2000000000",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // What sc-net prints is read back.
        for d in [1500, 250, 4, 30_000] {
            let d = Duration::from_millis(d);
            let printed = sc_net::Secs(d).to_string();
            assert_eq!(parse_duration(&printed), Ok(d), "{printed}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size(" 64k "), Ok(64 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999999999999M").is_err());
    }

    #[test]
    fn config_values() {
        #[derive(Deserialize)]
        struct T {
            a: Seconds,
            b: Seconds,
            c: Size,
            d: Size,
        }
        let t: T =
            toml::from_str("a = 1.5\nb = \"5m\"\nc = 1024\nd = \"64KiB\"\n").expect("parses");
        assert_eq!(t.a, Seconds(Duration::from_millis(1500)));
        assert_eq!(t.b, Seconds(Duration::from_secs(300)));
        assert_eq!((t.c, t.d), (Size(1024), Size(64 << 10)));
        assert!(toml::from_str::<T>("a = -1\nb = 1\nc = 1\nd = 1\n").is_err());
    }
}
