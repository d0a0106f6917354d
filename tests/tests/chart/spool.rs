//! The ext_proc's spool volume: an emptyDir on a Deployment by default, a claim per pod on
//! a StatefulSet with `extproc.spool.persistence.enabled`, bounded by `--spool-max-bytes`
//! either way; the persistent form checked by `helm lint`, `kubernetes-validate --strict`
//! and a server-side dry run on a real kube-apiserver.

use std::process::Command;

use serde_yaml::Value;
use tally_tests::fixtures::tools;
use tally_tests::kube_apiserver::KubeApiServer;

use crate::lint::{KUBE_VERSIONS, assert_kubernetes_validate_passes, assert_renders_the_expected_objects_once};
use crate::render::{
    NAMESPACE, arg, chart_dir, documents, find, fixture, get, items, named, output, pod_spec, render, report,
    try_render,
};
use crate::scenarios::Scenario;

const SPOOL_DIR: &str = "/var/lib/tally/spool";

const PERSISTENT: Scenario = Scenario {
    name: "spool on a claim per pod",
    values: Some("spool-persistence.yaml"),
    present: &[
        "StatefulSet/tally-extproc",
        "HorizontalPodAutoscaler/tally-extproc",
        "PodDisruptionBudget/tally-extproc",
        "Service/tally-extproc-headless",
    ],
    absent: &["Deployment/tally-extproc"],
    user_secrets: &[],
};

/// The ext_proc container of a workload, and the spool volume mount's path.
fn spool_mount<'a>(docs: &'a [Value], kind: &str) -> (&'a Value, &'a str) {
    let container = &pod_spec(docs, kind, "tally-extproc")["containers"][0];
    let mount = named(&container["volumeMounts"], "name", "spool").expect("a volume mount named spool");
    (container, mount["mountPath"].as_str().unwrap_or_default())
}

#[test]
fn by_default_the_spool_is_a_bounded_emptydir_of_a_deployment() {
    let docs = documents(&render(None, &[]));
    assert!(find(&docs, "StatefulSet", "tally-extproc").is_none());
    let (container, path) = spool_mount(&docs, "Deployment");
    assert_eq!((arg(container, "--spool-dir"), path), (Some(SPOOL_DIR), SPOOL_DIR));
    assert_eq!(arg(container, "--spool-max-bytes"), Some("268435456"));
    let volume = named(
        &pod_spec(&docs, "Deployment", "tally-extproc")["volumes"],
        "name",
        "spool",
    )
    .unwrap();
    assert_eq!(volume["emptyDir"]["sizeLimit"].as_str(), Some("1Gi"), "{volume:?}");
}

#[test]
fn persistence_gives_each_pod_its_own_claim_through_a_statefulset() {
    let docs = PERSISTENT.documents();
    let set = &get(&docs, "StatefulSet", "tally-extproc")["spec"];
    assert_eq!(set["serviceName"].as_str(), Some("tally-extproc-headless"));
    assert_eq!(set["podManagementPolicy"].as_str(), Some("Parallel"));
    assert!(
        set["strategy"].is_null() && set["replicas"].is_null(),
        "HPA-managed StatefulSet: {set:?}"
    );
    let claim = items(&set["volumeClaimTemplates"])
        .find(|c| c["metadata"]["name"].as_str() == Some("spool"))
        .expect("a claim template named spool");
    let claim = &claim["spec"];
    assert_eq!(claim["accessModes"][0].as_str(), Some("ReadWriteOnce"));
    assert_eq!(claim["resources"]["requests"]["storage"].as_str(), Some("5Gi"));
    assert_eq!(claim["storageClassName"].as_str(), Some("fast-ssd"));

    let volumes = &pod_spec(&docs, "StatefulSet", "tally-extproc")["volumes"];
    assert!(
        named(volumes, "name", "spool").is_none(),
        "the claim replaces the emptyDir: {volumes:?}"
    );
    let (container, path) = spool_mount(&docs, "StatefulSet");
    assert_eq!((arg(container, "--spool-dir"), path), (Some(SPOOL_DIR), SPOOL_DIR));
    assert_eq!(arg(container, "--spool-max-bytes"), Some("1073741824"));
    let target = &get(&docs, "HorizontalPodAutoscaler", "tally-extproc")["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"].as_str(), Some("StatefulSet"));

    // `-` is Helm's convention for "no class" (pre-provisioned volumes).
    let docs = documents(&render(
        Some("spool-persistence.yaml"),
        &["extproc.spool.persistence.storageClass=-"],
    ));
    let templates = &get(&docs, "StatefulSet", "tally-extproc")["spec"]["volumeClaimTemplates"];
    assert_eq!(templates[0]["spec"]["storageClassName"].as_str(), Some(""));
}

#[test]
fn persistence_passes_helm_lint_and_strict_kubernetes_validation() {
    let mut lint = Command::new(tools::helm());
    lint.args(["lint", "--strict", "--namespace", NAMESPACE])
        .arg(chart_dir())
        .arg("--values")
        .arg(fixture("spool-persistence.yaml"));
    let out = output(&mut lint);
    assert!(out.status.success(), "helm lint --strict:\n{}", report(&out));

    let yaml = render(PERSISTENT.values, &[]);
    let docs = documents(&yaml);
    assert_renders_the_expected_objects_once(&PERSISTENT, &docs);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, &yaml).expect("write manifests");
    for version in KUBE_VERSIONS {
        assert_kubernetes_validate_passes(&PERSISTENT, &docs, &file, version);
    }
}

#[test]
fn bad_spool_values_are_refused_naming_them() {
    for (sets, expected) in [
        (
            vec!["extproc.spool.persistence.size=lots"],
            "/extproc/spool/persistence/size",
        ),
        (vec!["extproc.spool.persistence.claim=x"], "claim"),
        (vec!["extproc.spool.maxBytes=10"], "/extproc/spool/maxBytes"),
        (
            vec![
                "extproc.spool.persistence.enabled=true",
                "extproc.store=memory",
                "extproc.replicas=1",
            ],
            "persistence.enabled needs extproc.store=redis",
        ),
    ] {
        let err = try_render(None, &sets).expect_err(&format!("{sets:?} must be refused"));
        assert!(err.contains(expected), "{sets:?}: expected {expected:?} in:\n{err}");
    }
}

/// The ext_proc's own objects, as rendered (re-serialising would turn `0440` into a string);
/// the rest of the chart is dry-run in `chart_apiserver`.
fn extproc_objects(yaml: &str) -> String {
    yaml.split("\n---")
        .filter(|doc| {
            documents(doc)
                .first()
                .and_then(|d| d["metadata"]["name"].as_str())
                .is_some_and(|n| n.starts_with("tally-extproc"))
        })
        .collect::<Vec<_>>()
        .join("\n---")
}

#[tokio::test]
async fn a_real_api_server_accepts_the_statefulset_and_its_claim_template() {
    let server = KubeApiServer::start()
        .await
        .expect("start kube-apiserver + etcd (run scripts/tools/kube.sh)");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.admin_kubeconfig_yaml()).unwrap();
    let kubectl = |args: &[&str]| {
        let out = output(
            Command::new(tools::cached_tool("kubectl", "helm.sh"))
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(args),
        );
        assert!(out.status.success(), "kubectl {args:?}:\n{}", report(&out));
        report(&out)
    };
    kubectl(&["create", "namespace", NAMESPACE]);
    let manifest = dir.path().join("extproc.yaml");
    std::fs::write(&manifest, extproc_objects(&render(PERSISTENT.values, &[]))).unwrap();
    let applied = kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    for object in [
        "statefulset.apps/tally-extproc",
        "horizontalpodautoscaler.autoscaling/tally-extproc",
        "service/tally-extproc-headless",
    ] {
        assert!(applied.contains(object), "{object} not applied:\n{applied}");
    }
}
