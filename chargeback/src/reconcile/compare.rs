//! The comparison itself, pure: bill and ledger side by side per cell, tokens first (exact),
//! then dollars, and each difference given its likely cause.
//!
//! A cell's dollar difference splits in two (P: the catalog's unit price of the cell):
//! - the **token part** `(bill tokens − ledger tokens) × P`, explained by what made the token
//!   counts differ ([`Cause`]);
//! - the **price part** `bill cost − bill tokens × P`: the bill charged another price than the
//!   catalog's. Beyond the tolerance it is **price drift**; within it, rounding.
//!
//! **Unexplained** is the sum, over cells whose token difference has no explaining cause, of
//! `|bill tokens − ledger tokens| × P` (the bill's own unit price where the catalog has none).
//! `tally reconcile` fails when it exceeds the tolerance times the bill's Bedrock usage cost.

use std::collections::{BTreeMap, HashSet};

use jiff::civil::Date;
use tally_config::billing::TokenClass;
use tally_config::money::{Nanos, NanosPerMillion};

use super::price::{PriceList, cost_of, implied_price};
use super::usage::{LedgerUsage, UNMAPPED_PREFIX, class_index};
use crate::cur::{Bill, BillCell, CellKey};

/// Why bill and ledger disagree on a cell's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The bill has more tokens in input and output (or the ledger has none in the cell
    /// while it knows the region and model): calls that did not go through the gateway.
    Bypass,
    /// More output billed, input equal, and the ledger holds cut streams in the cell: AWS
    /// billed what it generated after the client went away.
    CutStream,
    /// Billed in a region the ledger has no call in.
    RegionNotSeen,
    /// Billed for a model (known to the catalog) the ledger has no call of.
    ModelNotSeen,
    /// A usage type no catalog entry names: add a `billing` name to the catalog.
    NotInCatalog,
    /// The ledger has calls on a day the bill has no Bedrock usage on yet (CUR lags 24–48 h).
    NotBilledYet,
    /// Ledger calls of a model whose catalog entry has no `billing` name: they cannot meet
    /// the bill. Unexplained until the catalog names it.
    LedgerModelUnmapped,
    /// None of the above.
    Unexplained,
}

impl Cause {
    pub fn explained(self) -> bool {
        !matches!(self, Cause::Unexplained | Cause::LedgerModelUnmapped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Bypass => "bypass",
            Cause::CutStream => "cut_stream",
            Cause::RegionNotSeen => "region_not_seen",
            Cause::ModelNotSeen => "model_not_seen",
            Cause::NotInCatalog => "not_in_catalog",
            Cause::NotBilledYet => "not_billed_yet",
            Cause::LedgerModelUnmapped => "ledger_model_unmapped",
            Cause::Unexplained => "unexplained",
        }
    }
}

/// One cell compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub key: CellKey,
    pub bill: BillCell,
    pub ledger_tokens: u64,
    /// The catalog's unit price, if it has one for the cell.
    pub price: Option<NanosPerMillion>,
    /// Ledger tokens at the catalog price (at the bill's implied price without one).
    pub ledger_cost: Nanos,
    /// Bill tokens at the same price.
    pub expected_cost: Nanos,
    pub cause: Option<Cause>,
    /// The price part is beyond the tolerance.
    pub drift: bool,
}

impl Cell {
    pub fn token_delta(&self) -> i128 {
        i128::from(self.bill.tokens) - i128::from(self.ledger_tokens)
    }

    /// The token part of the dollar difference.
    pub fn token_dollars(&self) -> Nanos {
        Nanos(self.expected_cost.0.saturating_sub(self.ledger_cost.0))
    }

    /// The price part of the dollar difference.
    pub fn price_dollars(&self) -> Nanos {
        Nanos(self.bill.cost.0.saturating_sub(self.expected_cost.0))
    }
}

/// What the bill and the ledger hold for one slot (a cell without its class).
#[derive(Debug, Default, Clone)]
struct Slot {
    bill: [Option<BillCell>; 4],
    unmapped_bill: bool,
    ledger: [u64; 4],
    incomplete: u64,
}

type SlotKey = (Date, String, String, String);

/// The tolerance, in parts per billion (0.5 % is 5,000,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance(pub u64);

impl Tolerance {
    /// Whether `amount` exceeds the tolerance of `base`.
    pub fn exceeded(self, amount: u128, base: u128) -> bool {
        amount * 1_000_000_000 > u128::from(self.0) * base
    }
}

/// Every cell of bill and ledger, compared, in key order.
pub fn compare(bill: &Bill, ledger: &LedgerUsage, prices: &PriceList<'_>, tolerance: Tolerance) -> Vec<Cell> {
    let slots = slots(bill, ledger);
    let names = &ledger.names;
    let regions: HashSet<&str> = ledger.regions_seen.iter().map(|id| names.name(*id)).collect();
    let models: HashSet<&str> = ledger.models_seen.iter().map(|id| names.name(*id)).collect();
    let billed_days: HashSet<Date> = bill.cells.keys().chain(bill.unmapped.keys()).map(|k| k.day).collect();
    let mut cells = vec![];
    for ((day, region, model, tier), slot) in &slots {
        for class in TokenClass::ALL {
            let i = class_index(class);
            let b = slot.bill[i].unwrap_or_default();
            if b.tokens == 0 && b.cost.is_zero() && slot.ledger[i] == 0 {
                continue;
            }
            let key = CellKey {
                day: *day,
                region: region.clone(),
                model: model.clone(),
                class,
                tier: tier.clone(),
            };
            let seen = Seen {
                region: regions.contains(region.as_str()),
                model: models.contains(model.as_str()),
                billed_day: billed_days.contains(day),
            };
            let cause = cause_of(slot, i, &key, seen);
            cells.push(priced(key, b, slot.ledger[i], cause, prices, tolerance));
        }
    }
    cells
}

/// Bill cells and ledger cells gathered per slot.
fn slots(bill: &Bill, ledger: &LedgerUsage) -> BTreeMap<SlotKey, Slot> {
    let mut slots: BTreeMap<SlotKey, Slot> = BTreeMap::new();
    let slot_key = |k: &CellKey| (k.day, k.region.clone(), k.model.clone(), k.tier.clone());
    for (cells, unmapped) in [(&bill.cells, false), (&bill.unmapped, true)] {
        for (k, c) in cells {
            let slot = slots.entry(slot_key(k)).or_default();
            slot.bill[class_index(k.class)] = Some(*c);
            slot.unmapped_bill |= unmapped;
        }
    }
    let names = &ledger.names;
    for (s, cell) in &ledger.cells {
        let day = super::usage_day(s.day);
        let key = (
            day,
            names.name(s.region).to_string(),
            names.name(s.model).to_string(),
            names.name(s.tier).to_string(),
        );
        let slot = slots.entry(key).or_default();
        slot.ledger = cell.tokens;
        slot.incomplete = cell.incomplete;
    }
    slots
}

/// What the ledger and the bill know besides the slot.
#[derive(Debug, Clone, Copy)]
struct Seen {
    region: bool,
    model: bool,
    billed_day: bool,
}

/// The likely cause of the token difference of class `i` in `slot`.
fn cause_of(slot: &Slot, i: usize, key: &CellKey, seen: Seen) -> Option<Cause> {
    let delta = |j: usize| i128::from(slot.bill[j].unwrap_or_default().tokens) - i128::from(slot.ledger[j]);
    let (input, output) = (class_index(TokenClass::Input), class_index(TokenClass::Output));
    let d = delta(i);
    Some(if d == 0 {
        return None;
    } else if d > 0 && slot.ledger.iter().all(|t| *t == 0) {
        if slot.unmapped_bill {
            Cause::NotInCatalog
        } else if !seen.region {
            Cause::RegionNotSeen
        } else if !seen.model {
            Cause::ModelNotSeen
        } else {
            Cause::Bypass
        }
    } else if d > 0 && delta(input) > 0 && delta(output) > 0 {
        Cause::Bypass
    } else if d > 0 && i == output && delta(input) == 0 && slot.incomplete > 0 {
        Cause::CutStream
    } else if d < 0 && key.model.starts_with(UNMAPPED_PREFIX) {
        Cause::LedgerModelUnmapped
    } else if d < 0 && !seen.billed_day {
        Cause::NotBilledYet
    } else {
        Cause::Unexplained
    })
}

fn priced(
    key: CellKey,
    bill: BillCell,
    ledger_tokens: u64,
    cause: Option<Cause>,
    prices: &PriceList<'_>,
    tolerance: Tolerance,
) -> Cell {
    let price = prices.price(&key.model, &key.region, &key.tier, key.class);
    let (ledger_cost, expected_cost) = match price.or_else(|| implied_price(bill.cost, bill.tokens)) {
        Some(p) => (cost_of(ledger_tokens, p), cost_of(bill.tokens, p)),
        None => (Nanos::ZERO, bill.cost),
    };
    let gap = bill.cost.0.abs_diff(expected_cost.0);
    // Beyond the tolerance and beyond a nano-USD of rounding per bill line.
    let drift = price.is_some()
        && gap > bill.lines
        && tolerance.exceeded(u128::from(gap), u128::from(expected_cost.0.unsigned_abs()));
    Cell {
        key,
        bill,
        ledger_tokens,
        price,
        ledger_cost,
        expected_cost,
        cause,
        drift,
    }
}
