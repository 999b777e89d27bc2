//! The reconciler: after a crash nothing partial stays visible. Uploads that died become
//! retryable again, partial files go, and blobs without a live artifact are removed.

use crate::app::AppState;
use crate::artifacts::Status;
use crate::db::now_ms;
use crate::storage::Area;
use crate::with_pool;

/// Statuses whose artifacts own a blob.
const HOLDS_BYTES: [Status; 4] = [Status::Verifying, Status::Scanning, Status::Approved, Status::Quarantined];

/// Runs once; returns how many files were removed.
pub async fn run(state: &AppState) -> anyhow::Result<usize> {
    // Every upload in flight died with the previous process.
    with_pool!(&state.db, |pool| sqlx::query("UPDATE artifacts SET status = $1, updated_at = $2 WHERE status = $3")
        .bind(Status::PendingUpload.as_str())
        .bind(now_ms())
        .bind(Status::Uploading.as_str())
        .execute(pool)
        .await
        .map(|_| ()))?;
    let live: Vec<String> =
        with_pool!(&state.db, |pool| sqlx::query_scalar("SELECT id FROM artifacts WHERE status IN ($1, $2, $3, $4)")
            .bind(HOLDS_BYTES[0].as_str())
            .bind(HOLDS_BYTES[1].as_str())
            .bind(HOLDS_BYTES[2].as_str())
            .bind(HOLDS_BYTES[3].as_str())
            .fetch_all(pool)
            .await)?;
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
    if removed > 0 {
        tracing::info!(removed, "reconciler removed partial and orphaned blobs");
    }
    Ok(removed)
}
