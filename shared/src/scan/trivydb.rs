//! Trivy's databases in Arca's cache dir: air-gapped import of the vulnerability DB, and
//! the empty Java index Trivy needs to scan JARs offline.

use std::path::Path;

use anyhow::Context;

/// Installs `source/{trivy.db,metadata.json}` (schema version 2) into `cache_dir/db`,
/// atomically (the metadata last, so a reader never sees a new `UpdatedAt` with an old DB).
/// Returns the new DB's `UpdatedAt`.
pub fn import(source: &Path, cache_dir: &Path) -> anyhow::Result<String> {
    let meta_text = std::fs::read_to_string(source.join("metadata.json"))
        .with_context(|| format!("{}: no metadata.json", source.display()))?;
    let meta: serde_json::Value = serde_json::from_str(&meta_text).context("metadata.json is not JSON")?;
    anyhow::ensure!(meta["Version"] == 2, "metadata.json: Version must be 2 (Trivy DB schema v2)");
    let updated_at = meta["UpdatedAt"].as_str().context("metadata.json: no UpdatedAt")?.to_owned();
    let db = source.join("trivy.db");
    anyhow::ensure!(db.is_file(), "{}: no trivy.db", source.display());
    let target = cache_dir.join("db");
    std::fs::create_dir_all(&target).with_context(|| format!("cannot create {}", target.display()))?;
    let tmp_db = target.join(".trivy.db.import");
    std::fs::copy(&db, &tmp_db).context("copying trivy.db")?;
    std::fs::File::open(&tmp_db)?.sync_all()?;
    std::fs::rename(&tmp_db, target.join("trivy.db"))?;
    let tmp_meta = target.join(".metadata.json.import");
    std::fs::write(&tmp_meta, meta_text)?;
    std::fs::rename(&tmp_meta, target.join("metadata.json"))?;
    Ok(updated_at)
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
