//! `--redis-cluster`: live spend read through the same cluster client as the ext_proc.

use anyhow::Result;
use kube::api::Api;
use serde_json::json;
use tally_api::crd::TeamBudget;
use tally_config::keys;
use tally_tests::fixtures::redis::RedisCluster;

use crate::cluster::{apiserver_with_crds, apply_team_budget, create_namespaces};
use crate::counters::{set_counter, this_month};
use crate::observe::wait_for_spend;
use crate::replica::start_replica_with;
use crate::{NS, USD};

/// The operator reads live spend for teams whose counters live on different masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reads_spend_from_a_redis_cluster() -> Result<()> {
    let (_kube, admin) = apiserver_with_crds().await?;
    let cluster = RedisCluster::start().await;
    let other = cluster
        .team_on_another_node("search", &["ads", "billing", "chat", "docs", "edge", "fraud", "growth"])
        .await;
    let period = this_month();
    let client = redis::cluster::ClusterClient::new(vec![cluster.url()])?;
    let mut conn = client.get_async_connection().await?;
    for (team, spent) in [("search", 30 * USD), (other, 4 * USD)] {
        let fields = [(keys::field::SPENT, spent), (keys::field::REQUESTS, 3)];
        set_counter(&mut conn, team, &period, &fields).await?;
    }
    create_namespaces(&admin, &[NS, "search", other]).await?;
    let replica = start_replica_with(admin.clone(), Some(&cluster.url()), true, "cluster", vec![]).await?;
    let budget = json!({"limitUSD": "40", "period": "Monthly", "timezone": "UTC"});
    for team in ["search", other] {
        let api: Api<TeamBudget> = Api::namespaced(admin.clone(), team);
        apply_team_budget(&api, team, json!({"team": team, "budget": budget})).await?;
    }
    for (team, spent, remaining) in [("search", "30.00", "10.00"), (other, "4.00", "36.00")] {
        let api: Api<TeamBudget> = Api::namespaced(admin.clone(), team);
        let tb = wait_for_spend(&api, team, &format!("{team} spend from the cluster")).await;
        let s = tb.status.unwrap();
        assert_eq!(
            (s.spent_usd.as_deref(), s.remaining_usd.as_deref(), s.requests),
            (Some(spent), Some(remaining), Some(3)),
            "{team}"
        );
    }
    replica.shutdown().await?;
    Ok(())
}
