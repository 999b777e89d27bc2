//! Lifecycle events: every state change writes a CloudEvent (`dev.arca.artifact.<state>`)
//! into a durable outbox in the same transaction; a worker delivers each at least once to
//! the in-process handlers, which are idempotent.
//!
//! Until the scanner lands, the handler of `uploaded` is a stand-in policy step that
//! approves (and moves the blob to the permanent area); the state machine is final.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::app::AppState;
use crate::artifacts::{self, Status};
use crate::db::now_ms;
use crate::with_pool;

pub const UPLOADED: &str = "dev.arca.artifact.uploaded";
pub const APPROVED: &str = "dev.arca.artifact.approved";
pub const FAILED: &str = "dev.arca.artifact.failed";
pub const DELETED: &str = "dev.arca.artifact.deleted";

/// Wakes the outbox worker when an event is written.
#[derive(Clone, Default)]
pub struct Events(Arc<Notify>);

impl Events {
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

#[derive(Debug, sqlx::FromRow)]
struct OutboxRow {
    id: String,
    event_type: String,
    artifact_id: String,
    attempts: i64,
}

/// Changes an artifact's state and records the event, atomically. False when the artifact
/// was no longer in `from` (someone else moved it: nothing is written).
pub async fn transition_with_event(
    state: &AppState,
    id: &str,
    from: Status,
    to: Status,
    reason: Option<&str>,
    event_type: &str,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let event_id = uuid::Uuid::new_v4().to_string();
    let payload = serde_json::json!({
        "specversion": "1.0", "id": event_id, "source": "/arca/artifacts", "type": event_type,
        "subject": id, "time": chrono::Utc::now().to_rfc3339(), "datacontenttype": "application/json",
        "data": { "artifact_id": id, "status": to.as_str(), "reason": reason },
    })
    .to_string();
    with_pool!(&state.db, |pool| async {
        let mut tx = pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE artifacts SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4 AND status = $5",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(id)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO outbox (id, event_type, artifact_id, payload, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&event_id)
        .bind(event_type)
        .bind(id)
        .bind(&payload)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
    .await)
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

async fn deliver_due(state: &AppState) -> Result<usize, sqlx::Error> {
    let now = now_ms();
    let due: Vec<OutboxRow> = with_pool!(&state.db, |pool| sqlx::query_as(
        "SELECT id, event_type, artifact_id, attempts FROM outbox \
         WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY created_at LIMIT 16"
    )
    .bind(now)
    .fetch_all(pool)
    .await)?;
    for event in &due {
        let result = handle(state, event).await;
        let now = now_ms();
        match result {
            Ok(()) => {
                with_pool!(&state.db, |pool| sqlx::query("UPDATE outbox SET delivered_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&event.id)
                    .execute(pool)
                    .await
                    .map(|_| ()))?;
            }
            Err(e) => {
                let backoff = 1000_i64 << event.attempts.clamp(0, 10);
                tracing::warn!(event = %event.id, error = %e, "outbox: handler failed; will retry");
                with_pool!(&state.db, |pool| sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3"
                )
                .bind(now + backoff)
                .bind(e.to_string())
                .bind(&event.id)
                .execute(pool)
                .await
                .map(|_| ()))?;
            }
        }
    }
    Ok(due.len())
}

/// The in-process handlers. Each acts only if the artifact is still in the state the event
/// expects, so a redelivered event does nothing.
async fn handle(state: &AppState, event: &OutboxRow) -> anyhow::Result<()> {
    if event.event_type != UPLOADED {
        return Ok(());
    }
    let Some(row) = artifacts::find(&state.db, &event.artifact_id).await? else { return Ok(()) };
    if row.status() != Status::Scanning {
        return Ok(());
    }
    // Stand-in policy step (no scanner yet): approve and move to permanent storage.
    if let Err(e) = state.store.promote(&row.id).await {
        // Already moved by an earlier delivery that crashed before committing.
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(e.into());
        }
    }
    transition_with_event(state, &row.id, Status::Scanning, Status::Approved, None, APPROVED).await?;
    Ok(())
}
