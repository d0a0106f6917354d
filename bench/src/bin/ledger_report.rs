//! `ledger-report`: `tally report` over a month of 10 million ledger rows (issue #16).
//!
//! `ledger-report generate` writes the ledger the way `tally ledger-export` does — the
//! exporter's own Parquet writer and object keys, one file per team and UTC hour — with calls
//! priced by the shipped catalog; `ledger-report` (no subcommand) generates it once (cached
//! under `$TALLY_CACHE/bench-ledger-<rows>`), then measures, each in a fresh process so its peak
//! RSS is its own: a bare scan of every row (the baseline: reading and decoding the Parquet
//! files), and the full report (scan, aggregation, statement, JSON). Prints one JSON line per
//! measurement and writes `bench/results/ledger-report.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::ValueEnum;
use clap::{Parser, Subcommand};
use serde_json::json;
use tally_chargeback::ledger::{Ledger, Projection, Row};
use tally_chargeback::period::Period;
use tally_chargeback::report::{Dim, cli, text};
use tally_config::compiled::CompiledConfig;
use tally_config::ledger::{LedgerRecord, Outcome};
use tally_config::pricing::{PriceBook, Usage};
use tally_config::tariff::{self, Units};
use tally_export::entry::{Entry, StreamId};

const MONTH: &str = "2026-11";
const TEAMS: usize = 20;
/// The models calls go to: each workflow has its usual one, one call in ten the next one.
const MODELS: [&str; 6] = [
    "anthropic.claude-opus-4-5-20251101-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "anthropic.claude-haiku-4-5-20251001-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.nova-micro-v1:0",
    "meta.llama3-1-70b-instruct-v1:0",
];
const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-central-1"];
const WORKFLOWS: [&str; 5] = ["rag", "summarize", "classify", "chat", "extract"];
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

#[derive(Parser)]
#[command(about = "tally report over millions of ledger rows: time and peak memory")]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Ledger rows in the month.
    #[arg(long, default_value_t = 10_000_000, global = true)]
    rows: u64,
    /// Where the ledger is (default `$TALLY_CACHE/bench-ledger-<rows>`).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand, Clone, Copy)]
enum Mode {
    /// Write the ledger (replacing any).
    Generate,
    /// One measurement in this process: `scan` (the baseline) or `report`.
    Measure {
        #[arg(value_enum)]
        what: What,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum What {
    /// The baseline: every row of the columns the report reads, decoded and dropped.
    Scan,
    /// Every column, the ids too (what a reader of whole rows pays).
    ScanAll,
    Report,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = args.dir.clone().unwrap_or_else(|| {
        let cache = std::env::var_os("TALLY_CACHE").map(PathBuf::from);
        let home = || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tally");
        cache.unwrap_or_else(home).join(format!("bench-ledger-{}", args.rows))
    });
    match args.mode {
        Some(Mode::Generate) => generate(&dir, args.rows),
        Some(Mode::Measure { what }) => measure(&dir, what).await,
        None => run_all(&dir, args.rows),
    }
}

/// Generates the ledger unless a complete one is there, then measures each part in a child.
fn run_all(dir: &Path, rows: u64) -> Result<()> {
    let marker = dir.join("complete");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(&rows.to_string()) {
        generate(dir, rows)?;
        std::fs::write(&marker, rows.to_string())?;
    }
    let me = std::env::current_exe()?;
    let results = tally_bench::measure_in_children(&["scan", "scan-all", "report"], |what| {
        let mut child = Command::new(&me);
        child
            .args(["measure", what, "--rows", &rows.to_string(), "--dir"])
            .arg(dir);
        child
    })?;
    let seconds = |i: usize| results[i]["seconds"].as_f64().unwrap_or(f64::NAN);
    let ratio = seconds(2) / seconds(0);
    let summary = json!({"rows": rows, "measurements": results, "report_over_scan": ratio});
    let out = tally_bench::write_result("ledger-report.json", &summary)?;
    println!("report / scan: {ratio:.2}; written to {}", out.display());
    Ok(())
}

/// One measurement: wall time and this process's peak RSS.
async fn measure(dir: &Path, what: What) -> Result<()> {
    let ledger = Ledger::open(dir.to_str().context("UTF-8 path")?)?;
    let period = Period::parse(MONTH, "UTC")?;
    let start = Instant::now();
    let (rows, files, bytes) = match what {
        What::Scan | What::ScanAll => {
            let projection = if matches!(what, What::Scan) {
                Projection::WithoutIds
            } else {
                Projection::All
            };
            let mut tokens = 0u64;
            let visit = &mut |r: &Row<'_>| tokens += r.output_tokens + r.request_id.len() as u64;
            let s = ledger.scan_projected(period.from, period.to, projection, visit).await?;
            std::hint::black_box(tokens);
            (s.rows, s.files, s.bytes)
        }
        What::Report => {
            let config = catalog()?;
            let by = [Dim::CostCenter, Dim::Team, Dim::Workflow, Dim::Model];
            let now = period.to;
            let report = cli::report(&ledger, &period, &config, &by, now).await?;
            let json = text::json(&report);
            std::hint::black_box(json.len());
            (report.rows, report.files, 0)
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let name = what
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let line = json!({"what": name, "rows": rows, "files": files,
        "bytes": bytes, "seconds": seconds, "peak_rss_mib": tally_bench::peak_rss_kib() / 1024,
        "rows_per_second": rows as f64 / seconds});
    println!("{line}");
    Ok(())
}

/// The shipped catalog, compiled as `tally report` compiles it.
fn catalog() -> Result<CompiledConfig> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog");
    let manifests = tally_api::manifest::load(&[root], "default");
    Ok(tally_api::render::compile(&manifests)?)
}

/// A deterministic pseudo-random sequence (SplitMix64): the same ledger on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes `rows` calls spread over the month's hours and the teams, one file per team and hour.
fn generate(dir: &Path, rows: u64) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    let config = catalog()?;
    let book = PriceBook::new(&config.catalog);
    let period = Period::parse(MONTH, "UTC")?;
    let hours = (period.to.as_second() - period.from.as_second()) as u64 / 3600;
    let per_file = rows / (hours * TEAMS as u64);
    let mut rng = Rng(16);
    let started = Instant::now();
    let mut written = 0u64;
    for hour in 0..hours {
        for team in 0..TEAMS {
            // The remainder goes to the last file.
            let last = hour + 1 == hours && team + 1 == TEAMS;
            let n = if last { rows - written } else { per_file };
            let start = period.from.as_second() + (hour * 3600) as i64;
            let entries: Vec<Entry> = (0..n)
                .map(|i| call(&mut rng, &book, team, start, written + i))
                .collect();
            written += n;
            for file in tally_export::layout::plan("", &format!("team-{team:02}"), entries) {
                let path = dir.join(&file.key);
                std::fs::create_dir_all(path.parent().context("a folder")?)?;
                std::fs::write(&path, tally_export::schema::to_parquet(&file.entries)?)?;
            }
        }
    }
    eprintln!(
        "generated {written} rows in {:.1} s under {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

/// One call of `team` within the hour starting at `start` (Unix seconds): a workflow with its
/// usual model (sometimes the next one), a region, tokens, priced by the catalog.
fn call(rng: &mut Rng, book: &PriceBook, team: usize, start: i64, n: u64) -> Entry {
    let workflow = rng.below(WORKFLOWS.len() as u64) as usize;
    let model = MODELS[(team + workflow + usize::from(rng.below(10) == 0)) % MODELS.len()];
    let region = REGIONS[if rng.below(10) < 8 {
        team % REGIONS.len()
    } else {
        rng.below(3) as usize
    }];
    let usage = Usage {
        input: 200 + rng.below(4000),
        output: 50 + rng.below(1000),
        cache_read: if rng.below(4) == 0 { rng.below(8000) } else { 0 },
        cache_write_5m: if rng.below(20) == 0 { rng.below(2000) } else { 0 },
        cache_write_1h: 0,
    };
    let blocked = rng.below(100) == 0;
    let entry = book.lookup(model, region).map(|p| p.entry.clone());
    let cost = match (&entry, blocked) {
        (Some(e), false) => tariff::cost(e, None, &usage, &Units::default()).0,
        _ => 0,
    };
    let tenant = team
        .is_multiple_of(3)
        .then(|| TENANTS[rng.below(3) as usize].to_string());
    let team_name = if team == TEAMS - 1 {
        "unknown".to_string()
    } else {
        format!("team-{team:02}")
    };
    let ms = (start * 1000) as u64 + rng.below(3_600_000);
    let time = jiff::Timestamp::from_millisecond(ms as i64).expect("a time in 2026");
    let used = |n: u64| if blocked { 0 } else { n };
    let record = LedgerRecord {
        request_id: format!("{:016x}", rng.next()),
        charge_id: format!("{:016x}/1", n),
        time: time.to_string(),
        operation: ["Converse", "ConverseStream", "InvokeModel"][rng.below(3) as usize].to_string(),
        model_id: model.to_string(),
        model: model.to_string(),
        region: region.to_string(),
        team: team_name,
        tenant,
        workflow: Some(format!("{}-{team}", WORKFLOWS[workflow])),
        claimed_team: None,
        principal: None,
        client: None,
        input_tokens: used(usage.input),
        output_tokens: used(usage.output),
        cache_read_tokens: used(usage.cache_read),
        cache_write5m_tokens: used(usage.cache_write_5m),
        cache_write1h_tokens: 0,
        units: None,
        latency_ms: 200 + rng.below(3000),
        status: if blocked { 429 } else { 200 },
        outcome: if blocked { Outcome::Blocked } else { Outcome::Ok },
        cost_nanos: cost,
        cost_usd: tally_config::money::Nanos(cost).to_string(),
        team_budget_remaining_nanos: None,
        price_source: entry.map(|e| e.source.clone()).unwrap_or_default(),
        unpriced: false,
        over_budget: vec![],
        service_tier: None,
        note: None,
    };
    Entry {
        id: StreamId { ms, seq: n },
        record,
    }
}
