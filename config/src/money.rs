//! Exact money: integer nano-USD inside, decimal strings at the edges.
//!
//! Every amount in Tally is a [`Nanos`] (1 USD = 10^9 nano-USD). Prices are
//! [`NanosPerMillion`] (nano-USD per one million tokens) so that catalog prices
//! such as `0.00875` USD/1M stay exact. Nothing here uses floating point.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Nano-USD per USD.
pub const NANOS_PER_USD: u64 = 1_000_000_000;
const MAX_FRACTION_DIGITS: usize = 9;

/// An amount of money in nano-USD. Signed so that "remaining" can go negative
/// when a `Warn` budget is overspent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Nanos(pub i64);

/// A price in nano-USD per one million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NanosPerMillion(pub u64);

/// Why a decimal money string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not a decimal number like \"12.50\"")]
    Malformed(String),
    #[error("{0:?} has more than 9 decimal places (nano-USD is the smallest unit)")]
    TooPrecise(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses a non-negative decimal string (`"12"`, `"0.5"`, `"0.00875"`) into
/// units of 10^-9, exactly. No sign, exponent or thousands separators.
pub fn parse_decimal_nanos(s: &str) -> Result<u64, MoneyError> {
    let malformed = || MoneyError::Malformed(s.to_string());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    if s.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())) {
        return Err(malformed());
    }
    if frac.len() > MAX_FRACTION_DIGITS {
        return Err(MoneyError::TooPrecise(s.to_string()));
    }
    let too_large = || MoneyError::TooLarge(s.to_string());
    let int: u64 = int.parse().map_err(|_| too_large())?;
    let mut frac_nanos: u64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        frac_nanos += u64::from(b - b'0') * 10u64.pow((MAX_FRACTION_DIGITS - 1 - i) as u32);
    }
    int.checked_mul(NANOS_PER_USD)
        .and_then(|n| n.checked_add(frac_nanos))
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(too_large)
}

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// Parses a USD decimal string such as `"250.00"`.
    pub fn parse_usd(s: &str) -> Result<Nanos, MoneyError> {
        parse_decimal_nanos(s).map(|n| Nanos(n as i64))
    }

    pub fn saturating_add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Nanos {
    /// USD with at least two decimals and no trailing zeros beyond them:
    /// `12.50`, `0.000123`, `-3.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let int = abs / NANOS_PER_USD;
        let mut frac = format!("{:09}", abs % NANOS_PER_USD);
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        write!(f, "{sign}{int}.{frac}")
    }
}

impl NanosPerMillion {
    /// Parses a "USD per 1M tokens" decimal string such as `"0.00875"`.
    pub fn parse_usd(s: &str) -> Result<NanosPerMillion, MoneyError> {
        parse_decimal_nanos(s).map(NanosPerMillion)
    }
}

impl fmt::Display for NanosPerMillion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Nanos(self.0 as i64).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(Nanos::parse_usd("12.50"), Ok(Nanos(12_500_000_000)));
        assert_eq!(Nanos::parse_usd("0"), Ok(Nanos(0)));
        assert_eq!(Nanos::parse_usd("0.000000001"), Ok(Nanos(1)));
        assert_eq!(NanosPerMillion::parse_usd("0.00875"), Ok(NanosPerMillion(8_750_000)));
        assert_eq!(NanosPerMillion::parse_usd("18.75"), Ok(NanosPerMillion(18_750_000_000)));
    }

    #[test]
    fn rejects_what_is_not_a_plain_decimal() {
        for bad in ["", ".5", "5.", "-1", "+1", "1e3", "1,000", "1.2.3", " 1", "abc", "0x10"] {
            assert!(
                matches!(Nanos::parse_usd(bad), Err(MoneyError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Nanos::parse_usd("0.0000000001"),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            Nanos::parse_usd("99999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(Nanos::parse_usd("9300000000"), Err(MoneyError::TooLarge(_))));
    }

    #[test]
    fn displays_as_usd() {
        assert_eq!(Nanos(12_500_000_000).to_string(), "12.50");
        assert_eq!(Nanos(123_000).to_string(), "0.000123");
        assert_eq!(Nanos(1).to_string(), "0.000000001");
        assert_eq!(Nanos(-3_000_000_000).to_string(), "-3.00");
        assert_eq!(Nanos(0).to_string(), "0.00");
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(n in 0i64..i64::MAX) {
            proptest::prop_assert_eq!(Nanos::parse_usd(&Nanos(n).to_string()), Ok(Nanos(n)));
        }
    }
}
