//! `tally audit`: which attribution fields a team's existing telemetry carries,
//! which are missing, and which are present but wrongly scoped.
//!
//! A sample (a file, a directory of files, stdin) is recognised ([`detect`]),
//! parsed into per-call [`observation::Observation`]s by its format's reader
//! ([`formats`]), and judged field by field ([`checks`]) into a
//! [`report::Report`]: a verdict, the evidence and the fix per field, a score,
//! and the instrumentation work ordered smallest first. [`live`] measures the
//! attribution coverage of a running Tally from its ledger API.
//!
//! Detection and verdicts are plain functions over parsed records; files and
//! the network are read only in [`input`], [`live::fetch`] and [`cli`].
//! Must not: depend on Kubernetes, Redis or the data plane.
#![forbid(unsafe_code)]

pub mod checks;
pub mod cli;
pub mod detect;
pub mod field;
pub mod fix;
pub mod formats;
pub mod input;
pub mod live;
pub mod lookup;
pub mod observation;
pub mod report;

use std::path::PathBuf;

/// Why an audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// A sample whose format could not be recognised or parsed.
    #[error("{name}: {reason}")]
    Sample { name: String, reason: String },
    /// The `--catalog` manifests or compiled config.
    #[error("catalog {path}: {reason}")]
    Catalog { path: PathBuf, reason: String },
    /// `--ledger`: the ledger API could not be read.
    #[error("ledger {url}: {reason}")]
    Ledger { url: String, reason: String },
    #[error("{0}")]
    Usage(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
