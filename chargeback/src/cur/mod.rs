//! The AWS bill: a Cost and Usage Report 2.0 export (Parquet, CSV or gzip'd CSV; a file, a
//! directory or an object-store URL) reduced to Bedrock token usage at the bill's grain —
//! UTC day × region × model × token class × tier — with what was left out and why.
//!
//! Kept: `Usage` lines of Bedrock, first-party (`line_item_product_code` AmazonBedrock, usage
//! types `USE1-Claude4.6Sonnet-input-tokens`) and Marketplace (products "… (Amazon Bedrock
//! Edition)", usage types `USW2-MP:USW2_InputTokenCount-Units`). Excluded and totalled by line
//! type: credits, discounts, savings plans, tax, refunds, fees. Bedrock usage that is not a token
//! count (provisioned throughput, images) and usage types no catalog entry names are kept
//! apart, never dropped. Amounts are exact (see [`amount`]); the usage type's model name is
//! mapped to the catalog through its `billing` names ([`tally_config::billing`]).

pub mod amount;
pub mod records;
pub mod source;

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::{Timestamp, tz::TimeZone};
use tally_config::billing::{self, Billing, Path, TokenClass};
use tally_config::money::Nanos;

use records::Record;

/// Why the bill could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CurError {
    #[error("cannot read the CUR export {location:?}: {reason}")]
    Source { location: String, reason: String },
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
    #[error("{file}, line {line}: {reason} (nothing was reconciled)")]
    Line { file: String, line: usize, reason: String },
}

/// One cell of the bill's grain. Days are UTC: the bill's day, whatever the period's zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    pub day: Date,
    pub region: String,
    /// The model's billing name (`Claude4.6Sonnet`, or the Marketplace product), or the name
    /// the bill gave it when no catalog entry claims it.
    pub model: String,
    pub class: TokenClass,
    /// Tier and mode suffixes joined by `+` (empty: standard).
    pub tier: String,
}

/// What the bill says of one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BillCell {
    pub tokens: u64,
    /// `line_item_unblended_cost`: usage at the rates billed, before credits and discounts.
    pub cost: Nanos,
    /// `line_item_net_unblended_cost` where the export has it (else the unblended cost).
    pub net_cost: Nanos,
    pub lines: u64,
}

/// Lines counted but not compared, by what they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub lines: u64,
    pub cost: Nanos,
}

/// The Bedrock part of a bill for one period.
#[derive(Debug, Clone, Default)]
pub struct Bill {
    /// Token usage whose model a catalog entry names.
    pub cells: BTreeMap<CellKey, BillCell>,
    /// Token usage no catalog entry names: the same grain, keyed by the bill's own name.
    pub unmapped: BTreeMap<CellKey, BillCell>,
    /// Bedrock usage that is not a token count, by usage type (throughput hours, images…).
    pub other_usage: BTreeMap<String, Tally>,
    /// Bedrock lines left out by line type (`Credit`, `Tax`, `EdpDiscount`…).
    pub excluded: BTreeMap<String, Tally>,
    /// Lines of other services, and Bedrock lines outside the period.
    pub other_services: u64,
    pub outside_period: u64,
    pub files: usize,
    pub lines: u64,
}

impl Bill {
    /// Every usage dollar of Bedrock in the period: what the split invoice must add up to.
    pub fn usage_cost(&self) -> Nanos {
        let cells = self.cells.values().chain(self.unmapped.values()).map(|c| c.cost);
        let other = self.other_usage.values().map(|t| t.cost);
        cells.chain(other).fold(Nanos::ZERO, Nanos::saturating_add)
    }
}

/// Reads the export at `location` and keeps the Bedrock lines of `[from, to)`.
pub async fn read(location: &str, billing: &Billing, from: Timestamp, to: Timestamp) -> Result<Bill, CurError> {
    let mut bill = Bill::default();
    for object in source::fetch(location).await? {
        let records = records::decode(&object)?;
        bill.files += 1;
        for (i, record) in records.iter().enumerate() {
            let line = Line {
                record,
                billing,
                from,
                to,
            };
            line.add_to(&mut bill).map_err(|reason| CurError::Line {
                file: object.name.clone(),
                line: i + 2,
                reason,
            })?;
        }
    }
    Ok(bill)
}

/// One record being sorted into the bill.
struct Line<'a> {
    record: &'a Record,
    billing: &'a Billing,
    from: Timestamp,
    to: Timestamp,
}

impl Line<'_> {
    fn add_to(&self, bill: &mut Bill) -> Result<(), String> {
        let r = self.record;
        bill.lines += 1;
        if !is_bedrock(r) {
            bill.other_services += 1;
            return Ok(());
        }
        let cost = money(&r.unblended_cost, "line_item_unblended_cost")?;
        // Tax and fee lines may carry no usage date: they count in the period they were read for.
        let start = match r.usage_start.as_str() {
            "" if r.line_item_type != "Usage" => None,
            text => Some(usage_start(text)?),
        };
        if start.is_some_and(|t| t < self.from || t >= self.to) {
            bill.outside_period += 1;
            return Ok(());
        }
        let Some(start) = start.filter(|_| r.line_item_type == "Usage") else {
            let kind = if r.line_item_type.is_empty() {
                "(no line type)"
            } else {
                &r.line_item_type
            };
            add_tally(bill.excluded.entry(kind.to_string()).or_default(), cost);
            return Ok(());
        };
        let Some(usage) = billing::parse_usage_type(&r.usage_type) else {
            add_tally(bill.other_usage.entry(r.usage_type.clone()).or_default(), cost);
            return Ok(());
        };
        let region = match (r.region_code.as_str(), billing::region_of_code(&usage.region_code)) {
            ("", Some(region)) => region.to_string(),
            ("", None) => format!("unknown:{}", usage.region_code),
            (region, _) => region.to_string(),
        };
        let (model, mapped) = self.model(&usage.path, &region);
        let key = CellKey {
            day: start.to_zoned(TimeZone::UTC).date(),
            region,
            model,
            class: usage.class,
            tier: usage.tier,
        };
        let cell = if mapped { &mut bill.cells } else { &mut bill.unmapped }
            .entry(key)
            .or_default();
        cell.tokens = cell.tokens.checked_add(tokens(r)?).ok_or("token count overflows")?;
        cell.cost = cell.cost.saturating_add(cost);
        let net = match r.net_unblended_cost.as_str() {
            "" => cost,
            text => money(text, "line_item_net_unblended_cost")?,
        };
        cell.net_cost = cell.net_cost.saturating_add(net);
        cell.lines += 1;
        Ok(())
    }

    /// The catalog's billing name for the line's model, or the bill's own name (unmapped).
    fn model(&self, path: &Path, region: &str) -> (String, bool) {
        let found = match path {
            Path::FirstParty { model } => self.billing.by_usage_type_model(model, region),
            Path::Marketplace => self.billing.by_marketplace_product(&self.record.product_name, region),
        };
        match (found, path) {
            (Some(name), _) => (name.key().to_string(), true),
            (None, Path::FirstParty { model }) => (model.clone(), false),
            (None, Path::Marketplace) => (self.record.product_name.clone(), false),
        }
    }
}

fn add_tally(t: &mut Tally, cost: Nanos) {
    t.lines += 1;
    t.cost = t.cost.saturating_add(cost);
}

fn is_bedrock(r: &Record) -> bool {
    r.product_code == "AmazonBedrock"
        || r.product_name.trim_end().ends_with("(Amazon Bedrock Edition)")
        || (r.billing_entity == "AWS Marketplace" && r.usage_type.contains("-MP:"))
}

/// A cost column in nano-USD, rounded half away from zero at the ninth place.
fn money(text: &str, column: &str) -> Result<Nanos, String> {
    if text.is_empty() {
        return Ok(Nanos::ZERO);
    }
    let nanos = amount::scaled(text, 9).map_err(|e| format!("{column}: {e}"))?;
    i64::try_from(nanos)
        .map(Nanos)
        .map_err(|_| format!("{column}: {text:?} is too large"))
}

/// The line's tokens: `line_item_usage_amount` in the unit `pricing_unit` names (tokens, 1K
/// or 1M tokens); Marketplace lines say "Units" there and name the unit in the description.
fn tokens(r: &Record) -> Result<u64, String> {
    let scale = unit_scale(&r.pricing_unit)
        .or_else(|| unit_scale(&r.description))
        .unwrap_or(0);
    let text = if r.usage_amount.is_empty() {
        "0"
    } else {
        &r.usage_amount
    };
    let n = amount::scaled(text, scale).map_err(|e| format!("line_item_usage_amount: {e}"))?;
    u64::try_from(n).map_err(|_| format!("line_item_usage_amount {text:?} is negative or too large for a usage line"))
}

/// The power of ten a unit text names: 6 for "1M tokens" / "per million", 3 for "1K tokens",
/// 0 for plain tokens; `None` when the text names no token unit ("Units", empty).
fn unit_scale(text: &str) -> Option<i32> {
    let t = text.to_ascii_lowercase().replace([',', ' '], "");
    if t.contains("1m") || t.contains("million") || t.contains("1000000") {
        Some(6)
    } else if t.contains("1k") || t.contains("thousand") || t.contains("1000") {
        Some(3)
    } else if t.contains("token") {
        Some(0)
    } else {
        None
    }
}

/// `line_item_usage_start_date`: RFC 3339, or `YYYY-MM-DD HH:MM:SS` / `YYYY-MM-DDTHH:MM:SS`
/// without a zone, which CUR means as UTC.
fn usage_start(text: &str) -> Result<Timestamp, String> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    text.replace(' ', "T")
        .parse::<jiff::civil::DateTime>()
        .and_then(|d| d.to_zoned(TimeZone::UTC))
        .map(|z| z.timestamp())
        .map_err(|_| format!("line_item_usage_start_date {text:?} is not a date and time"))
}

#[cfg(test)]
mod tests;
