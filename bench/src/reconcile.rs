//! Reconcile latency with 10,000 teams (issue #18 item 5): from a changed TeamBudget limit to the
//! ext_proc enforcing it, and from traffic to the spend in the TeamBudget's status.
//!
//! Real kube-apiserver + etcd, the operator in-process (`controller::run`, as `tally operator`
//! runs it), Redis, Envoy, the simulated Bedrock and `tally-extproc` reading the published
//! ConfigMaps' files. The kubelet is not here: a mirror task copies the ConfigMaps into the
//! ext_proc's config directory as soon as they change (shards first, manifest last), so the
//! figures exclude the kubelet's ConfigMap-volume sync (up to its `syncFrequency` + cache TTL,
//! ~60–90 s in a default cluster), which a real cluster adds to the apply→enforce figure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use serde::Serialize;
use serde_json::json;
use tally_api::crd::{ModelPricing, TeamBudget};
use tally_operator::controller::{self, OperatorArgs};
use tally_store::args::RedisArgs;
use tally_tests::client::Attribution;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::fleet::{Fleet, apply_catalog, apply_fleet};
use tally_tests::kube_apiserver::KubeApiServer;
use tokio::sync::Mutex;

/// The operator's namespace.
const NS: &str = "tally-system";
const CONFIG_MAP: &str = "tally-config";
const LIMIT_CENTS: u64 = 100_000;
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
/// The operator's default `--status-interval`.
const STATUS_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub team: String,
    /// Apply → the operator's manifest for the new generation is in the API server.
    pub apply_to_published_s: f64,
    /// Published → the ext_proc runs it (`tally_config_info`), excluding the kubelet's sync.
    pub published_to_enforced_s: f64,
    /// Apply → enforced, and a call of the team is refused.
    pub apply_to_enforced_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReconcileResult {
    pub teams: usize,
    pub create_s: f64,
    pub first_publish_s: f64,
    pub config_json_bytes: u64,
    pub config_compressed_bytes: u64,
    pub shards: usize,
    pub rounds: Vec<Round>,
    /// A settled call → its spend in the TeamBudget's status, per round.
    pub traffic_to_status_s: Vec<f64>,
    pub status_interval_s: f64,
}

/// Runs the phase: `rounds` limit changes, and as many calls followed to the status.
pub async fn phase(rounds: usize) -> Result<ReconcileResult> {
    let fleet = Fleet::ISSUE_18;
    let stack = Stack::start(StackOptions::new(tally_tests::scenarios::default_config())).await;
    let kube = KubeApiServer::start().await?;
    let admin = kube.admin_client().await?;
    install_crds(&admin).await?;
    let mut names = fleet.namespaces();
    names.push(NS.into());
    for name in &names {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        Api::<Namespace>::all(admin.clone())
            .patch(name, &params(), &Patch::Apply(&ns))
            .await?;
    }
    apply_catalog(&admin).await?;
    let create = apply_fleet(&admin, &fleet, |_| LIMIT_CENTS, 32).await?;
    eprintln!("created {} TeamBudgets in {:.1} s", fleet.teams, create.as_secs_f64());

    let mirror = Mirror::start(admin.clone(), stack.extproc.config_path());
    let started = Instant::now();
    let (stop, operator) = start_operator(admin.clone(), &stack.redis.url()).await?;
    let generation = mirror
        .wait_for(|m| m.teams == fleet.teams, Duration::from_secs(900))
        .await?;
    let first_publish = started.elapsed();
    wait_enforced(&stack, &generation.generation, Duration::from_secs(120)).await?;
    eprintln!("first publish {:.1} s", first_publish.as_secs_f64());

    let mut result = ReconcileResult {
        teams: fleet.teams,
        create_s: create.as_secs_f64(),
        first_publish_s: first_publish.as_secs_f64(),
        config_json_bytes: generation.json_bytes,
        config_compressed_bytes: generation.compressed_bytes,
        shards: generation.shards,
        rounds: vec![],
        traffic_to_status_s: vec![],
        status_interval_s: STATUS_INTERVAL.as_secs_f64(),
    };
    for round in 0..rounds {
        let r = limit_round(&admin, &stack, &mirror, &fleet, 5_000 + round * 997).await?;
        eprintln!("{r:?}");
        result.rounds.push(r);
        let s = traffic_round(&admin, &stack, &fleet, 100 + round * 331).await?;
        eprintln!("traffic → status {s:.1} s");
        result.traffic_to_status_s.push(s);
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), operator).await;
    Ok(result)
}

fn params() -> PatchParams {
    PatchParams::apply("tally-bench").force()
}

/// The CRDs from the types (the same the `crds/` files are generated from), Established.
async fn install_crds(admin: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for crd in [TeamBudget::crd(), ModelPricing::crd()] {
        let name = crd.metadata.name.clone().context("a named CRD")?;
        api.patch(&name, &params(), &Patch::Apply(&crd)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let conditions = api
                .get(&name)
                .await?
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "CRD {name} not established in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// `tally operator` in-process, as the admin, with the product's defaults.
async fn start_operator(
    client: Client,
    redis_url: &str,
) -> Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), controller::Error>>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let args = OperatorArgs {
        config_map_name: CONFIG_MAP.into(),
        config_map_namespace: Some(NS.into()),
        kubeconfig: None,
        redis: RedisArgs {
            url: Some(redis_url.into()),
            cluster: false,
            ca_file: None,
            password: None,
        },
        status_interval: STATUS_INTERVAL,
        metrics_listen: listener.local_addr()?,
        leader_election_namespace: Some(NS.into()),
        lease_name: "tally-operator".into(),
        lease_duration: Duration::from_secs(15),
        identity: Some("bench".into()),
        watch_namespaces: vec![],
        delivery: Default::default(),
        webhook: Default::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller::run(args, client, listener, async move {
        let _ = stopped.await;
    }));
    Ok((stop, task))
}

/// What the mirror last copied.
#[derive(Debug, Clone, Default)]
struct Copied {
    generation: String,
    teams: usize,
    json_bytes: u64,
    compressed_bytes: u64,
    shards: usize,
    at: Option<Instant>,
}

/// Stands in for the kubelet: copies the published ConfigMaps into the ext_proc's config
/// directory within ~100 ms of a change (a kubelet takes up to a minute or more).
struct Mirror {
    last: Arc<Mutex<Copied>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Mirror {
    fn start(admin: Client, config_path: PathBuf) -> Mirror {
        let last = Arc::new(Mutex::new(Copied::default()));
        let shared = last.clone();
        let task = tokio::spawn(async move {
            let cms: Api<ConfigMap> = Api::namespaced(admin, NS);
            loop {
                let known = shared.lock().await.generation.clone();
                match copy(&cms, &config_path, &known).await {
                    Ok(Some(copied)) => *shared.lock().await = copied,
                    Ok(None) => {}
                    Err(e) => eprintln!("mirror: {e:#}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Mirror { last, _task: task }
    }

    /// Waits until a copied generation satisfies `ready`.
    async fn wait_for(&self, ready: impl Fn(&Copied) -> bool, timeout: Duration) -> Result<Copied> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.last.lock().await.clone();
            if last.at.is_some() && ready(&last) {
                return Ok(last);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no such config published in {timeout:?}: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Copies the published set if its hash is not `known`: shards first, the manifest last.
async fn copy(cms: &Api<ConfigMap>, config_path: &Path, known: &str) -> Result<Option<Copied>> {
    let Some(manifest_cm) = cms.get_opt(CONFIG_MAP).await? else {
        return Ok(None);
    };
    let text = manifest_cm
        .data
        .unwrap_or_default()
        .remove("config.json")
        .unwrap_or_default();
    let tally_config::wire::FileContent::Manifest(manifest) = tally_config::wire::decode_file(text.as_bytes())? else {
        anyhow::bail!("config.json is not a manifest");
    };
    if manifest.generation == known {
        return Ok(None);
    }
    let dir = config_path.parent().context("a config dir")?;
    let mut shards = vec![];
    for (i, named) in manifest.shards.iter().enumerate() {
        let cm = cms.get(&format!("{CONFIG_MAP}-shard-{i}")).await?;
        let bytes = cm
            .binary_data
            .unwrap_or_default()
            .remove(&named.file)
            .context("a shard")?
            .0;
        std::fs::write(dir.join(&named.file), &bytes)?;
        shards.push(Some(bytes));
    }
    // A set caught mid-write is simply copied again on the next poll.
    let Ok(config) = tally_config::wire::assemble(&manifest, &shards) else {
        return Ok(None);
    };
    let tmp = dir.join("config.json.tmp");
    std::fs::write(&tmp, &text)?;
    std::fs::rename(&tmp, config_path)?;
    Ok(Some(Copied {
        generation: manifest.generation.clone(),
        teams: config.teams.len(),
        json_bytes: manifest.json_bytes,
        compressed_bytes: manifest.shards.iter().map(|s| s.bytes).sum(),
        shards: manifest.shards.len(),
        at: Some(Instant::now()),
    }))
}

/// Waits until the ext_proc's `tally_config_info` names `generation`.
async fn wait_enforced(stack: &Stack, generation: &str, timeout: Duration) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    let line = format!("tally_config_info{{generation=\"{generation}\"}} 1");
    loop {
        // Not `metrics()`, which panics on a slow answer.
        let url = stack.extproc.metrics_url("/metrics");
        if tally_tests::fixtures::admin::get(&url)
            .await
            .is_ok_and(|(_, body)| body.contains(&line))
        {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the ext_proc did not run {generation} in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lowers team `i`'s limit to 0.10 USD (workflows 0.01) and times it through to a refused call.
async fn limit_round(admin: &Client, stack: &Stack, mirror: &Mirror, fleet: &Fleet, i: usize) -> Result<Round> {
    let team = fleet.team_id(i);
    let before = mirror.last.lock().await.generation.clone();
    let api: Api<TeamBudget> = Api::namespaced(admin.clone(), &fleet.namespace(i));
    let applied = Instant::now();
    api.patch(&team, &params(), &Patch::Apply(&fleet.manifest(i, 10)))
        .await?;
    let copied = mirror
        .wait_for(|c| c.generation != before, Duration::from_secs(300))
        .await?;
    let published = copied.at.context("copied")?;
    let enforced = wait_enforced(stack, &copied.generation, Duration::from_secs(60)).await?;
    let client = stack.client(Attribution::new(&team, &fleet.tenant_id(i, 0), "wf-00"));
    let refused = client.converse(SONNET, "hello").await;
    anyhow::ensure!(
        refused.is_err(),
        "{team}: the call after the new 0.10 USD limit was admitted"
    );
    Ok(Round {
        team,
        apply_to_published_s: (published - applied).as_secs_f64(),
        published_to_enforced_s: (enforced - published).as_secs_f64(),
        apply_to_enforced_s: (enforced - applied).as_secs_f64(),
    })
}

/// One call of team `i`, then the time until its TeamBudget's status counts it.
async fn traffic_round(admin: &Client, stack: &Stack, fleet: &Fleet, i: usize) -> Result<f64> {
    let team = fleet.team_id(i);
    let client = stack.client(Attribution::new(&team, &fleet.tenant_id(i, 0), "wf-00"));
    client.converse(SONNET, "hello").await.context("a call within budget")?;
    let settled = Instant::now();
    let api: Api<TeamBudget> = Api::namespaced(admin.clone(), &fleet.namespace(i));
    let deadline = settled + STATUS_INTERVAL * 10;
    loop {
        // `requests`: the call's spend (a fraction of a cent) shows as 0.00 in `spentUSD`.
        let requests = api.get(&team).await?.status.and_then(|s| s.requests);
        if requests.is_some_and(|n| n > 0) {
            return Ok(settled.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{team}: no spend in status after {:?}",
            STATUS_INTERVAL * 10
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
