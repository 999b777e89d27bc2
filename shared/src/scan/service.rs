//! The scan pipeline and its API: the handler of `uploaded`/`rescan` events, policy
//! decisions, manual release, expiring exceptions, and rescans when the vulnerability DB
//! changes.

use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use super::policy::{self, Policy, Reason, Waiver};
use super::report::{Findings, Summary};
use crate::access::{Access, Principal};
use crate::app::AppState;
use crate::artifacts::{self, ArtifactRow, Status};
use crate::db::{now_ms, Db};
use crate::error::{ApiError, ApiJson};
use crate::events::{self, Change, OutboxRow, ScanRecord};
use crate::http::RequestContext;
use crate::rbac::Permission;
use crate::routes::FunctionRouter;
use crate::with_pool;

pub fn router() -> FunctionRouter {
    let manage = Access::Permission(Permission::ArtifactsManage);
    FunctionRouter::new("scan")
        .route(
            Method::GET,
            "/api/artifacts/{id}/scan-results",
            Access::Permission(Permission::ScanResultsRead),
            scan_results,
        )
        .route(Method::POST, "/api/artifacts/{id}/rescan", manage, rescan)
        .route(Method::POST, "/api/artifacts/{id}/release", manage, release)
        .route(Method::GET, "/api/policy", Access::Authenticated, show_policy)
        .route(Method::GET, "/api/exceptions", manage, list_exceptions)
        .route(Method::POST, "/api/exceptions", manage, create_exception)
        .route(Method::DELETE, "/api/exceptions/{id}", manage, revoke_exception)
}

/// Largest CloudEvent accepted by the cluster-mode receiver (events carry ids, not bytes).
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// The `scan` function of the cluster: the scanning API plus `POST /`, where the broker
/// delivers `uploaded` and `rescan` CloudEvents (binary mode). Knative keeps the service
/// cluster-local; the size limit sits in front of the SDK's extractor, which reads without one.
pub fn function() -> FunctionRouter {
    let receiver =
        axum::routing::post(receive_event).layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_EVENT_BYTES));
    router().route_method(Method::POST, "/", Access::Public, receiver)
}

/// Handles one CloudEvent from the broker; an error answer makes the broker retry.
async fn receive_event(State(state): State<AppState>, event: cloudevents::Event) -> Result<StatusCode, ApiError> {
    use cloudevents::AttributesReader;
    let event_type = event.ty().to_owned();
    if event_type != events::UPLOADED && event_type != events::RESCAN {
        return Ok(StatusCode::ACCEPTED); // not for this function
    }
    let artifact_id =
        event.subject().ok_or_else(|| ApiError::bad_request("invalid_event", "the event has no subject"))?.to_owned();
    let row = OutboxRow { id: event.id().to_owned(), event_type, artifact_id, attempts: 0 };
    on_event(&state, &row).await.map_err(ApiError::internal)?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct ScanRow {
    id: String,
    status: String,
    kind: Option<String>,
    trivy_version: Option<String>,
    db_updated_at: Option<String>,
    findings: String,
    summary: String,
    error: Option<String>,
    started_at: i64,
    finished_at: i64,
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

async fn latest_scan(db: &Db, artifact_id: &str, succeeded_only: bool) -> Result<Option<ScanRow>, sqlx::Error> {
    let sql = format!(
        "SELECT id, status, kind, trivy_version, db_updated_at, findings, summary, error, started_at, finished_at \
         FROM scans WHERE artifact_id = $1 {} ORDER BY finished_at DESC, id DESC LIMIT 1",
        if succeeded_only { "AND status = 'succeeded'" } else { "" }
    );
    with_pool!(db, |pool| sqlx::query_as::<_, ScanRow>(&sql).bind(artifact_id).fetch_optional(pool).await)
}

pub async fn latest_summary(db: &Db, artifact_id: &str) -> Result<Option<ScanSummary>, sqlx::Error> {
    Ok(latest_scan(db, artifact_id, false).await?.as_ref().map(ScanSummary::from))
}

/// Exceptions in force now.
async fn active_waivers(db: &Db) -> Result<Vec<Waiver>, sqlx::Error> {
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> = with_pool!(db, |pool| {
        sqlx::query_as(
        "SELECT artifact_id, vulnerability_id, package FROM exceptions WHERE revoked_at IS NULL AND expires_at > $1"
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

/// What the policy needs to know besides the findings.
async fn policy_context(db: &Db, artifact_id: &str) -> Result<policy::Context, sqlx::Error> {
    let valid: i64 = with_pool!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM publisher_signatures WHERE artifact_id = $1 AND result = 'valid'"
    )
    .bind(artifact_id)
    .fetch_one(pool)
    .await)?;
    Ok(policy::Context { publisher_signed: valid > 0 })
}

// ---- The event handler ----

/// Handles `uploaded` (first scan) and `rescan` events.
pub async fn on_event(state: &AppState, event: &OutboxRow) -> anyhow::Result<()> {
    let Some(row) = artifacts::find(&state.db, &event.artifact_id).await? else { return Ok(()) };
    let status = row.status();
    let expected = if event.event_type == events::UPLOADED {
        status == Status::Scanning
    } else {
        matches!(status, Status::Approved | Status::Quarantined)
    };
    if !expected {
        return Ok(()); // redelivered, or the artifact moved on (deleted, released …)
    }
    let started_at = now_ms();
    state.metrics.scan_queue.inc();
    let clock = Instant::now();
    let result = scan_blob(state, &row).await;
    state.metrics.scan_queue.dec();
    state.metrics.scan_duration.observe(clock.elapsed().as_secs_f64());
    match result {
        Ok(run) => record_success(state, &row, status, event, started_at, run).await,
        Err(e) => {
            state.metrics.scanner_failures.inc();
            let last_attempt = event.attempts + 1 >= i64::from(state.scanner.config.attempts);
            let permanent = e.downcast_ref::<super::ScanError>().is_some_and(super::ScanError::is_permanent);
            tracing::warn!(artifact = %row.id, error = %e, last_attempt, permanent, "scan failed");
            if !(last_attempt || permanent) {
                return Err(e); // the outbox retries with backoff
            }
            record_failure(state, &row, status, event, started_at, &format!("{e:#}")).await
        }
    }
}

/// Copies the blob into a private workspace and runs the scanner on it. The workspace holds
/// decrypted plaintext: it is removed when this returns, whatever the outcome.
async fn scan_blob(state: &AppState, row: &ArtifactRow) -> anyhow::Result<super::ScanRun> {
    let workspace = state.scanner.workspace(&row.id)?;
    let blob = workspace.path().join("blob");
    let size = u64::try_from(row.size)?;
    let mut stream =
        state.store.read(artifacts::blob_area(row), &row.id, row.wrapped_key.as_deref(), size, 0, size).await?;
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
    let block_unsupported = state.policy.block_unsupported_archives;
    Ok(state.scanner.scan(workspace.path(), &blob, &row.filename, block_unsupported).await?)
}

async fn record_success(
    state: &AppState,
    row: &ArtifactRow,
    status: Status,
    event: &OutboxRow,
    started_at: i64,
    run: super::ScanRun,
) -> anyhow::Result<()> {
    let reasons = policy::evaluate(
        &state.policy,
        &row.id,
        &run.findings,
        &active_waivers(&state.db).await?,
        policy_context(&state.db, &row.id).await?,
    );
    let to = if reasons.is_empty() { Status::Approved } else { Status::Quarantined };
    let summary = run.findings.summary();
    let scan = ScanRecord {
        id: uuid::Uuid::new_v4().to_string(),
        event_id: event.id.clone(),
        status: "succeeded",
        kind: Some(run.kind.name()),
        trivy_version: Some(run.trivy_version.clone()),
        db_updated_at: run.db_updated_at.clone(),
        findings: serde_json::to_string(&run.findings)?,
        summary: serde_json::to_string(&summary)?,
        error: None,
        started_at,
    };
    if to == Status::Approved && status != Status::Approved {
        prepare_approval(state, &row.id, &row.sha256).await?;
    }
    let reason = policy::summarise(&reasons);
    let mut emitted = vec![(
        events::SCANNED,
        serde_json::json!({ "summary": summary, "db_updated_at": run.db_updated_at, "kind": run.kind.name() }),
    )];
    if to != status {
        emitted.push((
            if to == Status::Approved { events::APPROVED } else { events::QUARANTINED },
            serde_json::json!({ "reasons": reasons }),
        ));
    }
    let applied = events::apply(
        state,
        Change {
            id: &row.id,
            from: status,
            to,
            reason: (!reason.is_empty()).then_some(reason.as_str()),
            policy_reasons: Some(serde_json::to_string(&reasons)?),
            events: emitted,
            scan: Some(scan),
        },
    )
    .await?;
    if applied {
        state.metrics.scan_outcomes.with_label_values(&[to.as_str()]).inc();
        tracing::info!(artifact = %row.id, outcome = to.as_str(), findings = ?summary, "scan recorded");
    }
    Ok(())
}

async fn record_failure(
    state: &AppState,
    row: &ArtifactRow,
    status: Status,
    event: &OutboxRow,
    started_at: i64,
    error: &str,
) -> anyhow::Result<()> {
    let detail = format!("scan failed: {error}");
    let reasons = vec![Reason {
        rule: "scan_error".into(),
        finding: "scan".into(),
        package: None,
        severity: None,
        detail: detail.clone(),
    }];
    // Fail closed: a first scan that cannot complete fails the artifact; an approved one
    // that can no longer be scanned is quarantined. Fail open keeps or grants approval.
    let to = match (state.policy.fail_closed, status) {
        (true, Status::Scanning) => Status::Failed,
        (true, _) => Status::Quarantined,
        (false, _) => Status::Approved,
    };
    if to == Status::Approved && status != Status::Approved {
        prepare_approval(state, &row.id, &row.sha256).await?;
    }
    let mut emitted = vec![(events::SCANNED, serde_json::json!({ "error": error }))];
    if to != status {
        emitted.push((
            match to {
                Status::Failed => events::FAILED,
                Status::Quarantined => events::QUARANTINED,
                _ => events::APPROVED,
            },
            serde_json::json!({ "reasons": reasons }),
        ));
    }
    let scan = ScanRecord {
        id: uuid::Uuid::new_v4().to_string(),
        event_id: event.id.clone(),
        status: "failed",
        kind: None,
        trivy_version: None,
        db_updated_at: state.scanner.db_updated_at(),
        findings: serde_json::to_string(&Findings::default())?,
        summary: serde_json::to_string(&Summary::default())?,
        error: Some(error.to_owned()),
        started_at,
    };
    let applied = events::apply(
        state,
        Change {
            id: &row.id,
            from: status,
            to,
            reason: Some(&detail),
            policy_reasons: Some(serde_json::to_string(&reasons)?),
            events: emitted,
            scan: Some(scan),
        },
    )
    .await?;
    if applied {
        state.metrics.scan_outcomes.with_label_values(&[to.as_str()]).inc();
    }
    Ok(())
}

/// What approval needs before it is committed: the blob in the permanent area, and Arca's
/// signature over the artifact's digest (both idempotent).
async fn prepare_approval(state: &AppState, artifact_id: &str, sha256: &str) -> anyhow::Result<()> {
    state.store.promote(artifact_id).await?;
    crate::signing::sign_artifact(state, artifact_id, sha256).await
}

// ---- Re-evaluation: exceptions, releases, DB updates ----

/// Applies the policy again to an artifact's latest findings (exceptions changed).
pub async fn reevaluate(state: &AppState, artifact_id: &str) -> anyhow::Result<()> {
    let Some(row) = artifacts::find(&state.db, artifact_id).await? else { return Ok(()) };
    let status = row.status();
    if !matches!(status, Status::Approved | Status::Quarantined) {
        return Ok(());
    }
    let Some(scan) = latest_scan(&state.db, artifact_id, false).await? else { return Ok(()) };
    if scan.status != "succeeded" {
        return Ok(()); // the scan error decided; a rescan may change it
    }
    let findings: Findings = serde_json::from_str(&scan.findings)?;
    let reasons = policy::evaluate(
        &state.policy,
        artifact_id,
        &findings,
        &active_waivers(&state.db).await?,
        policy_context(&state.db, artifact_id).await?,
    );
    let released = row.released_scan_id.as_deref() == Some(scan.id.as_str());
    let to = if reasons.is_empty() || released { Status::Approved } else { Status::Quarantined };
    if to == status {
        return Ok(());
    }
    if to == Status::Approved {
        prepare_approval(state, artifact_id, &row.sha256).await?;
    }
    let reason = policy::summarise(&reasons);
    events::apply(
        state,
        Change {
            id: artifact_id,
            from: status,
            to,
            reason: (!reason.is_empty()).then_some(reason.as_str()),
            policy_reasons: Some(serde_json::to_string(&reasons)?),
            events: vec![(
                if to == Status::Approved { events::APPROVED } else { events::QUARANTINED },
                serde_json::json!({ "reasons": reasons, "cause": "policy re-evaluation" }),
            )],
            scan: None,
        },
    )
    .await?;
    tracing::info!(artifact = %artifact_id, outcome = to.as_str(), "policy re-evaluated");
    Ok(())
}

/// Re-evaluates artifacts whose exceptions ended (expired or revoked), and queues rescans
/// of artifacts scanned with an older vulnerability DB than the one in use.
pub async fn recheck(state: &AppState) -> anyhow::Result<()> {
    let now = now_ms();
    let ended: Vec<(String, Option<String>)> = with_pool!(&state.db, |pool| {
        sqlx::query_as(
        "SELECT id, artifact_id FROM exceptions WHERE ended_handled = 0 AND (expires_at <= $1 OR revoked_at IS NOT NULL)"
    )
    .bind(now)
    .fetch_all(pool)
    .await
    })?;
    for (exception_id, artifact_id) in ended {
        let affected = match artifact_id {
            Some(id) => vec![id],
            None => ids_with_status(&state.db, Status::Approved).await?,
        };
        for id in affected {
            reevaluate(state, &id).await?;
        }
        with_pool!(&state.db, |pool| sqlx::query("UPDATE exceptions SET ended_handled = 1 WHERE id = $1")
            .bind(&exception_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
    }
    if let Some(current) = state.scanner.db_updated_at() {
        // Approved artifacts whose latest scan used another DB and have no rescan pending.
        let stale: Vec<String> = with_pool!(&state.db, |pool| sqlx::query_scalar(
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
            events::enqueue(state, &id, events::RESCAN).await?;
        }
    }
    Ok(())
}

async fn ids_with_status(db: &Db, status: Status) -> Result<Vec<String>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_scalar("SELECT id FROM artifacts WHERE status = $1")
        .bind(status.as_str())
        .fetch_all(pool)
        .await)
}

/// Runs `recheck` at start-up and then periodically.
pub async fn run_rechecks(state: AppState, every: Duration) {
    loop {
        if let Err(e) = recheck(&state).await {
            tracing::warn!(error = %e, "policy recheck failed");
        }
        tokio::time::sleep(every).await;
    }
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
#[utoipa::path(get, path = "/api/artifacts/{id}/scan-results", tag = "scanning", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = ScanResults), (status = 401), (status = 403), (status = 404)))]
pub async fn scan_results(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ScanResults>, ApiError> {
    let row = artifacts::find_visible(&state.db, &principal, &id).await?;
    let scan = latest_scan(&state.db, &id, false).await?;
    let findings = scan.as_ref().and_then(|s| serde_json::from_str(&s.findings).ok()).unwrap_or_default();
    let artifact: artifacts::Artifact = row.into();
    Ok(Json(ScanResults {
        artifact_id: id,
        status: artifact.status,
        policy_reasons: artifact.policy_reasons,
        scan: scan.as_ref().map(ScanSummary::from),
        findings,
    }))
}

/// Queues a new scan of an approved or quarantined artifact.
#[utoipa::path(post, path = "/api/artifacts/{id}/rescan", tag = "scanning", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 202), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn rescan(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = artifacts::find(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    if !matches!(row.status(), Status::Approved | Status::Quarantined) {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("artifact is {}: only approved or quarantined artifacts are rescanned", row.status().as_str()),
        ));
    }
    events::enqueue(&state, &id, events::RESCAN).await?;
    state
        .audit
        .record_durable(context.event(&principal, "artifacts.rescan", &id, "success", serde_json::Value::Null))
        .await;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Why the findings are acceptable (kept in the audit log).
    pub justification: String,
}

fn validate_justification(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.chars().count() < 10 || text.chars().count() > 2000 {
        return Err(ApiError::bad_request("invalid_field", "justification: 10 to 2000 characters"));
    }
    Ok(text.to_owned())
}

/// Releases a quarantined artifact despite its findings (admin, audited). The release
/// covers the findings of the current scan; a later scan is judged again.
#[utoipa::path(post, path = "/api/artifacts/{id}/release", tag = "scanning", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")), request_body = ReleaseRequest,
    responses((status = 200, body = artifacts::Artifact), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn release(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReleaseRequest>,
) -> Result<Json<artifacts::Artifact>, ApiError> {
    let justification = validate_justification(&request.justification)?;
    let row = artifacts::find(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    if row.status() != Status::Quarantined {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("artifact is {}: only quarantined artifacts are released", row.status().as_str()),
        ));
    }
    let scan = latest_scan(&state.db, &id, false).await?;
    with_pool!(&state.db, |pool| sqlx::query("UPDATE artifacts SET released_scan_id = $1 WHERE id = $2")
        .bind(scan.as_ref().map(|s| s.id.clone()))
        .bind(&id)
        .execute(pool)
        .await
        .map(|_| ()))?;
    prepare_approval(&state, &id, &row.sha256).await.map_err(ApiError::internal)?;
    let reason = format!("released by {}: {justification}", principal.username);
    let applied = events::apply(
        &state,
        Change {
            id: &id,
            from: Status::Quarantined,
            to: Status::Approved,
            reason: Some(&reason),
            policy_reasons: None,
            events: vec![(events::APPROVED, serde_json::json!({ "released_by": principal.username }))],
            scan: None,
        },
    )
    .await?;
    if !applied {
        return Err(ApiError::conflict("concurrent_change", "the artifact changed meanwhile; retry"));
    }
    state
        .audit
        .record_durable(context.event(
            &principal,
            "artifacts.release",
            &id,
            "success",
            serde_json::json!({ "justification": justification }),
        ))
        .await;
    let row = artifacts::find(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    Ok(Json(row.into()))
}

/// The policy in force.
#[utoipa::path(get, path = "/api/policy", tag = "scanning", security(("bearer" = [])),
    responses((status = 200, body = Policy), (status = 401)))]
pub async fn show_policy(State(state): State<AppState>) -> Json<Policy> {
    Json(state.policy.clone())
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
    pub vulnerability_id: Option<String>,
    pub package: Option<String>,
    pub justification: String,
    /// Unix milliseconds; at most a year ahead.
    pub expires_at: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExceptionQuery {
    /// Include expired and revoked exceptions.
    #[serde(default)]
    pub all: bool,
}

/// Lists exceptions (in force, or all).
#[utoipa::path(get, path = "/api/exceptions", tag = "scanning", security(("bearer" = [])), params(ExceptionQuery),
    responses((status = 200, body = Vec<Exception>), (status = 401), (status = 403)))]
pub async fn list_exceptions(
    State(state): State<AppState>,
    Query(query): Query<ExceptionQuery>,
) -> Result<Json<Vec<Exception>>, ApiError> {
    let sql = format!(
        "SELECT id, artifact_id, vulnerability_id, package, justification, expires_at, created_by, created_at, \
         revoked_at FROM exceptions {} ORDER BY created_at DESC",
        if query.all { "WHERE $1 = $1" } else { "WHERE revoked_at IS NULL AND expires_at > $1" }
    );
    let rows = with_pool!(&state.db, |pool| sqlx::query_as::<_, Exception>(&sql).bind(now_ms()).fetch_all(pool).await)?;
    Ok(Json(rows))
}

const MAX_EXCEPTION_MS: i64 = 366 * 24 * 3600 * 1000;

/// Creates an exception; affected artifacts are re-evaluated at once.
#[utoipa::path(post, path = "/api/exceptions", tag = "scanning", security(("bearer" = [])), request_body = NewException,
    responses((status = 201, body = Exception), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn create_exception(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    ApiJson(request): ApiJson<NewException>,
) -> Result<(StatusCode, Json<Exception>), ApiError> {
    let justification = validate_justification(&request.justification)?;
    let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (vulnerability_id, package) = (clean(request.vulnerability_id), clean(request.package));
    if vulnerability_id.is_some() == package.is_some() {
        return Err(ApiError::bad_request("invalid_field", "give exactly one of vulnerability_id and package"));
    }
    if [&vulnerability_id, &package].iter().any(|v| v.as_ref().is_some_and(|s| s.len() > 256)) {
        return Err(ApiError::bad_request("invalid_field", "vulnerability_id/package: at most 256 characters"));
    }
    let now = now_ms();
    if request.expires_at <= now || request.expires_at > now + MAX_EXCEPTION_MS {
        return Err(ApiError::bad_request("invalid_field", "expires_at: in the future, at most a year ahead"));
    }
    if let Some(artifact_id) = &request.artifact_id {
        artifacts::find(&state.db, artifact_id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
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
    with_pool!(&state.db, |pool| sqlx::query(
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
    state
        .audit
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
        None => ids_with_status(&state.db, Status::Quarantined).await?,
    };
    for id in affected {
        reevaluate(&state, &id).await.map_err(ApiError::internal)?;
    }
    Ok((StatusCode::CREATED, Json(exception)))
}

/// Revokes an exception; artifacts it covered are re-evaluated at once.
#[utoipa::path(delete, path = "/api/exceptions/{id}", tag = "scanning", security(("bearer" = [])),
    params(("id" = String, Path, description = "exception id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn revoke_exception(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let revoked = with_pool!(&state.db, |pool| sqlx::query(
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
    state
        .audit
        .record_durable(context.event(&principal, "exceptions.revoke", &id, "success", serde_json::Value::Null))
        .await;
    recheck(&state).await.map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}
