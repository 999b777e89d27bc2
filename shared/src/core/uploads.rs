//! Finishing an upload: the one transition from "bytes arrived" to "handed to the scanner".
//! `POST /api/artifacts/{id}/complete` and the storage notification that `ingest` receives
//! both call [`finish`]; whichever comes first moves the artifact, exactly once, and the
//! other finds it moved and answers with its current state.

use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::artifacts::{self, ArtifactRow};
use super::db::now_ms;
use super::error::{ApiError, Code};
use super::lifecycle::Context;
use super::lifecycle::{self, Change, Effect, Status};
use super::outbox;
use super::storage::{Area, BlobStore, S3Store};

/// Moves an artifact whose bytes arrived to `scanning` (or `failed` when they are not the
/// declared ones). Returns the artifact as it is afterwards.
pub async fn finish(ctx: &impl Context, store: &BlobStore, lease: Duration, id: &str) -> Result<ArtifactRow, ApiError> {
    let db = ctx.db();
    let row = artifacts::get(db, id).await?;
    match (row.status(), store) {
        (Status::PendingUpload, BlobStore::S3(s3)) => verify_s3(ctx, store, s3, lease, &row).await?,
        (Status::PendingUpload | Status::Uploading, BlobStore::Local(_)) => {
            return Err(ApiError::new(Code::UploadMissing, "the bytes have not been uploaded yet"))
        }
        (Status::Verifying, BlobStore::Local(_)) => check_received(ctx, store, &row).await?,
        // Another caller (or replica) verifies it now, or it is past verification: the
        // transition happened or will, once. The caller gets the current state.
        _ => {}
    }
    artifacts::get(db, id).await
}

/// Compares what arrived with what was declared: on to scanning, or failed (wrong bytes).
async fn check_received(ctx: &impl Context, store: &BlobStore, row: &ArtifactRow) -> Result<(), ApiError> {
    let verified = row.received_sha256.as_deref() == Some(row.sha256.as_str()) && row.received_size == Some(row.size);
    if verified {
        if lifecycle::apply(ctx, Change::new(&row.id, Status::Verifying, Status::Scanning)).await? {
            ctx.metrics().upload_bytes.inc_by(row.size());
        }
        return Ok(());
    }
    let reason = "received bytes do not match the declared size and sha256";
    if lifecycle::apply(ctx, Change::new(&row.id, Status::Verifying, Status::Failed).reason(reason)).await? {
        store.remove(&row.id).await;
    }
    Err(ApiError::new(Code::DigestMismatch, reason))
}

/// S3: claims the verification (with a lease), assembles a multipart upload, checks the
/// object's size and SHA-256 (verified by the store for a single `PUT`, else re-hashed as a
/// stream), and moves the artifact on. If the bytes are not all there it waits again.
async fn verify_s3(
    ctx: &impl Context,
    store: &BlobStore,
    s3: &S3Store,
    lease: Duration,
    row: &ArtifactRow,
) -> Result<(), ApiError> {
    let until = now_ms() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let claim = Change::new(&row.id, Status::PendingUpload, Status::Verifying).effect(Effect::Lease { until });
    if !lifecycle::apply(ctx, claim).await? {
        return Ok(()); // someone else claimed it: the caller reads the current state
    }
    let db = ctx.db();
    let renew = || async {
        artifacts::renew_lease(db, &row.id, now_ms() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)).await
    };
    let received = outbox::while_renewing(lease, renew, receive_s3(s3, row)).await;
    let (sha256, size) = match received {
        Ok(received) => received,
        Err(e) => {
            let back = Change::new(&row.id, Status::Verifying, Status::PendingUpload);
            lifecycle::apply(ctx, back).await?;
            return Err(e);
        }
    };
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let received = Effect::Received { sha256: sha256.clone(), size };
    if sha256 == row.sha256 && size == row.size {
        let change =
            Change::new(&row.id, Status::Verifying, Status::Scanning).effect(received).effect(Effect::ClearMultipart);
        if lifecycle::apply(ctx, change).await? {
            ctx.metrics().upload_bytes.inc_by(row.size());
        }
        return Ok(());
    }
    let reason =
        format!("received bytes do not match the declared size and sha256 (got {size} bytes, sha256 {sha256})");
    let change = Change::new(&row.id, Status::Verifying, Status::Failed).reason(reason.clone()).effect(received);
    if lifecycle::apply(ctx, change).await? {
        store.remove(&row.id).await;
    }
    Err(ApiError::new(Code::DigestMismatch, reason))
}

/// The SHA-256 and size of what the store received for an artifact.
async fn receive_s3(store: &S3Store, row: &ArtifactRow) -> Result<(String, u64), ApiError> {
    let id = row.id.as_str();
    let size = row.size();
    if let Some(upload_id) = &row.upload_id {
        match store.list_parts(id, upload_id).await {
            Ok(mut parts) => {
                parts.sort_by_key(|p| p.number);
                let (part_size, part_count) = store.part_plan(size);
                let expected = |n: u64| if n == part_count { size - part_size * (part_count - 1) } else { part_size };
                let complete = parts.len() as u64 == part_count
                    && (1..=part_count).zip(&parts).all(|(n, p)| {
                        u64::try_from(p.number).ok() == Some(n) && u64::try_from(p.size).ok() == Some(expected(n))
                    });
                if !complete {
                    return Err(ApiError::new(
                        Code::UploadMissing,
                        format!("{} of {part_count} parts are uploaded; resume the upload", parts.len()),
                    ));
                }
                store.complete_multipart(id, upload_id, &parts).await.map_err(ApiError::store_unavailable)?;
            }
            // Assembled by an earlier verification that did not finish.
            Err(_) if matches!(store.head(Area::Quarantine, id).await, Ok(Some(_))) => {}
            Err(e) => return Err(ApiError::store_unavailable(e)),
        }
    }
    let info = store
        .head(Area::Quarantine, id)
        .await
        .map_err(ApiError::store_unavailable)?
        .ok_or_else(|| ApiError::new(Code::UploadMissing, "the bytes have not been uploaded yet"))?;
    let sha256 = match info.sha256 {
        _ if info.size != size => String::new(), // recorded; the artifact fails
        Some(sha256) => sha256,
        None => rehash(store, id, info.size).await.map_err(ApiError::store_unavailable)?,
    };
    Ok((sha256, info.size))
}

/// SHA-256 of an object, read as a stream.
async fn rehash(store: &S3Store, id: &str, size: u64) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    let mut body = store.read(Area::Quarantine, id, 0, size).await?;
    while let Some(chunk) = body.next().await {
        hasher.update(&chunk?);
    }
    Ok(hex::encode(hasher.finalize()))
}
