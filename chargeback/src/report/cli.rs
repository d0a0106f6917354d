//! `tally report`: its arguments and the command (the `tally` binary parses, loads the
//! TeamBudget/ModelPricing manifests into a compiled config, and calls [`run`]).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use jiff::Timestamp;
use tally_config::compiled::CompiledConfig;

use super::aggregate::Aggregator;
use super::routing::Routing;
use super::statement::{self, Options};
use super::{Dim, Report, html, text};
use crate::ledger::{Ledger, LedgerError, Projection};
use crate::period::{Period, PeriodError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Markdown,
    Html,
    Focus,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The ledger: the directory or s3:// gs:// az:// URL `tally ledger-export` writes to
    /// (credentials and endpoint from the environment, as for the exporter).
    #[arg(long, env = "TALLY_REPORT_LEDGER")]
    pub ledger: String,
    /// The period: `2026-11` (a month), `2026-11-05` (a day) or `2026-11-01..2026-11-15`.
    #[arg(long, env = "TALLY_REPORT_PERIOD")]
    pub period: String,
    /// The time zone the period's days are in (IANA name).
    #[arg(long, default_value = "UTC", env = "TALLY_REPORT_TZ")]
    pub tz: String,
    /// Group the statement by these, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "team",
        env = "TALLY_REPORT_BY"
    )]
    pub by: Vec<Dim>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "TALLY_REPORT_FORMAT")]
    pub format: Format,
    /// TeamBudget manifests (files or directories): cost centers, budgets, allowed models.
    #[arg(long, env = "TALLY_REPORT_BUDGETS", value_delimiter = ',')]
    pub budgets: Vec<PathBuf>,
    /// ModelPricing manifests for tiers and savings if routed. Default: the catalog the chart ships.
    #[arg(long, env = "TALLY_REPORT_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Write the report to this file instead of stdout (`--format focus`: the directory for
    /// `focus.csv` and `focus.parquet`).
    #[arg(long, short, env = "TALLY_REPORT_OUT")]
    pub out: Option<PathBuf>,
    /// Measure the burn rate at this moment (RFC 3339) instead of now: a reproducible report.
    #[arg(long, env = "TALLY_REPORT_NOW")]
    pub now: Option<Timestamp>,
    #[command(flatten)]
    pub focus: crate::focus::cli::FocusArgs,
}

/// Why `tally report` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Period(#[from] PeriodError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("--budgets/--catalog: {0}")]
    Manifests(String),
    #[error("--format focus: {0}")]
    Focus(#[from] crate::focus::FocusError),
    #[error("--format focus writes focus.csv and focus.parquet: give the directory with --out DIR")]
    FocusOut,
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Reads the period's rows from the ledger and aggregates them into the report.
pub async fn report(
    ledger: &Ledger,
    period: &Period,
    config: &CompiledConfig,
    by: &[Dim],
    now: Timestamp,
) -> Result<Report, LedgerError> {
    let mut agg = Aggregator::new(period, Routing::new(config));
    let scanned = ledger
        .scan_projected(period.from, period.to, Projection::WithoutIds, &mut |row| agg.add(row))
        .await?;
    let opts = Options { period, by, now };
    Ok(statement::build(&agg, &opts, scanned))
}

/// Runs `tally report` with the compiled TeamBudgets and catalog, writing to `--out` or `stdout`.
pub async fn run(args: &ReportArgs, config: &CompiledConfig, stdout: &mut impl Write) -> Result<(), Error> {
    let period = Period::parse(&args.period, &args.tz)?;
    let ledger = Ledger::open(&args.ledger)?;
    if args.format == Format::Focus {
        let dir = args.out.as_deref().ok_or(Error::FocusOut)?;
        let summary = crate::focus::cli::export(&ledger, &period, config, &args.focus, dir).await?;
        return write!(stdout, "{summary}").map_err(|source| Error::Write {
            path: "stdout".into(),
            source,
        });
    }
    let now = args.now.unwrap_or_else(Timestamp::now);
    let r = report(&ledger, &period, config, &args.by, now).await?;
    let text = match args.format {
        Format::Table => text::table(&r),
        Format::Csv => text::csv(&r),
        Format::Json => text::json(&r),
        Format::Markdown => text::markdown(&r),
        Format::Html => html::page(&r),
        Format::Focus => unreachable!("answered above"),
    };
    match &args.out {
        None => stdout.write_all(text.as_bytes()).map_err(|source| Error::Write {
            path: "stdout".into(),
            source,
        }),
        Some(path) => std::fs::write(path, text).map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        }),
    }
}
