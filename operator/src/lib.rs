//! Tally's control plane at run time: the Kubernetes reconciler
//! ([`controller`]) and the `tally` command line ([`cli`]).
//!
//! The resources, the compiler and the offline commands live in `tally-api`;
//! the contract with the data plane in `tally-config`; reading live counters
//! goes through `tally-store`. This crate adds the cluster: watches, the
//! ConfigMap, status, Events, leader election, and the admission [`webhook`].
#![forbid(unsafe_code)]

pub mod cli;
pub mod controller;
pub mod webhook;

use std::path::PathBuf;

/// Why a `tally` command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// `tally render` or `tally crds` failed.
    #[error(transparent)]
    Api(#[from] tally_api::Error),
    /// `tally audit` failed (or scored below `--fail-under`).
    #[error(transparent)]
    Audit(#[from] tally_audit::Error),
    /// `tally ledger-export` stopped with an error.
    #[error(transparent)]
    LedgerExport(#[from] tally_export::Error),
    /// `tally report` failed.
    #[error(transparent)]
    Report(#[from] tally_chargeback::report::cli::Error),
    /// `tally reconcile` could not read or write.
    #[error(transparent)]
    Reconcile(#[from] tally_chargeback::reconcile::ReconcileError),
    /// `tally reconcile` ran: the unexplained difference exceeds the tolerance.
    #[error(transparent)]
    Unexplained(#[from] tally_chargeback::reconcile::cli::Unexplained),
    /// `tally operator` stopped with an error.
    #[error(transparent)]
    Operator(#[from] controller::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
