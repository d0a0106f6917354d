//! One rule for which object loses a conflict (issue #18, defect 5), in the cluster and in
//! `tally render`: the older object by `creationTimestamp` keeps the claim, then `namespace/name`
//! (objects without a timestamp, files never applied, come after). Here the newer object sorts
//! first by name, so a name-only rule would blame the wrong one.

use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use kube::api::Api;
use serde_json::json;
use tally_api::crd::TeamBudget;
use tally_tests::fixtures::tools;

use crate::NS;
use crate::cluster::{apiserver_with_crds, apply_team_budget, create_namespaces, install_operator_rbac};
use crate::observe::{STEP, condition, wait_for_config, wait_for_team_budget};
use crate::replica::start_replica_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_older_object_keeps_a_claim_in_the_cluster_and_in_render() -> Result<()> {
    let (kube, admin) = apiserver_with_crds().await?;
    create_namespaces(&admin, &[NS, "aa", "zz"]).await?;
    let sa = install_operator_rbac(&admin, &[]).await?;
    let operator = kube.service_account_client(NS, &sa).await?;
    let replica = start_replica_with(operator, None, false, "solo", vec![]).await?;
    let (older, newer): (Api<TeamBudget>, Api<TeamBudget>) = (
        Api::namespaced(admin.clone(), "zz"),
        Api::namespaced(admin.clone(), "aa"),
    );
    let spec = json!({"team": "shared", "budget": {"limitUSD": "5", "period": "Daily"}});
    apply_team_budget(&older, "first", spec.clone()).await?;
    wait_for_config(&admin, "zz/first served", STEP, |c| {
        c.teams.iter().any(|t| t.source == "zz/first")
    })
    .await;
    // creationTimestamp has one-second resolution: make "older" unambiguous.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apply_team_budget(&newer, "second", spec).await?;
    let loser = wait_for_team_budget(&newer, "second", "aa/second Ready=False", STEP, |tb| {
        condition(tb, "Ready").is_some_and(|c| c.0 == "False")
    })
    .await;
    let message = condition(&loser, "Ready").unwrap().2;
    assert!(message.contains("already declared by TeamBudget zz/first"), "{message}");
    let winner = older.get("first").await?;
    assert_eq!(condition(&winner, "Ready").unwrap().0, "True");

    // The same two objects as the cluster has them, timestamps included, through `tally render`.
    let dir = tempfile::tempdir()?;
    for tb in [&loser, &winner] {
        let mut doc = serde_json::to_value(tb)?;
        doc["status"] = serde_json::Value::Null;
        let path = dir
            .path()
            .join(format!("{}.yaml", tb.metadata.namespace.as_deref().unwrap_or("")));
        std::fs::write(path, serde_yaml::to_string(&doc)?)?;
    }
    let out = Command::new(tools::workspace_binary("tally", "tally-operator", "operator"))
        .arg("render")
        .arg(dir.path())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        bail!("render must refuse the conflict:\n{text}");
    }
    assert!(
        text.contains("aa/second") && text.contains("already declared by TeamBudget zz/first"),
        "render blames the newer object, as the cluster does:\n{text}"
    );
    assert!(!text.contains("already declared by TeamBudget aa/second"), "{text}");
    replica.shutdown().await?;
    Ok(())
}
