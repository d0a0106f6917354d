//! Why the operator stopped: the errors `tally operator` reports before exiting. Errors of a
//! single pass are logged and retried, never returned.

use std::net::SocketAddr;

use tally_store::args::RedisArgsError;

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the Kubernetes API server: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot serve {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot read the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: std::path::PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no namespace for the config ConfigMap: outside a cluster, pass --config-map-namespace \
         (or TALLY_CONFIG_MAP_NAMESPACE); in a pod it defaults to the pod's namespace"
    )]
    NoNamespace,
    #[error(transparent)]
    Redis(#[from] RedisArgsError),
}

/// `Result` of the controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;
