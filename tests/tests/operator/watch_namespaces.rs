//! `--watch-namespaces` with the chart's per-namespace Roles, and no Redis.

use std::time::Duration;

use anyhow::Result;
use kube::api::{Api, ListParams};
use serde_json::json;
use tally_api::crd::TeamBudget;

use crate::NS;
use crate::cluster::{
    apiserver_with_crds, apply_team_budget, assert_forbidden, create_namespaces, install_operator_rbac,
};
use crate::observe::{condition, team_names, wait_for_config, wait_for_team_budget};
use crate::replica::start_replica_with;

/// Only the watched namespace's teams are compiled, and their status shows the period with
/// spend `Unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_watches_only_configured_namespaces_without_redis() -> Result<()> {
    let (kube, admin) = apiserver_with_crds().await?;
    create_namespaces(&admin, &[NS, "search", "ads"]).await?;
    let sa = install_operator_rbac(&admin, &["--set", "operator.watchNamespaces={search}"]).await?;
    let operator = kube.service_account_client(NS, &sa).await?;
    // Namespace-scoped RBAC: the operator may not list TeamBudgets elsewhere.
    let elsewhere: Api<TeamBudget> = Api::namespaced(operator.clone(), "ads");
    assert_forbidden(elsewhere.list(&ListParams::default()).await, "ads is not watched");

    let replica = start_replica_with(operator, None, false, "solo", vec!["search".into()]).await?;
    let budget = json!({"limitUSD": "50", "period": "Weekly", "timezone": "Europe/Berlin"});
    let search: Api<TeamBudget> = Api::namespaced(admin.clone(), "search");
    apply_team_budget(&search, "search", json!({"team": "search", "budget": budget})).await?;
    let ads: Api<TeamBudget> = Api::namespaced(admin.clone(), "ads");
    apply_team_budget(&ads, "ads", json!({"team": "ads", "budget": budget})).await?;

    let (_, config) = wait_for_config(&admin, "config with the search team", Duration::from_secs(30), |c| {
        !c.teams.is_empty()
    })
    .await;
    assert_eq!(team_names(&config), ["search"]);
    let tb = wait_for_team_budget(&search, "search", "search status", Duration::from_secs(30), |tb| {
        condition(tb, "BudgetExceeded").is_some()
    })
    .await;
    let s = tb.status.clone().unwrap();
    assert!(s.period_start.is_some() && s.period_end.is_some());
    assert_eq!(s.spent_usd, None, "no Redis, no spend figures");
    assert_eq!(condition(&tb, "Ready").unwrap().0, "True");
    let (status, reason, _) = condition(&tb, "BudgetExceeded").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("Unknown", "NoCounterStore"));
    // The unwatched namespace's object is never touched.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(ads.get("ads").await?.status.is_none());
    replica.shutdown().await?;
    Ok(())
}
