//! The validating admission webhook `tally operator --webhook-listen` serves: errors at
//! `kubectl apply` time, from the compiler `tally render` and the reconciler use.
//!
//! Every replica serves it (the API server may call any of them through the Service), judging a
//! candidate against watch caches of the cluster's TeamBudgets and ModelPricings kept on every
//! replica (a [`Cluster`]: the controller's reflector caches, handed in by `controller::run`, so
//! this module never imports the controller). The decision is pure
//! ([`review`]); [`server`] carries requests to it over HTTPS; [`certs`] makes and checks the
//! TLS material; [`secret`] keeps it in a Secret (self-managed) or reads it from a directory
//! (cert-manager), and lets only the leader write the configuration's `caBundle`.
//!
//! The webhook is a convenience, not the gate: the chart registers it with
//! `failurePolicy: Ignore`, so an operator that is down never blocks an apply, and the
//! reconciler's `Ready` conditions report whatever got past it.
//!
//! RBAC it adds (shipped in `charts/tally/templates/operator-rbac.yaml` when the webhook is on):
//! - `secrets` (the operator's namespace): `get`, `create`, `update` — self-managed mode only
//! - `admissionregistration.k8s.io` `validatingwebhookconfigurations` (the named one): `get`, `update`

mod args;
pub mod certs;
mod related;
pub mod review;
mod secret;
mod server;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Client;
use kube::api::Api;
use tally_api::crd::{ModelPricing, TeamBudget};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use args::WebhookArgs;

use self::certs::CertBundle;
use self::review::Snapshot;
use self::secret::Source;
use self::server::Judge;

/// The cluster's objects as a cache holds them: what a candidate is judged against.
pub trait Cluster: Send + Sync + 'static {
    /// Whether the cache has listed once, waiting at most `patience` for it.
    fn synced(&self, patience: Duration) -> impl Future<Output = bool> + Send;
    /// Every TeamBudget of the watched namespaces.
    fn teams(&self) -> Vec<Arc<TeamBudget>>;
    fn pricings(&self) -> Vec<Arc<ModelPricing>>;
}

/// How often the certificate is re-read (a renewed cert-manager Secret, another replica's
/// renewal) and, on the leader, the `caBundle` re-checked.
const REFRESH: Duration = Duration::from_secs(30);
/// Between failed first reads of the certificate.
const RETRY: Duration = Duration::from_secs(5);

/// Everything the webhook needs from the operator.
pub struct Webhook<C> {
    pub args: WebhookArgs,
    pub listener: TcpListener,
    pub client: Client,
    /// The operator's namespace: the Secret's and the Service's.
    pub namespace: String,
    pub watch_namespaces: Vec<String>,
    /// `true` while this replica leads.
    pub leader: watch::Receiver<bool>,
    /// The caches, and the stream that fills them (polled for as long as the webhook serves).
    pub cluster: Arc<C>,
    pub fill: BoxStream<'static, ()>,
}

impl<C: Cluster> Webhook<C> {
    /// Serves until `stopped` resolves: first the certificate (retrying until it can be read or
    /// made), then `/validate`, with the caches filling and the material refreshed beside it.
    pub async fn run(self, stopped: impl Future<Output = ()>) {
        let source = self.source();
        let ca_target = match (&source, self.args.webhook_configuration_name.as_str()) {
            (Source::Secret { .. }, name) if !name.is_empty() => Some((
                Api::<ValidatingWebhookConfiguration>::all(self.client.clone()),
                name.to_string(),
            )),
            _ => None,
        };
        tokio::pin!(stopped);
        let (bundle, tls) = tokio::select! {
            _ = &mut stopped => return,
            first = first_material(&source) => first,
        };
        let tls = Arc::new(ArcSwap::new(tls));
        let judge = Judge {
            cluster: self.cluster,
            watch_namespaces: self.watch_namespaces,
        };
        tracing::info!(listen = ?self.listener.local_addr().ok(), "admission webhook serving");
        tokio::select! {
            _ = &mut stopped => {}
            _ = self.fill.for_each(|()| async {}) => tracing::error!("webhook caches stopped"),
            _ = server::serve(self.listener, tls.clone(), judge) => {}
            _ = maintain(&source, &tls, bundle, ca_target, self.leader) => {}
        }
    }

    fn source(&self) -> Source {
        match &self.args.webhook_cert_dir {
            Some(dir) => Source::Dir(dir.clone()),
            None => Source::Secret {
                api: Box::new(Api::namespaced(self.client.clone(), &self.namespace)),
                name: self.args.webhook_secret_name.clone(),
                hosts: certs::service_hosts(
                    &self.args.webhook_service_name,
                    &self.namespace,
                    &self.args.webhook_cert_hosts,
                ),
            },
        }
    }
}

/// The first usable material, however long it takes (a missing Secret permission, a mount not
/// there yet): the webhook serves nothing until then, and `failurePolicy: Ignore` lets applies through.
async fn first_material(source: &Source) -> (CertBundle, Arc<rustls::ServerConfig>) {
    loop {
        let loaded = source
            .load()
            .await
            .and_then(|b| certs::server_config(&b).map(|c| (b, c)).map_err(|e| e.to_string()));
        match loaded {
            Ok(ready) => return ready,
            Err(error) => tracing::warn!(%error, "no webhook certificate yet; retrying"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Keeps the served certificate current and, while leading, the `caBundle` equal to its CA.
async fn maintain(
    source: &Source,
    tls: &ArcSwap<rustls::ServerConfig>,
    mut current: CertBundle,
    ca_target: Option<(Api<ValidatingWebhookConfiguration>, String)>,
    mut leader: watch::Receiver<bool>,
) {
    loop {
        if let Some((api, name)) = ca_target.as_ref().filter(|_| *leader.borrow_and_update()) {
            match secret::ensure_ca_bundle(api, name, &current.ca).await {
                Ok(true) => tracing::info!(configuration = %name, "webhook caBundle set"),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot set the webhook caBundle; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            changed = leader.changed() => if changed.is_err() { tokio::time::sleep(REFRESH).await },
        }
        match source.load().await {
            Ok(bundle) if bundle != current => match certs::server_config(&bundle) {
                Ok(config) => {
                    tls.store(config);
                    current = bundle;
                    tracing::info!("webhook certificate reloaded");
                }
                Err(error) => tracing::warn!(%error, "keeping the previous webhook certificate"),
            },
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot re-read the webhook certificate; keeping it"),
        }
    }
}

/// What the caches hold now, as the pure review reads it.
fn snapshot<C: Cluster>(judge: &Judge<C>, synced: bool) -> Snapshot {
    Snapshot {
        teams: judge.cluster.teams(),
        pricings: judge.cluster.pricings(),
        synced,
        watch_namespaces: judge.watch_namespaces.clone(),
    }
}
