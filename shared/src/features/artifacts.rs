//! The `artifacts` function: search, one artifact, its lifecycle history, crypto-shred
//! delete, the dashboard's counts, and the owners of artifact names.

use std::collections::BTreeMap;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::artifacts::{self, Artifact, ArtifactRow};
use crate::core::db::now_ms;
use crate::core::error::{ApiError, ApiJson, Code};
use crate::core::lifecycle::{self, Change, Effect, Status};
use crate::core::outbox;
use crate::core::paging::Page;
use crate::core::rbac::{Permission, Principal};
use crate::core::scan::report::Summary;
use crate::core::{audit, scans, users};
use crate::web::access::Access;
use crate::web::http::RequestContext;
use crate::web::routes::FunctionRouter;
use crate::web::state::Core;
use crate::with_pool;

pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
{
    let read = Access::Permission(Permission::ArtifactsRead);
    let admin = Access::Permission(Permission::UsersManage);
    FunctionRouter::new("artifacts")
        .route(read, routes!(search))
        .route(read, routes!(get))
        .route(read, routes!(history))
        .route(Access::Permission(Permission::ArtifactsDelete), routes!(delete))
        .route(read, routes!(stats))
        .route(read, routes!(name_owners))
        .route(admin, routes!(grant_name))
        .route(admin, routes!(revoke_name))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// Substring of the name.
    #[param(max_length = 128)]
    pub q: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    /// One status (consumers see `approved` only).
    pub status: Option<String>,
    /// `key=value`.
    pub label: Option<String>,
    /// `created_at` (default), `name`, `version` (semver order), `size` or `status`.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    /// From 1 (at most 1,000,000).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
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

#[derive(sqlx::FromRow)]
struct Listed {
    #[sqlx(flatten)]
    row: ArtifactRow,
    owner_name: Option<String>,
}

/// Searches artifacts (paged, sorted). Consumers see approved artifacts only.
#[utoipa::path(get, path = "/api/artifacts", operation_id = "listArtifacts", params(SearchQuery),
    responses((status = 200, body = ArtifactPage), (status = 400), (status = 401), (status = 403)))]
pub async fn search(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<ArtifactPage>, ApiError> {
    let page = Page::parse(query.page, query.per_page, 50, 200)?;
    let status = query
        .status
        .as_deref()
        .map(|s| Status::parse(s).ok_or_else(|| ApiError::new(Code::InvalidQuery, format!("unknown status '{s}'"))))
        .transpose()?;
    let order_by = match query.sort.as_deref().filter(|s| !s.is_empty()).unwrap_or("created_at") {
        "created_at" => "a.created_at",
        "name" => "a.name",
        "version" => "a.version_key",
        "size" => "a.size",
        "status" => "a.status",
        other => return Err(ApiError::new(Code::InvalidQuery, format!("unknown sort '{other}'"))),
    };
    let direction = match query.order.as_deref().filter(|s| !s.is_empty()).unwrap_or("desc") {
        "desc" => "DESC",
        "asc" => "ASC",
        other => return Err(ApiError::new(Code::InvalidQuery, format!("order must be asc or desc, not '{other}'"))),
    };
    if query.q.as_deref().is_some_and(|q| q.len() > 128) {
        return Err(ApiError::new(Code::InvalidQuery, "q: at most 128 characters"));
    }
    // Without `artifacts_read_all`: approved artifacts and one's own uploads (`visible`).
    let viewer = (!principal.can(Permission::ArtifactsReadAll)).then_some(principal.user_id.as_str());
    let label = match query.label.as_deref().filter(|l| !l.is_empty()) {
        Some(l) => {
            let (k, v) =
                l.split_once('=').ok_or_else(|| ApiError::new(Code::InvalidQuery, "label must be key=value"))?;
            // Labels are stored as canonical JSON (sorted keys, no spaces): match `"k":"v"`.
            let pair = serde_json::to_string(&BTreeMap::from([(k, v)])).unwrap_or_default();
            Some(format!("%{}%", like_escape(pair.trim_matches(|c| c == '{' || c == '}'))))
        }
        None => None,
    };
    let q = query.q.as_deref().map(|q| format!("%{}%", like_escape(q)));
    let filter = "($1 IS NULL OR a.name LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR a.status = $2) \
                  AND ($3 IS NULL OR a.labels LIKE $3 ESCAPE '\\') AND ($4 IS NULL OR a.name = $4) \
                  AND ($5 IS NULL OR a.version = $5)";
    let mine = |n: u8| format!("(${n} IS NULL OR a.status = 'approved' OR a.owner_id = ${n})");
    let count_sql = format!("SELECT COUNT(*) FROM artifacts a WHERE {filter} AND {}", mine(6));
    let page_sql = format!(
        "SELECT a.*, u.username AS owner_name FROM artifacts a LEFT JOIN users u ON u.id = a.owner_id \
         WHERE {filter} AND {} ORDER BY {order_by} {direction}, a.id LIMIT $6 OFFSET $7",
        mine(8)
    );
    let status = status.map(Status::as_str);
    let total: i64 = with_pool!(&core.db, |pool| sqlx::query_scalar(&count_sql)
        .bind(q.as_deref())
        .bind(status)
        .bind(label.as_deref())
        .bind(query.name.as_deref())
        .bind(query.version.as_deref())
        .bind(viewer)
        .fetch_one(pool)
        .await)?;
    let rows: Vec<Listed> = with_pool!(&core.db, |pool| sqlx::query_as(&page_sql)
        .bind(q.as_deref())
        .bind(status)
        .bind(label.as_deref())
        .bind(query.name.as_deref())
        .bind(query.version.as_deref())
        .bind(page.per_page)
        .bind(page.offset)
        .bind(viewer)
        .fetch_all(pool)
        .await)?;
    let ids: Vec<String> = rows.iter().map(|r| r.row.id.clone()).collect();
    let counts: BTreeMap<String, Summary> = scans::latest_counts(&core.db, &ids).await?.into_iter().collect();
    let items = rows
        .into_iter()
        .map(|listed| {
            let severity = counts.get(&listed.row.id).cloned();
            Artifact::view(listed.row, listed.owner_name.unwrap_or_default(), None, &principal)
                .with_severity(severity, &principal)
        })
        .collect();
    Ok(Json(ArtifactPage { items, total, page: page.page, per_page: page.per_page }))
}

/// One artifact. Consumers see approved artifacts only.
#[utoipa::path(get, path = "/api/artifacts/{id}", operation_id = "getArtifact",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = Artifact), (status = 401), (status = 403), (status = 404)))]
pub async fn get(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Artifact>, ApiError> {
    let row = artifacts::find_visible(&core.db, &principal, &id).await?;
    let scan = scans::latest_summary(&core.db, &id).await?;
    let owner = artifacts::username(&core.db, &row.owner_id).await?;
    Ok(Json(Artifact::view(row, owner, scan, &principal)))
}

/// One step of an artifact's life.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct LifecycleEvent {
    pub id: String,
    /// The CloudEvent type (`dev.arca.artifact.approved`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix milliseconds.
    pub time: i64,
    /// The status the artifact entered (absent for requests such as rescans).
    pub status: Option<String>,
    /// Why (callers who may read scan results).
    pub reason: Option<String>,
}

/// The artifact's lifecycle, oldest first (from its events).
#[utoipa::path(get, path = "/api/artifacts/{id}/events", operation_id = "listArtifactEvents",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = Vec<LifecycleEvent>), (status = 401), (status = 403), (status = 404)))]
pub async fn history(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Vec<LifecycleEvent>>, ApiError> {
    artifacts::find_visible(&core.db, &principal, &id).await?;
    let rows: Vec<(String, String, i64, String)> = with_pool!(&core.db, |pool| {
        sqlx::query_as(
        "SELECT id, event_type, created_at, payload FROM outbox WHERE artifact_id = $1 ORDER BY created_at, id LIMIT 500"
    )
    .bind(&id)
    .fetch_all(pool)
    .await
    })?;
    let details = principal.can(Permission::ScanResultsRead);
    let events = rows
        .into_iter()
        .map(|(event_id, event_type, time, payload)| {
            let data =
                serde_json::from_str::<serde_json::Value>(&payload).map(|p| p["data"].clone()).unwrap_or_default();
            LifecycleEvent {
                id: event_id,
                event_type,
                time,
                status: data["status"].as_str().map(str::to_owned),
                reason: data["reason"].as_str().map(str::to_owned).filter(|_| details),
            }
        })
        .collect();
    Ok(Json(events))
}

/// Deletes an artifact: its data key is destroyed (crypto-shred) and, through the
/// `deleted` event, its blob and any scan workspace; the metadata stays as a tombstone.
#[utoipa::path(delete, path = "/api/artifacts/{id}", operation_id = "deleteArtifact",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn delete(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = artifacts::get(&core.db, &id).await?;
    artifacts::require_owner(&row, &principal, "delete this artifact")?;
    if row.status() == Status::Deleted {
        return Ok(StatusCode::NO_CONTENT);
    }
    let change = Change::new(&id, row.status(), Status::Deleted)
        .reason(format!("deleted by {}", principal.username))
        .effect(Effect::Shred);
    if !lifecycle::apply(&core, change).await? {
        return Err(ApiError::new(Code::ConcurrentChange, "the artifact changed meanwhile; retry"));
    }
    if let Err(e) = core.db.erase_freed().await {
        tracing::warn!(artifact = %id, error = %e, "the deleted data key's old copies could not be erased now");
    }
    core.audit
        .record_durable(context.event(&principal, "artifacts.delete", &id, "success", serde_json::Value::Null))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// An audit entry in brief (dashboard).
#[derive(Debug, Serialize, ToSchema)]
pub struct Denial {
    /// Unix milliseconds.
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub client_ip: String,
}

/// Counts for the dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// Artifacts by status (visible ones).
    pub by_status: BTreeMap<String, i64>,
    /// Findings of the latest scan of every approved or quarantined artifact, by severity.
    pub findings: Summary,
    /// The ten newest artifacts (visible ones).
    pub recent_uploads: Vec<Artifact>,
    /// The ten newest denied requests (callers who may read the audit log).
    pub recent_denials: Option<Vec<Denial>>,
    /// Dead-lettered events (callers who may read the audit log).
    pub dead_letters: Option<i64>,
}

/// Counts by status, findings by severity, recent uploads and denials.
#[utoipa::path(get, path = "/api/stats", operation_id = "getStats",
    responses((status = 200, body = Stats), (status = 401), (status = 403)))]
pub async fn stats(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Stats>, ApiError> {
    let all = principal.can(Permission::ArtifactsReadAll);
    let counts: Vec<(String, i64)> = with_pool!(&core.db, |pool| sqlx::query_as(
        "SELECT status, COUNT(*) FROM artifacts WHERE ($1 OR status = 'approved') GROUP BY status"
    )
    .bind(all)
    .fetch_all(pool)
    .await)?;
    let mut findings = Summary::default();
    if principal.can(Permission::ScanResultsRead) {
        let summaries: Vec<String> = with_pool!(&core.db, |pool| sqlx::query_scalar(
            "SELECT s.summary FROM scans s JOIN artifacts a ON a.id = s.artifact_id \
             WHERE a.status IN ('approved', 'quarantined') AND s.id = \
             (SELECT t.id FROM scans t WHERE t.artifact_id = a.id ORDER BY t.finished_at DESC, t.id DESC LIMIT 1)"
        )
        .fetch_all(pool)
        .await)?;
        for summary in summaries {
            let s: Summary = serde_json::from_str(&summary).unwrap_or_default();
            findings.critical += s.critical;
            findings.high += s.high;
            findings.medium += s.medium;
            findings.low += s.low;
            findings.unknown += s.unknown;
            findings.secrets += s.secrets;
            findings.licenses += s.licenses;
        }
    }
    let recent: Vec<Listed> = with_pool!(&core.db, |pool| sqlx::query_as(
        "SELECT a.*, u.username AS owner_name FROM artifacts a LEFT JOIN users u ON u.id = a.owner_id \
         WHERE ($1 OR a.status = 'approved') ORDER BY a.created_at DESC, a.id LIMIT 10"
    )
    .bind(all)
    .fetch_all(pool)
    .await)?;
    let audit_reader = principal.can(Permission::AuditRead);
    let recent_denials = if audit_reader {
        let filter = audit::AuditFilter { outcome: Some("denied".into()), ..audit::AuditFilter::default() };
        let entries = audit::list(&core.db, &filter, &audit::Bounds::default(), None, 10).await?;
        Some(
            entries
                .into_iter()
                .map(|e| Denial {
                    ts: e.ts,
                    actor: e.actor,
                    action: e.action,
                    target: e.target,
                    client_ip: e.client_ip,
                })
                .collect(),
        )
    } else {
        None
    };
    let dead_letters = if audit_reader { Some(outbox::dead_letter_count(&core.db).await?) } else { None };
    Ok(Json(Stats {
        by_status: counts.into_iter().collect(),
        findings,
        recent_uploads: recent
            .into_iter()
            .map(|l| Artifact::view(l.row, l.owner_name.unwrap_or_default(), None, &principal))
            .collect(),
        recent_denials,
        dead_letters,
    }))
}

/// Who may add versions under a name.
#[derive(Debug, Serialize, ToSchema)]
pub struct NameOwners {
    pub name: String,
    /// Usernames.
    pub owners: Vec<String>,
}

async fn owners_of(core: &Core, name: &str) -> Result<NameOwners, ApiError> {
    let owners: Vec<String> = with_pool!(&core.db, |pool| {
        sqlx::query_scalar(
        "SELECT u.username FROM name_owners o JOIN users u ON u.id = o.user_id WHERE o.name = $1 ORDER BY u.username"
    )
    .bind(name)
    .fetch_all(pool)
    .await
    })?;
    if owners.is_empty() {
        return Err(ApiError::not_found("no artifact has this name"));
    }
    Ok(NameOwners { name: name.to_owned(), owners })
}

/// The owners of an artifact name.
#[utoipa::path(get, path = "/api/names/{name}/owners", operation_id = "listNameOwners",
    params(("name" = String, Path, description = "artifact name")),
    responses((status = 200, body = NameOwners), (status = 401), (status = 403), (status = 404)))]
pub async fn name_owners(State(core): State<Core>, Path(name): Path<String>) -> Result<Json<NameOwners>, ApiError> {
    Ok(Json(owners_of(&core, &name).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub username: String,
}

/// Grants a user the right to publish versions under a name (admin, audited).
#[utoipa::path(post, path = "/api/names/{name}/owners", operation_id = "grantNameOwner",
    params(("name" = String, Path, description = "artifact name")), request_body = Grant,
    responses((status = 200, body = NameOwners), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn grant_name(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(name): Path<String>,
    ApiJson(grant): ApiJson<Grant>,
) -> Result<Json<NameOwners>, ApiError> {
    owners_of(&core, &name).await?;
    let user =
        users::find_by_username(&core.db, &grant.username).await?.ok_or_else(|| ApiError::not_found("no such user"))?;
    with_pool!(&core.db, |pool| {
        sqlx::query(
        "INSERT INTO name_owners (name, user_id, granted_by, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
    )
    .bind(&name)
    .bind(&user.id)
    .bind(&principal.username)
    .bind(now_ms())
    .execute(pool)
    .await
    .map(|_| ())
    })?;
    core.audit
        .record_durable(context.event(
            &principal,
            "names.grant",
            &name,
            "success",
            serde_json::json!({ "user": user.username }),
        ))
        .await;
    Ok(Json(owners_of(&core, &name).await?))
}

/// Takes a user's right to publish under a name away (admin, audited).
#[utoipa::path(delete, path = "/api/names/{name}/owners/{username}", operation_id = "revokeNameOwner",
    params(("name" = String, Path, description = "artifact name"), ("username" = String, Path, description = "owner")),
    responses((status = 200, body = NameOwners), (status = 401), (status = 403), (status = 404)))]
pub async fn revoke_name(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path((name, username)): Path<(String, String)>,
) -> Result<Json<NameOwners>, ApiError> {
    let user =
        users::find_by_username(&core.db, &username).await?.ok_or_else(|| ApiError::not_found("no such user"))?;
    let removed = with_pool!(&core.db, |pool| sqlx::query("DELETE FROM name_owners WHERE name = $1 AND user_id = $2")
        .bind(&name)
        .bind(&user.id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    if removed == 0 {
        return Err(ApiError::not_found("this user does not own this name"));
    }
    core.audit
        .record_durable(context.event(
            &principal,
            "names.revoke",
            &name,
            "success",
            serde_json::json!({ "user": username }),
        ))
        .await;
    Ok(Json(NameOwners {
        name: name.clone(),
        owners: owners_of(&core, &name).await.map(|o| o.owners).unwrap_or_default(),
    }))
}
