//! The compiled config: loaded once at start (it must be valid then), then polled; a changed,
//! valid file is swapped in atomically and an invalid one logged and ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::exchange::Shared;
use crate::metrics::{GenerationLabels, OutcomeLabels, TeamLabels};
use crate::policy::Policy;
use tally_config::compiled::CompiledConfig;

pub fn load_config(path: &Path) -> anyhow::Result<(Vec<u8>, CompiledConfig)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading config {}", path.display()))?;
    let config = CompiledConfig::from_json(&bytes).with_context(|| format!("config {}", path.display()))?;
    Ok((bytes, config))
}

/// Makes `config` the live policy and republishes the metrics that describe it.
pub fn install(shared: &Shared, config: CompiledConfig) {
    shared.metrics.config_info.clear();
    shared.metrics.budget_limit.clear();
    for t in &config.teams {
        if let Some(b) = &t.budget {
            shared
                .metrics
                .budget_limit
                .get_or_create(&TeamLabels { team: t.team.clone() })
                .set(b.limit.0);
        }
    }
    shared
        .metrics
        .config_info
        .get_or_create(&GenerationLabels {
            generation: config.generation.clone(),
        })
        .set(1);
    shared.policy.store(Arc::new(Policy::new(config)));
}

/// Polls the config file every `every` until `stop`; `last` is what was loaded at start.
pub async fn watch_config(
    shared: Arc<Shared>,
    path: PathBuf,
    mut last: Option<Vec<u8>>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        if last.as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        let outcome = match CompiledConfig::from_json(&bytes) {
            Ok(config) => {
                tracing::info!(generation = %config.generation, teams = config.teams.len(), "config reloaded");
                install(&shared, config);
                "ok"
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "new config is invalid; keeping the previous one");
                "invalid"
            }
        };
        shared
            .metrics
            .config_reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        last = Some(bytes);
    }
}
