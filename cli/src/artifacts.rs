//! `arca push`, `arca pull`, `arca status`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::client::{problem, Client};

/// Progress on stderr: a live line on a terminal, plain lines every 10% otherwise.
struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    tty: bool,
    last_decile: u64,
}

impl Progress {
    fn new(label: &'static str, total: u64) -> Self {
        Self { label, total: total.max(1), done: 0, tty: std::io::stderr().is_terminal(), last_decile: 0 }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        let pct = self.done * 100 / self.total;
        if self.tty {
            eprint!("\r{} {:3}% {:.1}/{:.1} MiB", self.label, pct, mib(self.done), mib(self.total));
        } else if pct / 10 > self.last_decile {
            self.last_decile = pct / 10;
            eprintln!("{} {}% ({:.1}/{:.1} MiB)", self.label, pct, mib(self.done), mib(self.total));
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

fn mib(n: u64) -> f64 {
    n as f64 / 1_048_576.0
}

async fn sha256_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().await?.len();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut progress = Progress::new("hashing", size);
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        progress.advance(n as u64);
    }
    progress.finish();
    Ok((hex::encode(hasher.finalize()), size))
}

/// Statuses an artifact does not leave on its own.
const FINAL: [&str; 4] = ["approved", "quarantined", "failed", "deleted"];

pub async fn push(file: &Path, name: &str, version: &str, labels: &[String]) -> anyhow::Result<()> {
    let client = Client::connect().await?;
    let (sha256, size) = sha256_file(file).await?;
    let filename = file.file_name().and_then(|n| n.to_str()).context("the file name is not valid UTF-8")?;
    let mut label_map = serde_json::Map::new();
    for label in labels {
        let (k, v) = label.split_once('=').with_context(|| format!("--label {label}: expected key=value"))?;
        label_map.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    let response = client
        .request(reqwest::Method::POST, "/api/artifacts")
        .json(&json!({"name": name, "version": version, "filename": filename, "size": size, "sha256": sha256, "labels": label_map}))
        .send()
        .await?;
    let (id, upload) = if response.status() == reqwest::StatusCode::CONFLICT {
        // Resume an earlier push of the same bytes that did not finish.
        let error = problem(response).await;
        let existing = resolve(&client, &format!("{name}@{version}")).await.map_err(|_| error)?;
        if existing["status"] != "pending_upload" || existing["sha256"] != sha256.as_str() {
            bail!("{name}@{version} exists and is immutable (status {})", existing["status"]);
        }
        let id = existing["id"].as_str().context("unexpected answer")?.to_owned();
        let response = client.request(reqwest::Method::POST, &format!("/api/artifacts/{id}/upload")).send().await?;
        if !response.status().is_success() {
            return Err(problem(response).await);
        }
        eprintln!("resuming the upload of {name}@{version} ({id})");
        (id, response.json::<Value>().await?)
    } else if response.status().is_success() {
        let created: Value = response.json().await?;
        let id = created["id"].as_str().context("unexpected answer")?.to_owned();
        eprintln!("created {name}@{version} ({id})");
        (id, created["upload"].clone())
    } else {
        return Err(problem(response).await);
    };
    if upload["method"] == "MULTIPART" {
        put_parts(&client, &id, file, size, &upload).await?;
    } else {
        let url = upload["url"].as_str().context("unexpected answer")?;
        let progress = Arc::new(Mutex::new(Progress::new("uploading", size)));
        put_range(&client, url, &upload["headers"], file, 0, size, &progress).await?;
        progress.lock().map_err(|_| anyhow::anyhow!("progress"))?.finish();
    }
    let response = client.request(reqwest::Method::POST, &format!("/api/artifacts/{id}/complete")).send().await?;
    if !response.status().is_success() {
        return Err(problem(response).await);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let artifact = client.get_json(&format!("/api/artifacts/{id}")).await?;
        let status = artifact["status"].as_str().unwrap_or("?").to_owned();
        if FINAL.contains(&status.as_str()) {
            println!("{id} {status}");
            if status != "approved" {
                bail!(
                    "{name}@{version} is {status}: {}",
                    artifact["status_reason"].as_str().unwrap_or("no reason given")
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{id} still {status} after 10 minutes; check `arca status {id}`");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Sends bytes `[offset, offset + len)` of `file` with one `PUT` (streamed from disk).
async fn put_range(
    client: &Client,
    url: &str,
    headers: &Value,
    file: &Path,
    offset: u64,
    len: u64,
    progress: &Arc<Mutex<Progress>>,
) -> anyhow::Result<()> {
    let mut handle = tokio::fs::File::open(file).await?;
    handle.seek(std::io::SeekFrom::Start(offset)).await?;
    let progress = progress.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(handle.take(len), 1 << 20).map(move |chunk| {
        if let (Ok(c), Ok(mut p)) = (&chunk, progress.lock()) {
            p.advance(c.len() as u64);
        }
        chunk
    });
    let mut request = client.http.put(url).header("content-length", len).body(reqwest::Body::wrap_stream(stream));
    for (k, v) in headers.as_object().into_iter().flatten() {
        request = request.header(k.as_str(), v.as_str().unwrap_or_default());
    }
    let response = request.send().await.context("upload failed")?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        // Arca answers problem+json; an object store answers XML.
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(300).collect());
        bail!("upload refused ({status}): {detail}");
    }
    Ok(())
}

/// Parts uploaded at once.
const PART_CONCURRENCY: usize = 4;

/// Multipart upload: skips the parts the store already holds (a resumed push), then sends
/// the others, each with its own SHA-256 so the store refuses corrupted parts.
async fn put_parts(client: &Client, id: &str, file: &Path, size: u64, upload: &Value) -> anyhow::Result<()> {
    let part_size = upload["multipart"]["part_size"].as_u64().context("unexpected answer")?;
    let part_count = upload["multipart"]["part_count"].as_u64().context("unexpected answer")?;
    let done = client.get_json(&format!("/api/artifacts/{id}/parts")).await?;
    let progress = Arc::new(Mutex::new(Progress::new("uploading", size)));
    let mut missing = Vec::new();
    for number in 1..=part_count {
        let offset = (number - 1) * part_size;
        let len = part_size.min(size - offset);
        let held = done["uploaded"].as_array().into_iter().flatten().any(|p| p["number"] == number && p["size"] == len);
        if held {
            progress.lock().map_err(|_| anyhow::anyhow!("progress"))?.advance(len);
        } else {
            missing.push((number, offset, len));
        }
    }
    if missing.len() < part_count as usize {
        eprintln!("{} of {part_count} parts already uploaded", part_count as usize - missing.len());
    }
    futures::stream::iter(missing)
        .map(|(number, offset, len)| {
            let progress = progress.clone();
            async move {
                let sha256 = sha256_range(file, offset, len).await?;
                let response = client
                    .request(reqwest::Method::POST, &format!("/api/artifacts/{id}/parts"))
                    .json(&json!({"parts": [{"number": number, "sha256": sha256}]}))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    return Err(problem(response).await);
                }
                let targets: Value = response.json().await?;
                let target = &targets["parts"][0];
                let url = target["url"].as_str().context("unexpected answer")?;
                put_range(client, url, &target["headers"], file, offset, len, &progress)
                    .await
                    .with_context(|| format!("part {number}"))
            }
        })
        .buffer_unordered(PART_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    progress.lock().map_err(|_| anyhow::anyhow!("progress"))?.finish();
    Ok(())
}

async fn sha256_range(file: &Path, offset: u64, len: u64) -> anyhow::Result<String> {
    let mut handle = tokio::fs::File::open(file).await?;
    handle.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut reader = handle.take(len);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

async fn resolve(client: &Client, reference: &str) -> anyhow::Result<Value> {
    if let Some((name, version)) = reference.split_once('@') {
        let page = client.get_json(&format!("/api/artifacts?name={name}&version={version}")).await?;
        return page["items"].get(0).cloned().with_context(|| format!("{reference}: no such artifact"));
    }
    client.get_json(&format!("/api/artifacts/{reference}")).await
}

/// Downloads into a temporary file beside the target and keeps it only if its SHA-256 is
/// the recorded one.
pub async fn pull(reference: &str, output: Option<PathBuf>) -> anyhow::Result<()> {
    let client = Client::connect().await?;
    let artifact = resolve(&client, reference).await?;
    let id = artifact["id"].as_str().context("unexpected answer")?;
    let expected = artifact["sha256"].as_str().context("unexpected answer")?.to_owned();
    let filename = artifact["filename"].as_str().context("unexpected answer")?;
    let target = output.unwrap_or_else(|| PathBuf::from(filename));
    let response = client.request(reqwest::Method::GET, &format!("/api/artifacts/{id}/download")).send().await?;
    if !response.status().is_success() {
        return Err(problem(response).await);
    }
    let announced = response.headers().get("x-arca-sha256").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let size = response.content_length().unwrap_or(0);
    let partial = target
        .with_file_name(format!(".{}.arca-partial", target.file_name().and_then(|n| n.to_str()).unwrap_or("download")));
    let mut file =
        tokio::fs::File::create(&partial).await.with_context(|| format!("cannot write {}", partial.display()))?;
    let mut hasher = Sha256::new();
    let mut progress = Progress::new("downloading", size);
    let mut body = response.bytes_stream();
    let outcome: anyhow::Result<String> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("download interrupted")?;
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
            progress.advance(chunk.len() as u64);
        }
        file.sync_all().await?;
        Ok(hex::encode(hasher.finalize()))
    }
    .await;
    progress.finish();
    let actual = match outcome {
        Ok(actual) => actual,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
    };
    if actual != expected || announced.as_deref().is_some_and(|a| a != expected) {
        let _ = tokio::fs::remove_file(&partial).await;
        bail!("digest mismatch: expected sha256 {expected}, got {actual}; the file was deleted");
    }
    // Arca's signature over those bytes, checked with the certificate the server returned.
    let verified = async {
        let signature = client.get_json(&format!("/api/artifacts/{id}/signature")).await?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature["signature"].as_str().unwrap_or_default())
            .context("signature is not base64")?;
        let digest: [u8; 32] =
            hex::decode(&actual)?.try_into().map_err(|_| anyhow::anyhow!("digest is not 32 bytes"))?;
        shared::core::signing::verify_detached(
            &digest,
            &der,
            signature["certificate_chain"].as_str().unwrap_or_default(),
        )
        .map_err(|e| anyhow::anyhow!(e))
    }
    .await;
    if let Err(e) = verified {
        let _ = tokio::fs::remove_file(&partial).await;
        bail!("signature check failed: {e:#}; the file was deleted");
    }
    tokio::fs::rename(&partial, &target).await?;
    println!("{} sha256 {actual} and Arca's signature verified", target.display());
    Ok(())
}

pub async fn status(reference: &str) -> anyhow::Result<()> {
    let client = Client::connect().await?;
    let a = resolve(&client, reference).await?;
    println!(
        "{}@{} {}",
        a["name"].as_str().unwrap_or("?"),
        a["version"].as_str().unwrap_or("?"),
        a["id"].as_str().unwrap_or("?")
    );
    println!("status: {}", a["status"].as_str().unwrap_or("?"));
    if let Some(reason) = a["status_reason"].as_str() {
        println!("reason: {reason}");
    }
    println!("sha256: {}  size: {}", a["sha256"].as_str().unwrap_or("?"), a["size"]);
    Ok(())
}

/// `arca verify`: checks a detached signature over FILE without a server.
pub async fn verify(file: &Path, signature: &Path, chain: &Path, trust: Option<&Path>) -> anyhow::Result<()> {
    let raw = std::fs::read(signature).with_context(|| format!("cannot read {}", signature.display()))?;
    let text = String::from_utf8_lossy(&raw);
    let der = base64::engine::general_purpose::STANDARD.decode(text.trim()).unwrap_or(raw);
    let chain_pem = std::fs::read_to_string(chain).with_context(|| format!("cannot read {}", chain.display()))?;
    let (sha256, _) = sha256_file(file).await?;
    let digest: [u8; 32] = hex::decode(&sha256)?.try_into().map_err(|_| anyhow::anyhow!("digest"))?;
    match trust {
        Some(bundle) => {
            let trust = shared::core::trust::TrustBundle::load(Some(bundle))?;
            let verdict = shared::core::trust::check(&trust, &digest, &der, &chain_pem);
            if verdict.result != "valid" {
                bail!("{}: {}", verdict.result, verdict.reason);
            }
            println!("{} sha256 {sha256}: valid ({})", file.display(), verdict.reason);
        }
        None => {
            shared::core::signing::verify_detached(&digest, &der, &chain_pem)
                .map_err(|e| anyhow::anyhow!("invalid: {e}"))?;
            println!(
                "{} sha256 {sha256}: signature valid for the chain's certificate (not checked against a trust bundle: pass --trust)",
                file.display()
            );
        }
    }
    Ok(())
}
