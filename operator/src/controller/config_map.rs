//! What goes into the compiled-config ConfigMap: pure decisions over the compiler's output and
//! the config that is currently published.
//!
//! Policy for invalid objects (the compiler leaves them out, see [`tally_api::compiler`]):
//! - an invalid **`TeamBudget`** keeps its **last good config**: the team as it appears in the
//!   currently published config (matched by `source`, `namespace/name`) is carried over, so a typo
//!   in a budget never switches enforcement off. It is not carried over when its team id or one of
//!   its tenants is now claimed by a valid object, and never for a deleted object.
//! - an invalid **`ModelPricing`** is **dropped** whole, as the compiler does: a catalog is priced
//!   consistently or not at all, and its entries carry no reliable link back to the object.
//!
//! Delivery (issue #18): the config is published as compact, gzip-compressed JSON cut into
//! shards of at most `--config-shard-bytes`, each in its own ConfigMap `<name>-shard-<i>` (key
//! `config-shard-<i>.gz` in `binaryData`), and a small manifest naming every shard's sha256 in
//! `<name>` (key `config.json`), written last ([`tally_config::wire`]). A config needing more than
//! `--config-max-shards` shards is not published ([`TooLarge`]): the last good one stays in force.
//!
//! The ConfigMaps are rewritten only when the content hash (`generation`) changes.

use std::collections::{BTreeMap, BTreeSet};

use tally_config::compiled::CompiledConfig;
use tally_config::wire::{self, Encoded};

use tally_api::compiler::with_generation;

/// Key of the manifest (or, from an older operator, the whole config) in the ConfigMap's `data`.
pub const CONFIG_KEY: &str = "config.json";
/// Annotation holding the content hash of the published config.
pub const HASH_ANNOTATION: &str = "tally.dev/config-hash";
/// Annotation of a shard ConfigMap: `<index>/<count>`.
pub const SHARD_ANNOTATION: &str = "tally.dev/config-shard";
/// Annotation of a shard ConfigMap: the sha256 of its bytes (as the manifest names it).
pub const SHARD_HASH_ANNOTATION: &str = "tally.dev/config-shard-sha256";
/// A ConfigMap holds at most 1 MiB; a shard keeps a quarter of it for metadata and headroom
/// (etcd's request limit is ~1.5 MiB, and the API carries `binaryData` base64-encoded).
pub const DEFAULT_SHARD_BYTES: usize = 768 * 1024;
/// Shards the chart mounts by default (`config.maxShards`): 12 MiB compressed.
pub const DEFAULT_MAX_SHARDS: usize = 16;

/// How the compiled config is delivered: the size of a shard and how many there may be.
#[derive(Debug, Clone, clap::Args)]
pub struct DeliveryArgs {
    /// Largest shard of the compressed config, bytes (a ConfigMap holds at most 1 MiB).
    #[arg(long, env = "TALLY_CONFIG_SHARD_BYTES", default_value_t = DEFAULT_SHARD_BYTES)]
    pub config_shard_bytes: usize,
    /// Most shard ConfigMaps (`<name>-shard-<i>`); the chart mounts this many
    /// (`config.maxShards`). A larger config is not published and sets Ready=False (ConfigTooLarge).
    #[arg(long, env = "TALLY_CONFIG_MAX_SHARDS", default_value_t = DEFAULT_MAX_SHARDS)]
    pub config_max_shards: usize,
}

impl Default for DeliveryArgs {
    fn default() -> Self {
        DeliveryArgs {
            config_shard_bytes: DEFAULT_SHARD_BYTES,
            config_max_shards: DEFAULT_MAX_SHARDS,
        }
    }
}

/// A config too large to publish within the delivery limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub generation: String,
    pub json_bytes: u64,
    pub compressed_bytes: u64,
    pub limit_bytes: u64,
    pub shards_needed: usize,
    pub max_shards: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the compiled config (generation {}) is {} bytes compressed ({} bytes of JSON), over the limit of {} bytes \
             ({} ConfigMap shards, --config-max-shards; it needs {}); the previous config stays in force",
            self.generation,
            self.compressed_bytes,
            self.json_bytes,
            self.limit_bytes,
            self.max_shards,
            self.shards_needed
        )
    }
}

/// The name of shard `index`'s ConfigMap.
pub fn shard_name(config_map: &str, index: usize) -> String {
    format!("{config_map}-shard-{index}")
}

/// Encodes `config` for publishing, or says it does not fit.
pub fn encode(config: &CompiledConfig, delivery: &DeliveryArgs) -> Result<Encoded, TooLarge> {
    let encoded = wire::encode(config, delivery.config_shard_bytes);
    if encoded.shards.len() <= delivery.config_max_shards {
        return Ok(encoded);
    }
    Err(TooLarge {
        generation: config.generation.clone(),
        json_bytes: encoded.manifest.json_bytes,
        compressed_bytes: encoded.compressed_bytes(),
        limit_bytes: (delivery.config_shard_bytes * delivery.config_max_shards) as u64,
        shards_needed: encoded.shards.len(),
        max_shards: delivery.config_max_shards,
    })
}

/// Whether the ConfigMaps must be written: missing, unannotated, or holding other content.
pub fn configmap_needs_update(existing_hash: Option<&str>, new_hash: &str) -> bool {
    existing_hash != Some(new_hash)
}

/// The manifest ConfigMap's content: `data` and `annotations`.
pub fn manifest_content(encoded: &Encoded) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let data = BTreeMap::from([(CONFIG_KEY.to_string(), encoded.manifest_json())]);
    let annotations = BTreeMap::from([(HASH_ANNOTATION.to_string(), encoded.manifest.generation.clone())]);
    (data, annotations)
}

/// Shard `index`'s ConfigMap content: its file in `binaryData` (the bytes) and `annotations`.
pub fn shard_content(encoded: &Encoded, index: usize) -> (String, &[u8], BTreeMap<String, String>) {
    let named = &encoded.manifest.shards[index];
    let annotations = BTreeMap::from([
        (HASH_ANNOTATION.to_string(), encoded.manifest.generation.clone()),
        (
            SHARD_ANNOTATION.to_string(),
            format!("{index}/{}", encoded.shards.len()),
        ),
        (SHARD_HASH_ANNOTATION.to_string(), named.sha256.clone()),
    ]);
    (named.file.clone(), &encoded.shards[index], annotations)
}

/// Carries the last good config of invalid `TeamBudget`s (by `namespace/name`) over from the
/// published config. Returns the config to publish (its generation recomputed) and the sources
/// that were carried over.
pub fn keep_last_good(
    compiled: CompiledConfig,
    published: Option<&CompiledConfig>,
    invalid_teams: &BTreeSet<String>,
) -> (CompiledConfig, BTreeSet<String>) {
    let mut kept = BTreeSet::new();
    let Some(published) = published else {
        return (compiled, kept);
    };
    let mut config = compiled;
    for old in published.teams.iter().filter(|t| invalid_teams.contains(&t.source)) {
        let team_taken = config.teams.iter().any(|t| t.team == old.team);
        let tenant_taken = old
            .tenants
            .iter()
            .any(|o| config.teams.iter().any(|t| t.tenants.iter().any(|n| n.id == o.id)));
        if team_taken || tenant_taken {
            continue;
        }
        kept.insert(old.source.clone());
        config.teams.push(old.clone());
    }
    if kept.is_empty() {
        return (config, kept);
    }
    config.teams.sort_by(|a, b| a.team.cmp(&b.team));
    (with_generation(config), kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_config::compiled::{CONFIG_VERSION, Catalog, TeamConfig, TenantConfig};

    fn team(id: &str, source: &str, tenants: &[&str]) -> TeamConfig {
        TeamConfig {
            team: id.into(),
            source: source.into(),
            cost_center: None,
            tenants: tenants
                .iter()
                .map(|t| TenantConfig {
                    id: (*t).into(),
                    limit: None,
                })
                .collect(),
            budget: None,
            workflows: vec![],
            allowed_models: vec![],
            principals: vec![],
        }
    }

    fn config(teams: Vec<TeamConfig>) -> CompiledConfig {
        with_generation(CompiledConfig {
            version: CONFIG_VERSION,
            generation: String::new(),
            teams,
            catalog: Catalog::default(),
        })
    }

    #[test]
    fn rewrites_only_on_new_content() {
        assert!(configmap_needs_update(None, "abc"));
        assert!(configmap_needs_update(Some("abd"), "abc"));
        assert!(!configmap_needs_update(Some("abc"), "abc"));
        let c = config(vec![team("a", "ns/a", &[])]);
        let encoded = encode(&c, &DeliveryArgs::default()).unwrap();
        let (data, annotations) = manifest_content(&encoded);
        assert_eq!(annotations[HASH_ANNOTATION], c.generation);
        let wire::FileContent::Manifest(manifest) = wire::decode_file(data[CONFIG_KEY].as_bytes()).unwrap() else {
            panic!("config.json holds the manifest");
        };
        let (file, bytes, shard_annotations) = shard_content(&encoded, 0);
        assert_eq!(
            (file.as_str(), shard_annotations[SHARD_ANNOTATION].as_str()),
            ("config-shard-0.gz", "0/1")
        );
        assert_eq!(wire::assemble(&manifest, &[Some(bytes.to_vec())]).unwrap(), c);
    }

    #[test]
    fn a_config_over_the_shard_limit_is_too_large() {
        let teams = (0..400)
            .map(|i| team(&format!("t{i}-{}", i * 7919), &format!("ns/{i}"), &[]))
            .collect();
        let c = config(teams);
        let tight = DeliveryArgs {
            config_shard_bytes: 1024,
            config_max_shards: 2,
        };
        let err = encode(&c, &tight).unwrap_err();
        assert_eq!((err.limit_bytes, err.max_shards), (2048, 2));
        assert!(err.shards_needed > 2 && err.compressed_bytes > 2048, "{err:?}");
        assert!(err.to_string().contains("over the limit of 2048 bytes"), "{err}");
        let roomy = DeliveryArgs {
            config_shard_bytes: 1024,
            config_max_shards: err.shards_needed,
        };
        assert_eq!(encode(&c, &roomy).unwrap().shards.len(), err.shards_needed);
        assert_eq!(shard_name("tally-config", 3), "tally-config-shard-3");
    }

    #[test]
    fn an_invalid_team_keeps_its_published_config() {
        let published = config(vec![team("a", "ns/a", &[]), team("b", "ns/b", &["t1"])]);
        let compiled = config(vec![team("a", "ns/a", &[])]);
        let invalid = BTreeSet::from(["ns/b".to_string()]);
        let (out, kept) = keep_last_good(compiled.clone(), Some(&published), &invalid);
        assert_eq!(kept, invalid);
        assert_eq!(out, published);
        // Nothing published yet (fresh install): the team is simply absent.
        let (out, kept) = keep_last_good(compiled.clone(), None, &invalid);
        assert!(kept.is_empty());
        assert_eq!(out, compiled);
    }

    #[test]
    fn a_claim_taken_by_a_valid_object_wins_over_the_last_good_config() {
        let published = config(vec![team("b", "ns/b", &["t1"]), team("c", "ns/c", &[])]);
        // ns/b2 now validly owns team "b" and ns/d tenant "t1": ns/b's old config cannot come back.
        let compiled = config(vec![team("b", "ns/b2", &[]), team("d", "ns/d", &["t1"])]);
        let invalid = BTreeSet::from(["ns/b".to_string(), "ns/c".to_string()]);
        let (out, kept) = keep_last_good(compiled, Some(&published), &invalid);
        assert_eq!(kept, BTreeSet::from(["ns/c".to_string()]));
        let ids: Vec<_> = out.teams.iter().map(|t| (t.team.as_str(), t.source.as_str())).collect();
        assert_eq!(ids, [("b", "ns/b2"), ("c", "ns/c"), ("d", "ns/d")]);
        assert_eq!(out, with_generation(out.clone()));
    }
}
