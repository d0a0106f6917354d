//! Errors at `kubectl apply` time (issue #18, "What to build" 3): the operator's validating
//! admission webhook, registered with the chart's own ValidatingWebhookConfiguration (reached by
//! `url:` here, as no kubelet runs pods), and the TeamBudget CRD's CEL rules.
//!
//! - The operator makes its own CA and serving certificate, keeps them in a Secret and fills the
//!   configuration's empty `caBundle` itself (leader only); then every problem of an object is
//!   refused at once, through the real `kubectl`, and valid objects and a DELETE pass.
//! - With the webhook down and the chart's `failurePolicy: Ignore`, an apply goes through and
//!   the operator's `Ready` condition reports the problem instead.
//! - With no webhook at all, CEL refuses a workflow or tenant limit above the team's, exactly
//!   (decimal, not float).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tally_api::crd::{ModelPricing, TeamBudget};
use tally_operator::controller::{self, OperatorArgs};
use tally_tests::fixtures::process::free_port;
use tally_tests::fixtures::tools;
use tally_tests::kube_apiserver::{KubeApiServer, tool_bin};
use tokio::sync::oneshot;

use crate::NS;
use crate::cluster::{apiserver_with_crds, create_namespaces, install_operator_rbac, team_budget};
use crate::observe::{STEP, condition, eventually, wait_for_team_budget};

/// The chart's ValidatingWebhookConfiguration (`webhook.enabled=true`), pointed at `url`.
fn chart_webhook_configuration(url: &str) -> Result<Value> {
    let out = Command::new(tools::helm())
        .args(["template", "tally"])
        .arg(tools::workspace_root().join("charts/tally"))
        .args(["--namespace", NS, "--set", "webhook.enabled=true"])
        .args(["--show-only", "templates/webhook.yaml"])
        .output()?;
    if !out.status.success() {
        bail!("helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout)?;
    let mut config = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).map_err(anyhow::Error::from))
        .collect::<Result<Vec<Value>>>()?
        .into_iter()
        .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
        .context("the chart renders no ValidatingWebhookConfiguration")?;
    for webhook in config["webhooks"].as_array_mut().context("no webhooks")? {
        webhook["clientConfig"] = json!({ "url": url });
    }
    Ok(config)
}

async fn register(admin: &Client, config: &Value) -> Result<Api<ValidatingWebhookConfiguration>> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(admin.clone());
    let name = config["metadata"]["name"].as_str().context("unnamed")?;
    api.patch(name, &PatchParams::apply("tally-test").force(), &Patch::Apply(config))
        .await?;
    Ok(api)
}

/// `tally operator` in-process, from a command line as the binary parses it.
struct Operator {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), controller::Error>>,
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    args: OperatorArgs,
}

async fn start_operator(client: Client, extra: &[&str]) -> Result<Operator> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let metrics = listener.local_addr()?.to_string();
    let mut line = vec!["tally", "--config-map-namespace", NS, "--metrics-listen", &metrics];
    line.extend([
        "--lease-duration",
        "3s",
        "--status-interval",
        "500ms",
        "--identity",
        "webhook",
    ]);
    line.extend(extra);
    let args = Flags::try_parse_from(line)?.args;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(controller::run(args, client, listener, async move {
        let _ = stopped.await;
    }));
    Ok(Operator { stop, task })
}

impl Operator {
    async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .context("operator did not stop in 20 s")???;
        Ok(())
    }
}

/// The API server's message refusing `result`.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> String {
    match result {
        Err(kube::Error::Api(e)) => e.message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn assert_all_in(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "{e:?} missing from:\n{text}");
    }
}

/// `kubectl apply -f` of `manifest` as the admin; (succeeded, stdout + stderr).
fn kubectl_apply(kube: &KubeApiServer, manifest: &Value) -> Result<(bool, String)> {
    let dir = tempfile::tempdir()?;
    let (kubeconfig, file) = (dir.path().join("kubeconfig"), dir.path().join("object.yaml"));
    std::fs::write(&kubeconfig, kube.admin_kubeconfig_yaml())?;
    std::fs::write(&file, serde_yaml::to_string(manifest)?)?;
    let out = Command::new(tool_bin("kubectl"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["apply", "-f"])
        .arg(&file)
        .output()
        .context("running kubectl (install it: scripts/tools/helm.sh)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// A valid object passes (retried while the API server picks up the new caBundle), and the
/// operator's watch caches, which the webhook judges against, hold it: its Ready condition is
/// written from them (the conflicts the next object has with it are there).
async fn a_valid_object_passes(admin: &Client) -> Api<TeamBudget> {
    let sales = team_budget("sales", "sales", json!({"team": "sales", "tenants": [{"id": "acme"}]}));
    let teams: Api<TeamBudget> = Api::namespaced(admin.clone(), "sales");
    eventually("a valid TeamBudget admitted", STEP, || async {
        let params = PatchParams::apply("tally-test");
        Ok(teams.patch("sales", &params, &Patch::Apply(&sales)).await.ok())
    })
    .await;
    wait_for_team_budget(&teams, "sales", "sales Ready", STEP, |tb| {
        condition(tb, "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;
    teams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_every_problem_at_once_with_a_certificate_it_made() -> Result<()> {
    let (kube, admin) = apiserver_with_crds().await?;
    create_namespaces(&admin, &[NS, "sales", "search"]).await?;
    let sa = install_operator_rbac(&admin, &["--set", "webhook.enabled=true"]).await?;
    let port = free_port();
    let mut config = chart_webhook_configuration(&format!("https://127.0.0.1:{port}/validate"))?;
    // `Fail` for this test only: an apply that passes then proves the webhook answered it.
    config["webhooks"][0]["failurePolicy"] = json!("Fail");
    let configurations = register(&admin, &config).await?;
    let name = config["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let listen = format!("127.0.0.1:{port}");
    let operator = kube.service_account_client(NS, &sa).await?;
    let operator = start_operator(
        operator,
        &["--webhook-listen", &listen, "--webhook-cert-hosts", "127.0.0.1"],
    )
    .await?;

    // The empty caBundle is filled with the CA of the Secret the operator made.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    let ca = eventually("the caBundle filled by the operator", STEP, || async {
        let vwc = configurations.get(&name).await?;
        let bundle = vwc.webhooks.unwrap_or_default()[0].client_config.ca_bundle.clone();
        Ok(bundle.filter(|b| !b.0.is_empty()))
    })
    .await;
    let secret = secrets.get("tally-webhook-tls").await?;
    assert_eq!(Some(&ca), secret.data.as_ref().and_then(|d| d.get("ca.crt")));

    let teams = a_valid_object_passes(&admin).await;

    // One object, four problems, all in one refusal, as kubectl shows it.
    let bad = team_budget(
        "search",
        "search",
        json!({
            "team": "sales",
            "budget": {"limitUSD": "99999999999", "period": "Monthly", "timezone": "Mars/Olympus_Mons"},
            "tenants": [{"id": "acme"}]
        }),
    );
    let (ok, text) = kubectl_apply(&kube, &bad)?;
    assert!(!ok, "{text}");
    assert_all_in(
        &text,
        &[
            "admission webhook \"validate.tally.dev\" denied the request: 4 problems found:",
            "TeamBudget search/search: spec.budget.limitUSD: \"99999999999\" is too large",
            "TeamBudget search/search: spec.budget.timezone: unknown timezone \"Mars/Olympus_Mons\"",
            "TeamBudget search/search: spec.team: team \"sales\" is already declared by TeamBudget sales/sales",
            "TeamBudget search/search: spec.tenants[0].id: tenant \"acme\" already belongs to team \"sales\"",
        ],
    );
    assert!(
        Api::<TeamBudget>::namespaced(admin.clone(), "search")
            .get_opt("search")
            .await?
            .is_none()
    );

    catalogs_are_judged_together(&admin).await?;
    the_schema_refuses_bad_strings_first(&admin).await?;

    // A DELETE is never judged.
    teams.delete("sales", &DeleteParams::default()).await?;
    operator.shutdown().await?;
    Ok(())
}

/// A catalog mapping an alias another catalog of the same priority maps elsewhere is refused.
async fn catalogs_are_judged_together(admin: &Client) -> Result<()> {
    let pricings: Api<ModelPricing> = Api::all(admin.clone());
    let catalog = |name: &str, model: &str| {
        json!({
            "apiVersion": "tally.dev/v1alpha1", "kind": "ModelPricing", "metadata": {"name": name},
            "spec": {"source": "test", "effectiveFrom": "2026-01-01", "priority": 0,
                     "models": [{"match": model, "inputPerMillion": "1", "outputPerMillion": "2", "maxOutputTokens": 4096}],
                     "aliases": [{"id": "profile-1", "model": model}]}
        })
    };
    let params = PatchParams::apply("tally-test");
    pricings
        .patch("base", &params, &Patch::Apply(catalog("base", "anthropic.claude-x")))
        .await?;
    // The webhook judges against the operator's watch caches, which see "base" a moment after
    // the apply (the chart's webhook is a convenience with `failurePolicy: Ignore`; the
    // reconciler's conditions catch what passes meanwhile): wait until the reconciler, reading
    // the same caches, has compiled it.
    eventually("the base catalog in the operator's caches", STEP, || async {
        let base = pricings.get("base").await?;
        Ok(base.status.and_then(|s| s.models).filter(|&m| m > 0))
    })
    .await;
    let clash = pricings
        .patch("override", &params, &Patch::Apply(catalog("override", "amazon.nova-y")))
        .await;
    assert_all_in(
        &refusal(clash),
        &[
            "ModelPricing override: spec.aliases[0].model: alias \"profile-1\" is already mapped to \"anthropic.claude-x\" by ModelPricing base",
        ],
    );
    Ok(())
}

/// What the CRD schema already refuses never reaches the webhook: a money string that is not
/// a decimal, a model glob with a `?`.
async fn the_schema_refuses_bad_strings_first(admin: &Client) -> Result<()> {
    let teams: Api<TeamBudget> = Api::namespaced(admin.clone(), "search");
    let spec =
        json!({"team": "search", "budget": {"limitUSD": "12.x", "period": "Daily"}, "allowedModels": ["claude-?"]});
    let params = PatchParams::apply("tally-test");
    let refused = teams
        .patch("search", &params, &Patch::Apply(team_budget("search", "search", spec)))
        .await;
    assert_all_in(&refusal(refused), &["spec.budget.limitUSD", "spec.allowedModels[0]"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_down_an_apply_passes_and_the_condition_reports_it() -> Result<()> {
    let (kube, admin) = apiserver_with_crds().await?;
    create_namespaces(&admin, &[NS, "search"]).await?;
    let sa = install_operator_rbac(&admin, &[]).await?;
    // Nothing listens there; the chart's failurePolicy decides.
    let config = chart_webhook_configuration(&format!("https://127.0.0.1:{}/validate", free_port()))?;
    assert_eq!(config["webhooks"][0]["failurePolicy"], "Ignore");
    register(&admin, &config).await?;
    let operator = start_operator(kube.service_account_client(NS, &sa).await?, &[]).await?;

    let teams: Api<TeamBudget> = Api::namespaced(admin.clone(), "search");
    let spec =
        json!({"team": "search", "budget": {"limitUSD": "10", "period": "Daily", "timezone": "Mars/Olympus_Mons"}});
    let params = PatchParams::apply("tally-test");
    teams
        .patch("search", &params, &Patch::Apply(team_budget("search", "search", spec)))
        .await
        .context("failurePolicy Ignore must let the apply through")?;
    let tb = wait_for_team_budget(&teams, "search", "Ready=False", STEP, |tb| {
        condition(tb, "Ready").is_some_and(|c| c.0 == "False")
    })
    .await;
    let (_, _, message) = condition(&tb, "Ready").unwrap_or_default();
    assert!(message.contains("unknown timezone \"Mars/Olympus_Mons\""), "{message}");
    operator.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cel_refuses_a_limit_above_the_team_limit_without_any_webhook() -> Result<()> {
    let (_kube, admin) = apiserver_with_crds().await?;
    create_namespaces(&admin, &["search"]).await?;
    let teams: Api<TeamBudget> = Api::namespaced(admin.clone(), "search");
    let apply = |name: &str, wf: &str, tenant: &str| {
        let spec = json!({
            "team": name,
            "budget": {"limitUSD": "12345678.123456789", "period": "Monthly"},
            "workflows": [{"id": "rag", "limitUSD": wf}],
            "tenants": [{"id": format!("{name}-t"), "limitUSD": tenant}]
        });
        let (teams, manifest) = (teams.clone(), team_budget("search", name, spec));
        let name = name.to_string();
        async move {
            teams
                .patch(&name, &PatchParams::apply("tally-test"), &Patch::Apply(manifest))
                .await
        }
    };
    // One nano-dollar above: a float comparison could not tell these apart, `quantity()` does.
    let above = refusal(apply("a", "12345678.12345679", "1").await);
    assert_all_in(
        &above,
        &[
            "spec.workflows: Invalid value",
            "a workflow's limitUSD must not exceed the team's spec.budget.limitUSD",
        ],
    );
    let above = refusal(apply("b", "1", "12345678.12345679").await);
    assert_all_in(&above, &["spec.tenants", "a tenant's limitUSD must not exceed"]);
    // Equal is within the limit.
    let equal = apply("c", "12345678.123456789", "12345678.123456789").await?;
    assert_eq!(equal.name_any(), "c");
    Ok(())
}
