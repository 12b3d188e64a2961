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

impl Timestamp {
    /// Parses RFC 3339 with an optional fraction and a `Z` or `±HH:MM` offset, as Podman's
    /// log files and `--since` values have them.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() < 20
            || bytes[4] != b'-'
            || bytes[7] != b'-'
            || !matches!(bytes[10], b'T' | b't' | b' ')
        {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = text.get(range)?;
            part.bytes().all(|b| b.is_ascii_digit()).then(|| part.parse().ok())?
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if bytes[13] != b':'
            || bytes[16] != b':'
            || !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
        {
            return None;
        }
        let mut rest = &text[19..];
        let mut nanos = 0i64;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let kept = &fraction[..digits.min(9)];
            nanos = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
            rest = &fraction[digits..];
        }
        let offset_seconds = match rest {
            "Z" | "z" => 0,
            _ if rest.len() == 6
                && matches!(rest.as_bytes()[0], b'+' | b'-')
                && rest.as_bytes()[3] == b':' =>
            {
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                sign * (rest[1..3].parse::<i64>().ok()? * 3600
                    + rest[4..6].parse::<i64>().ok()? * 60)
            }
            _ => return None,
        };
        let days = days_from_civil(year, month as u32, day as u32);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
        Some(Self(secs * 1_000_000_000 + nanos))
    }

    /// [`Timestamp::to_log_time`] without the formatting machinery or an allocation: the
    /// monitor stamps every chunk of output with it, and the code it runs while the container
    /// runs is code its resident set holds.
    pub fn log_time(self) -> LogTime {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000) as u64;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let of_day = secs.rem_euclid(86_400) as u64;
        // An i64 of nanoseconds spans the years 1677 to 2262: always four digits.
        let mut bytes = *b"0000-00-00T00:00:00.000000000+00:00";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for i in (at..at + width).rev() {
                bytes[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year as u64);
        put(5, 2, u64::from(month));
        put(8, 2, u64::from(day));
        put(11, 2, of_day / 3600);
        put(14, 2, of_day / 60 % 60);
        put(17, 2, of_day % 60);
        put(20, 9, nanos);
        LogTime { bytes }
    }

    /// conmon's k8s-file timestamp: RFC 3339 with all nine fraction digits and `+00:00`.
    pub fn to_log_time(self) -> String {
        let (date, secs_of_day, nanos) = self.split();
        format!(
            "{}T{:02}:{:02}:{:02}.{:09}+00:00",
            date,
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60,
            nanos
        )
    }
}

/// A k8s-file timestamp on the stack ([`Timestamp::log_time`]).
#[derive(Debug, Clone, Copy)]
pub struct LogTime {
    bytes: [u8; 35],
}

impl LogTime {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
    // Docker rounds hours to the nearest one, and counts days from those rounded hours.
    let hours = (seconds + 1800) / 3600;
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

    // The monitor's allocation-free stamp is the k8s-file one, byte for byte.
    #[test]
    fn log_time_matches_to_log_time() {
        for nanos in [
            0,
            1_796_293_574_500_000_000,
            951_782_400_000_000_001,
            -1_000_000_000,
            i64::MIN,
            i64::MAX,
        ] {
            let t = Timestamp(nanos);
            assert_eq!(t.log_time().as_bytes(), t.to_log_time().as_bytes(), "{nanos}");
        }
        assert_eq!(
            std::str::from_utf8(Timestamp(1_796_293_574_500_000_000).log_time().as_bytes()),
            Ok("2026-12-03T10:26:14.500000000+00:00")
        );
    }

    #[test]
    fn rfc3339_parses_back() {
        for t in [
            0,
            1_796_293_574_500_000_000,
            951_782_400_000_000_001,
            -1_000_000_000,
            1_796_293_574_123_456_789,
        ] {
            let t = Timestamp(t);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339_nanos()), Some(t));
            assert_eq!(Timestamp::parse_rfc3339(&t.to_log_time()), Some(t));
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2026-12-03T12:26:14+02:00"),
            Timestamp::parse_rfc3339("2026-12-03T10:26:14Z")
        );
        assert_eq!(
            Timestamp(1_796_293_574_000_000_001).to_log_time(),
            "2026-12-03T10:26:14.000000001+00:00"
        );
        for bad in [
            "",
            "2026-12-03",
            "2026-13-03T10:26:14Z",
            "2026-12-03T10:26:14",
            "2026-12-03T10:26:14.Z",
            "2026-12-03T10:26:14+0200",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad:?} parsed");
        }
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
