//! Wall-clock instants as the database stores them (nanoseconds since the Unix epoch, UTC) and
//! as Podman prints them (Go's RFC 3339 with nanoseconds, trailing zeros trimmed).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    pub fn unix_nanos(self) -> i64 {
        self.0
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// How long before `now` this instant was; zero if it lies in the future.
    pub fn elapsed_until(self, now: Timestamp) -> Duration {
        Duration::from_nanos(u64::try_from(now.0.saturating_sub(self.0)).unwrap_or(0))
    }

    /// Go's `time.RFC3339Nano` in UTC: `2026-12-03T10:26:14.5Z`, what `podman inspect` prints.
    pub fn to_rfc3339_nanos(self) -> String {
        let (date, secs_of_day, nanos) = self.split();
        let mut out = format!(
            "{}T{:02}:{:02}:{:02}",
            date,
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60
        );
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }

    /// Go's default `time.Time` string, as Podman's `ps --format {{.CreatedAt}}` shows it:
    /// `2026-12-03 10:26:14.123456789 +0000 UTC`.
    pub fn to_go_string(self) -> String {
        let (date, secs_of_day, nanos) = self.split();
        let mut out = format!(
            "{} {:02}:{:02}:{:02}",
            date,
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60
        );
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out.push_str(" +0000 UTC");
        out
    }

    /// (the civil date as `YYYY-MM-DD`, seconds into that day, nanoseconds into that second).
    fn split(self) -> (String, i64, i64) {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (format!("{y:04}-{m:02}-{d:02}"), secs.rem_euclid(86_400), nanos)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_nanos()).unwrap_or(i64::MAX)),
            Err(before) => Self(-i64::try_from(before.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339_nanos())
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by shifting the year to start
/// in March so that the leap day falls at the end of it (the usual era arithmetic: eras of
/// 400 years, 146097 days each).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day)
}

/// A duration the way Docker's `units.HumanDuration` words it, for `ps`'s STATUS and CREATED
/// columns ("Less than a second", "5 seconds", "About a minute", "3 hours", "2 weeks").
pub fn human_duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    match () {
        _ if seconds < 1 => "Less than a second".to_owned(),
        _ if seconds == 1 => "1 second".to_owned(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".to_owned(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{days} days"),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", days / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", days / 30),
        _ => format!("{} years", days / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Podman prints instants as Go's RFC3339Nano: trailing zeros of the fraction dropped, no
    // fraction at all on a whole second.
    #[test]
    fn rfc3339_matches_go() {
        assert_eq!(Timestamp(0).to_rfc3339_nanos(), "1970-01-01T00:00:00Z");
        // 2026-12-03T10:26:14.5Z
        let t = Timestamp(1_796_293_574_500_000_000);
        assert_eq!(t.to_rfc3339_nanos(), "2026-12-03T10:26:14.5Z");
        assert_eq!(t.to_go_string(), "2026-12-03 10:26:14.5 +0000 UTC");
        // A leap day, and a date before the epoch.
        assert_eq!(
            Timestamp(951_782_400_000_000_001).to_rfc3339_nanos(),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(Timestamp(-1_000_000_000).to_rfc3339_nanos(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn human_durations_follow_docker() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(61 * 60)), "About an hour");
        assert_eq!(human_duration(s(47 * 3600)), "47 hours");
        assert_eq!(human_duration(s(3 * 86_400)), "3 days");
        assert_eq!(human_duration(s(20 * 86_400)), "2 weeks");
    }
}
