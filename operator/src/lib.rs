//! The control plane of Tally: the `TeamBudget` and `ModelPricing` custom
//! resources ([`crd`]), the pure compiler that turns them into the data plane's
//! [`CompiledConfig`](tally_extproc::config::CompiledConfig) ([`compiler`]),
//! reading manifests from files for `tally render` ([`manifest`]), the
//! Kubernetes reconciler ([`controller`]) and the `tally` command line ([`cli`]).
//!
//! Everything here except [`controller`] and [`cli`] is pure or file-only: no
//! cluster, no Redis.
#![forbid(unsafe_code)]

pub mod cli;
pub mod compiler;
pub mod controller;
pub mod crd;
pub mod manifest;

use std::path::PathBuf;

/// Why a `tally` command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot serialize the CRDs as YAML: {0}")]
    CrdYaml(#[from] serde_yaml::Error),
    /// Manifests that do not compile; one line per problem, each naming its object and field.
    #[error("{} problem{} found:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n"))]
    Invalid(Vec<String>),
    /// `tally operator` stopped with an error.
    #[error(transparent)]
    Operator(#[from] controller::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
