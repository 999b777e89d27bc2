//! The `audit` function: search and export the hash-chained audit log, verify it against
//! its signed checkpoints, list dead-lettered events, and sign checkpoints (its background
//! job).

use axum::body::Body;
use axum::extract::{FromRef, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::audit::{self, AuditEntry, AuditFilter, Bounds, Checkpoint, CheckpointKey, Verification};
use crate::core::error::{ApiError, Code};
use crate::core::outbox::{self, DeadLetter};
use crate::core::rbac::Permission;
use crate::web::access::Access;
use crate::web::routes::FunctionRouter;
use crate::web::state::Core;

/// The checkpoint key (the `audit` function only).
#[derive(Clone)]
pub struct AuditKey(pub std::sync::Arc<CheckpointKey>);

pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    AuditKey: FromRef<S>,
{
    let read = Access::Permission(Permission::AuditRead);
    FunctionRouter::new("audit")
        .route(read, routes!(search))
        .route(read, routes!(verify_chain))
        .route(read, routes!(list_checkpoints))
        .route(read, routes!(dead_letters))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Entries per page (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `ndjson` streams every matching entry, oldest first, as an export.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| ApiError::new(Code::InvalidQuery, format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

/// Searches the audit log (filters, cursor pagination) or exports it as NDJSON.
#[utoipa::path(get, path = "/api/audit-logs", operation_id = "searchAuditLogs", params(AuditFilter, Page),
    responses((status = 200, description = "a page (JSON), or the export (NDJSON: one entry per line)",
               content((AuditPage = "application/json"), (String = "application/x-ndjson"))),
              (status = 400), (status = 401), (status = 403)))]
pub async fn search(
    State(core): State<Core>,
    Query(filter): Query<AuditFilter>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    let bounds = Bounds {
        since_ms: parse_time("since", filter.since.as_deref())?,
        until_ms: parse_time("until", filter.until.as_deref())?,
    };
    if page.format.as_deref() == Some("ndjson") {
        return Ok(export(core, filter, bounds));
    }
    if let Some(format) = page.format.as_deref().filter(|f| *f != "json") {
        return Err(ApiError::new(Code::InvalidQuery, format!("unknown format '{format}' (json or ndjson)")));
    }
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, "limit must be 1 to 1000"));
    }
    let before = page
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>().map_err(|_| ApiError::new(Code::InvalidQuery, "malformed cursor")))
        .transpose()?;
    let entries = audit::list(&core.db, &filter, &bounds, before, limit).await?;
    let next_cursor = (entries.len() == usize::try_from(limit).unwrap_or(0))
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(Json(AuditPage { entries, next_cursor }).into_response())
}

/// Streams matching entries, oldest first, one JSON object per line, in chunks.
fn export(core: Core, filter: AuditFilter, bounds: Bounds) -> Response {
    let stream = futures::stream::unfold(Some(0_i64), move |after| {
        let (core, filter) = (core.clone(), filter.clone());
        async move {
            let after = after?;
            match audit::list_ascending(&core.db, &filter, &bounds, after, 500).await {
                Ok(chunk) if chunk.is_empty() => None,
                Ok(chunk) => {
                    let next = chunk.last().map(|e| e.seq);
                    let mut text = String::new();
                    for entry in &chunk {
                        text.push_str(&serde_json::to_string(entry).unwrap_or_default());
                        text.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(text), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    Some((Err(std::io::Error::other("audit export failed")), None))
                }
            }
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}

/// Walks the hash chain and checks it reaches the latest signed checkpoint (a log whose
/// tail was cut no longer does).
#[utoipa::path(get, path = "/api/audit-logs/verify", operation_id = "verifyAuditLog",
    responses((status = 200, body = Verification), (status = 401), (status = 403)))]
pub async fn verify_chain(
    State(core): State<Core>,
    State(key): State<AuditKey>,
) -> Result<Json<Verification>, ApiError> {
    Ok(Json(audit::verify_with_checkpoints(&core.db, Some(&key.0.verifying_key())).await?))
}

/// The signed checkpoints and the public key that verifies them (for offline checks of an
/// export with `arca audit verify`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Checkpoints {
    /// PEM public key of the checkpoint signer.
    pub public_key: String,
    pub checkpoints: Vec<Checkpoint>,
}

/// Signed checkpoints of the audit chain.
#[utoipa::path(get, path = "/api/audit-logs/checkpoints", operation_id = "listAuditCheckpoints",
    responses((status = 200, body = Checkpoints), (status = 401), (status = 403)))]
pub async fn list_checkpoints(
    State(core): State<Core>,
    State(key): State<AuditKey>,
) -> Result<Json<Checkpoints>, ApiError> {
    Ok(Json(Checkpoints { public_key: key.0.public_pem(), checkpoints: audit::checkpoints(&core.db).await? }))
}

/// Dead-lettered lifecycle events (newest first, at most 500), for operators.
#[utoipa::path(get, path = "/api/events/dead-letters", operation_id = "listDeadLetters",
    responses((status = 200, body = Vec<DeadLetter>), (status = 401), (status = 403)))]
pub async fn dead_letters(State(core): State<Core>) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    Ok(Json(outbox::dead_letters(&core.db).await?))
}

/// The background job: sign the chain's head (leased: one replica at a time).
pub async fn checkpoint(core: &Core, key: &AuditKey) -> anyhow::Result<()> {
    core.audit.flush().await;
    if let Some(c) = audit::checkpoint(&core.db, &key.0).await? {
        tracing::info!(seq = c.seq, "audit checkpoint signed");
    }
    Ok(())
}
