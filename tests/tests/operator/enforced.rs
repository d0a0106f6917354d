//! Status describes what the running config enforces (issue #18, defects 1–3), and
//! `kubectl get teambudgets -A` shows it in its columns:
//! - a rejected update keeps the previous limit in force, and status, conditions and alerts are
//!   measured against that limit, not the rejected one;
//! - a raised limit re-arms the alerts: crossing 50 % of the new limit is announced again, and a
//!   workflow's own spend shows in `status.workflows`;
//! - an invalid object that is not in the running config shows no budget and no spend;
//! - `kubectl get modelpricings` shows READY and a short SOURCE.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Result, bail};
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};
use tally_api::crd::{ModelPricing, TeamBudget};
use tally_config::keys::{self, Scope};
use tally_tests::fixtures::redis::RedisServer;
use tally_tests::kube_apiserver::KubeApiServer;
use tally_tests::tools;

use crate::cluster::{apiserver_with_crds, apply, apply_team_budget, create_namespaces, install_operator_rbac};
use crate::counters::{set_scope_counter, set_team, this_month};
use crate::observe::{STEP, condition, events_of, eventually, wait_for_team_budget};
use crate::replica::start_replica;
use crate::{NS, USD};

/// The `web` team's spec with a team limit and one workflow limited to 2 USD.
fn web(limit: &str) -> Value {
    json!({"team": "web", "budget": {"limitUSD": limit, "period": "Monthly", "alertThresholds": [50, 80, 100]},
           "workflows": [{"id": "rag", "limitUSD": "2"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_describes_the_enforced_budget() -> Result<()> {
    let (kube, admin) = apiserver_with_crds().await?;
    create_namespaces(&admin, &[NS, "web"]).await?;
    let sa = install_operator_rbac(&admin, &[]).await?;
    let operator = kube.service_account_client(NS, &sa).await?;
    let redis = RedisServer::start(false).await;
    let period = this_month();
    set_team(&redis, "web", &period, 3 * USD, 0, 10).await?;
    let replica = start_replica(operator, &redis.url(), "solo").await?;
    let api: Api<TeamBudget> = Api::namespaced(admin.clone(), "web");

    apply_team_budget(&api, "web", web("5")).await?;
    wait_for_status(&api, "web 60 % of 5.00", |s| s == ("5.00", "2.00", "60.0")).await;
    wait_for_events(&admin, "web", &[("ThresholdCrossed/50", 1)]).await;

    a_rejected_limit_is_not_what_status_shows(&api, &admin).await?;
    a_raised_limit_rearms_the_alerts(&api, &admin, &redis, &period).await?;
    an_object_not_in_the_config_shows_no_budget(&api).await?;
    kubectl_shows_the_enforced_columns(&kube)?;
    a_catalog_shows_ready_and_a_short_source(&kube, &admin).await?;
    replica.shutdown().await?;
    Ok(())
}

/// Defect 1: a spec with limit 1.00 is rejected (its timezone is unknown), so 5.00 stays in
/// force. (The defect's own example, a limit below a workflow's, no longer gets past the CRD's
/// CEL rule; the operator must still describe what it enforces when any rejected spec is stored,
/// e.g. from before the CRD had that rule.)
async fn a_rejected_limit_is_not_what_status_shows(api: &Api<TeamBudget>, admin: &Client) -> Result<()> {
    let mut rejected = web("1");
    rejected["budget"]["timezone"] = json!("Nowhere/Land");
    rejected["workflows"][0]["limitUSD"] = json!("1");
    apply_team_budget(api, "web", rejected).await?;
    let tb = wait_for_team_budget(api, "web", "web Ready=False", STEP, |tb| {
        condition(tb, "Ready").is_some_and(|c| c.0 == "False")
    })
    .await;
    // A few status passes against the rejected spec.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let tb = api.get("web").await.unwrap_or(tb);
    let (_, reason, message) = condition(&tb, "Ready").unwrap();
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("previous valid version stays in effect"), "{message}");
    assert_eq!(figures(&tb), Some(("5.00".into(), "2.00".into(), "60.0".into())));
    assert_eq!(tb.status.as_ref().unwrap().observed_generation, tb.metadata.generation);
    let (crossed, _, crossed_message) = condition(&tb, "ThresholdCrossed").unwrap();
    assert_eq!(crossed, "True");
    assert!(
        crossed_message.contains("50% of the 5.00 USD limit"),
        "{crossed_message}"
    );
    assert_eq!(condition(&tb, "BudgetExceeded").unwrap().0, "False");
    // Nothing fires against the rejected limit: the InvalidSpec Event (posted after the
    // condition is written) and the first alert, exactly.
    wait_for_events(admin, "web", &[("InvalidSpec", 1), ("ThresholdCrossed/50", 1)]).await;
    Ok(())
}

/// Defect 2: 10.00 in force, spend up to 60 % of it: the 50 % alert fires again.
async fn a_raised_limit_rearms_the_alerts(
    api: &Api<TeamBudget>,
    admin: &Client,
    redis: &RedisServer,
    period: &str,
) -> Result<()> {
    apply_team_budget(api, "web", web("10")).await?;
    wait_for_status(api, "web 30 % of 10.00", |s| s == ("10.00", "7.00", "30.0")).await;
    set_team(redis, "web", period, 6 * USD, 0, 20).await?;
    wait_for_status(api, "web 60 % of 10.00", |s| s == ("10.00", "4.00", "60.0")).await;
    wait_for_events(admin, "web", &[("InvalidSpec", 1), ("ThresholdCrossed/50", 2)]).await;
    let alerts = api.get("web").await?.status.unwrap().alerts.unwrap();
    assert_eq!(
        (alerts.limit_usd.as_deref(), alerts.thresholds),
        (Some("10.00"), vec![50])
    );
    // The workflow's own line, from its `wf/rag` counters.
    let fields = [(keys::field::SPENT, 3 * USD / 2), (keys::field::REQUESTS, 4)];
    set_scope_counter(
        &mut redis.connection().await,
        "web",
        period,
        &Scope::Workflow("rag".into()),
        &fields,
    )
    .await?;
    let tb = wait_for_team_budget(api, "web", "the rag workflow's line", STEP, |tb| {
        tb.status
            .as_ref()
            .is_some_and(|s| s.workflows.first().is_some_and(|w| w.spent_usd == "1.50"))
    })
    .await;
    let rag = &tb.status.unwrap().workflows[0];
    assert_eq!(
        (
            rag.id.as_str(),
            rag.limit_usd.as_deref(),
            rag.remaining_usd.as_deref(),
            rag.utilization.as_deref()
        ),
        ("rag", Some("2.00"), Some("0.50"), Some("75.0"))
    );
    assert_eq!(rag.requests, 4);
    Ok(())
}

/// Defect 3: an invalid object never compiled is unknown to the ext_proc: no budget, no spend.
async fn an_object_not_in_the_config_shows_no_budget(api: &Api<TeamBudget>) -> Result<()> {
    let spec = json!({"team": "ghost", "budget": {"limitUSD": "1", "period": "Daily", "timezone": "Nowhere/Land"}});
    apply_team_budget(api, "ghost", spec).await?;
    let tb = wait_for_team_budget(api, "ghost", "ghost Ready=False", STEP, |tb| {
        condition(tb, "Ready").is_some_and(|c| c.0 == "False" && c.2.contains("not in the running config"))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let s = api.get("ghost").await?.status.unwrap_or_default();
    assert_eq!(
        (s.limit_usd, s.spent_usd, s.remaining_usd, s.utilization, s.period_start),
        (None, None, None, None, None),
        "{:?}",
        tb.status
    );
    assert_eq!(s.conditions.len(), 1, "only Ready: {:?}", s.conditions);
    Ok(())
}

/// `kubectl get <args>` as the admin: the table it prints (echoed to the test output).
fn kubectl_get(kube: &KubeApiServer, args: &[&str]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kube.admin_kubeconfig_yaml())?;
    let out = Command::new(tools::cached_tool("kubectl", "helm.sh"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("get")
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("kubectl get failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let table = String::from_utf8(out.stdout)?;
    println!("$ kubectl get {}\n{table}", args.join(" "));
    Ok(table)
}

/// `kubectl get teambudgets -A`: the columns show what is enforced.
fn kubectl_shows_the_enforced_columns(kube: &KubeApiServer) -> Result<()> {
    let table = kubectl_get(kube, &["teambudgets", "-A"])?;
    let rows = cells(&table);
    let header = "NAMESPACE NAME TEAM READY ENFORCEMENT PERIOD SPENT LIMIT REMAINING UTIL% FORECAST AGE";
    assert_eq!(rows[0].join(" "), header, "{table}");
    let ghost = ["web", "ghost", "ghost", "False", "", "Daily", "", "", "", "", ""];
    assert_eq!(rows[1][..11], ghost, "{table}");
    let web = [
        "web", "web", "web", "True", "Block", "Monthly", "6.00", "10.00", "4.00", "60.0",
    ];
    assert_eq!(rows[2][..10], web, "{table}");
    let forecast = &rows[2][10];
    assert!(
        forecast.ends_with(|c: char| c.is_ascii_digit()) && forecast.contains('.'),
        "{table}"
    );
    Ok(())
}

/// `kubectl get modelpricings`: READY and the source cut short (the spec keeps it whole).
async fn a_catalog_shows_ready_and_a_short_source(kube: &KubeApiServer, admin: &Client) -> Result<()> {
    let pricings: Api<ModelPricing> = Api::all(admin.clone());
    let source = "LiteLLM model_prices_and_context_window 1.110.2, taken 2026-11-26";
    apply(&pricings, "list", json!({
        "apiVersion": "tally.dev/v1alpha1", "kind": "ModelPricing", "metadata": {"name": "list"},
        "spec": {"source": source, "effectiveFrom": "2026-01-01", "models": [
            {"match": "anthropic.claude-sonnet-4-*", "inputPerMillion": "3", "outputPerMillion": "15", "maxOutputTokens": 8192}
        ]}
    }))
    .await?;
    eventually("ModelPricing status", STEP, || async {
        Ok(pricings.get("list").await?.status.filter(|s| s.source.is_some()))
    })
    .await;
    let table = kubectl_get(kube, &["modelpricings"])?;
    let rows = cells(&table);
    assert_eq!(
        rows[0],
        ["NAME", "READY", "SOURCE", "MODELS", "PRIORITY", "AGE"],
        "{table}"
    );
    assert_eq!(
        rows[1][..4],
        ["list", "True", "LiteLLM model_prices_and_context_window…", "1"],
        "{table}"
    );
    assert_eq!(pricings.get("list").await?.spec.source, source);
    Ok(())
}

/// The cells of a `kubectl get` table, cut at the header's column starts (empty cells stay).
fn cells(table: &str) -> Vec<Vec<String>> {
    let header = table.lines().next().unwrap_or_default();
    let mut starts: Vec<usize> = header.match_indices(|c: char| c != ' ').map(|(i, _)| i).collect();
    starts.retain(|&i| i == 0 || header.as_bytes()[i - 1] == b' ');
    table
        .lines()
        .map(|line| {
            (0..starts.len())
                .map(|c| {
                    let end = starts.get(c + 1).map_or(line.len(), |&e| e.min(line.len()));
                    line.get(starts[c].min(end)..end).unwrap_or_default().trim().to_string()
                })
                .collect()
        })
        .collect()
}

/// The (limit, remaining, utilization) a TeamBudget's status shows.
fn figures(tb: &TeamBudget) -> Option<(String, String, String)> {
    let s = tb.status.as_ref()?;
    Some((s.limit_usd.clone()?, s.remaining_usd.clone()?, s.utilization.clone()?))
}

async fn wait_for_status(api: &Api<TeamBudget>, what: &str, ok: impl Fn((&str, &str, &str)) -> bool) {
    wait_for_team_budget(api, "web", what, STEP, |tb| {
        figures(tb).is_some_and(|(l, r, u)| ok((&l, &r, &u)))
    })
    .await;
}

/// Waits until the Events about `name` in its namespace are exactly `expected`.
async fn wait_for_events(admin: &Client, name: &str, expected: &[(&str, usize)]) {
    let expected: BTreeMap<String, usize> = expected.iter().map(|(k, n)| ((*k).to_string(), *n)).collect();
    eventually(&format!("events {expected:?}"), STEP, || async {
        let events = events_of(admin, name, name).await?;
        if events != expected {
            bail!("events so far: {events:?}");
        }
        Ok(Some(()))
    })
    .await;
}
