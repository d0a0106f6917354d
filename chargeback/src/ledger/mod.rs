//! Reading the durable ledger: the Parquet files `tally ledger-export` wrote (layout and
//! schema in `docs/ledger.md`) in a local directory or an object store, streamed row by row
//! to a visitor. The only place chargeback reads the ledger; what is done with the rows is
//! someone else's (pure) business.
//!
//! A scan lists only the UTC day folders (`ledger/year=/month=/day=`) that can hold rows of
//! its range, reads only the columns in [`columns::PROJECTED`], and holds one record batch of
//! one file at a time, so memory does not grow with the ledger. No deduplication: the
//! exporter's file keys are deterministic (a retried export overwrites the same object), so
//! a row appears twice only if someone copied or compacted files badly.

mod columns;
mod reader;

use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreScheme};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::ParquetMetaData;
use tally_config::tariff::Units;
use url::Url;

use columns::{Columns, PROJECTED};
use reader::ObjectReader;

/// The key-value metadata key holding a file's schema version (written by the exporter).
pub const VERSION_KEY: &str = "tally.ledger.schema_version";
/// The schema versions this reader knows.
pub const KNOWN_VERSIONS: &[&str] = &["1"];
/// Folder of the Parquet files under the destination's prefix.
const LEDGER_DIR: &str = "ledger";
/// Rows per decoded batch: large enough to amortize decoding, small enough to stay in cache.
const BATCH_ROWS: usize = 8192;

/// A ledger: an object store and the prefix the exporter wrote under.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    shown: String,
}

/// One ledger row, borrowed from the batch being read.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    pub time: Timestamp,
    pub stream_id: &'a str,
    pub request_id: &'a str,
    pub charge_id: &'a str,
    pub team: &'a str,
    pub tenant: Option<&'a str>,
    pub workflow: Option<&'a str>,
    pub operation: &'a str,
    pub model_id: &'a str,
    pub model: &'a str,
    pub region: &'a str,
    pub service_tier: Option<&'a str>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
    /// What the call was billed for besides tokens (zero where the file has nulls).
    pub units: Units,
    pub status: i32,
    pub outcome: &'a str,
    pub cost_nanos: i64,
    pub unpriced: bool,
    pub price_source: &'a str,
}

/// Which columns a scan decodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Projection {
    /// Every column of [`Row`].
    #[default]
    All,
    /// All but the three per-call ids (`stream_id`, `request_id`, `charge_id`, then empty):
    /// the unique strings are most of the decoding, and totals do not need them.
    WithoutIds,
}

/// What a scan read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Parquet files opened.
    pub files: usize,
    /// Rows handed to the visitor (those inside the range).
    pub rows: u64,
    /// Size of the files opened (what was read is less: only the projected columns).
    pub bytes: u64,
}

/// Why the ledger could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("invalid --ledger {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot list {folder} in {ledger}: {source}")]
    List {
        ledger: String,
        folder: String,
        // Boxed: the store's error is large and this one travels up through every caller.
        source: Box<object_store::Error>,
    },
    #[error("cannot read {file}: {reason}")]
    Read { file: String, reason: String },
    #[error(
        "{file} holds ledger schema version {found:?}; this tally reads version(s) {known:?} (docs/ledger.md): \
         read it with the tally that wrote it, or upgrade"
    )]
    Version {
        file: String,
        found: String,
        known: &'static [&'static str],
    },
}

impl Ledger {
    /// A local directory (plain path or file://) or s3:// gs:// az:// URL: the --destination the exporter wrote to.
    /// Object-store credentials/endpoint from the environment like the exporter (AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, ...).
    pub fn open(url: &str) -> Result<Ledger, LedgerError> {
        let bad = |reason: String| LedgerError::Url {
            url: url.to_string(),
            reason,
        };
        let parsed = match Url::parse(url) {
            Ok(u) if u.scheme() == "file" => {
                let dir = u.to_file_path().map_err(|()| bad("not a local path".into()))?;
                return Ledger::local(&dir.to_string_lossy(), url).map_err(bad);
            }
            Ok(u) => u,
            Err(_) => return Ledger::local(url, url).map_err(bad),
        };
        let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| bad(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::AmazonS3 => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            ObjectStoreScheme::GoogleCloudStorage => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            ObjectStoreScheme::MicrosoftAzure => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            other => {
                return Err(bad(format!(
                    "{other:?} is not a ledger store: use s3://, gs://, az:// or a directory"
                )));
            }
        };
        Ok(Ledger {
            store,
            prefix: prefix.to_string(),
            shown: url.to_string(),
        })
    }

    fn local(dir: &str, shown: &str) -> Result<Ledger, String> {
        if !std::path::Path::new(dir).is_dir() {
            return Err(format!("{dir} is not a directory (the exporter's --destination)"));
        }
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| e.to_string())?;
        Ok(Ledger {
            store: Arc::new(store),
            prefix: String::new(),
            shown: shown.to_string(),
        })
    }

    /// Calls `visit` for every ledger row with from <= time < to, reading only the day partitions that can hold them,
    /// batch by batch (bounded memory), projected columns; rows of a schema version it does not know → a clear error.
    pub async fn scan(
        &self,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(&Row<'_>),
    ) -> Result<ScanStats, LedgerError> {
        self.scan_projected(from, to, Projection::All, visit).await
    }

    /// [`Ledger::scan`] decoding only the columns `projection` names.
    pub async fn scan_projected(
        &self,
        from: Timestamp,
        to: Timestamp,
        projection: Projection,
        visit: &mut dyn FnMut(&Row<'_>),
    ) -> Result<ScanStats, LedgerError> {
        let mut stats = ScanStats::default();
        let range = Range { from, to, projection };
        for folder in day_folders(from, to) {
            for file in self.files_in(&folder).await? {
                self.scan_file(&file, range, visit, &mut stats).await?;
            }
        }
        Ok(stats)
    }

    /// The Parquet files directly in one day folder, by key (an absent folder holds none).
    async fn files_in(&self, folder: &str) -> Result<Vec<ObjectMeta>, LedgerError> {
        let path = Path::from(self.key(folder));
        let listed = match self.store.list_with_delimiter(Some(&path)).await {
            Ok(listed) => listed.objects,
            Err(object_store::Error::NotFound { .. }) => vec![],
            Err(source) => {
                return Err(LedgerError::List {
                    ledger: self.shown.clone(),
                    folder: path.to_string(),
                    source: Box::new(source),
                });
            }
        };
        let mut files: Vec<ObjectMeta> = listed
            .into_iter()
            .filter(|m| m.location.as_ref().ends_with(".parquet"))
            .collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(files)
    }

    async fn scan_file(
        &self,
        file: &ObjectMeta,
        Range { from, to, projection }: Range,
        visit: &mut dyn FnMut(&Row<'_>),
        stats: &mut ScanStats,
    ) -> Result<(), LedgerError> {
        let name = format!("{}/{}", self.shown.trim_end_matches('/'), file.location.as_ref());
        let bad = |reason: String| LedgerError::Read {
            file: name.clone(),
            reason,
        };
        let reader = ObjectReader {
            store: self.store.clone(),
            path: file.location.clone(),
            size: file.size,
        };
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|e| bad(e.to_string()))?;
        check_version(builder.metadata(), &name)?;
        let with_ids = projection == Projection::All;
        let names = PROJECTED.iter().skip(if with_ids { 0 } else { 3 }).copied();
        let mask = ProjectionMask::columns(builder.parquet_schema(), names);
        let mut batches = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        stats.files += 1;
        stats.bytes += file.size;
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| bad(e.to_string()))?;
            let columns = Columns::of(&batch, with_ids).map_err(&bad)?;
            for i in 0..batch.num_rows() {
                let time = columns
                    .time(i)
                    .ok_or_else(|| bad(format!("row {i} has a time out of range")))?;
                if from <= time && time < to {
                    visit(&columns.row(i, time));
                    stats.rows += 1;
                }
            }
        }
        Ok(())
    }

    fn key(&self, folder: &str) -> String {
        match self.prefix.trim_matches('/') {
            "" => folder.to_string(),
            p => format!("{p}/{folder}"),
        }
    }
}

/// What one scan reads: its instants and columns.
#[derive(Debug, Clone, Copy)]
struct Range {
    from: Timestamp,
    to: Timestamp,
    projection: Projection,
}

impl std::fmt::Display for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Refuses a file whose schema version this reader does not know. A file without the key
/// (rewritten by a compaction tool that drops key-value metadata) is read by column name, as
/// version 1: a missing or retyped column is then refused by name.
fn check_version(metadata: &ParquetMetaData, file: &str) -> Result<(), LedgerError> {
    let kv = metadata.file_metadata().key_value_metadata();
    let found = kv
        .and_then(|kv| kv.iter().find(|e| e.key == VERSION_KEY))
        .and_then(|e| e.value.clone());
    match found {
        Some(v) if !KNOWN_VERSIONS.contains(&v.as_str()) => Err(LedgerError::Version {
            file: file.to_string(),
            found: v,
            known: KNOWN_VERSIONS,
        }),
        _ => Ok(()),
    }
}

/// The `ledger/year=/month=/day=` folders of the UTC days `[from, to)` touches (the exporter
/// partitions by the UTC day of each row's time).
fn day_folders(from: Timestamp, to: Timestamp) -> Vec<String> {
    if to <= from {
        return vec![];
    }
    let utc = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date();
    let (first, last) = (utc(from), utc(to - jiff::SignedDuration::from_nanos(1)));
    first
        .series(jiff::Span::new().days(1))
        .take_while(|d| *d <= last)
        .map(|d| {
            format!(
                "{LEDGER_DIR}/year={:04}/month={:02}/day={:02}",
                d.year(),
                d.month(),
                d.day()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
