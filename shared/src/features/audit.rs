//! The `audit` function: search and export the hash-chained audit log, verify it against
//! its signed checkpoints, list dead-lettered events, and sign checkpoints (its background
//! job).

use axum::body::Body;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::audit::{self, AuditEntry, AuditFilter, Bounds, Checkpoint, CheckpointKey, Verification};
use crate::core::db::now_ms;
use crate::core::error::{ApiError, Code};
use crate::core::outbox::{self, DeadLetter};
use crate::core::rbac::Permission;
use crate::web::access::{self, Access};
use crate::web::http::RequestContext;
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
        .route(read, routes!(create_export_link))
        // The signed, single-use token in the URL is the credential.
        .route(Access::Public, routes!(redeem_export_link))
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
    // An empty value is not a time either: refused like any other malformed one.
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
    if let Some(format) = page.format.as_deref().filter(|f| !f.is_empty() && *f != "json") {
        return Err(ApiError::new(Code::InvalidQuery, format!("unknown format '{format}' (json or ndjson)")));
    }
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, "limit must be 1 to 1000"));
    }
    let before = page
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| match c.parse::<i64>() {
            // A cursor is the sequence number of an entry (the first is 1).
            Ok(seq) if seq >= 1 => Ok(seq),
            _ => Err(ApiError::new(Code::InvalidQuery, "malformed cursor: use next_cursor from the previous page")),
        })
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

/// Walks the hash chain and checks it reaches every signed checkpoint and the signer's
/// anchor, kept outside the database (a log whose tail was cut no longer does, even when the
/// checkpoints that vouched for it were removed too).
#[utoipa::path(get, path = "/api/audit-logs/verify", operation_id = "verifyAuditLog",
    responses((status = 200, body = Verification), (status = 401), (status = 403)))]
pub async fn verify_chain(
    State(core): State<Core>,
    State(key): State<AuditKey>,
) -> Result<Json<Verification>, ApiError> {
    Ok(Json(audit::verify_with_checkpoints(&core.db, &key.0).await?))
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
    match audit::checkpoint(&core.db, &key.0).await? {
        audit::Round::Signed(c) => tracing::info!(seq = c.seq, "audit checkpoint signed"),
        audit::Round::UpToDate => {}
        audit::Round::Refused(reason) => {
            core.metrics.audit_tampering.inc();
            tracing::error!(error = reason, "audit checkpoint refused: the log was altered");
        }
    }
    Ok(())
}

// ---- Export links: a browser downloads an export by navigating to a link ----

const EXPORT_LINK_TTL_MS: i64 = 60_000;

#[derive(Debug, Serialize, Deserialize)]
struct ExportClaims {
    /// User id.
    u: String,
    f: AuditFilter,
    /// Expiry, Unix ms.
    e: i64,
    /// Nonce (single use).
    n: String,
}

/// A single-use link to an NDJSON export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportLink {
    /// Path to navigate to (`/api/audit-logs/export/<token>`): valid once, within 60 s.
    pub url: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

fn seal(key: &[u8; 32], claims: &ExportClaims) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(payload.as_bytes());
    format!("{payload}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn open(key: &[u8; 32], token: &str) -> Option<ExportClaims> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, signature) = token.split_once('.')?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    mac.update(payload.as_bytes());
    mac.verify_slice(&b64.decode(signature).ok()?).ok()?;
    serde_json::from_slice(&b64.decode(payload).ok()?).ok()
}

const EXPORT_PURPOSE: &str = "arca audit export links v1";

/// A short-lived (60 s), single-use link to export the matching entries as NDJSON (for
/// browsers: navigating to it downloads the file).
#[utoipa::path(post, path = "/api/audit-logs/export-link", operation_id = "createAuditExportLink", params(AuditFilter),
    responses((status = 200, body = ExportLink), (status = 400), (status = 401), (status = 403)))]
pub async fn create_export_link(
    State(key): State<AuditKey>,
    axum::Extension(principal): axum::Extension<crate::core::rbac::Principal>,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<ExportLink>, ApiError> {
    parse_time("since", filter.since.as_deref())?;
    parse_time("until", filter.until.as_deref())?;
    let expires_at = now_ms() + EXPORT_LINK_TTL_MS;
    let claims =
        ExportClaims { u: principal.user_id, f: filter, e: expires_at, n: uuid::Uuid::new_v4().simple().to_string() };
    let token = seal(&key.0.derive(EXPORT_PURPOSE), &claims);
    Ok(Json(ExportLink { url: format!("/api/audit-logs/export/{token}"), expires_at }))
}

/// The NDJSON export behind a link from `POST /api/audit-logs/export-link`: valid once,
/// within its minute, for the user who asked (still allowed to read the log).
#[utoipa::path(get, path = "/api/audit-logs/export/{token}", operation_id = "redeemAuditExportLink",
    params(("token" = String, Path, description = "the link's token")),
    responses((status = 200, body = String, content_type = "application/x-ndjson"), (status = 403)))]
pub async fn redeem_export_link(
    State(core): State<Core>,
    State(key): State<AuditKey>,
    axum::Extension(context): axum::Extension<RequestContext>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let invalid = || ApiError::new(Code::InvalidDownloadLink, "the export link is invalid, expired or already used");
    let claims = open(&key.0.derive(EXPORT_PURPOSE), &token).ok_or_else(invalid)?;
    if claims.e <= now_ms() || claims.e > now_ms() + EXPORT_LINK_TTL_MS {
        return Err(invalid());
    }
    let used = crate::with_pool!(&core.db, |pool| sqlx::query(
        "INSERT INTO download_links (nonce, artifact_id, used_at) VALUES ($1, 'audit-export', $2) \
         ON CONFLICT (nonce) DO NOTHING"
    )
    .bind(&claims.n)
    .bind(now_ms())
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 0))?;
    if used {
        return Err(invalid());
    }
    let principal = access::principal_of_user(&core, &claims.u, None).await.map_err(|_| invalid())?;
    if !principal.can(Permission::AuditRead) {
        return Err(ApiError::new(Code::PermissionDenied, "this action needs the 'audit_read' permission"));
    }
    core.audit
        .record(context.event(
            &principal,
            "audit.export",
            "audit_log",
            "success",
            serde_json::to_value(&claims.f).unwrap_or_default(),
        ))
        .await;
    let bounds = Bounds {
        since_ms: parse_time("since", claims.f.since.as_deref())?,
        until_ms: parse_time("until", claims.f.until.as_deref())?,
    };
    let mut response = export(core, claims.f, bounds);
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"arca-audit.ndjson\""),
    );
    Ok(response)
}
