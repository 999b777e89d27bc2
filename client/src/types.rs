//! The API's request and response bodies, as the wire carries them. They mirror the
//! server's types (in `arca-shared`, which holds most of them as serialize-only) so that
//! this crate stays light; `tests/contract.rs` checks every one of them against the
//! server's OpenAPI document, so a server change that breaks them fails `cargo test`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where an artifact is in its life (`core::lifecycle::Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    PendingUpload,
    Uploading,
    Verifying,
    Scanning,
    Signing,
    Approved,
    Quarantined,
    Failed,
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

    /// The wire name (`pending_upload`, …).
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

    /// Statuses an artifact does not leave on its own.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Approved | Status::Quarantined | Status::Failed | Status::Deleted)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| format!("unknown status '{s}'"))
    }
}

// ---- auth ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// Asks for the refresh token in the body (browsers get it only as a cookie).
    #[serde(default)]
    pub refresh_token_in_body: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    /// Present when the login asked for it, or the refresh sent it in the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RefreshRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Me {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateToken {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_in_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The token itself: shown only in this response.
    pub token: String,
}

// ---- users ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_api_tokens: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleInfo {
    pub role: String,
    pub permissions: Vec<String>,
}

// ---- upload ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewArtifact {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Where and how to send the bytes: one `PUT` to `url` with `headers`, or (`MULTIPART`)
/// parts whose presigned URLs come from `POST …/parts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadTarget {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<MultipartPlan>,
}

impl UploadTarget {
    pub fn is_multipart(&self) -> bool {
        self.method == "MULTIPART"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultipartPlan {
    pub part_size: u64,
    pub part_count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub upload: UploadTarget,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    pub id: String,
    pub status: Status,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadedPart {
    pub number: i32,
    pub size: i64,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartsStatus {
    pub part_size: u64,
    pub part_count: u64,
    pub uploaded: Vec<UploadedPart>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRequest {
    pub number: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartsRequest {
    pub parts: Vec<PartRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartTarget {
    pub number: u64,
    pub size: u64,
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartTargets {
    pub parts: Vec<PartTarget>,
}

// ---- artifacts ----

/// Counts of findings by severity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub unknown: u32,
    pub secrets: u32,
    pub licenses: u32,
}

/// A reason of a policy decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub rule: String,
    pub finding: String,
    pub package: Option<String>,
    pub severity: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanSummary {
    pub id: String,
    pub status: String,
    pub kind: Option<String>,
    pub trivy_version: Option<String>,
    pub db_updated_at: Option<String>,
    pub summary: Summary,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: i64,
}

/// An artifact as the API shows it (scan details only to callers who may read them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    pub id: String,
    pub name: String,
    pub version: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    pub labels: BTreeMap<String, String>,
    pub description: String,
    pub status: Status,
    pub status_reason: Option<String>,
    pub policy_reasons: Vec<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Summary>,
    pub retryable: bool,
    pub owner_id: String,
    pub owner: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactPage {
    pub items: Vec<Artifact>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Filters of `GET /api/artifacts` (each a query parameter).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Search {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `key=value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_page: Option<i64>,
}

/// One step of an artifact's life.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LifecycleEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub time: i64,
    pub status: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Denial {
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub client_ip: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub by_status: BTreeMap<String, i64>,
    pub findings: Summary,
    pub recent_uploads: Vec<Artifact>,
    pub recent_denials: Option<Vec<Denial>>,
    pub dead_letters: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameOwners {
    pub name: String,
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub username: String,
}

// ---- download ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownloadLink {
    pub url: String,
    pub expires_at: i64,
}

// ---- scan ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    pub id: String,
    pub package: String,
    pub installed: String,
    pub fixed: String,
    pub severity: String,
    pub title: String,
    pub cvss_score: Option<f64>,
    pub url: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    pub rule: String,
    pub category: String,
    pub severity: String,
    pub title: String,
    pub file: String,
    pub line: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct License {
    pub name: String,
    pub package: String,
    pub file: String,
    pub severity: String,
    pub category: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkFinding {
    pub path: String,
    pub target: String,
    pub problem: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchiveReport {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub unsafe_links: Vec<LinkFinding>,
    #[serde(default)]
    pub unsafe_link_count: u64,
    #[serde(default)]
    pub unsupported_format: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    pub vulnerabilities: Vec<Vulnerability>,
    pub secrets: Vec<Secret>,
    pub licenses: Vec<License>,
    #[serde(default)]
    pub archive: ArchiveReport,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanResults {
    pub artifact_id: String,
    pub status: Status,
    pub policy_reasons: Vec<Reason>,
    pub scan: Option<ScanSummary>,
    pub findings: Findings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub justification: String,
}

/// The policy in force (the server sends every member; all have defaults, as on the server).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    pub max_severity: String,
    pub block_secrets: bool,
    pub license_deny: Vec<String>,
    pub fail_closed: bool,
    pub require_publisher_signature: bool,
    pub block_unsafe_links: bool,
    pub block_unsupported_archives: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScannerStatus {
    pub trivy_version: String,
    pub db_updated_at: Option<String>,
    pub db_age_hours: Option<f64>,
    pub db_stale: bool,
    pub last_update_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exception {
    pub id: String,
    pub artifact_id: Option<String>,
    pub vulnerability_id: Option<String>,
    pub package: Option<String>,
    pub justification: String,
    pub expires_at: i64,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewException {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vulnerability_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    pub justification: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

// ---- sign ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignerInfo {
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    pub serial: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactSignature {
    pub algorithm: String,
    /// Base64 of the DER ECDSA signature.
    pub signature: String,
    /// PEM: the signing certificate, then its issuers.
    pub certificate_chain: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub signed_at: i64,
    pub signer: Option<SignerInfo>,
    pub verified: bool,
    pub verification_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resigned {
    pub resigned: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewPublisherSignature {
    pub signature: String,
    pub certificate_chain: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublisherSignature {
    pub id: String,
    pub result: String,
    pub reason: String,
    pub subject: Option<String>,
    pub submitted_by: String,
    pub verified_at: i64,
}

// ---- audit ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub ts: i64,
    pub actor: String,
    pub roles: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub status: i64,
    pub client_ip: String,
    pub user_agent: String,
    pub request_id: String,
    /// JSON text.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// Filters of `GET /api/audit-logs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub head_hash: String,
    pub signed_at: i64,
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoints {
    pub public_key: String,
    pub checkpoints: Vec<Checkpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokenEntry {
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub valid: bool,
    pub entries: i64,
    pub head: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_invalid: Option<BrokenEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

// ---- system ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthChecks {
    pub database: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_age_hours: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub checks: HealthChecks,
}
