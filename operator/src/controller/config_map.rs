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
//! The ConfigMap is rewritten only when the content hash (`generation`) changes.

use std::collections::{BTreeMap, BTreeSet};

use tally_config::compiled::CompiledConfig;

use tally_api::compiler::with_generation;

/// Key of the compiled config in the ConfigMap's `data`.
pub const CONFIG_KEY: &str = "config.json";
/// Annotation holding the content hash of the published config.
pub const HASH_ANNOTATION: &str = "tally.dev/config-hash";

/// Whether the ConfigMap must be written: it is missing, unannotated, or holds other content.
pub fn configmap_needs_update(existing_hash: Option<&str>, new_hash: &str) -> bool {
    existing_hash != Some(new_hash)
}

/// The ConfigMap's content for a config: `data` and `annotations`.
pub fn configmap_content(config: &CompiledConfig) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let data = BTreeMap::from([(CONFIG_KEY.to_string(), config.to_json_pretty())]);
    let annotations = BTreeMap::from([(HASH_ANNOTATION.to_string(), config.generation.clone())]);
    (data, annotations)
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
        let (data, annotations) = configmap_content(&c);
        assert_eq!(annotations[HASH_ANNOTATION], c.generation);
        assert_eq!(CompiledConfig::from_json(data[CONFIG_KEY].as_bytes()).unwrap(), c);
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
