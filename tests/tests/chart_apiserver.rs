//! The chart's rendered manifests, checked by a real kube-apiserver: the CRDs
//! from `crds/` are installed for real, then every object of the chart is sent
//! as a server-side dry-run apply, so schemas, RBAC objects and the catalog
//! `ModelPricing` are validated by the API server itself, not only offline.

use std::path::Path;
use std::process::{Command, Output};

use tally_tests::fixtures::tools;
use tally_tests::kube_apiserver::KubeApiServer;

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(tools::cached_tool("kubectl", "helm.sh"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl")
}

fn ok(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn render(values: &[&str]) -> String {
    let mut cmd = Command::new(tools::helm());
    cmd.current_dir(tools::workspace_root())
        .args(["template", "tally", "charts/tally", "--namespace", "tally-system"]);
    for v in values {
        cmd.args(["--values", v]);
    }
    ok(cmd.output().expect("run helm"), "helm template")
}

#[tokio::test]
async fn rendered_chart_is_accepted_by_a_real_api_server() {
    let server = KubeApiServer::start()
        .await
        .expect("start kube-apiserver + etcd (run scripts/tools/kube.sh)");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.admin_kubeconfig_yaml()).unwrap();
    let crds = tools::workspace_root().join("crds");
    ok(
        kubectl(&kubeconfig, &["apply", "--server-side", "-f", crds.to_str().unwrap()]),
        "installing crds/",
    );
    ok(
        kubectl(
            &kubeconfig,
            &[
                "wait",
                "--for",
                "condition=Established",
                "--timeout",
                "60s",
                "crd",
                "--all",
            ],
        ),
        "waiting for the CRDs",
    );
    ok(
        kubectl(&kubeconfig, &["create", "namespace", "tally-system"]),
        "creating the namespace",
    );
    // Default values (gateway mode, bundled Redis, catalog) and external Redis; the
    // other modes add kinds (EnvoyFilter, EnvoyExtensionPolicy, ServiceMonitor)
    // whose CRDs belong to Istio, Envoy Gateway and the Prometheus operator.
    for values in [&[][..], &["tests/fixtures/chart/external-redis.yaml"][..]] {
        let manifest = dir.path().join("manifest.yaml");
        std::fs::write(&manifest, render(values)).unwrap();
        let applied = ok(
            kubectl(
                &kubeconfig,
                &[
                    "apply",
                    "--server-side",
                    "--dry-run=server",
                    "-f",
                    manifest.to_str().unwrap(),
                ],
            ),
            &format!("server-side dry-run of the chart with {values:?}"),
        );
        for kind in [
            "deployment.apps/",
            "service/",
            "configmap/",
            "clusterrole.rbac.authorization.k8s.io/",
            "modelpricing.tally.dev/",
        ] {
            assert!(
                applied.contains(kind),
                "{values:?}: expected a {kind} object in:\n{applied}"
            );
        }
    }
}
