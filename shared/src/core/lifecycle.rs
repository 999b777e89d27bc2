//! The artifact lifecycle: one state machine. [`TRANSITIONS`] lists every allowed change,
//! and [`apply`] is the only code that writes an artifact's status: it checks the change
//! against the table, writes the status, its side effects and its CloudEvent (into the
//! outbox) in one transaction. A change whose `from` no longer holds writes nothing, so
//! applying the same change twice (a redelivered event, two replicas racing) is harmless.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{Audit, AuditEvent};
use super::db::{now_ms, Db};
use super::outbox::{self, EventBus};

/// What applying a change needs: the database, the bus that wakes event delivery, and the
/// audit log (every status change is audited, also those Arca makes on its own).
pub trait Context {
    fn db(&self) -> &Db;
    fn bus(&self) -> &EventBus;
    fn audit(&self) -> &Audit;
    fn metrics(&self) -> &crate::core::telemetry::Metrics;
}

impl<T: Context> Context for &T {
    fn db(&self) -> &Db {
        (**self).db()
    }
    fn bus(&self) -> &EventBus {
        (**self).bus()
    }
    fn audit(&self) -> &Audit {
        (**self).audit()
    }
    fn metrics(&self) -> &crate::core::telemetry::Metrics {
        (**self).metrics()
    }
}

/// Where an artifact is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created; waits for its bytes.
    PendingUpload,
    /// Bytes are arriving through Arca's upload URL (local store).
    Uploading,
    /// Size and SHA-256 are being checked.
    Verifying,
    /// Handed to the scanner.
    Scanning,
    /// Passed policy; Arca signs it, then it is approved.
    Signing,
    /// Signed and downloadable.
    Approved,
    /// Refused by policy; the reasons are stored. An admin may release it.
    Quarantined,
    /// Wrong bytes, a hostile archive, a scan that kept failing, or an artifact stuck
    /// waiting for an event (see the reconciler). Never downloadable.
    Failed,
    /// Crypto-shredded; the metadata stays for the audit trail.
    Deleted,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::PendingUpload,
        Status::Uploading,
        Status::Verifying,
        Status::Scanning,
        Status::Signing,
        Status::Approved,
        Status::Quarantined,
        Status::Failed,
        Status::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingUpload => "pending_upload",
            Status::Uploading => "uploading",
            Status::Verifying => "verifying",
            Status::Scanning => "scanning",
            Status::Signing => "signing",
            Status::Approved => "approved",
            Status::Quarantined => "quarantined",
            Status::Failed => "failed",
            Status::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The CloudEvent type announcing that an artifact entered this status.
    pub fn event_type(self) -> &'static str {
        match self {
            Status::PendingUpload => events::PENDING_UPLOAD,
            Status::Uploading => events::UPLOADING,
            Status::Verifying => events::VERIFYING,
            Status::Scanning => events::UPLOADED,
            Status::Signing => events::SCANNED,
            Status::Approved => events::APPROVED,
            Status::Quarantined => events::QUARANTINED,
            Status::Failed => events::FAILED,
            Status::Deleted => events::DELETED,
        }
    }

    /// A final status: nothing happens to the artifact unless someone acts.
    pub fn is_settled(self) -> bool {
        matches!(self, Status::Approved | Status::Quarantined | Status::Failed | Status::Deleted)
    }
}

/// CloudEvent types (`dev.arca.artifact.<what happened>`).
pub mod events {
    pub const PENDING_UPLOAD: &str = "dev.arca.artifact.pending_upload";
    pub const UPLOADING: &str = "dev.arca.artifact.uploading";
    pub const VERIFYING: &str = "dev.arca.artifact.verifying";
    /// Verified bytes handed to the scanner (the `scan` function's trigger).
    pub const UPLOADED: &str = "dev.arca.artifact.uploaded";
    /// Passed policy, to be signed (the `sign` function's trigger).
    pub const SCANNED: &str = "dev.arca.artifact.scanned";
    pub const APPROVED: &str = "dev.arca.artifact.approved";
    pub const QUARANTINED: &str = "dev.arca.artifact.quarantined";
    pub const FAILED: &str = "dev.arca.artifact.failed";
    pub const DELETED: &str = "dev.arca.artifact.deleted";
    /// Asks for a new scan of an approved or quarantined artifact (not a status change).
    pub const RESCAN: &str = "dev.arca.artifact.rescan";
}

use Status::*;

/// Every allowed change of status. A change to the same status records a scan (a rescan
/// that confirmed the decision) and emits no event.
pub const TRANSITIONS: &[(Status, Status)] = &[
    (PendingUpload, Uploading),
    (PendingUpload, Verifying),
    (Uploading, Verifying),
    (Uploading, PendingUpload),
    (Uploading, Failed),
    (Verifying, Scanning),
    (Verifying, PendingUpload),
    (Verifying, Failed),
    (Scanning, Signing),
    (Scanning, Quarantined),
    (Scanning, Failed),
    (Signing, Approved),
    (Signing, Failed),
    (Approved, Quarantined),
    (Approved, Approved),
    (Quarantined, Signing),
    (Quarantined, Quarantined),
    (Failed, Scanning),
    (PendingUpload, Deleted),
    (Uploading, Deleted),
    (Verifying, Deleted),
    (Scanning, Deleted),
    (Signing, Deleted),
    (Approved, Deleted),
    (Quarantined, Deleted),
    (Failed, Deleted),
];

pub fn allowed(from: Status, to: Status) -> bool {
    TRANSITIONS.contains(&(from, to))
}

/// A scan result, recorded with the decision it caused (once per event id).
#[derive(Debug, Clone)]
pub struct ScanRecord {
    pub id: String,
    pub event_id: String,
    /// `succeeded` or `failed`.
    pub status: &'static str,
    pub kind: Option<String>,
    pub trivy_version: Option<String>,
    pub db_updated_at: Option<String>,
    pub findings: String,
    pub summary: String,
    pub error: Option<String>,
    pub started_at: i64,
}

/// What else a change writes, in the same transaction.
#[derive(Debug, Clone)]
pub enum Effect {
    /// The bytes that arrived: their SHA-256 and size.
    Received { sha256: String, size: i64 },
    /// The local blob's data key, wrapped by the master key.
    WrappedKey(String),
    /// The upload URL in force stops working (it was used, or the upload was reset).
    ClearUploadUrl,
    /// The multipart upload is over (assembled or abandoned).
    ClearMultipart,
    /// Crypto-shred: the data key and upload state go, the tombstone keeps the time.
    Shred,
    /// A manual release covers the findings of this scan only.
    Released { scan_id: Option<String> },
    /// Who works on the artifact holds it until then (uploads, verification).
    Lease { until: i64 },
    /// A failure the owner or an admin may retry (the scanner, not the artifact, failed).
    Retryable(bool),
}

/// One change of an artifact.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub artifact: &'a str,
    pub from: Status,
    pub to: Status,
    /// Why (shown as `status_reason`); `None` clears it.
    pub reason: Option<String>,
    /// JSON of the policy decision's reasons, when the change decided them.
    pub policy_reasons: Option<String>,
    /// Extra members of the event's data.
    pub data: serde_json::Value,
    pub scan: Option<ScanRecord>,
    pub effects: Vec<Effect>,
}

impl<'a> Change<'a> {
    pub fn new(artifact: &'a str, from: Status, to: Status) -> Self {
        Self {
            artifact,
            from,
            to,
            reason: None,
            policy_reasons: None,
            data: serde_json::json!({}),
            scan: None,
            effects: Vec::new(),
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn effect(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }

    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

/// Why a change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("illegal lifecycle transition {} -> {}", .0.as_str(), .1.as_str())]
    Illegal(Status, Status),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Applies a change atomically. `Ok(false)` when the artifact was no longer in `from`, or
/// the scan of this event was already recorded: nothing is written then.
pub async fn apply(ctx: &impl Context, change: Change<'_>) -> Result<bool, ApplyError> {
    let (db, bus) = (ctx.db(), ctx.bus());
    if !allowed(change.from, change.to) {
        return Err(ApplyError::Illegal(change.from, change.to));
    }
    let now = now_ms();
    let event = (change.from != change.to).then(|| {
        let mut data = change.data.clone();
        if let Some(map) = data.as_object_mut() {
            map.insert("artifact_id".into(), change.artifact.into());
            map.insert("status".into(), change.to.as_str().into());
            map.insert("from".into(), change.from.as_str().into());
            map.entry("reason").or_insert(change.reason.clone().into());
        }
        outbox::NewEvent::new(change.to.event_type(), change.artifact, data)
    });
    let applied = crate::with_pool!(db, |pool| async {
        let mut tx = pool.begin().await?;
        if let Some(scan) = &change.scan {
            let inserted = sqlx::query(
                "INSERT INTO scans (id, artifact_id, event_id, status, kind, trivy_version, db_updated_at, findings, \
                 summary, error, started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&scan.id)
            .bind(change.artifact)
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
        let promoted = (change.to == Approved).then_some(now);
        let moved = sqlx::query(
            "UPDATE artifacts SET status = $1, status_reason = $2, policy_reasons = COALESCE($3, policy_reasons), \
             updated_at = $4, promoted_at = COALESCE(promoted_at, $7), lease_until = NULL, retryable = 0 \
             WHERE id = $5 AND status = $6",
        )
        .bind(change.to.as_str())
        .bind(&change.reason)
        .bind(&change.policy_reasons)
        .bind(now)
        .bind(change.artifact)
        .bind(change.from.as_str())
        .bind(promoted)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        for effect in &change.effects {
            let (sql, text, number): (&str, Option<&str>, Option<i64>) = match effect {
                Effect::Received { sha256, size } => (
                    "UPDATE artifacts SET received_sha256 = $2, received_size = $3 WHERE id = $1",
                    Some(sha256.as_str()),
                    Some(*size),
                ),
                Effect::WrappedKey(key) => {
                    ("UPDATE artifacts SET wrapped_key = $2 WHERE id = $1 AND $3 IS NULL", Some(key.as_str()), None)
                }
                Effect::ClearUploadUrl => {
                    ("UPDATE artifacts SET upload_nonce = NULL WHERE id = $1 AND $2 IS NULL AND $3 IS NULL", None, None)
                }
                Effect::ClearMultipart => {
                    ("UPDATE artifacts SET upload_id = NULL WHERE id = $1 AND $2 IS NULL AND $3 IS NULL", None, None)
                }
                Effect::Shred => (
                    "UPDATE artifacts SET wrapped_key = NULL, upload_nonce = NULL, upload_id = NULL, deleted_at = $3 \
                     WHERE id = $1 AND $2 IS NULL",
                    None,
                    Some(now),
                ),
                Effect::Released { scan_id } => (
                    "UPDATE artifacts SET released_scan_id = $2 WHERE id = $1 AND $3 IS NULL",
                    scan_id.as_deref(),
                    None,
                ),
                Effect::Lease { until } => {
                    ("UPDATE artifacts SET lease_until = $3 WHERE id = $1 AND $2 IS NULL", None, Some(*until))
                }
                Effect::Retryable(yes) => {
                    ("UPDATE artifacts SET retryable = $3 WHERE id = $1 AND $2 IS NULL", None, Some(i64::from(*yes)))
                }
            };
            sqlx::query(sql).bind(change.artifact).bind(text).bind(number).execute(&mut *tx).await?;
        }
        if let Some(event) = &event {
            outbox::insert_query(event, now).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<bool, sqlx::Error>(true)
    }
    .await)?;
    if applied && event.is_some() {
        bus.notify(db).await;
    }
    if applied {
        ctx.audit()
            .record(AuditEvent {
                actor: "arca".into(),
                action: "artifacts.status".into(),
                target: change.artifact.to_owned(),
                outcome: "success".into(),
                details: serde_json::json!({
                    "from": change.from.as_str(), "to": change.to.as_str(), "reason": change.reason,
                    "event": event.as_ref().map(|e| e.id.clone()),
                }),
                ..AuditEvent::default()
            })
            .await;
    }
    Ok(applied)
}

/// Asks for an event about an artifact without changing it (a rescan request).
pub async fn request(
    ctx: &impl Context,
    artifact: &str,
    event_type: &'static str,
    data: serde_json::Value,
) -> Result<String, sqlx::Error> {
    let (db, bus) = (ctx.db(), ctx.bus());
    let mut data = data;
    if let Some(map) = data.as_object_mut() {
        map.insert("artifact_id".into(), artifact.into());
    }
    let event = outbox::NewEvent::new(event_type, artifact, data);
    let id = event.id.clone();
    crate::with_pool!(db, |pool| outbox::insert_query(&event, now_ms()).execute(pool).await.map(|_| ()))?;
    bus.notify(db).await;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_can_be_deleted_once_and_settled_ones_are_final() {
        for status in Status::ALL {
            assert_eq!(allowed(status, Deleted), status != Deleted, "{status:?}");
        }
        assert!(!TRANSITIONS.iter().any(|(from, _)| *from == Deleted));
        // Approval only ever follows signing: no window with an unsigned approved artifact.
        for (from, to) in TRANSITIONS {
            if *to == Approved && *from != Approved {
                assert_eq!(*from, Signing);
            }
        }
    }
}
