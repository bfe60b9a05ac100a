//! Instants as the service sees them: milliseconds since the Unix epoch, read from a
//! [`Clock`] that the caller owns. Rules that depend on time take a [`Timestamp`] as a
//! parameter instead of reading the system clock, so every one of them is testable.

use serde::{Serialize, Serializer};

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub const fn from_secs(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(1000))
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds (rounded down), as JWT claims count them.
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub const fn plus_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    pub const fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// ISO 8601 in UTC to the second, the way the API writes times:
    /// `2026-11-29T17:02:03Z`.
    pub fn iso8601(self) -> String {
        let secs = self.secs();
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            of_day / 3600,
            of_day % 3600 / 60,
            of_day % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.iso8601())
    }
}

/// Year, month, day of the proleptic Gregorian calendar for a count of days since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Where "now" comes from. The server reads the system clock through one of these;
/// tests may move time forward.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_iso8601_utc_to_the_second() {
        assert_eq!(Timestamp::from_millis(0).iso8601(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::from_millis(1_795_971_723_999).iso8601(),
            "2026-11-29T17:02:03Z"
        );
        // a leap day, and before the epoch
        assert_eq!(
            Timestamp::from_secs(951_782_400).iso8601(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(Timestamp::from_secs(-1).iso8601(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn arithmetic_is_in_milliseconds() {
        let t = Timestamp::from_millis(1_500);
        assert_eq!(t.secs(), 1);
        assert_eq!(t.plus_secs(2).millis(), 3_500);
        assert_eq!(Timestamp::from_millis(-1).secs(), -1);
        assert_eq!(
            serde_json::to_string(&Timestamp::from_secs(0)).ok(),
            Some("\"1970-01-01T00:00:00Z\"".to_owned())
        );
    }
}
