//! The Kubernetes side of the suite, set up as an admin: a real apiserver with the CRDs from
//! `crds/`, namespaces, the chart's operator RBAC rendered by helm, and objects applied with
//! server-side apply.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tally_api::crd::TeamBudget;
use tally_tests::fixtures::tools;
use tally_tests::kube_apiserver::KubeApiServer;

use crate::NS;
use crate::observe::eventually;

/// The field manager of everything the suite applies.
const MANAGER: &str = "tally-test";

fn force_apply() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// A real kube-apiserver with the CRDs installed, and its admin client (operator logs to the test output).
pub async fn apiserver_with_crds() -> Result<(KubeApiServer, Client)> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("tally_operator=debug,kube=warn,kube_client::client::builder=off")
        .with_test_writer()
        .try_init();
    let kube = KubeApiServer::start().await?;
    let admin = kube.admin_client().await?;
    install_crds(&admin).await?;
    Ok((kube, admin))
}

/// The YAML documents of a multi-document text, without empty ones.
fn yaml_documents(text: &str) -> Result<Vec<serde_yaml::Value>> {
    let mut docs = vec![];
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Applies every CRD in `crds/` and waits until each is Established.
async fn install_crds(admin: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let mut names = vec![];
    let dir = tools::workspace_root().join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    files.sort_by_key(|e| e.path());
    for file in files
        .iter()
        .filter(|f| f.path().extension().is_some_and(|e| e == "yaml"))
    {
        for value in yaml_documents(&std::fs::read_to_string(file.path())?)? {
            let crd: CustomResourceDefinition = serde_yaml::from_value(value)?;
            let name = crd.name_any();
            crds.patch(&name, &force_apply(), &Patch::Apply(&crd)).await?;
            names.push(name);
        }
    }
    if names.len() < 2 {
        bail!(
            "expected the TeamBudget and ModelPricing CRDs in {}, found {names:?}",
            dir.display()
        );
    }
    for name in names {
        eventually(&format!("CRD {name} established"), Duration::from_secs(30), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await?;
                let established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                Ok(established.then_some(()))
            }
        })
        .await;
    }
    Ok(())
}

/// Renders the chart's `operator-rbac.yaml` with helm and applies it; returns the ServiceAccount name.
pub async fn install_operator_rbac(admin: &Client, helm_args: &[&str]) -> Result<String> {
    let out = Command::new(tools::helm())
        .args(["template", "tally"])
        .arg(tools::workspace_root().join("charts/tally"))
        .args(["--namespace", NS, "--show-only", "templates/operator-rbac.yaml"])
        .args(helm_args)
        .output()?;
    if !out.status.success() {
        bail!("helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut sa_name = None;
    for value in yaml_documents(&String::from_utf8(out.stdout)?)? {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ns = value["metadata"]["namespace"].as_str().unwrap_or(NS).to_string();
        let admin = admin.clone();
        match kind.as_str() {
            "ServiceAccount" => {
                apply_value(Api::<ServiceAccount>::namespaced(admin, &ns), &name, value).await?;
                sa_name = Some(name);
            }
            "ClusterRole" => apply_value(Api::<ClusterRole>::all(admin), &name, value).await?,
            "ClusterRoleBinding" => apply_value(Api::<ClusterRoleBinding>::all(admin), &name, value).await?,
            "Role" => apply_value(Api::<Role>::namespaced(admin, &ns), &name, value).await?,
            "RoleBinding" => apply_value(Api::<RoleBinding>::namespaced(admin, &ns), &name, value).await?,
            other => bail!("unexpected kind {other:?} in operator-rbac.yaml"),
        }
    }
    sa_name.context("operator-rbac.yaml renders no ServiceAccount")
}

/// Applies a rendered document as a typed object (which checks it has the shape of `K`).
async fn apply_value<K>(api: Api<K>, name: &str, value: serde_yaml::Value) -> Result<()>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_yaml::from_value(value)?;
    api.patch(name, &force_apply(), &Patch::Apply(object)).await?;
    Ok(())
}

pub async fn create_namespace(admin: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(admin.clone());
    api.patch(
        name,
        &PatchParams::apply(MANAGER),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
    )
    .await?;
    Ok(())
}

pub async fn create_namespaces(admin: &Client, names: &[&str]) -> Result<()> {
    for name in names {
        create_namespace(admin, name).await?;
    }
    Ok(())
}

/// Creates (or replaces the spec of) an object as the admin, retrying while discovery of a fresh
/// CRD catches up.
pub async fn apply<K>(api: &Api<K>, name: &str, body: serde_json::Value) -> Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut tries = 0;
    loop {
        match api.patch(name, &force_apply(), &Patch::Apply(&body)).await {
            Ok(o) => return Ok(o),
            Err(kube::Error::Api(e)) if e.code == 404 && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A TeamBudget manifest.
pub fn team_budget(ns: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "tally.dev/v1alpha1", "kind": "TeamBudget", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

/// Applies TeamBudget `name` with `spec` in the namespace of `api`.
pub async fn apply_team_budget(api: &Api<TeamBudget>, name: &str, spec: serde_json::Value) -> Result<TeamBudget> {
    let ns = api.namespace().context("a namespaced TeamBudget API")?;
    apply(api, name, team_budget(ns, name, spec)).await
}

/// `result` is the apiserver's 403: RBAC denies the request.
pub fn assert_forbidden<T: std::fmt::Debug>(result: kube::Result<T>, why: &str) {
    let denied = result.expect_err(why);
    assert!(matches!(&denied, kube::Error::Api(e) if e.code == 403), "{denied}");
}
