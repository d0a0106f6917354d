//! Issue #19's targets judged from one hot-path run: numbers in, verdicts out. Each target
//! is judged per round (a Tally run against the baseline measured in the same round), so
//! a verdict is `met` only when every round met it.

use serde::Serialize;

use crate::hotpath::{BEHIND, ENVOY, LEASED, LEASED_BEHIND, MEMORY, NULL, NULL_BODIES, ONE_THREAD, RATES, REDIS};
use crate::load::Outcome;
use crate::overhead::{MaxThroughput, Run};
use crate::strictness::Strictness;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Judgement {
    Met,
    Missed,
    /// Met in some rounds, missed in others.
    Mixed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub target: String,
    pub path: String,
    /// Each round's value, in the target's unit.
    pub measured: Vec<f64>,
    pub met: Judgement,
}

fn verdict(target: String, path: &str, measured: Vec<f64>, ok: impl Fn(f64) -> bool) -> Verdict {
    let passed = measured.iter().filter(|v| ok(**v)).count();
    let met = match passed {
        n if n == measured.len() && n > 0 => Judgement::Met,
        0 => Judgement::Missed,
        _ => Judgement::Mixed,
    };
    Verdict {
        target,
        path: path.to_string(),
        measured,
        met,
    }
}

/// What a target's value must be.
#[derive(Debug, Clone, Copy)]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
}
use Bound::{AtLeast, AtMost};

impl Bound {
    fn holds(self, v: f64) -> bool {
        match self {
            AtMost(max) => v <= max,
            AtLeast(min) => v >= min,
        }
    }
}

/// The runs of `path` at `rate`, one per round, in round order.
fn cell<'a>(runs: &'a [Run], path: &str, rate: f64) -> Vec<&'a Run> {
    runs.iter()
        .filter(|r| r.path == path && r.outcome.target_rps == rate)
        .collect()
}

/// `f(tally run, baseline run)` for each round.
fn per_round(runs: &[Run], path: &str, baseline: &str, rate: f64, f: impl Fn(&Run, &Run) -> f64) -> Vec<f64> {
    cell(runs, path, rate)
        .into_iter()
        .zip(cell(runs, baseline, rate))
        .map(|(r, b)| f(r, b))
        .collect()
}

/// CPU ms per call of the path's gateway processes: everything but the simulated Bedrock
/// (which every path shares) and the load generator.
pub fn gateway_cpu(run: &Run) -> f64 {
    run.cpu_s_per_1k
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "bedrock-sim" | "load-generator"))
        .map(|(_, v)| v)
        .sum()
}

fn process_cpu(run: &Run, prefix: &str) -> f64 {
    run.cpu_s_per_1k
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// The highest step passing the overhead phase's criterion before any step failed it.
pub fn strictly_sustained(m: &MaxThroughput) -> f64 {
    m.steps
        .iter()
        .take_while(|s| Outcome::sustained(&s.outcome))
        .last()
        .map_or(0.0, |s| s.outcome.target_rps)
}

fn sustained(ladders: &[MaxThroughput], path: &str) -> f64 {
    ladders.iter().find(|m| m.path == path).map_or(0.0, |m| m.sustained_rps)
}

/// The targets of one Tally path: each with its per-round values and the bound they must keep.
fn targets_of(runs: &[Run], ladders: &[MaxThroughput], path: &str) -> Vec<(String, Vec<f64>, Bound)> {
    let low = RATES[0];
    let added = |q: fn(&Outcome) -> f64| per_round(runs, path, ENVOY, low, |r, b| q(&r.outcome) - q(&b.outcome));
    let ratio = |q: fn(&Outcome) -> f64| per_round(runs, path, NULL, low, |r, b| q(&r.outcome) / q(&b.outcome));
    let per_process =
        |rate, prefix| -> Vec<f64> { cell(runs, path, rate).iter().map(|r| process_cpu(r, prefix)).collect() };
    let share_of = |baseline| vec![sustained(ladders, path) / sustained(ladders, baseline).max(1.0)];
    let mut targets = vec![
        (
            "p50 added over Envoy at 500 req/s ≤ 0.3 ms".to_string(),
            added(|o| o.p50_ms),
            AtMost(0.3),
        ),
        (
            "p99 added over Envoy at 500 req/s ≤ 1 ms".into(),
            added(|o| o.p99_ms),
            AtMost(1.0),
        ),
        (
            "p50 ≤ 1.2× the null ext_proc's at 500 req/s".into(),
            ratio(|o| o.p50_ms),
            AtMost(1.2),
        ),
        (
            "p99 ≤ 1.2× the null ext_proc's at 500 req/s".into(),
            ratio(|o| o.p99_ms),
            AtMost(1.2),
        ),
    ];
    for rate in RATES {
        let cpu = per_round(runs, path, NULL, rate, |r, b| gateway_cpu(r) / gateway_cpu(b));
        targets.extend([
            (
                format!("CPU per call, gateway processes, ≤ 1.3× the null ext_proc path's at {rate} req/s"),
                cpu,
                AtMost(1.3),
            ),
            (
                format!("ext_proc CPU ≤ 0.1 ms per call at {rate} req/s"),
                per_process(rate, "tally-extproc"),
                AtMost(0.1),
            ),
            (
                format!("Redis CPU ≤ 0.03 ms per call at {rate} req/s"),
                per_process(rate, "redis"),
                AtMost(0.03),
            ),
        ]);
    }
    let p50 = per_round(runs, path, MEMORY, low, |r, b| r.outcome.p50_ms / b.outcome.p50_ms);
    let cpu = per_round(runs, path, MEMORY, low, |r, b| gateway_cpu(r) / gateway_cpu(b));
    targets.extend([
        (
            "sustained rate ≥ 70 % of plain Envoy's".into(),
            share_of(ENVOY),
            AtLeast(0.7),
        ),
        (
            "p50 within 10 % of the memory store's at 500 req/s".into(),
            p50,
            AtMost(1.1),
        ),
        (
            "CPU per call within 10 % of the memory store's at 500 req/s".into(),
            cpu,
            AtMost(1.1),
        ),
        (
            "sustained rate within 10 % of the memory store's".into(),
            share_of(MEMORY),
            AtLeast(0.9),
        ),
    ]);
    targets
}

/// Tally on Redis and its variants (leases, one runtime thread, write-behind settlement).
const REDIS_PATHS: [&str; 5] = [REDIS, LEASED, ONE_THREAD, BEHIND, LEASED_BEHIND];

/// Every target of the issue for the Redis path and each of its variants.
pub fn evaluate(runs: &[Run], ladders: &[MaxThroughput], strict: &[Strictness]) -> Vec<Verdict> {
    let mut out = Vec::new();
    for path in REDIS_PATHS {
        for (target, measured, bound) in targets_of(runs, ladders, path) {
            out.push(verdict(target, path, measured, |v| bound.holds(v)));
        }
    }
    for s in strict {
        out.push(verdict(
            "0 % overspend".into(),
            &s.gateway,
            vec![s.overspend_pct],
            |v| v == 0.0,
        ));
    }
    out
}

/// One step from plain Envoy to Tally: what it adds, averaged over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rate: f64,
    pub from: String,
    pub to: String,
    pub added_p50_ms: f64,
    pub added_gateway_cpu_ms: f64,
}

/// Envoy → null ext_proc (the call-out) → null with both bodies (two more messages) →
/// Tally on Redis (its decisions, pricing and store), then each variant of the Redis path
/// against it, at each rate: where the added latency and CPU come from.
pub fn decompose(runs: &[Run]) -> Vec<Step> {
    let chain = [ENVOY, NULL, NULL_BODIES, REDIS];
    let steps = chain
        .windows(2)
        .map(|p| (p[0], p[1]))
        .chain(REDIS_PATHS[1..].iter().map(|&variant| (REDIS, variant)));
    let steps: Vec<(&str, &str)> = steps.collect();
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut out = Vec::new();
    for rate in RATES {
        for &(from, to) in &steps {
            out.push(Step {
                rate,
                from: from.into(),
                to: to.into(),
                added_p50_ms: mean(per_round(runs, to, from, rate, |r, b| {
                    r.outcome.p50_ms - b.outcome.p50_ms
                })),
                added_gateway_cpu_ms: mean(per_round(runs, to, from, rate, |r, b| gateway_cpu(r) - gateway_cpu(b))),
            });
        }
    }
    out
}

pub fn print_decomposition(steps: &[Step]) {
    println!("\nWhere the added latency and CPU come from (mean over rounds; gateway CPU = all but the simulator)");
    println!("{:>5}  {:<58} {:>9} {:>12}", "rate", "step", "+p50 ms", "+cpu ms/call");
    for s in steps {
        println!(
            "{:>5}  {:<58} {:>9.3} {:>12.3}",
            s.rate,
            format!("{} → {}", s.from, s.to),
            s.added_p50_ms,
            s.added_gateway_cpu_ms
        );
    }
}

pub fn print(verdicts: &[Verdict]) {
    println!("\nIssue #19's targets (each value one round, or one run)");
    for v in verdicts {
        let values: Vec<String> = v.measured.iter().map(|x| format!("{x:.3}")).collect();
        println!(
            "  {:<7} {:<28} {:<76} {}",
            format!("{:?}", v.met).to_lowercase(),
            v.path,
            v.target,
            values.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn run(path: &str, rate: f64, p50: f64, cpu: &[(&str, f64)]) -> Run {
        Run {
            path: path.into(),
            outcome: Outcome {
                target_rps: rate,
                p50_ms: p50,
                p99_ms: p50 * 2.0,
                ..Outcome::default()
            },
            cpu_s_per_1k: cpu.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_target_is_met_only_when_every_round_meets_it() {
        assert_eq!(
            verdict("t".into(), "p", vec![0.1, 0.2], |v| v <= 0.3).met,
            Judgement::Met
        );
        assert_eq!(
            verdict("t".into(), "p", vec![0.1, 0.4], |v| v <= 0.3).met,
            Judgement::Mixed
        );
        assert_eq!(
            verdict("t".into(), "p", vec![0.5, 0.4], |v| v <= 0.3).met,
            Judgement::Missed
        );
        assert_eq!(verdict("t".into(), "p", vec![], |v| v <= 0.3).met, Judgement::Missed);
    }

    #[test]
    fn added_latency_pairs_each_round_with_its_own_baseline() {
        let runs = vec![
            run(ENVOY, 500.0, 0.25, &[]),
            run(REDIS, 500.0, 0.50, &[]),
            run(REDIS, 500.0, 0.70, &[]),
            run(ENVOY, 500.0, 0.30, &[]),
        ];
        let v = per_round(&runs, REDIS, ENVOY, 500.0, |r, b| r.outcome.p50_ms - b.outcome.p50_ms);
        assert_eq!(v.len(), 2);
        assert!((v[0] - 0.25).abs() < 1e-9 && (v[1] - 0.40).abs() < 1e-9, "{v:?}");
    }

    #[test]
    fn gateway_cpu_leaves_out_the_simulator_and_the_load_generator() {
        let r = run(
            REDIS,
            500.0,
            1.0,
            &[
                ("envoy-tally-redis", 0.4),
                ("tally-extproc-redis", 0.3),
                ("redis", 0.1),
                ("bedrock-sim", 0.05),
                ("load-generator", 0.2),
            ],
        );
        assert!((gateway_cpu(&r) - 0.8).abs() < 1e-9);
        assert!((process_cpu(&r, "tally-extproc") - 0.3).abs() < 1e-9);
    }
}
