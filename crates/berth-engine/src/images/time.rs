//! The few time conversions image metadata needs, in whole seconds: RFC 3339 timestamps of
//! image configs and back, Docker's "2 hours ago" wording and sizes. The calendar arithmetic
//! is the state database's ([`crate::state::time`]).

use crate::state::time::{human_duration, Timestamp};

/// Seconds since the epoch of an RFC 3339 time (`2024-01-01T00:00:00Z`, fractions and
/// offsets allowed); None when it does not parse.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    Timestamp::parse_rfc3339(text).map(Timestamp::unix_seconds)
}

/// Formats seconds since the epoch as RFC 3339 in UTC.
pub fn format_rfc3339(secs: i64) -> String {
    Timestamp::from_unix_nanos(secs.saturating_mul(1_000_000_000)).to_rfc3339_nanos()
}

pub fn now() -> i64 {
    Timestamp::now().unix_seconds()
}

/// Docker's `units.HumanDuration` followed by " ago".
pub fn ago(secs: i64, now: i64) -> String {
    let elapsed = std::time::Duration::from_secs(u64::try_from(now - secs).unwrap_or(0));
    format!("{} ago", human_duration(elapsed))
}

/// Docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits.
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let text = format!("{value:.*}", 3usize.saturating_sub(value.trunc().to_string().len()));
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00Z"), Some(1_704_067_200));
        assert_eq!(parse_rfc3339("2024-01-01T01:00:00.123456789+01:00"), Some(1_704_067_200));
        assert_eq!(format_rfc3339(1_704_067_200), "2024-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn sizes_and_ages_read_like_podman() {
        assert_eq!(human_size(4_261_000), "4.26 MB");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_000_000), "1 MB");
        assert_eq!(human_size(123_456_789), "123 MB");
        assert_eq!(ago(0, 3 * 3600), "3 hours ago");
        assert_eq!(ago(0, 3 * 365 * 86400), "3 years ago");
    }
}
