//! The processes a benchmark runs, each a [`OwnedProcess`] (killed when dropped)
//! started on free loopback ports and observed through `/proc` (CPU seconds and
//! RSS), so every phase can report what each process spent.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tally_config::compiled::CompiledConfig;
use tally_tests::fixtures::envoy::{self, EnvoyOptions, chart_values, render_from_chart};
use tally_tests::fixtures::extproc::{ExtProcOptions, ListenAddrs, prepare_dir};
use tally_tests::fixtures::process::{OwnedProcess, free_port, status_kib};
use tally_tests::fixtures::redis::server_command;
use tally_tests::fixtures::tools;

/// What `/proc` says a running process has spent (zero once it has exited).
pub trait Spent {
    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64;
    /// Resident set size, KiB.
    fn rss_kib(&self) -> u64;
}

impl Spent for OwnedProcess {
    fn cpu_seconds(&self) -> f64 {
        self.pid()
            .map_or(0.0, |pid| cpu_seconds_of(&format!("/proc/{pid}/stat")))
    }

    fn rss_kib(&self) -> u64 {
        self.pid().map_or(0, rss_kib_of)
    }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of `/proc/<pid>/stat`, seconds (fields 14 and 15; the comm field may hold spaces).
pub fn cpu_seconds_of(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// This process's CPU seconds (the load generator).
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

/// `VmRSS` of `/proc/<pid>/status`, KiB (0 when the process is gone).
pub fn rss_kib_of(pid: u32) -> u64 {
    status_kib(pid, "VmRSS").unwrap_or(0)
}

/// A blocking `GET` on loopback: `(status, body)`, `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Ready when `GET path` on `port` answers 200.
pub fn answers_200(port: u16, path: &'static str) -> impl FnMut() -> bool {
    move || matches!(http_get(port, path), Some((200, _)))
}

/// Ready when something accepts connections on `port`.
fn accepts(port: u16) -> impl FnMut() -> bool {
    move || TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Starts `cmd` as `name` and waits until `ready` holds, or fails with the process's log.
pub fn spawn_ready(
    name: &str,
    cmd: Command,
    timeout: Duration,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<OwnedProcess> {
    let mut p = OwnedProcess::spawn(name, cmd)?;
    let deadline = Instant::now() + timeout;
    while !ready() {
        if p.exited().is_some() || Instant::now() > deadline {
            bail!("{}", p.failure(&format!("was not ready ({what}) within {timeout:?}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(p)
}

/// A release binary of this workspace; the benchmarks never measure debug builds.
/// (`TALLY_BENCH_PROFILE=debug` exists only to try the harness itself; its numbers mean nothing.)
pub fn release_binary(name: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::workspace_root().join("target"));
    let profile = std::env::var("TALLY_BENCH_PROFILE").unwrap_or_else(|_| "release".into());
    let path = target.join(profile).join(name);
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build --release -p tally-extproc -p tally-tests --bins` (bench/run.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// The simulated Bedrock and Redis: what every phase's gateways send to.
pub struct Backends {
    pub sim: OwnedProcess,
    pub sim_port: u16,
    pub redis: OwnedProcess,
    pub redis_port: u16,
}

impl Backends {
    /// `bedrock-sim` (release) and a redis-server with its data under `dir`.
    pub fn start(dir: &Path) -> Result<Backends> {
        let sim_port = free_port();
        let mut cmd = Command::new(release_binary("bedrock-sim")?);
        cmd.args(["--listen", &format!("127.0.0.1:{sim_port}")])
            .env("RUST_LOG", "warn");
        let ready = answers_200(sim_port, "/__sim/stats");
        let sim = spawn_ready("bedrock-sim", cmd, Duration::from_secs(10), "GET /__sim/stats", ready)?;
        let redis_port = free_port();
        let data = dir.join(format!("redis-{redis_port}"));
        std::fs::create_dir_all(&data)?;
        let mut cmd = server_command(redis_port, &data);
        cmd.args(["--appendonly", "no"]);
        let name = format!("redis-{redis_port}");
        let redis = spawn_ready(
            &name,
            cmd,
            Duration::from_secs(10),
            "accepting connections",
            accepts(redis_port),
        )?;
        Ok(Backends {
            sim,
            sim_port,
            redis,
            redis_port,
        })
    }
}

/// `null-extproc` (release): the ext_proc that answers every message at once (the mechanism's floor).
pub fn start_null_extproc(workers: usize) -> Result<(OwnedProcess, u16)> {
    start_null_extproc_mode(workers, None)
}

/// [`start_null_extproc`] asking for both bodies too (`Some("bodies")`): the messages
/// Tally's calls take, with nothing behind them.
pub fn start_null_extproc_mode(workers: usize, mode: Option<&str>) -> Result<(OwnedProcess, u16)> {
    let port = free_port();
    let mut cmd = Command::new(release_binary("null-extproc")?);
    cmd.arg(format!("127.0.0.1:{port}")).arg(workers.to_string());
    cmd.args(mode);
    let name = mode.map_or("null-extproc".to_string(), |m| format!("null-extproc-{m}"));
    let p = spawn_ready(&name, cmd, Duration::from_secs(10), "listening", accepts(port))?;
    Ok((p, port))
}

/// `tally-extproc` (release) with `config`; `redis_port: None` → `--store memory`.
pub struct ExtProcProc {
    pub proc: OwnedProcess,
    pub grpc_port: u16,
    /// The metrics listener (`/metrics`, `/readyz`).
    pub admin_port: u16,
}

pub fn start_extproc(
    dir: &Path,
    name: &str,
    config: &CompiledConfig,
    redis_port: Option<u16>,
    extra_args: &[String],
) -> Result<ExtProcProc> {
    start_extproc_with_env(dir, name, config, redis_port, extra_args, &[])
}

/// [`start_extproc`] with more environment (the tracing benchmark's `OTEL_*`).
pub fn start_extproc_with_env(
    dir: &Path,
    name: &str,
    config: &CompiledConfig,
    redis_port: Option<u16>,
    extra_args: &[String],
    env: &[(String, String)],
) -> Result<ExtProcProc> {
    let own = dir.join(name);
    prepare_dir(&own, config);
    let addrs = ListenAddrs::loopback();
    let (grpc_port, admin_port) = (addrs.grpc.port(), addrs.metrics.port());
    let redis_url = redis_port.map(|port| format!("redis://127.0.0.1:{port}/"));
    let opts = ExtProcOptions {
        extra_args: extra_args.to_vec(),
        ..ExtProcOptions::new(config.clone(), redis_url)
    };
    let mut cmd = Command::new(release_binary("tally-extproc")?);
    cmd.args(opts.flags(&addrs, &own)).env("RUST_LOG", "warn");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let ready = answers_200(admin_port, "/readyz");
    let proc = spawn_ready(name, cmd, Duration::from_secs(60), "GET /readyz", ready)?;
    Ok(ExtProcProc {
        proc,
        grpc_port,
        admin_port,
    })
}

/// Envoy with the chart's gateway config (signing off, fail-open), one worker thread.
/// `ext_proc_port: None` removes the ext_proc filter: plain Envoy, the baseline.
pub fn start_envoy(
    dir: &Path,
    name: &str,
    upstream_port: u16,
    ext_proc_port: Option<u16>,
) -> Result<(OwnedProcess, u16, u16)> {
    let (listen, admin) = (free_port(), free_port());
    let opts = EnvoyOptions {
        upstream_port,
        ext_proc_port: ext_proc_port.unwrap_or(1),
        fail_open: true,
        signing: None,
        extra_values: vec![],
    };
    let yaml = render_from_chart(&chart_values(&opts, listen, admin)).map_err(anyhow::Error::msg)?;
    let yaml = if ext_proc_port.is_none() {
        without_ext_proc(&yaml)?
    } else {
        yaml
    };
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml)?;
    let ready = answers_200(admin, "/ready");
    let p = spawn_ready(
        name,
        envoy::command(&path, None),
        Duration::from_secs(20),
        "GET /ready",
        ready,
    )?;
    Ok((p, listen, admin))
}

/// The same config with the ext_proc filter (and its per-route settings) removed.
pub fn without_ext_proc(yaml: &str) -> Result<String> {
    const FILTER: &str = "envoy.filters.http.ext_proc";
    fn strip(v: &mut serde_yaml::Value) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                m.remove(FILTER);
                m.values_mut().for_each(strip);
                if m.get("typed_per_filter_config")
                    .and_then(|c| c.as_mapping())
                    .is_some_and(|c| c.is_empty())
                {
                    m.remove("typed_per_filter_config");
                }
            }
            serde_yaml::Value::Sequence(s) => {
                s.retain(|item| item.get("name").and_then(|n| n.as_str()) != Some(FILTER));
                s.iter_mut().for_each(strip);
            }
            _ => {}
        }
    }
    let mut value: serde_yaml::Value = serde_yaml::from_str(yaml)?;
    strip(&mut value);
    Ok(serde_yaml::to_string(&value)?)
}
