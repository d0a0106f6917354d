//! The config compiler: `TeamBudget`s and `ModelPricing`s in, the data plane's
//! [`CompiledConfig`] out. Pure: no cluster, no files, no clock.
//!
//! The operator runs it on every change in the cluster; `tally render` runs the
//! same code on YAML files. It checks everything the CRD schema checks (the API
//! server is not there offline) and what no schema can: timezones that exist,
//! limits within the team's limit, a team or tenant claimed twice across
//! namespaces, alias conflicts between catalogs.
//!
//! Errors never stop at the first: every problem of every object is collected,
//! each naming the object (`TeamBudget ns/name`, `ModelPricing name`) and the
//! field (`spec.workflows[1].limitUSD`). [`compile_lenient`] is what the
//! reconciler uses: an object with errors is **left out** of the config and
//! reported, the rest still compiles. That is, a bad `TeamBudget` is dropped
//! (its team is then unknown to the data plane), and a `ModelPricing` with any
//! bad entry is dropped whole (a catalog is priced consistently or not at all).
//! For a conflict between two objects (same team id, same tenant, conflicting
//! alias), the object that came first keeps the claim — the older one by
//! `creationTimestamp`, then by `namespace/name` — and the error is reported on
//! the other one, naming both. [`compile`] is the strict form `tally render`
//! uses: any error fails.
//!
//! The output is deterministic: teams sorted by id, price entries in
//! precedence order (see [`catalog`]), aliases sorted by id, and
//! `generation` is a hash of the content, so equal inputs give byte-equal JSON.

pub mod billing;
pub mod catalog;
pub mod syntax;
pub mod teams;

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};
use tally_config::compiled::{CONFIG_VERSION, CompiledConfig};

use crate::crd::{ModelPricing, TeamBudget};

/// Which object an error is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectRef {
    ModelPricing { name: String },
    TeamBudget { namespace: String, name: String },
}

impl ObjectRef {
    pub fn team_budget(tb: &TeamBudget) -> Self {
        ObjectRef::TeamBudget {
            namespace: tb.metadata.namespace.clone().unwrap_or_default(),
            name: tb.metadata.name.clone().unwrap_or_default(),
        }
    }

    pub fn model_pricing(mp: &ModelPricing) -> Self {
        ObjectRef::ModelPricing {
            name: mp.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectRef::ModelPricing { name } => write!(f, "ModelPricing {name}"),
            ObjectRef::TeamBudget { namespace, name } => write!(f, "TeamBudget {namespace}/{name}"),
        }
    }
}

/// One problem with one field of one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {field}: {message}")]
pub struct CompileError {
    pub object: ObjectRef,
    /// JSON path of the field at fault, e.g. `spec.workflows[1].limitUSD`.
    pub field: String,
    /// What is wrong and why, e.g. `"12.x" is not a decimal number like "12.50"`.
    pub message: String,
}

impl CompileError {
    pub fn new(object: &ObjectRef, field: impl Into<String>, message: impl Into<String>) -> Self {
        CompileError {
            object: object.clone(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Collects the errors of one object.
struct Problems {
    object: ObjectRef,
    errors: Vec<CompileError>,
}

impl Problems {
    fn new(object: ObjectRef) -> Self {
        Problems { object, errors: vec![] }
    }

    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(CompileError::new(&self.object, field, message));
    }

    fn check(&mut self, field: impl Into<String>, result: Result<(), String>) {
        if let Err(message) = result {
            self.push(field, message);
        }
    }
}

/// What [`compile_lenient`] produced: a config of the valid objects, and the
/// errors of the ones left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub config: CompiledConfig,
    /// Every error, grouped by object in object order; empty when all compiled.
    pub errors: Vec<CompileError>,
    /// How many price entries each included `ModelPricing` (by name) contributed.
    pub entries_per_catalog: BTreeMap<String, usize>,
}

impl Compiled {
    /// The errors of one object (empty: it is in the config).
    pub fn errors_of<'a>(&'a self, object: &'a ObjectRef) -> impl Iterator<Item = &'a CompileError> + 'a {
        self.errors.iter().filter(move |e| &e.object == object)
    }

    /// The config when nothing was wrong, every error otherwise.
    pub fn into_result(self) -> Result<CompiledConfig, Vec<CompileError>> {
        if self.errors.is_empty() {
            Ok(self.config)
        } else {
            Err(self.errors)
        }
    }
}

/// Compiles all objects or fails with every error of every object.
pub fn compile(teams: &[TeamBudget], pricings: &[ModelPricing]) -> Result<CompiledConfig, Vec<CompileError>> {
    compile_lenient(teams, pricings).into_result()
}

/// Compiles the valid objects and reports the others (see the module doc for
/// what is left out when).
pub fn compile_lenient(teams: &[TeamBudget], pricings: &[ModelPricing]) -> Compiled {
    let mut errors = Vec::new();
    let (team_configs, team_errors) = teams::compile_teams(teams);
    errors.extend(team_errors);
    let (catalog, entries_per_catalog, catalog_errors) = catalog::compile_catalogs(pricings);
    errors.extend(catalog_errors);
    // Group by object (stable: each object's errors stay in field order).
    errors.sort_by(|a, b| a.object.cmp(&b.object));
    let config = with_generation(CompiledConfig {
        version: CONFIG_VERSION,
        generation: String::new(),
        teams: team_configs,
        catalog,
    });
    Compiled {
        config,
        errors,
        entries_per_catalog,
    }
}

/// Per-object checks of one `TeamBudget` (no cross-object checks): what makes
/// it invalid on its own.
pub fn validate_team(tb: &TeamBudget) -> Vec<CompileError> {
    teams::compile_team(tb).err().unwrap_or_default()
}

/// Per-object checks of one `ModelPricing` (no cross-catalog checks).
pub fn validate_pricing(mp: &ModelPricing) -> Vec<CompileError> {
    catalog::compile_pricing(mp).err().unwrap_or_default()
}

/// Sets `generation` to the first 16 hex digits of the SHA-256 of the config's
/// canonical JSON with an empty generation: a content hash, equal for equal configs.
pub fn with_generation(mut config: CompiledConfig) -> CompiledConfig {
    config.generation.clear();
    let canonical = serde_json::to_vec(&config).expect("a compiled config serializes");
    let digest = Sha256::digest(&canonical);
    config.generation = hex::encode(&digest[..8]);
    config
}

#[cfg(test)]
pub(crate) mod test_objects {
    //! Builders for test objects, shared by the compiler's test modules.
    use kube::core::ObjectMeta;

    use crate::crd::{
        Budget, BudgetPeriod, Enforcement, ModelAlias, ModelPrice, ModelPricing, ModelPricingSpec, TeamBudget,
        TeamBudgetSpec, TokenPrices,
    };

    pub fn team(ns: &str, name: &str, team: &str) -> TeamBudget {
        // Every other field is optional: what a minimal manifest gives.
        let spec: TeamBudgetSpec = serde_json::from_value(serde_json::json!({ "team": team })).expect("a valid spec");
        let mut tb = TeamBudget::new(name, spec);
        tb.metadata.namespace = Some(ns.into());
        tb
    }

    pub fn budget(limit: &str) -> Budget {
        Budget {
            limit_usd: limit.into(),
            period: BudgetPeriod::Monthly,
            timezone: "UTC".into(),
            enforcement: Enforcement::Block,
            alert_thresholds: vec![50, 80, 100],
        }
    }

    pub fn price(pattern: &str, input: &str) -> ModelPrice {
        ModelPrice {
            pattern: pattern.into(),
            regions: vec![],
            prices: TokenPrices {
                input_per_million: input.into(),
                output_per_million: "1".into(),
                ..TokenPrices::default()
            },
            max_output_tokens: 4096,
            ..ModelPrice::default()
        }
    }

    pub fn pricing(name: &str, priority: i32, models: Vec<ModelPrice>, aliases: Vec<ModelAlias>) -> ModelPricing {
        ModelPricing {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: ModelPricingSpec {
                source: "test".into(),
                effective_from: "2025-11-20".into(),
                priority,
                models,
                aliases,
            },
            status: None,
        }
    }

    pub fn alias(id: &str, model: &str) -> ModelAlias {
        ModelAlias {
            id: id.into(),
            model: model.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_objects::*;
    use super::*;

    #[test]
    fn generation_is_a_content_hash() {
        let teams = [team("a", "a", "alpha"), team("b", "b", "beta")];
        let pricings = [pricing("p", 0, vec![price("x", "1")], vec![])];
        let one = compile(&teams, &pricings).unwrap();
        // Input order does not matter.
        let two = compile(&[teams[1].clone(), teams[0].clone()], &pricings).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.generation.len(), 16);
        assert!(one.generation.bytes().all(|b| b.is_ascii_hexdigit()));
        // Any change changes it.
        let three = compile(&teams[..1], &pricings).unwrap();
        assert_ne!(one.generation, three.generation);
        // The hash is over the config with an empty generation, so it is reproducible.
        assert_eq!(with_generation(one.clone()).generation, one.generation);
    }

    #[test]
    fn the_output_is_what_the_data_plane_accepts() {
        let mut tb = team("search", "search", "search");
        tb.spec.budget = Some(budget("100"));
        let config = compile(&[tb], &[pricing("p", 0, vec![price("x", "1")], vec![])]).unwrap();
        let parsed = CompiledConfig::from_json(config.to_json_pretty().as_bytes()).unwrap();
        assert_eq!(parsed, config);
    }

    #[test]
    fn lenient_compile_keeps_the_good_and_names_the_bad() {
        let good = team("a", "good", "alpha");
        let bad = team("b", "bad", "Not A Team");
        let compiled = compile_lenient(&[good, bad.clone()], &[]);
        assert_eq!(compiled.config.teams.len(), 1);
        assert_eq!(compiled.config.teams[0].team, "alpha");
        let bad_ref = ObjectRef::team_budget(&bad);
        let errs: Vec<_> = compiled.errors_of(&bad_ref).collect();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.team");
        assert!(
            errs[0]
                .to_string()
                .starts_with("TeamBudget b/bad: spec.team: \"Not A Team\""),
            "{}",
            errs[0]
        );
        assert!(compiled.into_result().is_err());
    }
}
