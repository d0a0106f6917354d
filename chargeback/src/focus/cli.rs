//! `tally report --format focus`: its flags, and the export from the ledger to the files —
//! the ledger streamed into a [`Builder`], the rows written by [`write`].

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use clap::Args;
use tally_config::compiled::CompiledConfig;
use tally_config::pricing::PriceBook;

use super::{Builder, Context, FileFormat, FocusError, FocusVersion, Grain, Written, write};
use crate::ledger::{Ledger, Projection};
use crate::period::Period;

/// The flags `--format focus` adds to `tally report`.
#[derive(Debug, Clone, Args)]
pub struct FocusArgs {
    /// With `--format focus`: the FOCUS version, 1.2 (default) or 1.0 (what the FinOps
    /// Foundation's focus-validator 1.0.0 checks).
    #[arg(long = "focus-version", default_value = "1.2", value_parser = FocusVersion::parse, env = "TALLY_REPORT_FOCUS_VERSION")]
    pub version: FocusVersion,
    /// With `--format focus`: one row per day (of `--tz`) or per hour.
    #[arg(long, default_value = "day", value_parser = Grain::parse, env = "TALLY_REPORT_GRAIN")]
    pub grain: Grain,
    /// With `--format focus`: which files to write into `--out DIR`: both, csv or parquet.
    #[arg(long = "focus-format", default_value = "both", value_parser = FileFormat::parse, env = "TALLY_REPORT_FOCUS_FORMAT")]
    pub files: FileFormat,
    /// With `--format focus`: `BillingAccountId`, the AWS payer account the bill comes from.
    #[arg(
        long = "billing-account",
        default_value = "unknown",
        env = "TALLY_REPORT_BILLING_ACCOUNT"
    )]
    pub billing_account: String,
}

/// What an export wrote, for the person who ran it (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub version: FocusVersion,
    pub written: Written,
    pub ledger_rows: u64,
    /// The sum of `BilledCost`: the ledger's cost in the period, nano-USD.
    pub billed_nanos: i128,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: Vec<String> = self.written.files.iter().map(|p| p.display().to_string()).collect();
        let doc = serde_json::json!({
            "focusVersion": self.version.to_string(),
            "rows": self.written.rows,
            "ledgerRows": self.ledger_rows,
            "billedCostUsd": super::columns::decimal(self.billed_nanos, 9),
            "files": files,
        });
        writeln!(f, "{doc}")
    }
}

/// Builds the period's FOCUS dataset from `ledger`, priced with `config`'s catalog and with its
/// TeamBudgets' cost centers, and writes it into `dir`.
pub async fn export(
    ledger: &Ledger,
    period: &Period,
    config: &CompiledConfig,
    args: &FocusArgs,
    dir: &Path,
) -> Result<Summary, FocusError> {
    let book = PriceBook::new(&config.catalog);
    let cost_centers: HashMap<String, String> = config
        .teams
        .iter()
        .filter_map(|t| Some((t.team.clone(), t.cost_center.clone()?)))
        .collect();
    let ctx = Context {
        catalog: &book,
        cost_centers: &cost_centers,
        tz: period.tz.clone(),
        grain: args.grain,
        billing_account: args.billing_account.clone(),
    };
    let mut builder = Builder::new(&ctx);
    let scanned = ledger
        .scan_projected(period.from, period.to, Projection::WithoutIds, &mut |row| {
            builder.add(row)
        })
        .await?;
    let set = builder.finish();
    let written = write(&set, args.version, args.files, dir)?;
    Ok(Summary {
        version: args.version,
        written,
        ledger_rows: scanned.rows,
        billed_nanos: set.rows.iter().map(|r| r.billed_nanos).sum(),
    })
}
