//! The Helm chart `charts/tally`, checked with the real tools:
//! - `helm lint --strict` and the values schema (bad values fail with a message naming them);
//! - `helm template` for every mode (defaults, istio, envoy-gateway, bundled and external
//!   Redis, every optional object) validated by `kubernetes-validate --strict` against the
//!   chart's oldest supported Kubernetes and a current one;
//! - the rendered Envoy bootstrap, by `envoy --mode validate` and by a real Envoy forwarding a
//!   call (re-signed for the Bedrock host) to a loopback upstream;
//! - the copies of the CRDs and of the price catalog inside the chart;
//! - security defaults on every pod, no secret in any ConfigMap, and every reference between
//!   the rendered objects (ServiceAccounts, Services, ConfigMaps, Envoy clusters) resolving.
//!
//! Tools come from `$TALLY_CACHE/bin` (`scripts/tools/helm.sh`, `scripts/tools/python.sh`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_yaml::Value;
use sha2::{Digest, Sha256};

const RELEASE: &str = "tally";
const NAMESPACE: &str = "tally";
/// The chart's `kubeVersion` floor and the newest schemas kubernetes-validate ships.
const KUBE_VERSIONS: [&str; 2] = ["1.30", "1.34"];
/// Kinds kubernetes-validate has no schema for; any other kind must validate.
const CUSTOM_KINDS: [&str; 6] = [
    "EnvoyFilter",
    "EnvoyExtensionPolicy",
    "ReferenceGrant",
    "ServiceMonitor",
    "ModelPricing",
    "TeamBudget",
];

/// A set of values the chart is rendered with, and objects that must (not) be in the result.
struct Scenario {
    name: &'static str,
    values: Option<&'static str>,
    present: &'static [&'static str],
    absent: &'static [&'static str],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "defaults (gateway mode, bundled Redis)",
        values: None,
        present: &[
            "Deployment/tally-gateway",
            "ConfigMap/tally-gateway",
            "Service/tally-gateway",
            "PodDisruptionBudget/tally-gateway",
            "Deployment/tally-extproc",
            "Service/tally-extproc",
            "Service/tally-extproc-headless",
            "PodDisruptionBudget/tally-extproc",
            "Deployment/tally-operator",
            "ServiceAccount/tally-operator",
            "ClusterRole/tally-operator",
            "Role/tally-operator",
            "StatefulSet/tally-redis",
            "ModelPricing/*",
            "ConfigMap/tally-dashboard",
        ],
        absent: &[
            "EnvoyFilter/*",
            "EnvoyExtensionPolicy/*",
            "NetworkPolicy/*",
            "ServiceMonitor/*",
            "HorizontalPodAutoscaler/*",
            "Secret/*",
        ],
    },
    Scenario {
        name: "istio egress gateway, external Redis",
        values: Some("istio.yaml"),
        present: &[
            "EnvoyFilter/tally-extproc",
            "Deployment/tally-extproc",
            "Deployment/tally-operator",
        ],
        absent: &[
            "Deployment/tally-gateway",
            "ConfigMap/tally-gateway",
            "StatefulSet/tally-redis",
            "EnvoyExtensionPolicy/*",
        ],
    },
    Scenario {
        name: "istio sidecars",
        values: Some("istio-sidecar.yaml"),
        present: &["EnvoyFilter/tally-extproc", "StatefulSet/tally-redis"],
        absent: &["Deployment/tally-gateway"],
    },
    Scenario {
        name: "envoy-gateway",
        values: Some("envoy-gateway.yaml"),
        present: &[
            "EnvoyExtensionPolicy/tally-extproc",
            "ReferenceGrant/*",
            "Deployment/tally-extproc",
        ],
        absent: &["Deployment/tally-gateway", "EnvoyFilter/*"],
    },
    Scenario {
        name: "bundled Redis with a password, no volume",
        values: Some("bundled-redis.yaml"),
        present: &["StatefulSet/tally-redis", "Service/tally-redis"],
        absent: &["Secret/*"],
    },
    Scenario {
        name: "external Redis (TLS, cluster, ACL user)",
        values: Some("external-redis.yaml"),
        present: &["Deployment/tally-extproc"],
        absent: &["StatefulSet/tally-redis", "Service/tally-redis"],
    },
    Scenario {
        name: "every optional object",
        values: Some("all-features.yaml"),
        present: &[
            "HorizontalPodAutoscaler/tally-extproc",
            "HorizontalPodAutoscaler/tally-gateway",
            "ServiceMonitor/tally-extproc",
            "ServiceMonitor/tally-operator",
            "ServiceMonitor/tally-gateway",
            "NetworkPolicy/tally-extproc",
            "NetworkPolicy/tally-gateway",
            "NetworkPolicy/tally-operator",
            "NetworkPolicy/tally-redis",
            "Role/tally-operator-teams",
        ],
        absent: &["Secret/*"],
    },
];

// ---------------------------------------------------------------------------------------------
// Tools and rendering

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn chart_dir() -> PathBuf {
    workspace_root().join("charts/tally")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/chart")
        .join(name)
}

/// A tool in `$TALLY_CACHE/bin` (default `~/.cache/tally/bin`), or a panic naming its installer.
fn tool(name: &str, script: &str) -> PathBuf {
    let cache = std::env::var_os("TALLY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/tally"));
    let path = cache.join("bin").join(name);
    assert!(
        path.exists(),
        "{name} not found at {}: run scripts/tools/{script}",
        path.display()
    );
    path
}

fn helm() -> PathBuf {
    tool("helm", "helm.sh")
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template` with a values file from the fixtures and `--set` flags.
fn try_render(values: Option<&str>, sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(helm());
    cmd.args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE]);
    if let Some(file) = values {
        cmd.arg("--values").arg(fixture(file));
    }
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = output(&mut cmd);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

fn render(values: Option<&str>, sets: &[&str]) -> String {
    try_render(values, sets)
        .unwrap_or_else(|e| panic!("helm template (values {values:?}, --set {sets:?}) failed:\n{e}"))
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn id(doc: &Value) -> String {
    format!("{}/{}", kind(doc), name(doc))
}

fn find<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> Option<&'a Value> {
    docs.iter().find(|d| kind(d) == kind_ && name(d) == name_)
}

fn get<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    find(docs, kind_, name_).unwrap_or_else(|| panic!("{kind_}/{name_} is not rendered"))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The pod templates: (workload id, pod spec, pod labels).
fn pods(docs: &[Value]) -> Vec<(String, &Value, &Value)> {
    docs.iter()
        .filter(|d| matches!(kind(d), "Deployment" | "StatefulSet" | "DaemonSet" | "Job"))
        .map(|d| {
            (
                id(d),
                &d["spec"]["template"]["spec"],
                &d["spec"]["template"]["metadata"]["labels"],
            )
        })
        .collect()
}

fn containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod[*k].as_sequence().into_iter().flatten())
        .collect()
}

/// The value following `flag` in a container's args.
fn arg<'a>(container: &'a Value, flag: &str) -> Option<&'a str> {
    let args = strs(&container["args"]);
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

/// The Envoy bootstrap in the gateway ConfigMap, rendered with `sets`.
fn envoy_bootstrap(sets: &[&str]) -> String {
    let mut cmd = Command::new(helm());
    cmd.args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--show-only", "templates/gateway-configmap.yaml"]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = output(&mut cmd);
    assert!(
        out.status.success(),
        "rendering the gateway ConfigMap failed:\n{}",
        text(&out.stderr)
    );
    let docs = documents(&text(&out.stdout));
    assert_eq!(docs.len(), 1, "expected one ConfigMap");
    docs[0]["data"]["envoy.yaml"]
        .as_str()
        .expect("data.envoy.yaml")
        .to_string()
}

/// The loopback rendering the end-to-end tests use (the documented contract).
fn loopback_sets(listen: u16, admin: u16, upstream: u16, extproc: u16, signing: bool) -> Vec<String> {
    vec![format!(
        "gateway.listenAddress=127.0.0.1,gateway.listenPort={listen},gateway.adminPort={admin},gateway.upstream.host=127.0.0.1,\
         gateway.upstream.port={upstream},gateway.upstream.tls=false,gateway.extProc.host=127.0.0.1,gateway.extProc.port={extproc},\
         gateway.signing.enabled={signing}"
    )]
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `envoy --mode validate` on a bootstrap; AWS variables are dummies (signing needs none to validate,
/// but the default credential chain must not try the instance metadata service).
fn envoy_validate(bootstrap: &str, what: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, bootstrap).expect("write bootstrap");
    let out = output(
        Command::new(tool("envoy", "python.sh"))
            .args(["--mode", "validate", "--log-level", "warn", "-c"])
            .arg(&path)
            .env("AWS_ACCESS_KEY_ID", "AKIDVALIDATE")
            .env("AWS_SECRET_ACCESS_KEY", "validate")
            .env("AWS_EC2_METADATA_DISABLED", "true"),
    );
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && all.contains("OK"),
        "envoy --mode validate rejected {what}:\n{all}\n----- config -----\n{bootstrap}"
    );
}

// ---------------------------------------------------------------------------------------------
// Lint, manifests, schema

#[test]
fn chart_passes_helm_lint_strict_in_every_mode() {
    for s in SCENARIOS {
        let mut cmd = Command::new(helm());
        cmd.args(["lint", "--strict", "--namespace", NAMESPACE])
            .arg(chart_dir());
        if let Some(file) = s.values {
            cmd.arg("--values").arg(fixture(file));
        }
        let out = output(&mut cmd);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success() && all.contains("0 chart(s) failed"),
            "helm lint --strict failed for {}:\n{all}",
            s.name
        );
    }
}

#[test]
fn every_mode_renders_manifests_that_pass_strict_kubernetes_validation() {
    let validate = tool("kubernetes-validate", "python.sh");
    for s in SCENARIOS {
        let yaml = render(s.values, &[]);
        let docs = documents(&yaml);
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

        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("manifests.yaml");
        std::fs::write(&file, &yaml).expect("write manifests");
        for version in KUBE_VERSIONS {
            let out = output(
                Command::new(&validate)
                    .args(["--strict", "--kubernetes-version", version])
                    .arg(&file),
            );
            let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert!(
                out.status.success(),
                "{}: kubernetes-validate --strict {version} failed:\n{report}",
                s.name
            );
            for doc in &docs {
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
    }
}

#[test]
fn values_schema_rejects_bad_values_with_a_message_naming_them() {
    let cases: &[(&str, &str)] = &[
        (
            "gateway.mode=bogus",
            "at '/gateway/mode': value must be one of 'gateway', 'istio', 'envoy-gateway'",
        ),
        (
            "extproc.failMode=maybe",
            "at '/extproc/failMode': value must be one of 'open', 'closed'",
        ),
        ("extproc.replicas=-1", "at '/extproc/replicas': minimum"),
        ("gateway.replicas=-2", "at '/gateway/replicas': minimum"),
        ("gateway.region=mars", "at '/gateway/region'"),
        (
            "gateway.extProc.messageTimeout=fast",
            "at '/gateway/extProc/messageTimeout'",
        ),
        ("gateway.listenPort=70000", "at '/gateway/listenPort': maximum"),
        ("redis.bundled=false", "at '/redis/url'"),
        ("redis.url=http://redis:6379", "at '/redis/url'"),
        ("gateway.mode=envoy-gateway", "at '/envoyGateway/targetRefs'"),
        ("gateway.modee=istio", "additional properties 'modee' not allowed"),
        ("extproc.store=memory", "at '/extproc/replicas': maximum"),
    ];
    for (set, message) in cases {
        match try_render(None, &[set]) {
            Ok(_) => panic!("--set {set} rendered; the schema must reject it"),
            Err(stderr) => {
                assert!(
                    stderr.contains("values don't meet the specifications of the schema"),
                    "--set {set}: not a schema error:\n{stderr}"
                );
                assert!(
                    stderr.contains(message),
                    "--set {set}: expected {message:?} in:\n{stderr}"
                );
            }
        }
    }
}

#[test]
fn crds_and_price_catalog_in_the_chart_are_copies_of_the_sources() {
    let root = workspace_root();
    let yaml_files = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sources = yaml_files(&root.join("crds"));
    assert!(
        !sources.is_empty(),
        "no CRDs in crds/: generate them with `cargo run -p tally-operator -- crds`"
    );
    let copies = yaml_files(&root.join("charts/tally/crds"));
    let fix = "run `rm -f charts/tally/crds/*.yaml && cp crds/*.yaml charts/tally/crds/`";
    assert_eq!(
        copies, sources,
        "charts/tally/crds/ holds other files than crds/: {fix}"
    );
    for file in &sources {
        let source = std::fs::read(root.join("crds").join(file)).expect("read CRD");
        let copy = std::fs::read(root.join("charts/tally/crds").join(file)).expect("read CRD copy");
        assert!(
            source == copy,
            "charts/tally/crds/{file} differs from crds/{file}: {fix}"
        );
    }

    let catalog = root.join("examples/catalog/bedrock-on-demand.yaml");
    let source = std::fs::read(&catalog).unwrap_or_else(|e| panic!("{}: {e}", catalog.display()));
    let copy = std::fs::read(root.join("charts/tally/files/bedrock-on-demand.yaml")).unwrap_or_default();
    assert!(
        source == copy,
        "charts/tally/files/bedrock-on-demand.yaml differs from examples/catalog/bedrock-on-demand.yaml: \
         run `cp examples/catalog/bedrock-on-demand.yaml charts/tally/files/`"
    );
    // And the chart ships it (catalog.install, default true) unchanged.
    let rendered = documents(&render(None, &[]));
    let catalog_docs = documents(&text(&source));
    for doc in &catalog_docs {
        assert!(
            rendered.contains(doc),
            "the chart does not render {} from the catalog",
            id(doc)
        );
    }
    let without = documents(&render(None, &["catalog.install=false"]));
    assert!(
        !without.iter().any(|d| kind(d) == "ModelPricing"),
        "catalog.install=false still renders a ModelPricing"
    );
}

// ---------------------------------------------------------------------------------------------
// Security and consistency of the rendered objects

#[test]
fn every_pod_runs_non_root_read_only_without_capabilities_and_with_resources() {
    for s in SCENARIOS {
        let docs = documents(&render(s.values, &[]));
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
            assert!(
                pod["hostNetwork"].as_bool() != Some(true) && pod["hostPID"].as_bool() != Some(true),
                "{}: {workload}: host namespaces",
                s.name
            );
        }
    }
}

#[test]
fn no_secret_is_rendered_or_put_in_a_config_map() {
    // Scenarios that configure every credential the chart knows about (as Secret names).
    let markers = [
        "password",
        "secret_access_key",
        "session_token",
        "requirepass",
        "-----begin",
    ];
    for s in SCENARIOS {
        let docs = documents(&render(s.values, &[]));
        assert!(
            !docs.iter().any(|d| kind(d) == "Secret"),
            "{}: the chart must not render Secrets (it references existing ones)",
            s.name
        );
        for cm in docs.iter().filter(|d| kind(d) == "ConfigMap") {
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
                for env in c["env"].as_sequence().into_iter().flatten() {
                    let n = env["name"].as_str().unwrap_or_default();
                    let sensitive = ["PASSWORD", "SECRET", "TOKEN", "AUTH"].iter().any(|w| n.contains(w));
                    if sensitive {
                        assert!(
                            env["value"].is_null() && !env["valueFrom"]["secretKeyRef"].is_null(),
                            "{}: {workload}: env {n} must come from a Secret",
                            s.name
                        );
                    }
                }
                for a in strs(&c["args"]) {
                    assert!(
                        !a.contains("://") || !a.contains('@') || a.contains("$("),
                        "{}: {workload}: credentials in an argument: {a}",
                        s.name
                    );
                }
            }
        }
    }
}

#[test]
fn references_between_rendered_objects_resolve() {
    for s in SCENARIOS {
        let docs = documents(&render(s.values, &[]));
        let pods = pods(&docs);
        let operator = &get(&docs, "Deployment", "tally-operator")["spec"]["template"]["spec"]["containers"][0];
        let config_map = arg(operator, "--config-map-name").expect("operator --config-map-name");
        assert_eq!(arg(operator, "--config-map-namespace"), Some(NAMESPACE), "{}", s.name);
        assert_eq!(
            strs(&operator["args"]).first(),
            Some(&"operator"),
            "{}: operator subcommand",
            s.name
        );

        for (workload, pod, _) in &pods {
            if let Some(sa) = pod["serviceAccountName"].as_str() {
                assert!(
                    find(&docs, "ServiceAccount", sa).is_some(),
                    "{}: {workload} uses ServiceAccount {sa}, not rendered",
                    s.name
                );
            }
            for v in pod["volumes"].as_sequence().into_iter().flatten() {
                if let Some(cm) = v["configMap"]["name"].as_str() {
                    // The compiled config is written by the operator, never by Helm (an upgrade would reset it).
                    assert!(
                        find(&docs, "ConfigMap", cm).is_some() || cm == config_map,
                        "{}: {workload} mounts ConfigMap {cm}, not rendered",
                        s.name
                    );
                }
            }
        }
        assert!(
            find(&docs, "ConfigMap", config_map).is_none(),
            "{}: the chart must not render the operator's ConfigMap {config_map}",
            s.name
        );

        // The ext_proc reads the operator's ConfigMap through a directory mount (updates propagate; a subPath would freeze it).
        let extproc = &get(&docs, "Deployment", "tally-extproc")["spec"]["template"]["spec"];
        let c = &extproc["containers"][0];
        assert_eq!(arg(c, "--config"), Some("/etc/tally/config.json"), "{}", s.name);
        let mount = c["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|m| m["mountPath"].as_str() == Some("/etc/tally"))
            .expect("config mount");
        assert!(
            mount["subPath"].is_null(),
            "{}: the config must not be mounted with subPath",
            s.name
        );
        let vol = extproc["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == mount["name"])
            .expect("config volume");
        assert_eq!(
            vol["configMap"]["name"].as_str(),
            Some(config_map),
            "{}: ext_proc and operator disagree on the ConfigMap",
            s.name
        );
        let spool = arg(c, "--spool-dir").expect("--spool-dir");
        assert!(
            c["volumeMounts"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"].as_str() == Some(spool)),
            "{}: the spool dir is not a volume",
            s.name
        );

        // Every Service selects a pod template that has the named target ports.
        for svc in docs.iter().filter(|d| kind(d) == "Service") {
            let selector = svc["spec"]["selector"].as_mapping().expect("selector");
            let pod = pods.iter().find(|(_, _, labels)| {
                selector
                    .iter()
                    .all(|(k, v)| &labels[k.as_str().unwrap_or_default()] == v)
            });
            let (_, pod, _) = pod.unwrap_or_else(|| panic!("{}: {} selects no rendered pod", s.name, id(svc)));
            let port_names: BTreeSet<&str> = containers(pod)
                .iter()
                .flat_map(|c| c["ports"].as_sequence().into_iter().flatten())
                .filter_map(|p| p["name"].as_str())
                .collect();
            for p in svc["spec"]["ports"].as_sequence().into_iter().flatten() {
                let target = p["targetPort"].as_str().expect("named targetPort");
                assert!(
                    port_names.contains(target),
                    "{}: {} targets port {target}, not on the pod",
                    s.name,
                    id(svc)
                );
            }
        }
        for d in docs
            .iter()
            .filter(|d| matches!(kind(d), "PodDisruptionBudget" | "NetworkPolicy"))
        {
            let key = if kind(d) == "NetworkPolicy" {
                "podSelector"
            } else {
                "selector"
            };
            let sel = d["spec"][key]["matchLabels"].as_mapping().expect("matchLabels");
            assert!(
                pods.iter()
                    .any(|(_, _, labels)| sel.iter().all(|(k, v)| &labels[k.as_str().unwrap_or_default()] == v)),
                "{}: {} selects no pod",
                s.name,
                id(d)
            );
        }
        for hpa in docs.iter().filter(|d| kind(d) == "HorizontalPodAutoscaler") {
            let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or_default();
            let dep = get(&docs, "Deployment", target);
            assert!(
                dep["spec"]["replicas"].is_null(),
                "{}: {target} sets replicas while an HPA scales it",
                s.name
            );
        }
        for binding in docs
            .iter()
            .filter(|d| matches!(kind(d), "RoleBinding" | "ClusterRoleBinding"))
        {
            let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
            let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
            assert!(
                find(&docs, role_kind, role).is_some(),
                "{}: {} binds missing {role_kind}/{role}",
                s.name,
                id(binding)
            );
            for subject in binding["subjects"].as_sequence().into_iter().flatten() {
                let sa = subject["name"].as_str().unwrap_or_default();
                assert!(
                    find(&docs, "ServiceAccount", sa).is_some(),
                    "{}: {} binds missing ServiceAccount {sa}",
                    s.name,
                    id(binding)
                );
            }
        }

        // The integration points name the ext_proc Service that exists.
        if let Some(cm) = find(&docs, "ConfigMap", "tally-gateway") {
            let envoy: Value = serde_yaml::from_str(cm["data"]["envoy.yaml"].as_str().expect("envoy.yaml"))
                .expect("envoy.yaml parses");
            let cluster = envoy["static_resources"]["clusters"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "tally_extproc")
                .expect("tally_extproc cluster");
            let addr =
                &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
            assert_eq!(
                addr["address"].as_str(),
                Some("tally-extproc-headless.tally.svc.cluster.local"),
                "{}",
                s.name
            );
            assert_eq!(addr["port_value"].as_u64(), Some(50051), "{}", s.name);
            assert_eq!(
                get(&docs, "Service", "tally-extproc-headless")["spec"]["clusterIP"].as_str(),
                Some("None"),
                "{}",
                s.name
            );
        }
        if let Some(ef) = docs.iter().find(|d| kind(d) == "EnvoyFilter") {
            let cluster = ef["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"].as_str();
            assert_eq!(
                cluster,
                Some("outbound|50051||tally-extproc.tally.svc.cluster.local"),
                "{}",
                s.name
            );
            let svc = get(&docs, "Service", "tally-extproc");
            assert_eq!(
                svc["spec"]["ports"][0]["name"].as_str(),
                Some("grpc"),
                "{}: Istio needs the port named grpc for HTTP/2",
                s.name
            );
        }
        if let Some(policy) = docs.iter().find(|d| kind(d) == "EnvoyExtensionPolicy") {
            let backend = &policy["spec"]["extProc"][0]["backendRefs"][0];
            assert!(
                find(&docs, "Service", backend["name"].as_str().unwrap_or_default()).is_some(),
                "{}: policy backend",
                s.name
            );
            let policy_ns = policy["metadata"]["namespace"].as_str().unwrap_or_default();
            if policy_ns != NAMESPACE {
                assert_eq!(
                    backend["namespace"].as_str(),
                    Some(NAMESPACE),
                    "{}: cross-namespace backendRef",
                    s.name
                );
                let grant = docs
                    .iter()
                    .find(|d| kind(d) == "ReferenceGrant")
                    .expect("ReferenceGrant");
                assert_eq!(
                    grant["spec"]["from"][0]["namespace"].as_str(),
                    Some(policy_ns),
                    "{}",
                    s.name
                );
            }
        }
    }
}

#[test]
fn redis_settings_reach_both_components_without_exposing_the_password() {
    let docs = documents(&render(Some("external-redis.yaml"), &[]));
    let env_of = |deployment: &str, var: &str| -> Value {
        let c = &get(&docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0];
        c["env"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|e| e["name"].as_str() == Some(var))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        env_of("tally-extproc", "TALLY_REDIS_URL")["value"].as_str(),
        Some("rediss://tally@clustercfg.tally.abc123.use1.cache.amazonaws.com:6379")
    );
    assert_eq!(
        env_of("tally-extproc", "TALLY_REDIS_PASSWORD")["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("tally-redis")
    );
    // The operator takes credentials only in its URL: the kubelet splices the Secret in.
    assert_eq!(
        env_of("tally-operator", "TALLY_REDIS_URL")["value"].as_str(),
        Some("rediss://tally:$(TALLY_REDIS_PASSWORD)@clustercfg.tally.abc123.use1.cache.amazonaws.com:6379")
    );
    // Cluster mode and the private CA reach both: the operator reads counters with the same client.
    for deployment in ["tally-extproc", "tally-operator"] {
        let pod = &get(&docs, "Deployment", deployment)["spec"]["template"]["spec"];
        let args = strs(&pod["containers"][0]["args"]);
        assert!(args.contains(&"--redis-cluster"), "{deployment}: cluster mode flag");
        let ca = args.iter().position(|a| *a == "--redis-ca-file").map(|i| args[i + 1]);
        assert_eq!(ca, Some("/etc/tally-redis-ca/ca.crt"), "{deployment}");
        let mount = pod["containers"][0]["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == "redis-ca")
            .unwrap_or_else(|| panic!("{deployment}: CA mounted"));
        assert_eq!(mount["mountPath"].as_str(), Some("/etc/tally-redis-ca"));
        let volume = pod["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "redis-ca")
            .unwrap_or_else(|| panic!("{deployment}: CA volume"));
        assert_eq!(volume["secret"]["secretName"].as_str(), Some("tally-redis-ca"));
    }

    let bundled = documents(&render(Some("bundled-redis.yaml"), &[]));
    let c = &get(&bundled, "Deployment", "tally-extproc")["spec"]["template"]["spec"]["containers"][0];
    let url = c["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "TALLY_REDIS_URL")
        .expect("url");
    assert_eq!(
        url["value"].as_str(),
        Some("redis://tally-redis.tally.svc.cluster.local:6379")
    );
    assert!(!strs(&c["args"]).contains(&"--redis-cluster"));
    let valkey = &get(&bundled, "StatefulSet", "tally-redis")["spec"]["template"]["spec"]["containers"][0];
    let args = strs(&valkey["args"]);
    assert_eq!(arg(valkey, "--appendonly"), Some("yes"), "AOF persistence: {args:?}");
    assert_eq!(
        arg(valkey, "--maxmemory-policy"),
        Some("noeviction"),
        "counters must never be evicted: {args:?}"
    );
    assert_eq!(arg(valkey, "--requirepass"), Some("$(REDIS_PASSWORD)"), "{args:?}");
}

// ---------------------------------------------------------------------------------------------
// The Envoy configuration

#[test]
fn rendered_envoy_bootstrap_passes_envoy_validate() {
    envoy_validate(
        &envoy_bootstrap(&[]),
        "the default bootstrap (TLS to Bedrock, signing on)",
    );
    envoy_validate(
        &envoy_bootstrap(&[
            "gateway.region=eu-central-1,gateway.extProc.failOpen=false,gateway.accessLog.enabled=false",
        ]),
        "eu-central-1, fail closed",
    );
    for signing in [false, true] {
        let sets = loopback_sets(18080, 19901, 18443, 15051, signing);
        envoy_validate(
            &envoy_bootstrap(&as_refs(&sets)),
            &format!("the loopback bootstrap (signing {signing})"),
        );
    }
}

#[test]
fn rendered_envoy_bootstrap_follows_the_documented_contract() {
    let sets = loopback_sets(18080, 19901, 18443, 15051, true);
    let envoy: Value = serde_yaml::from_str(&envoy_bootstrap(&as_refs(&sets))).expect("envoy.yaml parses");
    let sock = &envoy["admin"]["address"]["socket_address"];
    assert_eq!(
        (sock["address"].as_str(), sock["port_value"].as_u64()),
        (Some("127.0.0.1"), Some(19901)),
        "admin is loopback-only"
    );
    let listener = &envoy["static_resources"]["listeners"][0];
    assert_eq!(
        listener["address"]["socket_address"]["address"].as_str(),
        Some("127.0.0.1")
    );
    assert_eq!(
        listener["address"]["socket_address"]["port_value"].as_u64(),
        Some(18080)
    );
    assert!(
        listener["per_connection_buffer_limit_bytes"].as_u64() >= Some(32 << 20),
        "buffer limit for BUFFERED bodies"
    );
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    let filters: Vec<&str> = hcm["http_filters"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        filters,
        [
            "envoy.filters.http.ext_proc",
            "envoy.filters.http.header_mutation",
            "envoy.filters.http.aws_request_signing",
            "envoy.filters.http.router"
        ],
        "ext_proc must run before the gateway re-signs"
    );
    let ext_proc = &hcm["http_filters"][0]["typed_config"];
    let mode = &ext_proc["processing_mode"];
    for (k, v) in [
        ("request_header_mode", "SEND"),
        ("response_header_mode", "SEND"),
        ("request_body_mode", "NONE"),
        ("response_body_mode", "NONE"),
        ("request_trailer_mode", "SKIP"),
        ("response_trailer_mode", "SKIP"),
    ] {
        assert_eq!(mode[k].as_str(), Some(v), "processing_mode.{k}");
    }
    assert_eq!(ext_proc["allow_mode_override"].as_bool(), Some(true));
    assert_eq!(ext_proc["failure_mode_allow"].as_bool(), Some(true));
    assert_eq!(ext_proc["message_timeout"].as_str(), Some("0.500s"));
    assert_eq!(ext_proc["max_message_timeout"].as_str(), Some("5s"));
    assert_eq!(
        strs(&ext_proc["metadata_options"]["receiving_namespaces"]["untyped"]),
        ["tally"]
    );
    assert_eq!(
        strs(&ext_proc["request_attributes"]),
        ["connection.uri_san_peer_certificate", "source.address"]
    );
    let signing = &hcm["http_filters"][2]["typed_config"];
    assert_eq!(signing["service_name"].as_str(), Some("bedrock"));
    assert_eq!(signing["region"].as_str(), Some("us-east-1"));
    assert_eq!(
        signing["host_rewrite"].as_str(),
        Some("bedrock-runtime.us-east-1.amazonaws.com")
    );
    assert_eq!(signing["use_unsigned_payload"].as_bool(), Some(false));
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"].as_sequence().unwrap();
    let bedrock = &routes.last().unwrap()["route"];
    assert_eq!(bedrock["timeout"].as_str(), Some("0s"), "streams can be long");
    assert_eq!(
        bedrock["host_rewrite_literal"].as_str(),
        Some("bedrock-runtime.us-east-1.amazonaws.com")
    );
    let clusters = envoy["static_resources"]["clusters"].as_sequence().unwrap();
    let upstream = clusters.iter().find(|c| c["name"] == "bedrock").unwrap();
    assert!(
        upstream["transport_socket"].is_null(),
        "tls=false means plain HTTP to the loopback upstream"
    );
    let extproc = clusters.iter().find(|c| c["name"] == "tally_extproc").unwrap();
    assert!(!extproc["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]["http2_protocol_options"].is_null(), "gRPC needs HTTP/2");

    // With TLS, the upstream is Bedrock itself: SNI and certificate name are the regional host.
    let envoy: Value = serde_yaml::from_str(&envoy_bootstrap(&["gateway.region=ap-northeast-1"])).unwrap();
    let upstream = envoy["static_resources"]["clusters"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bedrock")
        .unwrap()
        .clone();
    let host = "bedrock-runtime.ap-northeast-1.amazonaws.com";
    assert_eq!(upstream["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["address"].as_str(), Some(host));
    assert_eq!(upstream["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"].as_u64(), Some(443));
    let tls = &upstream["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"].as_str(), Some(host));
    assert_eq!(
        tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"]
            .as_str(),
        Some(host)
    );
}

#[test]
fn istio_envoy_filter_patch_is_valid_envoy_configuration() {
    // Istio merges the patches into its own listeners; rebuild that shape around them and let Envoy check it.
    let docs = documents(&render(Some("istio.yaml"), &[]));
    let ef = docs.iter().find(|d| kind(d) == "EnvoyFilter").expect("EnvoyFilter");
    let patches = ef["spec"]["configPatches"].as_sequence().expect("configPatches");
    let filter = serde_json::to_string(&patches[0]["patch"]["value"]).unwrap();
    let vhost_name = patches[1]["match"]["routeConfiguration"]["vhost"]["name"]
        .as_str()
        .unwrap();
    assert_eq!(vhost_name, "bedrock-runtime.eu-west-1.amazonaws.com:80");
    let per_vhost = serde_json::to_string(&patches[1]["patch"]["value"]["typed_per_filter_config"]).unwrap();
    let cluster = "outbound|50051||tally-extproc.tally.svc.cluster.local";
    let bootstrap = format!(
        r#"{{"static_resources": {{
  "listeners": [{{"name": "egress", "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": 18081}}}},
    "filter_chains": [{{"filters": [{{"name": "envoy.filters.network.http_connection_manager", "typed_config": {{
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      "stat_prefix": "egress",
      "http_filters": [{filter}, {{"name": "envoy.filters.http.router", "typed_config": {{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}}}],
      "route_config": {{"virtual_hosts": [{{"name": "{vhost_name}", "domains": ["bedrock-runtime.eu-west-1.amazonaws.com"],
        "typed_per_filter_config": {per_vhost},
        "routes": [{{"match": {{"prefix": "/"}}, "route": {{"cluster": "{cluster}"}}}}]}}]}}}}}}]}}]}}],
  "clusters": [{{"name": "{cluster}", "type": "STRICT_DNS", "connect_timeout": "1s",
    "typed_extension_protocol_options": {{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {{
      "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "explicit_http_config": {{"http2_protocol_options": {{}}}}}}}},
    "load_assignment": {{"cluster_name": "{cluster}", "endpoints": [{{"lb_endpoints": [{{"endpoint": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": 15051}}}}}}}}]}}]}}}}]}}}}"#
    );
    envoy_validate(&bootstrap, "the Istio EnvoyFilter patches");
}

/// A one-shot HTTP/1.1 upstream on 127.0.0.1 that records the request head and body.
fn capture_one_request(listener: TcpListener) -> mpsc::Receiver<(String, Vec<u8>)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        let answer = r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"usage":{"inputTokens":3,"outputTokens":1}}"#;
        let mut stream = reader.into_inner();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        let _ = tx.send((head, body));
    });
    rx
}

/// One HTTP/1.1 exchange with `connection: close`; returns the whole response.
fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Envoy started by a test, killed on drop; its log is printed when the test fails.
struct EnvoyProcess {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- envoy log -----\n{}",
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            );
        }
    }
}

#[test]
fn gateway_re_signs_calls_for_the_bedrock_host_and_serves_probes() {
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let upstream_port = upstream.local_addr().unwrap().port();
    let captured = capture_one_request(upstream);
    let (listen, admin, extproc) = (free_port(), free_port(), free_port());
    // No ext_proc listens on `extproc`: with the default failOpen=true the call must still pass.
    let sets = loopback_sets(listen, admin, upstream_port, extproc, true);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("envoy.yaml");
    std::fs::write(&config, envoy_bootstrap(&as_refs(&sets))).unwrap();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let child = Command::new(tool("envoy", "python.sh"))
        .args(["--disable-hot-restart", "--log-level", "warn", "-c"])
        .arg(&config)
        .env("AWS_ACCESS_KEY_ID", "AKIDGATEWAY")
        .env("AWS_SECRET_ACCESS_KEY", "gateway-secret")
        .env_remove("AWS_SESSION_TOKEN")
        // Keep the credential chain off the network: only loopback traffic in tests.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("start envoy");
    let _envoy = EnvoyProcess { child, log };

    let probe = "GET /ready HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n";
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        match http(listen, probe) {
            Ok(r) if r.starts_with("HTTP/1.1 200") => break r,
            _ if Instant::now() > deadline => {
                panic!("envoy did not answer /ready on the listener port {listen} within 20s")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(
        ready.contains("LIVE"),
        "the readiness probe reaches the admin /ready: {ready}"
    );

    let body = r#"{"messages":[{"role":"user","content":[{"text":"hello"}]}]}"#;
    let request = format!(
        "POST /model/anthropic.claude-3-haiku-20240307-v1%3A0/converse HTTP/1.1\r\nhost: tally-gateway.tally\r\n\
         content-type: application/json\r\nx-team-id: team-a\r\n\
         authorization: AWS4-HMAC-SHA256 Credential=AKIDCLIENT/20200101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00\r\n\
         x-amz-date: 20200101T000000Z\r\nx-amz-security-token: client-session-token\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = http(listen, &request).expect("call through the gateway");
    assert!(response.starts_with("HTTP/1.1 200"), "the call failed: {response}");
    assert!(
        response.contains(r#""outputTokens":1"#),
        "the answer is forwarded unchanged: {response}"
    );

    let (head, received) = captured
        .recv_timeout(Duration::from_secs(5))
        .expect("the upstream got the call");
    let header = |name: &str| -> Option<String> {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    assert!(
        head.starts_with("POST /model/anthropic.claude-3-haiku-20240307-v1%3A0/converse HTTP/1.1"),
        "path kept as sent: {head}"
    );
    assert_eq!(received, body.as_bytes());
    assert_eq!(
        header("host").as_deref(),
        Some("bedrock-runtime.us-east-1.amazonaws.com"),
        "{head}"
    );
    let authorization = header("authorization").unwrap_or_default();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDGATEWAY/"),
        "re-signed with the gateway's identity: {head}"
    );
    assert!(
        authorization.contains("/us-east-1/bedrock/aws4_request"),
        "{authorization}"
    );
    assert!(
        authorization.contains("SignedHeaders=") && authorization.contains("host"),
        "{authorization}"
    );
    assert_eq!(
        header("x-amz-security-token"),
        None,
        "the client's session token must not survive re-signing: {head}"
    );
    assert_ne!(header("x-amz-date").as_deref(), Some("20200101T000000Z"), "{head}");
    assert_eq!(
        header("x-amz-content-sha256"),
        Some(hex::encode(Sha256::digest(body.as_bytes()))),
        "the payload is signed: {head}"
    );
    assert_eq!(header("x-team-id").as_deref(), Some("team-a"), "{head}");
}
