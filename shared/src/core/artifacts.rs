//! The artifact aggregate: its stored row, how the API shows it (filtered by what the
//! caller may see, in one place), its queries, and the rules for its fields.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::db::Db;
use super::error::{ApiError, Code};
use super::lifecycle::Status;
use super::rbac::{Permission, Principal};
use super::scans::ScanSummary;
use crate::with_pool;

/// A stored artifact.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArtifactRow {
    pub id: String,
    pub name: String,
    pub version: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    /// JSON object of labels (canonical: sorted keys).
    pub labels: String,
    pub description: String,
    pub status: String,
    pub status_reason: Option<String>,
    /// The uploader.
    pub owner_id: String,
    /// Local store: the blob's data key, wrapped by the master key.
    pub wrapped_key: Option<String>,
    /// Local store: the upload URL in force (single use).
    pub upload_nonce: Option<String>,
    pub received_sha256: Option<String>,
    pub received_size: Option<i64>,
    /// S3 multipart upload in progress.
    pub upload_id: Option<String>,
    /// JSON: the reasons of the last policy decision.
    pub policy_reasons: Option<String>,
    /// A manual release covers the findings of this scan only.
    pub released_scan_id: Option<String>,
    /// When the blob moved to the permanent area (first approval).
    pub promoted_at: Option<i64>,
    /// Who uploads or verifies the artifact holds it until then.
    pub lease_until: Option<i64>,
    /// 1: failed because the scanner (not the artifact) failed; may be retried.
    pub retryable: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

impl ArtifactRow {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Failed)
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.labels).unwrap_or_default()
    }

    pub fn size(&self) -> u64 {
        u64::try_from(self.size).unwrap_or(0)
    }
}

/// Counts of findings by severity (the latest scan's), for lists.
pub type SeverityCounts = super::scan::report::Summary;

/// An artifact as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Artifact {
    pub id: String,
    pub name: String,
    pub version: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    pub labels: BTreeMap<String, String>,
    pub description: String,
    pub status: Status,
    /// Why the artifact is failed, quarantined or released (callers who may read scan results).
    pub status_reason: Option<String>,
    /// Machine-readable reasons of the last policy decision (callers who may read scan results).
    pub policy_reasons: Vec<super::scan::policy::Reason>,
    /// The latest scan (single-artifact answers, callers who may read scan results).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanSummary>,
    /// Counts by severity of the latest scan (lists, callers who may read scan results).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<SeverityCounts>,
    /// A failure of the scanner, not of the artifact: `POST …/rescan` retries it.
    pub retryable: bool,
    pub owner_id: String,
    /// The uploader's username.
    pub owner: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

impl Artifact {
    /// The view of `row` that `principal` may see: scan details (policy reasons, the reason
    /// of a decision, the scan summary) only for callers who may read scan results. This is
    /// the one place that decides which fields a caller sees.
    pub fn view(row: ArtifactRow, owner: String, scan: Option<ScanSummary>, principal: &Principal) -> Self {
        let details = principal.can(Permission::ScanResultsRead);
        let policy_reasons = match (&row.policy_reasons, details) {
            (Some(json), true) => serde_json::from_str(json).unwrap_or_default(),
            _ => Vec::new(),
        };
        Self {
            labels: row.labels(),
            status: row.status(),
            retryable: row.retryable != 0,
            id: row.id,
            name: row.name,
            version: row.version,
            filename: row.filename,
            size: row.size,
            sha256: row.sha256,
            description: row.description,
            status_reason: row.status_reason.filter(|_| details),
            policy_reasons,
            severity: None,
            scan: scan.filter(|_| details),
            owner_id: row.owner_id,
            owner,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
        }
    }

    /// Adds the latest scan's severity counts (list answers).
    pub fn with_severity(mut self, counts: Option<SeverityCounts>, principal: &Principal) -> Self {
        self.severity = counts.filter(|_| principal.can(Permission::ScanResultsRead));
        self
    }
}

/// Where an artifact's blob is: in the permanent area from its first approval on (it stays
/// there if the artifact is quarantined later), in quarantine before. The one place that
/// answers this; the approval transaction records `promoted_at`.
pub fn blob_area(row: &ArtifactRow) -> super::storage::Area {
    if row.promoted_at.is_some() {
        super::storage::Area::Permanent
    } else {
        super::storage::Area::Quarantine
    }
}

pub async fn find(db: &Db, id: &str) -> Result<Option<ArtifactRow>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, ArtifactRow>("SELECT * FROM artifacts WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await)
}

/// The artifact or 404.
pub async fn get(db: &Db, id: &str) -> Result<ArtifactRow, ApiError> {
    find(db, id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))
}

/// Whether `principal` may see `row`: an approved artifact, one of its own uploads in any
/// state (so a CI token with `artifacts_read` + `artifacts_write` can watch what it pushed),
/// or anything with `artifacts_read_all`.
pub fn visible(row: &ArtifactRow, principal: &Principal) -> bool {
    row.status() == Status::Approved || row.owner_id == principal.user_id || principal.can(Permission::ArtifactsReadAll)
}

/// The artifact as `principal` may see it ([`visible`]); anything else is "not found".
pub async fn find_visible(db: &Db, principal: &Principal, id: &str) -> Result<ArtifactRow, ApiError> {
    let row = get(db, id).await?;
    if !visible(&row, principal) {
        return Err(ApiError::not_found("no such artifact"));
    }
    Ok(row)
}

/// Only the artifact's uploader or an admin may `action` (e.g. "delete this artifact").
pub fn require_owner(row: &ArtifactRow, principal: &Principal, action: &str) -> Result<(), ApiError> {
    if row.owner_id != principal.user_id && !principal.is_admin() {
        return Err(ApiError::new(Code::NotOwner, format!("only the owner or an admin may {action}")));
    }
    Ok(())
}

pub async fn find_by_name(db: &Db, name: &str, version: &str) -> Result<Option<ArtifactRow>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, ArtifactRow>("SELECT * FROM artifacts WHERE name = $1 AND version = $2")
        .bind(name)
        .bind(version)
        .fetch_optional(pool)
        .await)
}

/// The username of a user id (for `owner`); empty when unknown.
pub async fn username(db: &Db, user_id: &str) -> Result<String, sqlx::Error> {
    let name: Option<String> = with_pool!(db, |pool| sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
    Ok(name.unwrap_or_default())
}

/// Sets a column that is not part of the lifecycle (upload URL nonce, multipart id).
pub async fn set_upload_state(db: &Db, id: &str, column: UploadColumn, value: &str) -> Result<(), sqlx::Error> {
    let sql = match column {
        UploadColumn::Nonce => "UPDATE artifacts SET upload_nonce = $1, updated_at = $2 WHERE id = $3",
        UploadColumn::MultipartId => "UPDATE artifacts SET upload_id = $1, updated_at = $2 WHERE id = $3",
    };
    with_pool!(db, |pool| sqlx::query(sql)
        .bind(value)
        .bind(super::db::now_ms())
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))
}

/// Upload state kept beside the lifecycle.
#[derive(Debug, Clone, Copy)]
pub enum UploadColumn {
    Nonce,
    MultipartId,
}

/// Extends the lease of whoever works on an upload or verification.
pub async fn renew_lease(db: &Db, id: &str, until: i64) -> Result<(), sqlx::Error> {
    with_pool!(db, |pool| sqlx::query(
        "UPDATE artifacts SET lease_until = $1 WHERE id = $2 AND lease_until IS NOT NULL"
    )
    .bind(until)
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ()))
}

// ---- Validation ----

fn invalid(field: &str, rule: &str) -> ApiError {
    ApiError::new(Code::InvalidField, format!("{field}: {rule}"))
}

pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    ok.then_some(()).ok_or_else(|| invalid("name", "1 to 128 of a-z 0-9 . _ -, starting with a letter or digit"))
}

pub fn validate_version(version: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&version.len())
        && version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version.chars().all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    ok.then_some(())
        .ok_or_else(|| invalid("version", "1 to 64 of A-Z a-z 0-9 . _ + -, starting with a letter or digit"))
}

/// Characters a shell acts on inside double quotes or that chain and redirect commands: a
/// filename is pasted into commands (`curl -o NAME`), so it holds none of them.
const FILENAME_SHELL_SPECIAL: &str = "$`\"'\\;&|<>";

/// Unicode controls that reorder how text is displayed (`invoice\u{202E}fdp.exe` shows as
/// `invoiceexe.pdf`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// The filename policy; each refusal names the rule it broke.
pub fn validate_filename(filename: &str) -> Result<(), ApiError> {
    let rule = if !(1..=255).contains(&filename.len()) {
        Some("1 to 255 bytes")
    } else if filename.starts_with('.') {
        Some("must not start with a dot (hidden files, . and ..)")
    } else if filename.contains(['/', '\\']) {
        Some("no path separators (/ or \\)")
    } else if filename.chars().any(char::is_control) {
        Some("no control characters")
    } else if filename.chars().any(is_bidi_control) {
        Some("no Unicode bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C)")
    } else if filename.contains(|c| FILENAME_SHELL_SPECIAL.contains(c)) {
        Some("no shell-special characters ($ ` \" ' \\ ; & | < >)")
    } else {
        None
    };
    rule.map_or(Ok(()), |rule| Err(invalid("filename", rule)))
}

pub fn validate_sha256(sha256: &str) -> Result<String, ApiError> {
    let lower = sha256.to_ascii_lowercase();
    (lower.len() == 64 && lower.chars().all(|c| c.is_ascii_hexdigit()))
        .then_some(lower)
        .ok_or_else(|| invalid("sha256", "64 hexadecimal characters"))
}

pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > 32 {
        return Err(invalid("labels", "at most 32"));
    }
    for (key, value) in labels {
        let key_ok = (1..=63).contains(&key.len())
            && key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._/-".contains(c));
        if !key_ok {
            return Err(invalid("labels", "keys: 1 to 63 of a-z 0-9 . _ / -"));
        }
        let value_ok = value.len() <= 128 && value.chars().all(|c| c.is_ascii_alphanumeric() || "._/:@+-".contains(c));
        if !value_ok {
            return Err(invalid("labels", "values: at most 128 of A-Z a-z 0-9 . _ / : @ + -"));
        }
    }
    Ok(())
}

/// A sortable key for a version: numeric components zero-padded, so that `1.10.0` sorts
/// after `1.9.0` in SQL; a pre-release sorts before its release.
pub fn version_key(version: &str) -> String {
    let (core, pre) = match version.split_once(['-', '+']) {
        Some((core, rest)) if version.as_bytes()[core.len()] == b'-' => (core, Some(rest)),
        Some((core, _)) => (core, None),
        None => (version, None),
    };
    let mut key = String::new();
    for part in core.split('.') {
        if !key.is_empty() {
            key.push('.');
        }
        match part.parse::<u64>() {
            Ok(n) => key.push_str(&format!("{n:020}")),
            Err(_) => key.push_str(part),
        }
    }
    // `~` sorts after every other printable character: a release after its pre-releases.
    match pre {
        Some(pre) => format!("{key}-{pre}"),
        None => format!("{key}~"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_semver() {
        let mut versions = vec!["1.10.0", "1.9.0", "1.9.0-rc.1", "2.0.0", "1.9.1", "0.9"];
        versions.sort_by_key(|v| version_key(v));
        assert_eq!(versions, ["0.9", "1.9.0-rc.1", "1.9.0", "1.9.1", "1.10.0", "2.0.0"]);
    }
}
