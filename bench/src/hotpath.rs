//! The hot path as issue #19 measures it: Converse only, over 10 teams, Envoy with one
//! worker in front of the canned simulator, every path in one run — direct, plain Envoy,
//! the null ext_proc (the mechanism's floor) asking for headers only and for both bodies
//! too (Tally's four messages with nothing behind them), Tally on Redis with and without budget
//! leases, Tally in memory — at 500 and 1,000 req/s, in rounds whose path order
//! alternates; each gateway's highest rate passing a 5 s step at 1k/2k/3k/5k req/s
//! (≥ 99 % success, ≥ 95 % achieved), with the overhead phase's stricter criterion judged
//! on the same steps; LiteLLM at 50 req/s and its ladder; budget strictness with three
//! ext_proc replicas sharing one Redis; a CPU profile of the ext_proc at 500 req/s; and
//! the targets, each met or missed, computed from these numbers (`targets`).

use std::path::Path as FsPath;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tally_config::compiled::CompiledConfig;
use tally_tests::fixtures::process::OwnedProcess;

use crate::load::{self, HttpClient, Outcome, Shape, Spec};
use crate::overhead::{self, MaxThroughput, Path, Run};
use crate::procs::{self, Backends, ExtProcProc};
use crate::strictness::{self, STRICT_MAX_TOKENS, STRICT_WORDS, Strictness, Trial};
use crate::{Args, harness, litellm, mix, profile, targets};

/// Teams the calls rotate over.
pub const TEAMS: usize = 10;
/// The fixed rates of the table.
pub const RATES: [f64; 2] = [500.0, 1000.0];
/// The throughput steps, 5 s each.
const LADDER: [f64; 4] = [1000.0, 2000.0, 3000.0, 5000.0];
/// The strict teams of the three-replica trials (leases on, leases off).
const STRICT_LEASED: &str = "strict-leased";
const STRICT_PER_CALL: &str = "strict-per-call";
const STRICT_BEHIND: &str = "strict-behind";

pub const DIRECT: &str = "direct";
pub const ENVOY: &str = "envoy";
pub const NULL: &str = "envoy+null-extproc";
pub const NULL_BODIES: &str = "envoy+null-extproc(bodies)";
pub const REDIS: &str = "envoy+tally(redis)";
pub const LEASED: &str = "envoy+tally(redis,leases)";
pub const ONE_THREAD: &str = "envoy+tally(redis,current-thread)";
pub const MEMORY: &str = "envoy+tally(memory)";
pub const BEHIND: &str = "envoy+tally(redis,write-behind)";
pub const LEASED_BEHIND: &str = "envoy+tally(redis,leases,write-behind)";
pub const LITELLM: &str = "litellm";

/// The Converse call of the table, one per team.
fn converse_mix() -> Vec<Shape> {
    (0..TEAMS)
        .map(|i| mix::converse(&mix::team_id(i), mix::HAIKU, 120, 512))
        .collect()
}

pub async fn phase(args: &Args) -> Result<Value> {
    let dir = tempfile::Builder::new().prefix("tally-hotpath-").tempdir()?;
    let client = load::client();
    let backends = Backends::start(dir.path())?;
    let (config, call_cost_usd) =
        harness::config_with_strict_teams(TEAMS, args.k, &[STRICT_LEASED, STRICT_PER_CALL, STRICT_BEHIND])?;
    let stack = Stack::start(dir.path(), args, &config, &backends)?;
    let paths = stack.paths(&backends);
    let mix = converse_mix();
    harness::probe(&client, &paths, &mix[..1]).await?;
    eprintln!(
        "\n== hot path: Converse over {TEAMS} teams, {} s per run, {} round(s)",
        args.run_seconds().as_secs(),
        rounds(args)
    );
    let runs = fixed_rates(args, &client, &paths, &mix).await;
    let batching = batching(&stack, backends.redis_port).await;
    let profile = profile::ext_proc_at(&client, &paths, REDIS, &stack.ext_proc(REDIS).proc, &mix, args).await;
    let ladders = ladders(args, &paths[1..], &mix).await;
    let peer = litellm_rows(args, &client, dir.path(), &backends).await;
    drop(paths);
    drop(stack);
    let trial = Trial {
        k: args.k,
        cost_usd: call_cost_usd,
        sim_port: backends.sim_port,
    };
    let strict = replicas_strictness(args, &client, dir.path(), &config, &backends, trial).await?;
    let verdicts = targets::evaluate(&runs, &ladders, &strict);
    let steps = targets::decompose(&runs);
    print_runs(&runs);
    print_ladders(&ladders);
    strictness::print(&strict);
    targets::print_decomposition(&steps);
    targets::print(&verdicts);
    Ok(json!({
        "date": jiff::Timestamp::now().to_string(),
        "loadavg_at_end": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "teams": TEAMS,
        "seconds_per_run": args.run_seconds().as_secs(),
        "settle_behind_ms": args.settle_behind_ms,
        "runs": runs,
        "max_throughput": ladders,
        "litellm": peer,
        "strictness_three_replicas": strict,
        "profile": profile,
        "targets": verdicts,
        "decomposition": steps,
        "write_behind_batching": batching,
    }))
}

/// Calls settled per write-behind batch over the fixed-rate phase, by path, from the
/// ext_procs' own counters (decisions, batches); and what Redis says of its scripts over the
/// same phase, every Redis path together: runs and microseconds inside each (`INFO
/// commandstats`), to tell a script's own work from the round trips around it.
async fn batching(stack: &Stack, redis_port: u16) -> Value {
    let mut out = serde_json::Map::new();
    match redis_scripts(redis_port).await {
        Ok((calls, usec_per_call)) => {
            eprintln!("redis: {calls} script runs, {usec_per_call:.1} µs inside each");
            out.insert("redis_script_runs".into(), json!(calls));
            out.insert("redis_script_usec_per_run".into(), json!(usec_per_call));
        }
        Err(e) => eprintln!("redis INFO commandstats not read: {e}"),
    }
    for path in [BEHIND, LEASED_BEHIND] {
        let metrics = procs::http_get(stack.ext_proc(path).admin_port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let calls = tally_tests::expect::metric_sum(&metrics, "tally_decisions_total", &[]);
        let batches = tally_tests::expect::metric_sum(&metrics, "tally_settle_batches_total", &[]);
        let per_batch = calls / batches.max(1.0);
        eprintln!("{path}: {calls} calls in {batches} write-behind batches, {per_batch:.2} a batch");
        out.insert(
            path.into(),
            json!({"calls": calls, "batches": batches, "calls_per_batch": per_batch}),
        );
    }
    Value::Object(out)
}

/// EVALSHA runs and mean microseconds per run so far, from Redis's `INFO commandstats`.
async fn redis_scripts(port: u16) -> Result<(u64, f64)> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut conn).await?;
    let line = info
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .ok_or_else(|| anyhow::anyhow!("no EVALSHA in INFO commandstats"))?;
    let field = |name: &str| {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in {line}"))
    };
    Ok((field("calls")? as u64, field("usec_per_call")?))
}

fn rounds(args: &Args) -> usize {
    if args.quick { 1 } else { 2 }
}

/// Tally's variants in the table: path name, store, and their flags beyond the bench's own
/// ([`BEHIND_WINDOW`] stands for `--settle-behind-ms` with the bench's window).
const TALLY_VARIANTS: [(&str, bool, &[&str]); 6] = [
    (REDIS, true, &["--budget-leases=off"]),
    (LEASED, true, &["--budget-leases=on"]),
    (ONE_THREAD, true, &["--budget-leases=off", "--runtime=current-thread"]),
    (BEHIND, true, &["--budget-leases=off", BEHIND_WINDOW]),
    (LEASED_BEHIND, true, &["--budget-leases=on", BEHIND_WINDOW]),
    (MEMORY, false, &[]),
];
const BEHIND_WINDOW: &str = "--settle-behind-ms";

/// `flags` as command-line arguments, with the bench's write-behind window filled in.
fn with_window(args: &Args, flags: &[&str]) -> Vec<String> {
    let mut out = args.extproc_args();
    for &f in flags {
        out.push(f.to_string());
        if f == BEHIND_WINDOW {
            out.push(args.settle_behind_ms.to_string());
        }
    }
    out
}

/// Every gateway of the table with its processes: one ext_proc per Tally variant, one Envoy
/// (`--concurrency 1`) per path.
struct Stack {
    /// One per [`TALLY_VARIANTS`], in order.
    tally: Vec<ExtProcProc>,
    null_ext: OwnedProcess,
    null_bodies: OwnedProcess,
    /// Plain, null ext_proc, null ext_proc with bodies, then one per Tally variant.
    envoys: Vec<(OwnedProcess, u16)>,
}

impl Stack {
    fn start(dir: &FsPath, args: &Args, config: &CompiledConfig, backends: &Backends) -> Result<Stack> {
        let mut tally = Vec::new();
        for (name, redis, flags) in TALLY_VARIANTS {
            let a = with_window(args, flags);
            let redis = redis.then_some(backends.redis_port);
            let name = format!("tally-extproc-{}", variant_name(name));
            tally.push(procs::start_extproc(dir, &name, config, redis, &a)?);
        }
        let (null_ext, null_port) = procs::start_null_extproc(args.extproc_workers)?;
        let (null_bodies, bodies_port) = procs::start_null_extproc_mode(args.extproc_workers, Some("bodies"))?;
        let envoy = |name: &str, ext_proc_port: Option<u16>| {
            procs::start_envoy(dir, name, backends.sim_port, ext_proc_port).map(|(p, port, _)| (p, port))
        };
        let mut envoys = vec![
            envoy("envoy-plain", None)?,
            envoy("envoy-null-extproc", Some(null_port))?,
            envoy("envoy-null-bodies", Some(bodies_port))?,
        ];
        for ((name, ..), ext) in TALLY_VARIANTS.iter().zip(&tally) {
            envoys.push(envoy(
                &format!("envoy-tally-{}", variant_name(name)),
                Some(ext.grpc_port),
            )?);
        }
        Ok(Stack {
            tally,
            null_ext,
            null_bodies,
            envoys,
        })
    }

    /// The ext_proc of the Tally variant `name`.
    fn ext_proc(&self, name: &str) -> &ExtProcProc {
        let i = TALLY_VARIANTS
            .iter()
            .position(|v| v.0 == name)
            .expect("a Tally variant");
        &self.tally[i]
    }

    fn paths<'a>(&'a self, b: &'a Backends) -> Vec<Path<'a>> {
        let path = |name, port, procs| Path { name, port, procs };
        let (plain, null, bodies) = (&self.envoys[0], &self.envoys[1], &self.envoys[2]);
        let mut out = vec![
            path(DIRECT, b.sim_port, vec![&b.sim]),
            path(ENVOY, plain.1, vec![&plain.0, &b.sim]),
            path(NULL, null.1, vec![&null.0, &self.null_ext, &b.sim]),
            path(NULL_BODIES, bodies.1, vec![&bodies.0, &self.null_bodies, &b.sim]),
        ];
        for (((name, redis, _), ext), envoy) in TALLY_VARIANTS.iter().zip(&self.tally).zip(&self.envoys[3..]) {
            let mut procs = vec![&envoy.0, &ext.proc];
            if *redis {
                procs.push(&b.redis);
            }
            procs.push(&b.sim);
            out.push(path(*name, envoy.1, procs));
        }
        out
    }
}

/// `envoy+tally(redis,leases)` → `redis-leases`: the variant in its processes' names
/// (`tally-extproc-redis-leases`, `envoy-tally-redis-leases`).
fn variant_name(path: &str) -> String {
    let inner = path.trim_start_matches("envoy+tally").replace(['(', ')'], " ");
    inner
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Every path at each of [`RATES`], in rounds; odd rounds take the paths in reverse so no
/// path always runs right after the same neighbour.
async fn fixed_rates(args: &Args, client: &HttpClient, paths: &[Path<'_>], mix: &[Shape]) -> Vec<Run> {
    for p in paths {
        let warm = spec(200.0, Duration::from_secs(1));
        load::run(client, &p.base(), mix, warm).await;
    }
    let mut runs = Vec::new();
    for round in 0..rounds(args) {
        for rate in RATES {
            let order: Vec<&Path<'_>> = if round % 2 == 0 {
                paths.iter().collect()
            } else {
                paths.iter().rev().collect()
            };
            for p in order {
                let run = overhead::measure(client, p, mix, spec(rate, args.run_seconds())).await;
                let o = &run.outcome;
                eprintln!(
                    "  round {} {:<26} {rate:>5} req/s  p50 {:>6.3}  p99 {:>6.3}  p99.9 {:>6.3} ms  ok {} err {}",
                    round + 1,
                    p.name,
                    o.p50_ms,
                    o.p99_ms,
                    o.p999_ms,
                    o.ok,
                    o.errors + o.dropped
                );
                runs.push(run);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    runs
}

pub fn spec(rate: f64, duration: Duration) -> Spec {
    Spec {
        rate,
        duration,
        timeout: Duration::from_secs(10),
        max_in_flight: 5000,
    }
}

/// Each gateway's highest rate passing a 5 s step by the criterion.
async fn ladders(args: &Args, paths: &[Path<'_>], mix: &[Shape]) -> Vec<MaxThroughput> {
    eprintln!("\n== throughput steps {LADDER:?} req/s, 5 s each (≥ 99 % success, ≥ 95 % achieved)");
    let step = Duration::from_secs(if args.quick { 3 } else { 5 });
    let mut out = Vec::new();
    for p in paths {
        // A fresh pool and a pause, as in the overhead phase's ladder.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let fresh = load::client();
        out.push(overhead::max_throughput(&fresh, p, mix, &LADDER, step, Outcome::keeps_up).await);
    }
    out
}

/// LiteLLM (no budget on the model, one worker) at 50 req/s and its highest rate by the
/// issue's criterion; `null` with the reason when it cannot start.
async fn litellm_rows(args: &Args, client: &HttpClient, dir: &FsPath, backends: &Backends) -> Value {
    eprintln!("\n== LiteLLM proxy (1 worker) — starting");
    let peer = match litellm::start(dir, backends.sim_port, backends.redis_port, 1.0) {
        Ok(p) => p,
        Err(e) => return json!({"error": format!("LiteLLM not measured: {e:#}")}),
    };
    let path = Path {
        name: LITELLM,
        port: peer.port,
        procs: vec![&peer.proc, &backends.redis, &backends.sim],
    };
    let chat = vec![litellm::chat(&peer.master_key, litellm::MODEL, 120, 512)];
    load::run(client, &path.base(), &chat, spec(10.0, Duration::from_secs(2))).await;
    let run = overhead::measure(client, &path, &chat, spec(50.0, args.run_seconds())).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let steps = [25.0, 50.0, 75.0, 100.0, 125.0, 150.0, 200.0];
    let max = overhead::max_throughput(client, &path, &chat, &steps, Duration::from_secs(5), Outcome::keeps_up).await;
    json!({"run": run, "max_throughput": max})
}

/// The strictness trial through three `tally-extproc` replicas (each behind its own Envoy)
/// sharing the Redis: leases on, leases off, leases on with write-behind settlement.
async fn replicas_strictness(
    args: &Args,
    client: &HttpClient,
    dir: &FsPath,
    config: &CompiledConfig,
    backends: &Backends,
    trial: Trial,
) -> Result<Vec<Strictness>> {
    let mut rows = Vec::new();
    let variants: [(&str, &str, &[&str]); 3] = [
        ("leases on", STRICT_LEASED, &["--budget-leases=on"]),
        ("leases off", STRICT_PER_CALL, &["--budget-leases=off"]),
        (
            "leases on, write-behind",
            STRICT_BEHIND,
            &["--budget-leases=on", BEHIND_WINDOW],
        ),
    ];
    for (variant, team, flags) in variants {
        let mut procs = Vec::new();
        let mut bases = Vec::new();
        for i in 0..3 {
            let a = with_window(args, flags);
            let name = format!("tally-extproc-{team}-{i}");
            let ext = procs::start_extproc(dir, &name, config, Some(backends.redis_port), &a)?;
            let (envoy, port, _) = procs::start_envoy(
                dir,
                &format!("envoy-{team}-{i}"),
                backends.sim_port,
                Some(ext.grpc_port),
            )?;
            bases.push(format!("http://127.0.0.1:{port}"));
            procs.push((ext, envoy));
        }
        let shape = mix::converse(team, mix::HAIKU, STRICT_WORDS, STRICT_MAX_TOKENS);
        let gateway = format!("tally, 3 replicas, one redis, {variant}");
        rows.push(strictness::run(&gateway, client, &bases, &shape, trial).await);
    }
    Ok(rows)
}

fn print_runs(runs: &[Run]) {
    println!("\nHot path (Converse, {TEAMS} teams; ms from scheduled send; CPU ms per call by process)");
    println!(
        "{:<26} {:>5} {:>7} {:>7} {:>7} {:>6}  cpu-ms per call",
        "path", "rate", "p50", "p99", "p99.9", "errors"
    );
    for r in runs {
        let o = &r.outcome;
        let cpu: Vec<String> = r
            .cpu_s_per_1k
            .iter()
            .filter(|(k, _)| k.as_str() != "load-generator")
            .map(|(k, v)| format!("{k}={v:.3}"))
            .collect();
        println!(
            "{:<26} {:>5} {:>7.3} {:>7.3} {:>7.3} {:>6}  {}",
            r.path,
            o.target_rps,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms,
            o.errors + o.dropped,
            cpu.join(" ")
        );
    }
}

fn print_ladders(ladders: &[MaxThroughput]) {
    println!("\nHighest rate passing a step (issue's criterion / overhead phase's: no error, p99 < 50 ms)");
    for m in ladders {
        println!(
            "  {:<26} {:>6} / {:>6}",
            m.path,
            m.sustained_rps,
            targets::strictly_sustained(m)
        );
    }
}
