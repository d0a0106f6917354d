//! A billing period: a month, a day or a range of days in one time zone, as the half-open
//! instant range `[from, to)` the ledger is read over. Pure.
//!
//! Days are local days: a Berlin November starts at 2026-10-31T23:00Z and ends at
//! 2026-11-30T23:00Z, and a day on which the clocks change is 23 or 25 hours long. A day
//! whose midnight does not exist (a DST gap at 00:00, e.g. America/Santiago) starts at its
//! first instant, the way `jiff` resolves it.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// A billing period in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    /// The period as written (`2026-11`, `2026-11-05`, `2026-11-01..2026-11-15`).
    pub label: String,
    pub tz: TimeZone,
    /// The first instant of the first day.
    pub from: Timestamp,
    /// The first instant of the day after the last day (exclusive).
    pub to: Timestamp,
}

/// Why a `--period` or `--tz` was refused; names the text and the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid period {text:?}: {reason}")]
pub struct PeriodError {
    pub text: String,
    pub reason: String,
}

const FORMS: &str = "use YYYY-MM (a month), YYYY-MM-DD (a day) or YYYY-MM-DD..YYYY-MM-DD (days, end inclusive)";

impl Period {
    /// `2026-11` (a month), `2026-11-05` (a day), `2026-11-01..2026-11-15` (days, end inclusive),
    /// in `tz` (IANA name; default UTC: an empty `tz` is UTC).
    pub fn parse(text: &str, tz: &str) -> Result<Period, PeriodError> {
        let bad = |reason: String| PeriodError {
            text: text.to_string(),
            reason,
        };
        let zone = match tz.trim() {
            "" => TimeZone::UTC,
            name => TimeZone::get(name).map_err(|e| {
                bad(format!(
                    "unknown time zone {name:?} (an IANA name such as Europe/Berlin): {e}"
                ))
            })?,
        };
        let (first, last) = days_of(text.trim()).map_err(bad)?;
        let from = start_of(first, &zone).map_err(bad)?;
        let next = last.tomorrow().map_err(|e| bad(e.to_string()))?;
        let to = start_of(next, &zone).map_err(bad)?;
        Ok(Period {
            label: text.trim().to_string(),
            tz: zone,
            from,
            to,
        })
    }

    /// The local days it covers, in order.
    pub fn days(&self) -> Vec<Date> {
        let first = self.day_of(self.from);
        let last = self.day_of(self.to - jiff::SignedDuration::from_nanos(1));
        first
            .series(jiff::Span::new().days(1))
            .take_while(|d| *d <= last)
            .collect()
    }

    /// The local day `t` falls on.
    pub fn day_of(&self, t: Timestamp) -> Date {
        t.to_zoned(self.tz.clone()).date()
    }

    /// Whether `t` lies in the period.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }

    /// The time zone's name (`UTC` for UTC).
    pub fn tz_name(&self) -> &str {
        self.tz.iana_name().unwrap_or("UTC")
    }
}

/// The first and last day `text` names.
fn days_of(text: &str) -> Result<(Date, Date), String> {
    if let Some((a, b)) = text.split_once("..") {
        let (first, last) = (day(a.trim())?, day(b.trim())?);
        if last < first {
            return Err(format!("the range ends ({last}) before it starts ({first})"));
        }
        return Ok((first, last));
    }
    if text.len() == 7 {
        let first = day(&format!("{text}-01")).map_err(|_| format!("not a month: {FORMS}"))?;
        return Ok((first, first.last_of_month()));
    }
    let d = day(text)?;
    Ok((d, d))
}

fn day(text: &str) -> Result<Date, String> {
    // jiff also accepts datetimes here; a period is whole days only.
    if text.len() != 10 {
        return Err(format!("{text:?} is not a date: {FORMS}"));
    }
    text.parse::<Date>()
        .map_err(|e| format!("{text:?} is not a date ({e}): {FORMS}"))
}

fn start_of(d: Date, tz: &TimeZone) -> Result<Timestamp, String> {
    d.to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| format!("{d} has no start in {}: {e}", tz.iana_name().unwrap_or("the zone")))
}

#[cfg(test)]
mod tests;
