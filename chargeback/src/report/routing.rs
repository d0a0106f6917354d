//! The model-mix arithmetic: which tier a model is in, and what a team's calls would have
//! cost on its cheapest allowed model ("savings if routed"). Pure, over the catalog.
//!
//! Tiers are bands of the catalog's standard **output** price, the price that dominates a
//! chat call's cost: `premium` from $20 per million output tokens (the Opus class in the
//! shipped catalog), `standard` from $6 (Sonnet class), `economy` below (Haiku, Nova, Llama
//! small), and `unpriced` for models no catalog entry prices.
//!
//! A team's cheapest allowed model is the catalog entry with an exact model id (no glob),
//! a non-zero output price (text models only), allowed by the team's `allowedModels` globs
//! (all, when it has none), with the lowest output price, then input price, then id. A call
//! is re-priced on it with the same tariff, the same tokens and service tier; calls that cost
//! nothing or were billed per unit (images, video, guardrails) keep their cost, and no call
//! is counted dearer than it was.

use std::collections::HashMap;

use tally_config::compiled::{CompiledConfig, PriceEntry, TeamConfig};
use tally_config::money::NanosPerMillion;
use tally_config::pricing::{PriceBook, glob_matches};
use tally_config::tariff::{self, Units};

use super::aggregate::usage;
use crate::ledger::Row;

/// A model's price band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Premium,
    Standard,
    Economy,
    Unpriced,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Premium, Tier::Standard, Tier::Economy, Tier::Unpriced];

    pub fn of(output_per_million: NanosPerMillion) -> Tier {
        const USD: u64 = 1_000_000_000;
        match output_per_million.0 {
            p if p >= 20 * USD => Tier::Premium,
            p if p >= 6 * USD => Tier::Standard,
            _ => Tier::Economy,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Premium => "premium",
            Tier::Standard => "standard",
            Tier::Economy => "economy",
            Tier::Unpriced => "unpriced",
        }
    }
}

/// The teams' allowlists and the catalog, with each team's cheapest model found once.
pub struct Routing<'c> {
    config: &'c CompiledConfig,
    book: PriceBook,
    teams: HashMap<&'c str, &'c TeamConfig>,
    /// Interned team id → index of its cheapest allowed entry.
    cheapest: HashMap<u32, Option<usize>>,
}

impl<'c> Routing<'c> {
    pub fn new(config: &'c CompiledConfig) -> Routing<'c> {
        Routing {
            config,
            book: PriceBook::new(&config.catalog),
            teams: config.teams.iter().map(|t| (t.team.as_str(), t)).collect(),
            cheapest: HashMap::new(),
        }
    }

    pub fn team(&self, team: &str) -> Option<&'c TeamConfig> {
        self.teams.get(team).copied()
    }

    /// The tier of `model` as priced in `region`.
    pub fn tier(&self, model: &str, region: &str) -> Tier {
        self.book
            .lookup(model, region)
            .map_or(Tier::Unpriced, |p| Tier::of(p.entry.prices.output))
    }

    /// The cheapest model `team` may call; `None` for a team no TeamBudget describes.
    pub fn cheapest_for(&self, team: &str) -> Option<&'c PriceEntry> {
        cheapest_index(self.config, self.team(team)?).map(|i| &self.config.catalog.entries[i])
    }

    /// The row's cost had it been sent to its team's cheapest allowed model, nano-USD.
    pub fn cost_on_cheapest(&mut self, team_id: u32, team: &str, row: &Row<'_>) -> i128 {
        let actual = i128::from(row.cost_nanos);
        // A call billed for images, video or guardrail units is no text call to re-route (a
        // per-request count alone is how every successful call of some entries is billed).
        let u = &row.units;
        if row.cost_nanos <= 0 || u.images > 0 || u.seconds > 0 || u.text_units > 0 {
            return actual;
        }
        let (config, teams) = (self.config, &self.teams);
        let index = *self
            .cheapest
            .entry(team_id)
            .or_insert_with(|| teams.get(team).and_then(|t| cheapest_index(config, t)));
        let Some(entry) = index.map(|i| &config.catalog.entries[i]) else {
            return actual;
        };
        let routed = tariff::cost(entry, row.service_tier, &usage(row), &Units::default());
        actual.min(i128::from(routed.0))
    }
}

fn cheapest_index(config: &CompiledConfig, team: &TeamConfig) -> Option<usize> {
    let allowed =
        |model: &str| team.allowed_models.is_empty() || team.allowed_models.iter().any(|g| glob_matches(g, model));
    config
        .catalog
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.pattern.contains('*') && e.prices.output.0 > 0 && allowed(&e.pattern))
        .min_by(|(_, a), (_, b)| {
            (a.prices.output, a.prices.input, &a.pattern).cmp(&(b.prices.output, b.prices.input, &b.pattern))
        })
        .map(|(i, _)| i)
}
