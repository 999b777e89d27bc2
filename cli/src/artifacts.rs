//! The artifact commands: push, pull, status, ls, show, scan-results, rescan, release,
//! and `verify` (offline).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use arca_client::{Artifact, PushOptions, Search, Source, Status};
use base64::Engine;
use serde_json::json;

use crate::output::{progress_bar, Failure, Out, Outcome};
use crate::session::connect;

fn size_text(size: i64) -> String {
    let size = size as f64;
    if size >= 1_048_576.0 {
        format!("{:.1} MiB", size / 1_048_576.0)
    } else if size >= 1024.0 {
        format!("{:.1} KiB", size / 1024.0)
    } else {
        format!("{size} B")
    }
}

fn value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// A final status other than approved is a refusal by policy (exit 3).
fn refused_unless_approved(artifact: &Artifact) -> Outcome {
    if artifact.status == Status::Approved {
        return Ok(());
    }
    let reason = artifact.status_reason.as_deref().unwrap_or("no reason given");
    Err(Failure::refused(
        anyhow::anyhow!("{}@{} is {}: {reason}", artifact.name, artifact.version, artifact.status),
        Some(value(artifact)),
    ))
}

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| Failure::usage(format!("--label {l}: expected key=value")))
        })
        .collect()
}

/// What an API token needs to push (and to watch its own upload's status).
const PUSH_SCOPES: &str =
    "pushing needs the permissions artifacts_write and artifacts_read (an API token: both scopes)";

/// `arca push`: the same bytes pushed again report the existing artifact and its status
/// (exit code by status); other bytes under an existing NAME@VERSION are an error.
pub async fn push(file: &Path, name: &str, version: &str, labels: &[String], description: &str, out: &Out) -> Outcome {
    let labels = parse_labels(labels)?;
    let client = connect().await?;
    let options = PushOptions {
        labels,
        description: description.to_owned(),
        progress: Some(progress_bar()),
        ..PushOptions::default()
    };
    let artifact = client.push(name, version, &Source::File(file.to_owned()), &options).await.map_err(|e| {
        let forbidden = e.status() == Some(403);
        let error = anyhow::Error::from(e);
        if forbidden {
            error.context(PUSH_SCOPES)
        } else {
            error
        }
    })?;
    let refused = refused_unless_approved(&artifact);
    if refused.is_ok() || !out.json() {
        out.emit(&artifact, || format!("{} {}", artifact.id, artifact.status));
    }
    refused
}

/// `arca pull`: the server's file name is sanitised and the file lands in the current
/// directory unless `-o` says otherwise; kept only if its SHA-256 verifies and, when a
/// signing CA is pinned (`--signing-ca`, `ARCA_SIGNING_CA`, or `arca login --signing-ca FILE`),
/// Arca's signature chains to that CA and verifies. The chain comes from the server, so
/// it counts only through the pinned CA: without one the file is kept, and the result says
/// `signature_verified: false` with how to pin one (never "verified").
pub async fn pull(reference: &str, output: Option<PathBuf>, signing_ca: Option<&Path>, out: &Out) -> Outcome {
    let client = connect().await?;
    let anchor = match signing_ca {
        Some(file) => Some(crate::session::read_signing_ca(file, "--signing-ca")?),
        None => crate::session::pinned_signing_ca(client.server())?,
    };
    let artifact = client.resolve(reference).await?;
    if artifact.status != Status::Approved {
        refused_unless_approved(&artifact)?;
    }
    let target = match output {
        Some(path) => path,
        None => {
            let fallback = format!("{}-{}.bin", artifact.name, artifact.version);
            let name = arca_client::safe_filename(&artifact.filename, &fallback);
            if name != artifact.filename {
                out.note(&format!("arca: the server's file name {:?} was saved as {name:?}", artifact.filename));
            }
            std::env::current_dir().context("the current directory")?.join(name)
        }
    };
    let progress = progress_bar();
    let downloaded = client.download(&artifact.id, &target, &artifact.sha256, Some(&progress)).await?;
    if let Some(anchor) = &anchor {
        // Arca's signature over those bytes, through a chain that leads to the pinned CA.
        let verified = async {
            let signature = client.signature(&artifact.id).await?;
            let der = base64::engine::general_purpose::STANDARD
                .decode(&signature.signature)
                .context("the signature is not base64")?;
            let digest: [u8; 32] = hex::decode(&downloaded.sha256)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("the digest is not 32 bytes"))?;
            let bundle = shared::core::trust::TrustBundle(shared::core::signing::pem_certs(anchor)?);
            let verdict = shared::core::trust::check(&bundle, &digest, &der, &signature.certificate_chain);
            anyhow::ensure!(
                verdict.result == "valid",
                "{} against the pinned signing CA: {}",
                verdict.result,
                verdict.reason
            );
            Ok::<(), anyhow::Error>(())
        }
        .await;
        if let Err(e) = verified {
            downloaded.discard().await;
            return Err(anyhow::anyhow!("signature check failed: {e:#}; the file was deleted").into());
        }
    }
    let verified = anchor.is_some();
    let (sha256, size) = (downloaded.sha256.clone(), downloaded.size);
    let path = downloaded.keep().await?;
    let result =
        json!({"id": artifact.id, "path": path, "sha256": sha256, "size": size, "signature_verified": verified});
    out.emit(&result, || {
        if verified {
            format!("{} sha256 {sha256} and Arca's signature verified", path.display())
        } else {
            format!("{} sha256 {sha256} verified; Arca's signature NOT verified", path.display())
        }
    });
    if !verified {
        out.note(
            "arca: warning: no signing CA is pinned, so Arca's signature was not verified: pass --signing-ca FILE, \
             set ARCA_SIGNING_CA, or sign in with `arca login --signing-ca FILE` (Arca's signing CA, e.g. \
             <data-dir>/signing/ca.pem of `arca serve`)",
        );
    }
    Ok(())
}

fn artifact_text(a: &Artifact) -> String {
    let mut lines = vec![format!("{}@{} {}", a.name, a.version, a.id), format!("status: {}", a.status)];
    if let Some(reason) = &a.status_reason {
        lines.push(format!("reason: {reason}"));
    }
    lines.push(format!("sha256: {}  size: {}", a.sha256, a.size));
    lines.join("\n")
}

pub async fn status(reference: &str, out: &Out) -> Outcome {
    let client = connect().await?;
    let a = client.resolve(reference).await?;
    out.emit(&a, || artifact_text(&a));
    Ok(())
}

/// `arca ls` filters.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Substring of the name.
    #[arg(short, long)]
    pub query: Option<String>,
    /// Exact name.
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub status: Option<Status>,
    /// key=value
    #[arg(long)]
    pub label: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub page: i64,
    #[arg(long, default_value_t = 50)]
    pub per_page: i64,
}

pub async fn ls(args: LsArgs, out: &Out) -> Outcome {
    if let Some(label) = &args.label {
        parse_labels(std::slice::from_ref(label))?;
    }
    let client = connect().await?;
    let search = Search {
        q: args.query,
        name: args.name,
        status: args.status.map(|s| s.as_str().to_owned()),
        label: args.label,
        page: Some(args.page),
        per_page: Some(args.per_page),
        ..Search::default()
    };
    let page = client.search(&search).await?;
    out.emit(&page, || {
        let mut lines: Vec<String> = page
            .items
            .iter()
            .map(|a| {
                format!(
                    "{:<40} {:<14} {:>10}  {}",
                    format!("{}@{}", a.name, a.version),
                    a.status,
                    size_text(a.size),
                    a.id
                )
            })
            .collect();
        lines.push(format!(
            "page {}: {} of {} artifacts ({} per page)",
            page.page,
            page.items.len(),
            page.total,
            page.per_page
        ));
        lines.join("\n")
    });
    Ok(())
}

/// `arca show`: metadata, the reason of its status, the scan summary and Arca's signature.
pub async fn show(reference: &str, out: &Out) -> Outcome {
    let client = connect().await?;
    let a = client.resolve(reference).await?;
    // Fetched by id: the single-artifact answer carries the scan summary.
    let a = client.artifact(&a.id).await?;
    let signature = match client.signature(&a.id).await {
        Ok(s) => Some(s),
        Err(e) if e.status() == Some(404) => None,
        Err(e) => return Err(e.into()),
    };
    let result = json!({"artifact": a, "signature": signature});
    out.emit(&result, || {
        let mut lines = vec![artifact_text(&a)];
        lines.push(format!("file: {}  owner: {}", a.filename, a.owner));
        if !a.labels.is_empty() {
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            lines.push(format!("labels: {}", labels.join(" ")));
        }
        if let Some(scan) = &a.scan {
            let s = &scan.summary;
            lines.push(format!(
                "scan: {} ({}), critical {} high {} medium {} low {} unknown {}, secrets {}, licenses {}",
                scan.status,
                scan.kind.as_deref().unwrap_or("?"),
                s.critical,
                s.high,
                s.medium,
                s.low,
                s.unknown,
                s.secrets,
                s.licenses
            ));
        }
        for reason in &a.policy_reasons {
            lines.push(format!("policy: {} {}: {}", reason.rule, reason.finding, reason.detail));
        }
        match &signature {
            Some(sig) => lines.push(format!(
                "signature: {} by {} ({})",
                sig.algorithm,
                sig.signer.as_ref().map_or("?", |s| s.subject.as_str()),
                if sig.verified { "verifies" } else { "DOES NOT VERIFY" }
            )),
            None => lines.push("signature: none".into()),
        }
        lines.join("\n")
    });
    Ok(())
}

pub async fn scan_results(reference: &str, out: &Out) -> Outcome {
    let client = connect().await?;
    let a = client.resolve(reference).await?;
    let results = client.scan_results(&a.id).await?;
    out.emit(&results, || {
        let f = &results.findings;
        let mut lines = vec![format!("{}@{} {}", a.name, a.version, results.status)];
        if let Some(scan) = &results.scan {
            lines.push(format!(
                "scan {} with Trivy {} (DB {})",
                scan.status,
                scan.trivy_version.as_deref().unwrap_or("?"),
                scan.db_updated_at.as_deref().unwrap_or("?")
            ));
        }
        for v in &f.vulnerabilities {
            lines.push(format!("{:<9} {} {} {} (fixed: {})", v.severity, v.id, v.package, v.installed, v.fixed));
        }
        for s in &f.secrets {
            lines.push(format!(
                "SECRET    {} {}:{}",
                s.rule,
                s.file,
                s.line.map(|l| l.to_string()).unwrap_or_default()
            ));
        }
        for l in &f.licenses {
            lines.push(format!("LICENSE   {} {}", l.name, l.package));
        }
        for r in &results.policy_reasons {
            lines.push(format!("policy: {} {}: {}", r.rule, r.finding, r.detail));
        }
        lines.join("\n")
    });
    Ok(())
}

pub async fn rescan(reference: &str, wait: bool, out: &Out) -> Outcome {
    let client = connect().await?;
    let a = client.resolve(reference).await?;
    if !wait {
        client.rescan(&a.id).await?;
        let result = json!({"id": a.id, "rescan": "requested"});
        out.emit(&result, || format!("rescan of {}@{} requested", a.name, a.version));
        return Ok(());
    }
    let progress = progress_bar();
    let done = client.rescan_and_wait(&a.id, Duration::from_secs(600), Some(&progress)).await?;
    let refused = refused_unless_approved(&done);
    if refused.is_ok() || !out.json() {
        out.emit(&done, || artifact_text(&done));
    }
    refused
}

pub async fn release(reference: &str, reason: &str, out: &Out) -> Outcome {
    let client = connect().await?;
    let a = client.resolve(reference).await?;
    let released = client.release(&a.id, reason).await?;
    out.emit(&released, || artifact_text(&released));
    Ok(())
}

/// `arca verify`: checks a detached signature over FILE without a server.
pub async fn verify(file: &Path, signature: &Path, chain: &Path, trust: Option<&Path>, out: &Out) -> Outcome {
    let raw = std::fs::read(signature).with_context(|| format!("cannot read {}", signature.display()))?;
    let text = String::from_utf8_lossy(&raw);
    let der = base64::engine::general_purpose::STANDARD.decode(text.trim()).unwrap_or(raw);
    let chain_pem = std::fs::read_to_string(chain).with_context(|| format!("cannot read {}", chain.display()))?;
    let (sha256, _) = Source::File(file.to_owned()).digest(None).await?;
    let digest: [u8; 32] = hex::decode(&sha256).context("digest")?.try_into().map_err(|_| anyhow::anyhow!("digest"))?;
    let (result, reason) = match trust {
        Some(bundle) => {
            let trust = shared::core::trust::TrustBundle::load(Some(bundle))?;
            let verdict = shared::core::trust::check(&trust, &digest, &der, &chain_pem);
            if verdict.result != "valid" {
                return Err(anyhow::anyhow!("{}: {}", verdict.result, verdict.reason).into());
            }
            (verdict.result, verdict.reason)
        }
        None => {
            shared::core::signing::verify_detached(&digest, &der, &chain_pem)
                .map_err(|e| anyhow::anyhow!("invalid: {e}"))?;
            (
                "valid".to_owned(),
                "the signature verifies with the chain's certificate (no trust bundle given)".to_owned(),
            )
        }
    };
    let value =
        json!({"file": file, "sha256": sha256, "result": result, "reason": reason, "trust_checked": trust.is_some()});
    out.emit(&value, || match trust {
        Some(_) => format!("{} sha256 {sha256}: valid ({reason})", file.display()),
        None => format!(
            "{} sha256 {sha256}: signature valid for the chain's certificate (not checked against a trust bundle: pass --trust)",
            file.display()
        ),
    });
    Ok(())
}
