//! The `tally` command line: arguments, logging, and one function per
//! subcommand. `main` only parses, initialises logging and calls [`run`].
//!
//! To add a subcommand, add a variant to [`Command`] with its args struct and
//! one arm in [`run`].

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use tally_api::crd;

use crate::{Error, Result};

/// Per-request cost attribution and budgets for AWS Bedrock on Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "tally", version, about)]
pub struct Cli {
    /// Log format on stderr. The level comes from RUST_LOG (default `info`).
    #[arg(long, global = true, env = "TALLY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD).
    Crds(CrdsArgs),
    /// Compile TeamBudget and ModelPricing manifests into the ext_proc config, offline;
    /// lists every problem and exits non-zero if there is any.
    Render(RenderArgs),
    /// Run the operator: reconcile TeamBudgets and ModelPricings into the config ConfigMap and
    /// keep their status live from Redis (leader-elected; serves /metrics, /healthz, /readyz).
    Operator(Box<crate::controller::OperatorArgs>),
    /// Audit traces, logs, ledgers or CUR 2.0 rows for attribution gaps: per field present,
    /// absent or misscoped, with evidence, a score and the fixes smallest first; or, with
    /// --ledger, the live attribution coverage of a running Tally.
    Audit(Box<tally_audit::cli::AuditArgs>),
    /// Export every team's ledger stream from Redis to Parquet files in object storage (S3, GCS,
    /// Azure Blob or a directory), acknowledging entries only once their file is stored.
    LedgerExport(Box<tally_export::cli::ExportArgs>),
    /// A chargeback statement of a period from the exported ledger: totals per cost center /
    /// team / tenant / workflow / model, the model mix, savings if routed, burn rate and forecast.
    Report(Box<tally_chargeback::report::cli::ReportArgs>),
    /// The ledger against the AWS bill (a CUR 2.0 export) at the bill's grain — UTC day × region
    /// × model × token class: differences with their likely cause, price drift, and the invoice
    /// split by team; exits non-zero when the unexplained difference exceeds --tolerance.
    Reconcile(Box<tally_chargeback::reconcile::cli::ReconcileArgs>),
}

#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write `<group>_<plural>.yaml` files into this directory instead of printing.
    #[arg(long, env = "TALLY_CRDS_OUT_DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// YAML files or directories (searched recursively for *.yaml and *.yml).
    #[arg(required = true, value_name = "FILES_OR_DIRS")]
    pub paths: Vec<PathBuf>,
    /// Write the config JSON to this file instead of stdout.
    #[arg(short, long, env = "TALLY_RENDER_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Namespace of TeamBudgets that name none (as `kubectl apply -n` would give them).
    #[arg(short, long, env = "TALLY_RENDER_NAMESPACE", default_value = "default")]
    pub namespace: String,
}

/// Initialises logging to stderr (stdout carries the command's output).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // A second initialisation (tests) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Crds(args) => crds(&args, &mut std::io::stdout().lock()),
        Command::Render(args) => render(&args, &mut std::io::stdout().lock()),
        // stdout stays unlocked: the operator's tasks log to it from other threads.
        Command::Operator(args) => Ok(crate::controller::main(*args).await?),
        Command::Audit(args) => Ok(tally_audit::cli::run(&args, &mut std::io::stdout().lock()).await?),
        Command::LedgerExport(args) => Ok(tally_export::cli::run(&args, &mut std::io::stdout()).await?),
        Command::Report(args) => report(&args, &mut std::io::stdout().lock()).await,
        Command::Reconcile(args) => reconcile(&args, &mut std::io::stdout().lock()).await,
    }
}

/// The catalog the chart ships, built in: `tally report` needs no checkout for its tiers.
const CHART_CATALOG: &str = include_str!("../../charts/tally/files/bedrock-on-demand.yaml");

/// `tally report`: the `--budgets` TeamBudgets and the `--catalog` (default: the chart's)
/// compiled as `tally render` compiles them, then the report.
pub async fn report(args: &tally_chargeback::report::cli::ReportArgs, stdout: &mut impl Write) -> Result<()> {
    let mut paths = args.budgets.clone();
    paths.extend(args.catalog.clone());
    let mut manifests = tally_api::manifest::load(&paths, "default");
    if args.catalog.is_none() {
        add_chart_catalog(&mut manifests);
    }
    let config = tally_api::render::compile(&manifests)?;
    Ok(tally_chargeback::report::cli::run(args, &config, stdout).await?)
}

fn add_chart_catalog(manifests: &mut tally_api::manifest::Manifests) {
    let name = std::path::Path::new("(built in) charts/tally/files/bedrock-on-demand.yaml");
    tally_api::manifest::load_text(name, CHART_CATALOG, "default", manifests);
}

/// `tally reconcile`: the `--catalog` ModelPricings (default: the chart's) compiled as `tally
/// render` compiles them, with the bill's names for their models; then the reconciliation.
pub async fn reconcile(args: &tally_chargeback::reconcile::cli::ReconcileArgs, stdout: &mut impl Write) -> Result<()> {
    let mut manifests = tally_api::manifest::load(&args.catalog, "default");
    if args.catalog.is_empty() {
        add_chart_catalog(&mut manifests);
    }
    let config = tally_api::render::compile(&manifests)?;
    let billing = tally_api::compiler::billing::compile_billing(&manifests.pricings);
    let catalog = tally_chargeback::reconcile::CatalogRef {
        catalog: &config.catalog,
        billing: &billing,
    };
    tally_chargeback::reconcile::cli::run(args, catalog, stdout).await??;
    Ok(())
}

/// `tally crds`.
pub fn crds(args: &CrdsArgs, stdout: &mut impl Write) -> Result<()> {
    match &args.out_dir {
        None => {
            let yaml = crd::crds_yaml().map_err(tally_api::Error::from)?;
            stdout.write_all(yaml.as_bytes()).map_err(|source| Error::Write {
                path: "stdout".into(),
                source,
            })
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Write {
                path: dir.clone(),
                source,
            })?;
            for crd in crd::crds() {
                let path = dir.join(crd::crd_file_name(&crd));
                std::fs::write(&path, crd::crd_yaml(&crd).map_err(tally_api::Error::from)?).map_err(|source| {
                    Error::Write {
                        path: path.clone(),
                        source,
                    }
                })?;
                tracing::info!(path = %path.display(), "wrote CRD");
            }
            Ok(())
        }
    }
}

/// `tally render`: the config JSON, or [`tally_api::Error::Invalid`] listing every problem.
pub fn render(args: &RenderArgs, stdout: &mut impl Write) -> Result<()> {
    let json = render_to_string(&args.paths, &args.namespace)?;
    match &args.output {
        None => stdout.write_all(json.as_bytes()).map_err(|source| Error::Write {
            path: "stdout".into(),
            source,
        }),
        Some(path) => std::fs::write(path, json).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        }),
    }
}

/// Loads and compiles the manifests under `paths` (see [`tally_api::render`]).
pub fn render_to_string(paths: &[PathBuf], namespace: &str) -> Result<String> {
    Ok(tally_api::render::render_to_string(paths, namespace)?)
}
