//! `helm lint --strict` and `kubernetes-validate --strict` over every mode, with the objects
//! each mode must and must not render.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_yaml::Value;
use tally_tests::fixtures::tools;

use crate::render::{NAMESPACE, chart_dir, documents, fixture, id, kind, name, output, render, report};
use crate::scenarios::{SCENARIOS, Scenario};

/// The chart's `kubeVersion` floor and the newest schemas kubernetes-validate ships.
pub(crate) const KUBE_VERSIONS: [&str; 2] = ["1.30", "1.34"];
/// Kinds kubernetes-validate has no schema for; any other kind must validate.
const CUSTOM_KINDS: [&str; 10] = [
    "EnvoyFilter",
    "DestinationRule",
    "EnvoyExtensionPolicy",
    "ReferenceGrant",
    "BackendTLSPolicy",
    "ServiceMonitor",
    "Certificate",
    "Issuer",
    "ModelPricing",
    "TeamBudget",
];

#[test]
fn chart_passes_helm_lint_strict_in_every_mode() {
    for s in SCENARIOS {
        let mut cmd = Command::new(tools::helm());
        cmd.args(["lint", "--strict", "--namespace", NAMESPACE])
            .arg(chart_dir());
        if let Some(file) = s.values {
            cmd.arg("--values").arg(fixture(file));
        }
        let out = output(&mut cmd);
        let all = report(&out);
        assert!(
            out.status.success() && all.contains("0 chart(s) failed"),
            "helm lint --strict failed for {}:\n{all}",
            s.name
        );
    }
}

#[test]
fn every_mode_renders_manifests_that_pass_strict_kubernetes_validation() {
    for s in SCENARIOS {
        let yaml = render(s.values, &[]);
        let docs = documents(&yaml);
        assert_renders_the_expected_objects_once(s, &docs);
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("manifests.yaml");
        std::fs::write(&file, &yaml).expect("write manifests");
        for version in KUBE_VERSIONS {
            assert_kubernetes_validate_passes(s, &docs, &file, version);
        }
    }
}

/// Every `present` object is rendered, no `absent` one, and no two objects share an identity.
pub(crate) fn assert_renders_the_expected_objects_once(s: &Scenario, docs: &[Value]) {
    let ids: BTreeSet<String> = docs.iter().map(id).collect();
    let has = |pattern: &str| match pattern.strip_suffix("/*") {
        Some(k) => docs.iter().any(|d| kind(d) == k),
        None => ids.contains(pattern),
    };
    for p in s.present {
        assert!(has(p), "{}: {p} is not rendered; rendered: {ids:?}", s.name);
    }
    for a in s.absent {
        assert!(!has(a), "{}: {a} must not be rendered; rendered: {ids:?}", s.name);
    }
    let unique: BTreeSet<(String, &str)> = docs
        .iter()
        .map(|d| (id(d), d["metadata"]["namespace"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        unique.len(),
        docs.len(),
        "{}: two objects share a kind, namespace and name: {ids:?}",
        s.name
    );
}

/// `kubernetes-validate --strict` against `version` passes, validating every built-in kind.
pub(crate) fn assert_kubernetes_validate_passes(s: &Scenario, docs: &[Value], file: &Path, version: &str) {
    let out = output(
        Command::new(tools::cached_tool("kubernetes-validate", "python.sh"))
            .args(["--strict", "--kubernetes-version", version])
            .arg(file),
    );
    let report = report(&out);
    assert!(
        out.status.success(),
        "{}: kubernetes-validate --strict {version} failed:\n{report}",
        s.name
    );
    for doc in docs {
        let k = kind(doc);
        if CUSTOM_KINDS.contains(&k) {
            continue;
        }
        // A warning (no schema) for a built-in kind would be a silent pass: require "passed".
        let passed = format!("passed for resource {}/{} ", k.to_lowercase(), name(doc));
        assert!(
            report.contains(&passed),
            "{}: {} was not validated against {version}:\n{report}",
            s.name,
            id(doc)
        );
    }
    for line in report.lines().filter(|l| !l.starts_with("INFO ")) {
        let allowed =
            line.starts_with("WARN ") && CUSTOM_KINDS.iter().any(|k| line.contains(&format!("for kind {k} ")));
        assert!(
            allowed,
            "{}: unexpected kubernetes-validate output for {version}: {line}",
            s.name
        );
    }
}
