//! The FinOps FOCUS dataset (FinOps Open Cost & Usage Specification) of a period's Bedrock use:
//! one row per team × tenant × workflow × model × region × service tier × price class (token
//! class or unit) × charge period (day or hour), as CSV and Parquet.
//!
//! - [`lines`]: one ledger call split into its price classes, its charge divided among them
//!   exactly (largest remainder at the nano-USD, weighted by the catalog's list prices).
//! - [`dataset`]: the aggregation of those lines into FOCUS rows (pure, interned keys).
//! - [`columns`]: the FOCUS 1.0 and 1.2 column sets as data — name, type, requirement level,
//!   nullability, allowed values — and each column's value for a row.
//! - [`names`]: the AWS region names and model publishers the rows name.
//! - [`output`]: the CSV and Parquet files (the only I/O here).
//! - [`cli`]: `tally report --format focus` — the ledger scanned into the rows, the files written.
//!
//! Money stays exact: the charge is integer nano-USD from the ledger; list prices and costs are
//! integers at 10^-15 USD (a per-1M-token price in nano-USD times a token count), rendered as
//! decimal strings and `DECIMAL(38,15)`. Must not: read the ledger (the caller streams rows in)
//! or use floating point.

pub mod cli;
pub mod columns;
pub mod dataset;
pub mod lines;
pub mod names;
pub mod output;

#[cfg(test)]
mod tests;

use std::fmt;

pub use dataset::{Builder, Context, Dataset, FocusRow};
pub use lines::Class;
pub use output::{Written, write};

/// The FOCUS version a dataset follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FocusVersion {
    /// FOCUS 1.0 (2024): the version the FinOps Foundation's `focus-validator` 1.0.0 checks.
    V1_0,
    /// FOCUS 1.2 (2025), the default: adds `ServiceSubcategory` ("Generative AI"), `SkuMeter`,
    /// `SkuPriceDetails`, account types and pricing-currency columns.
    V1_2,
}

impl FocusVersion {
    pub fn parse(text: &str) -> Result<FocusVersion, FocusError> {
        match text.trim() {
            "1.0" => Ok(FocusVersion::V1_0),
            "1.2" => Ok(FocusVersion::V1_2),
            other => Err(FocusError::Option(format!(
                "--focus-version {other:?}: use 1.2 (the default) or 1.0"
            ))),
        }
    }
}

impl fmt::Display for FocusVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FocusVersion::V1_0 => "1.0",
            FocusVersion::V1_2 => "1.2",
        })
    }
}

/// How long one row's charge period is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grain {
    /// A local day of the period's time zone (23 or 25 hours on a clock change).
    Day,
    Hour,
}

impl Grain {
    pub fn parse(text: &str) -> Result<Grain, FocusError> {
        match text.trim() {
            "day" => Ok(Grain::Day),
            "hour" => Ok(Grain::Hour),
            other => Err(FocusError::Option(format!(
                "--grain {other:?}: use day (the default) or hour"
            ))),
        }
    }
}

/// Which files to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileFormat {
    Csv,
    Parquet,
    Both,
}

impl FileFormat {
    pub fn parse(text: &str) -> Result<FileFormat, FocusError> {
        match text.trim() {
            "csv" => Ok(FileFormat::Csv),
            "parquet" => Ok(FileFormat::Parquet),
            "both" => Ok(FileFormat::Both),
            other => Err(FocusError::Option(format!(
                "--focus-format {other:?}: use both (the default), csv or parquet"
            ))),
        }
    }
}

/// Why a FOCUS dataset could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum FocusError {
    #[error("{0}")]
    Option(String),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding {path}: {reason}")]
    Encode { path: String, reason: String },
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
}
