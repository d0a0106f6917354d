//! Security defaults on every rendered pod (non-root, read-only, no capabilities, resources
//! and probes set, no ServiceAccount token but the operator's), no credential in any
//! ConfigMap, argument or plain env value, and no Secret but the ones the chart generates.

use serde_yaml::Value;

use crate::render::{containers, id, items, name, of_kind, pods, strs};
use crate::scenarios::SCENARIOS;

#[test]
fn every_pod_runs_non_root_read_only_without_capabilities_and_with_resources() {
    for s in SCENARIOS {
        let docs = s.documents();
        let pods = pods(&docs);
        assert!(!pods.is_empty(), "{}: no pods rendered", s.name);
        for (workload, pod, _) in pods {
            let psc = &pod["securityContext"];
            assert_eq!(
                psc["runAsNonRoot"].as_bool(),
                Some(true),
                "{}: {workload}: pod runAsNonRoot",
                s.name
            );
            assert!(
                psc["runAsUser"].as_u64().is_some_and(|u| u > 0),
                "{}: {workload}: pod runAsUser must be a non-zero uid",
                s.name
            );
            assert_eq!(
                psc["seccompProfile"]["type"].as_str(),
                Some("RuntimeDefault"),
                "{}: {workload}: pod seccomp",
                s.name
            );
            for c in containers(pod) {
                let what = format!("{}: {workload} container {}", s.name, c["name"].as_str().unwrap_or("?"));
                assert_container_is_locked_down(c, &what);
            }
            assert!(
                pod["hostNetwork"].as_bool() != Some(true) && pod["hostPID"].as_bool() != Some(true),
                "{}: {workload}: host namespaces",
                s.name
            );
        }
    }
}

/// Non-root, read-only, no privilege or capability, default seccomp, resources and probes set.
fn assert_container_is_locked_down(c: &Value, what: &str) {
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "{what}: runAsNonRoot");
    assert_eq!(
        sc["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "{what}: readOnlyRootFilesystem"
    );
    assert_eq!(
        sc["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "{what}: allowPrivilegeEscalation"
    );
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"], "{what}: capabilities.drop");
    assert!(sc["capabilities"]["add"].is_null(), "{what}: adds capabilities");
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault"),
        "{what}: seccomp"
    );
    assert!(sc["privileged"].as_bool() != Some(true), "{what}: privileged");
    let r = &c["resources"];
    assert!(
        r["requests"]["cpu"].as_str().is_some() && r["requests"]["memory"].as_str().is_some(),
        "{what}: resource requests"
    );
    assert!(r["limits"]["memory"].as_str().is_some(), "{what}: memory limit");
    assert!(
        !c["readinessProbe"].is_null() && !c["livenessProbe"].is_null(),
        "{what}: probes"
    );
}

/// The only Secrets the chart renders: credentials and certificates it generates itself
/// (`_tls.tpl`, `secrets.yaml`), never one with a value from values.
const CHART_SECRETS: [&str; 6] = [
    "tally-ca",
    "tally-extproc-tls",
    "tally-gateway-client-tls",
    "tally-redis-tls",
    "tally-api-token",
    "tally-redis",
];

#[test]
fn no_secret_but_the_generated_ones_is_rendered_or_put_in_a_config_map() {
    // Scenarios that configure every credential the chart knows about (as Secret names).
    let markers = [
        "password",
        "secret_access_key",
        "session_token",
        "requirepass",
        "-----begin",
    ];
    for s in SCENARIOS {
        let docs = s.documents();
        for secret in of_kind(&docs, "Secret") {
            assert!(
                CHART_SECRETS.contains(&name(secret)) && !s.user_secrets.contains(&name(secret)),
                "{}: {} is rendered: the chart renders only its generated Secrets and references the user's",
                s.name,
                id(secret)
            );
        }
        for cm in of_kind(&docs, "ConfigMap") {
            for (key, value) in cm["data"].as_mapping().into_iter().flatten() {
                let lower = value.as_str().unwrap_or_default().to_lowercase();
                for m in markers {
                    assert!(
                        !lower.contains(m),
                        "{}: {} key {key:?} mentions {m:?}: no credentials in ConfigMaps",
                        s.name,
                        id(cm)
                    );
                }
            }
        }
        for (workload, pod, _) in pods(&docs) {
            for c in containers(pod) {
                assert_no_credential_in_plain_sight(c, &format!("{}: {workload}", s.name));
            }
        }
    }
}

/// Sensitive env vars come from Secrets; no argument carries a URL with inline credentials or an
/// ACL password (`>secret`; a `$(VAR)` the kubelet substitutes from a Secret is fine).
fn assert_no_credential_in_plain_sight(c: &Value, what: &str) {
    for env in items(&c["env"]) {
        let n = env["name"].as_str().unwrap_or_default();
        let sensitive = ["PASSWORD", "SECRET", "TOKEN", "AUTH"].iter().any(|w| n.contains(w));
        if sensitive {
            assert!(
                env["value"].is_null() && !env["valueFrom"]["secretKeyRef"].is_null(),
                "{what}: env {n} must come from a Secret"
            );
        }
    }
    for a in strs(&c["args"]) {
        assert!(
            !a.contains("://") || !a.contains('@') || a.contains("$("),
            "{what}: credentials in an argument: {a}"
        );
        assert!(
            !a.starts_with('>') || a.starts_with(">$("),
            "{what}: an ACL password in an argument: {a}"
        );
    }
}

#[test]
fn only_the_operator_mounts_a_service_account_token() {
    for s in SCENARIOS {
        let docs = s.documents();
        for (workload, pod, _) in pods(&docs) {
            let automount = pod["automountServiceAccountToken"].as_bool();
            if workload == "Deployment/tally-operator" {
                assert_ne!(automount, Some(false), "{}: the operator calls the API", s.name);
            } else {
                assert_eq!(
                    automount,
                    Some(false),
                    "{}: {workload} never calls the Kubernetes API: automountServiceAccountToken: false",
                    s.name
                );
            }
        }
        for sa in of_kind(&docs, "ServiceAccount").filter(|sa| name(sa) != "tally-operator") {
            assert_eq!(
                sa["automountServiceAccountToken"].as_bool(),
                Some(false),
                "{}: {}",
                s.name,
                id(sa)
            );
        }
    }
}
