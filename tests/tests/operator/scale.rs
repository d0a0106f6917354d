//! 10,000 teams × 10 workflows × 10 tenants with the shipped catalog (issue #18): created in the
//! real apiserver with server-side apply in parallel, compiled and published by the operator as
//! shard ConfigMaps (the config is several MB of JSON, over the 1 MiB a ConfigMap holds), every
//! team present in what it published, and an ext_proc reading those very files (as the kubelet
//! mounts them) enforcing the budget of the last team created. And when the config does
//! not fit the delivery limits: the last good config stays, the teams it leaves out say
//! `Ready=False` (`ConfigTooLarge`, naming the size and the limit) and a Warning event.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams};
use tally_api::crd::TeamBudget;
use tally_operator::controller::config_map::DeliveryArgs;
use tally_tests::client::Attribution;
use tally_tests::fixtures::admin::get as admin_get;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::fleet::{Fleet, apply_catalog, apply_fleet};

use crate::NS;
use crate::cluster::{apiserver_with_crds, create_namespaces, install_operator_rbac};
use crate::observe::{STEP, condition, events_of, eventually, wait_for_config, wait_for_team_budget};
use crate::replica::{start_replica_delivering, start_replica_with};

/// Every team's limit: 1,000 USD (workflows 100, tenants 200); the last team's is 1 USD.
const LIMIT_CENTS: u64 = 100_000;
const LAST_LIMIT_CENTS: u64 = 100;
/// Concurrent server-side applies while creating the fleet.
const PARALLEL: usize = 32;

/// The fleet's namespaces and the operator's.
async fn namespaces(admin: &Client, fleet: &Fleet) -> Result<()> {
    let mut names = fleet.namespaces();
    names.push(NS.to_string());
    create_namespaces(admin, &names.iter().map(String::as_str).collect::<Vec<_>>()).await
}

/// Writes the published ConfigMaps' keys as files beside `config_path`, shards first and the
/// manifest last, as the kubelet's projected volume holds them.
async fn mount_published(admin: &Client, config_path: &std::path::Path) -> Result<usize> {
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let dir = config_path.parent().context("a config dir")?;
    let mut shards = 0;
    while let Some(cm) = cms.get_opt(&format!("tally-config-shard-{shards}")).await? {
        for (key, bytes) in cm.binary_data.unwrap_or_default() {
            std::fs::write(dir.join(key), bytes.0)?;
        }
        shards += 1;
    }
    let manifest = cms.get("tally-config").await?.data.unwrap_or_default();
    std::fs::write(config_path, manifest.get("config.json").context("no config.json")?)?;
    Ok(shards)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_teams_are_published_complete_and_enforced() -> Result<()> {
    let fleet = Fleet::ISSUE_18;
    let last = fleet.teams - 1;
    // The data path first: it checks its binary is fresh before the long part.
    let stack = Stack::start(StackOptions::new(tally_tests::scenarios::default_config())).await;
    let (kube, admin) = apiserver_with_crds().await?;
    namespaces(&admin, &fleet).await?;
    apply_catalog(&admin).await?;
    let limit = |i| if i == last { LAST_LIMIT_CENTS } else { LIMIT_CENTS };
    let took = apply_fleet(&admin, &fleet, limit, PARALLEL).await?;
    eprintln!(
        "created {} TeamBudgets in {:.1} s ({:.0}/s, {PARALLEL} parallel server-side applies)",
        fleet.teams,
        took.as_secs_f64(),
        fleet.teams as f64 / took.as_secs_f64()
    );
    let sa = install_operator_rbac(&admin, &[]).await?;
    let operator = kube.service_account_client(NS, &sa).await?;
    let started = Instant::now();
    let replica = start_replica_with(operator, None, false, "scale", vec![]).await?;
    let (_, config) = wait_for_config(&admin, "all 10,000 teams published", Duration::from_secs(600), |c| {
        c.teams.len() == fleet.teams
    })
    .await;
    eprintln!(
        "published all teams {:.1} s after the operator started",
        started.elapsed().as_secs_f64()
    );
    let mut published: Vec<&str> = config.teams.iter().map(|t| t.team.as_str()).collect();
    published.sort_unstable();
    let expected: Vec<String> = (0..fleet.teams).map(|i| fleet.team_id(i)).collect();
    assert_eq!(published, expected, "every team is in the published config");
    let team = config.teams.iter().find(|t| t.team == fleet.team_id(last)).unwrap();
    assert_eq!(
        (team.workflows.len(), team.tenants.len()),
        (fleet.workflows, fleet.tenants)
    );
    assert!(!config.catalog.entries.is_empty(), "the shipped catalog is published");

    enforce_from_the_published_files(&admin, &stack, &config.generation).await?;
    let refused = stack
        .client(Attribution::new(
            &fleet.team_id(last),
            &fleet.tenant_id(last, 9),
            "wf-09",
        ))
        .converse(SONNET, "hello")
        .await
        .expect_err("the last team's 0.10 USD workflow cannot cover a Sonnet call's worst case");
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(400),
        "{refused:?}"
    );
    let first = stack.client(Attribution::new(&fleet.team_id(0), &fleet.tenant_id(0, 0), "wf-00"));
    first.converse(SONNET, "hello").await?;
    replica.shutdown().await?;
    Ok(())
}

/// The model the enforcement calls use (priced by the shipped catalog).
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// The published ConfigMaps' files mounted beside the running ext_proc's `--config` (as the
/// kubelet's projected volume holds them): it must assemble the manifest's shards and run
/// `generation`.
async fn enforce_from_the_published_files(admin: &Client, stack: &Stack, generation: &str) -> Result<()> {
    let shards = mount_published(admin, &stack.extproc.config_path()).await?;
    assert!(
        shards > 1,
        "10,000 teams need more than one 768 KiB shard, got {shards}"
    );
    let line = format!("tally_config_info{{generation=\"{generation}\"}} 1");
    let url = stack.extproc.metrics_url("/metrics");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !admin_get(&url).await.is_ok_and(|(_, body)| body.contains(&line)) {
        assert!(
            Instant::now() < deadline,
            "the ext_proc does not run {generation} after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("the ext_proc runs the manifest and its {shards} shards");
    Ok(())
}

/// A config over the delivery limit is not published: the previous one stays in force, and the
/// teams it leaves out say so in `Ready` and a Warning event, naming the size and the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_over_the_limit_keeps_the_last_one_and_says_why() -> Result<()> {
    let (kube, admin) = apiserver_with_crds().await?;
    let fleet = Fleet {
        teams: 300,
        ..Fleet::ISSUE_18
    };
    namespaces(&admin, &fleet).await?;
    let sa = install_operator_rbac(&admin, &[]).await?;
    let operator = kube.service_account_client(NS, &sa).await?;
    let delivery = DeliveryArgs {
        config_shard_bytes: 4096,
        config_max_shards: 2,
    };
    let replica = start_replica_delivering(operator, None, false, "limit", vec![], delivery).await?;
    let small = Fleet { teams: 3, ..fleet };
    apply_fleet(&admin, &small, |_| LIMIT_CENTS, PARALLEL).await?;
    wait_for_config(&admin, "the first 3 teams", STEP, |c| c.teams.len() == 3).await;

    apply_fleet(&admin, &fleet, |_| LIMIT_CENTS, PARALLEL).await?;
    let api: Api<TeamBudget> = Api::namespaced(admin.clone(), &fleet.namespace(299));
    let tb = wait_for_team_budget(&api, &fleet.team_id(299), "Ready=False ConfigTooLarge", STEP, |tb| {
        condition(tb, "Ready").is_some_and(|c| c.1 == "ConfigTooLarge")
    })
    .await;
    let (status, _, message) = condition(&tb, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(message.contains("over the limit of 8192 bytes"), "{message}");
    assert!(message.contains("the previous config stays in force"), "{message}");
    // The Event is posted after the condition is written: wait for it, then count.
    let (ns, name) = (fleet.namespace(299), fleet.team_id(299));
    let events = eventually("the ConfigTooLarge Event", STEP, || async {
        let events = events_of(&admin, &ns, &name).await?;
        Ok(events.contains_key("ConfigTooLarge").then_some(events))
    })
    .await;
    assert_eq!(events.get("ConfigTooLarge"), Some(&1), "{events:?}");
    // The last config that fit (the first 3 teams, or a few more the watch delivered before the
    // limit was reached) stays in force.
    let (_, config) = crate::observe::published(&admin).await?.context("a published config")?;
    assert!(
        config.teams.len() >= 3 && config.teams.len() < fleet.teams,
        "{} teams",
        config.teams.len()
    );
    assert!(!config.teams.iter().any(|t| t.team == fleet.team_id(299)));
    let first: Api<TeamBudget> = Api::namespaced(admin.clone(), &fleet.namespace(0));
    let ready = condition(&first.get(&fleet.team_id(0)).await?, "Ready").unwrap();
    assert_eq!(ready.0, "True", "a team in the running config stays Ready: {ready:?}");

    // Back under the limit: the set is published again and the condition clears.
    for i in 3..fleet.teams {
        let api: Api<TeamBudget> = Api::namespaced(admin.clone(), &fleet.namespace(i));
        api.delete(&fleet.team_id(i), &DeleteParams::default()).await?;
    }
    let api: Api<TeamBudget> = Api::namespaced(admin.clone(), &fleet.namespace(2));
    wait_for_config(&admin, "3 teams again", STEP, |c| c.teams.len() == 3).await;
    wait_for_team_budget(&api, &fleet.team_id(2), "team 2 Ready", STEP, |tb| {
        condition(tb, "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;
    replica.shutdown().await?;
    Ok(())
}
