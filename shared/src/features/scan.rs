//! The `scan` function: the handler of `uploaded`/`rescan` events (Trivy, then the policy),
//! the scanning API (findings, rescans, releases, exceptions, the policy and the scanner's
//! state), and its background jobs: policy re-checks, rescans after a DB update, retries
//! of artifacts that failed because the scanner was down. It holds no signing key: an
//! artifact that passes goes to `signing`, and the `sign` function approves it.

use std::time::{Duration, Instant};

use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::artifacts::{self, ArtifactRow};
use crate::core::db::{now_ms, Db};
use crate::core::decisions;
use crate::core::error::{ApiError, ApiJson, Code};
use crate::core::lifecycle::{self, events, Change, Effect, ScanRecord, Status};
use crate::core::outbox::{Delivery, Handlers};
use crate::core::rbac::{Permission, Principal};
use crate::core::scan::policy::{Policy, Reason};
use crate::core::scan::report::{Findings, Summary};
use crate::core::scan::ScanError;
use crate::core::scans::{self, ScanSummary};
use crate::web::access::Access;
use crate::web::http::RequestContext;
use crate::web::routes::FunctionRouter;
use crate::web::state::{Blobs, Core, Scanning};
use crate::with_pool;

pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Scanning: FromRef<S>,
{
    let manage = Access::Permission(Permission::ArtifactsManage);
    FunctionRouter::new("scan")
        .route(Access::Permission(Permission::ScanResultsRead), routes!(scan_results))
        .route(Access::Permission(Permission::ArtifactsRead), routes!(rescan))
        .route(manage, routes!(release))
        .route(Access::Authenticated, routes!(show_policy))
        .route(Access::Authenticated, routes!(scanner_status))
        .route(manage, routes!(list_exceptions))
        .route(manage, routes!(create_exception))
        .route(manage, routes!(revoke_exception))
}

/// What the `scan` function does with events: scan on `uploaded`/`rescan`, wipe an
/// artifact's workspaces on `deleted`.
pub fn handlers(core: Core, scanning: Scanning, blobs: Blobs) -> Handlers {
    let wipe = scanning.clone();
    Handlers::default()
        .on(&[events::UPLOADED, events::RESCAN], move |delivery| {
            let (core, scanning, blobs) = (core.clone(), scanning.clone(), blobs.clone());
            async move { on_scan_event(&core, &scanning, &blobs, &delivery).await }
        })
        .on(&[events::DELETED], move |delivery| {
            let wipe = wipe.clone();
            async move {
                wipe.wipe(&delivery.artifact_id);
                Ok(())
            }
        })
}

// ---- The event handler ----

/// Handles `uploaded` (a first scan, or a retry) and `rescan` events. Idempotent: the scan
/// is recorded once per event id, and only while the artifact is in the expected status.
pub async fn on_scan_event(core: &Core, scanning: &Scanning, blobs: &Blobs, delivery: &Delivery) -> anyhow::Result<()> {
    let Some(row) = artifacts::find(&core.db, &delivery.artifact_id).await? else { return Ok(()) };
    let status = row.status();
    let expected = if delivery.event_type == events::UPLOADED {
        status == Status::Scanning
    } else {
        matches!(status, Status::Approved | Status::Quarantined)
    };
    if !expected {
        return Ok(()); // redelivered, or the artifact moved on (deleted, released …)
    }
    let started_at = now_ms();
    core.metrics.scan_queue.inc();
    let clock = Instant::now();
    let result = scan_blob(core, scanning, blobs, &row).await;
    core.metrics.scan_queue.dec();
    core.metrics.scan_duration.observe(clock.elapsed().as_secs_f64());
    match result {
        Ok(run) => record_success(core, &row, status, delivery, started_at, run).await,
        Err(e) => {
            core.metrics.scanner_failures.inc();
            let refused = e.downcast_ref::<ScanError>().is_some_and(ScanError::is_permanent);
            let no_db = e.downcast_ref::<ScanError>().is_some_and(|e| matches!(e, ScanError::NoDatabase));
            let last_attempt = delivery.attempt >= scanning.config.attempts;
            tracing::warn!(artifact = %row.id, error = format!("{e:#}"), attempt = delivery.attempt, refused, "scan failed");
            if !(last_attempt || refused || no_db) {
                return Err(e); // retried with backoff (outbox or Broker)
            }
            record_failure(core, scanning, &row, status, delivery, started_at, &e, refused).await
        }
    }
}

/// Copies the blob into a private workspace and runs the scanner on it. The workspace holds
/// decrypted plaintext: it is removed when this returns, whatever the outcome.
async fn scan_blob(
    core: &Core,
    scanning: &Scanning,
    blobs: &Blobs,
    row: &ArtifactRow,
) -> anyhow::Result<crate::core::scan::ScanRun> {
    if scanning.db_updated_at().is_none() {
        return Err(ScanError::NoDatabase.into());
    }
    let workspace = scanning.workspace(&row.id)?;
    let blob = workspace.path().join("blob");
    let size = row.size();
    let area = artifacts::blob_area(row);
    let mut stream = blobs.read(area, &row.id, row.wrapped_key.as_deref(), size, 0, size).await?;
    let mut file = tokio::fs::File::create(&blob).await?;
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        anyhow::ensure!(written <= size, "the stored blob is larger than the artifact");
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    drop(file);
    anyhow::ensure!(written == size, "the stored blob is shorter than the artifact");
    let block_unsupported = core.config.policy.block_unsupported_archives;
    Ok(scanning.scan(workspace.path(), &blob, &row.filename, block_unsupported).await?)
}

async fn record_success(
    core: &Core,
    row: &ArtifactRow,
    status: Status,
    delivery: &Delivery,
    started_at: i64,
    run: crate::core::scan::ScanRun,
) -> anyhow::Result<()> {
    let decision = decisions::decide(&core.db, &core.config.policy, &row.id, &run.findings).await?;
    // A release covered an earlier scan's findings; this scan is judged on its own.
    let to = decisions::next_status(status, decision.passed);
    let summary = run.findings.summary();
    let scan = ScanRecord {
        id: uuid::Uuid::new_v4().to_string(),
        event_id: delivery.id.clone(),
        status: "succeeded",
        kind: Some(run.kind.name()),
        trivy_version: Some(run.trivy_version.clone()),
        db_updated_at: run.db_updated_at.clone(),
        findings: serde_json::to_string(&run.findings)?,
        summary: serde_json::to_string(&summary)?,
        error: None,
        started_at,
    };
    let reason = crate::core::scan::policy::summarise(&decision.reasons);
    let mut change = Change::new(&row.id, status, to).data(serde_json::json!({
        "reasons": decision.reasons, "summary": summary, "db_updated_at": run.db_updated_at,
        "kind": run.kind.name(), "sha256": row.sha256,
    }));
    change.reason = (!reason.is_empty()).then_some(reason);
    change.policy_reasons = Some(serde_json::to_string(&decision.reasons)?);
    change.scan = Some(scan);
    if lifecycle::apply(&core, change).await? {
        core.metrics.scan_outcomes.with_label_values(&[if decision.passed { "passed" } else { "quarantined" }]).inc();
        tracing::info!(artifact = %row.id, outcome = to.as_str(), findings = ?summary, "scan recorded");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn record_failure(
    core: &Core,
    scanning: &Scanning,
    row: &ArtifactRow,
    status: Status,
    delivery: &Delivery,
    started_at: i64,
    error: &anyhow::Error,
    refused: bool,
) -> anyhow::Result<()> {
    let error_text = format!("{error:#}");
    // The artifact refused (hostile archive) is final; the scanner failing is retryable.
    let detail = if refused {
        format!("scan failed: {error_text}")
    } else {
        format!("scanner unavailable: {error_text} (the artifact can be scanned again)")
    };
    let reasons = vec![Reason {
        rule: if refused { "scan_error" } else { "scanner_unavailable" }.into(),
        finding: "scan".into(),
        package: None,
        severity: None,
        detail: detail.clone(),
    }];
    // Fail closed: a first scan that cannot complete fails the artifact; an approved one
    // that can no longer be scanned is quarantined. Fail open keeps or grants approval.
    let to = match (core.config.policy.fail_closed, status) {
        (true, Status::Scanning) => Status::Failed,
        (true, _) => Status::Quarantined,
        (false, Status::Approved) => Status::Approved,
        (false, _) => Status::Signing,
    };
    let scan = ScanRecord {
        id: uuid::Uuid::new_v4().to_string(),
        event_id: delivery.id.clone(),
        status: "failed",
        kind: None,
        trivy_version: None,
        db_updated_at: scanning.db_updated_at(),
        findings: serde_json::to_string(&Findings::default())?,
        summary: serde_json::to_string(&Summary::default())?,
        error: Some(error_text.clone()),
        started_at,
    };
    let mut change = Change::new(&row.id, status, to).reason(detail).data(
        serde_json::json!({ "reasons": reasons, "error": error_text, "retryable": !refused, "sha256": row.sha256 }),
    );
    change.policy_reasons = Some(serde_json::to_string(&reasons)?);
    change.scan = Some(scan);
    if to == Status::Failed {
        change.effects.push(Effect::Retryable(!refused));
    }
    if lifecycle::apply(&core, change).await? {
        core.metrics.scan_outcomes.with_label_values(&[to.as_str()]).inc();
    }
    Ok(())
}

// ---- Background work ----

/// Re-evaluates artifacts whose exceptions ended (expired or revoked); queues rescans of
/// approved artifacts scanned with another vulnerability DB than the one in use; retries
/// artifacts that failed because the scanner was unavailable, once it is available again.
pub async fn recheck(core: &Core, scanning: &Scanning) -> anyhow::Result<()> {
    let now = now_ms();
    let ended: Vec<(String, Option<String>)> = with_pool!(&core.db, |pool| {
        sqlx::query_as(
            "SELECT id, artifact_id FROM exceptions WHERE ended_handled = 0 AND (expires_at <= $1 OR revoked_at IS NOT NULL)",
        )
        .bind(now)
        .fetch_all(pool)
        .await
    })?;
    for (exception_id, artifact_id) in ended {
        let affected = match artifact_id {
            Some(id) => vec![id],
            None => ids_with_status(&core.db, Status::Approved).await?,
        };
        for id in affected {
            decisions::reevaluate(&core, &core.config.policy, &id).await?;
        }
        with_pool!(&core.db, |pool| sqlx::query("UPDATE exceptions SET ended_handled = 1 WHERE id = $1")
            .bind(&exception_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
    }
    let Some(current) = scanning.db_updated_at() else { return Ok(()) };
    // Approved artifacts whose latest scan used another DB and have no rescan pending.
    let stale: Vec<String> = with_pool!(&core.db, |pool| sqlx::query_scalar(
        "SELECT a.id FROM artifacts a WHERE a.status = $1 \
         AND COALESCE((SELECT s.db_updated_at FROM scans s WHERE s.artifact_id = a.id \
                       ORDER BY s.finished_at DESC, s.id DESC LIMIT 1), '') <> $2 \
         AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.artifact_id = a.id AND o.event_type = $3 \
                         AND o.delivered_at IS NULL AND o.dead_at IS NULL)"
    )
    .bind(Status::Approved.as_str())
    .bind(&current)
    .bind(events::RESCAN)
    .fetch_all(pool)
    .await)?;
    for id in stale {
        tracing::info!(artifact = %id, db_updated_at = %current, "vulnerability DB changed: rescanning");
        lifecycle::request(&core, &id, events::RESCAN, serde_json::json!({ "db_updated_at": current })).await?;
    }
    // The scanner works again (it has a DB and Trivy answers): retry what it failed.
    if scanning.trivy_available().await {
        let retry: Vec<String> = with_pool!(&core.db, |pool| {
            sqlx::query_scalar(
            "SELECT id FROM artifacts WHERE status = $1 AND retryable = 1 AND updated_at < $2 ORDER BY updated_at LIMIT 100"
        )
        .bind(Status::Failed.as_str())
        .bind(now - 10_000)
        .fetch_all(pool)
        .await
        })?;
        for id in retry {
            tracing::info!(artifact = %id, "scanner available again: retrying a failed scan");
            retry_scan(core, &id, "retried automatically: the scanner is available again").await?;
        }
    }
    Ok(())
}

/// Hands a retryable failed artifact back to the scanner.
async fn retry_scan(core: &Core, id: &str, reason: &str) -> Result<bool, lifecycle::ApplyError> {
    let change = Change::new(id, Status::Failed, Status::Scanning).reason(reason.to_owned());
    lifecycle::apply(&core, change).await
}

async fn ids_with_status(db: &Db, status: Status) -> Result<Vec<String>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_scalar("SELECT id FROM artifacts WHERE status = $1")
        .bind(status.as_str())
        .fetch_all(pool)
        .await)
}

// ---- API ----

#[derive(Debug, Serialize, ToSchema)]
pub struct ScanResults {
    pub artifact_id: String,
    pub status: Status,
    pub policy_reasons: Vec<Reason>,
    pub scan: Option<ScanSummary>,
    pub findings: Findings,
}

/// The full findings of an artifact's latest scan (secrets without their values).
#[utoipa::path(get, path = "/api/artifacts/{id}/scan-results", operation_id = "getScanResults",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = ScanResults), (status = 401), (status = 403), (status = 404)))]
pub async fn scan_results(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ScanResults>, ApiError> {
    let row = artifacts::find_visible(&core.db, &principal, &id).await?;
    let scan = scans::latest(&core.db, &id, false).await?;
    let findings = scan.as_ref().and_then(|s| serde_json::from_str(&s.findings).ok()).unwrap_or_default();
    let policy_reasons = row.policy_reasons.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default();
    Ok(Json(ScanResults {
        artifact_id: id,
        status: row.status(),
        policy_reasons,
        scan: scan.as_ref().map(ScanSummary::from),
        findings,
    }))
}

/// Scans an artifact again: an approved or quarantined one (admin), or one that failed
/// because the scanner was unavailable (its owner or an admin).
#[utoipa::path(post, path = "/api/artifacts/{id}/rescan", operation_id = "rescanArtifact",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 202), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn rescan(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = artifacts::find_visible(&core.db, &principal, &id).await?;
    match row.status() {
        Status::Approved | Status::Quarantined => {
            if !principal.can(Permission::ArtifactsManage) {
                return Err(ApiError::new(
                    Code::PermissionDenied,
                    "rescanning an approved or quarantined artifact needs the 'artifacts_manage' permission",
                ));
            }
            lifecycle::request(&core, &id, events::RESCAN, serde_json::json!({})).await?;
        }
        Status::Failed if row.retryable != 0 => {
            artifacts::require_owner(&row, &principal, "retry this artifact")?;
            if !retry_scan(&core, &id, &format!("retried by {}", principal.username)).await? {
                return Err(ApiError::new(Code::ConcurrentChange, "the artifact changed meanwhile; retry"));
            }
        }
        other => {
            return Err(ApiError::new(
                Code::InvalidState,
                format!(
                    "artifact is {}: only approved, quarantined or retryable failed artifacts are rescanned",
                    other.as_str()
                ),
            ));
        }
    }
    core.audit
        .record_durable(context.event(&principal, "artifacts.rescan", &id, "success", serde_json::Value::Null))
        .await;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Why the findings are acceptable (kept in the audit log), 10 to 2000 characters.
    #[schema(min_length = 10, max_length = 2000)]
    pub justification: String,
}

fn validate_justification(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.chars().count() < 10 || text.chars().count() > 2000 {
        return Err(ApiError::new(Code::InvalidField, "justification: 10 to 2000 characters"));
    }
    Ok(text.to_owned())
}

/// Releases a quarantined artifact despite its findings (admin, audited). The release
/// covers the findings of the current scan; a later scan is judged again. The artifact
/// goes to `signing`, and is approved once Arca has signed it.
#[utoipa::path(post, path = "/api/artifacts/{id}/release", operation_id = "releaseArtifact",
    params(("id" = String, Path, description = "artifact id")), request_body = ReleaseRequest,
    responses((status = 200, body = artifacts::Artifact), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn release(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReleaseRequest>,
) -> Result<Json<artifacts::Artifact>, ApiError> {
    let justification = validate_justification(&request.justification)?;
    let row = artifacts::get(&core.db, &id).await?;
    if row.status() != Status::Quarantined {
        return Err(ApiError::new(
            Code::InvalidState,
            format!("artifact is {}: only quarantined artifacts are released", row.status().as_str()),
        ));
    }
    let scan = scans::latest(&core.db, &id, false).await?;
    let reason = format!("released by {}: {justification}", principal.username);
    let change = Change::new(&id, Status::Quarantined, Status::Signing)
        .reason(reason)
        .data(serde_json::json!({ "released_by": principal.username, "sha256": row.sha256 }))
        .effect(Effect::Released { scan_id: scan.as_ref().map(|s| s.id.clone()) });
    if !lifecycle::apply(&core, change).await? {
        return Err(ApiError::new(Code::ConcurrentChange, "the artifact changed meanwhile; retry"));
    }
    core.audit
        .record_durable(context.event(
            &principal,
            "artifacts.release",
            &id,
            "success",
            serde_json::json!({ "justification": justification }),
        ))
        .await;
    let row = artifacts::get(&core.db, &id).await?;
    let owner = artifacts::username(&core.db, &row.owner_id).await?;
    Ok(Json(artifacts::Artifact::view(row, owner, None, &principal)))
}

/// The policy in force.
#[utoipa::path(get, path = "/api/policy", operation_id = "getPolicy",
    responses((status = 200, body = Policy), (status = 401)))]
pub async fn show_policy(State(core): State<Core>) -> Json<Policy> {
    Json(core.config.policy.clone())
}

/// The scanner: Trivy's version and the vulnerability DB in use.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScannerStatus {
    pub trivy_version: String,
    /// `UpdatedAt` of the vulnerability DB (RFC 3339); null when there is none.
    pub db_updated_at: Option<String>,
    pub db_age_hours: Option<f64>,
    /// Older than `ARCA_TRIVY_DB_STALE_HOURS`, or missing.
    pub db_stale: bool,
    /// The last failed DB update, if the latest attempt failed.
    pub last_update_error: Option<String>,
}

/// The scanner's state: Trivy's version and the vulnerability DB's age.
#[utoipa::path(get, path = "/api/scanner", operation_id = "getScanner",
    responses((status = 200, body = ScannerStatus), (status = 401)))]
pub async fn scanner_status(State(scanning): State<Scanning>) -> Json<ScannerStatus> {
    let db_updated_at = scanning.db_updated_at();
    let age = scanning.db_age();
    Json(ScannerStatus {
        trivy_version: scanning.trivy_version().await,
        db_age_hours: age.map(|a| (a.as_secs_f64() / 36.0).round() / 100.0),
        db_stale: age.is_none_or(|a| a > scanning.config.db_stale_after),
        db_updated_at,
        last_update_error: scanning.last_update_error(),
    })
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Exception {
    pub id: String,
    /// None: every artifact.
    pub artifact_id: Option<String>,
    pub vulnerability_id: Option<String>,
    pub package: Option<String>,
    pub justification: String,
    /// Unix milliseconds.
    pub expires_at: i64,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewException {
    pub artifact_id: Option<String>,
    /// Exactly one of `vulnerability_id` and `package`.
    #[schema(max_length = 256)]
    pub vulnerability_id: Option<String>,
    #[schema(max_length = 256)]
    pub package: Option<String>,
    #[schema(min_length = 10, max_length = 2000)]
    pub justification: String,
    /// Unix milliseconds; in the future, at most a year ahead.
    #[serde(deserialize_with = "crate::core::error::whole_number")]
    pub expires_at: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExceptionQuery {
    /// Include expired and revoked exceptions.
    #[serde(default)]
    pub all: bool,
}

/// Lists exceptions (in force, or all).
#[utoipa::path(get, path = "/api/exceptions", operation_id = "listExceptions", params(ExceptionQuery),
    responses((status = 200, body = Vec<Exception>), (status = 400), (status = 401), (status = 403)))]
pub async fn list_exceptions(
    State(core): State<Core>,
    Query(query): Query<ExceptionQuery>,
) -> Result<Json<Vec<Exception>>, ApiError> {
    let sql = format!(
        "SELECT id, artifact_id, vulnerability_id, package, justification, expires_at, created_by, created_at, \
         revoked_at FROM exceptions {} ORDER BY created_at DESC",
        if query.all { "WHERE $1 = $1" } else { "WHERE revoked_at IS NULL AND expires_at > $1" }
    );
    let rows = with_pool!(&core.db, |pool| sqlx::query_as::<_, Exception>(&sql).bind(now_ms()).fetch_all(pool).await)?;
    Ok(Json(rows))
}

const MAX_EXCEPTION_MS: i64 = 366 * 24 * 3600 * 1000;

/// Creates an exception; affected artifacts are re-evaluated at once.
#[utoipa::path(post, path = "/api/exceptions", operation_id = "createException", request_body = NewException,
    responses((status = 201, body = Exception), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn create_exception(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    ApiJson(request): ApiJson<NewException>,
) -> Result<(StatusCode, Json<Exception>), ApiError> {
    let justification = validate_justification(&request.justification)?;
    let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (vulnerability_id, package) = (clean(request.vulnerability_id), clean(request.package));
    if vulnerability_id.is_some() == package.is_some() {
        return Err(ApiError::new(Code::InvalidField, "give exactly one of vulnerability_id and package"));
    }
    if [&vulnerability_id, &package].iter().any(|v| v.as_ref().is_some_and(|s| s.len() > 256)) {
        return Err(ApiError::new(Code::InvalidField, "vulnerability_id/package: at most 256 characters"));
    }
    let now = now_ms();
    if request.expires_at <= now || request.expires_at > now + MAX_EXCEPTION_MS {
        return Err(ApiError::new(Code::InvalidField, "expires_at: in the future, at most a year ahead"));
    }
    if let Some(artifact_id) = &request.artifact_id {
        artifacts::get(&core.db, artifact_id).await?;
    }
    let exception = Exception {
        id: uuid::Uuid::new_v4().to_string(),
        artifact_id: request.artifact_id,
        vulnerability_id,
        package,
        justification,
        expires_at: request.expires_at,
        created_by: principal.username.clone(),
        created_at: now,
        revoked_at: None,
    };
    with_pool!(&core.db, |pool| sqlx::query(
        "INSERT INTO exceptions (id, artifact_id, vulnerability_id, package, justification, expires_at, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(&exception.id)
    .bind(&exception.artifact_id)
    .bind(&exception.vulnerability_id)
    .bind(&exception.package)
    .bind(&exception.justification)
    .bind(exception.expires_at)
    .bind(&exception.created_by)
    .bind(exception.created_at)
    .execute(pool)
    .await
    .map(|_| ()))?;
    core.audit
        .record_durable(context.event(
            &principal,
            "exceptions.create",
            &exception.id,
            "success",
            serde_json::json!({
                "artifact_id": exception.artifact_id, "vulnerability_id": exception.vulnerability_id,
                "package": exception.package, "expires_at": exception.expires_at,
                "justification": exception.justification,
            }),
        ))
        .await;
    let affected = match &exception.artifact_id {
        Some(id) => vec![id.clone()],
        None => ids_with_status(&core.db, Status::Quarantined).await?,
    };
    for id in affected {
        decisions::reevaluate(&core, &core.config.policy, &id).await.map_err(ApiError::internal)?;
    }
    Ok((StatusCode::CREATED, Json(exception)))
}

/// Revokes an exception; artifacts it covered are re-evaluated at once.
#[utoipa::path(delete, path = "/api/exceptions/{id}", operation_id = "revokeException",
    params(("id" = String, Path, description = "exception id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn revoke_exception(
    State(core): State<Core>,
    State(scanning): State<Scanning>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let revoked = with_pool!(&core.db, |pool| sqlx::query(
        "UPDATE exceptions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"
    )
    .bind(now_ms())
    .bind(&id)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if revoked == 0 {
        return Err(ApiError::not_found("no such exception in force"));
    }
    core.audit
        .record_durable(context.event(&principal, "exceptions.revoke", &id, "success", serde_json::Value::Null))
        .await;
    recheck(&core, &scanning).await.map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// How often the scanner's background checks run.
pub fn recheck_interval(core: &Core) -> Duration {
    core.config.policy_recheck
}
