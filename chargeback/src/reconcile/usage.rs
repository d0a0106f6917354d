//! The ledger side of a reconciliation: every ledger row of the period added into the bill's
//! grain (UTC day × region × billing model × tier, the four token classes side by side), and
//! who used each cell (team, tenant, workflow) — the weights the bill is split by.
//!
//! Built for tens of millions of rows: strings are interned once, a row costs two lookups in
//! caches keyed by its text and two counter updates, and memory grows with the number of
//! distinct cells and users, not rows.

use std::collections::{HashMap, HashSet};

use tally_config::billing::{Billing, TokenClass, ledger_tier};
use tally_config::compiled::Catalog;
use tally_config::pricing::{PriceBook, strip_geo_prefix};

use crate::ledger::Row;

/// Prefix of a cell's model when no catalog entry gives the ledger's model a billing name.
pub const UNMAPPED_PREFIX: &str = "unmapped:";

/// A cell without its token class: UTC day (days since 1970-01-01) and interned names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub day: i32,
    pub region: u32,
    pub model: u32,
    pub tier: u32,
}

/// What the ledger holds in one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCell {
    /// Tokens by [`TokenClass::ALL`] order.
    pub tokens: [u64; 4],
    pub rows: u64,
    /// Rows whose stream was cut (`outcome` incomplete): the bill may hold more output.
    pub incomplete: u64,
}

/// One user of a slot: team, tenant and workflow (interned).
pub type User = u32;

/// The ledger, added up.
#[derive(Debug, Default)]
pub struct LedgerUsage {
    pub names: Interner,
    /// `(team, tenant, workflow)` of each [`User`].
    pub users: Vec<(String, String, String)>,
    pub cells: HashMap<Slot, LedgerCell>,
    /// Tokens per class of each user in each slot.
    pub weights: HashMap<(Slot, User), [u64; 4]>,
    /// What the ledger charged each user over the period.
    pub charged: HashMap<User, i64>,
    pub regions_seen: HashSet<u32>,
    pub models_seen: HashSet<u32>,
    pub rows: u64,
    user_ids: HashMap<String, User>,
    resolved: HashMap<String, (u32, u32, u32)>,
    buffer: String,
}

/// Strings ↔ small ids.
#[derive(Debug, Default)]
pub struct Interner {
    ids: HashMap<String, u32>,
    pub names: Vec<String>,
}

impl Interner {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// The billing name of a ledger row's model: the catalog entry that priced it, and that
/// entry's billing name.
pub struct Namer<'a> {
    book: PriceBook,
    billing: &'a Billing,
}

impl<'a> Namer<'a> {
    pub fn new(catalog: &Catalog, billing: &'a Billing) -> Self {
        Namer {
            book: PriceBook::new(catalog),
            billing,
        }
    }

    /// `Claude4.6Sonnet` for a row priced as `anthropic.claude-sonnet-4-6`; `unmapped:<id>`
    /// when no entry prices it or the entry has no billing name.
    pub fn name(&self, model: &str, model_id: &str, region: &str) -> String {
        let id = if model.is_empty() { model_id } else { model };
        let id = self.book.alias(id);
        // A cross-region id priced by an entry of its own bills under its base model's name.
        [Some(id), strip_geo_prefix(id)]
            .into_iter()
            .flatten()
            .find_map(|id| {
                let entry = self.book.lookup(id, region)?.entry;
                self.billing.of_entry(&entry.pattern, &entry.regions)
            })
            .map(|n| n.key().to_string())
            .unwrap_or_else(|| format!("{UNMAPPED_PREFIX}{id}"))
    }
}

impl LedgerUsage {
    /// Adds one row.
    pub fn add(&mut self, row: &Row<'_>, namer: &Namer<'_>) {
        self.rows += 1;
        let (region, model, tier) = self.resolve(row, namer);
        let user = self.user(row);
        let slot = Slot {
            day: i32::try_from(row.time.as_second().div_euclid(86_400)).unwrap_or(i32::MAX),
            region,
            model,
            tier,
        };
        let cache_write = row.cache_write_5m_tokens.saturating_add(row.cache_write_1h_tokens);
        let tokens = [row.input_tokens, row.output_tokens, row.cache_read_tokens, cache_write];
        let cell = self.cells.entry(slot).or_default();
        add_tokens(&mut cell.tokens, &tokens);
        cell.rows += 1;
        cell.incomplete += u64::from(row.outcome == "incomplete");
        if tokens.iter().any(|t| *t > 0) {
            add_tokens(self.weights.entry((slot, user)).or_default(), &tokens);
        }
        let charged = self.charged.entry(user).or_default();
        *charged = charged.saturating_add(row.cost_nanos);
        self.regions_seen.insert(region);
        self.models_seen.insert(model);
    }

    /// Interned (region, billing model, tier) of a row, cached by the row's text.
    fn resolve(&mut self, row: &Row<'_>, namer: &Namer<'_>) -> (u32, u32, u32) {
        let tier_text = row.service_tier.unwrap_or("");
        self.buffer.clear();
        for part in [row.model, row.model_id, row.region, tier_text] {
            self.buffer.push_str(part);
            self.buffer.push('\u{0}');
        }
        if let Some(ids) = self.resolved.get(self.buffer.as_str()) {
            return *ids;
        }
        let ids = (
            self.names.id(row.region),
            self.names.id(&namer.name(row.model, row.model_id, row.region)),
            self.names.id(&ledger_tier(row.service_tier, row.model_id)),
        );
        self.resolved.insert(self.buffer.clone(), ids);
        ids
    }

    fn user(&mut self, row: &Row<'_>) -> User {
        let (tenant, workflow) = (row.tenant.unwrap_or(""), row.workflow.unwrap_or(""));
        self.buffer.clear();
        for part in [row.team, tenant, workflow] {
            self.buffer.push_str(part);
            self.buffer.push('\u{0}');
        }
        if let Some(id) = self.user_ids.get(self.buffer.as_str()) {
            return *id;
        }
        let id = u32::try_from(self.users.len()).expect("fewer than 2^32 users");
        self.user_ids.insert(self.buffer.clone(), id);
        self.users
            .push((row.team.to_string(), tenant.to_string(), workflow.to_string()));
        id
    }
}

fn add_tokens(into: &mut [u64; 4], tokens: &[u64; 4]) {
    for (a, b) in into.iter_mut().zip(tokens) {
        *a = a.saturating_add(*b);
    }
}

/// The index of a class in a slot's arrays.
pub fn class_index(class: TokenClass) -> usize {
    TokenClass::ALL.iter().position(|c| *c == class).unwrap_or(0)
}
