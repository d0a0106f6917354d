//! The chart's rendered manifests, checked by a real kube-apiserver: the CRDs
//! from `crds/` are installed for real, then every object of the chart is sent
//! as a server-side dry-run apply, so schemas, RBAC objects, NetworkPolicies,
//! Secrets and the catalog `ModelPricing` are validated by the API server itself,
//! not only offline. Then the chart is installed and upgraded for real with Helm,
//! so the `lookup` that keeps generated credentials and certificates across
//! upgrades runs against a real API.

use std::path::Path;
use std::process::{Command, Output};

use tally_tests::fixtures::tools;
use tally_tests::kube_apiserver::KubeApiServer;

const NAMESPACE: &str = "tally-system";

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
        .args(["template", "tally", "charts/tally", "--namespace", NAMESPACE]);
    for v in values {
        cmd.args(["--values", v]);
    }
    ok(cmd.output().expect("run helm"), "helm template")
}

/// A real API server with the CRDs of `crds/` established and the release namespace created.
struct Cluster {
    _server: KubeApiServer,
    kubeconfig: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let server = KubeApiServer::start()
            .await
            .expect("start kube-apiserver + etcd (run scripts/tools/kube.sh)");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, server.admin_kubeconfig_yaml()).unwrap();
        let cluster = Cluster {
            _server: server,
            kubeconfig,
            dir,
        };
        let crds = tools::workspace_root().join("crds");
        cluster.kubectl(
            &["apply", "--server-side", "-f", crds.to_str().unwrap()],
            "installing crds/",
        );
        cluster.kubectl(
            &[
                "wait",
                "--for",
                "condition=Established",
                "--timeout",
                "60s",
                "crd",
                "--all",
            ],
            "waiting for the CRDs",
        );
        cluster.kubectl(&["create", "namespace", NAMESPACE], "creating the namespace");
        cluster
    }

    fn kubectl(&self, args: &[&str], what: &str) -> String {
        ok(kubectl(&self.kubeconfig, args), what)
    }

    /// `helm <args> tally charts/tally` against this cluster, with Helm's own state in the temp dir.
    fn helm(&self, verb: &str, sets: &[&str]) {
        let mut cmd = Command::new(tools::helm());
        cmd.current_dir(tools::workspace_root())
            .arg(verb)
            .args(["tally", "charts/tally", "--namespace", NAMESPACE, "--kubeconfig"])
            .arg(&self.kubeconfig);
        for var in ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"] {
            cmd.env(var, self.dir.path().join(var));
        }
        for set in sets {
            cmd.args(["--set", set]);
        }
        ok(cmd.output().expect("run helm"), &format!("helm {verb} {sets:?}"));
    }

    /// `data[key]` (base64) of Secret `name` in the release namespace.
    fn secret(&self, name: &str, key: &str) -> String {
        let path = format!("jsonpath={{.data.{}}}", key.replace('.', "\\."));
        let value = self.kubectl(
            &["-n", NAMESPACE, "get", "secret", name, "-o", &path],
            "reading a Secret",
        );
        assert!(!value.is_empty(), "Secret {name} has no {key}");
        value
    }
}

#[tokio::test]
async fn rendered_chart_is_accepted_by_a_real_api_server() {
    let cluster = Cluster::start().await;
    // Default values (gateway mode, bundled Redis, catalog, mTLS, NetworkPolicies), external Redis,
    // the bundled Redis over TLS and the plaintext variant; the other modes add kinds
    // (EnvoyFilter, EnvoyExtensionPolicy, Certificate, ServiceMonitor) whose CRDs belong to Istio,
    // Envoy Gateway, cert-manager and the Prometheus operator.
    let fixtures =
        ["external-redis.yaml", "redis-tls.yaml", "plaintext.yaml"].map(|f| format!("tests/fixtures/chart/{f}"));
    let value_sets = [
        vec![],
        vec![fixtures[0].as_str()],
        vec![fixtures[1].as_str()],
        vec![fixtures[2].as_str()],
    ];
    for values in &value_sets {
        let manifest = cluster.dir.path().join("manifest.yaml");
        std::fs::write(&manifest, render(values)).unwrap();
        let applied = cluster.kubectl(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "-f",
                manifest.to_str().unwrap(),
            ],
            &format!("server-side dry-run of the chart with {values:?}"),
        );
        for kind in [
            "deployment.apps/",
            "service/",
            "configmap/",
            "secret/",
            "clusterrole.rbac.authorization.k8s.io/",
            "modelpricing.tally.dev/",
        ] {
            assert!(
                applied.contains(kind),
                "{values:?}: expected a {kind} object in:\n{applied}"
            );
        }
        let policies = applied.matches("networkpolicy.networking.k8s.io/").count();
        let expected = if values.iter().any(|v| v.ends_with("plaintext.yaml")) {
            0
        } else {
            3
        };
        assert!(
            policies >= expected,
            "{values:?}: {policies} NetworkPolicies in:\n{applied}"
        );
    }
}

#[tokio::test]
async fn generated_credentials_survive_upgrades_and_certificates_renew_before_expiry() {
    let cluster = Cluster::start().await;
    cluster.helm("install", &[]);
    let read =
        |secrets: &[(&str, &str)]| -> Vec<String> { secrets.iter().map(|(n, k)| cluster.secret(n, k)).collect() };
    let kept = [
        ("tally-ca", "tls.crt"),
        ("tally-api-token", "token"),
        ("tally-redis", "password"),
    ];
    let leaves = [
        ("tally-extproc-tls", "tls.crt"),
        ("tally-gateway-client-tls", "tls.crt"),
    ];
    let (credentials, certificates) = (read(&kept), read(&leaves));

    cluster.helm("upgrade", &[]);
    assert_eq!(
        read(&kept),
        credentials,
        "an upgrade keeps the CA, the API token and the Redis password"
    );
    assert_eq!(read(&leaves), certificates, "and certificates far from expiry");

    // Within renewBeforeDays of expiry (a 365-day certificate, renewed 400 days ahead): re-issued,
    // by the same CA, so pods still holding the old ones keep trusting the new ones.
    cluster.helm("upgrade", &["extproc.tls.generated.renewBeforeDays=400"]);
    assert_eq!(read(&kept), credentials, "the CA and the credentials stay");
    let renewed = read(&leaves);
    for (old, new) in certificates.iter().zip(&renewed) {
        assert_ne!(old, new, "a certificate due for renewal is re-issued");
    }
    assert_eq!(
        cluster.secret("tally-extproc-tls", "ca.crt"),
        credentials[0],
        "signed by the kept CA"
    );

    // A new client identity re-issues the gateway's certificate only.
    cluster.helm("upgrade", &["extproc.tls.clientId=bench.tally-system.svc"]);
    let reissued = read(&leaves);
    assert_eq!(reissued[0], renewed[0], "the ext_proc's names did not change");
    assert_ne!(reissued[1], renewed[1], "the gateway's identity changed");
}

/// With `webhook.enabled`, `helm install` registers the webhook for real; with nothing serving
/// it (no kubelet runs the operator here) the chart's `failurePolicy: Ignore` lets a TeamBudget
/// through, and an upgrade keeps the caBundle the operator sets (the chart never renders one).
#[tokio::test]
async fn the_webhook_installs_fails_open_and_upgrades_keep_the_operators_ca_bundle() {
    let cluster = Cluster::start().await;
    cluster.helm("install", &["webhook.enabled=true"]);
    let webhook_field = |path: &str| {
        let jsonpath = format!("jsonpath={{.webhooks[0].{path}}}");
        let get = [
            "get",
            "validatingwebhookconfiguration",
            "tally-webhook",
            "-o",
            &jsonpath,
        ];
        cluster.kubectl(&get, "reading the webhook configuration")
    };
    assert_eq!(webhook_field("failurePolicy"), "Ignore");
    let manifest = cluster.dir.path().join("team.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: tally.dev/v1alpha1\nkind: TeamBudget\nmetadata: {name: search, namespace: tally-system}\nspec: {team: search}\n",
    )
    .unwrap();
    cluster.kubectl(
        &["apply", "-f", manifest.to_str().unwrap()],
        "an apply with the webhook unreachable",
    );

    // What the operator's leader does: fill the caBundle.
    let ca = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==";
    let patch = format!(r#"[{{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "{ca}"}}]"#);
    cluster.kubectl(
        &[
            "patch",
            "validatingwebhookconfiguration",
            "tally-webhook",
            "--type",
            "json",
            "-p",
            &patch,
        ],
        "setting the caBundle",
    );
    cluster.helm("upgrade", &["webhook.enabled=true"]);
    assert_eq!(
        webhook_field("clientConfig.caBundle"),
        ca,
        "helm upgrade must not reset the caBundle the operator owns"
    );
}
