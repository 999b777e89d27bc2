//! The scans of artifacts (each recorded with the decision it caused, see
//! `lifecycle::apply`), and the exceptions that waive findings.

use serde::Serialize;
use utoipa::ToSchema;

use super::db::{now_ms, Db};
use super::scan::policy::Waiver;
use super::scan::report::Summary;
use crate::with_pool;

/// A stored scan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScanRow {
    pub id: String,
    pub status: String,
    pub kind: Option<String>,
    pub trivy_version: Option<String>,
    pub db_updated_at: Option<String>,
    /// JSON of the findings (secrets without their values).
    pub findings: String,
    pub summary: String,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: i64,
}

/// The latest scan of an artifact, in brief.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScanSummary {
    pub id: String,
    /// `succeeded` or `failed`.
    pub status: String,
    pub kind: Option<String>,
    pub trivy_version: Option<String>,
    /// `UpdatedAt` of the vulnerability DB the scan used.
    pub db_updated_at: Option<String>,
    pub summary: Summary,
    pub error: Option<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: i64,
}

impl From<&ScanRow> for ScanSummary {
    fn from(row: &ScanRow) -> Self {
        Self {
            id: row.id.clone(),
            status: row.status.clone(),
            kind: row.kind.clone(),
            trivy_version: row.trivy_version.clone(),
            db_updated_at: row.db_updated_at.clone(),
            summary: serde_json::from_str(&row.summary).unwrap_or_default(),
            error: row.error.clone(),
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}

/// The latest scan of an artifact (or the latest that succeeded).
pub async fn latest(db: &Db, artifact_id: &str, succeeded_only: bool) -> Result<Option<ScanRow>, sqlx::Error> {
    let sql = format!(
        "SELECT id, status, kind, trivy_version, db_updated_at, findings, summary, error, started_at, finished_at \
         FROM scans WHERE artifact_id = $1 {} ORDER BY finished_at DESC, id DESC LIMIT 1",
        if succeeded_only { "AND status = 'succeeded'" } else { "" }
    );
    with_pool!(db, |pool| sqlx::query_as::<_, ScanRow>(&sql).bind(artifact_id).fetch_optional(pool).await)
}

pub async fn latest_summary(db: &Db, artifact_id: &str) -> Result<Option<ScanSummary>, sqlx::Error> {
    Ok(latest(db, artifact_id, false).await?.as_ref().map(ScanSummary::from))
}

/// The severity counts of the latest scan of each of `ids` (for lists).
pub async fn latest_counts(db: &Db, ids: &[String]) -> Result<Vec<(String, Summary)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT s.artifact_id, s.summary FROM scans s WHERE s.artifact_id IN ({}) AND s.id = \
         (SELECT t.id FROM scans t WHERE t.artifact_id = s.artifact_id ORDER BY t.finished_at DESC, t.id DESC LIMIT 1)",
        placeholders.join(", ")
    );
    let rows: Vec<(String, String)> = with_pool!(db, |pool| {
        let mut query = sqlx::query_as(&sql);
        for id in ids {
            query = query.bind(id);
        }
        query.fetch_all(pool).await
    })?;
    Ok(rows.into_iter().map(|(id, summary)| (id, serde_json::from_str(&summary).unwrap_or_default())).collect())
}

/// Exceptions in force now.
pub async fn active_waivers(db: &Db) -> Result<Vec<Waiver>, sqlx::Error> {
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> = with_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT artifact_id, vulnerability_id, package FROM exceptions WHERE revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now_ms())
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(artifact_id, vulnerability_id, package)| Waiver { artifact_id, vulnerability_id, package })
        .collect())
}

/// Whether a valid publisher signature is attached (what the policy may require).
pub async fn publisher_signed(db: &Db, artifact_id: &str) -> Result<bool, sqlx::Error> {
    let valid: i64 = with_pool!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM publisher_signatures WHERE artifact_id = $1 AND result = 'valid'"
    )
    .bind(artifact_id)
    .fetch_one(pool)
    .await)?;
    Ok(valid > 0)
}
