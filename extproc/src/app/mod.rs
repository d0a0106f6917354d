//! Wiring: the flags ([`args`], [`tls`]), config loading and hot reload (`reload`), and the
//! three listeners — gRPC (ext_proc and health, TLS by default), the unauthenticated probes
//! and metrics (`probes`) and the authenticated ledger and spend API (`api`).
//! [`run`] takes bound listeners and a shutdown future so tests run it in-process.

mod api;
pub mod args;
mod probes;
mod reload;
pub mod tls;
mod tls_accept;
mod tls_reload;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessorServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::Router;

pub use api::{MAX_LEDGER_STREAMS, MAX_RECORDS, STORE_PAGE};
pub use args::{Args, StoreKind};

use crate::exchange::{Options, Shared};
use crate::policy::Policy;
use crate::server::Processor;
use tally_config::compiled::CompiledConfig;
use tally_store::Store;
use tally_store::args::DEFAULT_URL;
use tally_store::memory::MemoryStore;
use tally_store::spool::Spool;

/// How long shutdown waits for exchanges still settling (each store call is bounded to 500 ms).
const SETTLE_GRACE: Duration = Duration::from_secs(5);

/// The listeners [`run`] serves on, bound by the caller (tests bind `127.0.0.1:0`).
pub struct Listeners {
    pub grpc: TcpListener,
    pub metrics: TcpListener,
    /// The API's; `None` leaves it off. Needs `--api-token-file`.
    pub api: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses `args` names; the API's only when there is a token file.
    pub async fn bind(args: &Args) -> anyhow::Result<Listeners> {
        let bind = |addr, what: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the {what} listener to {addr}"))
        };
        let api = match args.api_token_file {
            Some(_) => Some(bind(args.api_listen, "API").await?),
            None => None,
        };
        Ok(Listeners {
            grpc: bind(args.listen, "gRPC").await?,
            metrics: bind(args.metrics_addr()?, "metrics").await?,
            api,
        })
    }
}

/// rustls (the gRPC listener, rediss://) finds two crypto providers in this dependency graph
/// (the AWS crates bring aws-lc-rs, others ring) and refuses to pick: choose one explicitly.
fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Builds the shared state: loads the config (must be valid at start) and connects the store.
pub async fn build(args: &Args) -> anyhow::Result<(Arc<Shared>, Option<Vec<u8>>)> {
    install_crypto_provider();
    let (bytes, config) = match &args.config {
        Some(p) => {
            let (b, c) = reload::load_config(p)?;
            (Some(b), c)
        }
        None => (None, CompiledConfig::empty()),
    };
    let (store, spool) = match args.store {
        StoreKind::Memory => (Store::Memory(MemoryStore::new()), None),
        StoreKind::Redis => {
            let target = args.redis.target_or(DEFAULT_URL)?;
            // The URL as logged: its password, if any, is `***`.
            tracing::info!(
                redis = target.redacted_url(),
                cluster = args.redis.cluster,
                "connecting to Redis"
            );
            let store = target
                .connect()
                .await
                .with_context(|| format!("connecting to Redis at {}", target.redacted_url()))?;
            let spool = Spool::open(&args.spool_dir, args.spool_max_bytes).context("opening the spool")?;
            if spool.depth() > 0 {
                tracing::info!(
                    settlements = spool.depth(),
                    dir = %args.spool_dir.display(),
                    "the spool holds settlements from an earlier run; replaying them"
                );
            }
            (Store::Redis(store), Some(spool))
        }
    };
    let opts = Options {
        team_header: args.team_header.to_ascii_lowercase(),
        tenant_header: args.tenant_header.to_ascii_lowercase(),
        workflow_header: args.workflow_header.to_ascii_lowercase(),
        fail_mode: args.fail_mode,
        default_region: args.default_region.clone(),
        upstream_region: args.upstream_region.clone().filter(|r| !r.is_empty()),
        reservation_ttl: Duration::from_secs(args.reservation_ttl_seconds),
        ledger_max_len: args.ledger_max_len,
        request_body: args.request_body,
    };
    let mut shared = Shared::new(Policy::new(CompiledConfig::empty()), store, spool, opts);
    shared.traces = crate::trace::Traces::from_env(&shared.metrics.traces)?;
    shared.leases = args.leases();
    shared.write_behind = args.write_behind();
    let shared = Arc::new(shared);
    crate::exchange::behind::start(&shared);
    reload::install(&shared, config);
    if let Some(s) = &shared.spool {
        shared.metrics.spool_depth.set(s.depth() as i64);
    }
    Ok((shared, bytes))
}

/// Serves until `shutdown` resolves.
pub async fn run(
    args: Args,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    install_crypto_provider();
    let transport = args.tls.transport()?;
    let token = match (&args.api_token_file, &listeners.api) {
        (Some(path), _) => Some(api::TokenFile::open(path)?),
        (None, Some(_)) => anyhow::bail!("an API listener needs --api-token-file"),
        (None, None) => None,
    };
    let (shared, loaded) = build(&args).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    if let Some(path) = args.config.clone() {
        let every = Duration::from_millis(args.config_poll_ms);
        background.spawn(reload::watch_config(
            shared.clone(),
            path,
            loaded,
            every,
            stop_rx.clone(),
        ));
    }
    if let Some(tls) = &transport.tls {
        let every = Duration::from_millis(args.tls.tls_poll_ms);
        background.spawn(tls.watch(every, stop_rx.clone()));
    }
    background.spawn(replay_spool(shared.clone(), stop_rx.clone()));
    background.spawn(crate::exchange::lease::upkeep(shared.clone(), stop_rx.clone()));
    log_serving(&args, &listeners, &transport.summary)?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ExternalProcessorServer<Processor>>()
        .await;
    let processor = Processor::new(shared.clone(), Arc::new(transport.peers));
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(
            ExternalProcessorServer::new(processor).max_decoding_message_size(crate::server::MAX_MESSAGE_BYTES),
        );
    let grpc = serve_grpc(router, listeners.grpc, transport.tls, stop_rx.clone());
    let metrics = serve_http(listeners.metrics, probes::router(shared.clone()), stop_rx.clone());
    let api = async {
        match (listeners.api, token) {
            (Some(listener), Some(token)) => serve_http(listener, api::router(shared.clone(), token), stop_rx).await,
            _ => Ok(()),
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let (g, m, a) = tokio::join!(grpc, metrics, api);
    g.context("gRPC server")?;
    m.context("metrics server")?;
    a.context("API server")?;
    drain(&shared).await;
    shared.traces.shutdown().await;
    background.abort_all();
    Ok(())
}

fn log_serving(args: &Args, listeners: &Listeners, transport: &str) -> anyhow::Result<()> {
    let grpc_addr = listeners.grpc.local_addr()?;
    let metrics_addr = listeners.metrics.local_addr()?;
    match &listeners.api {
        Some(api) => tracing::info!(api_addr = %api.local_addr()?, "ledger and spend API serving (bearer token)"),
        None => tracing::info!("ledger and spend API not started: no --api-token-file"),
    }
    tracing::info!(%grpc_addr, %metrics_addr, store = ?args.store, fail_mode = ?args.fail_mode, transport, "tally-extproc serving");
    Ok(())
}

/// Envoy waits for each reply before sending the next message of a stream: without
/// TCP_NODELAY, small replies sit behind delayed ACKs (+ms per call). tonic's own
/// `tcp_nodelay` only applies to listeners it binds itself.
fn with_nodelay(listener: TcpListener) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn
            && let Err(e) = stream.set_nodelay(true)
        {
            tracing::warn!(error = %e, "could not set TCP_NODELAY on a gRPC connection");
        }
        conn
    })
}

/// Serves `router` on `listener` until `stop`: over TLS with `tls`'s live config, else plaintext.
async fn serve_grpc(
    router: Router,
    listener: TcpListener,
    tls: Option<tls_reload::ServerTls>,
    stop: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let tcp = with_nodelay(listener);
    match tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls_accept::incoming(tcp, tls.live()), stopped(stop))
                .await
        }
        None => router.serve_with_incoming_shutdown(tcp, stopped(stop)).await,
    }
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn serve_http(listener: TcpListener, router: axum::Router, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stopped(stop))
        .await
}

/// After the servers stop: lets exchanges still settling finish, then replays the spool once.
async fn drain(shared: &Shared) {
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
    crate::exchange::behind::flush(shared).await;
    crate::exchange::lease::return_all(shared).await;
    // Last chance for spooled charges before exit; what remains stays on disk for the next start.
    if let Err(e) = shared.replay_spool().await {
        tracing::warn!(error = %e, "spool replay at shutdown failed; it stays on disk");
    }
}

async fn replay_spool(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
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
