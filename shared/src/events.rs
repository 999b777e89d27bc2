//! Lifecycle events: every state change writes a CloudEvent (`dev.arca.artifact.<state>`)
//! into a durable outbox in the same transaction; a worker delivers each at least once to
//! the in-process handlers, which are idempotent (they act only on the state the event
//! expects, and a scan is recorded once per event id). Events whose handler keeps failing
//! are dead-lettered: kept, shown to operators, no longer retried.

use std::sync::Arc;
use std::time::Duration;

use cloudevents::{EventBuilder, EventBuilderV10};
use futures::StreamExt;
use tokio::sync::Notify;

use crate::app::AppState;
use crate::artifacts::Status;
use crate::db::now_ms;
use crate::with_pool;

pub const UPLOADED: &str = "dev.arca.artifact.uploaded";
pub const SCANNED: &str = "dev.arca.artifact.scanned";
pub const APPROVED: &str = "dev.arca.artifact.approved";
pub const QUARANTINED: &str = "dev.arca.artifact.quarantined";
pub const FAILED: &str = "dev.arca.artifact.failed";
pub const DELETED: &str = "dev.arca.artifact.deleted";
/// Asks for a new scan of an approved or quarantined artifact (new DB, admin request).
pub const RESCAN: &str = "dev.arca.artifact.rescan";

/// Deliveries before an event is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 8;

/// Wakes the outbox worker when an event is written.
#[derive(Clone, Default)]
pub struct Events(Arc<Notify>);

impl Events {
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// An outbox event being delivered.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: String,
    pub event_type: String,
    pub artifact_id: String,
    /// Failed deliveries so far.
    pub attempts: i64,
}

/// A scan result recorded with the change it causes.
pub struct ScanRecord {
    pub id: String,
    pub event_id: String,
    pub status: &'static str,
    pub kind: Option<String>,
    pub trivy_version: Option<String>,
    pub db_updated_at: Option<String>,
    pub findings: String,
    pub summary: String,
    pub error: Option<String>,
    pub started_at: i64,
}

/// One atomic change of an artifact: an optional scan result, a status change (`from` may
/// equal `to`), its reason and the events it emits.
pub struct Change<'a> {
    pub id: &'a str,
    pub from: Status,
    pub to: Status,
    pub reason: Option<&'a str>,
    /// JSON of the policy reasons, when the decision changed them.
    pub policy_reasons: Option<String>,
    pub events: Vec<(&'static str, serde_json::Value)>,
    pub scan: Option<ScanRecord>,
}

/// A CloudEvent 1.0 in structured JSON.
fn cloud_event(event_id: &str, event_type: &str, subject: &str, data: serde_json::Value) -> String {
    let event = EventBuilderV10::new()
        .id(event_id)
        .source("/arca/artifacts")
        .ty(event_type)
        .subject(subject)
        .time(chrono::Utc::now())
        .data("application/json", data)
        .build();
    match event {
        Ok(event) => serde_json::to_string(&event).unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "building a CloudEvent failed");
            String::new()
        }
    }
}

/// Applies a change atomically. False when the artifact was no longer in `from`, or the
/// scan of this event was already recorded: nothing is written then.
pub async fn apply(state: &AppState, change: Change<'_>) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let events: Vec<(String, &str, String)> = change
        .events
        .iter()
        .map(|(event_type, data)| {
            let event_id = uuid::Uuid::new_v4().to_string();
            let mut data = data.clone();
            if let Some(map) = data.as_object_mut() {
                map.insert("artifact_id".into(), change.id.into());
                map.insert("status".into(), change.to.as_str().into());
                map.entry("reason").or_insert(change.reason.into());
            }
            let payload = cloud_event(&event_id, event_type, change.id, data);
            (event_id, *event_type, payload)
        })
        .collect();
    let applied = with_pool!(&state.db, |pool| async {
        let mut tx = pool.begin().await?;
        if let Some(scan) = &change.scan {
            let inserted = sqlx::query(
                "INSERT INTO scans (id, artifact_id, event_id, status, kind, trivy_version, db_updated_at, findings, \
                 summary, error, started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&scan.id)
            .bind(change.id)
            .bind(&scan.event_id)
            .bind(scan.status)
            .bind(&scan.kind)
            .bind(&scan.trivy_version)
            .bind(&scan.db_updated_at)
            .bind(&scan.findings)
            .bind(&scan.summary)
            .bind(&scan.error)
            .bind(scan.started_at)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted != 1 {
                return Ok(false);
            }
        }
        // Approval follows the blob's move to the permanent area (see `artifacts::blob_area`).
        let promoted = (change.to == Status::Approved).then_some(now);
        let moved = sqlx::query(
            "UPDATE artifacts SET status = $1, status_reason = $2, policy_reasons = COALESCE($3, policy_reasons), \
             updated_at = $4, promoted_at = COALESCE(promoted_at, $7) WHERE id = $5 AND status = $6",
        )
        .bind(change.to.as_str())
        .bind(change.reason)
        .bind(&change.policy_reasons)
        .bind(now)
        .bind(change.id)
        .bind(change.from.as_str())
        .bind(promoted)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        for (event_id, event_type, payload) in &events {
            sqlx::query(
                "INSERT INTO outbox (id, event_type, artifact_id, payload, created_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(event_id)
            .bind(event_type)
            .bind(change.id)
            .bind(payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok::<bool, sqlx::Error>(true)
    }
    .await)?;
    if applied && !events.is_empty() {
        state.events.notify();
    }
    Ok(applied)
}

/// Changes an artifact's state and records the event, atomically. False when the artifact
/// was no longer in `from` (someone else moved it: nothing is written).
pub async fn transition_with_event(
    state: &AppState,
    id: &str,
    from: Status,
    to: Status,
    reason: Option<&str>,
    event_type: &'static str,
) -> Result<bool, sqlx::Error> {
    apply(
        state,
        Change {
            id,
            from,
            to,
            reason,
            policy_reasons: None,
            events: vec![(event_type, serde_json::json!({}))],
            scan: None,
        },
    )
    .await
}

/// Queues an event for an artifact without changing it (e.g. a rescan request).
pub async fn enqueue(state: &AppState, artifact_id: &str, event_type: &'static str) -> Result<String, sqlx::Error> {
    let event_id = uuid::Uuid::new_v4().to_string();
    let payload = cloud_event(&event_id, event_type, artifact_id, serde_json::json!({ "artifact_id": artifact_id }));
    let now = now_ms();
    with_pool!(&state.db, |pool| {
        sqlx::query(
        "INSERT INTO outbox (id, event_type, artifact_id, payload, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5)"
    )
    .bind(&event_id)
    .bind(event_type)
    .bind(artifact_id)
    .bind(&payload)
    .bind(now)
    .execute(pool)
    .await
    .map(|_| ())
    })?;
    state.events.notify();
    Ok(event_id)
}

/// Delivers outbox events until the process ends.
pub async fn run_worker(state: AppState) {
    loop {
        match deliver_due(&state).await {
            Ok(0) => {
                let _ = tokio::time::timeout(Duration::from_millis(500), state.events.0.notified()).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "outbox: delivery failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Delivers the due events, several at once (scans are bounded by the scanner itself).
async fn deliver_due(state: &AppState) -> Result<usize, sqlx::Error> {
    let now = now_ms();
    let due: Vec<OutboxRow> = with_pool!(&state.db, |pool| sqlx::query_as(
        "SELECT id, event_type, artifact_id, attempts FROM outbox \
         WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1 ORDER BY created_at LIMIT 16"
    )
    .bind(now)
    .fetch_all(pool)
    .await)?;
    let count = due.len();
    let results: Vec<Result<(), sqlx::Error>> = futures::stream::iter(due)
        .map(|event| async move {
            let result = handle(state, &event).await;
            settle(state, &event, result).await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(count)
}

/// Records the outcome of one delivery: done, retry later with backoff, or dead-lettered.
async fn settle(state: &AppState, event: &OutboxRow, result: anyhow::Result<()>) -> Result<(), sqlx::Error> {
    let now = now_ms();
    match result {
        Ok(()) => with_pool!(&state.db, |pool| sqlx::query("UPDATE outbox SET delivered_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&event.id)
            .execute(pool)
            .await
            .map(|_| ())),
        Err(e) => {
            let attempts = event.attempts + 1;
            let dead = (attempts >= MAX_ATTEMPTS).then_some(now);
            let backoff = state.config.event_retry_base_ms << event.attempts.clamp(0, 10);
            if dead.is_some() {
                tracing::error!(event = %event.id, kind = %event.event_type, error = %e, "outbox: event dead-lettered");
                state.metrics.dead_letters.inc();
            } else {
                tracing::warn!(event = %event.id, error = %e, "outbox: handler failed; will retry");
            }
            with_pool!(&state.db, |pool| sqlx::query(
                "UPDATE outbox SET attempts = $1, next_attempt_at = $2, last_error = $3, dead_at = $4 WHERE id = $5"
            )
            .bind(attempts)
            .bind(now + backoff)
            .bind(format!("{e:#}"))
            .bind(dead)
            .bind(&event.id)
            .execute(pool)
            .await
            .map(|_| ()))
        }
    }
}

/// The in-process handlers.
async fn handle(state: &AppState, event: &OutboxRow) -> anyhow::Result<()> {
    match event.event_type.as_str() {
        UPLOADED | RESCAN => crate::scan::service::on_event(state, event).await,
        _ => Ok(()),
    }
}

/// An event no handler could deliver after `MAX_ATTEMPTS`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: String,
    pub event_type: String,
    pub artifact_id: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub dead_at: Option<i64>,
}

pub fn router() -> crate::routes::FunctionRouter {
    crate::routes::FunctionRouter::new("events").route(
        axum::http::Method::GET,
        "/api/events/dead-letters",
        crate::access::Access::Permission(crate::rbac::Permission::AuditRead),
        dead_letters,
    )
}

/// Dead-lettered lifecycle events (newest first, at most 500), for operators.
#[utoipa::path(get, path = "/api/events/dead-letters", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = Vec<DeadLetter>), (status = 401), (status = 403)))]
pub async fn dead_letters(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<axum::Json<Vec<DeadLetter>>, crate::error::ApiError> {
    let rows = with_pool!(&state.db, |pool| sqlx::query_as::<_, DeadLetter>(
        "SELECT id, event_type, artifact_id, attempts, last_error, created_at, dead_at FROM outbox \
         WHERE dead_at IS NOT NULL ORDER BY dead_at DESC LIMIT 500"
    )
    .fetch_all(pool)
    .await)?;
    Ok(axum::Json(rows))
}
