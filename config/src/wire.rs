//! How a compiled config travels from the operator to the ext_procs when it is too large for one
//! ConfigMap: compact JSON, gzip-compressed, split into shards of at most a given size, and a small
//! JSON **manifest** naming each shard by file name, size and sha256. Pure: bytes in, bytes out.
//!
//! Why this shape (measured in `docs/architecture.md`): 10,000 teams × 10 workflows × 10 tenants
//! is 20.9 MB as pretty JSON, 13.3 MB compact with realistic (random) ids, and still 3.3 MB
//! gzipped — more than the 1 MiB a ConfigMap may hold — so compression alone is not enough and the
//! payload is sharded. The manifest is written last and names every shard's hash, so a reader that
//! sees shards of another generation (the kubelet syncs each ConfigMap on its own) or a missing
//! shard refuses the set ([`WireError::Incomplete`]) and keeps its last good config.
//!
//! A reader takes any of three file contents ([`decode_file`]): a plain JSON config (what
//! `tally render` writes), a gzip-compressed one, or a manifest whose shards it then assembles.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compiled::{CompiledConfig, ConfigError};

/// The manifest's `format`: a config reader of version 1 refuses a manifest (it has no
/// `version`), so an older ext_proc keeps its last config instead of reading it as an empty one.
pub const MANIFEST_FORMAT: &str = "tally.dev/config-shards/v1";

/// Largest config a reader inflates: a corrupted or hostile shard set cannot exhaust memory.
pub const MAX_INFLATED_BYTES: u64 = 1 << 30;

/// The small file that names a config's shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The config's content hash ([`CompiledConfig::generation`]).
    pub generation: String,
    /// How the shards' concatenation is encoded: `gzip` (of compact JSON).
    pub encoding: String,
    /// Size of the compact JSON before compression (for logs and the size limit message).
    pub json_bytes: u64,
    pub shards: Vec<ShardRef>,
}

/// One shard as the manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardRef {
    /// File name (and ConfigMap key) of the shard, e.g. `config-shard-0.gz`.
    pub file: String,
    pub bytes: u64,
    /// Hex sha256 of the shard's bytes.
    pub sha256: String,
}

/// A config encoded for publishing: the manifest and the shards' bytes, in manifest order.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub manifest: Manifest,
    pub shards: Vec<Vec<u8>>,
}

impl Encoded {
    /// Compressed size: the sum of the shards.
    pub fn compressed_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.len() as u64).sum()
    }

    pub fn manifest_json(&self) -> String {
        serde_json::to_string_pretty(&self.manifest).expect("a manifest serializes")
    }
}

/// What a config file holds.
#[derive(Debug)]
pub enum FileContent {
    /// A whole config (plain or gzip-compressed JSON).
    Config(CompiledConfig),
    /// A manifest: the config is in the shards it names.
    Manifest(Manifest),
}

/// Why a config could not be read from its files.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The files are not (yet) one consistent set: a reader retries later and keeps its config.
    #[error("shard set of generation {generation} is incomplete: {reason}")]
    Incomplete { generation: String, reason: String },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("config is not valid gzip: {0}")]
    Gzip(String),
    #[error("manifest is not valid: {0}")]
    Manifest(String),
}

/// The file name of shard `index`.
pub fn shard_file(index: usize) -> String {
    format!("config-shard-{index}.gz")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Encodes `config` as compact gzip-compressed JSON cut into shards of at most `shard_bytes`.
pub fn encode(config: &CompiledConfig, shard_bytes: usize) -> Encoded {
    let json = serde_json::to_vec(config).expect("a compiled config serializes");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).expect("writing to memory");
    let compressed = gz.finish().expect("writing to memory");
    let shards: Vec<Vec<u8>> = compressed.chunks(shard_bytes.max(1)).map(<[u8]>::to_vec).collect();
    let refs = shards
        .iter()
        .enumerate()
        .map(|(i, s)| ShardRef {
            file: shard_file(i),
            bytes: s.len() as u64,
            sha256: sha256_hex(s),
        })
        .collect();
    Encoded {
        manifest: Manifest {
            format: MANIFEST_FORMAT.to_string(),
            generation: config.generation.clone(),
            encoding: "gzip".to_string(),
            json_bytes: json.len() as u64,
            shards: refs,
        },
        shards,
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a config file's bytes: plain JSON, gzip-compressed JSON or a manifest.
pub fn decode_file(bytes: &[u8]) -> Result<FileContent, WireError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        return Ok(FileContent::Config(CompiledConfig::from_json(&inflate(bytes)?)?));
    }
    #[derive(Deserialize)]
    struct Sniff {
        format: Option<String>,
    }
    match serde_json::from_slice::<Sniff>(bytes).ok().and_then(|s| s.format) {
        Some(format) if format == MANIFEST_FORMAT => serde_json::from_slice(bytes)
            .map(FileContent::Manifest)
            .map_err(|e| WireError::Manifest(e.to_string())),
        Some(format) => Err(WireError::Manifest(format!(
            "format {format:?} is not supported (this build reads {MANIFEST_FORMAT})"
        ))),
        None => Ok(FileContent::Config(CompiledConfig::from_json(bytes)?)),
    }
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| WireError::Gzip(e.to_string()))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(WireError::Gzip(format!("inflates past {MAX_INFLATED_BYTES} bytes")));
    }
    Ok(out)
}

/// Assembles the config a manifest names from its shards (`shards[i]` is the file of
/// `manifest.shards[i]`, `None` when it is absent). Only a complete set, every shard matching the
/// manifest's hash and the result matching its generation, is accepted.
pub fn assemble(manifest: &Manifest, shards: &[Option<Vec<u8>>]) -> Result<CompiledConfig, WireError> {
    let incomplete = |reason: String| WireError::Incomplete {
        generation: manifest.generation.clone(),
        reason,
    };
    if manifest.encoding != "gzip" {
        return Err(WireError::Manifest(format!(
            "encoding {:?} is not supported",
            manifest.encoding
        )));
    }
    if shards.len() != manifest.shards.len() {
        return Err(incomplete(format!(
            "{} shard files for {} named",
            shards.len(),
            manifest.shards.len()
        )));
    }
    let mut compressed = Vec::new();
    for (i, (named, file)) in manifest.shards.iter().zip(shards).enumerate() {
        let Some(bytes) = file else {
            return Err(incomplete(format!("shard {i} ({}) is missing", named.file)));
        };
        if sha256_hex(bytes) != named.sha256 {
            return Err(incomplete(format!(
                "shard {i} ({}) is not the one the manifest names (another generation)",
                named.file
            )));
        }
        compressed.extend_from_slice(bytes);
    }
    let config = CompiledConfig::from_json(&inflate(&compressed)?)?;
    if config.generation != manifest.generation {
        return Err(incomplete(format!(
            "the shards hold generation {}, not the manifest's",
            config.generation
        )));
    }
    Ok(config)
}

#[cfg(test)]
mod tests;
