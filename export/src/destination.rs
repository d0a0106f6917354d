//! Where the files go: an object store and a key prefix, from one URL. `s3://bucket/prefix`,
//! `gs://bucket/prefix` and `az://container/prefix` (also `abfss://`, `https://…`) take their
//! credentials and options from the environment the way `object_store` reads it
//! (`AWS_*` incl. IRSA's `AWS_WEB_IDENTITY_TOKEN_FILE`, `GOOGLE_*`, `AZURE_*`); a plain
//! path or `file://` URL is a local directory, created if missing, written with fsync.

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::{Error, Result};

/// An object store with the prefix every key is written under.
#[derive(Clone, Debug)]
pub struct Destination {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    shown: String,
}

impl Destination {
    /// Parses `--destination`. Fails on a scheme it does not know or a store it cannot build.
    pub fn from_url(dest: &str) -> Result<Self> {
        let bad = |reason: String| Error::Destination {
            url: dest.to_string(),
            reason,
        };
        let url = match Url::parse(dest) {
            Ok(url) => url,
            // A plain path: a local directory.
            Err(_) => return Self::local(dest).map_err(bad),
        };
        let prefix = url.path().trim_matches('/').to_string();
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => return Self::local(url.path()).map_err(bad),
            "s3" | "s3a" => Arc::new(
                AmazonS3Builder::from_env()
                    .with_url(dest)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            "gs" => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_url(dest)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            "az" | "adl" | "azure" | "abfs" | "abfss" | "https" => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_url(dest)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            other => {
                return Err(bad(format!(
                    "unknown scheme {other:?}: use s3://, gs://, az:// or a directory"
                )));
            }
        };
        // For az:// and https:// the first path segment may be the container, not a prefix.
        let prefix = match url.scheme() {
            "https" => prefix.split_once('/').map(|(_, p)| p.to_string()).unwrap_or_default(),
            _ => prefix,
        };
        Ok(Destination {
            store,
            prefix,
            shown: dest.to_string(),
        })
    }

    fn local(dir: &str) -> std::result::Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| e.to_string())?
            .with_fsync(true);
        Ok(Destination {
            store: Arc::new(store),
            prefix: String::new(),
            shown: dir.to_string(),
        })
    }

    /// The prefix keys are written under ("" for a local directory: the directory is the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Stores `bytes` at `key`, replacing any object there; durable when it returns `Ok`.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let put = |source| Error::Put {
            key: key.to_string(),
            source,
        };
        let path = Path::parse(key).map_err(|e| put(e.into()))?;
        self.store.put(&path, bytes.into()).await.map_err(put)?;
        Ok(())
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_is_a_destination_and_put_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("exports");
        let d = Destination::from_url(root.to_str().unwrap()).unwrap();
        d.put("ledger/year=2026/a.parquet", Bytes::from_static(b"one"))
            .await
            .unwrap();
        d.put("ledger/year=2026/a.parquet", Bytes::from_static(b"two"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("ledger/year=2026/a.parquet")).unwrap(), b"two");
        let url = format!("file://{}", root.display());
        assert_eq!(Destination::from_url(&url).unwrap().prefix(), "");
    }

    #[test]
    fn bucket_urls_keep_their_prefix_and_unknown_schemes_are_named() {
        let d = Destination::from_url("s3://bucket/tally/prod/").unwrap();
        assert_eq!(d.prefix(), "tally/prod");
        let error = Destination::from_url("ftp://host/x").unwrap_err().to_string();
        assert!(error.contains("--destination") && error.contains("\"ftp\""), "{error}");
    }
}
