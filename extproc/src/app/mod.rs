//! Wiring: flags, config loading and hot reload, the gRPC and admin servers.
//! [`run`] takes bound listeners and a shutdown future so tests run it in-process.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessorServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use crate::exchange::{FailMode, Options, RequestBody, Shared};
use crate::metrics::{GenerationLabels, Metrics, OutcomeLabels, TeamLabels};
use crate::policy::Policy;
use crate::server::Processor;
use tally_config::compiled::{CompiledConfig, UNKNOWN_TEAM};
use tally_store::Store;
use tally_store::memory::MemoryStore;
use tally_store::redis::RedisStore;
use tally_store::spool::Spool;

/// How long shutdown waits for exchanges still settling (each store call is bounded to 500 ms).
const SETTLE_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Redis,
    Memory,
}

/// `tally-extproc` flags; each has a `TALLY_*` environment twin.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tally-extproc",
    version,
    about = "Envoy ext_proc service that prices, budgets and records AWS Bedrock calls"
)]
pub struct Args {
    /// Compiled config JSON (from the operator or `tally render`); reloaded when it changes.
    #[arg(long, env = "TALLY_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address (ext_proc and grpc.health.v1).
    #[arg(long, env = "TALLY_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Admin HTTP listen address: /metrics, /healthz, /readyz, /v1/ledger, /v1/spend.
    #[arg(long, env = "TALLY_ADMIN_LISTEN", default_value = "0.0.0.0:9464")]
    pub admin_listen: SocketAddr,
    /// Where live spend is kept.
    #[arg(long, env = "TALLY_STORE", value_enum, default_value = "redis")]
    pub store: StoreKind,
    /// Redis URL (`redis://host:6379`, `rediss://…` for TLS).
    #[arg(long, env = "TALLY_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// PEM CA bundle to verify a `rediss://` server with, instead of the system roots.
    #[arg(long, env = "TALLY_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// Treat --redis-url as a seed node of a Redis Cluster.
    #[arg(long, env = "TALLY_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// Redis password (prefer the environment variable to the flag).
    #[arg(long, env = "TALLY_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
    /// What happens to calls while the store is unreachable.
    #[arg(long, env = "TALLY_FAIL_MODE", value_enum, default_value = "open")]
    pub fail_mode: FailMode,
    /// Directory of the disk spool that holds charges while the store is down.
    #[arg(long, env = "TALLY_SPOOL_DIR", default_value = "/var/lib/tally/spool")]
    pub spool_dir: PathBuf,
    /// Largest spool file, bytes.
    #[arg(long, env = "TALLY_SPOOL_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub spool_max_bytes: u64,
    /// Region recorded when the host does not name one.
    #[arg(long, env = "TALLY_DEFAULT_REGION", default_value = "us-east-1")]
    pub default_region: String,
    #[arg(long, env = "TALLY_TEAM_HEADER", default_value = "x-team-id")]
    pub team_header: String,
    #[arg(long, env = "TALLY_TENANT_HEADER", default_value = "x-tenant-id")]
    pub tenant_header: String,
    #[arg(long, env = "TALLY_WORKFLOW_HEADER", default_value = "x-workflow-id")]
    pub workflow_header: String,
    /// How long a reservation holds budget if its call never finishes, seconds.
    #[arg(long, env = "TALLY_RESERVATION_TTL_SECONDS", default_value_t = 900)]
    pub reservation_ttl_seconds: u64,
    /// Approximate cap of each team's ledger stream in Redis (and of the memory ledger).
    #[arg(long, env = "TALLY_LEDGER_MAX_LEN", default_value_t = 1_000_000)]
    pub ledger_max_len: u64,
    /// When the request body is read: `always` before every reservation (the request's own
    /// `max_tokens` bound); `when-needed` reserves a non-streaming call from `content-length` and
    /// the model's output cap when that fits every budget (one ext_proc round trip less), and
    /// reads the body only otherwise (and always for streams).
    #[arg(long, env = "TALLY_REQUEST_BODY", value_enum, default_value = "always")]
    pub request_body: RequestBody,
    /// How often the config file is checked for changes, milliseconds.
    #[arg(long, env = "TALLY_CONFIG_POLL_MS", default_value_t = 1000)]
    pub config_poll_ms: u64,
}

fn load_config(path: &Path) -> anyhow::Result<(Vec<u8>, CompiledConfig)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading config {}", path.display()))?;
    let config = CompiledConfig::from_json(&bytes).with_context(|| format!("config {}", path.display()))?;
    Ok((bytes, config))
}

fn install(shared: &Shared, config: CompiledConfig) {
    shared.metrics.config_info.clear();
    shared.metrics.budget_limit.clear();
    for t in &config.teams {
        if let Some(b) = &t.budget {
            shared
                .metrics
                .budget_limit
                .get_or_create(&TeamLabels { team: t.team.clone() })
                .set(b.limit.0);
        }
    }
    shared
        .metrics
        .config_info
        .get_or_create(&GenerationLabels {
            generation: config.generation.clone(),
        })
        .set(1);
    shared.policy.store(Arc::new(Policy::new(config)));
}

/// Builds the shared state: loads the config (must be valid at start) and connects the store.
pub async fn build(args: &Args) -> anyhow::Result<(Arc<Shared>, Option<Vec<u8>>)> {
    // rustls (rediss://) finds two crypto providers in this dependency graph (the AWS
    // crates bring aws-lc-rs, others ring) and refuses to pick: choose one explicitly.
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (bytes, config) = match &args.config {
        Some(p) => {
            let (b, c) = load_config(p)?;
            (Some(b), c)
        }
        None => (None, CompiledConfig::empty()),
    };
    let store = match args.store {
        StoreKind::Memory => Store::Memory(MemoryStore::new()),
        StoreKind::Redis => Store::Redis(
            RedisStore::connect(
                &args.redis_url,
                args.redis_cluster,
                args.redis_password.as_deref(),
                args.redis_ca_file
                    .as_ref()
                    .map(|p| std::fs::read(p).with_context(|| format!("reading --redis-ca-file {}", p.display())))
                    .transpose()?,
            )
            .await
            .with_context(|| format!("connecting to Redis at {}", redact(&args.redis_url)))?,
        ),
    };
    let spool = match args.store {
        StoreKind::Memory => None,
        StoreKind::Redis => Some(Spool::open(&args.spool_dir, args.spool_max_bytes).context("opening the spool")?),
    };
    let shared = Arc::new(Shared {
        policy: ArcSwap::from_pointee(Policy::new(CompiledConfig::empty())),
        store,
        spool,
        metrics: Metrics::new(),
        opts: Options {
            team_header: args.team_header.to_ascii_lowercase(),
            tenant_header: args.tenant_header.to_ascii_lowercase(),
            workflow_header: args.workflow_header.to_ascii_lowercase(),
            fail_mode: args.fail_mode,
            default_region: args.default_region.clone(),
            reservation_ttl: Duration::from_secs(args.reservation_ttl_seconds),
            ledger_max_len: args.ledger_max_len,
            request_body: args.request_body,
        },
        exchanges: tokio_util::task::TaskTracker::new(),
    });
    install(&shared, config);
    if let Some(s) = &shared.spool {
        shared.metrics.spool_depth.set(s.depth() as i64);
    }
    Ok((shared, bytes))
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_user, host)) => format!("{}//***@{host}", scheme_user.split("//").next().unwrap_or("")),
        None => url.to_string(),
    }
}

/// Serves until `shutdown` resolves.
pub async fn run(
    args: Args,
    grpc: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (shared, loaded) = build(&args).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    if let Some(path) = args.config.clone() {
        background.spawn(watch_config(
            shared.clone(),
            path,
            loaded,
            Duration::from_millis(args.config_poll_ms),
            stop_rx.clone(),
        ));
    }
    background.spawn(replay_spool(shared.clone(), stop_rx.clone()));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ExternalProcessorServer<Processor>>()
        .await;
    let grpc_addr = grpc.local_addr()?;
    let admin_addr = admin.local_addr()?;
    tracing::info!(%grpc_addr, %admin_addr, store = ?args.store, fail_mode = ?args.fail_mode, "tally-extproc serving");

    // Envoy waits for each reply before sending the next message of a stream:
    // without TCP_NODELAY, small replies sit behind delayed ACKs (+ms per call).
    // tonic's own `tcp_nodelay` only applies to listeners it binds itself.
    let incoming = TcpListenerStream::new(grpc).map(|conn| {
        if let Ok(stream) = &conn
            && let Err(e) = stream.set_nodelay(true)
        {
            tracing::warn!(error = %e, "could not set TCP_NODELAY on a gRPC connection");
        }
        conn
    });
    let mut grpc_stop = stop_rx.clone();
    let grpc_server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(ExternalProcessorServer::new(Processor::new(shared.clone())))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = grpc_stop.wait_for(|s| *s).await;
        });
    let mut admin_stop = stop_rx.clone();
    let admin_server = axum::serve(admin, admin_router(shared.clone())).with_graceful_shutdown(async move {
        let _ = admin_stop.wait_for(|s| *s).await;
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let (g, a) = tokio::join!(grpc_server, admin_server);
    g.context("gRPC server")?;
    a.context("admin server")?;
    // Streams Envoy reset as it went away may still be settling.
    shared.exchanges.close();
    if tokio::time::timeout(SETTLE_GRACE, shared.exchanges.wait())
        .await
        .is_err()
    {
        tracing::error!(
            left = shared.exchanges.len(),
            "exchanges still settling at exit; their reservations expire after the reservation TTL"
        );
    }
    // Last chance for spooled charges before exit; what remains stays on disk for the next start.
    if let Err(e) = shared.replay_spool().await {
        tracing::warn!(error = %e, "spool replay at shutdown failed; it stays on disk");
    }
    background.abort_all();
    Ok(())
}

/// Polls the config file; a changed, valid file is swapped in atomically, an invalid one logged and ignored.
async fn watch_config(
    shared: Arc<Shared>,
    path: PathBuf,
    mut last: Option<Vec<u8>>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        if last.as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        match CompiledConfig::from_json(&bytes) {
            Ok(config) => {
                tracing::info!(generation = %config.generation, teams = config.teams.len(), "config reloaded");
                install(&shared, config);
                shared
                    .metrics
                    .config_reloads
                    .get_or_create(&OutcomeLabels { outcome: "ok" })
                    .inc();
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "new config is invalid; keeping the previous one");
                shared
                    .metrics
                    .config_reloads
                    .get_or_create(&OutcomeLabels { outcome: "invalid" })
                    .inc();
            }
        }
        last = Some(bytes);
    }
}

async fn replay_spool(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = shared.replay_spool().await {
            tracing::debug!(error = %e, "spool replay deferred");
        }
    }
}

fn admin_router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/ledger", get(ledger))
        .with_state(shared)
}

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

/// Ready when the store answers, or when failing open makes the store optional.
async fn ready(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_millis(500), s.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready".to_string()),
        _ if s.opts.fail_mode == FailMode::Open => {
            (StatusCode::OK, "ready (store unreachable; failing open)".to_string())
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store unreachable and failing closed".to_string(),
        ),
    }
}

#[derive(serde::Deserialize)]
struct LedgerQuery {
    limit: Option<usize>,
    team: Option<String>,
}

async fn ledger(State(s): State<Arc<Shared>>, Query(q): Query<LedgerQuery>) -> axum::response::Response {
    let teams: Vec<String> = match q.team {
        Some(t) => vec![t],
        None => {
            let policy = s.policy.load();
            let mut t: Vec<String> = policy.config.teams.iter().map(|t| t.team.clone()).collect();
            if !t.iter().any(|x| x == UNKNOWN_TEAM) {
                t.push(UNKNOWN_TEAM.into());
            }
            t
        }
    };
    match s.store.ledger(&teams, q.limit.unwrap_or(100).min(10_000)).await {
        Ok(records) => axum::Json(records).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
