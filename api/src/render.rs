//! `tally render`: manifests on disk in, the compiled config JSON out — the
//! same compiler the operator runs, without a cluster.

use std::path::PathBuf;

use tally_config::compiled::CompiledConfig;

use crate::{Error, Result, compiler, manifest};

/// Loads and compiles the manifests under `paths`; the pretty JSON config with
/// a trailing newline, or every problem (loading and compiling) at once.
pub fn render_to_string(paths: &[PathBuf], namespace: &str) -> Result<String> {
    let manifests = manifest::load(paths, namespace);
    for skipped in &manifests.skipped {
        tracing::warn!("skipped, not a Tally object: {skipped}");
    }
    let config = compile(&manifests)?;
    tracing::info!(
        teams = config.teams.len(),
        price_entries = config.catalog.entries.len(),
        generation = %config.generation,
        "compiled"
    );
    Ok(config.to_json_pretty() + "\n")
}

/// Compiles loaded manifests (for `tally render`, and `tally report`'s TeamBudgets and
/// catalog); every problem, loading and compiling, at once.
pub fn compile(manifests: &manifest::Manifests) -> Result<CompiledConfig> {
    let compiled = compiler::compile_lenient(&manifests.teams, &manifests.pricings);
    let mut problems = manifests.problems.clone();
    problems.extend(compiled.errors.iter().map(|e| manifest::Problem {
        origin: manifests.origins.get(&e.object).cloned(),
        message: e.to_string(),
    }));
    if !problems.is_empty() {
        // In file order; within a document, in the order found (fields in spec order).
        problems.sort_by(|a, b| a.origin.cmp(&b.origin));
        return Err(Error::Invalid(problems.iter().map(ToString::to_string).collect()));
    }
    Ok(compiled.config)
}
