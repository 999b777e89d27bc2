//! Trivy's databases in Arca's cache dir.
//!
//! The vulnerability DB in use is `<cache>/db`, a symbolic link to one of the versions kept
//! under `<cache>/dbs/`. A new DB (downloaded through Trivy, or imported air-gapped) is
//! checked first — schema version 2, an `UpdatedAt` not older than the DB in use, and Trivy
//! can open it — and then swapped in by replacing the link atomically, so a scan sees
//! either the old DB or the new one, never a mix. A DB that fails a check is refused and
//! the old one keeps serving.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

/// How Arca downloads the vulnerability DB (connected machines).
#[derive(Debug, Clone)]
pub struct Download {
    /// OCI repository of the DB; None: Trivy's default.
    pub repository: Option<String>,
    /// Allow a plain-HTTP or self-signed registry.
    pub insecure: bool,
    /// How often to look for a newer DB.
    pub interval: Duration,
    /// Longest a download may take.
    pub timeout: Duration,
}

/// `UpdatedAt` of the DB in `db_dir` (`metadata.json`).
pub fn updated_at(db_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(db_dir.join("metadata.json")).ok()?;
    let meta: serde_json::Value = serde_json::from_str(&text).ok()?;
    meta["UpdatedAt"].as_str().map(str::to_owned)
}

fn timestamp(updated_at: &str) -> anyhow::Result<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(updated_at).with_context(|| format!("UpdatedAt {updated_at:?} is not a time"))
}

/// A `<cache>/db` that is a plain directory (an older layout, or a hand copy) becomes a
/// version under `dbs/` with the link pointing to it.
pub fn adopt_legacy_layout(cache_dir: &Path) -> anyhow::Result<()> {
    let db = cache_dir.join("db");
    let Ok(meta) = std::fs::symlink_metadata(&db) else { return Ok(()) };
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Ok(());
    }
    let dbs = cache_dir.join("dbs");
    std::fs::create_dir_all(&dbs)?;
    let target = dbs.join(format!("adopted-{}", uuid::Uuid::new_v4().simple()));
    std::fs::rename(&db, &target).with_context(|| format!("cannot move {}", db.display()))?;
    point_to(cache_dir, &target)
}

/// Makes `<cache>/db` point to `target`, atomically (a new link renamed over the old one).
fn point_to(cache_dir: &Path, target: &Path) -> anyhow::Result<()> {
    let relative = target.strip_prefix(cache_dir).unwrap_or(target);
    let link = cache_dir.join(format!(".db-{}", uuid::Uuid::new_v4().simple()));
    std::os::unix::fs::symlink(relative, &link).context("cannot create the DB link")?;
    std::fs::rename(&link, cache_dir.join("db")).context("cannot swap the DB link")?;
    Ok(())
}

/// Checks the DB in `source` (`trivy.db` + `metadata.json`) and swaps it in. With `trivy`,
/// also checks that Trivy opens it. Returns the new `UpdatedAt`, or None when it is the DB
/// already in use.
pub async fn install(source: &Path, cache_dir: &Path, trivy: Option<&Path>) -> anyhow::Result<Option<String>> {
    let meta_text = std::fs::read_to_string(source.join("metadata.json"))
        .with_context(|| format!("{}: no metadata.json", source.display()))?;
    let meta: serde_json::Value = serde_json::from_str(&meta_text).context("metadata.json is not JSON")?;
    anyhow::ensure!(
        meta["Version"] == 2,
        "metadata.json: Version must be 2 (Trivy DB schema v2), got {}",
        meta["Version"]
    );
    let new = meta["UpdatedAt"].as_str().context("metadata.json: no UpdatedAt")?.to_owned();
    let new_time = timestamp(&new)?;
    let db = source.join("trivy.db");
    anyhow::ensure!(db.is_file(), "{}: no trivy.db", source.display());
    if let Some(current) = updated_at(&cache_dir.join("db")) {
        if current == new {
            return Ok(None);
        }
        if let Ok(current_time) = timestamp(&current) {
            anyhow::ensure!(
                new_time >= current_time,
                "the new DB (UpdatedAt {new}) is older than the DB in use ({current}): refused"
            );
        }
    }
    let dbs = cache_dir.join("dbs");
    std::fs::create_dir_all(&dbs).with_context(|| format!("cannot create {}", dbs.display()))?;
    let name = format!("{}-{}", new_time.timestamp(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let staging = dbs.join(format!(".{name}"));
    std::fs::create_dir(&staging)?;
    let result = async {
        std::fs::copy(&db, staging.join("trivy.db")).context("copying trivy.db")?;
        std::fs::File::open(staging.join("trivy.db"))?.sync_all()?;
        std::fs::write(staging.join("metadata.json"), &meta_text)?;
        if let Some(trivy) = trivy {
            check_opens(trivy, &staging).await?;
        }
        let target = dbs.join(&name);
        std::fs::rename(&staging, &target)?;
        let previous = std::fs::read_link(cache_dir.join("db")).ok().map(|p| cache_dir.join(p));
        point_to(cache_dir, &target)?;
        prune(&dbs, &target, previous.as_deref());
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result?;
    Ok(Some(new))
}

/// Keeps the DB in use and the one before it (a scan may still read it); removes the rest.
fn prune(dbs: &Path, current: &Path, previous: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(dbs) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path != current && Some(path.as_path()) != previous && !name.starts_with('.') {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Trivy opens the DB in `db_dir`: an offline scan of an empty directory with it succeeds.
async fn check_opens(trivy: &Path, db_dir: &Path) -> anyhow::Result<()> {
    let probe = tempfile::tempdir()?;
    let cache = probe.path().join("cache");
    let empty = probe.path().join("empty");
    std::fs::create_dir_all(&cache)?;
    std::fs::create_dir_all(&empty)?;
    std::os::unix::fs::symlink(db_dir, cache.join("db"))?;
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(trivy)
            .args(["rootfs", "--scanners", "vuln", "--skip-db-update", "--skip-java-db-update", "--offline-scan"])
            .args(["--skip-version-check", "--disable-telemetry", "--quiet", "--format", "json", "--cache-dir"])
            .arg(&cache)
            .arg(&empty)
            .env_clear()
            .env("HOME", probe.path())
            .env("TMPDIR", probe.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("Trivy did not open the new DB in time")??;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let last = err.lines().last().unwrap_or("").chars().take(300).collect::<String>();
        anyhow::bail!("Trivy cannot open the new DB: {last}");
    }
    Ok(())
}

/// Air-gapped import of a DB directory (`arca admin trivy-db-import`).
pub async fn import(source: &Path, cache_dir: &Path, trivy: Option<&Path>) -> anyhow::Result<String> {
    std::fs::create_dir_all(cache_dir).with_context(|| format!("cannot create {}", cache_dir.display()))?;
    adopt_legacy_layout(cache_dir)?;
    match install(source, cache_dir, trivy).await? {
        Some(updated_at) => Ok(updated_at),
        None => Ok(updated_at(&cache_dir.join("db")).unwrap_or_default()),
    }
}

/// Downloads the DB through Trivy into a staging directory, then checks and installs it.
/// Returns the new `UpdatedAt`, or None when the DB in use is already the newest.
pub async fn update(trivy: &Path, cache_dir: &Path, download: &Download) -> anyhow::Result<Option<String>> {
    std::fs::create_dir_all(cache_dir)?;
    let staging = tempfile::Builder::new().prefix(".download-").tempdir_in(cache_dir)?;
    let mut command = tokio::process::Command::new(trivy);
    command
        .args(["image", "--download-db-only", "--no-progress", "--quiet", "--skip-version-check"])
        .args(["--disable-telemetry", "--cache-dir"])
        .arg(staging.path());
    if let Some(repository) = &download.repository {
        command.arg("--db-repository").arg(repository);
    }
    if download.insecure {
        command.arg("--insecure");
    }
    let output = tokio::time::timeout(
        download.timeout,
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", staging.path())
            .env("TMPDIR", staging.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("the DB download took too long")??;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let last: String = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").chars().take(400).collect();
        anyhow::bail!("downloading the vulnerability DB failed: {last}");
    }
    install(&staging.path().join("db"), cache_dir, Some(trivy)).await
}

/// Creates an empty Java index (`java-db/trivy-java.db`, schema version 1) unless one is
/// there: Trivy then identifies JARs by their embedded Maven metadata only.
pub async fn ensure_java_db(cache_dir: &Path) -> anyhow::Result<()> {
    let dir = cache_dir.join("java-db");
    if dir.join("metadata.json").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("trivy-java.db");
    let _ = std::fs::remove_file(&path);
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await?;
    for statement in [
        "CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT)",
        "CREATE TABLE indices(artifact_id INTEGER, version TEXT, sha1 BLOB, archive_type TEXT, \
         foreign key (artifact_id) references artifacts(id))",
        "CREATE UNIQUE INDEX artifacts_idx ON artifacts(artifact_id, group_id)",
        "CREATE INDEX indices_artifact_idx ON indices(artifact_id)",
        "CREATE UNIQUE INDEX indices_sha1_idx ON indices(sha1)",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    pool.close().await;
    let now = chrono::Utc::now();
    let meta = serde_json::json!({
        "Version": 1, "NextUpdate": (now + chrono::Duration::days(3650)).to_rfc3339(),
        "UpdatedAt": now.to_rfc3339(), "DownloadedAt": now.to_rfc3339(),
    });
    std::fs::write(dir.join("metadata.json"), meta.to_string())?;
    Ok(())
}

/// The DB directory in use, resolved (for diagnostics).
pub fn in_use(cache_dir: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(cache_dir.join("db")).ok()
}
