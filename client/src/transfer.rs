//! The upload flow (create → one PUT or parts, resumed → complete → wait for a final
//! status) and the verified download, written once for the CLI, the tests and the benches.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::progress::{Meter, Phase, Progress};
use crate::types::{Artifact, NewArtifact, PartRequest, Status, UploadTarget};
use crate::{endpoints, Client, Error, Problem, Result};

/// The bytes of an artifact: a file (streamed from disk) or memory.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Bytes(bytes::Bytes),
}

impl Source {
    pub fn bytes(bytes: impl Into<bytes::Bytes>) -> Self {
        Source::Bytes(bytes.into())
    }

    /// The file name to declare when none is given.
    fn default_filename(&self) -> Option<String> {
        match self {
            Source::File(path) => path.file_name().and_then(|n| n.to_str()).map(str::to_owned),
            Source::Bytes(_) => None,
        }
    }

    /// SHA-256 (hex) and size of the whole source.
    pub async fn digest(&self, progress: Option<&Progress>) -> Result<(String, u64)> {
        match self {
            Source::Bytes(b) => Ok((hex::encode(Sha256::digest(b)), b.len() as u64)),
            Source::File(path) => {
                let size = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
                    .len();
                let meter = Meter::new(progress, Phase::Hashing, size);
                let sha = sha256_range(path, 0, size, Some(&meter)).await?;
                Ok((sha, size))
            }
        }
    }

    /// Bytes `[offset, offset + len)` as a request body (streamed from disk for files).
    async fn body(&self, offset: u64, len: u64, meter: &std::sync::Arc<Meter>) -> Result<reqwest::Body> {
        match self {
            Source::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                let end = usize::try_from(offset + len).unwrap_or(usize::MAX).min(b.len());
                meter.advance(len);
                Ok(reqwest::Body::from(b.slice(start..end)))
            }
            Source::File(path) => {
                let mut file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
                file.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
                let meter = meter.clone();
                let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 1 << 20)
                    .inspect_ok(move |chunk| meter.advance(chunk.len() as u64));
                Ok(reqwest::Body::wrap_stream(stream))
            }
        }
    }

    async fn range_sha256(&self, offset: u64, len: u64) -> Result<String> {
        match self {
            Source::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                let end = usize::try_from(offset + len).unwrap_or(usize::MAX).min(b.len());
                Ok(hex::encode(Sha256::digest(&b[start..end])))
            }
            Source::File(path) => sha256_range(path, offset, len, None).await,
        }
    }
}

async fn sha256_range(path: &Path, offset: u64, len: u64, meter: Option<&Meter>) -> Result<String> {
    let read_error = |e| Error::io(format!("cannot read {}", path.display()), e);
    let mut file = tokio::fs::File::open(path).await.map_err(read_error)?;
    file.seek(std::io::SeekFrom::Start(offset)).await.map_err(read_error)?;
    let mut reader = file.take(len);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer).await.map_err(read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        if let Some(meter) = meter {
            meter.advance(n as u64);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// The declared file name (default: the source file's name, else `NAME.bin`).
    pub filename: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub description: String,
    /// Parts sent at once (multipart uploads).
    pub part_concurrency: usize,
    /// When `NAME@VERSION` exists with the same digest: resume it if it still waits for its
    /// bytes (skip the parts the store holds), else return it (an idempotent push) instead
    /// of failing; with another digest, fail with `artifact_exists` naming both digests.
    pub resume: bool,
    /// Wait this long for a final status after completing; `None`: return at once.
    pub wait: Option<Duration>,
    pub progress: Option<Progress>,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            filename: None,
            labels: BTreeMap::new(),
            description: String::new(),
            part_concurrency: 4,
            resume: true,
            wait: Some(Duration::from_secs(600)),
            progress: None,
        }
    }
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("filename", &self.filename)
            .field("labels", &self.labels)
            .field("part_concurrency", &self.part_concurrency)
            .field("resume", &self.resume)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// A download kept in a partial file beside its target until the caller keeps it.
#[derive(Debug)]
pub struct Downloaded {
    pub target: PathBuf,
    pub partial: PathBuf,
    /// Verified hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: u64,
    /// `X-Arca-Signature` (base64 DER) as the server sent it.
    pub signature: Option<String>,
}

impl Downloaded {
    /// Moves the verified file to its target.
    pub async fn keep(self) -> Result<PathBuf> {
        tokio::fs::rename(&self.partial, &self.target)
            .await
            .map_err(|e| Error::io(format!("cannot write {}", self.target.display()), e))?;
        Ok(self.target)
    }

    /// Deletes the partial file.
    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.partial).await;
    }
}

/// A file name from the server made safe to create in the current directory: its last
/// path component, without control characters or leading dots; `fallback` when nothing
/// usable is left.
pub fn safe_filename(name: &str, fallback: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() || cleaned.len() > 255 {
        fallback.to_owned()
    } else {
        cleaned.to_owned()
    }
}

impl Client {
    /// Pushes `source` as `NAME@VERSION`: declare, upload (one PUT or parts, resuming an
    /// earlier attempt), complete, then wait for a final status (see [`PushOptions`]).
    /// Returns the artifact as last seen; whether it was approved is the caller's call.
    pub async fn push(&self, name: &str, version: &str, source: &Source, options: &PushOptions) -> Result<Artifact> {
        let progress = options.progress.as_ref();
        let (sha256, size) = source.digest(progress).await?;
        let filename =
            options.filename.clone().or_else(|| source.default_filename()).unwrap_or_else(|| format!("{name}.bin"));
        let declared = NewArtifact {
            name: name.to_owned(),
            version: version.to_owned(),
            filename,
            size,
            sha256: sha256.clone(),
            labels: options.labels.clone(),
            description: options.description.clone(),
        };
        let (id, target) = match self.create_artifact(&declared).await {
            Ok(created) => (created.artifact.id, created.upload),
            Err(Error::Api(mut problem)) if options.resume && problem.code == "artifact_exists" => {
                let existing =
                    self.resolve(&format!("{name}@{version}")).await.map_err(|_| Error::Api(problem.clone()))?;
                if !existing.sha256.eq_ignore_ascii_case(&sha256) {
                    problem.detail = format!(
                        "{name}@{version} exists with other content (its sha256 {}, this file's {sha256}); \
                         a version is immutable: push a new version",
                        existing.sha256
                    );
                    return Err(Error::Api(problem));
                }
                if existing.status != Status::PendingUpload {
                    // The same bytes were pushed before: that push's artifact and status.
                    Meter::new(progress, Phase::Uploading, size).note("already uploaded with the same SHA-256");
                    return match options.wait {
                        Some(timeout) if !existing.status.is_final() => {
                            self.wait_final(&existing.id, timeout, progress).await
                        }
                        _ => Ok(existing),
                    };
                }
                let target = self.reissue_upload(&existing.id).await?;
                Meter::new(progress, Phase::Uploading, size).note("resuming an earlier upload");
                (existing.id, target)
            }
            Err(e) => return Err(e),
        };
        self.upload(&id, &target, source, size, options).await?;
        let completed = self.complete(&id).await?;
        match options.wait {
            Some(timeout) if !completed.status.is_final() => self.wait_final(&id, timeout, progress).await,
            _ => Ok(completed),
        }
    }

    /// Sends the bytes to an upload target: one `PUT`, or the parts the store does not hold yet.
    pub async fn upload(
        &self,
        id: &str,
        target: &UploadTarget,
        source: &Source,
        size: u64,
        options: &PushOptions,
    ) -> Result<()> {
        let meter = std::sync::Arc::new(Meter::new(options.progress.as_ref(), Phase::Uploading, size));
        if !target.is_multipart() {
            let body = source.body(0, size, &meter).await?;
            let response = self.put_to(&target.url, &target.headers, size, body).await?;
            crate::check(response).await?;
            return Ok(());
        }
        let plan = target
            .multipart
            .as_ref()
            .ok_or_else(|| Error::Decode { operation: "createArtifact", detail: "MULTIPART without a plan".into() })?;
        let held: HashSet<(u64, u64)> = self
            .list_parts(id)
            .await?
            .uploaded
            .into_iter()
            .map(|p| (u64::try_from(p.number).unwrap_or(0), u64::try_from(p.size).unwrap_or(0)))
            .collect();
        let mut missing = Vec::new();
        for number in 1..=plan.part_count {
            let offset = (number - 1) * plan.part_size;
            let len = plan.part_size.min(size.saturating_sub(offset));
            if held.contains(&(number, len)) {
                meter.advance(len);
            } else {
                missing.push((number, offset, len));
            }
        }
        if (missing.len() as u64) < plan.part_count {
            meter.note(&format!(
                "{} of {} parts already uploaded",
                plan.part_count - missing.len() as u64,
                plan.part_count
            ));
        }
        futures::stream::iter(missing)
            .map(|(number, offset, len)| {
                let meter = meter.clone();
                async move {
                    let sha256 = source.range_sha256(offset, len).await?;
                    let targets = self.presign_parts(id, vec![PartRequest { number, sha256 }]).await?;
                    let part = targets.parts.into_iter().next().ok_or_else(|| Error::Decode {
                        operation: endpoints::PRESIGN_PARTS.operation_id,
                        detail: "no part target".into(),
                    })?;
                    let body = source.body(offset, len, &meter).await?;
                    let response = self.put_to(&part.url, &part.headers, len, body).await?;
                    crate::check(response).await.map(|_| ()).map_err(|e| match e {
                        Error::Api(mut p) => {
                            p.detail = format!("part {number}: {}", p.detail);
                            Error::Api(p)
                        }
                        other => other,
                    })
                }
            })
            .buffer_unordered(options.part_concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Polls the artifact until its status is final (approved, quarantined, failed, deleted).
    pub async fn wait_final(&self, id: &str, timeout: Duration, progress: Option<&Progress>) -> Result<Artifact> {
        let deadline = Instant::now() + timeout;
        let meter = Meter::new(progress, Phase::Waiting, 0);
        let mut last_status = None;
        let mut delay = Duration::from_millis(50);
        loop {
            let artifact = self.artifact(id).await?;
            if last_status != Some(artifact.status) {
                meter.note(artifact.status.as_str());
                last_status = Some(artifact.status);
            }
            if artifact.status.is_final() {
                return Ok(artifact);
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    id: id.to_owned(),
                    status: artifact.status.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(300));
        }
    }

    /// Asks for a new scan and waits until it has finished (a new scan recorded and a final
    /// status).
    pub async fn rescan_and_wait(&self, id: &str, timeout: Duration, progress: Option<&Progress>) -> Result<Artifact> {
        let previous = self.artifact(id).await?.scan.map(|s| s.id);
        self.rescan(id).await?;
        let deadline = Instant::now() + timeout;
        let meter = Meter::new(progress, Phase::Waiting, 0);
        loop {
            let artifact = self.artifact(id).await?;
            meter.note(artifact.status.as_str());
            let scanned = artifact.scan.as_ref().map(|s| &s.id) != previous.as_ref();
            if scanned && artifact.status.is_final() {
                return Ok(artifact);
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    id: id.to_owned(),
                    status: artifact.status.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Downloads an approved artifact into a partial file beside `target`, following the
    /// store's redirect (S3) without Arca's credentials, and checks its SHA-256 against
    /// `expected_sha256` (and the `X-Arca-Sha256` the server announced). A mismatch deletes
    /// the partial file. [`Downloaded::keep`] moves it into place.
    pub async fn download(
        &self,
        id: &str,
        target: &Path,
        expected_sha256: &str,
        progress: Option<&Progress>,
    ) -> Result<Downloaded> {
        let first = self.send(endpoints::DOWNLOAD.operation_id, self.request(&endpoints::DOWNLOAD, &[id])).await?;
        let header = |response: &reqwest::Response, name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let announced = header(&first, "x-arca-sha256");
        let signature = header(&first, "x-arca-signature");
        let response = if first.status().is_redirection() {
            let location = header(&first, "location").ok_or_else(|| Error::Decode {
                operation: endpoints::DOWNLOAD.operation_id,
                detail: "a redirect without Location".into(),
            })?;
            let location = if location.starts_with('/') { self.url(&location) } else { location };
            let response = self
                .for_url(&location)
                .get(&location)
                .send()
                .await
                .map_err(|e| Error::transport("download from the store", e))?;
            crate::check(response).await?
        } else {
            first
        };
        let size = response.content_length().unwrap_or(0);
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("download");
        let partial = target.with_file_name(format!(".{name}.arca-partial"));
        let meter = Meter::new(progress, Phase::Downloading, size);
        let written = write_stream(response, &partial, Some(&meter)).await;
        let (actual, written) = match written {
            Ok(ok) => ok,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        let expected = expected_sha256.to_ascii_lowercase();
        if actual != expected || announced.as_deref().is_some_and(|a| !a.eq_ignore_ascii_case(&expected)) {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(Error::DigestMismatch { expected, actual });
        }
        Ok(Downloaded { target: target.to_owned(), partial, sha256: actual, size: written, signature })
    }

    /// Downloads an artifact by id, as [`Client::download`], checked against its recorded
    /// digest; the file is kept at `target`.
    pub async fn pull_to(&self, id: &str, target: &Path, progress: Option<&Progress>) -> Result<Downloaded> {
        let artifact = self.artifact(id).await?;
        if artifact.status != Status::Approved {
            return Err(Error::Api(Box::new(Problem {
                status: 409,
                code: "not_approved".into(),
                title: "Conflict".into(),
                detail: format!("artifact is {}", artifact.status),
                retry_after: None,
                body: serde_json::Value::Null,
            })));
        }
        self.download(id, target, &artifact.sha256, progress).await
    }
}

/// Streams a response body into a new file (replacing a stale one); SHA-256 and length.
async fn write_stream(response: reqwest::Response, path: &Path, meter: Option<&Meter>) -> Result<(String, u64)> {
    let write_error = |e| Error::io(format!("cannot write {}", path.display()), e);
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_error(e)),
    }
    // create_new: never through a link someone planted at this name.
    let mut file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(path).await.map_err(write_error)?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::transport("download interrupted", e))?;
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(write_error)?;
        written += chunk.len() as u64;
        if let Some(meter) = meter {
            meter.advance(chunk.len() as u64);
        }
    }
    file.sync_all().await.map_err(write_error)?;
    Ok((hex::encode(hasher.finalize()), written))
}

/// Streams a response body into `path`; its length.
pub(crate) async fn stream_to_file(response: reqwest::Response, path: &Path) -> Result<u64> {
    write_stream(response, path, None).await.map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_file_names_cannot_leave_the_directory() {
        assert_eq!(safe_filename("tool.tar.gz", "x"), "tool.tar.gz");
        assert_eq!(safe_filename("../../etc/passwd", "x"), "passwd");
        assert_eq!(safe_filename("/etc/cron.d/evil", "x"), "evil");
        assert_eq!(safe_filename("..\\..\\win.ini", "x"), "win.ini");
        assert_eq!(safe_filename(".bashrc", "x"), "bashrc");
        assert_eq!(safe_filename("..", "x"), "x");
        assert_eq!(safe_filename("a/", "x"), "x");
        assert_eq!(safe_filename("bad\nname\u{7}", "x"), "badname");
        assert_eq!(safe_filename("", "fallback.bin"), "fallback.bin");
    }
}
