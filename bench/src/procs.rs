//! The processes a benchmark runs, each owned by the harness: started on free
//! loopback ports, killed when dropped, and observable through `/proc`
//! (CPU seconds and RSS), so every phase can report what each process spent.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tally_config::compiled::CompiledConfig;
use tally_tests::fixtures::envoy::{EnvoyOptions, chart_values, render_from_chart};
use tally_tests::fixtures::tools;

/// A child process with its output in a log file; SIGKILLed on drop.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&format!("/proc/{}/stat", self.pid()))
    }

    /// Resident set size, KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmRSS:")
    }

    /// The last `n` bytes of the process's output, for errors.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text[text.len().saturating_sub(n)..].to_string()
    }

    /// Fails with the log tail when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}); log tail:\n{}", self.name, self.log_tail(4000));
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)
                    .map(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .flatten()
        .unwrap_or(0)
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
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

/// Waits until `ready` holds, or fails with the process's log.
pub fn wait_ready(p: &mut Proc, timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !ready() {
        p.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{} was not ready ({what}) within {timeout:?}; log tail:\n{}",
                p.name,
                p.log_tail(4000)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
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

pub fn start_sim(dir: &Path) -> Result<(Proc, u16)> {
    let port = free_port();
    let mut cmd = Command::new(release_binary("bedrock-sim")?);
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn");
    let mut p = Proc::spawn("bedrock-sim", cmd, dir)?;
    wait_ready(&mut p, Duration::from_secs(10), "GET /__sim/stats", || {
        matches!(http_get(port, "/__sim/stats"), Some((200, _)))
    })?;
    Ok((p, port))
}

pub fn start_redis(dir: &Path) -> Result<(Proc, u16)> {
    let port = free_port();
    let data = dir.join(format!("redis-{port}"));
    std::fs::create_dir_all(&data)?;
    let mut cmd = Command::new(tools::redis_server());
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
    ])
    .arg(&data);
    let mut p = Proc::spawn(&format!("redis-{port}"), cmd, dir)?;
    wait_ready(&mut p, Duration::from_secs(10), "accepting connections", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    Ok((p, port))
}

/// `null-extproc` (release): the ext_proc that answers every message at once (the mechanism's floor).
pub fn start_null_extproc(dir: &Path, workers: usize) -> Result<(Proc, u16)> {
    let port = free_port();
    let mut cmd = Command::new(release_binary("null-extproc")?);
    cmd.arg(format!("127.0.0.1:{port}")).arg(workers.to_string());
    let mut p = Proc::spawn("null-extproc", cmd, dir)?;
    wait_ready(&mut p, Duration::from_secs(10), "listening", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    Ok((p, port))
}

/// `tally-extproc` (release) with `config`; `redis_port: None` → `--store memory`.
pub struct ExtProcProc {
    pub proc: Proc,
    pub grpc_port: u16,
    pub admin_port: u16,
}

pub fn start_extproc(
    dir: &Path,
    name: &str,
    config: &CompiledConfig,
    redis_port: Option<u16>,
    extra_args: &[String],
) -> Result<ExtProcProc> {
    let own = dir.join(name);
    std::fs::create_dir_all(own.join("spool"))?;
    std::fs::write(own.join("config.json"), config.to_json_pretty())?;
    let (grpc_port, admin_port) = (free_port(), free_port());
    let mut cmd = Command::new(release_binary("tally-extproc")?);
    cmd.arg("--config")
        .arg(own.join("config.json"))
        .args(["--listen", &format!("127.0.0.1:{grpc_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .args(["--fail-mode", "open", "--default-region", "us-east-1"])
        .arg("--spool-dir")
        .arg(own.join("spool"))
        .env("RUST_LOG", "warn");
    match redis_port {
        Some(port) => cmd.args(["--store", "redis", "--redis-url", &format!("redis://127.0.0.1:{port}/")]),
        None => cmd.args(["--store", "memory"]),
    };
    cmd.args(extra_args);
    let mut proc = Proc::spawn(name, cmd, dir)?;
    wait_ready(&mut proc, Duration::from_secs(60), "GET /readyz", || {
        matches!(http_get(admin_port, "/readyz"), Some((200, _)))
    })?;
    Ok(ExtProcProc {
        proc,
        grpc_port,
        admin_port,
    })
}

/// Envoy with the chart's gateway config (signing off, fail-open), one worker thread.
/// `ext_proc_port: None` removes the ext_proc filter: plain Envoy, the baseline.
pub fn start_envoy(dir: &Path, name: &str, upstream_port: u16, ext_proc_port: Option<u16>) -> Result<(Proc, u16, u16)> {
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
    let mut cmd = Command::new(tools::envoy());
    cmd.arg("-c")
        .arg(&path)
        .args(["--disable-hot-restart", "--concurrency", "1", "-l", "warning"]);
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    let mut p = Proc::spawn(name, cmd, dir)?;
    wait_ready(&mut p, Duration::from_secs(20), "GET /ready", || {
        matches!(http_get(admin, "/ready"), Some((200, _)))
    })?;
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
