//! Inputs the fuzz targets (`fuzz/`, docs/fuzzing.md) found in this crate's
//! pricing, kept as plain tests so `cargo test` shows them without nightly.

use tally_config::compiled::{LongContext, PriceEntry, Prices};
use tally_config::money::{Nanos, NanosPerMillion};
use tally_config::pricing::{self, Usage};
use tally_config::tariff::{self, Units};

const MAX: u64 = u64::MAX;

fn prices(per_million: u64) -> Prices {
    Prices {
        input: NanosPerMillion(per_million),
        output: NanosPerMillion(per_million),
        ..Prices::default()
    }
}

/// `exchange` target (fuzz/regressions/exchange/tariff-billed-input-overflow):
/// an InvokeModel answer whose `x-amzn-bedrock-input-token-count` and
/// `…-cache-read-input-token-count` headers add past `u64::MAX`. `tariff::cost`
/// added them unchecked to decide on long-context prices: a panic with overflow
/// checks, and in a release build a wrapped (small) billed input, so the call
/// is priced at the standard rather than the long-context prices.
#[test]
fn a_billed_input_past_u64_max_still_takes_the_long_context_prices() {
    let entry = PriceEntry {
        prices: prices(1),
        long_context: Some(LongContext {
            above_input_tokens: 200_000,
            prices: prices(2),
        }),
        ..PriceEntry::default()
    };
    let usage = Usage {
        input: 7_740_116_881_258_577_829,
        cache_read: 18_407_619_055_803_777_277,
        ..Usage::default()
    };
    let long = pricing::cost(&usage, &prices(2));
    assert_eq!(tariff::cost(&entry, None, &usage, &Units::default()), long);
}

/// `usage` target: `pricing::cost` sums five `u128` products, each up to
/// (2^64 − 1)², so two terms at the extremes overflow `u128` (a panic with
/// overflow checks, a wrapped tiny cost in release). Reachable only through a
/// catalog price near `u64::MAX` nano-USD per 1M tokens, which the config accepts.
#[test]
fn extreme_prices_and_counts_saturate_instead_of_wrapping() {
    let usage = Usage {
        input: MAX,
        output: MAX,
        ..Usage::default()
    };
    assert_eq!(pricing::cost(&usage, &prices(MAX)), Nanos(i64::MAX));
}
