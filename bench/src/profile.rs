//! A CPU profile of one ext_proc under load: `perf record` sampling the process while the
//! path it serves takes a fixed rate, then `perf report`'s flat profile by symbol, summed
//! by crate. The report is written beside `--out` (`hotpath-profile.txt`).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};
use tally_tests::fixtures::process::OwnedProcess;

use crate::Args;
use crate::load::{self, HttpClient, Shape};
use crate::overhead::Path;

/// Samples per second: enough for a stable flat profile in 10 s at 500 req/s.
const FREQUENCY: &str = "999";
const RATE: f64 = 500.0;

/// Profiles `proc` while `path_name` takes [`RATE`] req/s for the run's seconds; the top
/// symbols and the share of each crate, or why there is no profile.
pub async fn ext_proc_at(
    client: &HttpClient,
    paths: &[Path<'_>],
    path_name: &str,
    proc: &OwnedProcess,
    mix: &[Shape],
    args: &Args,
) -> Value {
    let (Some(path), Some(pid)) = (paths.iter().find(|p| p.name == path_name), proc.pid()) else {
        return json!({"error": format!("no running process serves {path_name}")});
    };
    let data = args.out.with_file_name("hotpath-perf.data");
    if let Some(dir) = data.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let seconds = args.run_seconds().as_secs();
    let recorder = match record(pid, &data, seconds) {
        Ok(r) => r,
        Err(e) => return json!({"error": format!("perf record could not start ({e}); install linux-perf to profile")}),
    };
    let load = crate::hotpath::spec(RATE, args.run_seconds());
    load::run(client, &path.base(), mix, load).await;
    match recorder.wait_with_output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return json!({"error": format!("perf record: {}", String::from_utf8_lossy(&o.stderr))}),
        Err(e) => return json!({"error": format!("perf record: {e}")}),
    }
    let text = match report(&data, "symbol") {
        Ok(t) => t,
        Err(e) => return json!({ "error": e }),
    };
    // The whole of the samples by binary: the kernel, libc, the ext_proc itself.
    let by_dso = report(&data, "dso").map(|t| flat_profile(&t)).unwrap_or_default();
    let _ = std::fs::remove_file(&data);
    let text: String = text.lines().map(|l| tidy(l) + "\n").collect();
    let out = args.out.with_file_name("hotpath-profile.txt");
    if let Err(e) = std::fs::write(&out, &text) {
        eprintln!("could not write {}: {e}", out.display());
    }
    let symbols = flat_profile(&text);
    let crates = by_crate(&symbols);
    print(path_name, &crates, &by_dso);
    json!({
        "path": path_name,
        "rate": RATE,
        "seconds": seconds,
        "report": out.display().to_string(),
        "top_symbols": symbols.iter().take(60).map(|(p, s)| json!({"percent": p, "symbol": s})).collect::<Vec<_>>(),
        "by_crate_percent": crates,
        "by_binary_percent": by_dso.iter().map(|(p, d)| (d.clone(), *p)).collect::<BTreeMap<_, _>>(),
    })
}

/// `perf record` sampling `pid` into `data` for `seconds`.
fn record(pid: u32, data: &std::path::Path, seconds: u64) -> std::io::Result<std::process::Child> {
    Command::new("perf")
        .args(["record", "-F", FREQUENCY, "-p", &pid.to_string(), "-o"])
        .arg(data)
        .args(["--", "sleep", &seconds.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
}

/// `perf report`'s flat profile of `data` by `sort` (`symbol`, `dso`), every entry listed.
fn report(data: &std::path::Path, sort: &str) -> Result<String, String> {
    let args = [
        "report",
        "--stdio",
        "--no-children",
        "--sort",
        sort,
        "--percent-limit",
        "0",
        "-i",
    ];
    let o = Command::new("perf")
        .args(args)
        .arg(data)
        .output()
        .map_err(|e| format!("perf report: {e}"))?;
    if !o.status.success() {
        return Err(format!("perf report: {}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A report line without perf's padding and its empty IPC columns (`-      -`).
fn tidy(line: &str) -> String {
    let line = line.trim_end();
    line.strip_suffix('-')
        .map(str::trim_end)
        .and_then(|l| l.strip_suffix('-'))
        .unwrap_or(line)
        .trim_end()
        .to_string()
}

/// `(percent, symbol)` of each line of a `perf report --stdio --sort symbol` flat profile;
/// kernel symbols keep their `[k]` mark.
pub fn flat_profile(report: &str) -> Vec<(f64, String)> {
    report
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let l = tidy(l);
            let (percent, rest) = l.trim_start().split_once('%')?;
            let percent: f64 = percent.trim().parse().ok()?;
            Some((percent, rest.trim().to_string()))
        })
        .collect()
}

/// The crate a symbol belongs to: the first path segment of a Rust symbol (`<` of a trait
/// impl dropped), `kernel` for kernel symbols, `libc and other C` for the rest.
pub fn crate_of(symbol: &str) -> String {
    if symbol.starts_with("[k]") {
        return "kernel".into();
    }
    let name = symbol.trim_start_matches("[.]").trim().trim_start_matches('<');
    match name.split_once("::") {
        Some((head, _)) if !head.is_empty() && !head.contains(' ') => head.to_string(),
        _ => "libc and other C".into(),
    }
}

pub fn by_crate(symbols: &[(f64, String)]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (percent, symbol) in symbols {
        *out.entry(crate_of(symbol)).or_insert(0.0) += percent;
    }
    out
}

fn print(path: &str, crates: &BTreeMap<String, f64>, by_dso: &[(f64, String)]) {
    println!("\nThe ext_proc's CPU by binary ({path}, {RATE} req/s)");
    for (percent, dso) in by_dso {
        println!("  {percent:>6.2} %  {dso}");
    }
    let mut rows: Vec<_> = crates.iter().collect();
    rows.sort_by(|a, b| b.1.total_cmp(a.1));
    println!("By crate, of the symbols perf report lists");
    for (krate, percent) in rows {
        println!("  {percent:>6.2} %  {krate}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfs_padding_and_empty_ipc_columns_are_dropped() {
        assert_eq!(
            tidy("    1.00%  [.] malloc            -      -      "),
            "    1.00%  [.] malloc"
        );
        assert_eq!(tidy("    1.00%  [k] a-b   "), "    1.00%  [k] a-b");
    }

    #[test]
    fn a_flat_profile_is_read_and_summed_by_crate() {
        let report = "# Samples: 9K of event 'cpu-clock'\n#\n     7.50%  [k] _raw_spin_unlock_irqrestore\n     \
                      5.25%  [.] <h2::proto::streams::streams::Streams<B,P> as core::clone::Clone>::clone\n     \
                      2.00%  [.] tokio::runtime::scheduler::multi_thread::worker::Context::run\n     \
                      1.00%  [.] __memmove_avx_unaligned_erms\n     0.75%  [.] h2::codec::framed_read::decode_frame\n";
        let symbols = flat_profile(report);
        assert_eq!(symbols.len(), 5);
        let crates = by_crate(&symbols);
        assert_eq!(crates["kernel"], 7.5);
        assert_eq!(crates["h2"], 6.0);
        assert_eq!(crates["tokio"], 2.0);
        assert_eq!(crates["libc and other C"], 1.0);
    }
}
