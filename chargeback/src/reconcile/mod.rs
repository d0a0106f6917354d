//! `tally reconcile`: the ledger against the AWS bill (a CUR 2.0 export), at the bill's grain —
//! UTC day × region × model × token class (× tier). Tokens first, exactly; then dollars. Each
//! difference gets its likely cause ([`compare::Cause`]), price drift its implied unit price
//! and first day ([`summary`]), and the bill's actual cost is split back to the ledger's
//! teams, tenants and workflows in proportion to their tokens per cell ([`allocate`]).
//!
//! Days are UTC whatever `--tz` a report uses: the bill's day is the UTC day. Reading the
//! ledger and the bill are the only I/O ([`run`]); everything else is pure over their sums.

pub mod allocate;
pub mod cli;
pub mod compare;
pub mod price;
pub mod render;
pub mod summary;
pub mod usage;

use jiff::civil::Date;
use tally_config::billing::Billing;
use tally_config::compiled::Catalog;

use crate::cur::{self, Bill, CurError};
use crate::ledger::{Ledger, LedgerError, Projection, Row};
use crate::period::{Period, PeriodError};
use allocate::Share;
use compare::{Cell, Tolerance};
use price::PriceList;
use summary::{Drift, Finding, Totals};
use usage::{LedgerUsage, Namer};

/// Why a reconciliation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Period(#[from] PeriodError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Cur(#[from] CurError),
    #[error("invalid --tolerance {0:?}: use a percentage like 0.5% or a fraction like 0.005")]
    Tolerance(String),
    #[error("cannot write the result: {0}")]
    Write(#[from] std::io::Error),
}

/// The catalog a reconciliation prices with and maps the bill's names through.
#[derive(Debug, Clone, Copy)]
pub struct CatalogRef<'a> {
    pub catalog: &'a Catalog,
    pub billing: &'a Billing,
}

/// Everything `tally reconcile` found.
#[derive(Debug, Clone)]
pub struct Reconciliation {
    pub period: String,
    pub tolerance: Tolerance,
    pub bill: Bill,
    pub ledger_rows: u64,
    pub cells: Vec<Cell>,
    pub totals: Totals,
    pub findings: Vec<Finding>,
    pub drifts: Vec<Drift>,
    pub shares: Vec<Share>,
    /// The unexplained difference exceeds the tolerance: the command fails.
    pub exceeded: bool,
}

impl Reconciliation {
    /// The unexplained difference as parts per billion of the bill's usage cost (of the
    /// ledger's when the bill has none).
    pub fn unexplained_ppb(&self) -> u128 {
        let t = &self.totals;
        let base = if t.bill_cost.is_zero() {
            t.ledger_cost
        } else {
            t.bill_cost
        };
        match u128::from(base.0.unsigned_abs()) {
            0 => 0,
            b => u128::from(t.unexplained.0.unsigned_abs()) * 1_000_000_000 / b,
        }
    }
}

/// Reads the ledger and the bill of `period` (UTC days) and reconciles them.
pub async fn run(
    ledger_url: &str,
    cur_location: &str,
    period: &str,
    catalog: CatalogRef<'_>,
    tolerance: Tolerance,
) -> Result<Reconciliation, ReconcileError> {
    let period = Period::parse(period, "UTC")?;
    let ledger = Ledger::open(ledger_url)?;
    let namer = Namer::new(catalog.catalog, catalog.billing);
    let mut usage = LedgerUsage::default();
    // The per-call ids are most of the decoding and no cell needs them.
    let visit = &mut |row: &Row<'_>| usage.add(row, &namer);
    ledger
        .scan_projected(period.from, period.to, Projection::WithoutIds, visit)
        .await?;
    let bill = cur::read(cur_location, catalog.billing, period.from, period.to).await?;
    Ok(reconcile(&period.label, bill, &usage, catalog, tolerance))
}

/// The pure part: the bill and the ledger's sums compared, explained and allocated.
pub fn reconcile(
    period: &str,
    bill: Bill,
    usage: &LedgerUsage,
    catalog: CatalogRef<'_>,
    tolerance: Tolerance,
) -> Reconciliation {
    let prices = PriceList::new(catalog.catalog, catalog.billing);
    let cells = compare::compare(&bill, usage, &prices, tolerance);
    let totals = summary::totals(&cells);
    Reconciliation {
        period: period.to_string(),
        tolerance,
        ledger_rows: usage.rows,
        findings: summary::findings(&cells),
        drifts: summary::drifts(&cells),
        shares: allocate::allocate(&bill, usage),
        exceeded: summary::exceeds(&totals, tolerance),
        totals,
        cells,
        bill,
    }
}

/// Parses `--tolerance`: `0.5%` or `0.005`, into parts per billion.
pub fn parse_tolerance(text: &str) -> Result<Tolerance, ReconcileError> {
    let bad = || ReconcileError::Tolerance(text.to_string());
    let (number, scale) = match text.trim().strip_suffix('%') {
        Some(n) => (n.trim(), 7),
        None => (text.trim(), 9),
    };
    let ppb = cur::amount::scaled(number, scale).map_err(|_| bad())?;
    u64::try_from(ppb)
        .ok()
        .filter(|p| *p <= 1_000_000_000)
        .map(Tolerance)
        .ok_or_else(bad)
}

const EPOCH: Date = Date::constant(1970, 1, 1);

/// Days since 1970-01-01 of a date.
pub fn day_number(day: Date) -> i32 {
    EPOCH.until(day).map(|s| s.get_days()).unwrap_or(0)
}

/// The date `days` after 1970-01-01.
pub fn usage_day(days: i32) -> Date {
    EPOCH
        .checked_add(jiff::Span::new().days(i64::from(days)))
        .unwrap_or(EPOCH)
}

#[cfg(test)]
mod tests;
