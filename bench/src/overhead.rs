//! Overhead: the same mix sent directly to the simulated Bedrock, through plain
//! Envoy, and through Envoy + `tally-extproc` (Redis store and memory store), at
//! fixed rates; then each path's highest sustained rate.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tally_tests::fixtures::process::OwnedProcess;

use crate::load::{self, HttpClient, Outcome, Shape, Spec};
use crate::procs::{Spent as _, http_get, self_cpu_seconds};
use crate::{Args, mix};

/// The path with the production store, the one compared with the peers.
pub const TALLY_REDIS: &str = "envoy+tally(redis)";

/// A path requests can take and the processes that serve it.
pub struct Path<'a> {
    pub name: &'static str,
    pub port: u16,
    pub procs: Vec<&'a OwnedProcess>,
}

impl Path<'_> {
    /// Where requests on this path are sent.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub path: String,
    pub outcome: Outcome,
    /// Process → CPU seconds per 1000 successful requests (`load-generator` is this harness).
    pub cpu_s_per_1k: BTreeMap<String, f64>,
}

/// One timed load run against `path`, with each process's CPU over the run.
pub async fn measure(client: &HttpClient, path: &Path<'_>, mix: &[Shape], spec: Spec) -> Run {
    let before: Vec<f64> = path.procs.iter().map(|p| p.cpu_seconds()).collect();
    let gen_before = self_cpu_seconds();
    let outcome = load::run(client, &path.base(), mix, spec).await;
    let per_1k = |d: f64| {
        if outcome.ok == 0 {
            0.0
        } else {
            d * 1000.0 / outcome.ok as f64
        }
    };
    let mut cpu: BTreeMap<String, f64> = path
        .procs
        .iter()
        .zip(before)
        .map(|(p, b)| (label(p.name()), per_1k(p.cpu_seconds() - b)))
        .collect();
    cpu.insert("load-generator".into(), per_1k(self_cpu_seconds() - gen_before));
    Run {
        path: path.name.to_string(),
        outcome,
        cpu_s_per_1k: cpu,
    }
}

/// `redis-41234` → `redis`: the table needs roles, not ports.
fn label(name: &str) -> String {
    name.split_once('-')
        .filter(|(head, _)| *head == "redis")
        .map_or(name.to_string(), |(head, _)| head.to_string())
}

/// Added latency of `run` over `baseline`, per percentile, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    pub path: String,
    pub over: String,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

pub fn added(run: &Run, baseline: &Run) -> Added {
    Added {
        path: run.path.clone(),
        over: baseline.path.clone(),
        rate: run.outcome.target_rps,
        p50_ms: run.outcome.p50_ms - baseline.outcome.p50_ms,
        p99_ms: run.outcome.p99_ms - baseline.outcome.p99_ms,
        p999_ms: run.outcome.p999_ms - baseline.outcome.p999_ms,
    }
}

/// Steps the rate up until a step fails `passes`; the last rate that passed.
#[derive(Debug, Clone, Serialize)]
pub struct MaxThroughput {
    pub path: String,
    pub sustained_rps: f64,
    pub steps: Vec<Run>,
}

pub async fn max_throughput(
    client: &HttpClient,
    path: &Path<'_>,
    mix: &[Shape],
    rates: &[f64],
    step: Duration,
    passes: fn(&Outcome) -> bool,
) -> MaxThroughput {
    let mut best = 0.0;
    let mut steps = Vec::new();
    for &rate in rates {
        let spec = Spec {
            rate,
            duration: step,
            timeout: Duration::from_secs(10),
            max_in_flight: 2000,
        };
        let run = measure(client, path, mix, spec).await;
        let ok = passes(&run.outcome);
        eprintln!(
            "  {:<22} {rate:>6} req/s → {:>7.0} req/s achieved, p99 {:>8.2} ms, errors {}, dropped {}{}",
            path.name,
            run.outcome.achieved_rps,
            run.outcome.p99_ms,
            run.outcome.errors,
            run.outcome.dropped,
            if ok { "" } else { "  (not sustained)" }
        );
        steps.push(run);
        if !ok {
            break;
        }
        best = rate;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    MaxThroughput {
        path: path.name.to_string(),
        sustained_rps: best,
        steps,
    }
}

/// The overhead phase: every path at each fixed rate, the latency each adds over plain
/// Envoy, then (unless `--no-ladder`) each path's highest sustained rate. `extprocs` are
/// the admin ports of the Tally ext_procs, whose decision counters show calls really were
/// decided and settled.
pub async fn phase(
    args: &Args,
    client: &HttpClient,
    paths: &[Path<'_>],
    mix: &[Shape],
    extprocs: &[(&str, u16)],
) -> Value {
    eprintln!(
        "\n== overhead: {} s per run, mix Converse / InvokeModel / ConverseStream over {} teams",
        args.run_seconds().as_secs(),
        mix::OVERHEAD_TEAMS
    );
    let runs = fixed_rates(args, client, paths, mix).await;
    let added: Vec<Added> = runs
        .iter()
        .filter(|r| r.path.starts_with("envoy+"))
        .filter_map(|r| {
            let base = runs
                .iter()
                .find(|b| b.path == "envoy" && b.outcome.target_rps == r.outcome.target_rps)?;
            Some(added(r, base))
        })
        .collect();
    print(&runs, &added);
    let mut section = json!({ "runs": runs, "added_over_envoy": added });
    if !args.no_ladder {
        section["max_throughput"] = json!(ladder(args, paths, mix).await);
    }
    for &(name, port) in extprocs {
        let outcomes = metric_by_label(port, "tally_decisions_total", "outcome");
        eprintln!("ext_proc ({name}) decisions by outcome over the whole phase: {outcomes:?}");
        section[format!("extproc_{name}_outcomes")] = json!(outcomes);
        let bounds = metric_by_label(port, "tally_reservations_total", "bound");
        eprintln!("ext_proc ({name}) reservations by bound (headers = request body not read): {bounds:?}");
        section[format!("extproc_{name}_reservation_bounds")] = json!(bounds);
    }
    section
}

/// Every path warmed, then measured at each of `--rates`.
async fn fixed_rates(args: &Args, client: &HttpClient, paths: &[Path<'_>], mix: &[Shape]) -> Vec<Run> {
    // Warm every path (connection pools, JIT-free but cache-cold processes).
    for p in paths {
        let warm = Spec {
            rate: 200.0,
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_in_flight: 2000,
        };
        load::run(client, &p.base(), mix, warm).await;
    }
    let mut runs: Vec<Run> = Vec::new();
    for &rate in &args.rates {
        for p in paths {
            let spec = Spec {
                rate,
                duration: args.run_seconds(),
                timeout: Duration::from_secs(10),
                max_in_flight: 5000,
            };
            let run = measure(client, p, mix, spec).await;
            eprintln!(
                "  {:<22} {:>6} req/s  p50 {:>7.3}  p99 {:>7.3}  p99.9 {:>7.3} ms  ok {} err {} dropped {}",
                p.name,
                rate,
                run.outcome.p50_ms,
                run.outcome.p99_ms,
                run.outcome.p999_ms,
                run.outcome.ok,
                run.outcome.errors,
                run.outcome.dropped
            );
            runs.push(run);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    runs
}

/// Each path's maximum sustained throughput.
async fn ladder(args: &Args, paths: &[Path<'_>], mix: &[Shape]) -> Vec<MaxThroughput> {
    eprintln!("\n== maximum sustained throughput (errors 0, nothing dropped, ≥95% of target achieved, p99 < 50 ms)");
    let ladder: Vec<f64> = if args.quick {
        vec![250.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0]
    } else {
        vec![
            250.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 4000.0, 5000.0, 6000.0, 8000.0,
        ]
    };
    let step = Duration::from_secs(if args.quick { 2 } else { 4 });
    let mut maxes = Vec::new();
    for p in paths {
        // A fresh connection pool per path and a pause: the previous path's high-rate
        // steps leave thousands of pooled/TIME_WAIT connections that otherwise stall
        // the next path's first step (seen as p99 ≈ 200 ms, the loopback minimum RTO).
        tokio::time::sleep(Duration::from_secs(5)).await;
        let fresh = load::client();
        maxes.push(max_throughput(&fresh, p, mix, &ladder, step, Outcome::sustained).await);
    }
    println!("\nMaximum sustained throughput (req/s, {} s steps)", step.as_secs());
    for m in &maxes {
        println!("  {:<22} {:>6}", m.path, m.sustained_rps);
    }
    maxes
}

fn print(runs: &[Run], added: &[Added]) {
    println!("\nLatency (ms, from scheduled send time; open loop) and CPU seconds per 1000 requests");
    println!(
        "{:<22} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6}  cpu-s/1k req by process",
        "path", "rate", "p50", "p99", "p99.9", "achieved", "errors"
    );
    for r in runs {
        let o = &r.outcome;
        let cpu: Vec<String> = r.cpu_s_per_1k.iter().map(|(k, v)| format!("{k}={v:.3}")).collect();
        println!(
            "{:<22} {:>6} {:>8.3} {:>8.3} {:>8.3} {:>8.0} {:>6}  {}",
            r.path,
            o.target_rps,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms,
            o.achieved_rps,
            o.errors + o.dropped,
            cpu.join(" ")
        );
    }
    println!("\nAdded latency over plain Envoy (ms; percentile differences)");
    println!("{:<22} {:>6} {:>8} {:>8} {:>8}", "path", "rate", "p50", "p99", "p99.9");
    for a in added {
        println!(
            "{:<22} {:>6} {:>8.3} {:>8.3} {:>8.3}",
            a.path, a.rate, a.p50_ms, a.p99_ms, a.p999_ms
        );
    }
}

/// A counter of the ext_proc summed by one label (e.g. `tally_decisions_total` by outcome:
/// a check that calls were really decided and settled).
fn metric_by_label(admin_port: u16, metric: &str, label: &str) -> BTreeMap<String, f64> {
    let body = http_get(admin_port, "/metrics").map(|(_, b)| b).unwrap_or_default();
    let mut out = BTreeMap::new();
    let key = format!("{label}=\"");
    for line in body.lines().filter(|l| l.starts_with(metric)) {
        let outcome = line
            .split(key.as_str())
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?")
            .to_string();
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry(outcome).or_insert(0.0) += value;
    }
    out
}
