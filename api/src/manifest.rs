//! Reading `TeamBudget` and `ModelPricing` objects from YAML files, for
//! `tally render` and for tests: files and directories (recursively, `*.yaml`
//! and `*.yml`), several documents per file.
//!
//! Offline there is no API server, so this module does the part of its job
//! that decides what an object *is*: it checks each object against the CRD's
//! OpenAPI schema for types, required fields, enum values, integer ranges and
//! unknown fields (the API server refuses those too), and drops `null` fields
//! the way the API server prunes them. Everything about values (patterns,
//! limits, timezones, cross-object rules) is the compiler's job, so that each
//! problem is reported once. Documents of other kinds are skipped and listed.
//!
//! It never touches a cluster and never stops at the first problem.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use kube::CustomResourceExt;

use serde::Deserialize;
use serde_json::Value;

use crate::compiler::ObjectRef;
use crate::crd::{self, GROUP, ModelPricing, TeamBudget, VERSION};

static TEAM_BUDGET_SCHEMA: LazyLock<Value> = LazyLock::new(|| crd::openapi_schema(&TeamBudget::crd()));
static MODEL_PRICING_SCHEMA: LazyLock<Value> = LazyLock::new(|| crd::openapi_schema(&ModelPricing::crd()));

/// Where an object was read from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based index of the YAML document in its file.
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
    }
}

/// One problem found while reading; displays as one line naming the file, the
/// document and (when known) the object and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, when the problem is about one document.
    pub origin: Option<Origin>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(f, "{origin}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Everything read from a set of paths.
#[derive(Debug, Default)]
pub struct Manifests {
    pub teams: Vec<TeamBudget>,
    pub pricings: Vec<ModelPricing>,
    /// Where each object came from.
    pub origins: BTreeMap<ObjectRef, Origin>,
    /// Unreadable files, YAML errors and objects that do not fit their schema,
    /// in the order found.
    pub problems: Vec<Problem>,
    /// Documents that are not Tally objects, e.g. `apps/v1 Deployment web (examples/x.yaml, document 2)`.
    pub skipped: Vec<String>,
}

impl Manifests {
    fn problem(&mut self, origin: Option<&Origin>, message: String) {
        self.problems.push(Problem {
            origin: origin.cloned(),
            message,
        });
    }
}

/// Reads every Tally object under `paths`. TeamBudgets without a namespace get
/// `default_namespace`, as `kubectl apply` would give them.
pub fn load(paths: &[PathBuf], default_namespace: &str) -> Manifests {
    let mut out = Manifests::default();
    for path in paths {
        let files = match manifest_files(path) {
            Ok(files) if files.is_empty() => {
                out.problem(
                    None,
                    format!("{}: no *.yaml or *.yml file in this directory", path.display()),
                );
                continue;
            }
            Ok(files) => files,
            Err(e) => {
                out.problem(None, format!("{}: cannot read: {e}", path.display()));
                continue;
            }
        };
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => load_text(&file, &text, default_namespace, &mut out),
                Err(e) => out.problem(None, format!("{}: cannot read: {e}", file.display())),
            }
        }
    }
    out
}

/// `path` itself if it is a file; the YAML files under it, sorted, if it is a directory.
fn manifest_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = vec![];
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let p = entry?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the documents of one file's text into `out`.
pub fn load_text(file: &Path, text: &str, default_namespace: &str, out: &mut Manifests) {
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: file.to_path_buf(),
            document: i + 1,
        };
        match Value::deserialize(document) {
            Ok(value) => load_document(value, origin, default_namespace, out),
            Err(e) => {
                // After a syntax error the rest of the file cannot be trusted.
                out.problem(Some(&origin), format!("invalid YAML: {e}"));
                return;
            }
        }
    }
}

/// Reads one document into `out`: an object, a skipped document or problems.
fn load_document(mut value: Value, origin: Origin, default_namespace: &str, out: &mut Manifests) {
    if value.is_null() {
        return; // an empty document, e.g. after a trailing `---`
    }
    let Some(obj) = value.as_object_mut() else {
        out.problem(
            Some(&origin),
            format!("expected a Kubernetes object (a mapping), found {}", describe(&value)),
        );
        return;
    };
    let object = match identify(obj, default_namespace) {
        Identified::Tally(object) => object,
        Identified::Other(skipped) => {
            out.skipped.push(format!("{skipped} ({origin})"));
            return;
        }
        Identified::Problem(message) => {
            out.problem(Some(&origin), message);
            return;
        }
    };
    if let Some(first) = out.origins.get(&object) {
        out.problem(Some(&origin), format!("{object}: defined twice (first in {first})"));
        return;
    }
    let problems = schema_problems(&mut value, &object);
    if !problems.is_empty() {
        for (field, message) in problems {
            out.problem(Some(&origin), format!("{object}: {field}: {message}"));
        }
        return;
    }
    let parsed = match object {
        ObjectRef::TeamBudget { .. } => serde_json::from_value(value).map(|tb| out.teams.push(tb)),
        ObjectRef::ModelPricing { .. } => serde_json::from_value(value).map(|mp| out.pricings.push(mp)),
    };
    match parsed {
        Ok(()) => {
            out.origins.insert(object, origin);
        }
        Err(e) => out.problem(Some(&origin), format!("{object}: {e}")),
    }
}

/// What a document's `apiVersion`, `kind` and `metadata` say it is.
enum Identified {
    /// A Tally object, normalized as the API server would store it.
    Tally(ObjectRef),
    /// Another Kubernetes object: `apiVersion kind name`.
    Other(String),
    /// Not an object Tally or the API server would accept.
    Problem(String),
}

/// Identifies the object and normalizes it as the API server would: `status` dropped, a
/// TeamBudget's missing namespace defaulted, a ModelPricing's (cluster-scoped) namespace removed.
fn identify(obj: &mut serde_json::Map<String, Value>, default_namespace: &str) -> Identified {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let api_version = text(obj.get("apiVersion"));
    let kind = text(obj.get("kind"));
    let name = text(obj.get("metadata").and_then(|m| m.get("name")));
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
    if group != GROUP {
        if api_version.is_empty() || kind.is_empty() {
            return Identified::Problem("not a Kubernetes object: apiVersion and kind are required".to_string());
        }
        return Identified::Other(format!("{api_version} {kind} {name}"));
    }
    if version != VERSION {
        return Identified::Problem(format!(
            "{kind} {name}: apiVersion {api_version:?} is not served; use {}",
            crd::API_VERSION
        ));
    }
    if name.is_empty() {
        return Identified::Problem(format!("{kind}: metadata.name: required"));
    }
    // The API server ignores status in what is applied; so does render.
    obj.remove("status");
    match kind.as_str() {
        "TeamBudget" => {
            let metadata = obj
                .entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()));
            let namespace = match metadata.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() => ns.to_string(),
                _ => {
                    metadata["namespace"] = Value::String(default_namespace.to_string());
                    default_namespace.to_string()
                }
            };
            Identified::Tally(ObjectRef::TeamBudget { namespace, name })
        }
        "ModelPricing" => {
            if let Some(metadata) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("namespace"); // cluster-scoped
            }
            Identified::Tally(ObjectRef::ModelPricing { name })
        }
        other => Identified::Problem(format!(
            "{other} {name}: unknown kind in {GROUP}; expected TeamBudget or ModelPricing"
        )),
    }
}

/// `(field, message)` for every way the object's top level and spec miss its CRD's schema.
fn schema_problems(value: &mut Value, object: &ObjectRef) -> Vec<(String, String)> {
    let schema: &Value = match object {
        ObjectRef::TeamBudget { .. } => &TEAM_BUDGET_SCHEMA,
        ObjectRef::ModelPricing { .. } => &MODEL_PRICING_SCHEMA,
    };
    let mut problems = vec![];
    for (key, sub) in value.as_object_mut().expect("an object").iter_mut() {
        match key.as_str() {
            "apiVersion" | "kind" | "metadata" => {}
            "spec" => check_schema(sub, &schema["properties"]["spec"], "spec", &mut problems),
            other => problems.push((other.to_string(), "unknown field".to_string())),
        }
    }
    if value.get("spec").is_none() {
        problems.push(("spec".to_string(), "required".to_string()));
    }
    problems
}

/// Checks `value` against an OpenAPI v3 schema node: types, required fields,
/// enums, integer bounds and unknown fields. Prunes `null`s where the schema
/// does not allow them, as the API server does. Appends `(field, message)`.
pub fn check_schema(value: &mut Value, schema: &Value, path: &str, problems: &mut Vec<(String, String)>) {
    let mut problem = |message: String| problems.push((path.to_string(), message));
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = value.as_object_mut() else {
                problem(format!("expected an object, found {}", describe(value)));
                return;
            };
            let props = schema.get("properties").and_then(Value::as_object);
            let nullable = |key: &str| props.and_then(|p| p.get(key)).is_some_and(|s| s["nullable"] == true);
            obj.retain(|key, v| !v.is_null() || nullable(key));
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let key = required.as_str().unwrap_or_default();
                if !obj.contains_key(key) {
                    problems.push((format!("{path}.{key}"), "required".to_string()));
                }
            }
            let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
            for (key, sub) in obj.iter_mut() {
                let field = format!("{path}.{key}");
                match props.and_then(|p| p.get(key)) {
                    Some(sub_schema) => check_schema(sub, sub_schema, &field, problems),
                    None if preserve => {}
                    None => {
                        let known: Vec<&str> = props
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        problems.push((field, format!("unknown field (known: {})", known.join(", "))));
                    }
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array_mut() else {
                problem(format!("expected a list, found {}", describe(value)));
                return;
            };
            for (i, item) in items.iter_mut().enumerate() {
                check_schema(item, &schema["items"], &format!("{path}[{i}]"), problems);
            }
        }
        Some("string") => match value {
            Value::String(s) => {
                if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                    && !allowed.iter().any(|a| a == s.as_str())
                {
                    let allowed: Vec<String> = allowed.iter().filter_map(Value::as_str).map(String::from).collect();
                    problem(format!("{s:?} is not one of {}", allowed.join(", ")));
                }
            }
            Value::Number(n) => problem(format!(
                "expected a string, found the number {n}; quote it (\"{n}\"): amounts are decimal strings"
            )),
            Value::Null if schema["nullable"] == true => {}
            other => problem(format!("expected a string, found {}", describe(other))),
        },
        Some("integer") => match value.as_i64().map(i128::from).or(value.as_u64().map(i128::from)) {
            // Bounds the Rust type cannot hold are reported here (deserializing would fail
            // without naming the field); bounds it can hold are the compiler's to check.
            Some(n) if !fits(n, schema.get("format").and_then(Value::as_str)) => {
                let min = schema.get("minimum").and_then(Value::as_f64).map(|m| m as i128);
                match min.filter(|m| n < *m) {
                    Some(m) => problem(format!("{n} is below the minimum {m}")),
                    None => match schema.get("maximum").and_then(Value::as_f64) {
                        Some(max) => problem(format!("{n} is above the maximum {}", max as i128)),
                        None => problem(format!("{n} is out of range")),
                    },
                }
            }
            Some(_) => {}
            None if value.is_null() && schema["nullable"] == true => {}
            None => problem(format!("expected an integer, found {}", describe(value))),
        },
        Some("boolean") if !value.is_boolean() => problem(format!("expected true or false, found {}", describe(value))),
        _ => {}
    }
}

/// Whether `n` fits the integer type an OpenAPI `format` names.
fn fits(n: i128, format: Option<&str>) -> bool {
    let (min, max): (i128, i128) = match format {
        Some("uint8") => (0, u8::MAX.into()),
        Some("uint16") => (0, u16::MAX.into()),
        Some("uint32") => (0, u32::MAX.into()),
        Some("uint64" | "uint") => (0, u64::MAX.into()),
        Some("int8") => (i8::MIN.into(), i8::MAX.into()),
        Some("int16") => (i16::MIN.into(), i16::MAX.into()),
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    };
    (min..=max).contains(&n)
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> (Manifests, Vec<String>) {
        let mut out = Manifests::default();
        load_text(Path::new("test.yaml"), text, "default", &mut out);
        let lines = out.problems.iter().map(ToString::to_string).collect();
        (out, lines)
    }

    #[test]
    fn reads_several_documents_and_skips_other_kinds() {
        let (m, problems) = load_str(
            "apiVersion: tally.dev/v1alpha1\nkind: TeamBudget\nmetadata: {name: a}\nspec: {team: alpha}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
             apiVersion: tally.dev/v1alpha1\nkind: ModelPricing\nmetadata: {name: p, namespace: ignored}\n\
             spec: {source: s, effectiveFrom: '2025-11-20', models: []}\n---\n",
        );
        assert!(problems.is_empty(), "{:?}", problems);
        assert_eq!(m.teams.len(), 1);
        assert_eq!(m.teams[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(m.pricings.len(), 1);
        assert_eq!(m.pricings[0].metadata.namespace, None);
        assert_eq!(m.skipped, ["apps/v1 Deployment web (test.yaml (document 2))"]);
        let origin = &m.origins[&ObjectRef::ModelPricing { name: "p".into() }];
        assert_eq!(origin.document, 3);
    }

    #[test]
    fn schema_problems_name_the_object_and_field() {
        let (m, problems) = load_str(
            "apiVersion: tally.dev/v1alpha1\nkind: TeamBudget\nmetadata: {name: a, namespace: n}\n\
             spec:\n  team: alpha\n  tenants: [{limitUSD: '1'}]\n  budget: {limitUSD: 12.5, period: Yearly, alertThreshold: [1]}\n  extra: 1\n",
        );
        assert!(m.teams.is_empty());
        let expected = [
            "test.yaml (document 1): TeamBudget n/a: spec.budget.limitUSD: expected a string, found the number 12.5; quote it (\"12.5\"): amounts are decimal strings",
            "test.yaml (document 1): TeamBudget n/a: spec.budget.period: \"Yearly\" is not one of Daily, Weekly, Monthly",
            "test.yaml (document 1): TeamBudget n/a: spec.budget.alertThreshold: unknown field",
            "test.yaml (document 1): TeamBudget n/a: spec.extra: unknown field",
            "test.yaml (document 1): TeamBudget n/a: spec.tenants[0].id: required",
        ];
        for e in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {:#?}",
                problems
            );
        }
        assert_eq!(problems.len(), expected.len(), "{:#?}", problems);
    }

    #[test]
    fn nulls_are_pruned_and_integers_bounded() {
        let (m, problems) = load_str(
            "apiVersion: tally.dev/v1alpha1\nkind: TeamBudget\nmetadata: {name: a}\n\
             spec: {team: alpha, tenants: null, costCenter: null}\n---\n\
             apiVersion: tally.dev/v1alpha1\nkind: TeamBudget\nmetadata: {name: b}\n\
             spec: {team: beta, budget: {limitUSD: '1', period: Daily, alertThresholds: [0, 300]}}\n",
        );
        assert_eq!(m.teams.len(), 1, "{:?}", problems);
        // 300 does not fit the type: reported here. 0 does: the compiler reports it.
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].ends_with("spec.budget.alertThresholds[1]: 300 is above the maximum 100"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn refuses_what_is_not_a_tally_object() {
        let (_, problems) = load_str(
            "- a list\n---\nkind: TeamBudget\n---\n\
             apiVersion: tally.dev/v1beta9\nkind: TeamBudget\nmetadata: {name: a}\n---\n\
             apiVersion: tally.dev/v1alpha1\nkind: Budget\nmetadata: {name: a}\n---\n\
             apiVersion: tally.dev/v1alpha1\nkind: TeamBudget\nspec: {team: a}\n---\n\
             apiVersion: tally.dev/v1alpha1\nkind: TeamBudget\nmetadata: {name: a}\n---\n\
             apiVersion: tally.dev/v1alpha1\nkind: TeamBudget\nmetadata: {name: b}\nspec: {team: b}\n---\n\
             apiVersion: tally.dev/v1alpha1\nkind: TeamBudget\nmetadata: {name: b}\nspec: {team: b}\n---\n\
             key: [unclosed\n",
        );
        let expected = [
            "test.yaml (document 1): expected a Kubernetes object (a mapping), found a list",
            "test.yaml (document 2): not a Kubernetes object: apiVersion and kind are required",
            "test.yaml (document 3): TeamBudget a: apiVersion \"tally.dev/v1beta9\" is not served; use tally.dev/v1alpha1",
            "test.yaml (document 4): Budget a: unknown kind in tally.dev; expected TeamBudget or ModelPricing",
            "test.yaml (document 5): TeamBudget: metadata.name: required",
            "test.yaml (document 6): TeamBudget default/a: spec: required",
            "test.yaml (document 8): TeamBudget default/b: defined twice (first in test.yaml (document 7))",
            "test.yaml (document 9): invalid YAML: ",
        ];
        assert_eq!(problems.len(), expected.len(), "{:#?}", problems);
        for (p, e) in problems.iter().zip(expected) {
            assert!(p.starts_with(e), "{p:?} should start with {e:?}");
        }
    }

    #[test]
    fn missing_paths_and_empty_directories_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let m = load(&[dir.path().to_path_buf(), dir.path().join("nope.yaml")], "default");
        let problems: Vec<String> = m.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{:?}", problems);
        assert!(problems[0].ends_with("no *.yaml or *.yml file in this directory"));
        assert!(problems[1].contains("nope.yaml: cannot read"));
    }
}
