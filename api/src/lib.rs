//! Tally's Kubernetes API: the `TeamBudget` and `ModelPricing` custom
//! resources ([`crd`]), the pure compiler that turns them into the data plane's
//! [`CompiledConfig`](tally_config::compiled::CompiledConfig) ([`compiler`]),
//! reading manifests from files ([`manifest`]) and the offline commands built
//! on them, `tally render` and `tally crds` ([`render`]).
//!
//! Must not: talk to a cluster, Redis or the network, or need an async runtime
//! — kube is used for its derive only, so `tally render` builds from this crate
//! and [`tally_config`] alone. The reconciler that runs the compiler against a
//! cluster lives in `tally-operator`.

pub mod compiler;
pub mod crd;
pub mod manifest;
pub mod render;

/// Why an offline command (`tally render`, `tally crds`) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot serialize the CRDs as YAML: {0}")]
    CrdYaml(#[from] serde_yaml::Error),
    /// Manifests that do not compile; one line per problem, each naming its object and field.
    #[error("{} problem{} found:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n"))]
    Invalid(Vec<String>),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
