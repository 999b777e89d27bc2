//! The `ingest` function: events in and out of the object store.
//! - `POST /storage-events`: MinIO's bucket notifications (webhook target, bearer token).
//!   An object created under `quarantine/` finishes its artifact's upload, exactly as
//!   `POST …/complete` does; whichever comes first wins.
//! - `deleted` events: the blob of a deleted artifact is removed.
//! - `POST /dead-letters`: the Broker's dead-letter sink; the event is recorded as dead.
//! - Background: the outbox relay to the Broker (see `outbox::run_relay`) and the
//!   reconciler (uploads whose holder died, artifacts stuck waiting for an event that was
//!   lost or dead-lettered, orphaned blobs, abandoned multipart uploads).
//! - `setup-storage`: bucket, default encryption, CORS and the notification subscription.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Extension, FromRef, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use serde::Deserialize;

use crate::core::artifacts;
use crate::core::audit::AuditEvent;
use crate::core::config::Config;
use crate::core::db::now_ms;
use crate::core::error::{ApiError, Code};
use crate::core::lifecycle::{self, events, Change, Effect, Status};
use crate::core::outbox::{self, Handlers};
use crate::core::storage::{Area, BlobStore, CorsSetting, S3Store, StaleUpload};
use crate::core::uploads;
use crate::web::access::{constant_time_eq, Actor, ActorSlot};
use crate::web::receiver;
use crate::web::routes::FunctionRouter;
use crate::web::state::{Blobs, Core, IngestToken, Receiver};
use crate::with_pool;

/// Largest storage notification accepted (MinIO sends one record per event).
const MAX_NOTIFICATION_BYTES: usize = 256 * 1024;

pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Blobs: FromRef<S>,
    IngestToken: FromRef<S>,
    Receiver: FromRef<S>,
{
    let limit = tower_http::limit::RequestBodyLimitLayer::new(MAX_NOTIFICATION_BYTES);
    FunctionRouter::new("ingest").internal(Method::POST, "/storage-events", post(storage_events).layer(limit)).internal(
        Method::POST,
        "/dead-letters",
        receiver::dead_letter_route(),
    )
}

/// What the `ingest` function does with events: remove the blob of a deleted artifact,
/// only once the database says it is deleted (an event alone never destroys bytes).
pub fn handlers(core: Core, blobs: Blobs) -> Handlers {
    Handlers::default().on(&[events::DELETED], move |delivery| {
        let (core, blobs) = (core.clone(), blobs.clone());
        async move {
            let status = artifacts::find(&core.db, &delivery.artifact_id).await?.map(|row| row.status());
            if status != Some(Status::Deleted) {
                tracing::error!(artifact = %delivery.artifact_id, event = %delivery.id, status = ?status,
                    "a deleted event for an artifact the database does not hold as deleted: its blob stays");
                return Ok(());
            }
            blobs.remove(&delivery.artifact_id).await;
            Ok(())
        }
    })
}

#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
}

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: String,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Object {
    /// Query-escaped (`quarantine%2F<id>`).
    key: String,
    #[serde(default)]
    size: Option<u64>,
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidEvent, detail)
}

/// MinIO's bucket notification: an object was created. Checked (sender token, bucket,
/// prefix, artifact, size) before anything changes; then the upload is finished.
async fn storage_events(
    State(core): State<Core>,
    State(blobs): State<Blobs>,
    State(token): State<IngestToken>,
    Extension(slot): Extension<ActorSlot>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if presented.is_empty() || !constant_time_eq(presented.as_bytes(), token.0.as_bytes()) {
        tracing::warn!("storage notification refused: missing or wrong token");
        return Err(ApiError::new(Code::InvalidEventSender, "storage notifications need the ingest token"));
    }
    let _ = slot.0.set(Actor { name: "object-store".to_owned(), roles: String::new() });
    let BlobStore::S3(store) = &*blobs.0 else {
        return Err(bad("storage notifications need the S3 store"));
    };
    let notification: Notification =
        serde_json::from_slice(&body).map_err(|e| bad(format!("not a bucket notification: {e}")))?;
    if notification.records.is_empty() {
        return Err(bad("the notification has no records"));
    }
    for record in notification.records {
        if !record.event_name.starts_with("s3:ObjectCreated:") {
            continue; // not ours to act on
        }
        if record.s3.bucket.name != store.bucket() {
            return Err(bad(format!("bucket {} is not Arca's", record.s3.bucket.name)));
        }
        let key = percent_decode(&record.s3.object.key).ok_or_else(|| bad("malformed object key"))?;
        let id = key.strip_prefix("quarantine/").ok_or_else(|| bad(format!("{key} is outside the uploads prefix")))?;
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(bad(format!("{key} does not name an artifact")));
        }
        let row = artifacts::find(&core.db, id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
        if let Some(size) = record.s3.object.size {
            if size != row.size() && row.upload_id.is_none() {
                return Err(ApiError::new(
                    Code::SizeMismatch,
                    format!("the notification's size {size} differs from the declared size {}", row.size),
                ));
            }
        }
        if row.status() == Status::PendingUpload && row.upload_id.is_none() {
            // Nothing moves for an object the store does not have.
            if store.head(Area::Quarantine, id).await.map_err(ApiError::store_unavailable)?.is_none() {
                return Err(ApiError::not_found("the store holds no such object"));
            }
        }
        match uploads::finish(&core, &blobs, core.config.events.lease, id).await {
            Ok(row) => tracing::info!(artifact = %id, status = row.status().as_str(), "storage event: upload finished"),
            // Wrong bytes fail the artifact (done); the store's answer is final for this object.
            Err(e) if e.code == Code::DigestMismatch => tracing::warn!(artifact = %id, "storage event: wrong bytes"),
            Err(e) => return Err(e),
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `%XX` decoding of an object key as MinIO sends it.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

// ---- The reconciler ----

/// A multipart upload untouched for this long is abandoned.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Uploads and verifications whose holder died (their lease expired) wait for their bytes
/// again: the used URL stays used, the partial file goes. Cheap (one query); runs often as
/// a leased job, and never touches work whose lease is alive.
pub async fn reset_expired_uploads(core: &Core, blobs: &Blobs) -> anyhow::Result<usize> {
    let now = now_ms();
    let expired: Vec<(String, String)> = with_pool!(&core.db, |pool| sqlx::query_as(
        "SELECT id, status FROM artifacts WHERE status IN ($1, $2) AND (lease_until IS NULL OR lease_until < $3)"
    )
    .bind(Status::Uploading.as_str())
    .bind(Status::Verifying.as_str())
    .bind(now)
    .fetch_all(pool)
    .await)?;
    let mut reset = 0;
    for (id, status) in expired {
        let from = Status::parse(&status).unwrap_or(Status::Uploading);
        if from == Status::Verifying && matches!(&*blobs.0, BlobStore::Local(_)) {
            continue; // local bytes arrived and wait for `complete`
        }
        let change = Change::new(&id, from, Status::PendingUpload)
            .reason("the upload was interrupted; ask for a new upload URL")
            .effect(Effect::ClearUploadUrl);
        if lifecycle::apply(core, change).await? {
            blobs.remove_partial(&id).await;
            tracing::info!(artifact = %id, from = from.as_str(), "interrupted upload waits for its bytes again");
            reset += 1;
        }
    }
    Ok(reset)
}

/// States that wait for an event, and the event that moves each on.
const DRIVEN: [(Status, &str); 2] = [(Status::Scanning, events::UPLOADED), (Status::Signing, events::SCANNED)];

/// How often stuck artifacts are looked for: a third of the deadline, between 1 s and 60 s.
pub fn redrive_interval(core: &Core) -> Duration {
    (core.config.events.redrive_after / 3).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Artifacts stuck in `scanning` or `signing`: their newest event is older than
/// `ARCA_REDRIVE_AFTER_SECS` and was handed on (delivered to the Broker or its handler, or
/// dead-lettered), and no one works on any of their events (no live claim). The Broker may
/// have lost it (an in-memory channel restarted) or given up. Each gets its event again
/// (a new id, audited), at most `ARCA_REDRIVE_ATTEMPTS` times per stay in the status; then
/// it fails closed, with the reason. Returns how many were re-driven or failed.
pub async fn redrive(core: &Core) -> anyhow::Result<usize> {
    let now = now_ms();
    let cutoff = now - i64::try_from(core.config.events.redrive_after.as_millis()).unwrap_or(i64::MAX);
    let attempts = i64::from(core.config.events.redrive_attempts);
    let mut acted = 0;
    for (status, event_type) in DRIVEN {
        // (id, events of this type sent since the artifact entered the status)
        let stuck: Vec<(String, i64)> = with_pool!(&core.db, |pool| sqlx::query_as(
            "SELECT a.id, (SELECT COUNT(*) FROM outbox o WHERE o.artifact_id = a.id AND o.event_type = $2 \
                           AND o.created_at >= a.updated_at) \
             FROM artifacts a WHERE a.status = $1 AND a.updated_at < $3 \
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.artifact_id = a.id AND o.event_type = $2 \
                             AND (o.created_at >= $3 OR (o.delivered_at IS NULL AND o.dead_at IS NULL))) \
             AND NOT EXISTS (SELECT 1 FROM outbox o JOIN event_claims c ON c.event_id = o.id \
                             WHERE o.artifact_id = a.id AND c.done_at IS NULL AND c.lease_until >= $4) \
             ORDER BY a.updated_at LIMIT 100"
        )
        .bind(status.as_str())
        .bind(event_type)
        .bind(cutoff)
        .bind(now)
        .fetch_all(pool)
        .await)?;
        for (id, sent) in stuck {
            let redriven = (sent - 1).max(0);
            if redriven >= attempts {
                let reason = format!(
                    "stuck in {} without progress: its event was sent again {redriven} times and never handled",
                    status.as_str()
                );
                if lifecycle::apply(core, Change::new(&id, status, Status::Failed).reason(reason)).await? {
                    core.metrics.redrives.with_label_values(&["failed"]).inc();
                    tracing::error!(artifact = %id, status = status.as_str(), redriven, "stuck artifact failed");
                    acted += 1;
                }
                continue;
            }
            let attempt = redriven + 1;
            let data = serde_json::json!({ "status": status.as_str(), "redrive": attempt });
            let event = lifecycle::request(core, &id, event_type, data).await?;
            core.metrics.redrives.with_label_values(&["redriven"]).inc();
            tracing::warn!(artifact = %id, status = status.as_str(), %event, attempt, "stuck artifact: event sent again");
            core.audit
                .record(AuditEvent {
                    actor: "arca".into(),
                    action: "artifacts.redrive".into(),
                    target: id.clone(),
                    outcome: "success".into(),
                    details: serde_json::json!({
                        "status": status.as_str(), "event": event, "type": event_type, "attempt": attempt,
                        "of": attempts,
                    }),
                    ..AuditEvent::default()
                })
                .await;
            acted += 1;
        }
    }
    Ok(acted)
}

/// Nothing partial or orphaned stays: blobs without an artifact that holds them are
/// removed, and multipart uploads nobody will complete are aborted. Lists the store, so it
/// runs rarely (a leased job), never on a request's path or at a cold start.
pub async fn sweep(core: &Core, blobs: &Blobs) -> anyhow::Result<usize> {
    let live = live_ids(core, blobs).await?;
    let mut removed = 0;
    for area in [Area::Quarantine, Area::Permanent] {
        for name in blobs.list(area).await? {
            let (id, partial) = match name.strip_suffix(".partial") {
                Some(id) => (id, true),
                None => (name.as_str(), false),
            };
            let keep = live.iter().any(|(l, status)| {
                l == id && if partial { *status == Status::Uploading } else { *status != Status::Uploading }
            });
            if !keep {
                if partial {
                    blobs.remove_partial(id).await;
                } else {
                    blobs.remove(id).await;
                }
                removed += 1;
            }
        }
    }
    if let BlobStore::S3(store) = &*blobs.0 {
        removed += abort_abandoned(core, store).await?;
    }
    if removed > 0 {
        tracing::info!(removed, "reconciler removed partial and orphaned blobs");
    }
    Ok(removed)
}

/// Artifacts that own a blob (and their status). On S3 a `pending_upload` artifact may
/// already have its object (uploaded, not yet completed); a failed artifact keeps its
/// bytes while it may be retried.
async fn live_ids(core: &Core, blobs: &Blobs) -> Result<Vec<(String, Status)>, sqlx::Error> {
    let rows: Vec<(String, String, i64, Option<i64>)> = with_pool!(&core.db, |pool| sqlx::query_as(
        "SELECT id, status, retryable, lease_until FROM artifacts WHERE status <> 'deleted'"
    )
    .fetch_all(pool)
    .await)?;
    let s3 = matches!(&*blobs.0, BlobStore::S3(_));
    let now = now_ms();
    Ok(rows
        .into_iter()
        .filter_map(|(id, status, retryable, lease)| {
            let status = Status::parse(&status)?;
            let holds = match status {
                Status::Verifying | Status::Scanning | Status::Signing | Status::Approved | Status::Quarantined => true,
                Status::Uploading => lease.is_some_and(|l| l >= now),
                Status::PendingUpload => s3,
                Status::Failed => retryable != 0,
                Status::Deleted => false,
            };
            holds.then_some((id, status))
        })
        .collect())
}

/// Aborts multipart uploads that no artifact waits for, or that were abandoned. Uploads are
/// found by listing the quarantine prefix (S3) and through the upload ids the database
/// holds: MinIO lists uploads of exact object names only (and expires stray ones itself,
/// `stale_uploads_expiry`, 24 h by default).
async fn abort_abandoned(core: &Core, store: &S3Store) -> anyhow::Result<usize> {
    let cutoff = now_ms() - i64::try_from(ABANDONED_AFTER.as_millis()).unwrap_or(i64::MAX);
    let known: Vec<(String, String, String, i64)> = with_pool!(&core.db, |pool| sqlx::query_as(
        "SELECT id, upload_id, status, updated_at FROM artifacts WHERE upload_id IS NOT NULL"
    )
    .fetch_all(pool)
    .await)?;
    let wanted = |upload_id: &str| {
        known.iter().any(|(_, u, status, touched)| {
            u == upload_id
                && (status == Status::PendingUpload.as_str() || status == Status::Verifying.as_str())
                && *touched > cutoff
        })
    };
    let mut uploads = store.multipart_uploads(None).await?;
    for (id, upload_id, _, _) in &known {
        if !uploads.iter().any(|u| &u.upload_id == upload_id) {
            uploads.push(StaleUpload { key: format!("quarantine/{id}"), upload_id: upload_id.clone() });
        }
    }
    let mut aborted = 0;
    for upload in uploads.into_iter().filter(|u| !wanted(&u.upload_id)) {
        store.abort_multipart(&upload.key, &upload.upload_id).await?;
        with_pool!(&core.db, |pool| sqlx::query("UPDATE artifacts SET upload_id = NULL WHERE upload_id = $1")
            .bind(&upload.upload_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        aborted += 1;
    }
    Ok(aborted)
}

/// `arca-fn-ingest setup-storage`: the bucket (private, default encryption), CORS for the
/// SPA's origins, and the subscription of the notification target. Idempotent.
pub async fn setup_storage(config: &Config) -> anyhow::Result<()> {
    let s3 = config.s3.as_ref().ok_or_else(|| anyhow::anyhow!("ARCA_S3_ENDPOINT: required for setup-storage"))?;
    let store = S3Store::connect(s3)?;
    store.ensure_bucket().await?;
    let cors = match store.configure_cors(&config.cors_origins).await? {
        CorsSetting::None => "no browser uploads (ARCA_CORS_ORIGINS is empty)".to_owned(),
        CorsSetting::Bucket => format!("CORS for {:?} on the bucket", config.cors_origins),
        CorsSetting::Server => format!(
            "CORS for {:?} must be the store's own setting (MinIO: MINIO_API_CORS_ALLOW_ORIGIN)",
            config.cors_origins
        ),
    };
    store.subscribe(&s3.notify_arn).await?;
    println!("bucket {} ready: default encryption, {cors}, notifications to {}", s3.bucket, s3.notify_arn);
    Ok(())
}

/// Keeps the `arca_outbox_depth` gauge current (owned with the relay).
pub async fn measure_outbox(core: &Core) -> anyhow::Result<()> {
    core.metrics.outbox_depth.set(outbox::depth(&core.db).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unescaped() {
        assert_eq!(percent_decode("quarantine%2Fabc").as_deref(), Some("quarantine/abc"));
        assert_eq!(percent_decode("a+b%20c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("bad%2"), None);
    }
}
