//! Running the operator: the probes server, the leader election and, while this replica leads,
//! the [`Reconciler`]. Shutdown stops reconciling first, then releases the Lease, then stops
//! serving, so a successor can take over while this replica still answers its probes. The
//! admission webhook, when `--webhook-listen` is set, serves on every replica, leading or not.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::args::{OperatorArgs, Settings};
use super::clients::Clients;
use super::error::{Error, Result};
use super::leader::LeaderElector;
use super::reconciler::Reconciler;
use super::telemetry::{self, Metrics, Probe};
use super::watch::Watches;
use crate::webhook::Webhook;

/// Runs the operator from the environment: in-cluster or kubeconfig credentials, `--metrics-listen`
/// bound here, stopping on SIGTERM or Ctrl-C.
pub async fn main(args: OperatorArgs) -> Result<()> {
    // Both rustls providers are compiled into this binary (aws-lc-rs from kube's
    // features, ring through other crates); a `rediss://` Redis URL would make
    // rustls panic rather than pick one, so pick explicitly. Err = already installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = client(args.kubeconfig.as_deref()).await?;
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|source| Error::Listen {
            addr: args.metrics_listen,
            source,
        })?;
    run(args, client, listener, shutdown_signal()).await
}

/// A client from `kubeconfig` if given, else kube's defaults (in-cluster, `$KUBECONFIG`, `~/.kube/config`).
async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client> {
    let Some(path) = kubeconfig else {
        return Client::try_default().await.map_err(Error::Client);
    };
    let bad = |source| Error::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let file = kube::config::Kubeconfig::read_from(path).map_err(bad)?;
    let config = kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(bad)?;
    Client::try_from(config).map_err(Error::Client)
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
    let settings = Settings::from_args(&args)?;
    let webhook_listener = match args.webhook.webhook_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Listen { addr, source })?,
        ),
        None => None,
    };
    let metrics = Arc::new(Metrics::default());
    let reachable = Arc::new(AtomicBool::new(false));
    let router = telemetry::router(Probe {
        metrics: metrics.clone(),
        reachable: reachable.clone(),
    });
    let http = Background::spawn(|stopped| async move {
        if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
            tracing::error!(%error, "metrics server failed");
        }
    });
    let (leader_tx, leader_rx) = watch::channel(false);
    let elector = LeaderElector::new(client.clone(), settings.lease.clone(), reachable);
    let elector = Background::spawn(|stopped| elector.run(leader_tx, stopped));
    let webhook = webhook_listener.map(|listener| {
        let (caches, fill) = Watches::start_caches(&client, &settings.watch_namespaces);
        let webhook = Webhook {
            args: args.webhook.clone(),
            listener,
            client: client.clone(),
            namespace: settings.namespace.clone(),
            watch_namespaces: settings.watch_namespaces.clone(),
            leader: leader_rx.clone(),
            cluster: Arc::new(caches),
            fill,
        };
        Background::spawn(|stopped| webhook.run(stopped))
    });

    let identity = settings.identity.clone();
    let mut reconciler = Reconciler::new(
        settings,
        Clients {
            kube: client,
            metrics: metrics.clone(),
        },
    );
    tracing::info!(%identity, "tally operator started");
    follow_leadership(&mut reconciler, &metrics, leader_rx, shutdown).await;
    elector.stop().await;
    if let Some(webhook) = webhook {
        webhook.stop().await;
    }
    http.stop().await;
    tracing::info!("tally operator stopped");
    Ok(())
}

/// Reconciles during each leadership term until `shutdown`; `tally_operator_leader` says when.
async fn follow_leadership(
    reconciler: &mut Reconciler,
    metrics: &Metrics,
    mut leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            changed = leader.wait_for(|l| *l) => { if changed.is_err() { break } }
        }
        metrics.leader.set(1);
        let lost = {
            let mut rx = leader.clone();
            async move {
                let _ = rx.wait_for(|l| !*l).await;
            }
        };
        tokio::select! {
            _ = &mut shutdown => { metrics.leader.set(0); break }
            _ = lost => tracing::warn!("not the leader any more; reconciling stops"),
            _ = reconciler.lead() => {}
        }
        metrics.leader.set(0);
    }
}

/// A task that runs until told to stop.
struct Background {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Background {
    /// Spawns `task(stopped)`; `stopped` resolves on [`Background::stop`].
    fn spawn<F>(task: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, mut stopped) = watch::channel(false);
        let stopped = Box::pin(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        Background {
            stop,
            task: tokio::spawn(task(stopped)),
        }
    }

    /// Signals the task to stop and waits for it.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
