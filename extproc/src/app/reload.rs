//! The compiled config: loaded once at start (it must be valid then), then polled; a changed,
//! valid config is swapped in atomically and an invalid or incomplete one logged and ignored.
//!
//! `--config` names one file: a plain JSON config (`tally render`), a gzip-compressed one, or the
//! operator's shard manifest, whose shards are files beside it ([`tally_config::wire`]). A
//! manifest whose shards are not all there yet, or are of another generation (the kubelet syncs
//! each ConfigMap of a projected volume on its own), is *incomplete*: the last good config stays
//! and the set is read again on the next poll until it is consistent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::exchange::Shared;
use crate::metrics::{GenerationLabels, OutcomeLabels, TeamLabels};
use crate::policy::Policy;
use tally_config::compiled::CompiledConfig;
use tally_config::wire::{self, FileContent, WireError};

/// Reads the config `path` names: the file itself, and the shards beside it if it is a manifest.
/// `Ok` carries the file's bytes (what the poll compares) and the config.
fn read_config(path: &Path) -> Result<(Vec<u8>, CompiledConfig), ReadError> {
    let bytes = std::fs::read(path).map_err(ReadError::Io)?;
    let config = match wire::decode_file(&bytes)? {
        FileContent::Config(config) => config,
        FileContent::Manifest(manifest) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            // A shard that cannot be read is missing: the kubelet has not written it yet.
            let shards: Vec<Option<Vec<u8>>> = manifest
                .shards
                .iter()
                .map(|s| std::fs::read(dir.join(&s.file)).ok())
                .collect();
            wire::assemble(&manifest, &shards)?
        }
    };
    Ok((bytes, config))
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Wire(#[from] WireError),
}

pub fn load_config(path: &Path) -> anyhow::Result<(Vec<u8>, CompiledConfig)> {
    read_config(path).with_context(|| format!("config {}", path.display()))
}

/// Makes `config` the live policy and then republishes the metrics that describe it: a reader
/// who sees the new `tally_config_info` generation is served by the new policy (building it takes
/// a while with 10,000 teams, and tests and benchmarks wait on that metric).
pub fn install(shared: &Shared, config: CompiledConfig) {
    let generation = config.generation.clone();
    let limits: Vec<(String, i64)> = config
        .teams
        .iter()
        .filter_map(|t| t.budget.as_ref().map(|b| (t.team.clone(), b.limit.0)))
        .collect();
    shared.policy.store(Arc::new(Policy::new(config)));
    shared.metrics.budget_limit.clear();
    for (team, limit) in limits {
        shared
            .metrics
            .budget_limit
            .get_or_create(&TeamLabels { team })
            .set(limit);
    }
    shared.metrics.config_info.clear();
    shared
        .metrics
        .config_info
        .get_or_create(&GenerationLabels { generation })
        .set(1);
}

/// Polls the config every `every` until `stop`; `last` is the file loaded at start.
pub async fn watch_config(
    shared: Arc<Shared>,
    path: PathBuf,
    mut last: Option<Vec<u8>>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // The manifest an incomplete set was last reported for: said once, then retried quietly.
    let mut reported: Option<Vec<u8>> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        if last.as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        // Inflating and parsing a large config (10,000 teams: ~13 MB of JSON) takes a while: off
        // the runtime's workers, so calls and /metrics are served meanwhile.
        let from = path.clone();
        let Ok(read) = tokio::task::spawn_blocking(move || read_config(&from)).await else {
            continue;
        };
        let outcome = match read {
            Ok((read, config)) => {
                tracing::info!(generation = %config.generation, teams = config.teams.len(), "config reloaded");
                install(&shared, config);
                last = Some(read);
                "ok"
            }
            Err(ReadError::Wire(e @ WireError::Incomplete { .. })) => {
                if reported.as_deref() != Some(bytes.as_slice()) {
                    tracing::warn!(path = %path.display(), error = %e, "new config is not complete yet; keeping the previous one");
                    reported = Some(bytes);
                }
                "incomplete"
            }
            Err(ReadError::Io(_)) => continue,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "new config is invalid; keeping the previous one");
                last = Some(bytes);
                "invalid"
            }
        };
        shared
            .metrics
            .config_reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}
