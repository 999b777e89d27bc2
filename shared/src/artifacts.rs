//! Artifacts: metadata, validation, the lifecycle, and the `upload`, `artifacts` and
//! `download` functions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{now_ms, Db};
use crate::error::ApiError;
use crate::with_pool;

/// Where an artifact is in its lifecycle (ARCHITECTURE.md, "Artifact lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    PendingUpload,
    /// Bytes are arriving (internal; reset to `pending_upload` if the upload dies).
    Uploading,
    Verifying,
    Scanning,
    Approved,
    Quarantined,
    Failed,
    Deleted,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::PendingUpload,
        Status::Uploading,
        Status::Verifying,
        Status::Scanning,
        Status::Approved,
        Status::Quarantined,
        Status::Failed,
        Status::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingUpload => "pending_upload",
            Status::Uploading => "uploading",
            Status::Verifying => "verifying",
            Status::Scanning => "scanning",
            Status::Approved => "approved",
            Status::Quarantined => "quarantined",
            Status::Failed => "failed",
            Status::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A stored artifact.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArtifactRow {
    pub id: String,
    pub name: String,
    pub version: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    pub labels: String,
    pub description: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub owner_id: String,
    pub wrapped_key: Option<String>,
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
}

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
    /// Why the artifact is failed, quarantined or refused, when it is.
    pub status_reason: Option<String>,
    /// Machine-readable reasons of the last policy decision (empty when it passed).
    pub policy_reasons: Vec<crate::scan::policy::Reason>,
    /// The latest scan (single-artifact answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<crate::scan::service::ScanSummary>,
    pub owner_id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

impl From<ArtifactRow> for Artifact {
    fn from(row: ArtifactRow) -> Self {
        Self {
            labels: row.labels(),
            status: row.status(),
            id: row.id,
            name: row.name,
            version: row.version,
            filename: row.filename,
            size: row.size,
            sha256: row.sha256,
            description: row.description,
            status_reason: row.status_reason,
            policy_reasons: row
                .policy_reasons
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default(),
            scan: None,
            owner_id: row.owner_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
        }
    }
}

/// Where an artifact's blob is: in the permanent area from its first approval on (it stays
/// there if the artifact is quarantined later), in quarantine before. The one place that
/// answers this; the approval transaction records `promoted_at`.
pub fn blob_area(row: &ArtifactRow) -> crate::storage::Area {
    if row.promoted_at.is_some() {
        crate::storage::Area::Permanent
    } else {
        crate::storage::Area::Quarantine
    }
}

pub async fn find(db: &Db, id: &str) -> Result<Option<ArtifactRow>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, ArtifactRow>("SELECT * FROM artifacts WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await)
}

/// The artifact as `principal` may see it: consumers see approved artifacts only, and
/// anything else is "not found" to them.
pub async fn find_visible(db: &Db, principal: &Principal, id: &str) -> Result<ArtifactRow, ApiError> {
    let row = find(db, id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    if row.status() != Status::Approved && !principal.can(Permission::ArtifactsReadAll) {
        return Err(ApiError::not_found("no such artifact"));
    }
    Ok(row)
}

/// Only the artifact's uploader or an admin may `action` (e.g. "delete this artifact").
pub fn require_owner(row: &ArtifactRow, principal: &Principal, action: &str) -> Result<(), ApiError> {
    if row.owner_id != principal.user_id && !principal.is_admin() {
        return Err(ApiError::forbidden("not_owner", format!("only the owner or an admin may {action}")));
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

/// Moves an artifact from `from` to `to` (with a reason); false when it was not in `from`.
pub async fn transition(
    db: &Db,
    id: &str,
    from: Status,
    to: Status,
    reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query(
        "UPDATE artifacts SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4 AND status = $5"
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(now_ms())
    .bind(id)
    .bind(from.as_str())
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 1))
}

// ---- Validation ----

fn invalid(field: &str, rule: &str) -> ApiError {
    ApiError::bad_request("invalid_field", format!("{field}: {rule}"))
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

pub fn validate_filename(filename: &str) -> Result<(), ApiError> {
    let ok = (1..=255).contains(&filename.len())
        && filename != "."
        && filename != ".."
        && !filename.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    ok.then_some(()).ok_or_else(|| invalid("filename", "1 to 255 bytes, no path separators or control characters"))
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

// ---- The `artifacts` function: search, get, delete. ----

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};

use crate::access::{Access, Principal};
use crate::app::AppState;
use crate::http::RequestContext;
use crate::rbac::Permission;
use crate::routes::FunctionRouter;

pub fn router() -> FunctionRouter {
    FunctionRouter::new("artifacts")
        .route(Method::GET, "/api/artifacts", Access::Permission(Permission::ArtifactsRead), search)
        .route(Method::GET, "/api/artifacts/{id}", Access::Permission(Permission::ArtifactsRead), get)
        .route(Method::DELETE, "/api/artifacts/{id}", Access::Permission(Permission::ArtifactsDelete), delete)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// Substring of the name.
    pub q: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub status: Option<String>,
    /// `key=value`.
    pub label: Option<String>,
    /// From 1.
    pub page: Option<i64>,
    /// 1–200, default 50.
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactPage {
    pub items: Vec<Artifact>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Searches artifacts. Consumers see approved artifacts only.
#[utoipa::path(get, path = "/api/artifacts", tag = "artifacts", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = ArtifactPage), (status = 400), (status = 401), (status = 403)))]
pub async fn search(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<ArtifactPage>, ApiError> {
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(50);
    if page < 1 || !(1..=200).contains(&per_page) {
        return Err(ApiError::bad_request("invalid_query", "page ≥ 1 and per_page 1 to 200"));
    }
    let mut status = query
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| ApiError::bad_request("invalid_query", format!("unknown status '{s}'")))
        })
        .transpose()?;
    if !principal.can(Permission::ArtifactsReadAll) {
        if status.is_some_and(|s| s != Status::Approved) {
            return Ok(Json(ArtifactPage { items: Vec::new(), total: 0, page, per_page }));
        }
        status = Some(Status::Approved);
    }
    let label = match query.label.as_deref() {
        Some(l) => {
            let (k, v) =
                l.split_once('=').ok_or_else(|| ApiError::bad_request("invalid_query", "label must be key=value"))?;
            // Labels are stored as canonical JSON (sorted keys, no spaces): match `"k":"v"`.
            let pair = serde_json::to_string(&BTreeMap::from([(k, v)])).unwrap_or_default();
            Some(format!("%{}%", like_escape(pair.trim_matches(|c| c == '{' || c == '}'))))
        }
        None => None,
    };
    let q = query.q.as_deref().map(|q| format!("%{}%", like_escape(q)));
    let filter = "($1 IS NULL OR name LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR status = $2) \
                  AND ($3 IS NULL OR labels LIKE $3 ESCAPE '\\') AND ($4 IS NULL OR name = $4) AND ($5 IS NULL OR version = $5)";
    let count_sql = format!("SELECT COUNT(*) FROM artifacts WHERE {filter}");
    let page_sql = format!("SELECT * FROM artifacts WHERE {filter} ORDER BY created_at DESC, id LIMIT $6 OFFSET $7");
    let status = status.map(Status::as_str);
    let total: i64 = with_pool!(&state.db, |pool| sqlx::query_scalar(&count_sql)
        .bind(q.as_deref())
        .bind(status)
        .bind(label.as_deref())
        .bind(query.name.as_deref())
        .bind(query.version.as_deref())
        .fetch_one(pool)
        .await)?;
    let rows: Vec<ArtifactRow> = with_pool!(&state.db, |pool| sqlx::query_as(&page_sql)
        .bind(q.as_deref())
        .bind(status)
        .bind(label.as_deref())
        .bind(query.name.as_deref())
        .bind(query.version.as_deref())
        .bind(per_page)
        .bind((page - 1) * per_page)
        .fetch_all(pool)
        .await)?;
    Ok(Json(ArtifactPage { items: rows.into_iter().map(Artifact::from).collect(), total, page, per_page }))
}

/// One artifact. Consumers see approved artifacts only.
#[utoipa::path(get, path = "/api/artifacts/{id}", tag = "artifacts", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = Artifact), (status = 401), (status = 403), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Artifact>, ApiError> {
    let row = find_visible(&state.db, &principal, &id).await?;
    let scan = crate::scan::service::latest_summary(&state.db, &id).await?;
    let mut artifact: Artifact = row.into();
    artifact.scan = scan;
    Ok(Json(artifact))
}

/// Deletes an artifact: destroys its data key (crypto-shred) and its blob; the metadata
/// stays as a tombstone for the audit trail.
#[utoipa::path(delete, path = "/api/artifacts/{id}", tag = "artifacts", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    require_owner(&row, &principal, "delete this artifact")?;
    if row.status() == Status::Deleted {
        return Ok(StatusCode::NO_CONTENT);
    }
    // The state change and its event first; then the key is destroyed and the blob removed
    // (after a crash in between, the reconciler removes the blob of a deleted artifact).
    let reason = format!("deleted by {}", principal.username);
    if !crate::events::transition_with_event(
        &state,
        &id,
        row.status(),
        Status::Deleted,
        Some(&reason),
        crate::events::DELETED,
    )
    .await?
    {
        return Err(ApiError::conflict("concurrent_change", "the artifact changed meanwhile; retry"));
    }
    with_pool!(&state.db, |pool| sqlx::query(
        "UPDATE artifacts SET wrapped_key = NULL, upload_nonce = NULL, upload_id = NULL, deleted_at = $1 WHERE id = $2"
    )
    .bind(now_ms())
    .bind(&id)
    .execute(pool)
    .await
    .map(|_| ()))?;
    state.store.remove(&id).await;
    state
        .audit
        .record_durable(context.event(&principal, "artifacts.delete", &id, "success", serde_json::Value::Null))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
