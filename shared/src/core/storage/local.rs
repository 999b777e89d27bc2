//! Local files (the embedded default): encrypted with AES-256-GCM segments under a
//! per-artifact data key wrapped by the master key.

use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::body::Bytes;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::Area;
use crate::core::blobcrypt::{
    segment_offset, segments, IntegrityError, SecretKey, SegmentCipher, HEADER, SEGMENT, TAG,
};
use crate::core::fsutil::write_secret;

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the body is larger than the declared size of {0} bytes")]
    TooLarge(u64),
    #[error("the body ended after {got} of {declared} declared bytes")]
    TooShort { got: u64, declared: u64 },
    #[error("upload interrupted")]
    Interrupted,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a completed write produced.
pub struct Written {
    pub sha256: String,
    pub size: u64,
    /// The blob's data key, wrapped by the master key.
    pub wrapped_key: String,
}

/// Local encrypted blob store.
pub struct LocalStore {
    root: PathBuf,
    master: SecretKey,
}

impl LocalStore {
    /// Opens the store under `root` with the master key from `ARCA_MASTER_KEY` (base64)
    /// or `<data-dir>/master.key` (generated on first start, mode 0600).
    pub fn open(root: &Path, data_dir: &Path, configured_key: Option<&str>) -> anyhow::Result<Self> {
        for area in [Area::Quarantine, Area::Permanent] {
            std::fs::create_dir_all(root.join(area.dir()))
                .with_context(|| format!("storage: cannot create {}", root.join(area.dir()).display()))?;
        }
        let master = match configured_key {
            Some(b64) => {
                let bytes = STANDARD
                    .decode(b64.trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .context("ARCA_MASTER_KEY: must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")?;
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                SecretKey(key)
            }
            None => load_or_create_key(&data_dir.join("master.key"))?,
        };
        Ok(Self { root: root.to_owned(), master })
    }

    /// Key of the HMAC that signs upload URLs, derived from the master key.
    pub fn upload_key(&self) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.master.0).unwrap_or_else(|_| unreachable!());
        mac.update(b"arca upload urls v1");
        mac.finalize().into_bytes().into()
    }

    fn path(&self, area: Area, id: &str) -> PathBuf {
        self.root.join(area.dir()).join(id)
    }

    fn partial(&self, id: &str) -> PathBuf {
        self.root.join(Area::Quarantine.dir()).join(format!("{id}.partial"))
    }

    /// Streams `body` into the quarantine area, encrypting and hashing on the fly. The blob
    /// becomes visible (renamed from `.partial`) only once exactly `declared` bytes arrived.
    pub async fn write<S, E>(&self, id: &str, declared: u64, mut body: S) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let data_key = SecretKey::random();
        let (cipher, header) = SegmentCipher::new_blob(&data_key, id);
        let partial = self.partial(id);
        let result = async {
            let mut file = tokio::fs::File::create(&partial).await?;
            file.write_all(&header).await?;
            let last_index = segments(declared) - 1;
            let (mut hasher, mut buffer, mut index, mut received) =
                (Sha256::new(), Vec::with_capacity(SEGMENT + TAG), 0_u64, 0_u64);
            // Sealed segments are written about 1 MiB at a time.
            let mut out = Vec::with_capacity(WRITE_BATCH + SEGMENT + TAG);
            while let Some(chunk) = body.next().await {
                let mut chunk = chunk.map_err(|_| WriteError::Interrupted)?;
                received += chunk.len() as u64;
                if received > declared {
                    return Err(WriteError::TooLarge(declared));
                }
                hasher.update(&chunk);
                while !chunk.is_empty() {
                    let take = (SEGMENT - buffer.len()).min(chunk.len());
                    buffer.extend_from_slice(&chunk.split_to(take));
                    if buffer.len() == SEGMENT && index < last_index {
                        cipher.seal_in_place(index, false, &mut buffer);
                        out.extend_from_slice(&buffer);
                        buffer.clear();
                        index += 1;
                        if out.len() >= WRITE_BATCH {
                            file.write_all(&out).await?;
                            out.clear();
                        }
                    }
                }
            }
            if received < declared {
                return Err(WriteError::TooShort { got: received, declared });
            }
            cipher.seal_in_place(index, true, &mut buffer);
            out.extend_from_slice(&buffer);
            file.write_all(&out).await?;
            file.flush().await?;
            file.sync_all().await?;
            Ok(hex::encode(hasher.finalize()))
        }
        .await;
        match result {
            Ok(sha256) => {
                tokio::fs::rename(&partial, self.path(Area::Quarantine, id)).await?;
                Ok(Written { sha256, size: declared, wrapped_key: self.master.wrap(&data_key, id) })
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    /// Moves a blob from quarantine to the permanent area (approval); done already is fine.
    pub async fn promote(&self, id: &str) -> std::io::Result<()> {
        match tokio::fs::rename(self.path(Area::Quarantine, id), self.path(Area::Permanent, id)).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.path(Area::Permanent, id).exists() => Ok(()),
            other => other,
        }
    }

    /// Removes a blob from every area (missing files are fine).
    pub async fn remove(&self, id: &str) {
        for path in [self.path(Area::Quarantine, id), self.path(Area::Permanent, id), self.partial(id)] {
            let _ = tokio::fs::remove_file(path).await;
        }
    }

    /// The areas exist and are writable (no file is written).
    pub fn check(&self) -> anyhow::Result<()> {
        for area in [Area::Quarantine, Area::Permanent] {
            let dir = self.root.join(area.dir());
            rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK)
                .map_err(|e| anyhow::anyhow!("{} is not writable: {e}", dir.display()))?;
        }
        Ok(())
    }

    /// Removes a half-written upload.
    pub async fn remove_partial(&self, id: &str) {
        let _ = tokio::fs::remove_file(self.partial(id)).await;
    }

    /// Ids of blob files present in an area (the reconciler compares them with the database).
    pub async fn list(&self, area: Area) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut dir = tokio::fs::read_dir(self.root.join(area.dir())).await?;
        while let Some(entry) = dir.next_entry().await? {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    /// Streams plaintext bytes `[start, end)` of a blob of `size` bytes, authenticating every
    /// segment before any of its bytes are sent. The first segment is checked before this
    /// returns, so a corrupt blob fails with an error instead of a truncated body.
    pub async fn read_range(
        &self,
        area: Area,
        id: &str,
        wrapped_key: &str,
        size: u64,
        start: u64,
        end: u64,
    ) -> anyhow::Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        let data_key = self.master.unwrap_key(wrapped_key, id)?;
        let mut file = tokio::fs::File::open(self.path(area, id)).await.context("blob missing")?;
        let mut header = [0u8; HEADER];
        file.read_exact(&mut header).await.map_err(|_| IntegrityError("blob truncated".into()))?;
        let cipher = SegmentCipher::open(&data_key, id, &header)?;
        let mut reader = SegmentReader { file, cipher, size, last_index: segments(size) - 1 };
        let first = start / SEGMENT as u64;
        let last = (end - 1) / SEGMENT as u64;
        let head = reader.batch(first, last).await?;
        let state = (reader, first, last, start, end, Some(head));
        Ok(futures::stream::try_unfold(state, |(mut reader, index, last, start, end, ready)| async move {
            if index > last {
                return Ok(None);
            }
            let batch = match ready {
                Some(b) => b,
                None => reader.batch(index, last).await.map_err(|e| std::io::Error::other(e.to_string()))?,
            };
            let batch_start = index * SEGMENT as u64;
            let from = usize::try_from(start.saturating_sub(batch_start)).unwrap_or(0);
            let to = usize::try_from((end - batch_start).min(batch.len() as u64)).unwrap_or(0);
            let next = index + BATCH_SEGMENTS.min(last - index + 1);
            let mut bytes = Bytes::from(batch);
            bytes.truncate(to);
            Ok(Some((bytes.split_off(from), (reader, next, last, start, end, None))))
        }))
    }
}

/// Bytes of sealed segments gathered before each write of an upload.
const WRITE_BATCH: usize = 1 << 20;

/// Segments read and decrypted per step of a download (about 1 MiB).
const BATCH_SEGMENTS: u64 = 16;

struct SegmentReader {
    file: tokio::fs::File,
    cipher: SegmentCipher,
    size: u64,
    last_index: u64,
}

impl SegmentReader {
    /// Reads, authenticates and decrypts segments `first ..= min(first + batch - 1, last)`.
    async fn batch(&mut self, first: u64, last: u64) -> anyhow::Result<Vec<u8>> {
        let end = (first + BATCH_SEGMENTS - 1).min(last);
        let plain_end = ((end + 1) * SEGMENT as u64).min(self.size);
        let plain_len = usize::try_from(plain_end - first * SEGMENT as u64)?;
        let count = usize::try_from(end - first + 1)?;
        let mut sealed = vec![0u8; plain_len + count * TAG];
        self.file.seek(std::io::SeekFrom::Start(segment_offset(first))).await?;
        self.file.read_exact(&mut sealed).await.map_err(|_| IntegrityError(format!("segment {first} truncated")))?;
        if end == self.last_index {
            // Anything after the last segment means the blob was extended.
            let mut extra = [0u8; 1];
            if self.file.read(&mut extra).await? != 0 {
                return Err(IntegrityError("data after the last segment".into()).into());
            }
        }
        let mut plain = Vec::with_capacity(plain_len);
        for (offset, index) in (first..=end).enumerate() {
            let at = offset * (SEGMENT + TAG);
            let len = (sealed.len() - at).min(SEGMENT + TAG);
            let segment = &mut sealed[at..at + len];
            let n = self.cipher.open_in_place(index, index == self.last_index, segment)?;
            plain.extend_from_slice(&segment[..n]);
        }
        Ok(plain)
    }
}

fn load_or_create_key(path: &Path) -> anyhow::Result<SecretKey> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes);
            Ok(SecretKey(key))
        }
        Ok(_) => anyhow::bail!("storage: {} is not a 32-byte key", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::random();
            write_secret(path, &key.0).with_context(|| format!("storage: cannot write {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("storage: cannot read {}", path.display())),
    }
}
