//! `tally operator`: the reconciler that runs in the cluster.
//!
//! Design: reflector-based, one whole-config reconcile. The config is small and every object can
//! change every team's view (a tenant or alias moving between objects), so any change to a
//! `TeamBudget` or `ModelPricing` recompiles everything with the compiler `tally render` uses
//! ([`tally_api::compiler::compile_lenient`]), publishes the result to one ConfigMap (only when its
//! content hash changes, see [`config_map`]) and sets each object's `Ready` condition. A second
//! pass, on every change and every `--status-interval`, reads each team's counters from Redis and
//! writes its status and events ([`status`]). Both passes run only on the replica holding the
//! leader Lease ([`leader`]).
//!
//! The decisions are pure functions in [`status`], [`config_map`] and [`leader`]; this module
//! only moves data between them and the API server and Redis. Writes are server-side apply
//! patches (field manager `tally-operator`): the ConfigMap, and the `status` subresource of
//! the custom resources (never their spec).
//!
//! RBAC it needs, exactly (shipped in `charts/tally/templates/operator-rbac.yaml`):
//! - `tally.dev` `teambudgets`, `modelpricings`: `list`, `watch`; their `/status`: `patch`
//! - `configmaps` (the config namespace): `get`, `create`, `patch`
//! - `events.k8s.io` `events`: `create` (namespaces of TeamBudgets)
//! - `coordination.k8s.io` `leases` (the election namespace): `get`, `create`, `update`

pub mod config_map;
pub mod leader;
pub mod status;
pub mod telemetry;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tally_config::compiled::CompiledConfig;
use tally_config::keys;
use tally_store::args::{RedisArgs, RedisArgsError, RedisTarget};
use tally_store::redis::RedisStore;
use tokio::sync::watch;

use status::{Counters, Readiness, Reading};
use tally_api::compiler::{self, ObjectRef};
use tally_api::crd::condition::set_condition;
use tally_api::crd::{API_VERSION, ModelPricing, ModelPricingStatus, TeamBudget, TeamBudgetStatus};
use telemetry::{Metrics, Probe};

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "tally-operator";

/// Flags of `tally operator`; each has a `TALLY_*` environment twin.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Name of the ConfigMap the compiled config is written to (key `config.json`).
    #[arg(long, env = "TALLY_CONFIG_MAP_NAME", default_value = "tally-config")]
    pub config_map_name: String,
    /// Namespace of that ConfigMap [default: $POD_NAMESPACE, else `default`].
    #[arg(long, env = "TALLY_CONFIG_MAP_NAMESPACE")]
    pub config_map_namespace: Option<String>,
    /// The Redis the ext_proc writes the counters to; without `--redis-url`, no live spend.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// How often team statuses are refreshed from Redis even without changes (`30s`, `1m`).
    #[arg(long, env = "TALLY_STATUS_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub status_interval: Duration,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "TALLY_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    pub metrics_listen: SocketAddr,
    /// Namespace of the leader-election Lease [default: the ConfigMap's namespace].
    #[arg(long, env = "TALLY_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "TALLY_LEASE_NAME", default_value = "tally-operator")]
    pub lease_name: String,
    /// How long a leader's lease lasts without renewal; a leader steps down after 2/3 of it.
    #[arg(long, env = "TALLY_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// Identity in the Lease [default: $POD_NAME, else the host name, plus a random suffix].
    #[arg(long, env = "TALLY_IDENTITY")]
    pub identity: Option<String>,
    /// Namespaces whose TeamBudgets are watched, comma-separated; empty: all namespaces.
    #[arg(long, env = "TALLY_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
}

/// Parses `30s`, `1m`, `1m30s`, `500ms` or ISO 8601 (`PT30S`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like \"30s\": {e}"))?;
    Duration::try_from(d).map_err(|_| format!("{s:?} must not be negative"))
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the Kubernetes API server: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot serve {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Redis(#[from] RedisArgsError),
}

/// `Result` of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl OperatorArgs {
    fn config_namespace(&self) -> String {
        self.config_map_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "default".to_string())
    }

    fn identity(&self) -> String {
        let base = self
            .identity
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .unwrap_or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_default()
            });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!(
            "{}_{:08x}",
            if base.is_empty() { "tally-operator" } else { &base },
            nanos ^ std::process::id()
        )
    }
}

/// Runs the operator from the environment: in-cluster or kubeconfig credentials, `--metrics-listen`
/// bound here, stopping on SIGTERM or Ctrl-C.
pub async fn main(args: OperatorArgs) -> Result<()> {
    // Both rustls providers are compiled into this binary (aws-lc-rs from kube's
    // features, ring through other crates); a `rediss://` Redis URL would make
    // rustls panic rather than pick one, so pick explicitly. Err = already installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = Client::try_default().await.map_err(Error::Client)?;
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|source| Error::Listen {
            addr: args.metrics_listen,
            source,
        })?;
    run(args, client, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// Runs the operator until `shutdown` resolves: serves `/metrics`, `/healthz`, `/readyz` on
/// `listener`, campaigns for the Lease and reconciles while leading. On shutdown it stops
/// reconciling, releases the Lease, then stops serving.
pub async fn run(
    args: OperatorArgs,
    client: Client,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let redis = args.redis.target()?;
    let metrics = Arc::new(Metrics::default());
    let reachable = Arc::new(AtomicBool::new(false));
    let identity = args.identity();
    let namespace = args.config_namespace();

    let (stop_http, http_stopped) = watch::channel(false);
    let http = tokio::spawn({
        let router = telemetry::router(Probe {
            metrics: metrics.clone(),
            reachable: reachable.clone(),
        });
        let mut stopped = http_stopped.clone();
        async move {
            let graceful = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(graceful).await {
                tracing::error!(%error, "metrics server failed");
            }
        }
    });

    let mut lease = leader::LeaseConfig::new(
        args.leader_election_namespace
            .clone()
            .unwrap_or_else(|| namespace.clone()),
        args.lease_name.clone(),
        identity.clone(),
    );
    lease.lease_duration = args.lease_duration.max(Duration::from_secs(1));
    lease.renew_deadline = lease.lease_duration * 2 / 3;
    lease.retry_period = (lease.lease_duration / 7).max(Duration::from_millis(200));
    let (leader_tx, mut leader_rx) = watch::channel(false);
    let (stop_elector, elector_stopped) = watch::channel(false);
    let elector = tokio::spawn(
        leader::LeaderElector::new(client.clone(), lease, reachable.clone()).run(leader_tx, {
            let mut stopped = elector_stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        }),
    );

    let ctx = Ctx {
        client: client.clone(),
        args: args.clone(),
        namespace,
        redis,
        redis_store: None,
        metrics: metrics.clone(),
        identity: identity.clone(),
        readiness: HashMap::new(),
        written: HashMap::new(),
        written_pricings: HashMap::new(),
    };
    let mut ctx = ctx;
    tokio::pin!(shutdown);
    tracing::info!(%identity, "tally operator started");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            changed = leader_rx.wait_for(|l| *l) => { if changed.is_err() { break } }
        }
        metrics.leader.set(1);
        let lost = {
            let mut rx = leader_rx.clone();
            async move {
                let _ = rx.wait_for(|l| !*l).await;
            }
        };
        tokio::select! {
            _ = &mut shutdown => { metrics.leader.set(0); break }
            _ = lost => tracing::warn!("not the leader any more; reconciling stops"),
            _ = ctx.lead() => {}
        }
        metrics.leader.set(0);
    }
    let _ = stop_elector.send(true);
    let _ = elector.await;
    let _ = stop_http.send(true);
    let _ = http.await;
    tracing::info!("tally operator stopped");
    Ok(())
}

/// What the reconcile passes share.
struct Ctx {
    client: Client,
    args: OperatorArgs,
    namespace: String,
    redis: Option<RedisTarget>,
    /// Connected on first use (the operator starts while Redis is down), dropped on an error.
    redis_store: Option<RedisStore>,
    metrics: Arc<Metrics>,
    /// This replica's identity, the events' `reportingInstance`.
    identity: String,
    /// Readiness of each object (`ObjectRef` display) from the last config pass.
    readiness: HashMap<String, Readiness>,
    /// The status this leadership term last wrote per TeamBudget uid: newer than the watch cache
    /// until the update comes back, so two quick passes cannot raise the same event twice.
    written: HashMap<String, TeamBudgetStatus>,
    /// The same for ModelPricings.
    written_pricings: HashMap<String, ModelPricingStatus>,
}

/// A watch event reduced to what matters for triggering: which stream, and whether it changed
/// something the reconcilers look at.
#[derive(Debug, PartialEq, Eq)]
enum Signal {
    Synced(usize),
    Changed,
    Quiet,
}

impl Ctx {
    /// Reconciles while this replica leads; returns only if every watch stream ends.
    async fn lead(&mut self) {
        // Another replica may have written statuses since this one last led.
        self.written.clear();
        self.written_pricings.clear();
        let mut team_stores: Vec<Store<TeamBudget>> = vec![];
        let mut streams: Vec<BoxStream<'static, Signal>> = vec![];
        let team_apis: Vec<Api<TeamBudget>> = if self.args.watch_namespaces.is_empty() {
            vec![Api::all(self.client.clone())]
        } else {
            self.args
                .watch_namespaces
                .iter()
                .map(|ns| Api::namespaced(self.client.clone(), ns))
                .collect()
        };
        for api in team_apis {
            let (store, writer) = reflector::store();
            team_stores.push(store);
            streams.push(signals(
                streams.len(),
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .reflect(writer),
            ));
        }
        let (pricing_store, writer) = reflector::store();
        let api: Api<ModelPricing> = Api::all(self.client.clone());
        streams.push(signals(
            streams.len(),
            watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer),
        ));

        let total = streams.len();
        let mut synced = BTreeSet::new();
        let mut merged = futures::stream::select_all(streams);
        let mut next_pass: Option<Instant> = None;
        let mut tick = tokio::time::interval(self.args.status_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = next_pass.map(tokio::time::Instant::from_std);
            tokio::select! {
                signal = merged.next() => match signal {
                    None => return,
                    Some(Signal::Synced(i)) => { synced.insert(i); next_pass.get_or_insert_with(soon); }
                    Some(Signal::Changed) => { next_pass.get_or_insert_with(soon); }
                    Some(Signal::Quiet) => {}
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(far)), if due.is_some() => {
                    if synced.len() == total {
                        next_pass = None;
                        let teams = all_teams(&team_stores);
                        let pricings: Vec<ModelPricing> = pricing_store.state().iter().map(|p| (**p).clone()).collect();
                        self.config_pass(&teams, &pricings).await;
                        self.status_pass(&teams).await;
                    } else {
                        next_pass = Some(soon());
                    }
                }
                _ = tick.tick() => {
                    // The config pass runs too: it retries a failed write and repairs a
                    // hand-edited ConfigMap, at the cost of one GET when nothing changed.
                    if synced.len() == total {
                        let teams = all_teams(&team_stores);
                        let pricings: Vec<ModelPricing> = pricing_store.state().iter().map(|p| (**p).clone()).collect();
                        self.config_pass(&teams, &pricings).await;
                        self.status_pass(&teams).await;
                    }
                }
            }
        }
    }

    /// Compile everything, publish the ConfigMap if its content changed, set `Ready` on each object.
    async fn config_pass(&mut self, teams: &[TeamBudget], pricings: &[ModelPricing]) {
        let started = Instant::now();
        let ok = match self.reconcile_config(teams, pricings).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "config reconcile failed; retrying on the next change or tick");
                false
            }
        };
        self.metrics.observe("config", started.elapsed(), ok);
    }

    async fn reconcile_config(&mut self, teams: &[TeamBudget], pricings: &[ModelPricing]) -> Result<(), kube::Error> {
        let compiled = compiler::compile_lenient(teams, pricings);
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let existing = cms.get_opt(&self.args.config_map_name).await?;
        let existing_hash = existing
            .as_ref()
            .and_then(|cm| cm.annotations().get(config_map::HASH_ANNOTATION).cloned());
        let published = existing
            .as_ref()
            .and_then(|cm| cm.data.as_ref()?.get(config_map::CONFIG_KEY).cloned())
            .and_then(|json| CompiledConfig::from_json(json.as_bytes()).ok());

        let invalid_teams: BTreeSet<String> = teams
            .iter()
            .filter(|tb| compiled.errors_of(&ObjectRef::team_budget(tb)).next().is_some())
            .map(TeamBudget::key)
            .collect();
        let (config, kept) = config_map::keep_last_good(compiled.config.clone(), published.as_ref(), &invalid_teams);

        if config_map::configmap_needs_update(existing_hash.as_deref(), &config.generation) {
            let (data, annotations) = config_map::configmap_content(&config);
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(self.args.config_map_name.clone()),
                    namespace: Some(self.namespace.clone()),
                    annotations: Some(annotations),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_string(),
                        FIELD_MANAGER.to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            let mut value = serde_json::to_value(&cm).expect("a ConfigMap serializes");
            value["apiVersion"] = "v1".into();
            value["kind"] = "ConfigMap".into();
            cms.patch(
                &self.args.config_map_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&value),
            )
            .await?;
            self.metrics.config_writes.inc();
            tracing::info!(generation = %config.generation, teams = config.teams.len(), entries = config.catalog.entries.len(),
                configmap = %format!("{}/{}", self.namespace, self.args.config_map_name), "published compiled config");
        }

        // Readiness of every object, for its status.
        self.readiness.clear();
        let mut invalid = 0;
        // Ready, or Invalid with every error of the object, one `field: message` each.
        let readiness_of = |object: &ObjectRef, kept_last_good: bool| {
            let errors: Vec<String> = compiled
                .errors_of(object)
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            if errors.is_empty() {
                Readiness::Ready
            } else {
                Readiness::Invalid {
                    message: errors.join("; "),
                    kept_last_good,
                }
            }
        };
        for tb in teams {
            let object = ObjectRef::team_budget(tb);
            let readiness = readiness_of(&object, kept.contains(&tb.key()));
            if readiness != Readiness::Ready {
                invalid += 1;
            }
            self.readiness.insert(object.to_string(), readiness);
        }
        let now = jiff::Timestamp::now().to_string();
        let present: BTreeSet<String> = pricings.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        self.written_pricings.retain(|k, _| present.contains(k));
        for mp in pricings {
            let readiness = readiness_of(&ObjectRef::model_pricing(mp), false);
            if readiness != Readiness::Ready {
                invalid += 1;
            }
            let name = mp.name_any();
            let uid = mp.metadata.uid.clone().unwrap_or_default();
            let prev = self
                .written_pricings
                .get(&uid)
                .or(mp.status.as_ref())
                .cloned()
                .unwrap_or_default();
            let mut desired = ModelPricingStatus {
                models: Some(compiled.entries_per_catalog.get(&name).copied().unwrap_or(0) as i64),
                conditions: prev.conditions.clone(),
                observed_generation: mp.metadata.generation,
            };
            let ready = status::ready_condition(&readiness, mp.metadata.generation, &now);
            let event = status::invalid_event(&prev.conditions, &ready);
            set_condition(&mut desired.conditions, ready);
            if prev != desired {
                let api: Api<ModelPricing> = Api::all(self.client.clone());
                apply_status(&api, &name, "ModelPricing", &desired).await?;
                self.written_pricings.insert(uid, desired);
            }
            if let Some(e) = event {
                self.emit(&mp.object_ref(&()), &e, &name).await;
            }
        }
        self.metrics.invalid_objects.set(invalid);
        Ok(())
    }

    /// Read each team's counters, patch its status when it changed, publish due events.
    async fn status_pass(&mut self, teams: &[TeamBudget]) {
        let started = Instant::now();
        let mut ok = true;
        let now = jiff::Timestamp::now();
        let uid = |tb: &TeamBudget| tb.metadata.uid.clone().unwrap_or_default();
        let present: BTreeSet<String> = teams.iter().map(uid).collect();
        self.written.retain(|k, _| present.contains(k));
        for cached in teams {
            let fresher;
            let tb = match self.written.get(&uid(cached)) {
                Some(w) if cached.status.as_ref() != Some(w) => {
                    fresher = TeamBudget {
                        status: Some(w.clone()),
                        ..cached.clone()
                    };
                    &fresher
                }
                _ => cached,
            };
            let readiness = self
                .readiness
                .get(&ObjectRef::team_budget(tb).to_string())
                .cloned()
                .unwrap_or(Readiness::Ready);
            let reading = self.read_counters(tb, now).await;
            if reading == Reading::Unavailable {
                ok = false;
            }
            let (desired, events) = status::team_status(tb, &readiness, reading, now);
            if status::status_needs_patch(tb.status.as_ref(), &desired) {
                let api: Api<TeamBudget> = Api::namespaced(self.client.clone(), &tb.namespace().unwrap_or_default());
                if let Err(error) = apply_status(&api, &tb.name_any(), "TeamBudget", &desired).await {
                    tracing::warn!(%error, object = %tb.key(), "status patch failed");
                    ok = false;
                    // Events only after the status recording them is stored: at most once.
                    continue;
                }
                self.written.insert(uid(tb), desired.clone());
            }
            let reference = tb.object_ref(&());
            for e in events {
                ok &= self.emit(&reference, &e, &tb.key()).await;
            }
        }
        self.metrics.observe("status", started.elapsed(), ok);
    }

    /// Publishes `e`, counting and logging it; `false` if the API server refused it.
    async fn emit(&self, regarding: &ObjectReference, e: &status::EventToEmit, object: &str) -> bool {
        match self.publish(regarding, e).await {
            Ok(()) => {
                self.metrics.events.inc();
                tracing::info!(%object, reason = %e.reason, note = %e.note, "event");
                true
            }
            Err(error) => {
                tracing::warn!(%error, %object, reason = %e.reason, "could not publish event");
                false
            }
        }
    }

    /// Creates one `events.k8s.io/v1` Event about `regarding`. Each alert is raised once, so
    /// there is nothing to aggregate into a series (kube's `Recorder` would merge two thresholds'
    /// events into one, as its key ignores the note) and only `create` is needed.
    async fn publish(&self, regarding: &ObjectReference, e: &status::EventToEmit) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let event = KubeEvent {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or("tally"),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if e.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(e.reason.clone()),
            note: Some(e.note.clone()),
            action: Some(e.action.into()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(format!("tally.dev/{FIELD_MANAGER}")),
            reporting_instance: Some(self.identity.clone()),
            ..Default::default()
        };
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await.map(|_| ())
    }

    async fn read_counters(&mut self, tb: &TeamBudget, now: jiff::Timestamp) -> Reading {
        let Some(target) = &self.redis else {
            return Reading::NoStore;
        };
        let Some(period_key) = status::period_key(tb.spec.budget.as_ref(), now) else {
            return Reading::Counters(Counters::default());
        };
        if self.redis_store.is_none() {
            match target.connect().await {
                Ok(store) => self.redis_store = Some(store),
                Err(error) => {
                    tracing::warn!(%error, "Redis unavailable; keeping the last known spend");
                    return Reading::Unavailable;
                }
            }
        }
        let store = self.redis_store.as_ref().expect("connected above");
        let key = keys::counter(&tb.spec.team, &period_key, &keys::Scope::Team);
        match store.counters(&key).await {
            Ok(counters) => Reading::Counters(counters),
            Err(error) => {
                tracing::warn!(%error, %key, "reading counters failed");
                self.redis_store = None;
                Reading::Unavailable
            }
        }
    }
}

/// Server-side apply of `status` on the status subresource.
async fn apply_status<K, S>(api: &Api<K>, name: &str, kind: &str, status: &S) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let patch = serde_json::json!({ "apiVersion": API_VERSION, "kind": kind, "status": status });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map(|_| ())
}

fn all_teams(stores: &[Store<TeamBudget>]) -> Vec<TeamBudget> {
    let mut teams: Vec<TeamBudget> = stores.iter().flat_map(|s| s.state()).map(|t| (*t).clone()).collect();
    teams.sort_by_key(TeamBudget::key);
    teams
}

fn soon() -> Instant {
    Instant::now() + Duration::from_millis(100)
}

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

/// Turns a reflected watch stream into trigger signals. Status-only updates (same generation as
/// last seen) are quiet, so the operator's own status patches do not trigger another pass.
fn signals<K>(
    index: usize,
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> BoxStream<'static, Signal>
where
    K: Resource + Send + 'static,
{
    let mut seen: HashMap<String, Option<i64>> = HashMap::new();
    stream
        .map_ok(move |event| match event {
            watcher::Event::Init => Signal::Quiet,
            watcher::Event::InitApply(o) => {
                seen.insert(o.meta().uid.clone().unwrap_or_default(), o.meta().generation);
                Signal::Quiet
            }
            watcher::Event::InitDone => Signal::Synced(index),
            watcher::Event::Apply(o) => {
                let uid = o.meta().uid.clone().unwrap_or_default();
                match seen.insert(uid, o.meta().generation) {
                    Some(g) if g == o.meta().generation => Signal::Quiet,
                    _ => Signal::Changed,
                }
            }
            watcher::Event::Delete(o) => {
                seen.remove(&o.meta().uid.clone().unwrap_or_default());
                Signal::Changed
            }
        })
        .filter_map(|r| async move {
            match r {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(%error, "watch failed; retrying with backoff");
                    None
                }
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: OperatorArgs,
    }

    #[test]
    fn flags_have_documented_defaults() {
        let cli = Cli::try_parse_from(["tally"]).unwrap();
        let a = cli.args;
        assert_eq!(a.config_map_name, "tally-config");
        assert_eq!(a.status_interval, Duration::from_secs(30));
        assert_eq!(a.metrics_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(a.lease_name, "tally-operator");
        assert!(a.watch_namespaces.is_empty() && a.redis.url.is_none());
        let cli = Cli::try_parse_from(["tally", "--watch-namespaces", "a,b", "--status-interval", "1m30s"]).unwrap();
        assert_eq!(cli.args.watch_namespaces, ["a", "b"]);
        assert_eq!(cli.args.status_interval, Duration::from_secs(90));
        assert!(Cli::try_parse_from(["tally", "--status-interval", "soon"]).is_err());
    }

    #[tokio::test]
    async fn only_spec_changes_and_deletes_trigger_a_pass() {
        let object = |uid: &str, generation: i64| {
            let mut cm = ConfigMap::default();
            cm.metadata.uid = Some(uid.into());
            cm.metadata.generation = Some(generation);
            cm
        };
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(object("a", 1))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(object("a", 1))), // status-only update (ours)
            Ok(watcher::Event::Apply(object("a", 2))), // spec edit
            Ok(watcher::Event::Apply(object("b", 1))), // new object
            Ok(watcher::Event::Delete(object("a", 2))),
        ];
        let signals: Vec<Signal> = signals(7, futures::stream::iter(events)).collect().await;
        use Signal::*;
        assert_eq!(signals, [Quiet, Quiet, Synced(7), Quiet, Changed, Changed, Changed]);
    }
}
