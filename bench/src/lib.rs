//! What the one-off measurement binaries (`ledger-report`, `ledger-reconcile`) share: each
//! measurement runs in a child process of its own, so the peak RSS it reports is its alone,
//! and the summary lands in `bench/results/`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use serde_json::Value;
use tally_tests::fixtures::process::status_kib;

/// Runs `child(what)` for each of `whats`; a child prints its measurement as one JSON line.
/// The lines, printed and in order.
pub fn measure_in_children(whats: &[&str], child: impl Fn(&str) -> Command) -> Result<Vec<Value>> {
    let mut results = Vec::with_capacity(whats.len());
    for what in whats {
        let out = child(what).output()?;
        anyhow::ensure!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        let line: Value = serde_json::from_slice(&out.stdout)?;
        println!("{line}");
        results.push(line);
    }
    Ok(results)
}

/// This process's peak resident set (`VmHWM`), KiB.
pub fn peak_rss_kib() -> u64 {
    status_kib(std::process::id(), "VmHWM").unwrap_or(0)
}

/// Writes `summary` to `bench/results/<name>`; the path written.
pub fn write_result(name: &str, summary: &Value) -> Result<PathBuf> {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results").join(name);
    std::fs::write(&out, serde_json::to_string_pretty(summary)? + "\n")?;
    Ok(out)
}
