//! Publishing the compiled config to its ConfigMap: read what is published, carry invalid
//! teams' last good config over ([`config_map::keep_last_good`]) and write only when the
//! content hash changed. The decisions are in [`config_map`]; this room does the I/O.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, Patch};
use tally_api::compiler::{Compiled, ObjectRef};
use tally_api::crd::TeamBudget;
use tally_config::compiled::CompiledConfig;

use super::args::Settings;
use super::clients::{Clients, FIELD_MANAGER, apply_params};
use super::config_map;

/// Publishes `compiled` (with the last good config of invalid teams) if the ConfigMap holds
/// anything else. Returns the config now published: what the ext_proc enforces.
pub(super) async fn publish(
    settings: &Settings,
    clients: &Clients,
    teams: &[TeamBudget],
    compiled: &Compiled,
) -> Result<CompiledConfig, kube::Error> {
    let cms: Api<ConfigMap> = Api::namespaced(clients.kube.clone(), &settings.namespace);
    let existing = cms.get_opt(&settings.config_map_name).await?;
    let existing_hash = existing
        .as_ref()
        .and_then(|cm| cm.annotations().get(config_map::HASH_ANNOTATION).cloned());
    let published = existing
        .as_ref()
        .and_then(|cm| cm.data.as_ref()?.get(config_map::CONFIG_KEY).cloned())
        .and_then(|json| CompiledConfig::from_json(json.as_bytes()).ok());

    let invalid_teams: BTreeSet<String> = teams
        .iter()
        .filter(|tb| compiled.errors_of(&ObjectRef::team_budget(tb)).next().is_some())
        .map(TeamBudget::key)
        .collect();
    let (config, _kept) = config_map::keep_last_good(compiled.config.clone(), published.as_ref(), &invalid_teams);

    if config_map::configmap_needs_update(existing_hash.as_deref(), &config.generation) {
        cms.patch(
            &settings.config_map_name,
            &apply_params(),
            &Patch::Apply(&configmap(settings, &config)),
        )
        .await?;
        clients.metrics.config_writes.inc();
        tracing::info!(generation = %config.generation, teams = config.teams.len(), entries = config.catalog.entries.len(),
            configmap = %format!("{}/{}", settings.namespace, settings.config_map_name), "published compiled config");
    }
    Ok(config)
}

/// The whole ConfigMap holding `config`, as an apply patch.
fn configmap(settings: &Settings, config: &CompiledConfig) -> serde_json::Value {
    let (data, annotations) = config_map::configmap_content(config);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(settings.config_map_name.clone()),
            namespace: Some(settings.namespace.clone()),
            annotations: Some(annotations),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                FIELD_MANAGER.to_string(),
            )])),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&cm).expect("a ConfigMap serializes");
    value["apiVersion"] = "v1".into();
    value["kind"] = "ConfigMap".into();
    value
}
