//! The tariff of one call: which of an entry's prices apply (service tier, long
//! context), what is billed per unit rather than per token, and the two
//! figures the data path needs — a call's cost and its worst case.
//!
//! Rules, in order:
//! - a service tier the entry prices (`priority`, `flex`, …) replaces the
//!   standard token prices, whatever the input size; an unknown tier is priced
//!   as standard (the ledger keeps the tier, so reconciliation sees it);
//! - otherwise, once a call's billed input (non-cached + cache reads + cache
//!   writes) exceeds the entry's long-context threshold, every token of it is
//!   priced at the long-context prices;
//! - unit prices add up: per successful request, per image, per second of
//!   video, per guardrail text unit.
//!
//! The worst case uses the same rules with the bounds in place of the usage, so
//! a call can never cost more than it reserved: the input bound is priced at the
//! input price, or at the dearest cache-write price when the request asks for a
//! cache write (it cannot write the cache otherwise), and at the long-context
//! prices when the bound passes the threshold.

use serde::{Deserialize, Serialize};

use crate::compiled::{PriceEntry, Prices};
use crate::money::Nanos;
use crate::pricing::{self, Usage};

/// What a call is billed for that is not tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Units {
    /// 1 for a call that succeeded (per-request prices), else 0.
    pub requests: u64,
    pub images: u64,
    /// Seconds of generated video.
    pub seconds: u64,
    /// Guardrail text units, summed over the policies that evaluated them.
    pub text_units: u64,
}

impl Units {
    pub fn is_zero(&self) -> bool {
        *self == Units::default()
    }
}

/// The token prices that apply to a call of `tier` with `billed_input` input tokens.
pub fn token_prices(entry: &PriceEntry, tier: Option<&str>, billed_input: u64) -> Prices {
    if let Some(t) = tier.and_then(|tier| entry.tiers.iter().find(|t| t.tier == tier)) {
        return t.prices;
    }
    match &entry.long_context {
        Some(lc) if billed_input > lc.above_input_tokens => lc.prices,
        _ => entry.prices,
    }
}

/// Exact cost of a call: its tokens at the prices that apply plus its units,
/// rounded half-up to the nano-USD once per token part.
pub fn cost(entry: &PriceEntry, tier: Option<&str>, usage: &Usage, units: &Units) -> Nanos {
    let billed_input = usage
        .input
        .saturating_add(usage.cache_read)
        .saturating_add(usage.cache_write());
    let tokens = pricing::cost(usage, &token_prices(entry, tier, billed_input));
    tokens.saturating_add(unit_cost(entry, units))
}

/// The per-unit part of a call's cost.
pub fn unit_cost(entry: &PriceEntry, units: &Units) -> Nanos {
    let u = &entry.units;
    let total: i128 = [
        (units.requests, u.request),
        (units.images, u.image),
        (units.seconds, u.second),
        (units.text_units, u.text_unit),
    ]
    .iter()
    .map(|(n, p)| i128::from(*n) * i128::from(p.0))
    .sum();
    Nanos(i64::try_from(total).unwrap_or(i64::MAX))
}

/// What bounds a call's cost before it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    /// At most this many input tokens, of every class together.
    pub input_tokens: u64,
    /// The request asks for a cache write (cache points, `cache_control`).
    pub cache_write: bool,
    pub output_tokens: u64,
    pub units: Units,
}

/// Upper bound on the cost of a call within `bounds`.
pub fn worst_case(entry: &PriceEntry, tier: Option<&str>, bounds: &Bounds) -> Nanos {
    let p = token_prices(entry, tier, bounds.input_tokens);
    let dearest_input = if bounds.cache_write {
        p.input.max(p.cache_write_5m).max(p.cache_write_1h)
    } else {
        // Without a cache write, input is billed as input or as (cheaper) cache reads.
        p.input.max(p.cache_read)
    };
    let usage = Usage {
        input: bounds.input_tokens,
        output: bounds.output_tokens,
        ..Usage::default()
    };
    let tokens = pricing::cost(
        &usage,
        &Prices {
            input: dearest_input,
            ..p
        },
    );
    tokens.saturating_add(unit_cost(entry, &bounds.units))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiled::{LongContext, TierPrices, UnitPrices};
    use crate::money::NanosPerMillion;

    fn prices(input: &str, output: &str, cache_write: &str) -> Prices {
        let usd = |s: &str| NanosPerMillion::parse_usd(s).unwrap();
        Prices {
            input: usd(input),
            output: usd(output),
            cache_read: usd("0.3"),
            cache_write_5m: usd(cache_write),
            cache_write_1h: usd(cache_write),
        }
    }

    /// claude-sonnet-4 as the default catalog prices it.
    fn sonnet4() -> PriceEntry {
        PriceEntry {
            pattern: "anthropic.claude-sonnet-4-20250514-v1:0".into(),
            prices: prices("3", "15", "3.75"),
            max_output_tokens: 64_000,
            long_context: Some(LongContext {
                above_input_tokens: 200_000,
                prices: prices("6", "22.5", "7.5"),
            }),
            tiers: vec![TierPrices {
                tier: "priority".into(),
                prices: prices("5.25", "26.25", "6.5625"),
            }],
            ..PriceEntry::default()
        }
    }

    #[test]
    fn long_context_prices_every_token_once_the_input_passes_the_threshold() {
        let e = sonnet4();
        let usage = |input| Usage {
            input,
            output: 1_000,
            ..Usage::default()
        };
        let none = Units::default();
        // 200,000 × 3 + 1,000 × 15 per 1M
        assert_eq!(cost(&e, None, &usage(200_000), &none), Nanos(615_000_000));
        // 200,001 × 6 + 1,000 × 22.5 per 1M
        assert_eq!(cost(&e, None, &usage(200_001), &none), Nanos(1_222_506_000));
        // cache reads count towards the threshold
        let cached = Usage {
            input: 100_000,
            cache_read: 100_001,
            ..Usage::default()
        };
        assert_eq!(cost(&e, None, &cached, &none), Nanos(600_000_000 + 30_000_300));
    }

    #[test]
    fn a_priced_tier_replaces_the_standard_prices_and_an_unknown_one_does_not() {
        let e = sonnet4();
        let u = Usage {
            input: 1_000_000,
            ..Usage::default()
        };
        assert_eq!(cost(&e, Some("priority"), &u, &Units::default()), Nanos(5_250_000_000));
        assert_eq!(cost(&e, Some("flex"), &u, &Units::default()), Nanos(6_000_000_000));
        assert_eq!(cost(&e, None, &u, &Units::default()), Nanos(6_000_000_000));
    }

    #[test]
    fn the_worst_case_prices_input_as_input_unless_a_cache_write_is_asked_for() {
        let e = sonnet4();
        let b = Bounds {
            input_tokens: 1_000,
            output_tokens: 100,
            ..Bounds::default()
        };
        // 1,000 × 3 + 100 × 15 per 1M
        assert_eq!(worst_case(&e, None, &b), Nanos(4_500_000));
        let writes = Bounds { cache_write: true, ..b };
        // 1,000 × 3.75 + 100 × 15
        assert_eq!(worst_case(&e, None, &writes), Nanos(5_250_000));
        // over the threshold: long-context prices for all of it
        let long = Bounds {
            input_tokens: 300_000,
            ..b
        };
        assert_eq!(worst_case(&e, None, &long), Nanos(1_800_000_000 + 2_250_000));
        // and the bound is never below the cost of any usage within it
        for input in [0, 1, 199_999, 200_000, 200_001, 300_000] {
            for (read, write) in [(0, 0), (input / 2, 0)] {
                let u = Usage {
                    input: input - read - write,
                    cache_read: read,
                    output: 100,
                    ..Usage::default()
                };
                assert!(
                    cost(&e, None, &u, &Units::default()) <= worst_case(&e, None, &long),
                    "{u:?}"
                );
            }
        }
    }

    #[test]
    fn units_add_their_prices() {
        let e = PriceEntry {
            pattern: "amazon.nova-reel-v1:1".into(),
            units: UnitPrices {
                second: Nanos::parse_usd("0.08").unwrap(),
                request: Nanos::parse_usd("0.01").unwrap(),
                ..UnitPrices::default()
            },
            ..PriceEntry::default()
        };
        let u = Units {
            requests: 1,
            seconds: 12,
            ..Units::default()
        };
        assert_eq!(cost(&e, None, &Usage::default(), &u), Nanos(970_000_000));
        let b = Bounds {
            units: u,
            ..Bounds::default()
        };
        assert_eq!(worst_case(&e, None, &b), Nanos(970_000_000));
    }
}
