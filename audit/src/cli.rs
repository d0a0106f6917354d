//! `tally audit`: its arguments and the command itself (the `tally` binary
//! only parses and calls [`run`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::checks::{self, Context};
use crate::live::{self, fetch, render};
use crate::report::{Report, html, markdown, table};
use crate::{Error, Result, input};

/// Where the default catalog lives, relative to the working directory (a clone of the repo).
pub const DEFAULT_CATALOG: &str = "examples/catalog";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Markdown,
    Html,
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Sample files or directories (each file is one sample set; `-` reads stdin): Tally ledger
    /// (JSON lines or Parquet), Envoy access logs (JSON or default text), OTLP JSON spans,
    /// Bedrock model invocation logs, LiteLLM SpendLogs (JSON or CSV), JSON application logs,
    /// CUR 2.0 rows (CSV or Parquet). The format is detected.
    #[arg(value_name = "FILE_OR_DIR", required_unless_present = "ledger")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, env = "TALLY_AUDIT_FORMAT")]
    pub format: OutputFormat,
    /// Write the report to this file instead of stdout.
    #[arg(long, short, env = "TALLY_AUDIT_OUT")]
    pub out: Option<PathBuf>,
    /// Price catalog for the cost checks: ModelPricing manifests (a file or directory, compiled
    /// like `tally render`; TeamBudgets there tell which teams have budgets) or a compiled config
    /// JSON. Default: examples/catalog when it exists.
    #[arg(long, env = "TALLY_AUDIT_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Live coverage instead of samples: a running ext_proc's admin URL (`http://host:port`) or
    /// its `/v1/ledger` URL.
    #[arg(long, env = "TALLY_AUDIT_LEDGER", conflicts_with = "paths")]
    pub ledger: Option<String>,
    /// With --ledger: only calls this recent (`90s`, `30m`, `24h`, `7d`).
    #[arg(long, default_value = "24h", env = "TALLY_AUDIT_SINCE")]
    pub since: String,
    /// With --ledger: only this team's calls.
    #[arg(long, env = "TALLY_AUDIT_TEAM")]
    pub team: Option<String>,
    /// With --ledger: a file holding the ledger API's bearer token.
    #[arg(long, env = "TALLY_API_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Exit non-zero when the score is below this percentage (a CI gate for instrumentation).
    #[arg(long, env = "TALLY_AUDIT_FAIL_UNDER", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub fail_under: Option<u8>,
}

/// Runs `tally audit`, writing the report to `--out` or `stdout`.
pub async fn run(args: &AuditArgs, stdout: &mut impl Write) -> Result<()> {
    if let Some(url) = &args.ledger {
        let text = live_report(args, url).await?;
        return emit(args, &text, stdout);
    }
    let report = audit_paths(&args.paths, &context(args.catalog.as_deref())?)?;
    let text = match args.format {
        OutputFormat::Table => table::render(&report),
        OutputFormat::Json => report.json(),
        OutputFormat::Markdown => markdown::render(&report),
        OutputFormat::Html => html::render(&report),
    };
    emit(args, &text, stdout)?;
    match args.fail_under {
        Some(min) if report.score.percent() < usize::from(min) => Err(Error::Usage(format!(
            "score {} is below --fail-under {min}%",
            report.score
        ))),
        _ => Ok(()),
    }
}

/// Reads and audits the samples under `paths`.
pub fn audit_paths(paths: &[PathBuf], ctx: &Context) -> Result<Report> {
    let samples = input::samples(paths)?;
    if samples.is_empty() {
        return Err(Error::Usage("no samples found (no file tally audit can read)".into()));
    }
    Ok(checks::audit(&samples, ctx))
}

/// The catalog named, else the default one when present, else none.
fn context(catalog: Option<&Path>) -> Result<Context> {
    match catalog {
        Some(path) => input::catalog(path),
        None if Path::new(DEFAULT_CATALOG).is_dir() => input::catalog(Path::new(DEFAULT_CATALOG)),
        None => {
            tracing::warn!("no --catalog and no {DEFAULT_CATALOG}: costs are not compared with prices");
            Ok(Context::default())
        }
    }
}

async fn live_report(args: &AuditArgs, url: &str) -> Result<String> {
    let since = live::parse_since(&args.since)
        .ok_or_else(|| Error::Usage(format!("--since {:?}: use a number and s, m, h or d (24h)", args.since)))?;
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let query = fetch::Query {
        url: url.to_string(),
        team: args.team.clone(),
        token,
    };
    let records = fetch::records(&query).await?;
    let cutoff = jiff::Timestamp::now() - since;
    let c = live::coverage(&fetch::ledger_url(url), &records, Some(cutoff));
    Ok(match args.format {
        OutputFormat::Table => render::table(&c),
        OutputFormat::Json => serde_json::to_string_pretty(&c).expect("coverage serializes") + "\n",
        OutputFormat::Markdown => render::markdown(&c),
        OutputFormat::Html => render::html(&c),
    })
}

fn emit(args: &AuditArgs, text: &str, stdout: &mut impl Write) -> Result<()> {
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        }),
        None => stdout.write_all(text.as_bytes()).map_err(|source| Error::Write {
            path: "stdout".into(),
            source,
        }),
    }
}
