//! Blob storage, chosen at start-up: encrypted local files (the embedded default) or an
//! S3-compatible object store (MinIO in the cluster) with server-side encryption. Both keep
//! unapproved bytes in a quarantine area and approved ones in a permanent area; approval
//! moves the blob.

mod local;
mod s3;

use std::pin::Pin;

use axum::body::Bytes;
use futures::Stream;

use crate::core::config::Config;
pub use local::{LocalStore, WriteError, Written};
pub use s3::{CorsSetting, ObjectInfo, Presigned, S3Store, StaleUpload, UploadedPart};

/// Where a blob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Quarantine,
    Permanent,
}

impl Area {
    fn dir(self) -> &'static str {
        match self {
            Area::Quarantine => "quarantine",
            Area::Permanent => "permanent",
        }
    }
}

/// Plaintext bytes of a blob, streamed.
pub type BlobStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// The blob store in use.
pub enum BlobStore {
    Local(LocalStore),
    S3(S3Store),
}

impl BlobStore {
    /// The S3 store when `ARCA_S3_ENDPOINT` is set, else local encrypted files. No request
    /// is made to S3 here; `arca serve` then calls [`S3Store::ensure_bucket`].
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        Ok(match &config.s3 {
            Some(s3) => BlobStore::S3(S3Store::connect(s3)?),
            None => {
                BlobStore::Local(LocalStore::open(&config.blob_dir(), &config.data_dir, config.master_key.as_deref())?)
            }
        })
    }

    /// Moves a blob from quarantine to the permanent area (approval); idempotent.
    pub async fn promote(&self, id: &str) -> anyhow::Result<()> {
        match self {
            BlobStore::Local(store) => Ok(store.promote(id).await?),
            BlobStore::S3(store) => store.promote(id).await,
        }
    }

    /// Removes a blob from every area, and anything half-uploaded; missing is fine.
    pub async fn remove(&self, id: &str) {
        match self {
            BlobStore::Local(store) => store.remove(id).await,
            BlobStore::S3(store) => store.remove(id).await,
        }
    }

    /// Whether the store can be used: the local areas are writable directories (checked
    /// without writing), or the bucket answers.
    pub async fn check(&self) -> anyhow::Result<()> {
        match self {
            BlobStore::Local(store) => store.check(),
            BlobStore::S3(store) => store.check().await,
        }
    }

    /// Removes a half-written local upload (the S3 store has none).
    pub async fn remove_partial(&self, id: &str) {
        if let BlobStore::Local(store) = self {
            store.remove_partial(id).await;
        }
    }

    /// Names of the blobs present in an area (the reconciler compares them with the database).
    pub async fn list(&self, area: Area) -> anyhow::Result<Vec<String>> {
        match self {
            BlobStore::Local(store) => Ok(store.list(area).await?),
            BlobStore::S3(store) => store.list(area).await,
        }
    }

    /// Streams plaintext bytes `[start, end)` of a blob of `size` bytes. Local blobs are
    /// authenticated segment by segment (`wrapped_key` is their data key).
    pub async fn read(
        &self,
        area: Area,
        id: &str,
        wrapped_key: Option<&str>,
        size: u64,
        start: u64,
        end: u64,
    ) -> anyhow::Result<BlobStream> {
        match self {
            BlobStore::Local(store) => {
                let key = wrapped_key.ok_or_else(|| anyhow::anyhow!("the blob has no data key"))?;
                Ok(Box::pin(store.read_range(area, id, key, size, start, end).await?))
            }
            BlobStore::S3(store) => store.read(area, id, start, end).await,
        }
    }
}
