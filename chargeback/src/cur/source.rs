//! Where a bill is read from: a file, a directory of files (searched recursively, as a CUR 2.0
//! data export lays out `BILLING_PERIOD=2026-11/…` folders), or an object-store URL (`s3://`,
//! `gs://`, `az://`; credentials and `AWS_ENDPOINT_URL` from the environment, as the ledger).
//! Whole objects are fetched: a month of Bedrock lines is small next to the ledger.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use super::CurError;

/// One file of the export, its bytes and how to decode them.
pub struct Object {
    pub name: String,
    pub bytes: bytes::Bytes,
}

/// The format of a file, by its name (`.gz` may hold CSV only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
    CsvGzip,
}

impl Format {
    pub fn of(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".parquet") || lower.ends_with(".snappy.parquet") {
            Some(Format::Parquet)
        } else if lower.ends_with(".csv.gz") || lower.ends_with(".gz") {
            Some(Format::CsvGzip)
        } else if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else {
            None
        }
    }
}

/// The export's data files at `location`, sorted by name; an error when there are none.
pub async fn fetch(location: &str) -> Result<Vec<Object>, CurError> {
    let objects = match Url::parse(location) {
        Ok(url) if url.scheme() != "file" && url.scheme().len() > 1 => remote(location, &url).await?,
        Ok(url) => {
            let path = url
                .to_file_path()
                .map_err(|()| bad(location, "not a local path".into()))?;
            local(location, &path)?
        }
        Err(_) => local(location, std::path::Path::new(location))?,
    };
    if objects.is_empty() {
        return Err(bad(location, "holds no .parquet, .csv or .csv.gz file".into()));
    }
    Ok(objects)
}

fn bad(location: &str, reason: String) -> CurError {
    CurError::Source {
        location: location.to_string(),
        reason,
    }
}

fn local(location: &str, path: &std::path::Path) -> Result<Vec<Object>, CurError> {
    let mut files = vec![];
    let mut pending = vec![path.to_path_buf()];
    while let Some(p) = pending.pop() {
        let meta = std::fs::metadata(&p).map_err(|e| bad(location, format!("{}: {e}", p.display())))?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&p).map_err(|e| bad(location, format!("{}: {e}", p.display())))?;
            for entry in entries {
                pending.push(entry.map_err(|e| bad(location, e.to_string()))?.path());
            }
        } else if p == path || Format::of(&p.to_string_lossy()).is_some() {
            files.push(p);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(|e| bad(location, format!("{}: {e}", p.display())))?;
            Ok(Object {
                name: p.display().to_string(),
                bytes: bytes.into(),
            })
        })
        .collect()
}

async fn remote(location: &str, url: &Url) -> Result<Vec<Object>, CurError> {
    // The builders read the same variables their `from_env` would (AWS_*, GOOGLE_*, AZURE_*).
    let (store, path) =
        object_store::parse_url_opts(url, std::env::vars()).map_err(|e| bad(location, e.to_string()))?;
    let mut keys = match Format::of(path.as_ref()) {
        Some(_) => vec![path],
        None => store
            .list(Some(&path))
            .map_ok(|meta| meta.location)
            .try_filter(|key| std::future::ready(Format::of(key.as_ref()).is_some()))
            .try_collect::<Vec<Path>>()
            .await
            .map_err(|e| bad(location, format!("cannot list: {e}")))?,
    };
    keys.sort();
    let mut objects = Vec::with_capacity(keys.len());
    for key in keys {
        objects.push(get(location, store.as_ref(), key).await?);
    }
    Ok(objects)
}

async fn get(location: &str, store: &dyn ObjectStore, key: Path) -> Result<Object, CurError> {
    let failed = |e: object_store::Error| bad(location, format!("cannot read {key}: {e}"));
    let bytes = store.get(&key).await.map_err(failed)?.bytes().await.map_err(failed)?;
    Ok(Object {
        name: key.to_string(),
        bytes,
    })
}
