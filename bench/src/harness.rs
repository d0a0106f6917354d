//! The run: starts the processes, runs the phases in order (each prints its tables
//! as soon as they are measured) and writes every number to the JSON results file.

use std::path::Path as FsPath;
use std::time::Instant;

use anyhow::Result;
use serde_json::{Map, Value, json};
use tally_config::compiled::CompiledConfig;
use tally_config::money::Nanos;
use tally_config::pricing::{PriceBook, Usage, cost};
use tally_tests::fixtures::process::OwnedProcess;

use crate::load::{self, HttpClient, Shape};
use crate::overhead::{Path, TALLY_REDIS};
use crate::procs::{self, Backends, ExtProcProc};
use crate::strictness::{STRICT_MAX_TOKENS, STRICT_TEAM, STRICT_WORDS};
use crate::{Args, Phase, mix, overhead, peers, scale};

/// The machine the numbers were measured on.
fn machine() -> Value {
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

pub async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let dir = tempfile::Builder::new().prefix("tally-bench-").tempdir()?;
    let mut results = Map::new();
    results.insert("date".into(), json!(jiff::Timestamp::now().to_string()));
    results.insert("machine".into(), machine());
    results.insert("command".into(), json!(std::env::args().collect::<Vec<_>>().join(" ")));
    eprintln!("machine: {}", results["machine"]);

    let client = load::client();
    let backends = Backends::start(dir.path())?;
    let (config, call_cost_usd) = config_with_strict_teams(mix::OVERHEAD_TEAMS, args.k, &[STRICT_TEAM])?;
    let gateways = Gateways::start(dir.path(), &args, &config, &backends)?;
    let paths = gateways.paths(&backends);
    let overhead_mix = mix::overhead_mix(mix::OVERHEAD_TEAMS);
    probe(&client, &paths, &overhead_mix[..3]).await?;

    if matches!(args.phase, Phase::All | Phase::Overhead) {
        let extprocs = [
            ("redis", gateways.ext_redis.admin_port),
            ("memory", gateways.ext_mem.admin_port),
        ];
        let section = overhead::phase(&args, &client, &paths, &overhead_mix, &extprocs).await;
        results.insert("overhead".into(), section);
    }
    if matches!(args.phase, Phase::All | Phase::Peers) {
        let section = peers::phase(&args, &client, dir.path(), &backends, &paths, call_cost_usd).await;
        results.insert("peers".into(), section);
    }
    drop(paths);
    drop(gateways);

    if matches!(args.phase, Phase::All | Phase::Scale) {
        let section = scale::phase(&args, &client, dir.path(), backends.sim_port, backends.redis_port).await?;
        results.insert("scale".into(), section);
    }
    write_results(&args.out, results, started)
}

/// `teams` teams with 1,000,000 USD each plus the `strict` teams, whose budgets are exactly
/// `k` calls of the strictness shape priced from the shipped catalog; and that call's cost
/// in USD.
pub fn config_with_strict_teams(teams: usize, k: u64, strict: &[&str]) -> Result<(CompiledConfig, f64)> {
    let mut config = mix::config(teams, Nanos::parse_usd("1000000")?)?;
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
    for team in strict {
        config.teams.push(mix::team(team, Nanos(call_cost.0 * k as i64)));
    }
    config.teams.sort_by(|a, b| a.team.cmp(&b.team));
    Ok((config, call_cost.0 as f64 / 1e9))
}

/// The gateways compared in the overhead and peers phases, each in front of the simulator:
/// plain Envoy, Envoy with the null ext_proc, and Envoy with Tally on Redis and in memory.
struct Gateways {
    ext_redis: ExtProcProc,
    ext_mem: ExtProcProc,
    null_ext: OwnedProcess,
    /// Envoy and its listen port: plain, null ext_proc, Tally (Redis), Tally (memory).
    envoys: [(OwnedProcess, u16); 4],
}

impl Gateways {
    fn start(dir: &FsPath, args: &Args, config: &CompiledConfig, backends: &Backends) -> Result<Gateways> {
        let ext_redis = procs::start_extproc(
            dir,
            "tally-extproc-redis",
            config,
            Some(backends.redis_port),
            &args.extproc_args(),
        )?;
        let ext_mem = procs::start_extproc(dir, "tally-extproc-memory", config, None, &args.extproc_args())?;
        let (null_ext, null_port) = procs::start_null_extproc(args.extproc_workers)?;
        let envoy = |name: &str, ext_proc_port: Option<u16>| {
            procs::start_envoy(dir, name, backends.sim_port, ext_proc_port).map(|(p, port, _)| (p, port))
        };
        let envoys = [
            envoy("envoy-plain", None)?,
            envoy("envoy-null-extproc", Some(null_port))?,
            envoy("envoy-tally-redis", Some(ext_redis.grpc_port))?,
            envoy("envoy-tally-memory", Some(ext_mem.grpc_port))?,
        ];
        Ok(Gateways {
            ext_redis,
            ext_mem,
            null_ext,
            envoys,
        })
    }

    /// Direct to the simulator first, then through each gateway.
    fn paths<'a>(&'a self, b: &'a Backends) -> Vec<Path<'a>> {
        let [plain, null, redis, mem] = &self.envoys;
        vec![
            Path {
                name: "direct",
                port: b.sim_port,
                procs: vec![&b.sim],
            },
            Path {
                name: "envoy",
                port: plain.1,
                procs: vec![&plain.0, &b.sim],
            },
            Path {
                name: "envoy+null-extproc",
                port: null.1,
                procs: vec![&null.0, &self.null_ext, &b.sim],
            },
            Path {
                name: TALLY_REDIS,
                port: redis.1,
                procs: vec![&redis.0, &self.ext_redis.proc, &b.redis, &b.sim],
            },
            Path {
                name: "envoy+tally(memory)",
                port: mem.1,
                procs: vec![&mem.0, &self.ext_mem.proc, &b.sim],
            },
        ]
    }
}

/// Every path answers each of `shapes` with a 200 before anything is timed.
pub async fn probe(client: &HttpClient, paths: &[Path<'_>], shapes: &[Shape]) -> Result<()> {
    for p in paths {
        for shape in shapes {
            let (status, body) = load::send_full(client, &p.base(), shape)
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
    Ok(())
}

fn write_results(out: &FsPath, mut results: Map<String, Value>, started: Instant) -> Result<()> {
    results.insert("wall_seconds".into(), json!(started.elapsed().as_secs_f64()));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&Value::Object(results))?)?;
    eprintln!(
        "\nresults written to {} ({:.0} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
