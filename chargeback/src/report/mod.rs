//! `tally report`: the chargeback statement of a period from the durable ledger — totals per
//! cost center / team / tenant / workflow / model / region / operation, the unattributed
//! share, each team's model mix and savings if routed, and the burn rate against its budget —
//! as a table, CSV, JSON, Markdown or one self-contained HTML page.
//!
//! Rooms: [`aggregate`] folds streamed rows into cells, [`routing`] (tiers, cheapest model),
//! [`burn`] (forecast), [`statement`] (the views) and the renderers ([`text`], [`html`]) are
//! pure; [`cli`] is the only part that reads (the ledger) and writes (the output).
//! Money is integer nano-USD throughout, rendered as exact decimal strings; shares are
//! integer basis points.

pub mod aggregate;
pub mod burn;
pub mod cli;
pub mod html;
pub mod routing;
pub mod statement;
pub mod text;

use std::fmt;

use serde::{Serialize, Serializer};
use tally_config::money::Nanos;

use aggregate::Totals;
use routing::Tier;

/// A dimension the statement can be grouped by (`--by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dim {
    CostCenter,
    Team,
    Tenant,
    Workflow,
    Model,
    Region,
    Operation,
}

impl Dim {
    pub fn name(self) -> &'static str {
        match self {
            Dim::CostCenter => "cost_center",
            Dim::Team => "team",
            Dim::Tenant => "tenant",
            Dim::Workflow => "workflow",
            Dim::Model => "model",
            Dim::Region => "region",
            Dim::Operation => "operation",
        }
    }
}

/// Nano-USD, serialized and displayed as an exact decimal USD string (`12.5`, `0.000001234`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(pub i128);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match i64::try_from(self.0) {
            Ok(n) => Nanos(n).fmt(f),
            // Beyond ±9.2 billion USD: whole dollars and the nano remainder, still exact.
            Err(_) => {
                let (sign, abs) = (if self.0 < 0 { "-" } else { "" }, self.0.unsigned_abs());
                write!(f, "{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
            }
        }
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A share in basis points (1/100 of a percent), rounded down; displays as `12.34%`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Share(pub u32);

impl Share {
    /// `part / whole`, floored to a basis point; 0 when there is no whole.
    pub fn of(part: i128, whole: i128) -> Share {
        if whole <= 0 || part <= 0 {
            return Share(0);
        }
        Share(u32::try_from(part * 10_000 / whole).unwrap_or(u32::MAX))
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Share {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}.{:02}", self.0 / 100, self.0 % 100))
    }
}

/// Token counts by price class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
}

/// One line of the statement: a group's totals and its share of the period's cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// The group's values, one per `--by` dimension.
    pub key: Vec<String>,
    pub calls: u64,
    /// Calls refused before Bedrock (`blocked`, `denied`).
    pub refused: u64,
    pub tokens: Tokens,
    #[serde(rename = "cost_usd")]
    pub cost: Money,
    pub share: Share,
    /// Calls no catalog priced (charged zero).
    pub unpriced: u64,
}

impl Line {
    fn of(key: Vec<String>, t: &Totals, grand: i128) -> Line {
        Line {
            key,
            calls: t.calls,
            refused: t.refused,
            tokens: Tokens {
                input: t.input,
                output: t.output,
                cache_read: t.cache_read,
                cache_write_5m: t.cache_write_5m,
                cache_write_1h: t.cache_write_1h,
            },
            cost: Money(t.cost),
            share: Share::of(t.cost, grand),
            unpriced: t.unpriced,
        }
    }
}

/// A team's calls and spend on one model tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierShare {
    pub tier: Tier,
    pub calls: u64,
    pub calls_share: Share,
    #[serde(rename = "cost_usd")]
    pub cost: Money,
    pub cost_share: Share,
}

/// A workflow's spend on its team's dearest tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowSpend {
    pub workflow: String,
    #[serde(rename = "cost_usd")]
    pub cost: Money,
}

/// One team: model mix, savings if routed, burn rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamView {
    pub team: String,
    pub cost_center: String,
    pub calls: u64,
    #[serde(rename = "cost_usd")]
    pub cost: Money,
    pub share: Share,
    pub mix: Vec<TierShare>,
    /// The dearest tier the team spent on.
    pub dearest_tier: Option<Tier>,
    /// Its top workflows by spend on that tier.
    pub top_workflows: Vec<WorkflowSpend>,
    /// The cheapest model its allowlist permits (none for a team no TeamBudget describes).
    pub cheapest_model: Option<String>,
    /// The same calls on that model.
    #[serde(rename = "routed_usd")]
    pub routed: Money,
    #[serde(rename = "savings_usd")]
    pub savings: Money,
    pub savings_share: Share,
    /// Spend per local day of the period.
    #[serde(rename = "daily_usd")]
    pub daily: Vec<Money>,
    /// Spend at the period's end at the rate so far (the actual spend once it is over).
    #[serde(rename = "projected_usd")]
    pub projected: Money,
    /// The team budget's limit, when its period is the report's kind of period.
    #[serde(rename = "budget_usd")]
    pub budget: Option<Money>,
    /// The local day the budget runs out at the rate so far, if inside the period.
    pub exhausts_at: Option<String>,
}

/// The whole report; its JSON form is `--format json` (field names are stable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub period: String,
    pub tz: String,
    pub from: String,
    pub to: String,
    pub by: Vec<&'static str>,
    pub days: Vec<String>,
    pub total: Line,
    /// Calls charged to the `unknown` team: no attribution.
    pub unattributed: Line,
    pub groups: Vec<Line>,
    pub teams: Vec<TeamView>,
    /// Parquet files read and rows in the period.
    pub files: usize,
    pub rows: u64,
}

#[cfg(test)]
mod tests;
