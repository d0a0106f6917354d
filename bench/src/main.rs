//! `tally-bench`: starts everything it measures on loopback (simulated Bedrock,
//! Redis, Envoy with the chart's config, `tally-extproc`, LiteLLM), runs the
//! benchmarks in one invocation so every number has its baseline from the same
//! run, prints tables and writes `bench/results/latest.json`.
//!
//! Benchmarks, not tests: nothing here fails on a slow number.
#![forbid(unsafe_code)]

mod harness;
mod hotpath;
mod litellm;
mod load;
mod mix;
mod overhead;
mod peers;
mod procs;
mod profile;
mod reconcile;
mod scale;
mod soak;
mod strictness;
mod targets;
mod trace_cost;
mod usability;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// Everything below, in this order.
    All,
    /// Latency added over plain Envoy at fixed rates, and the highest sustained rate.
    Overhead,
    /// LiteLLM measured the same way, and budget strictness for Tally and LiteLLM.
    Peers,
    /// Decision latency and memory with 10 / 1,000 / 100,000 teams; memory per stream.
    Scale,
    /// Not part of `all`: many settled calls through the memory and Redis stores, memory and CPU per
    /// call sampled as they accumulate (results in `soak.json` beside `--out`).
    Soak,
    /// Not part of `all`: how much of a budget a team spends before its first refusal, for
    /// one sequential caller and 10 concurrent ones (results in `usability.json` beside `--out`).
    Usability,
    /// Not part of `all`: with 10,000 teams in a real apiserver, the time from a changed TeamBudget
    /// limit to the ext_proc enforcing it, and from a call to its spend in status (results in
    /// `reconcile.json` beside `--out`).
    Reconcile,
    /// Not part of `all`: the data path with a span per call exported to Jaeger vs tracing off,
    /// in alternating rounds (results in `tracing.json` beside `--out`).
    Tracing,
    /// Not part of `all`: issue #19's table — Converse over 10 teams through every path
    /// (direct, Envoy, null ext_proc, Tally on Redis with and without leases, in memory) at
    /// 500 and 1,000 req/s, the 1k/2k/3k/5k steps, LiteLLM, strictness with 3 replicas, a
    /// CPU profile of the ext_proc, and each target met or missed (`hotpath.json` beside `--out`).
    Hotpath,
}

#[derive(Debug, Parser)]
#[command(
    about = "Tally benchmarks: overhead, throughput, budget strictness and scale, with their baselines in the same run"
)]
pub struct Args {
    #[arg(value_enum, default_value = "all")]
    pub phase: Phase,
    /// Shorter runs (about a third of the time); numbers are noisier.
    #[arg(long)]
    pub quick: bool,
    /// Fixed rates (req/s) of the overhead table.
    #[arg(long, value_delimiter = ',', default_value = "200,1000,3000")]
    pub rates: Vec<f64>,
    /// Seconds per fixed-rate run (default 10, 4 with --quick).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Rate at which LiteLLM and the Tally stack are compared (LiteLLM saturates near 80-90 req/s).
    #[arg(long, default_value_t = 50.0)]
    pub peer_rate: f64,
    /// Budget strictness: the budget fits exactly k calls; 10 × k are sent concurrently.
    #[arg(long, default_value_t = 20)]
    pub k: u64,
    /// Skip the sustained-throughput ladder of the overhead phase (fixed rates only).
    #[arg(long)]
    pub no_ladder: bool,
    /// Runtime worker threads of every ext_proc (Tally's and the null one); Envoy runs with
    /// `--concurrency 1` too, so each process of the path gets one core's worth of threads.
    #[arg(long, default_value_t = 1)]
    pub extproc_workers: usize,
    /// Extra flag for every `tally-extproc` started (repeatable), e.g. `--extproc-arg=--request-body=when-needed`
    /// to measure a setting against the default in separate invocations.
    #[arg(long, allow_hyphen_values = true)]
    pub extproc_arg: Vec<String>,
    /// Hot path: the write-behind window (`--settle-behind-ms`) of its write-behind paths.
    #[arg(long, default_value_t = 20)]
    pub settle_behind_ms: u64,
    /// Soak: calls through the memory store.
    #[arg(long, default_value_t = 1_000_000)]
    pub soak_calls: u64,
    /// Soak: calls through the Redis store (real redis-server).
    #[arg(long, default_value_t = 1_000_000)]
    pub soak_redis_calls: u64,
    /// Soak: samples per store.
    #[arg(long, default_value_t = 10)]
    pub soak_samples: u64,
    /// Soak: concurrent callers of the Redis store.
    #[arg(long, default_value_t = 32)]
    pub soak_workers: u64,
    /// Soak: ledger cap passed to every settlement (per team in Redis, whole ledger in memory).
    #[arg(long, default_value_t = 5_000)]
    pub soak_ledger_max_len: u64,
    /// Soak: how long Redis keeps settled ids (the product's is an hour; shorter reaches the
    /// steady state within the run).
    #[arg(long, default_value_t = 20)]
    pub soak_settled_ttl_seconds: u64,
    /// Tracing: the fixed rate (req/s) both paths are measured at.
    #[arg(long, default_value_t = 500.0)]
    pub trace_rate: f64,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench/results/latest.json")]
    pub out: PathBuf,
}

impl Args {
    /// Flags for every `tally-extproc` started.
    pub fn extproc_args(&self) -> Vec<String> {
        let mut out = vec!["--worker-threads".to_string(), self.extproc_workers.to_string()];
        out.extend(self.extproc_arg.iter().cloned());
        out
    }

    pub fn soak(&self) -> soak::SoakArgs {
        soak::SoakArgs {
            calls: self.soak_calls,
            redis_calls: self.soak_redis_calls,
            samples: self.soak_samples,
            workers: self.soak_workers,
            ledger_max_len: self.soak_ledger_max_len,
            settled_ttl_seconds: self.soak_settled_ttl_seconds,
        }
    }

    pub fn run_seconds(&self) -> Duration {
        Duration::from_secs(self.seconds.unwrap_or(if self.quick { 4 } else { 10 }))
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    // One worker thread: the generator must leave the two cores to what it measures.
    // Its own CPU is reported as `load-generator`.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // On Ctrl-C / SIGTERM the run future is dropped, and with it every process it owns.
        let run = async {
            if args.phase == Phase::Soak {
                write_beside(&args.out, "soak.json", &soak::phase(&args).await?)
            } else if args.phase == Phase::Tracing {
                write_beside(&args.out, "tracing.json", &trace_cost::phase(&args).await?)
            } else if args.phase == Phase::Reconcile {
                write_beside(
                    &args.out,
                    "reconcile.json",
                    &reconcile::phase(if args.quick { 1 } else { 3 }).await?,
                )
            } else if args.phase == Phase::Hotpath {
                write_beside(&args.out, "hotpath.json", &hotpath::phase(&args).await?)
            } else if args.phase == Phase::Usability {
                write_beside(&args.out, "usability.json", &usability::phase().await?)
            } else {
                harness::run(args).await
            }
        };
        tokio::select! {
            result = run => result,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; every started process was killed"),
            _ = term.recv() => anyhow::bail!("terminated; every started process was killed"),
        }
    })
}

/// Writes a phase's results as `name` in `out`'s directory.
fn write_beside(out: &std::path::Path, name: &str, value: &impl serde::Serialize) -> Result<()> {
    let out = out.with_file_name(name);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(value)?)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
