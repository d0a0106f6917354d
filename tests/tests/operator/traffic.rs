//! From traffic to status (issue #18, item 2): real calls through Envoy and the ext_proc into
//! Redis, and the operator's `TeamBudget` status reading them back:
//! - `x-tally-budget-remaining-usd` is the tightest applicable budget and
//!   `x-tally-budget-scope` names it (`tenant/acme` here, tighter than its team and workflow);
//! - refusals by cause: one call refused by a budget, one by the model allowlist;
//! - `topModels` holds the model the money went to, with exactly what the ledger charged;
//! - the spend metrics carry the configured tenant as a label.

use std::time::Duration;

use anyhow::{Result, ensure};
use kube::api::Api;
use serde_json::json;
use tally_api::crd::TeamBudget;
use tally_api::crd::team_budget::{ModelSpend, Refusals};
use tally_config::compiled::{TenantConfig, WorkflowConfig};
use tally_config::money::Nanos;
use tally_tests::client::Attribution;
use tally_tests::expect::{metric_sum, usd_to_nanos};
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{HAIKU, NOVA_LITE, config, team};

use crate::NS;
use crate::cluster::{apiserver_with_crds, apply_team_budget, create_namespaces, install_operator_rbac};
use crate::observe::{STEP, wait_for_team_budget};
use crate::replica::start_replica;

const DIRECTIVE: &str = "Summarise the report [[usage in=1000 out=200]]";

/// `web`: 5 USD a month; workflow `rag` 2 USD; tenant `acme` 0.50 USD, tenant `tiny` a millionth
/// of a dollar (no call fits); only Anthropic models.
fn spec() -> serde_json::Value {
    json!({"team": "web", "allowedModels": ["anthropic.*"],
           "budget": {"limitUSD": "5", "period": "Monthly"},
           "workflows": [{"id": "rag", "limitUSD": "2"}],
           "tenants": [{"id": "acme", "limitUSD": "0.5"}, {"id": "tiny", "limitUSD": "0.000001"}]})
}

/// The same team as the ext_proc's compiled config.
fn web_config() -> tally_config::compiled::CompiledConfig {
    let mut web = team("web", "5", &[], &[]);
    web.allowed_models = vec!["anthropic.*".into()];
    web.workflows = vec![WorkflowConfig {
        id: "rag".into(),
        limit: Some(Nanos::parse_usd("2").unwrap()),
        allowed_models: vec![],
    }];
    web.tenants = [("acme", "0.5"), ("tiny", "0.000001")]
        .map(|(id, limit)| TenantConfig {
            id: id.into(),
            limit: Some(Nanos::parse_usd(limit).unwrap()),
        })
        .into();
    config(vec![web])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_shows_in_status_by_cause_and_model() -> Result<()> {
    let stack = Stack::start(StackOptions::new(web_config())).await;
    let (kube, admin) = apiserver_with_crds().await?;
    create_namespaces(&admin, &[NS, "web"]).await?;
    let sa = install_operator_rbac(&admin, &[]).await?;
    let replica = start_replica(kube.service_account_client(NS, &sa).await?, &stack.redis.url(), "solo").await?;
    let api: Api<TeamBudget> = Api::namespaced(admin.clone(), "web");
    apply_team_budget(&api, "web", spec()).await?;

    let acme = stack.client(Attribution::new("web", "acme", "rag"));
    acme.converse(HAIKU, DIRECTIVE).await?;
    let cost = usd_to_nanos(&acme.last_header("x-tally-cost-usd"));
    ensure!(cost > 0, "the call was charged");
    assert_eq!(acme.last_header("x-tally-budget-scope"), "tenant/acme");
    assert_eq!(
        usd_to_nanos(&acme.last_header("x-tally-budget-remaining-usd")),
        500_000_000 - cost,
        "what is left of acme's 0.50, the tightest of team 5, rag 2 and acme 0.50"
    );
    let denied = acme.converse(NOVA_LITE, DIRECTIVE).await;
    ensure!(denied.is_err(), "a model outside the allowlist is refused: {denied:?}");
    let tiny = stack.client(Attribution::new("web", "tiny", "rag"));
    let blocked = tiny.converse(HAIKU, DIRECTIVE).await;
    ensure!(blocked.is_err(), "no call fits tiny's budget: {blocked:?}");

    let ledger = stack.extproc.wait_ledger(3, Duration::from_secs(15)).await;
    let charged = ledger
        .iter()
        .find(|r| r["outcome"] == "ok")
        .expect("the charged call's record");
    let model = charged["model"].as_str().expect("its catalog model").to_string();
    let want = (
        Some(Refusals {
            budget: 1,
            allowlist: 1,
        }),
        vec![ModelSpend {
            model,
            spent_usd: Nanos(cost).to_string(),
        }],
    );
    let tb = wait_for_team_budget(&api, "web", "refusals and top models", STEP, |tb| {
        tb.status
            .as_ref()
            .is_some_and(|s| (s.refusals.clone(), s.top_models.clone()) == want)
    })
    .await;
    assert_eq!(tb.status.unwrap().blocked, Some(1));

    let metrics = stack.extproc.metrics().await;
    let labels = [("team", "web"), ("tenant", "acme"), ("workflow", "rag")];
    assert_eq!(
        metric_sum(&metrics, "tally_spend_nanos_total", &labels),
        cost as f64,
        "{metrics}"
    );
    replica.shutdown().await?;
    Ok(())
}
