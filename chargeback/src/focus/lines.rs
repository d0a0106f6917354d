//! One ledger call split into FOCUS price classes (the five token classes and the four units),
//! each with the catalog's list price and its share of what the call was charged. Pure.
//!
//! The ledger keeps one charge per call, rounded once to the nano-USD; FOCUS wants a row per
//! price class. The charge is divided among the call's classes in proportion to their list
//! cost (tokens × catalog price), by largest remainder at the nano-USD, so the parts always add
//! up to the charge exactly — whatever the catalog says today. A class with nothing in it has no
//! line; a call with nothing billable at all (refused, failed) keeps one empty input line, so
//! it is still counted.

use tally_config::compiled::PriceEntry;
use tally_config::pricing::Usage;
use tally_config::tariff;

use crate::ledger::Row;

/// Refused before Bedrock (a budget or an allowlist).
pub fn refused(row: &Row<'_>) -> bool {
    matches!(row.outcome, "blocked" | "denied")
}

/// What a FOCUS row is priced by: a token class or a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Input,
    Output,
    CacheRead,
    CacheWrite5m,
    CacheWrite1h,
    Requests,
    Images,
    VideoSeconds,
    GuardrailTextUnits,
}

/// 10^-15 USD per nano-USD-per-unit: a unit price in nano-USD at the 10^-15 scale.
const NANO_TO_FEMTO: i128 = 1_000_000;
/// Tokens per pricing unit: catalogs (and AWS's price pages) price tokens per million.
pub const TOKENS_PER_PRICING_UNIT: u64 = 1_000_000;

impl Class {
    pub const ALL: [Class; 9] = [
        Class::Input,
        Class::Output,
        Class::CacheRead,
        Class::CacheWrite5m,
        Class::CacheWrite1h,
        Class::Requests,
        Class::Images,
        Class::VideoSeconds,
        Class::GuardrailTextUnits,
    ];

    /// The stable name in SKU ids and `x_TokenClass`.
    pub fn slug(self) -> &'static str {
        match self {
            Class::Input => "input-tokens",
            Class::Output => "output-tokens",
            Class::CacheRead => "cache-read-tokens",
            Class::CacheWrite5m => "cache-write-5m-tokens",
            Class::CacheWrite1h => "cache-write-1h-tokens",
            Class::Requests => "requests",
            Class::Images => "images",
            Class::VideoSeconds => "video-seconds",
            Class::GuardrailTextUnits => "guardrail-text-units",
        }
    }

    /// A person's name for it (`SkuMeter`, descriptions).
    pub fn meter(self) -> &'static str {
        match self {
            Class::Input => "Input Tokens",
            Class::Output => "Output Tokens",
            Class::CacheRead => "Cache Read Tokens",
            Class::CacheWrite5m => "Cache Write Tokens (5 minutes)",
            Class::CacheWrite1h => "Cache Write Tokens (1 hour)",
            Class::Requests => "Requests",
            Class::Images => "Images",
            Class::VideoSeconds => "Video Seconds",
            Class::GuardrailTextUnits => "Guardrail Text Units",
        }
    }

    pub fn is_tokens(self) -> bool {
        matches!(
            self,
            Class::Input | Class::Output | Class::CacheRead | Class::CacheWrite5m | Class::CacheWrite1h
        )
    }

    /// `ConsumedUnit` (FOCUS UnitFormat: plural units).
    pub fn consumed_unit(self) -> &'static str {
        match self {
            c if c.is_tokens() => "Tokens",
            Class::Requests => "Requests",
            Class::Images => "Images",
            Class::VideoSeconds => "Seconds",
            _ => "Text Units",
        }
    }

    /// `PricingUnit`: tokens are priced per million ("1000000 Tokens"), units one by one.
    pub fn pricing_unit(self) -> &'static str {
        if self.is_tokens() {
            "1000000 Tokens"
        } else {
            self.consumed_unit()
        }
    }

    /// Consumed units per pricing unit.
    pub fn per_pricing_unit(self) -> u64 {
        if self.is_tokens() { TOKENS_PER_PRICING_UNIT } else { 1 }
    }
}

/// One price class of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub class: Class,
    /// Tokens or units consumed.
    pub quantity: u64,
    /// The catalog price per pricing unit, at 10^-15 USD (0 when no catalog prices the model).
    pub unit_price: i128,
    /// Priced at the entry's long-context prices.
    pub long_context: bool,
    /// quantity × list price, at 10^-15 USD.
    pub list: i128,
    /// This line's part of the call's charge, nano-USD.
    pub billed_nanos: i64,
}

/// The call's lines into `out` (cleared first): one per class it used, its charge split exactly.
/// `entry` is the catalog entry pricing the model, `None` when none does.
pub fn split(call: &Row<'_>, entry: Option<&PriceEntry>, out: &mut Vec<Line>) {
    out.clear();
    let entry = entry.filter(|_| !call.unpriced);
    let u = &Usage {
        input: call.input_tokens,
        output: call.output_tokens,
        cache_read: call.cache_read_tokens,
        cache_write_5m: call.cache_write_5m_tokens,
        cache_write_1h: call.cache_write_1h_tokens,
    };
    let billed_input = u.input.saturating_add(u.cache_read).saturating_add(u.cache_write());
    let (prices, long_context) = match entry {
        Some(e) => {
            let tiered = call.service_tier.is_some_and(|t| e.tiers.iter().any(|x| x.tier == t));
            let long = !tiered && e.long_context.is_some_and(|lc| billed_input > lc.above_input_tokens);
            (Some(tariff::token_prices(e, call.service_tier, billed_input)), long)
        }
        None => (None, false),
    };
    let token = |n: Option<u64>| i128::from(n.unwrap_or(0)) * NANO_TO_FEMTO;
    let unit = |n: Option<i64>| i128::from(n.unwrap_or(0)) * NANO_TO_FEMTO;
    let units = entry.map(|e| e.units);
    let classes = [
        (Class::Input, u.input, token(prices.map(|p| p.input.0))),
        (Class::Output, u.output, token(prices.map(|p| p.output.0))),
        (Class::CacheRead, u.cache_read, token(prices.map(|p| p.cache_read.0))),
        (
            Class::CacheWrite5m,
            u.cache_write_5m,
            token(prices.map(|p| p.cache_write_5m.0)),
        ),
        (
            Class::CacheWrite1h,
            u.cache_write_1h,
            token(prices.map(|p| p.cache_write_1h.0)),
        ),
        (Class::Requests, call.units.requests, unit(units.map(|p| p.request.0))),
        (Class::Images, call.units.images, unit(units.map(|p| p.image.0))),
        (Class::VideoSeconds, call.units.seconds, unit(units.map(|p| p.second.0))),
        (
            Class::GuardrailTextUnits,
            call.units.text_units,
            unit(units.map(|p| p.text_unit.0)),
        ),
    ];
    for (class, quantity, unit_price) in classes {
        if quantity > 0 {
            let list = unit_price * i128::from(quantity) / i128::from(class.per_pricing_unit());
            out.push(Line {
                class,
                quantity,
                unit_price,
                long_context,
                list,
                billed_nanos: 0,
            });
        }
    }
    if out.is_empty() {
        let (_, _, unit_price) = classes[0];
        out.push(Line {
            class: Class::Input,
            quantity: 0,
            unit_price,
            long_context,
            list: 0,
            billed_nanos: 0,
        });
    }
    allocate(call.cost_nanos, out);
}

/// Divides `total` nano-USD among `lines` by weight (list cost, else quantity, else all to the
/// first), largest remainder first, ties to the earlier line: the parts sum to `total` exactly.
fn allocate(total: i64, lines: &mut [Line]) {
    let by_list: i128 = lines.iter().map(|l| l.list).sum();
    let by_quantity: i128 = lines.iter().map(|l| i128::from(l.quantity)).sum();
    let weight = |l: &Line| if by_list > 0 { l.list } else { i128::from(l.quantity) };
    let sum = if by_list > 0 { by_list } else { by_quantity };
    if sum <= 0 {
        lines[0].billed_nanos = total;
        return;
    }
    let magnitude = i128::from(total).abs();
    let mut remainders = Vec::with_capacity(lines.len());
    let mut given: i128 = 0;
    for (i, line) in lines.iter_mut().enumerate() {
        let exact = magnitude * weight(line);
        let part = exact / sum;
        given += part;
        line.billed_nanos = part as i64;
        remainders.push((exact % sum, i));
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.into_iter().take((magnitude - given) as usize) {
        lines[i].billed_nanos += 1;
    }
    if total < 0 {
        lines.iter_mut().for_each(|l| l.billed_nanos = -l.billed_nanos);
    }
}
