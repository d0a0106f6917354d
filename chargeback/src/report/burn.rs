//! Burn rate and forecast over a report's period: `tally_config::period`'s `forecast` and
//! `exhaustion` — the arithmetic the operator writes into TeamBudget status (`forecastUSD`,
//! `exhaustsAt`), so both agree — applied to the report's period instead of a budget window:
//! time elapsed counts whole hours (at least one), the projection is rounded down to cents.

use jiff::Timestamp;
use tally_config::money::Nanos;
use tally_config::period::{self, Window};

/// A period and the moment its rate is measured at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    window: Window,
    now: Timestamp,
}

impl Progress {
    pub fn at(from: Timestamp, to: Timestamp, now: Timestamp) -> Progress {
        let window = Window {
            start: from,
            end: to,
            key: String::new(),
        };
        Progress { window, now }
    }

    /// Spend at the period's end if the rate so far holds, nano-USD rounded down to cents (the
    /// spend itself, to the cent, once the period is over).
    pub fn forecast(&self, spent: i128) -> i128 {
        i128::from(period::forecast(nanos(spent), &self.window, self.now).0)
    }

    /// When `spent` reaches `limit` at the rate so far: only while money remains and that
    /// moment falls inside the period.
    pub fn exhaustion(&self, spent: i128, limit: i128) -> Option<Timestamp> {
        period::exhaustion(nanos(spent), nanos(limit), &self.window, self.now)
    }
}

/// A sum as the contract's amount (sums beyond ±9.2 billion USD saturate: no real period has them).
fn nanos(n: i128) -> Nanos {
    Nanos(i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX }))
}
