//! The edge where an audit reads: sample files, directories of them, stdin,
//! and the price catalog (manifests compiled like `tally render`, or a
//! compiled config JSON).

use std::io::Read;
use std::path::{Path, PathBuf};

use tally_config::compiled::CompiledConfig;

use crate::checks::Context;
use crate::formats::{self, Sample};
use crate::{Error, Result};

/// Reads and parses every sample under `paths` (`-` is stdin). Files inside a
/// directory that are not a known format are skipped with a warning; a file
/// named explicitly must parse.
pub fn samples(paths: &[PathBuf]) -> Result<Vec<Sample>> {
    let mut out = vec![];
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = vec![];
            std::io::stdin().read_to_end(&mut bytes).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            out.push(parse("stdin", &bytes)?);
        } else if path.is_dir() {
            for file in files_under(path)? {
                let bytes = read(&file)?;
                match formats::parse(&display_name(&file), &bytes) {
                    Ok(s) if !s.observations.is_empty() => out.push(s),
                    Ok(_) => tracing::warn!(file = %file.display(), "no calls in this file; skipped"),
                    Err(reason) => tracing::warn!(file = %file.display(), %reason, "skipped"),
                }
            }
        } else {
            out.push(parse(&display_name(path), &read(path)?)?);
        }
    }
    Ok(out)
}

fn parse(name: &str, bytes: &[u8]) -> Result<Sample> {
    formats::parse(name, bytes).map_err(|reason| Error::Sample {
        name: name.to_string(),
        reason,
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The file's name as the report shows it.
fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Regular files under `dir`, recursively, sorted; hidden files and READMEs are not samples.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.to_ascii_lowercase().starts_with("readme") {
            continue;
        }
        if path.is_dir() {
            out.extend(files_under(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The checks' context from `--catalog`: a compiled config JSON file, or
/// manifests (files or a directory) compiled as `tally render` would.
pub fn catalog(path: &Path) -> Result<Context> {
    let fail = |reason: String| Error::Catalog {
        path: path.to_path_buf(),
        reason,
    };
    let json = if path.extension().is_some_and(|e| e == "json") {
        std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?
    } else {
        tally_api::render::render_to_string(&[path.to_path_buf()], "default").map_err(|e| fail(e.to_string()))?
    };
    let config = CompiledConfig::from_json(json.as_bytes()).map_err(|e| fail(e.to_string()))?;
    if config.catalog.entries.is_empty() {
        return Err(fail("no ModelPricing entries: nothing to price calls with".into()));
    }
    Ok(Context::new(config, path.display().to_string()))
}
