//! Publishing the compiled config to its ConfigMaps: read what is published (the manifest, and
//! the shards only when the manifest changed since the last pass), carry invalid teams' last good
//! config over ([`config_map::keep_last_good`]) and, when the content hash changed, write every
//! shard and then the manifest that names them, so a reader never sees a manifest before its
//! shards exist. The decisions are in [`config_map`]; this room does the I/O.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, Patch};
use tally_api::compiler::{Compiled, ObjectRef};
use tally_api::crd::TeamBudget;
use tally_config::compiled::CompiledConfig;
use tally_config::wire::{self, Encoded, FileContent};

use super::args::Settings;
use super::clients::{Clients, FIELD_MANAGER, apply_params};
use super::config_map::{self, TooLarge};

/// What is published, as the last pass read or wrote it: the shards are read again only when
/// the manifest's hash differs.
#[derive(Default)]
pub(super) struct Cache {
    config: Option<CompiledConfig>,
    /// Shards the published manifest names (those past a smaller new count are emptied).
    shards: usize,
}

/// The outcome of a publish: the config in force, and why the compiled one is not, if it is not.
pub(super) struct Published {
    pub in_force: CompiledConfig,
    pub too_large: Option<TooLarge>,
}

/// Publishes `compiled` (with the last good config of invalid teams) if the ConfigMaps hold
/// anything else and it fits the delivery limits.
pub(super) async fn publish(
    settings: &Settings,
    clients: &Clients,
    teams: &[TeamBudget],
    compiled: &Compiled,
    cache: &mut Cache,
) -> Result<Published, kube::Error> {
    let cms: Api<ConfigMap> = Api::namespaced(clients.kube.clone(), &settings.namespace);
    let existing = cms.get_opt(&settings.config_map_name).await?;
    let existing_hash = existing
        .as_ref()
        .and_then(|cm| cm.annotations().get(config_map::HASH_ANNOTATION).cloned());
    if cache.config.as_ref().map(|c| &c.generation) != existing_hash.as_ref() {
        *cache = read_published(&cms, settings, existing.as_ref()).await?;
    }
    let invalid_teams: BTreeSet<String> = teams
        .iter()
        .filter(|tb| compiled.errors_of(&ObjectRef::team_budget(tb)).next().is_some())
        .map(TeamBudget::key)
        .collect();
    let (config, _kept) = config_map::keep_last_good(compiled.config.clone(), cache.config.as_ref(), &invalid_teams);

    if !config_map::configmap_needs_update(existing_hash.as_deref(), &config.generation) {
        return Ok(Published {
            in_force: config,
            too_large: None,
        });
    }
    let encoded = match config_map::encode(&config, &settings.delivery) {
        Ok(encoded) => encoded,
        Err(too_large) => {
            return Ok(Published {
                in_force: cache.config.clone().unwrap_or_else(CompiledConfig::empty),
                too_large: Some(too_large),
            });
        }
    };
    write(&cms, settings, &encoded, cache.shards).await?;
    clients.metrics.config_writes.inc();
    tracing::info!(generation = %config.generation, teams = config.teams.len(), entries = config.catalog.entries.len(),
        json_bytes = encoded.manifest.json_bytes, compressed_bytes = encoded.compressed_bytes(), shards = encoded.shards.len(),
        configmap = %format!("{}/{}", settings.namespace, settings.config_map_name), "published compiled config");
    *cache = Cache {
        shards: encoded.shards.len(),
        config: Some(config.clone()),
    };
    Ok(Published {
        in_force: config,
        too_large: None,
    })
}

/// Writes the shards, then the manifest, then empties the shards an earlier, larger config used.
async fn write(
    cms: &Api<ConfigMap>,
    settings: &Settings,
    encoded: &Encoded,
    old_shards: usize,
) -> Result<(), kube::Error> {
    let base = &settings.config_map_name;
    for index in 0..encoded.shards.len() {
        let (file, bytes, annotations) = config_map::shard_content(encoded, index);
        let data = Data::Binary(BTreeMap::from([(file, ByteString(bytes.to_vec()))]));
        let name = config_map::shard_name(base, index);
        let cm = configmap(settings, &name, annotations, data);
        cms.patch(&name, &apply_params(), &Patch::Apply(&cm)).await?;
    }
    let (data, annotations) = config_map::manifest_content(encoded);
    let cm = configmap(settings, base, annotations, Data::Text(data));
    cms.patch(base, &apply_params(), &Patch::Apply(&cm)).await?;
    for index in encoded.shards.len()..old_shards {
        let name = config_map::shard_name(base, index);
        let cm = configmap(settings, &name, BTreeMap::new(), Data::Binary(BTreeMap::new()));
        cms.patch(&name, &apply_params(), &Patch::Apply(&cm)).await?;
    }
    Ok(())
}

/// The config the ConfigMaps hold: a manifest and its shards, or (from an older operator) the
/// whole config. Unreadable content is logged and treated as nothing published.
async fn read_published(
    cms: &Api<ConfigMap>,
    settings: &Settings,
    manifest: Option<&ConfigMap>,
) -> Result<Cache, kube::Error> {
    let Some(text) = manifest.and_then(|cm| cm.data.as_ref()?.get(config_map::CONFIG_KEY).cloned()) else {
        return Ok(Cache::default());
    };
    let manifest = match wire::decode_file(text.as_bytes()) {
        Ok(FileContent::Config(config)) => {
            return Ok(Cache {
                config: Some(config),
                shards: 0,
            });
        }
        Ok(FileContent::Manifest(manifest)) => manifest,
        Err(error) => {
            tracing::warn!(%error, "the published config cannot be read; publishing as if none were");
            return Ok(Cache::default());
        }
    };
    let mut shards = vec![];
    for (index, named) in manifest.shards.iter().enumerate() {
        let cm = cms
            .get_opt(&config_map::shard_name(&settings.config_map_name, index))
            .await?;
        shards.push(cm.and_then(|cm| Some(cm.binary_data?.remove(&named.file)?.0)));
    }
    let config = wire::assemble(&manifest, &shards)
        .inspect_err(|error| tracing::warn!(%error, "the published config cannot be read; publishing as if none were"))
        .ok();
    Ok(Cache {
        config,
        shards: manifest.shards.len(),
    })
}

/// What a ConfigMap carries.
enum Data {
    Text(BTreeMap<String, String>),
    Binary(BTreeMap<String, ByteString>),
}

/// A whole ConfigMap, as an apply patch.
fn configmap(settings: &Settings, name: &str, annotations: BTreeMap<String, String>, data: Data) -> serde_json::Value {
    let (data, binary_data) = match data {
        Data::Text(d) => (Some(d), None),
        Data::Binary(b) => (None, Some(b)),
    };
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(settings.namespace.clone()),
            annotations: Some(annotations),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                FIELD_MANAGER.to_string(),
            )])),
            ..Default::default()
        },
        data,
        binary_data,
        ..Default::default()
    };
    let mut value = serde_json::to_value(&cm).expect("a ConfigMap serializes");
    value["apiVersion"] = "v1".into();
    value["kind"] = "ConfigMap".into();
    value
}
