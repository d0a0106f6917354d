//! The catalog's price of a bill cell: the entry a billing name points at, the tier the
//! cell's suffixes name, the class's price. What the bill's dollars are compared with.

use tally_config::billing::{Billing, TokenClass};
use tally_config::compiled::{Catalog, PriceEntry, Prices};
use tally_config::money::{Nanos, NanosPerMillion};
use tally_config::pricing::PriceBook;

use super::usage::UNMAPPED_PREFIX;

/// Looks prices up for cells.
pub struct PriceList<'a> {
    catalog: &'a Catalog,
    billing: &'a Billing,
    book: PriceBook,
}

impl<'a> PriceList<'a> {
    pub fn new(catalog: &'a Catalog, billing: &'a Billing) -> Self {
        PriceList {
            catalog,
            billing,
            book: PriceBook::new(catalog),
        }
    }

    /// The entry a cell's model names: through its billing name, or for a ledger model
    /// without one (`unmapped:<id>`) the entry that priced the id.
    fn entry<'s>(&'s self, model: &'s str, region: &str) -> Option<&'s PriceEntry> {
        if let Some(id) = model.strip_prefix(UNMAPPED_PREFIX) {
            return self.book.lookup(self.book.alias(id), region).map(|p| p.entry.as_ref());
        }
        let name = self
            .billing
            .by_usage_type_model(model, region)
            .or_else(|| self.billing.by_marketplace_product(model, region))?;
        self.catalog
            .entries
            .iter()
            .find(|e| e.pattern == name.pattern && e.regions == name.regions)
    }

    /// Nano-USD per million tokens of `class` for `model` (a billing name) in `region` at
    /// `tier`; `None` when no entry names the model or the catalog has no price for the tier
    /// (batch, latency-optimized).
    pub fn price(&self, model: &str, region: &str, tier: &str, class: TokenClass) -> Option<NanosPerMillion> {
        let entry = self.entry(model, region)?;
        // Global cross-region profiles bill at the source region's price (`global.` entries
        // carry the base price in the shipped catalog).
        let tiers: Vec<&str> = tier
            .split('+')
            .filter(|t| !t.is_empty() && *t != "cross-region-global")
            .collect();
        let prices: &Prices = match tiers.as_slice() {
            [] => &entry.prices,
            [one] => &entry.tiers.iter().find(|t| t.tier == *one)?.prices,
            _ => return None,
        };
        Some(match class {
            TokenClass::Input => prices.input,
            TokenClass::Output => prices.output,
            TokenClass::CacheRead => prices.cache_read,
            // The bill has one cache-write class; 1-hour writes are the ledger's business.
            TokenClass::CacheWrite => prices.cache_write_5m,
        })
    }
}

/// `tokens` at `price`, rounded half up to the nano-USD (as the data plane rounds a call).
pub fn cost_of(tokens: u64, price: NanosPerMillion) -> Nanos {
    let nanos = (u128::from(tokens) * u128::from(price.0) + 500_000) / 1_000_000;
    Nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// The unit price `cost` for `tokens` implies, nano-USD per million tokens (rounded half up).
pub fn implied_price(cost: Nanos, tokens: u64) -> Option<NanosPerMillion> {
    let cost = u128::try_from(cost.0).ok()?;
    (tokens > 0).then(|| {
        let t = u128::from(tokens);
        NanosPerMillion(u64::try_from((cost * 1_000_000 + t / 2) / t).unwrap_or(u64::MAX))
    })
}
