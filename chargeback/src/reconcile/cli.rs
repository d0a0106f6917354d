//! `tally reconcile`'s flags and its run: read, reconcile, print, and fail when the
//! unexplained difference exceeds the tolerance. The catalog comes from the caller (the
//! `tally` binary compiles `--catalog`, or its embedded default, with the operator's compiler).

use std::io::Write;
use std::path::PathBuf;

use super::render::{self, Format};
use super::{CatalogRef, ReconcileError, Reconciliation, parse_tolerance};

/// `tally reconcile`: the ledger against the AWS bill.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// The ledger: the directory or s3:// gs:// az:// URL `tally ledger-export` wrote to.
    #[arg(long, env = "TALLY_RECONCILE_LEDGER")]
    pub ledger: String,
    /// The AWS CUR 2.0 export: a Parquet, CSV or .csv.gz file, a directory of them, or an
    /// s3:// gs:// az:// URL (credentials and AWS_ENDPOINT_URL from the environment).
    #[arg(long, env = "TALLY_RECONCILE_CUR")]
    pub cur: String,
    /// The billing period: YYYY-MM, YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD, in UTC days (the bill's).
    #[arg(long, env = "TALLY_RECONCILE_PERIOD")]
    pub period: String,
    /// The unexplained difference allowed, of the bill's Bedrock usage cost: `0.5%` or `0.005`.
    /// Also the threshold of price drift per cell.
    #[arg(long, env = "TALLY_RECONCILE_TOLERANCE", default_value = "0.5%")]
    pub tolerance: String,
    #[arg(long, env = "TALLY_RECONCILE_FORMAT", value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// ModelPricing manifests (files or directories) whose prices and `billing` names map the
    /// bill to the catalog. Default: the catalog shipped with Tally.
    #[arg(long, env = "TALLY_RECONCILE_CATALOG", value_delimiter = ',')]
    pub catalog: Vec<PathBuf>,
}

/// Why `tally reconcile` failed, besides not being able to read its inputs.
#[derive(Debug, thiserror::Error)]
#[error(
    "the unexplained difference, {unexplained} USD, is {share} of the bill's Bedrock usage cost: above --tolerance {tolerance}"
)]
pub struct Unexplained {
    pub unexplained: String,
    pub share: String,
    pub tolerance: String,
}

/// Runs `tally reconcile` and writes its result to `out`. `Ok(Err(..))`: it ran, and the
/// unexplained difference exceeds the tolerance (the command exits non-zero).
pub async fn run(
    args: &ReconcileArgs,
    catalog: CatalogRef<'_>,
    out: &mut dyn Write,
) -> Result<Result<Reconciliation, Unexplained>, ReconcileError> {
    let tolerance = parse_tolerance(&args.tolerance)?;
    let r = super::run(&args.ledger, &args.cur, &args.period, catalog, tolerance).await?;
    out.write_all(render::render(&r, args.format).as_bytes())?;
    out.flush()?;
    if !r.exceeded {
        return Ok(Ok(r));
    }
    Ok(Err(Unexplained {
        unexplained: r.totals.unexplained.to_string(),
        share: render::percent(r.unexplained_ppb()),
        tolerance: render::percent(u128::from(tolerance.0)),
    }))
}
