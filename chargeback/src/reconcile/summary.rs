//! The compared cells summed up: totals, the differences grouped by cause, price drift with
//! the implied unit price and the day it starts, and the verdict against the tolerance.

use std::collections::BTreeMap;

use jiff::civil::Date;
use tally_config::billing::TokenClass;
use tally_config::money::{Nanos, NanosPerMillion};

use super::compare::{Cause, Cell, Tolerance};
use super::price::implied_price;
use super::usage::class_index;

/// Bill and ledger over the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub bill_tokens: u64,
    pub ledger_tokens: u64,
    /// Σ min(bill, ledger) per cell: the tokens both agree on.
    pub matched_tokens: u64,
    /// The bill's token usage cost (unblended).
    pub bill_cost: Nanos,
    /// The ledger's tokens at the catalog's prices.
    pub ledger_cost: Nanos,
    /// The dollar difference whose token difference has an explaining cause.
    pub explained: Nanos,
    /// The price part of drifting cells.
    pub drift: Nanos,
    /// The price part within the tolerance (rounding, small price differences).
    pub rounding: Nanos,
    /// |token difference| × price over cells without an explaining cause.
    pub unexplained: Nanos,
}

/// Differences of one cause in one region, model and tier, over the days it occurs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub cause: Cause,
    pub region: String,
    pub model: String,
    pub tier: String,
    pub first_day: Date,
    pub last_day: Date,
    pub days: usize,
    /// Bill minus ledger, tokens per class ([`TokenClass::ALL`] order).
    pub tokens: [i128; 4],
    /// The token part of the dollar difference.
    pub dollars: Nanos,
}

/// A unit price on the bill that differs from the catalog's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub region: String,
    pub model: String,
    pub class: TokenClass,
    pub tier: String,
    pub catalog_price: NanosPerMillion,
    /// What the bill charged per million tokens on the drifting days.
    pub billed_price: Option<NanosPerMillion>,
    pub from_day: Date,
    pub days: usize,
    /// Bill minus catalog over those days.
    pub dollars: Nanos,
}

/// Sums the cells.
pub fn totals(cells: &[Cell]) -> Totals {
    let mut t = Totals::default();
    for c in cells {
        t.bill_tokens += c.bill.tokens;
        t.ledger_tokens += c.ledger_tokens;
        t.matched_tokens += c.bill.tokens.min(c.ledger_tokens);
        t.bill_cost = t.bill_cost.saturating_add(c.bill.cost);
        t.ledger_cost = t.ledger_cost.saturating_add(c.ledger_cost);
        let part = if c.drift { &mut t.drift } else { &mut t.rounding };
        *part = part.saturating_add(c.price_dollars());
        match c.cause {
            Some(cause) if cause.explained() => t.explained = t.explained.saturating_add(c.token_dollars()),
            Some(_) => t.unexplained = t.unexplained.saturating_add(Nanos(c.token_dollars().0.abs())),
            None => {}
        }
    }
    t
}

/// Whether the unexplained difference exceeds the tolerance of the bill's usage cost (of the
/// ledger's when the bill has none).
pub fn exceeds(t: &Totals, tolerance: Tolerance) -> bool {
    let base = if t.bill_cost.is_zero() {
        t.ledger_cost
    } else {
        t.bill_cost
    };
    tolerance.exceeded(
        u128::from(t.unexplained.0.unsigned_abs()),
        u128::from(base.0.unsigned_abs()),
    )
}

/// Differences grouped by cause, region, model and tier; largest dollar amount first.
pub fn findings(cells: &[Cell]) -> Vec<Finding> {
    let mut groups: BTreeMap<(Cause, &str, &str, &str), Finding> = BTreeMap::new();
    for c in cells {
        let Some(cause) = c.cause else { continue };
        let k = &c.key;
        let f = groups
            .entry((cause, &k.region, &k.model, &k.tier))
            .or_insert_with(|| Finding {
                cause,
                region: k.region.clone(),
                model: k.model.clone(),
                tier: k.tier.clone(),
                first_day: k.day,
                last_day: k.day,
                days: 0,
                tokens: [0; 4],
                dollars: Nanos::ZERO,
            });
        f.first_day = f.first_day.min(k.day);
        f.last_day = f.last_day.max(k.day);
        f.tokens[class_index(k.class)] += c.token_delta();
        f.dollars = f.dollars.saturating_add(c.token_dollars());
    }
    let mut out: Vec<Finding> = groups.into_values().collect();
    for f in &mut out {
        f.days = days_between(cells, f);
    }
    out.sort_by(|a, b| b.dollars.0.abs().cmp(&a.dollars.0.abs()).then(a.cause.cmp(&b.cause)));
    out
}

fn days_between(cells: &[Cell], f: &Finding) -> usize {
    let mut days: Vec<Date> = cells
        .iter()
        .filter(|c| {
            c.cause == Some(f.cause) && c.key.region == f.region && c.key.model == f.model && c.key.tier == f.tier
        })
        .map(|c| c.key.day)
        .collect();
    days.sort_unstable();
    days.dedup();
    days.len()
}

/// A drift being summed: the drift, and the bill's tokens and cost on its drifting days.
type DriftSum = (Drift, u64, Nanos);

/// Price drift per region, model, class and tier, from its first drifting day.
pub fn drifts(cells: &[Cell]) -> Vec<Drift> {
    let mut groups: BTreeMap<(&str, &str, TokenClass, &str), DriftSum> = BTreeMap::new();
    for c in cells.iter().filter(|c| c.drift) {
        let (Some(price), k) = (c.price, &c.key) else { continue };
        let entry = groups
            .entry((&k.region, &k.model, k.class, &k.tier))
            .or_insert_with(|| {
                let drift = Drift {
                    region: k.region.clone(),
                    model: k.model.clone(),
                    class: k.class,
                    tier: k.tier.clone(),
                    catalog_price: price,
                    billed_price: None,
                    from_day: k.day,
                    days: 0,
                    dollars: Nanos::ZERO,
                };
                (drift, 0, Nanos::ZERO)
            });
        entry.0.from_day = entry.0.from_day.min(k.day);
        entry.0.days += 1;
        entry.0.dollars = entry.0.dollars.saturating_add(c.price_dollars());
        entry.1 += c.bill.tokens;
        entry.2 = entry.2.saturating_add(c.bill.cost);
    }
    groups
        .into_values()
        .map(|(mut d, tokens, cost)| {
            d.billed_price = implied_price(cost, tokens);
            d
        })
        .collect()
}
