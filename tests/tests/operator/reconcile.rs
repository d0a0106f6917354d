//! The operator's main scenario, one step after another against the same apiserver, Redis and
//! two replicas: CEL rules, the chart's RBAC, leader election, objects in and config out, live
//! status and events from Redis counters, changes, invalid objects, deletion, ModelPricing
//! status, the HTTP endpoints, and a standby taking over after a graceful shutdown.
//!
//! The steps share state (the published hashes, the counters, the replicas), so they run in
//! order inside one test rather than as separate tests.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use tally_api::crd::{ModelPricing, TeamBudget};
use tally_config::money::Nanos;
use tally_tests::fixtures::redis::RedisServer;
use tally_tests::kube_apiserver::KubeApiServer;

use crate::cluster::{
    apiserver_with_crds, apply, apply_team_budget, assert_forbidden, create_namespaces, install_operator_rbac,
    team_budget,
};
use crate::counters::{set_team, this_month};
use crate::observe::{
    STEP, condition, events_of, eventually, http_get, overrun_events, published, team_names, wait_for_config,
    wait_for_leader, wait_for_spend, wait_for_team_budget,
};
use crate::replica::{Replica, start_replica};
use crate::{NS, USD};

/// What the steps share: the admin's view of the objects, and the counters in Redis.
struct World {
    admin: Client,
    /// TeamBudgets in namespace `search`.
    search: Api<TeamBudget>,
    /// TeamBudgets in namespace `ads`.
    ads: Api<TeamBudget>,
    pricings: Api<ModelPricing>,
    leases: Api<Lease>,
    redis: RedisServer,
    /// The current monthly period of the `search` team's counters.
    period: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reconciles_config_status_and_events_with_chart_rbac() -> Result<()> {
    let (kube, admin) = apiserver_with_crds().await?;
    create_namespaces(&admin, &[NS, "search", "ads"]).await?;
    let search: Api<TeamBudget> = Api::namespaced(admin.clone(), "search");
    cel_rules_reject_bad_objects(&search).await?;
    let operator = operator_client_with_chart_rbac(&kube, &admin).await?;

    let redis = RedisServer::start(false).await;
    let period = this_month();
    set_team(&redis, "search", &period, 85 * USD, 2 * USD, 42).await?;
    let w = World {
        ads: Api::namespaced(admin.clone(), "ads"),
        pricings: Api::all(admin.clone()),
        leases: Api::namespaced(admin.clone(), NS),
        admin,
        search,
        redis,
        period,
    };
    let (a, b) = start_leader_and_standby(&w, operator).await?;

    let hash1 = objects_in_config_out(&w).await?;
    live_status_and_threshold_events_from_the_counters(&w).await?;
    exhaustion_flips_the_condition_and_raises_each_event_once(&w).await?;
    let hash2 = a_change_is_followed(&w, &hash1).await?;
    an_invalid_update_keeps_the_last_good_config(&w, &hash2).await?;
    a_new_invalid_object_is_not_served(&w).await?;
    deletion_is_followed(&w).await?;
    model_pricing_status_is_reported(&w).await?;
    metrics_and_probes_are_served(&a, &b).await?;
    the_standby_takes_over_after_a_graceful_shutdown(&w, a, b).await?;
    drop(kube);
    Ok(())
}

/// CEL validation rules reject bad objects with their messages.
async fn cel_rules_reject_bad_objects(search: &Api<TeamBudget>) -> Result<()> {
    for (spec, why, message) in [
        (
            json!({"team": "bad", "tenants": [{"id": "acme", "limitUSD": "5"}]}),
            "a tenant limit without a budget must be refused",
            "tenant and workflow limitUSD need spec.budget",
        ),
        (
            json!({"team": "bad", "budget": {"limitUSD": "5", "period": "Daily", "alertThresholds": [80, 50]}}),
            "descending thresholds must be refused",
            "alertThresholds must be strictly ascending",
        ),
    ] {
        let err = search
            .create(
                &PostParams::default(),
                &serde_json::from_value(team_budget("search", "bad", spec))?,
            )
            .await
            .expect_err(why);
        assert!(err.to_string().contains(message), "{err}");
    }
    Ok(())
}

/// The operator runs with the chart's RBAC only: a client for its ServiceAccount.
async fn operator_client_with_chart_rbac(kube: &KubeApiServer, admin: &Client) -> Result<Client> {
    let sa = install_operator_rbac(admin, &[]).await?;
    let operator = kube.service_account_client(NS, &sa).await?;
    let secrets: Api<Secret> = Api::all(operator.clone());
    assert_forbidden(
        secrets.list(&ListParams::default()).await,
        "the operator must not read secrets",
    );
    Ok(operator)
}

/// The first replica leads; a second one waits.
async fn start_leader_and_standby(w: &World, operator: Client) -> Result<(Replica, Replica)> {
    let a = start_replica(operator.clone(), &w.redis.url(), "replica-a").await?;
    wait_for_leader(&w.leases, "replica-a", Duration::from_secs(30)).await;
    let b = start_replica(operator, &w.redis.url(), "replica-b").await?;
    Ok((a, b))
}

/// Objects in, config out; returns the published config's hash.
async fn objects_in_config_out(w: &World) -> Result<String> {
    apply(&w.pricings, "aws-list", json!({
        "apiVersion": "tally.dev/v1alpha1", "kind": "ModelPricing", "metadata": {"name": "aws-list"},
        "spec": {"source": "test", "effectiveFrom": "2026-01-01", "models": [
            {"match": "anthropic.claude-sonnet-4-*", "inputPerMillion": "3", "outputPerMillion": "15", "maxOutputTokens": 8192}
        ]}
    }))
    .await?;
    apply_team_budget(&w.search, "search", json!({
        "team": "search", "budget": {"limitUSD": "100", "period": "Monthly", "timezone": "UTC", "alertThresholds": [50, 80, 100]}
    }))
    .await?;
    apply_team_budget(
        &w.ads,
        "ads",
        json!({"team": "ads", "budget": {"limitUSD": "10", "period": "Daily"}}),
    )
    .await?;

    let (hash1, config) = wait_for_config(&w.admin, "config with both teams", Duration::from_secs(30), |c| {
        c.teams.len() == 2 && !c.catalog.entries.is_empty()
    })
    .await;
    assert_eq!(team_names(&config), ["ads", "search"]);
    assert_eq!(config.teams[1].source, "search/search");
    assert_eq!(config.teams[1].budget.as_ref().unwrap().limit.0, 100 * USD);
    assert_eq!(config.catalog.entries[0].pattern, "anthropic.claude-sonnet-4-*");
    Ok(hash1)
}

/// Live status from the seeded counters, and one event per threshold crossed.
async fn live_status_and_threshold_events_from_the_counters(w: &World) -> Result<()> {
    let tb = wait_for_spend(&w.search, "search", "search status from Redis").await;
    let s = tb.status.clone().unwrap();
    assert_eq!(s.spent_usd.as_deref(), Some("85.00"));
    assert_eq!(s.reserved_usd.as_deref(), Some("2.00"));
    assert_eq!(s.remaining_usd.as_deref(), Some("13.00"));
    assert_eq!(s.utilization.as_deref(), Some("87.0"));
    assert_eq!(s.requests, Some(42));
    assert_eq!(s.observed_generation, tb.metadata.generation);
    assert!(
        s.period_start
            .as_deref()
            .unwrap()
            .starts_with(&format!("{}-01T00:00:00", w.period)),
        "{:?}",
        s.period_start
    );
    assert_eq!(condition(&tb, "Ready").unwrap().0, "True");
    assert_eq!(condition(&tb, "ThresholdCrossed").unwrap().0, "True");
    assert_eq!(condition(&tb, "BudgetExceeded").unwrap().0, "False");
    let events = eventually("threshold events", STEP, || async {
        let e = events_of(&w.admin, "search", "search").await?;
        if e.len() < 2 {
            bail!("events so far: {e:?}");
        }
        Ok(Some(e))
    })
    .await;
    assert_eq!(
        events,
        BTreeMap::from([("ThresholdCrossed/50".into(), 1), ("ThresholdCrossed/80".into(), 1)])
    );
    // 87.00 committed of 100: a warning before the money runs out iff the status's forecast
    // (which depends on how much of the month has gone) is over the limit.
    let forecast = Nanos::parse_usd(s.forecast_usd.as_deref().expect("a forecast"))?;
    let want = usize::from(forecast > Nanos(100 * USD));
    eventually("the projected-overrun warning, if due", STEP, || async {
        let n = overrun_events(&w.admin, "search", "search").await?;
        Ok((n == want).then_some(()))
    })
    .await;
    Ok(())
}

/// Exhaustion: the condition flips and one event is raised, once.
async fn exhaustion_flips_the_condition_and_raises_each_event_once(w: &World) -> Result<()> {
    set_team(&w.redis, "search", &w.period, 99 * USD, 3 * USD, 50).await?;
    wait_for_team_budget(&w.search, "search", "BudgetExceeded", STEP, |tb| {
        condition(tb, "BudgetExceeded").is_some_and(|c| c.0 == "True")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // several status intervals
    let tb = w.search.get("search").await?;
    assert_eq!(tb.status.as_ref().unwrap().remaining_usd.as_deref(), Some("-2.00"));
    let events = events_of(&w.admin, "search", "search").await?;
    assert!(
        overrun_events(&w.admin, "search", "search").await? <= 1,
        "once per period and limit, never after exhaustion"
    );
    assert_eq!(
        events,
        BTreeMap::from([
            ("BudgetExhausted".into(), 1),
            ("ThresholdCrossed/100".into(), 1),
            ("ThresholdCrossed/50".into(), 1),
            ("ThresholdCrossed/80".into(), 1),
        ])
    );
    Ok(())
}

/// A change is followed; an unchanged config is not rewritten. Returns the new hash.
async fn a_change_is_followed(w: &World, hash1: &str) -> Result<String> {
    apply_team_budget(
        &w.ads,
        "ads",
        json!({"team": "ads", "budget": {"limitUSD": "20", "period": "Daily"}}),
    )
    .await?;
    let (hash2, _) = wait_for_config(&w.admin, "new ads limit published", STEP, |c| {
        c.teams[0].budget.as_ref().is_some_and(|b| b.limit.0 == 20 * USD)
    })
    .await;
    assert_ne!(hash1, hash2);
    Ok(hash2)
}

/// An invalid object: Ready=False naming the field, announced once as a Warning event; its
/// last good config stays served.
async fn an_invalid_update_keeps_the_last_good_config(w: &World, hash2: &str) -> Result<()> {
    apply_team_budget(
        &w.ads,
        "ads",
        json!({"team": "ads", "budget": {"limitUSD": "20", "period": "Daily", "timezone": "Mars/Olympus_Mons"}}),
    )
    .await?;
    let tb = wait_for_team_budget(&w.ads, "ads", "ads Ready=False", STEP, |tb| {
        condition(tb, "Ready").is_some_and(|c| c.0 == "False")
    })
    .await;
    let (_, reason, message) = condition(&tb, "Ready").unwrap();
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("spec.budget.timezone") && message.contains("previous valid version"),
        "{message}"
    );
    // Announced once as a Warning event naming the field, not on every pass.
    let invalid = eventually("an InvalidSpec event for ads", STEP, || async {
        Ok(events_of(&w.admin, "ads", "ads")
            .await
            .ok()
            .and_then(|e| e.get("InvalidSpec").copied()))
    })
    .await;
    assert_eq!(invalid, 1);
    let (hash3, config) = published(&w.admin).await?.unwrap();
    assert_eq!(hash3, hash2, "the last good config of ads is kept");
    assert_eq!(config.teams[0].budget.as_ref().unwrap().timezone, "UTC");
    Ok(())
}

/// A new invalid object does not stop others from being served, nor is it served itself.
async fn a_new_invalid_object_is_not_served(w: &World) -> Result<()> {
    apply_team_budget(
        &w.search,
        "broken",
        json!({"team": "broken", "budget": {"limitUSD": "1", "period": "Daily", "timezone": "Nowhere/Land"}}),
    )
    .await?;
    wait_for_team_budget(&w.search, "broken", "broken Ready=False", STEP, |tb| {
        condition(tb, "Ready").is_some_and(|c| c.0 == "False" && c.2.contains("not in the running config"))
    })
    .await;
    let (_, config) = published(&w.admin).await?.unwrap();
    assert!(config.teams.iter().all(|t| t.team != "broken"));
    Ok(())
}

/// Deletion is followed.
async fn deletion_is_followed(w: &World) -> Result<()> {
    w.ads.delete("ads", &DeleteParams::default()).await?;
    wait_for_config(&w.admin, "ads removed from the config", STEP, |c| {
        c.teams.iter().all(|t| t.team != "ads")
    })
    .await;
    Ok(())
}

/// ModelPricing status: Ready, with the model count and the observed generation.
async fn model_pricing_status_is_reported(w: &World) -> Result<()> {
    let (status, generation) = eventually("ModelPricing Ready", STEP, || async {
        let mp = w.pricings.get("aws-list").await?;
        Ok(mp
            .status
            .clone()
            .filter(|s| s.conditions.iter().any(|c| c.type_ == "Ready"))
            .map(|s| (s, mp.metadata.generation)))
    })
    .await;
    assert_eq!(status.models, Some(1));
    assert_eq!(status.observed_generation, generation);
    Ok(())
}

/// /metrics, /healthz, /readyz on the leader and the standby.
async fn metrics_and_probes_are_served(leader: &Replica, standby: &Replica) -> Result<()> {
    let (code, body) = http_get(leader.metrics_port, "/metrics").await?;
    assert_eq!(code, 200);
    assert!(
        body.contains("tally_operator_reconciles_total{kind=\"config\"}"),
        "{body}"
    );
    assert!(body.contains("tally_operator_leader 1"), "{body}");
    assert_eq!(http_get(leader.metrics_port, "/healthz").await?.0, 200);
    assert_eq!(
        http_get(standby.metrics_port, "/readyz").await?.0,
        200,
        "a standby replica is ready"
    );
    assert!(
        http_get(standby.metrics_port, "/metrics")
            .await?
            .1
            .contains("tally_operator_leader 0")
    );
    Ok(())
}

/// Graceful shutdown releases the lease; the standby takes over and reconciles.
async fn the_standby_takes_over_after_a_graceful_shutdown(w: &World, a: Replica, b: Replica) -> Result<()> {
    a.shutdown().await?;
    wait_for_leader(&w.leases, "replica-b", STEP).await;
    apply_team_budget(
        &w.ads,
        "ads",
        json!({"team": "ads", "budget": {"limitUSD": "30", "period": "Daily"}}),
    )
    .await?;
    wait_for_config(&w.admin, "replica-b publishes", STEP, |c| {
        c.teams.iter().any(|t| t.team == "ads")
    })
    .await;
    b.shutdown().await?;
    Ok(())
}
