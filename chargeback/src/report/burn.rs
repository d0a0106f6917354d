//! Burn rate and forecast over a period: the spend so far extrapolated at the same rate to
//! the period's end, and the moment a limit is reached at that rate. Pure integer arithmetic,
//! the operator's rule for `status.forecastUSD` / `exhaustsAt`: elapsed time counts whole
//! hours (at least one), the projection is rounded down to cents.

use jiff::Timestamp;

const HOUR: i128 = 3600;
const CENT: i128 = 10_000_000;

/// How far a period has run at `now`, in seconds: its length and the elapsed part, counted
/// in whole hours (at least one, at most the length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub from: Timestamp,
    pub length: i128,
    pub elapsed: i128,
}

impl Progress {
    pub fn at(from: Timestamp, to: Timestamp, now: Timestamp) -> Progress {
        let seconds = |a: Timestamp, b: Timestamp| i128::from(b.as_second() - a.as_second());
        let length = seconds(from, to).max(1);
        let elapsed = (seconds(from, now) / HOUR * HOUR).max(HOUR).min(length);
        Progress { from, length, elapsed }
    }

    /// Whether the whole period lies in the past (the forecast is then the actual spend).
    pub fn complete(&self) -> bool {
        self.elapsed >= self.length
    }

    /// Spend at the period's end if the rate so far holds, nano-USD rounded down to cents.
    pub fn forecast(&self, spent: i128) -> i128 {
        if self.complete() {
            return spent;
        }
        spent.max(0) * self.length / self.elapsed / CENT * CENT
    }

    /// When `spent` reaches `limit` at the rate so far: only while money remains and that
    /// moment falls inside the period.
    pub fn exhaustion(&self, spent: i128, limit: i128) -> Option<Timestamp> {
        if spent <= 0 || spent >= limit || self.complete() {
            return None;
        }
        let after = limit * self.elapsed / spent;
        let at = self.from.as_second().checked_add(i64::try_from(after).ok()?)?;
        (after < self.length).then(|| Timestamp::from_second(at).ok()).flatten()
    }
}
