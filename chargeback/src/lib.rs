//! Chargeback from the durable ledger (the Parquet files `tally ledger-export` writes, in a
//! local directory or object storage): what FinOps does at month end.
//!
//! - [`period`] and [`ledger`]: a billing period in a time zone, and every ledger row in it,
//!   streamed batch by batch from the Parquet files (never the whole ledger in memory).
//! - [`report`]: `tally report`, the statement per cost center / team / tenant / workflow /
//!   model, the model mix and the burn rate, as a table, CSV, JSON, Markdown or HTML.
//! - [`focus`]: the same usage as a FinOps FOCUS dataset (CSV and Parquet).
//! - [`cur`] and [`reconcile`]: `tally reconcile`, the ledger against an AWS CUR 2.0 export at
//!   the bill's grain, the differences explained and the invoice split by team.
//!
//! Aggregation and rendering are pure functions over rows; files and object stores are read
//! only in [`ledger`] and [`cur`], and written only by the CLI entry points.
//! Must not: depend on Kubernetes, Redis or the data plane.

#![forbid(unsafe_code)]

pub mod cur;
pub mod focus;
pub mod ledger;
pub mod period;
pub mod reconcile;
pub mod report;
