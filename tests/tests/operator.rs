//! `tally operator` against a real kube-apiserver + etcd (built by `scripts/tools/kube.sh`) with
//! `--authorization-mode=RBAC`, and a real redis-server.
//!
//! The operator authenticates as the chart's ServiceAccount (token from a TokenRequest) bound by
//! the chart's own `operator-rbac.yaml` rendered with `helm template`: a verb missing from the
//! chart fails this test. Everything else (CRDs, objects, counters) is set up as an admin.
//!
//! Needs: `scripts/tools/kube.sh`, `scripts/tools/helm.sh`, `scripts/tools/redis.sh`.
//! Run: `cargo test -p tally-tests --test operator`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::json;
use tally_api::crd::{ModelPricing, TeamBudget};
use tally_config::compiled::CompiledConfig;
use tally_config::keys;
use tally_operator::controller::{self, OperatorArgs};
use tally_tests::fixtures::redis::{RedisCluster, RedisServer};
use tally_tests::kube_apiserver::{KubeApiServer, tool_bin};
use tokio::sync::oneshot;

const NS: &str = "tally-system";
const USD: i64 = 1_000_000_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Polls `check` until it returns `Ok(Some(_))`, failing with its last error after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match check().await {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Seeds a team's counters for `period` as the ext_proc would have left them.
async fn set_team(
    redis: &RedisServer,
    team: &str,
    period: &str,
    spent: i64,
    reserved: i64,
    requests: i64,
) -> Result<()> {
    let mut conn = redis.connection().await;
    let key = keys::counter(team, period, &keys::Scope::Team);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg(keys::field::SPENT)
        .arg(spent)
        .arg(keys::field::RESERVED)
        .arg(reserved)
        .arg(keys::field::REQUESTS)
        .arg(requests)
        .arg(keys::field::BLOCKED)
        .arg(0)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// A real kube-apiserver with the CRDs installed, and its admin client (operator logs to the test output).
async fn apiserver_with_crds() -> Result<(KubeApiServer, Client)> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("tally_operator=debug,kube=warn,kube_client::client::builder=off")
        .with_test_writer()
        .try_init();
    let kube = KubeApiServer::start().await?;
    let admin = kube.admin_client().await?;
    install_crds(&admin).await?;
    Ok((kube, admin))
}

/// Applies every CRD in `crds/` and waits until each is Established.
async fn install_crds(admin: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let mut names = vec![];
    let dir = workspace().join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    files.sort_by_key(|e| e.path());
    for file in files
        .iter()
        .filter(|f| f.path().extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(file.path())?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)?;
            if value.is_null() {
                continue;
            }
            let crd: CustomResourceDefinition = serde_yaml::from_value(value)?;
            let name = crd.name_any();
            crds.patch(&name, &PatchParams::apply("tally-test").force(), &Patch::Apply(&crd))
                .await?;
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
async fn install_operator_rbac(admin: &Client, helm_args: &[&str]) -> Result<String> {
    let helm = tool_bin("helm");
    if !helm.exists() {
        bail!("{} not found: run `scripts/tools/helm.sh`", helm.display());
    }
    let out = Command::new(&helm)
        .args(["template", "tally"])
        .arg(workspace().join("charts/tally"))
        .args(["--namespace", NS, "--show-only", "templates/operator-rbac.yaml"])
        .args(helm_args)
        .output()?;
    if !out.status.success() {
        bail!("helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout)?;
    let pp = PatchParams::apply("tally-test").force();
    let mut sa_name = None;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ns = value["metadata"]["namespace"].as_str().unwrap_or(NS).to_string();
        match kind.as_str() {
            "ServiceAccount" => {
                let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
                api.patch(
                    &name,
                    &pp,
                    &Patch::Apply(serde_yaml::from_value::<ServiceAccount>(value)?),
                )
                .await?;
                sa_name = Some(name);
            }
            "ClusterRole" => {
                let api: Api<ClusterRole> = Api::all(admin.clone());
                api.patch(&name, &pp, &Patch::Apply(serde_yaml::from_value::<ClusterRole>(value)?))
                    .await?;
            }
            "ClusterRoleBinding" => {
                let api: Api<ClusterRoleBinding> = Api::all(admin.clone());
                api.patch(
                    &name,
                    &pp,
                    &Patch::Apply(serde_yaml::from_value::<ClusterRoleBinding>(value)?),
                )
                .await?;
            }
            "Role" => {
                let api: Api<Role> = Api::namespaced(admin.clone(), &ns);
                api.patch(&name, &pp, &Patch::Apply(serde_yaml::from_value::<Role>(value)?))
                    .await?;
            }
            "RoleBinding" => {
                let api: Api<RoleBinding> = Api::namespaced(admin.clone(), &ns);
                api.patch(&name, &pp, &Patch::Apply(serde_yaml::from_value::<RoleBinding>(value)?))
                    .await?;
            }
            other => bail!("unexpected kind {other:?} in operator-rbac.yaml"),
        }
    }
    sa_name.context("operator-rbac.yaml renders no ServiceAccount")
}

async fn create_namespace(admin: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(admin.clone());
    api.patch(
        name,
        &PatchParams::apply("tally-test"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
    )
    .await?;
    Ok(())
}

/// Creates (or replaces the spec of) an object as the admin, retrying while discovery of a fresh
/// CRD catches up.
async fn apply<K>(api: &Api<K>, name: &str, body: serde_json::Value) -> Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut tries = 0;
    loop {
        match api
            .patch(name, &PatchParams::apply("tally-test").force(), &Patch::Apply(&body))
            .await
        {
            Ok(o) => return Ok(o),
            Err(kube::Error::Api(e)) if e.code == 404 && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn team_budget(ns: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "tally.dev/v1alpha1", "kind": "TeamBudget", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

async fn published(admin: &Client) -> Result<Option<(String, CompiledConfig)>> {
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let Some(cm) = cms.get_opt("tally-config").await? else {
        return Ok(None);
    };
    let hash = cm
        .annotations()
        .get("tally.dev/config-hash")
        .cloned()
        .context("no hash annotation")?;
    let json = cm
        .data
        .and_then(|d| d.get("config.json").cloned())
        .context("no config.json")?;
    let config = CompiledConfig::from_json(json.as_bytes())?;
    assert_eq!(hash, config.generation, "the annotation is the content hash");
    Ok(Some((hash, config)))
}

async fn events_of(admin: &Client, ns: &str, name: &str) -> Result<BTreeMap<String, usize>> {
    let api: Api<Event> = Api::namespaced(admin.clone(), ns);
    let mut counts = BTreeMap::new();
    let list = api.list(&ListParams::default()).await?;
    if list.items.is_empty() {
        bail!("no events in namespace {ns}");
    }
    for e in list {
        if e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) {
            let reason = e.reason.unwrap_or_default();
            let note = e.note.unwrap_or_default();
            let key = if reason == "ThresholdCrossed" {
                let pct = note
                    .split("reached ")
                    .nth(1)
                    .and_then(|s| s.split('%').next())
                    .unwrap_or("?")
                    .to_string();
                format!("ThresholdCrossed/{pct}")
            } else {
                reason
            };
            *counts.entry(key).or_default() += e.series.map_or(1, |s| s.count as usize);
        }
    }
    Ok(counts)
}

fn condition(tb: &TeamBudget, type_: &str) -> Option<(String, String, String)> {
    let status = tb.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == type_)?;
    Some((format!("{:?}", c.status), c.reason.clone(), c.message.clone()))
}

async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    let code = buf.split_whitespace().nth(1).context("no status line")?.parse()?;
    Ok((code, buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()))
}

struct Replica {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), controller::Error>>,
    metrics_port: u16,
}

async fn start_replica(client: Client, redis_url: &str, identity: &str) -> Result<Replica> {
    start_replica_with(client, Some(redis_url), false, identity, vec![]).await
}

async fn start_replica_with(
    client: Client,
    redis_url: Option<&str>,
    redis_cluster: bool,
    identity: &str,
    watch_namespaces: Vec<String>,
) -> Result<Replica> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let metrics_port = listener.local_addr()?.port();
    let args = OperatorArgs {
        config_map_name: "tally-config".into(),
        config_map_namespace: Some(NS.into()),
        redis_url: redis_url.map(Into::into),
        redis_cluster,
        redis_ca_file: None,
        redis_password: None,
        status_interval: Duration::from_millis(500),
        metrics_listen: listener.local_addr()?,
        leader_election_namespace: Some(NS.into()),
        lease_name: "tally-operator".into(),
        lease_duration: Duration::from_secs(3),
        identity: Some(identity.into()),
        watch_namespaces,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(controller::run(args, client, listener, async move {
        let _ = stopped.await;
    }));
    Ok(Replica {
        stop: Some(stop),
        task,
        metrics_port,
    })
}

impl Replica {
    async fn shutdown(mut self) -> Result<()> {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .context("operator did not stop in 20 s")???;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reconciles_config_status_and_events_with_chart_rbac() -> Result<()> {
    let (kube, admin) = apiserver_with_crds().await?;
    create_namespace(&admin, NS).await?;
    create_namespace(&admin, "search").await?;
    create_namespace(&admin, "ads").await?;

    // --- CEL validation rules reject bad objects with their messages.
    let tbs_search: Api<TeamBudget> = Api::namespaced(admin.clone(), "search");
    let err = tbs_search
        .create(
            &PostParams::default(),
            &serde_json::from_value(team_budget(
                "search",
                "bad",
                json!({"team": "bad", "tenants": [{"id": "acme", "limitUSD": "5"}]}),
            ))?,
        )
        .await
        .expect_err("a tenant limit without a budget must be refused");
    assert!(
        err.to_string()
            .contains("tenant and workflow limitUSD need spec.budget"),
        "{err}"
    );
    let err = tbs_search
        .create(
            &PostParams::default(),
            &serde_json::from_value(team_budget(
                "search",
                "bad",
                json!({"team": "bad", "budget": {"limitUSD": "5", "period": "Daily", "alertThresholds": [80, 50]}}),
            ))?,
        )
        .await
        .expect_err("descending thresholds must be refused");
    assert!(
        err.to_string().contains("alertThresholds must be strictly ascending"),
        "{err}"
    );

    // --- The operator runs with the chart's RBAC only.
    let sa = install_operator_rbac(&admin, &[]).await?;
    let operator = kube.service_account_client(NS, &sa).await?;
    let secrets: Api<Secret> = Api::all(operator.clone());
    let denied = secrets
        .list(&ListParams::default())
        .await
        .expect_err("the operator must not read secrets");
    assert!(matches!(&denied, kube::Error::Api(e) if e.code == 403), "{denied}");

    let redis = RedisServer::start(false).await;
    let period = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string();
    set_team(&redis, "search", &period, 85 * USD, 2 * USD, 42).await?;

    let a = start_replica(operator.clone(), &redis.url(), "replica-a").await?;
    // The first replica leads; a second one waits.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NS);
    eventually("replica-a holds the lease", Duration::from_secs(30), || async {
        Ok(leases
            .get_opt("tally-operator")
            .await?
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| h.starts_with("replica-a")))
    })
    .await;
    let b = start_replica(operator.clone(), &redis.url(), "replica-b").await?;

    // --- Objects in, config out.
    let pricings: Api<ModelPricing> = Api::all(admin.clone());
    apply(&pricings, "aws-list", json!({
        "apiVersion": "tally.dev/v1alpha1", "kind": "ModelPricing", "metadata": {"name": "aws-list"},
        "spec": {"source": "test", "effectiveFrom": "2026-01-01", "models": [
            {"match": "anthropic.claude-sonnet-4-*", "inputPerMillion": "3", "outputPerMillion": "15", "maxOutputTokens": 8192}
        ]}
    }))
    .await?;
    apply(&tbs_search, "search", team_budget("search", "search", json!({
        "team": "search", "budget": {"limitUSD": "100", "period": "Monthly", "timezone": "UTC", "alertThresholds": [50, 80, 100]}
    })))
    .await?;
    let tbs_ads: Api<TeamBudget> = Api::namespaced(admin.clone(), "ads");
    apply(
        &tbs_ads,
        "ads",
        team_budget(
            "ads",
            "ads",
            json!({"team": "ads", "budget": {"limitUSD": "10", "period": "Daily"}}),
        ),
    )
    .await?;

    let (hash1, config) = eventually("config with both teams", Duration::from_secs(30), || async {
        Ok(published(&admin)
            .await?
            .filter(|(_, c)| c.teams.len() == 2 && !c.catalog.entries.is_empty()))
    })
    .await;
    assert_eq!(
        config.teams.iter().map(|t| t.team.as_str()).collect::<Vec<_>>(),
        ["ads", "search"]
    );
    assert_eq!(config.teams[1].source, "search/search");
    assert_eq!(config.teams[1].budget.as_ref().unwrap().limit.0, 100 * USD);
    assert_eq!(config.catalog.entries[0].pattern, "anthropic.claude-sonnet-4-*");

    // --- Live status from the seeded counters.
    let tb = eventually("search status from Redis", Duration::from_secs(30), || async {
        let tb = tbs_search.get("search").await?;
        Ok(tb
            .status
            .as_ref()
            .and_then(|s| s.spent_usd.clone())
            .is_some()
            .then_some(tb))
    })
    .await;
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
            .starts_with(&format!("{period}-01T00:00:00")),
        "{:?}",
        s.period_start
    );
    assert_eq!(condition(&tb, "Ready").unwrap().0, "True");
    assert_eq!(condition(&tb, "ThresholdCrossed").unwrap().0, "True");
    assert_eq!(condition(&tb, "BudgetExceeded").unwrap().0, "False");
    let events = eventually("threshold events", Duration::from_secs(20), || async {
        let e = events_of(&admin, "search", "search").await?;
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

    // --- Exhaustion: the condition flips and one event is raised, once.
    set_team(&redis, "search", &period, 99 * USD, 3 * USD, 50).await?;
    eventually("BudgetExceeded", Duration::from_secs(20), || async {
        let tb = tbs_search.get("search").await?;
        Ok((condition(&tb, "BudgetExceeded").map(|c| c.0) == Some("True".into())).then_some(()))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // several status intervals
    let tb = tbs_search.get("search").await?;
    assert_eq!(tb.status.as_ref().unwrap().remaining_usd.as_deref(), Some("-2.00"));
    let events = events_of(&admin, "search", "search").await?;
    assert_eq!(
        events,
        BTreeMap::from([
            ("BudgetExhausted".into(), 1),
            ("ThresholdCrossed/100".into(), 1),
            ("ThresholdCrossed/50".into(), 1),
            ("ThresholdCrossed/80".into(), 1),
        ])
    );

    // --- A change is followed; an unchanged config is not rewritten.
    apply(
        &tbs_ads,
        "ads",
        team_budget(
            "ads",
            "ads",
            json!({"team": "ads", "budget": {"limitUSD": "20", "period": "Daily"}}),
        ),
    )
    .await?;
    let (hash2, _) = eventually("new ads limit published", Duration::from_secs(20), || async {
        Ok(published(&admin)
            .await?
            .filter(|(_, c)| c.teams[0].budget.as_ref().is_some_and(|b| b.limit.0 == 20 * USD)))
    })
    .await;
    assert_ne!(hash1, hash2);

    // --- An invalid object: Ready=False naming the field; its last good config stays served.
    apply(
        &tbs_ads,
        "ads",
        team_budget(
            "ads",
            "ads",
            json!({"team": "ads", "budget": {"limitUSD": "20", "period": "Daily", "timezone": "Mars/Olympus_Mons"}}),
        ),
    )
    .await?;
    let (reason, message) = eventually("ads Ready=False", Duration::from_secs(20), || async {
        let tb = tbs_ads.get("ads").await?;
        Ok(condition(&tb, "Ready").filter(|c| c.0 == "False").map(|c| (c.1, c.2)))
    })
    .await;
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("spec.budget.timezone") && message.contains("previous valid version"),
        "{message}"
    );
    // Announced once as a Warning event naming the field, not on every pass.
    let invalid = eventually("an InvalidSpec event for ads", Duration::from_secs(20), || async {
        Ok(events_of(&admin, "ads", "ads")
            .await
            .ok()
            .and_then(|e| e.get("InvalidSpec").copied()))
    })
    .await;
    assert_eq!(invalid, 1);
    let (hash3, config) = published(&admin).await?.unwrap();
    assert_eq!(hash3, hash2, "the last good config of ads is kept");
    assert_eq!(config.teams[0].budget.as_ref().unwrap().timezone, "UTC");
    // A new invalid object does not stop others from being served, nor is it served itself.
    apply(
        &tbs_search,
        "broken",
        team_budget(
            "search",
            "broken",
            json!({"team": "broken", "budget": {"limitUSD": "1", "period": "Daily", "timezone": "Nowhere/Land"}}),
        ),
    )
    .await?;
    eventually("broken Ready=False", Duration::from_secs(20), || async {
        let tb = tbs_search.get("broken").await?;
        Ok(condition(&tb, "Ready")
            .filter(|c| c.0 == "False" && c.2.contains("not in the running config"))
            .map(|_| ()))
    })
    .await;
    assert!(
        published(&admin)
            .await?
            .unwrap()
            .1
            .teams
            .iter()
            .all(|t| t.team != "broken")
    );

    // --- Deletion is followed.
    tbs_ads.delete("ads", &DeleteParams::default()).await?;
    eventually("ads removed from the config", Duration::from_secs(20), || async {
        Ok(published(&admin)
            .await?
            .filter(|(_, c)| c.teams.iter().all(|t| t.team != "ads"))
            .map(|_| ()))
    })
    .await;

    // --- ModelPricing status.
    let mp = eventually("ModelPricing Ready", Duration::from_secs(20), || async {
        let mp = pricings.get("aws-list").await?;
        Ok(mp
            .status
            .clone()
            .filter(|s| s.conditions.iter().any(|c| c.type_ == "Ready"))
            .map(|s| (s, mp.metadata.generation)))
    })
    .await;
    assert_eq!(mp.0.models, Some(1));
    assert_eq!(mp.0.observed_generation, mp.1);

    // --- /metrics, /healthz, /readyz.
    let (code, body) = http_get(a.metrics_port, "/metrics").await?;
    assert_eq!(code, 200);
    assert!(
        body.contains("tally_operator_reconciles_total{kind=\"config\"}"),
        "{body}"
    );
    assert!(body.contains("tally_operator_leader 1"), "{body}");
    assert_eq!(http_get(a.metrics_port, "/healthz").await?.0, 200);
    assert_eq!(
        http_get(b.metrics_port, "/readyz").await?.0,
        200,
        "a standby replica is ready"
    );
    assert!(
        http_get(b.metrics_port, "/metrics")
            .await?
            .1
            .contains("tally_operator_leader 0")
    );

    // --- Graceful shutdown releases the lease; the standby takes over and reconciles.
    a.shutdown().await?;
    eventually("replica-b holds the lease", Duration::from_secs(20), || async {
        Ok(leases
            .get_opt("tally-operator")
            .await?
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| h.starts_with("replica-b"))
            .map(|_| ()))
    })
    .await;
    apply(
        &tbs_ads,
        "ads",
        team_budget(
            "ads",
            "ads",
            json!({"team": "ads", "budget": {"limitUSD": "30", "period": "Daily"}}),
        ),
    )
    .await?;
    eventually("replica-b publishes", Duration::from_secs(20), || async {
        Ok(published(&admin)
            .await?
            .filter(|(_, c)| c.teams.iter().any(|t| t.team == "ads"))
            .map(|_| ()))
    })
    .await;
    b.shutdown().await?;
    drop(kube);
    Ok(())
}

/// `--watch-namespaces` with the chart's per-namespace Roles, and no Redis: only the watched
/// namespace's teams are compiled, and their status shows the period with spend `Unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_watches_only_configured_namespaces_without_redis() -> Result<()> {
    let (kube, admin) = apiserver_with_crds().await?;
    for ns in [NS, "search", "ads"] {
        create_namespace(&admin, ns).await?;
    }
    let sa = install_operator_rbac(&admin, &["--set", "operator.watchNamespaces={search}"]).await?;
    let operator = kube.service_account_client(NS, &sa).await?;
    // Namespace-scoped RBAC: the operator may not list TeamBudgets elsewhere.
    let elsewhere: Api<TeamBudget> = Api::namespaced(operator.clone(), "ads");
    let denied = elsewhere
        .list(&ListParams::default())
        .await
        .expect_err("ads is not watched");
    assert!(matches!(&denied, kube::Error::Api(e) if e.code == 403), "{denied}");

    let replica = start_replica_with(operator, None, false, "solo", vec!["search".into()]).await?;
    let budget = json!({"limitUSD": "50", "period": "Weekly", "timezone": "Europe/Berlin"});
    let search: Api<TeamBudget> = Api::namespaced(admin.clone(), "search");
    apply(
        &search,
        "search",
        team_budget("search", "search", json!({"team": "search", "budget": budget})),
    )
    .await?;
    let ads: Api<TeamBudget> = Api::namespaced(admin.clone(), "ads");
    apply(
        &ads,
        "ads",
        team_budget("ads", "ads", json!({"team": "ads", "budget": budget})),
    )
    .await?;

    let (_, config) = eventually("config with the search team", Duration::from_secs(30), || async {
        Ok(published(&admin).await?.filter(|(_, c)| !c.teams.is_empty()))
    })
    .await;
    assert_eq!(
        config.teams.iter().map(|t| t.team.as_str()).collect::<Vec<_>>(),
        ["search"]
    );
    let tb = eventually("search status", Duration::from_secs(30), || async {
        let tb = search.get("search").await?;
        Ok(condition(&tb, "BudgetExceeded").is_some().then_some(tb))
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

/// `--redis-cluster`: the operator reads live spend through the same cluster client as the
/// ext_proc, for teams whose counters live on different masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reads_spend_from_a_redis_cluster() -> Result<()> {
    let (_kube, admin) = apiserver_with_crds().await?;
    let cluster = RedisCluster::start().await;
    let other = cluster
        .team_on_another_node("search", &["ads", "billing", "chat", "docs", "edge", "fraud", "growth"])
        .await;
    let period = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string();
    let client = redis::cluster::ClusterClient::new(vec![cluster.url()])?;
    let mut conn = client.get_async_connection().await?;
    for (team, spent) in [("search", 30 * USD), (other, 4 * USD)] {
        let _: () = redis::cmd("HSET")
            .arg(keys::counter(team, &period, &keys::Scope::Team))
            .arg(keys::field::SPENT)
            .arg(spent)
            .arg(keys::field::REQUESTS)
            .arg(3)
            .query_async(&mut conn)
            .await?;
    }
    for ns in [NS, "search", other] {
        create_namespace(&admin, ns).await?;
    }
    let replica = start_replica_with(admin.clone(), Some(&cluster.url()), true, "cluster", vec![]).await?;
    let budget = json!({"limitUSD": "40", "period": "Monthly", "timezone": "UTC"});
    for team in ["search", other] {
        let api: Api<TeamBudget> = Api::namespaced(admin.clone(), team);
        apply(
            &api,
            team,
            team_budget(team, team, json!({"team": team, "budget": budget})),
        )
        .await?;
    }
    for (team, spent, remaining) in [("search", "30.00", "10.00"), (other, "4.00", "36.00")] {
        let api: Api<TeamBudget> = Api::namespaced(admin.clone(), team);
        let tb = eventually(
            &format!("{team} spend from the cluster"),
            Duration::from_secs(30),
            || async {
                let tb = api.get(team).await?;
                Ok(tb
                    .status
                    .as_ref()
                    .and_then(|s| s.spent_usd.clone())
                    .is_some()
                    .then_some(tb))
            },
        )
        .await;
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
