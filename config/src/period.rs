//! Calendar budget periods in an IANA timezone.
//!
//! A period is the local calendar day, ISO week (Monday first) or month that
//! contains an instant. Counters are keyed by [`Window::key`], so a new period
//! starts at zero by itself: no reset job, nothing lost at the boundary. Start
//! and end are computed on the local calendar and then resolved to instants,
//! which keeps them right across DST changes (a local day may last 23 or 25 h).

use jiff::{Timestamp, ToSpan, Zoned, civil::Date, tz::TimeZone};
use serde::{Deserialize, Serialize};

use crate::money::Nanos;

/// How long a budget lasts before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
}

/// One concrete period: `[start, end)` and a key stable for its whole length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
    /// `2026-11-26` (daily), `2026-W48` (weekly, ISO week year), `2026-11` (monthly).
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown timezone {0:?} (expected an IANA name such as \"Europe/Berlin\" or \"UTC\")")]
pub struct UnknownTimezone(pub String);

/// Looks up an IANA timezone in the bundled tz database.
pub fn timezone(name: &str) -> Result<TimeZone, UnknownTimezone> {
    if name.is_empty() {
        return Err(UnknownTimezone(name.to_string()));
    }
    TimeZone::get(name).map_err(|_| UnknownTimezone(name.to_string()))
}

/// The period of kind `period` in `tz` that contains `at`.
pub fn window(at: Timestamp, period: Period, tz: &TimeZone) -> Window {
    let local = at.to_zoned(tz.clone());
    let date = local.date();
    let (first, next, key) = match period {
        Period::Daily => (date, date.tomorrow().expect("date in range"), date.to_string()),
        Period::Weekly => {
            let monday = date
                .checked_sub((date.weekday().to_monday_zero_offset() as i32).days())
                .expect("date in range");
            let iso = date.iso_week_date();
            let key = format!("{:04}-W{:02}", iso.year(), iso.week());
            (monday, monday.checked_add(7.days()).expect("date in range"), key)
        }
        Period::Monthly => {
            let first = date.first_of_month();
            let key = format!("{:04}-{:02}", date.year(), date.month());
            (first, first.checked_add(1.month()).expect("date in range"), key)
        }
    };
    Window {
        start: start_of(first, tz),
        end: start_of(next, tz),
        key,
    }
}

/// The first instant of a local date (midnight, or the end of a DST gap that swallowed it).
fn start_of(date: Date, tz: &TimeZone) -> Timestamp {
    let zoned: Zoned = date.to_zoned(tz.clone()).expect("date in range");
    zoned.start_of_day().expect("date in range").timestamp()
}

/// Projected spend at the period's end if the rate so far holds: committed × length ÷ elapsed,
/// rounded down to cents. Elapsed counts whole hours (at least one), so the figure moves hourly
/// rather than on every status pass and the first minutes do not explode. The operator's
/// `forecastUSD` and `tally report`'s forecast are both this.
pub fn forecast(committed: Nanos, window: &Window, now: Timestamp) -> Nanos {
    const CENT: i128 = 10_000_000;
    let (length, elapsed) = rate_window(window, now);
    let projected = i128::from(committed.0.max(0)) * length / elapsed;
    Nanos(i64::try_from(projected / CENT * CENT).unwrap_or(i64::MAX))
}

/// When committed spend reaches `limit` if the rate so far holds (the rate of [`forecast`]):
/// only while money remains and that moment falls before the period's end.
pub fn exhaustion(committed: Nanos, limit: Nanos, window: &Window, now: Timestamp) -> Option<Timestamp> {
    if committed.0 <= 0 || committed >= limit {
        return None;
    }
    let (length, elapsed) = rate_window(window, now);
    let after = i128::from(limit.0) * elapsed / i128::from(committed.0);
    let at = Timestamp::from_second(window.start.as_second() + i64::try_from(after).ok()?).ok()?;
    (after < length).then_some(at)
}

/// The period's length and the time elapsed of it, in seconds, elapsed counted in whole hours
/// (at least one).
fn rate_window(window: &Window, now: Timestamp) -> (i128, i128) {
    const HOUR: i128 = 3600;
    let seconds = |from: Timestamp, to: Timestamp| i128::from(to.as_second() - from.as_second());
    let length = seconds(window.start, window.end).max(1);
    (length, (seconds(window.start, now) / HOUR * HOUR).max(HOUR).min(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        timezone(name).unwrap()
    }

    #[test]
    fn daily_across_us_spring_forward_is_23_hours() {
        // 2026-03-08: America/New_York jumps from 02:00 EST to 03:00 EDT.
        let w = window(ts("2026-03-08T12:00:00Z"), Period::Daily, &tz("America/New_York"));
        assert_eq!(w.key, "2026-03-08");
        assert_eq!(w.start, ts("2026-03-08T05:00:00Z"));
        assert_eq!(w.end, ts("2026-03-09T04:00:00Z"));
        assert_eq!(w.end.duration_since(w.start).as_hours(), 23);
    }

    #[test]
    fn daily_across_eu_fall_back_is_25_hours() {
        // 2026-10-25: Europe/Berlin goes from 03:00 CEST back to 02:00 CET.
        let w = window(ts("2026-10-25T10:00:00Z"), Period::Daily, &tz("Europe/Berlin"));
        assert_eq!(w.start, ts("2026-10-24T22:00:00Z"));
        assert_eq!(w.end, ts("2026-10-25T23:00:00Z"));
        assert_eq!(w.end.duration_since(w.start).as_hours(), 25);
    }

    #[test]
    fn monthly_boundary_is_local_midnight() {
        // 23:30 UTC on Jan 31 is already February 1st in Tokyo.
        let w = window(ts("2026-01-31T23:30:00Z"), Period::Monthly, &tz("Asia/Tokyo"));
        assert_eq!(w.key, "2026-02");
        assert_eq!(w.start, ts("2026-01-31T15:00:00Z"));
        assert_eq!(w.end, ts("2026-02-28T15:00:00Z"));
        // ...and still January in Los Angeles.
        let w = window(ts("2026-02-01T07:59:59Z"), Period::Monthly, &tz("America/Los_Angeles"));
        assert_eq!(w.key, "2026-01");
        assert_eq!(w.end, ts("2026-02-01T08:00:00Z"));
    }

    #[test]
    fn monthly_spanning_dst_change_and_leap_february() {
        let w = window(ts("2028-02-29T12:00:00Z"), Period::Monthly, &tz("UTC"));
        assert_eq!(w.key, "2028-02");
        assert_eq!(w.end, ts("2028-03-01T00:00:00Z"));
        // March 2026 in New York contains the spring-forward change: 31 days minus an hour.
        let w = window(ts("2026-03-15T00:00:00Z"), Period::Monthly, &tz("America/New_York"));
        assert_eq!(w.start, ts("2026-03-01T05:00:00Z"));
        assert_eq!(w.end, ts("2026-04-01T04:00:00Z"));
    }

    #[test]
    fn daily_where_midnight_does_not_exist() {
        // America/Santiago springs forward at 24:00 on 2026-09-05: Sept 6 starts at 01:00.
        let w = window(ts("2026-09-06T12:00:00Z"), Period::Daily, &tz("America/Santiago"));
        assert_eq!(w.key, "2026-09-06");
        assert_eq!(w.start, ts("2026-09-06T04:00:00Z"));
    }

    #[test]
    fn weekly_uses_iso_weeks_starting_monday() {
        // Thursday 2026-01-01 belongs to ISO week 2026-W01, which began Monday 2025-12-29.
        let w = window(ts("2026-01-01T12:00:00Z"), Period::Weekly, &tz("UTC"));
        assert_eq!(w.key, "2026-W01");
        assert_eq!(w.start, ts("2025-12-29T00:00:00Z"));
        assert_eq!(w.end, ts("2026-01-05T00:00:00Z"));
        // Sunday 2027-01-03 is still in 2026-W53.
        let w = window(ts("2027-01-03T12:00:00Z"), Period::Weekly, &tz("UTC"));
        assert_eq!(w.key, "2026-W53");
    }

    #[test]
    fn rejects_unknown_timezones() {
        assert!(timezone("Mars/Olympus_Mons").is_err());
        assert!(timezone("").is_err());
        assert!(timezone("Europe/Berlin").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn windows_contain_the_instant_and_tile_time(
            secs in 0i64..4_102_444_800, // 1970..2100
            p in 0usize..3,
            z in 0usize..5,
        ) {
            let zones = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu"];
            let period = [Period::Daily, Period::Weekly, Period::Monthly][p];
            let tz = tz(zones[z]);
            let at = Timestamp::from_second(secs).unwrap();
            let w = window(at, period, &tz);
            proptest::prop_assert!(w.start <= at && at < w.end);
            // The next window starts exactly where this one ends and has another key.
            let next = window(w.end, period, &tz);
            proptest::prop_assert_eq!(next.start, w.end);
            proptest::prop_assert_ne!(&next.key, &w.key);
            // Every instant of the window maps to the same key.
            let last = window(w.end - jiff::SignedDuration::from_nanos(1), period, &tz);
            proptest::prop_assert_eq!(last.key, w.key);
        }
    }
}
