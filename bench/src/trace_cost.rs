//! What the call spans cost the data path: two identical Tally paths (Envoy + `tally-extproc`
//! on the same Redis), one exporting a span per call over OTLP/gRPC to a real Jaeger v2, one
//! with tracing off, measured in alternating rounds at the same fixed rate in the same run.
//! Reported: the ext_proc's CPU seconds per 1000 requests (spans are built and exported in
//! its process, so this is where they cost), the path's (Envoy + ext_proc), and latency.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use serde::Serialize;
use serde_json::{Value, json};
use tally_config::money::Nanos;
use tally_tests::fixtures::jaeger::Jaeger;

use crate::load::{self, Spec};
use crate::overhead::{Path, Run, measure};
use crate::procs::{self, Backends, http_get};
use crate::{Args, mix};

const OFF: &str = "tracing off";
const ON: &str = "tracing on";

/// One path's numbers, averaged over its rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub path: String,
    pub ok: u64,
    pub errors: u64,
    pub extproc_cpu_s_per_1k: f64,
    pub path_cpu_s_per_1k: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Averages of `runs` of one path: CPU by process per 1000 requests, latency percentiles.
fn side(name: &str, runs: &[&Run]) -> Side {
    let n = runs.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Run) -> f64| runs.iter().map(|r| f(r)).sum::<f64>() / n;
    let cpu = |r: &Run, role: &str| {
        r.cpu_s_per_1k
            .iter()
            .filter(|(k, _)| k.starts_with(role))
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    Side {
        path: name.to_string(),
        ok: runs.iter().map(|r| r.outcome.ok).sum(),
        errors: runs.iter().map(|r| r.outcome.errors + r.outcome.dropped).sum(),
        extproc_cpu_s_per_1k: mean(&|r| cpu(r, "tally-extproc")),
        path_cpu_s_per_1k: mean(&|r| cpu(r, "tally-extproc") + cpu(r, "envoy")),
        p50_ms: mean(&|r| r.outcome.p50_ms),
        p99_ms: mean(&|r| r.outcome.p99_ms),
    }
}

/// The phase: both paths warmed, then `rounds` rounds of both at `--trace-rate`, their order
/// alternating so drift on the shared machine falls on both alike.
pub async fn phase(args: &Args) -> Result<Value> {
    let dir = tempfile::Builder::new().prefix("tally-bench-tracing-").tempdir()?;
    let backends = Backends::start(dir.path())?;
    let jaeger = Jaeger::start().await;
    let config = mix::config(mix::OVERHEAD_TEAMS, Nanos::parse_usd("1000000")?)?;
    let otel: Vec<(String, String)> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_SERVICE_NAME", "tally-bench".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let extproc_args = args.extproc_args();
    let redis = Some(backends.redis_port);
    let off = procs::start_extproc(dir.path(), "tally-extproc-off", &config, redis, &extproc_args)?;
    let on = procs::start_extproc_with_env(dir.path(), "tally-extproc-on", &config, redis, &extproc_args, &otel)?;
    let envoy_off = procs::start_envoy(dir.path(), "envoy-off", backends.sim_port, Some(off.grpc_port))?;
    let envoy_on = procs::start_envoy(dir.path(), "envoy-on", backends.sim_port, Some(on.grpc_port))?;
    let paths = [
        Path {
            name: OFF,
            port: envoy_off.1,
            procs: vec![&envoy_off.0, &off.proc],
        },
        Path {
            name: ON,
            port: envoy_on.1,
            procs: vec![&envoy_on.0, &on.proc],
        },
    ];
    let runs = rounds(args, &paths).await;
    let spans = span_counters(on.admin_port);
    let untraced = span_counters(off.admin_port);
    ensure!(
        untraced.values().all(|v| *v == 0.0),
        "the untraced ext_proc counted spans: {untraced:?}"
    );
    let pick = |name: &str| runs.iter().filter(|r| r.path == name).collect::<Vec<_>>();
    let (off_side, on_side) = (side(OFF, &pick(OFF)), side(ON, &pick(ON)));
    print(&off_side, &on_side, &spans);
    Ok(json!({
        "rate": args.trace_rate,
        "exporter": "OTLP/gRPC to Jaeger v2 (all-in-one, memory storage) on loopback",
        "off": off_side,
        "on": on_side,
        "extproc_cpu_ratio": on_side.extproc_cpu_s_per_1k / off_side.extproc_cpu_s_per_1k,
        "path_cpu_ratio": on_side.path_cpu_s_per_1k / off_side.path_cpu_s_per_1k,
        "added_p50_ms": on_side.p50_ms - off_side.p50_ms,
        "added_p99_ms": on_side.p99_ms - off_side.p99_ms,
        "spans": spans,
        "runs": runs,
    }))
}

/// Warms both paths, then measures them in alternating order, round after round.
async fn rounds(args: &Args, paths: &[Path<'_>; 2]) -> Vec<Run> {
    let client = load::client();
    let mix = mix::overhead_mix(mix::OVERHEAD_TEAMS);
    let spec = |rate, duration| Spec {
        rate,
        duration,
        timeout: Duration::from_secs(10),
        max_in_flight: 5000,
    };
    for p in paths {
        load::run(&client, &p.base(), &mix, spec(200.0, Duration::from_secs(2))).await;
    }
    let n = if args.quick { 3 } else { 6 };
    eprintln!(
        "\n== tracing: {n} rounds × {} s at {} req/s, tracing off vs on (OTLP/gRPC → Jaeger)",
        args.run_seconds().as_secs(),
        args.trace_rate
    );
    let mut runs = Vec::new();
    for round in 0..n {
        let order: [&Path<'_>; 2] = if round % 2 == 0 {
            [&paths[0], &paths[1]]
        } else {
            [&paths[1], &paths[0]]
        };
        for p in order {
            let run = measure(&client, p, &mix, spec(args.trace_rate, args.run_seconds())).await;
            let cpu: Vec<String> = run.cpu_s_per_1k.iter().map(|(k, v)| format!("{k}={v:.3}")).collect();
            eprintln!(
                "  round {round} {:<12} p50 {:>7.3} p99 {:>7.3} ms ok {} err {}  {}",
                p.name,
                run.outcome.p50_ms,
                run.outcome.p99_ms,
                run.outcome.ok,
                run.outcome.errors + run.outcome.dropped,
                cpu.join(" ")
            );
            runs.push(run);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    runs
}

/// `tally_trace_spans_{exported,dropped,failed}_total` of the ext_proc at `admin_port`.
fn span_counters(admin_port: u16) -> BTreeMap<String, f64> {
    let body = http_get(admin_port, "/metrics").map(|(_, b)| b).unwrap_or_default();
    ["exported", "dropped", "failed"]
        .into_iter()
        .map(|what| {
            let name = format!("tally_trace_spans_{what}_total ");
            let value = body
                .lines()
                .find_map(|l| l.strip_prefix(name.as_str()))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0);
            (what.to_string(), value)
        })
        .collect()
}

fn print(off: &Side, on: &Side, spans: &BTreeMap<String, f64>) {
    println!("\nTracing off vs on (means over rounds; CPU seconds per 1000 requests)");
    println!(
        "{:<12} {:>8} {:>8} {:>14} {:>14} {:>8}",
        "path", "p50", "p99", "ext_proc cpu", "path cpu", "errors"
    );
    for s in [off, on] {
        println!(
            "{:<12} {:>8.3} {:>8.3} {:>14.4} {:>14.4} {:>8}",
            s.path, s.p50_ms, s.p99_ms, s.extproc_cpu_s_per_1k, s.path_cpu_s_per_1k, s.errors
        );
    }
    println!(
        "tracing on / off: ext_proc CPU ×{:.3}, path CPU ×{:.3}, p50 {:+.3} ms, p99 {:+.3} ms; spans {spans:?}",
        on.extproc_cpu_s_per_1k / off.extproc_cpu_s_per_1k,
        on.path_cpu_s_per_1k / off.path_cpu_s_per_1k,
        on.p50_ms - off.p50_ms,
        on.p99_ms - off.p99_ms
    );
}
