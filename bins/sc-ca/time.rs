//! Dates for people: UTC calendar dates from Unix seconds and back
//! (Howard Hinnant's civil-from-days), for the index file and the output.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sc_pki::UnixTime;
use sovereign_chain::cli::units::{civil_from_days, days_from_civil};

pub(crate) const DAY: u64 = 86_400;

/// For tests only: a fixed "now" in Unix seconds, as faketime would give.
pub(crate) const TEST_NOW_ENV: &str = "SC_CA_TEST_NOW";

/// The current time (or `SC_CA_TEST_NOW`, for tests of expiry).
pub(crate) fn now() -> UnixTime {
    if let Some(secs) = std::env::var(TEST_NOW_ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        return unix(secs);
    }
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    UnixTime::since_unix_epoch(since)
}

pub(crate) fn unix(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// `2026-11-26T13:50:00Z`.
pub(crate) fn rfc3339(t: UnixTime) -> String {
    let secs = t.as_secs();
    let (y, m, d) = civil_from_days((secs / DAY) as i64);
    let rem = secs % DAY;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-11-26`.
pub(crate) fn date(t: UnixTime) -> String {
    rfc3339(t)[..10].to_owned()
}

/// `2026-11-26 13:50 UTC`.
pub(crate) fn minute(t: UnixTime) -> String {
    let s = rfc3339(t);
    format!("{} {} UTC", &s[..10], &s[11..16])
}

/// Parses what [`rfc3339`] writes.
pub(crate) fn parse_rfc3339(s: &str) -> Option<UnixTime> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), m, d);
    let secs = u64::try_from(days).ok()? * DAY + u64::from(hh * 3600 + mm * 60 + ss);
    Some(unix(secs))
}

/// "expires in 365 days", "expired 3 days ago", "expires today".
pub(crate) fn expiry(not_after: UnixTime, now: UnixTime) -> String {
    let (a, n) = (not_after.as_secs() as i64, now.as_secs() as i64);
    let days = ((a - n) as f64 / DAY as f64).round() as i64;
    match days {
        d if a < n => format!(
            "expired {} day{} ago",
            (-d).max(0),
            if -d == 1 { "" } else { "s" }
        ),
        0 => "expires today".into(),
        1 => "expires in 1 day".into(),
        d => format!("expires in {d} days"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for secs in [
            0u64,
            951_782_400,
            1_800_000_000,
            4_102_444_799,
            1_709_164_800,
        ] {
            let s = rfc3339(unix(secs));
            assert_eq!(parse_rfc3339(&s).map(|t| t.as_secs()), Some(secs), "{s}");
        }
        assert_eq!(rfc3339(unix(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(unix(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(expiry(unix(100 * DAY), unix(0)), "expires in 100 days");
        assert_eq!(expiry(unix(0), unix(3 * DAY)), "expired 3 days ago");
    }
}
