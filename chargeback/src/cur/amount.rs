//! Exact decimals from a bill: costs to nano-USD and usage amounts to whole tokens, with no
//! float arithmetic. CUR CSV writes decimals as text, sometimes in exponent form (`1.5E-7`),
//! with more than nine places and with a sign (credits); Parquet exports carry DOUBLE costs,
//! which the reader turns into their shortest round-trip decimal text first (see
//! [`double_text`]) so both formats go through the same rounding here.

/// Why a decimal from the bill was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a decimal number")]
pub struct NotADecimal {
    pub text: String,
}

/// `text × 10^scale`, rounded half away from zero to an integer: a cost at scale 9 is nano-USD,
/// an amount of millions of tokens at scale 6 is tokens. Accepts `-12.5`, `+3`, `.5`, `1e-7`,
/// `1.5E+3`; refuses anything else and values beyond ±10^30.
pub fn scaled(text: &str, scale: i32) -> Result<i128, NotADecimal> {
    let refuse = || NotADecimal { text: text.to_string() };
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| refuse())?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac) {
        return Err(refuse());
    }
    // value = digits × 10^(shift), digits = int ++ frac without leading zeros.
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let shift = exponent
        .checked_add(scale)
        .and_then(|s| s.checked_sub(i32::try_from(frac.len()).ok()?))
        .ok_or_else(refuse)?;
    let magnitude = shift_rounded(digits, shift).ok_or_else(refuse)?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// `digits × 10^shift` rounded half up, if it stays below 10^30.
fn shift_rounded(digits: &str, shift: i32) -> Option<i128> {
    const LIMIT: i128 = 1_000_000_000_000_000_000_000_000_000_000;
    if digits.is_empty() {
        return Some(0);
    }
    let (kept, dropped) = if shift >= 0 {
        (digits, "")
    } else {
        let cut = digits.len().saturating_sub(shift.unsigned_abs() as usize);
        digits.split_at(cut)
    };
    let mut value: i128 = 0;
    for b in kept.bytes() {
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        if value >= LIMIT {
            return None;
        }
    }
    if shift > 0 {
        for _ in 0..shift {
            value = value.checked_mul(10).filter(|v| *v < LIMIT)?;
        }
    }
    // Dropped digits shorter than the shift are preceded by zeros: below one half.
    let half_or_more = dropped.len() == shift.unsigned_abs() as usize
        && dropped.as_bytes().first().is_some_and(|b| *b >= b'5')
        && shift < 0;
    Some(value + i128::from(half_or_more))
}

/// The shortest decimal text that reads back as `value` (Rust's `Display` for `f64`, which
/// never uses an exponent). A DOUBLE cost of 0.1 is the text "0.1", not 0.1000000000000000055…:
/// what the bill's writer meant, within the double's precision.
pub fn double_text(value: f64) -> String {
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_round_half_away_from_zero_to_the_nano() {
        assert_eq!(scaled("12.5", 9), Ok(12_500_000_000));
        assert_eq!(scaled("0.0000000015", 9), Ok(2));
        assert_eq!(scaled("0.0000000014999", 9), Ok(1));
        assert_eq!(scaled("-0.0000000015", 9), Ok(-2));
        assert_eq!(scaled("1.5E-7", 9), Ok(150));
        assert_eq!(scaled("1e3", 9), Ok(1_000_000_000_000));
        assert_eq!(scaled(".5", 0), Ok(1));
        assert_eq!(scaled("0.49", 0), Ok(0));
        assert_eq!(scaled("0.000004", 0), Ok(0));
        assert_eq!(scaled(" +3 ", 0), Ok(3));
        assert_eq!(scaled("0", 9), Ok(0));
        assert_eq!(scaled("000.000", 9), Ok(0));
    }

    #[test]
    fn millions_of_tokens_become_tokens() {
        assert_eq!(scaled("0.123456", 6), Ok(123_456));
        assert_eq!(scaled("1.2345675", 6), Ok(1_234_568));
        assert_eq!(scaled("12", 3), Ok(12_000));
    }

    #[test]
    fn malformed_and_huge_values_are_refused() {
        for bad in [
            "",
            "-",
            ".",
            "1.2.3",
            "1,5",
            "1e",
            "abc",
            "NaN",
            "inf",
            "1e40",
            "1e-99999999999",
        ] {
            assert!(scaled(bad, 9).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn doubles_read_as_their_shortest_decimal() {
        assert_eq!(double_text(0.1), "0.1");
        assert_eq!(double_text(1.5e-7), "0.00000015");
        assert_eq!(scaled(&double_text(0.1 + 0.2), 9), Ok(300_000_000));
        assert_eq!(scaled(&double_text(-2.0), 9), Ok(-2_000_000_000));
    }
}
