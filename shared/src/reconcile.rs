//! The reconciler: after a crash nothing partial stays visible. Uploads that died become
//! retryable again, partial files go, blobs without a live artifact are removed, and
//! multipart uploads nobody will complete are aborted.

use std::time::Duration;

use crate::app::AppState;
use crate::artifacts::Status;
use crate::db::now_ms;
use crate::storage::{Area, BlobStore, S3Store, StaleUpload};
use crate::with_pool;

/// Statuses whose artifacts own a blob. On S3 a `pending_upload` artifact may already have
/// its object (uploaded, not yet completed).
fn holds_bytes(store: &BlobStore) -> Vec<Status> {
    let mut statuses = vec![Status::Verifying, Status::Scanning, Status::Approved, Status::Quarantined];
    if matches!(store, BlobStore::S3(_)) {
        statuses.push(Status::PendingUpload);
    }
    statuses
}

/// A multipart upload untouched for this long is abandoned.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Runs once at start-up; returns how many blobs (and multipart uploads) were removed.
pub async fn run(state: &AppState) -> anyhow::Result<usize> {
    // Every upload (or S3 verification) in flight died with the previous process.
    with_pool!(&state.db, |pool| sqlx::query(
        "UPDATE artifacts SET status = $1, updated_at = $2 \
         WHERE status = $3 OR (status = $4 AND received_sha256 IS NULL)"
    )
    .bind(Status::PendingUpload.as_str())
    .bind(now_ms())
    .bind(Status::Uploading.as_str())
    .bind(Status::Verifying.as_str())
    .execute(pool)
    .await
    .map(|_| ()))?;
    let live = live_ids(state).await?;
    let mut removed = 0;
    for area in [Area::Quarantine, Area::Permanent] {
        for name in state.store.list(area).await? {
            let id = name.trim_end_matches(".partial");
            if name.ends_with(".partial") || !live.iter().any(|l| l == id) {
                state.store.remove(id).await;
                removed += 1;
            }
        }
    }
    if let BlobStore::S3(store) = &state.store {
        removed += abort_abandoned(state, store).await?;
    }
    if removed > 0 {
        tracing::info!(removed, "reconciler removed partial and orphaned blobs");
    }
    Ok(removed)
}

async fn live_ids(state: &AppState) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        with_pool!(&state.db, |pool| sqlx::query_as("SELECT id, status FROM artifacts").fetch_all(pool).await)?;
    let holds = holds_bytes(&state.store);
    Ok(rows
        .into_iter()
        .filter(|(_, status)| Status::parse(status).is_some_and(|s| holds.contains(&s)))
        .map(|(id, _)| id)
        .collect())
}

/// Aborts multipart uploads that no artifact waits for, or that were abandoned. Uploads are
/// found by listing the quarantine prefix (S3) and through the upload ids the database
/// holds: MinIO lists uploads of exact object names only (and expires stray ones itself,
/// `stale_uploads_expiry`, 24 h by default).
pub async fn abort_abandoned(state: &AppState, store: &S3Store) -> anyhow::Result<usize> {
    let cutoff = now_ms() - i64::try_from(ABANDONED_AFTER.as_millis()).unwrap_or(i64::MAX);
    let known: Vec<(String, String, String, i64)> = with_pool!(&state.db, |pool| sqlx::query_as(
        "SELECT id, upload_id, status, updated_at FROM artifacts WHERE upload_id IS NOT NULL"
    )
    .fetch_all(pool)
    .await)?;
    let wanted = |upload_id: &str| {
        known.iter().any(|(_, u, status, touched)| {
            u == upload_id && status == Status::PendingUpload.as_str() && *touched > cutoff
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
        with_pool!(&state.db, |pool| sqlx::query("UPDATE artifacts SET upload_id = NULL WHERE upload_id = $1")
            .bind(&upload.upload_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        aborted += 1;
    }
    Ok(aborted)
}

/// Aborts abandoned multipart uploads every hour (S3 store).
pub async fn run_periodically(state: AppState) {
    let BlobStore::S3(store) = &state.store else { return };
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = abort_abandoned(&state, store).await {
            tracing::warn!(error = %e, "reconciler: aborting abandoned multipart uploads failed");
        }
    }
}
