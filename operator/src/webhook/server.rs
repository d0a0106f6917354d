//! The webhook's HTTPS server: an accept loop handshaking each connection with the certificate
//! live at its arrival (swapped when the material changes), and one route, `POST /validate`,
//! that hands the `AdmissionReview` to [`review`] off the async runtime (compiling 10,000 teams
//! is CPU work).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::Cluster;
use super::review::review;

/// A client has this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an admission waits for the caches' first list before judging the candidate alone.
const SYNC_PATIENCE: Duration = Duration::from_secs(2);

/// What a request is judged against.
pub struct Judge<C> {
    pub cluster: Arc<C>,
    /// Namespaces whose TeamBudgets the operator compiles; empty: all.
    pub watch_namespaces: Vec<String>,
}

impl<C> Clone for Judge<C> {
    fn clone(&self) -> Self {
        Judge {
            cluster: self.cluster.clone(),
            watch_namespaces: self.watch_namespaces.clone(),
        }
    }
}

/// Serves `/validate` on `listener`; runs until dropped, which drops every open connection.
pub async fn serve<C: Cluster>(listener: TcpListener, tls: Arc<ArcSwap<ServerConfig>>, judge: Judge<C>) {
    let router = axum::Router::new()
        .route("/validate", post(validate::<C>))
        .with_state(judge);
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "accepting a webhook connection failed");
                continue;
            }
        };
        let acceptor = TlsAcceptor::from(tls.load_full());
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => return tracing::debug!(%peer, %error, "webhook TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "webhook TLS handshake timed out"),
            };
            let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "webhook connection ended with an error");
            }
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

async fn validate<C: Cluster>(
    State(judge): State<Judge<C>>,
    Json(body): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match body.try_into() {
        Ok(request) => request,
        Err(_) => return Json(AdmissionResponse::invalid("an AdmissionReview without a request").into_review()),
    };
    let synced = judge.cluster.synced(SYNC_PATIENCE).await;
    let fallback = AdmissionResponse::from(&request);
    let judged = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let response = review(&request, || super::snapshot(&judge, synced));
        tracing::debug!(
            kind = %request.kind.kind,
            name = %request.name,
            allowed = response.allowed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "admission reviewed"
        );
        response
    })
    .await;
    // A panic in the compiler must not block applies: allow, as `failurePolicy: Ignore` would.
    let response = judged.unwrap_or_else(|error| {
        tracing::error!(%error, "admission review failed; allowing");
        fallback
    });
    Json(response.into_review())
}
