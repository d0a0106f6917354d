//! The run: starts the processes, runs the phases in order, prints each table as
//! soon as it is measured and writes every number to the JSON results file.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tally_config::money::Nanos;
use tally_config::pricing::{PriceBook, Usage, cost};

use crate::load::{self, Spec};
use crate::overhead::{self, Path, Run};
use crate::procs::{self, Proc};
use crate::scale;
use crate::strictness;
use crate::{Args, Phase, litellm, mix};

/// The path with the production store, the one compared with the peers.
const TALLY_REDIS: &str = "envoy+tally(redis)";
/// Teams in the overhead config; calls rotate over all of them.
const OVERHEAD_TEAMS: usize = 100;
/// The team whose budget fits exactly k calls.
const STRICT_TEAM: &str = "strict";
/// The strictness call: this many prompt words (= input tokens) and output tokens.
const STRICT_WORDS: usize = 100;
const STRICT_MAX_TOKENS: u64 = 16;

struct Machine;

impl Machine {
    fn describe() -> Value {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_default();
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let load = std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string();
        json!({"cpu": cpu, "cores": cores, "memory": mem, "kernel": kernel, "loadavg_at_start": load})
    }
}

pub async fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let dir = tempfile::Builder::new().prefix("tally-bench-").tempdir()?;
    let mut results = serde_json::Map::new();
    results.insert("date".into(), json!(jiff::Timestamp::now().to_string()));
    results.insert("machine".into(), Machine::describe());
    results.insert("command".into(), json!(std::env::args().collect::<Vec<_>>().join(" ")));
    eprintln!("machine: {}", results["machine"]);

    let client = load::client();
    let (sim, sim_port) = procs::start_sim(dir.path())?;
    let (redis, redis_port) = procs::start_redis(dir.path())?;

    // The strict team's budget: exactly k calls of the strictness shape, priced from the shipped catalog.
    let mut config = mix::config(OVERHEAD_TEAMS, Nanos::parse_usd("1000000")?)?;
    let book = PriceBook::new(&config.catalog);
    let prices = book
        .lookup(mix::HAIKU, "us-east-1")
        .expect("the shipped catalog prices haiku")
        .entry
        .prices;
    let call_cost = cost(
        &Usage {
            input: STRICT_WORDS as u64,
            output: STRICT_MAX_TOKENS,
            ..Usage::default()
        },
        &prices,
    );
    config
        .teams
        .push(mix::team(STRICT_TEAM, Nanos(call_cost.0 * args.k as i64)));
    config.teams.sort_by(|a, b| a.team.cmp(&b.team));
    let call_cost_usd = call_cost.0 as f64 / 1e9;

    let ext_redis = procs::start_extproc(
        dir.path(),
        "tally-extproc-redis",
        &config,
        Some(redis_port),
        &args.extproc_arg,
    )?;
    let ext_mem = procs::start_extproc(dir.path(), "tally-extproc-memory", &config, None, &args.extproc_args())?;
    let (null_ext, null_port) = procs::start_null_extproc(dir.path(), args.extproc_workers)?;
    let (envoy_plain, plain_port, _) = procs::start_envoy(dir.path(), "envoy-plain", sim_port, None)?;
    let (envoy_null, null_path_port, _) =
        procs::start_envoy(dir.path(), "envoy-null-extproc", sim_port, Some(null_port))?;
    let (envoy_redis, redis_path_port, _) =
        procs::start_envoy(dir.path(), "envoy-tally-redis", sim_port, Some(ext_redis.grpc_port))?;
    let (envoy_mem, mem_path_port, _) =
        procs::start_envoy(dir.path(), "envoy-tally-memory", sim_port, Some(ext_mem.grpc_port))?;
    let paths = [
        Path {
            name: "direct",
            port: sim_port,
            procs: vec![&sim],
        },
        Path {
            name: "envoy",
            port: plain_port,
            procs: vec![&envoy_plain, &sim],
        },
        Path {
            name: "envoy+null-extproc",
            port: null_path_port,
            procs: vec![&envoy_null, &null_ext, &sim],
        },
        Path {
            name: TALLY_REDIS,
            port: redis_path_port,
            procs: vec![&envoy_redis, &ext_redis.proc, &redis, &sim],
        },
        Path {
            name: "envoy+tally(memory)",
            port: mem_path_port,
            procs: vec![&envoy_mem, &ext_mem.proc, &sim],
        },
    ];
    let overhead_mix = mix::overhead_mix(OVERHEAD_TEAMS);

    // Every path answers the whole mix before anything is timed.
    for p in &paths {
        for shape in &overhead_mix[..3] {
            let (status, body) = load::send_full(&client, &format!("http://127.0.0.1:{}", p.port), shape)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.name))?;
            anyhow::ensure!(
                status == 200,
                "{} answered {status} to {}: {}",
                p.name,
                shape.path,
                String::from_utf8_lossy(&body)
            );
        }
    }

    if matches!(args.phase, Phase::All | Phase::Overhead) {
        let section = overhead_phase(&args, &client, &paths, &overhead_mix).await;
        let mut section = section;
        for (name, port) in [("redis", ext_redis.admin_port), ("memory", ext_mem.admin_port)] {
            let outcomes = metric_by_label(port, "tally_decisions_total", "outcome");
            eprintln!("ext_proc ({name}) decisions by outcome over the whole phase: {outcomes:?}");
            section[format!("extproc_{name}_outcomes")] = json!(outcomes);
            let bounds = metric_by_label(port, "tally_reservations_total", "bound");
            eprintln!("ext_proc ({name}) reservations by bound (headers = request body not read): {bounds:?}");
            section[format!("extproc_{name}_reservation_bounds")] = json!(bounds);
        }
        results.insert("overhead".into(), section);
    }

    if matches!(args.phase, Phase::All | Phase::Peers) {
        let tally_strict_shape = mix::converse(STRICT_TEAM, mix::HAIKU, STRICT_WORDS, STRICT_MAX_TOKENS);
        let section = peers_phase(
            &args,
            &client,
            dir.path(),
            (&sim, sim_port),
            (&redis, redis_port),
            &paths,
            &tally_strict_shape,
            call_cost_usd,
        )
        .await;
        results.insert("peers".into(), section);
    }
    drop((
        envoy_plain,
        envoy_null,
        null_ext,
        envoy_redis,
        envoy_mem,
        ext_redis,
        ext_mem,
    ));

    if matches!(args.phase, Phase::All | Phase::Scale) {
        let section = scale_phase(&args, &client, dir.path(), sim_port, redis_port).await?;
        results.insert("scale".into(), section);
    }

    results.insert("wall_seconds".into(), json!(started.elapsed().as_secs_f64()));
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&Value::Object(results))?)?;
    eprintln!(
        "\nresults written to {} ({:.0} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A counter of the ext_proc summed by one label (e.g. `tally_decisions_total` by outcome:
/// a check that calls were really decided and settled).
fn metric_by_label(admin_port: u16, metric: &str, label: &str) -> std::collections::BTreeMap<String, f64> {
    let body = procs::http_get(admin_port, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let mut out = std::collections::BTreeMap::new();
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

async fn overhead_phase(args: &Args, client: &load::HttpClient, paths: &[Path<'_>], mix: &[load::Shape]) -> Value {
    eprintln!(
        "\n== overhead: {} s per run, mix Converse / InvokeModel / ConverseStream over {OVERHEAD_TEAMS} teams",
        args.run_seconds().as_secs()
    );
    // Warm every path (connection pools, JIT-free but cache-cold processes).
    for p in paths {
        let warm = Spec {
            rate: 200.0,
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_in_flight: 2000,
        };
        load::run(client, &format!("http://127.0.0.1:{}", p.port), mix, warm).await;
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
            let run = overhead::measure(client, p, mix, spec).await;
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
    let added: Vec<overhead::Added> = runs
        .iter()
        .filter(|r| r.path.starts_with("envoy+"))
        .filter_map(|r| {
            let base = runs
                .iter()
                .find(|b| b.path == "envoy" && b.outcome.target_rps == r.outcome.target_rps)?;
            Some(overhead::added(r, base))
        })
        .collect();
    print_overhead(&runs, &added);

    if args.no_ladder {
        return json!({ "runs": runs, "added_over_envoy": added });
    }
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
        let fresh = crate::load::client();
        maxes.push(overhead::max_throughput(&fresh, p, mix, &ladder, step).await);
    }
    println!("\nMaximum sustained throughput (req/s, {} s steps)", step.as_secs());
    for m in &maxes {
        println!("  {:<22} {:>6}", m.path, m.sustained_rps);
    }
    json!({"runs": runs, "added_over_envoy": added, "max_throughput": maxes})
}

fn print_overhead(runs: &[Run], added: &[overhead::Added]) {
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

#[allow(clippy::too_many_arguments)]
async fn peers_phase(
    args: &Args,
    client: &load::HttpClient,
    dir: &std::path::Path,
    (sim, sim_port): (&Proc, u16),
    (redis, redis_port): (&Proc, u16),
    paths: &[Path<'_>],
    tally_strict: &load::Shape,
    call_cost_usd: f64,
) -> Value {
    let mut section = serde_json::Map::new();
    let (direct_path, tally_path) = (
        &paths[0],
        paths.iter().find(|p| p.name == TALLY_REDIS).expect("the Redis path"),
    );
    // Tally's strictness first: it needs no peer.
    let tally_base = format!("http://127.0.0.1:{}", tally_path.port);
    let tally = strictness::run(
        "tally (envoy+ext_proc+redis)",
        client,
        &tally_base,
        tally_strict,
        sim_port,
        args.k,
        call_cost_usd,
    )
    .await;
    let mut strict_rows = vec![tally];

    eprintln!("\n== LiteLLM proxy (1 worker, Redis) — starting");
    let peer = match litellm::start(dir, sim_port, redis_port, args.k as f64 * call_cost_usd) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("LiteLLM not measured: {e:#}");
            section.insert("litellm_error".into(), json!(format!("{e:#}")));
            print_strictness(&strict_rows);
            section.insert("strictness".into(), json!(strict_rows));
            return Value::Object(section);
        }
    };
    let litellm_base = format!("http://127.0.0.1:{}", peer.port);
    let probe = litellm::chat(&peer.master_key, litellm::MODEL, 120, 512);
    match load::send_full(client, &litellm_base, &probe).await {
        Ok((200, _)) => {}
        Ok((s, body)) => eprintln!("LiteLLM probe answered {s}: {}", String::from_utf8_lossy(&body)),
        Err(e) => eprintln!("LiteLLM probe failed: {e}"),
    }
    let litellm_path = Path {
        name: "litellm",
        port: peer.port,
        procs: vec![&peer.proc, redis, sim],
    };
    // The same call three ways: Converse straight to the simulator, through the
    // Tally stack, and as a chat completion LiteLLM turns into a Converse call.
    let converse = vec![mix::converse(&mix::team_id(0), mix::HAIKU, 120, 512)];
    let chat = vec![litellm::chat(&peer.master_key, litellm::MODEL, 120, 512)];
    let spec = Spec {
        rate: args.peer_rate,
        duration: args.run_seconds().max(Duration::from_secs(5)),
        timeout: Duration::from_secs(30),
        max_in_flight: 2000,
    };
    let warm = Spec {
        rate: 10.0,
        duration: Duration::from_secs(2),
        ..spec
    };
    load::run(client, &litellm_base, &chat, warm).await;
    let direct = overhead::measure(client, direct_path, &converse, spec).await;
    let tally_run = overhead::measure(client, tally_path, &converse, spec).await;
    let litellm_run = overhead::measure(client, &litellm_path, &chat, spec).await;
    let tally_added = overhead::added(&tally_run, &direct);
    let litellm_added = overhead::added(&litellm_run, &direct);
    println!(
        "\nPeers at {} req/s (Converse / chat completion → Converse on the same simulator; added over direct)",
        args.peer_rate
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "path", "p50", "p99", "p99.9", "errors", "+p50", "+p99"
    );
    for (r, a) in [
        (&direct, None),
        (&tally_run, Some(&tally_added)),
        (&litellm_run, Some(&litellm_added)),
    ] {
        let o = &r.outcome;
        let (ap50, ap99) = a.map_or((0.0, 0.0), |a| (a.p50_ms, a.p99_ms));
        println!(
            "{:<22} {:>8.3} {:>8.3} {:>8.3} {:>8} {:>9.3} {:>9.3}",
            r.path,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms,
            o.errors + o.dropped,
            ap50,
            ap99
        );
    }
    let ratio_p50 = litellm_added.p50_ms / tally_added.p50_ms.max(0.001);
    let ratio_p99 = litellm_added.p99_ms / tally_added.p99_ms.max(0.001);
    println!("LiteLLM adds {ratio_p50:.0}× Tally's added p50 and {ratio_p99:.0}× its added p99");

    eprintln!("  LiteLLM throughput ladder");
    // Let a backlog from the run above drain first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ladder = if args.quick {
        vec![10.0, 25.0, 50.0, 100.0]
    } else {
        vec![10.0, 25.0, 50.0, 75.0, 100.0, 125.0, 150.0, 200.0]
    };
    let step = Duration::from_secs(if args.quick { 3 } else { 5 });
    let litellm_max = overhead::max_throughput(client, &litellm_path, &chat, &ladder, step).await;
    println!(
        "LiteLLM maximum sustained throughput: {} req/s",
        litellm_max.sustained_rps
    );

    let budget_shape = litellm::chat(&peer.master_key, litellm::BUDGET_MODEL, STRICT_WORDS, STRICT_MAX_TOKENS);
    let lite = strictness::run(
        "litellm (deployment max_budget, redis)",
        client,
        &litellm_base,
        &budget_shape,
        sim_port,
        args.k,
        call_cost_usd,
    )
    .await;
    strict_rows.push(lite);
    print_strictness(&strict_rows);

    section.insert("rate".into(), json!(args.peer_rate));
    section.insert("runs".into(), json!([direct, tally_run, litellm_run]));
    section.insert("added_over_direct".into(), json!([tally_added, litellm_added]));
    section.insert("litellm_over_tally_added_p50".into(), json!(ratio_p50));
    section.insert("litellm_over_tally_added_p99".into(), json!(ratio_p99));
    section.insert("litellm_max_throughput".into(), json!(litellm_max));
    section.insert("strictness".into(), json!(strict_rows));
    Value::Object(section)
}

fn print_strictness(rows: &[strictness::Strictness]) {
    println!("\nBudget strictness: budget = k calls; 10×k concurrent, then one at a time until refused");
    println!(
        "{:<40} {:>4} {:>6} {:>8} {:>8} {:>6} {:>7} {:>11} {:>11} {:>9}",
        "gateway", "k", "sent", "burst ok", "refused", "seq ok", "billed", "budget $", "billed $", "overspend"
    );
    for r in rows {
        println!(
            "{:<40} {:>4} {:>6} {:>8} {:>8} {:>6} {:>7} {:>11.6} {:>11.6} {:>8.0}%",
            r.gateway,
            r.k,
            r.concurrent,
            r.burst_admitted,
            r.burst_refused,
            r.sequential_admitted,
            r.billed_calls,
            r.budget_usd,
            r.billed_usd,
            r.overspend_pct
        );
    }
}

async fn scale_phase(
    args: &Args,
    client: &load::HttpClient,
    dir: &std::path::Path,
    sim_port: u16,
    redis_port: u16,
) -> Result<Value> {
    eprintln!("\n== scale");
    let team_counts: &[usize] = if args.quick {
        &[10, 1000, 10_000]
    } else {
        &[10, 1000, 100_000]
    };
    let mut rows = Vec::new();
    for &n in team_counts {
        let row = scale::teams_row(dir, client, sim_port, redis_port, n, args.quick, &args.extproc_args()).await?;
        eprintln!(
            "  {n} teams: rss {:.1} MiB, decision mean {:.3} ms",
            row.rss_after_load_mib, row.decision_mean_ms
        );
        rows.push(row);
    }
    println!("\nScale: teams in the config (1000 req/s Converse spread over the teams)");
    println!(
        "{:>8} {:>11} {:>9} {:>10} {:>10} {:>11} {:>12} {:>8} {:>8}",
        "teams", "config MB", "start s", "RSS idle", "RSS load", "decide avg", "decide p99≤", "e2e p50", "e2e p99"
    );
    for r in &rows {
        println!(
            "{:>8} {:>11.2} {:>9.2} {:>9.1}M {:>9.1}M {:>9.3}ms {:>10.3}ms {:>8.3} {:>8.3}",
            r.teams,
            r.config_bytes as f64 / 1e6,
            r.startup_s,
            r.rss_idle_mib,
            r.rss_after_load_mib,
            r.decision_mean_ms,
            r.decision_p99_le_ms,
            r.end_to_end.p50_ms,
            r.end_to_end.p99_ms
        );
    }
    let mut streams = Vec::new();
    for shape in [(20u32, 150u64), (200, 15)] {
        let row = scale::streams_row(dir, client, sim_port, redis_port, 1000, shape, &args.extproc_args()).await?;
        streams.push(row);
    }
    println!("\nConcurrent ConverseStreams (1000 open at once; peak RSS over the idle baseline)");
    println!(
        "{:>8} {:>8} {:>9} {:>10} {:>12} {:>12} {:>14} {:>14}",
        "streams", "events", "every", "completed", "ext RSS base", "ext RSS peak", "ext KiB/stream", "envoy KiB/strm"
    );
    for r in &streams {
        println!(
            "{:>8} {:>8} {:>7}ms {:>10} {:>11.1}M {:>11.1}M {:>14.1} {:>14.1}",
            r.concurrent,
            r.events_per_stream,
            r.event_delay_ms,
            r.completed,
            r.extproc_rss_base_mib,
            r.extproc_rss_peak_mib,
            r.extproc_kib_per_stream,
            r.envoy_kib_per_stream
        );
    }
    Ok(json!({"teams": rows, "streams": streams}))
}
