//! Overhead: the same mix sent directly to the simulated Bedrock, through plain
//! Envoy, and through Envoy + `tally-extproc` (Redis store and memory store), at
//! fixed rates; then each path's highest sustained rate.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::load::{self, HttpClient, Outcome, Shape, Spec};
use crate::procs::{Proc, self_cpu_seconds};

/// A path requests can take and the processes that serve it.
pub struct Path<'a> {
    pub name: &'static str,
    pub port: u16,
    pub procs: Vec<&'a Proc>,
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
    let outcome = load::run(client, &format!("http://127.0.0.1:{}", path.port), mix, spec).await;
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
        .map(|(p, b)| (label(&p.name), per_1k(p.cpu_seconds() - b)))
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

/// Steps the rate up until the path stops keeping up; the last rate it sustained.
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
        let ok = run.outcome.sustained();
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
