//! The `sign` function: the only holder of Arca's signing key. On `scanned` (an artifact
//! passed policy) it moves the blob to the permanent area, signs the digest and approves
//! the artifact — in that order, so no approved artifact lacks a signature. It also serves
//! Arca's signatures, publishers' signatures (checked against the trust bundle), and
//! re-signing after a key rotation.

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::artifacts;
use crate::core::db::now_ms;
use crate::core::decisions;
use crate::core::error::{ApiError, ApiJson, Code};
use crate::core::lifecycle::{self, events, Change, Status};
use crate::core::outbox::{Delivery, Handlers};
use crate::core::rbac::{Permission, Principal};
use crate::core::signing::{self, SignerInfo};
use crate::core::trust;
use crate::web::access::Access;
use crate::web::http::RequestContext;
use crate::web::routes::FunctionRouter;
use crate::web::state::{Blobs, Core, PublisherTrust, Signing, Trusted};
use crate::with_pool;

pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Signing: FromRef<S>,
    Trusted: FromRef<S>,
    PublisherTrust: FromRef<S>,
{
    FunctionRouter::new("sign")
        .route(Access::Permission(Permission::ArtifactsRead), routes!(get_signature))
        .route(Access::Permission(Permission::ArtifactsManage), routes!(resign))
        .route(Access::Permission(Permission::ArtifactsWrite), routes!(attach))
        .route(Access::Permission(Permission::ArtifactsRead), routes!(list))
}

/// What the `sign` function does with events: sign and approve on `scanned`.
pub fn handlers(core: Core, signing: Signing, blobs: Blobs) -> Handlers {
    Handlers::default().on(&[events::SCANNED], move |delivery| {
        let (core, signing, blobs) = (core.clone(), signing.clone(), blobs.clone());
        async move { on_scanned(&core, &signing, &blobs, &delivery).await }
    })
}

/// Promotes, signs, approves. Idempotent: each step may be repeated after a crash, and
/// only an artifact still in `signing` is approved.
pub async fn on_scanned(core: &Core, signing: &Signing, blobs: &Blobs, delivery: &Delivery) -> anyhow::Result<()> {
    let Some(row) = artifacts::find(&core.db, &delivery.artifact_id).await? else { return Ok(()) };
    if row.status() != Status::Signing {
        return Ok(()); // redelivered, or deleted meanwhile
    }
    blobs.promote(&row.id).await?;
    signing::sign_artifact(&core.db, &signing.0, &row.id, &row.sha256).await?;
    let change = Change::new(&row.id, Status::Signing, Status::Approved)
        .data(serde_json::json!({ "sha256": row.sha256, "signed": true }));
    let mut change = change;
    change.reason = row.status_reason.clone().filter(|r| r.starts_with("released by"));
    if lifecycle::apply(core, change).await? {
        core.metrics.scan_outcomes.with_label_values(&["approved"]).inc();
        tracing::info!(artifact = %row.id, "signed and approved");
    }
    Ok(())
}

/// Arca's signature of an artifact, with what is needed to verify it offline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArtifactSignature {
    pub algorithm: String,
    /// Base64 of the DER ECDSA signature.
    pub signature: String,
    /// PEM: the signing certificate, then its issuers.
    pub certificate_chain: String,
    /// `sha256:<hex>` of the artifact.
    pub digest: String,
    /// Unix milliseconds.
    pub signed_at: i64,
    /// The signing certificate.
    pub signer: Option<SignerInfo>,
    /// Whether the signature verifies now with a trusted certificate (the download gate).
    pub verified: bool,
    pub verification_error: Option<String>,
}

/// Arca's signature of an approved artifact, with everything needed to verify it offline.
#[utoipa::path(get, path = "/api/artifacts/{id}/signature", operation_id = "getArtifactSignature",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = ArtifactSignature), (status = 401), (status = 403), (status = 404)))]
pub async fn get_signature(
    State(core): State<Core>,
    State(trusted): State<Trusted>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ArtifactSignature>, ApiError> {
    let row = artifacts::find_visible(&core.db, &principal, &id).await?;
    let stored =
        signing::stored(&core.db, &id).await?.ok_or_else(|| ApiError::not_found("the artifact is not signed"))?;
    let check = signing::check_stored(&trusted.0, &stored, &row.sha256);
    Ok(Json(ArtifactSignature {
        signer: signing::signer_info(&stored.certificate_chain),
        verified: check.is_ok(),
        verification_error: check.err(),
        algorithm: stored.algorithm,
        signature: stored.signature,
        certificate_chain: stored.certificate_chain,
        digest: stored.digest,
        signed_at: stored.signed_at,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Resigned {
    pub resigned: u64,
}

/// Re-signs every approved artifact with the current signing key (after a rotation).
#[utoipa::path(post, path = "/api/admin/resign", operation_id = "resignArtifacts",
    responses((status = 200, body = Resigned), (status = 401), (status = 403)))]
pub async fn resign(
    State(core): State<Core>,
    State(signing): State<Signing>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
) -> Result<Json<Resigned>, ApiError> {
    let approved: Vec<(String, String)> =
        with_pool!(&core.db, |pool| sqlx::query_as("SELECT id, sha256 FROM artifacts WHERE status = $1")
            .bind(Status::Approved.as_str())
            .fetch_all(pool)
            .await)?;
    for (id, sha256) in &approved {
        signing::sign_artifact(&core.db, &signing.0, id, sha256).await.map_err(ApiError::internal)?;
    }
    let resigned = approved.len() as u64;
    core.audit
        .record_durable(context.event(
            &principal,
            "artifacts.resign",
            "*",
            "success",
            serde_json::json!({ "resigned": resigned }),
        ))
        .await;
    Ok(Json(Resigned { resigned }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPublisherSignature {
    /// Base64 of the DER ECDSA signature over the artifact's bytes.
    #[schema(max_length = 1024)]
    pub signature: String,
    /// PEM: the signing certificate first, then intermediates.
    #[schema(max_length = 65536)]
    pub certificate_chain: String,
}

/// A publisher signature and what Arca concluded about it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct PublisherSignature {
    pub id: String,
    /// `valid`, `invalid` or `untrusted`.
    pub result: String,
    pub reason: String,
    pub subject: Option<String>,
    pub submitted_by: String,
    /// Unix milliseconds.
    pub verified_at: i64,
}

/// Attaches a publisher signature; the answer says whether it is valid, and why not.
#[utoipa::path(post, path = "/api/artifacts/{id}/signatures", operation_id = "attachPublisherSignature",
    params(("id" = String, Path, description = "artifact id")), request_body = NewPublisherSignature,
    responses((status = 201, body = PublisherSignature), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn attach(
    State(core): State<Core>,
    State(trust): State<PublisherTrust>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<NewPublisherSignature>,
) -> Result<(StatusCode, Json<PublisherSignature>), ApiError> {
    let row = artifacts::get(&core.db, &id).await?;
    artifacts::require_owner(&row, &principal, "sign this artifact")?;
    if matches!(row.status(), Status::Deleted | Status::Failed) {
        return Err(ApiError::new(Code::InvalidState, format!("artifact is {}", row.status().as_str())));
    }
    if request.certificate_chain.len() > 64 * 1024 || request.signature.len() > 1024 {
        return Err(ApiError::new(Code::InvalidField, "signature or certificate_chain too large"));
    }
    let der = STANDARD
        .decode(request.signature.trim())
        .map_err(|_| ApiError::new(Code::InvalidField, "signature: base64 of a DER signature"))?;
    let digest: [u8; 32] = hex::decode(&row.sha256)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| ApiError::internal("stored digest is not hex"))?;
    let verdict = trust::check(&trust.0, &digest, &der, &request.certificate_chain);
    let stored = PublisherSignature {
        id: uuid::Uuid::new_v4().to_string(),
        result: verdict.result.clone(),
        reason: verdict.reason.clone(),
        subject: verdict.subject.clone(),
        submitted_by: principal.username.clone(),
        verified_at: now_ms(),
    };
    with_pool!(&core.db, |pool| sqlx::query(
        "INSERT INTO publisher_signatures (id, artifact_id, signature, certificate_chain, result, reason, subject, \
         submitted_by, verified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(&stored.id)
    .bind(&id)
    .bind(request.signature.trim())
    .bind(&request.certificate_chain)
    .bind(&stored.result)
    .bind(&stored.reason)
    .bind(&stored.subject)
    .bind(&stored.submitted_by)
    .bind(stored.verified_at)
    .execute(pool)
    .await
    .map(|_| ()))?;
    core.audit
        .record_durable(context.event(
            &principal,
            "artifacts.verify",
            &id,
            if verdict.result == "valid" { "success" } else { "failure" },
            serde_json::json!({ "gate": "publisher_signature", "result": verdict.result, "reason": verdict.reason }),
        ))
        .await;
    if verdict.result == "valid" && core.config.policy.require_publisher_signature {
        // It may be what kept the artifact in quarantine.
        decisions::reevaluate(&core, &core.config.policy, &id).await.map_err(ApiError::internal)?;
    }
    Ok((StatusCode::CREATED, Json(stored)))
}

/// The publisher signatures attached to an artifact, with their results.
#[utoipa::path(get, path = "/api/artifacts/{id}/signatures", operation_id = "listPublisherSignatures",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = Vec<PublisherSignature>), (status = 401), (status = 403), (status = 404)))]
pub async fn list(
    State(core): State<Core>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Vec<PublisherSignature>>, ApiError> {
    artifacts::find_visible(&core.db, &principal, &id).await?;
    let rows = with_pool!(&core.db, |pool| sqlx::query_as::<_, PublisherSignature>(
        "SELECT id, result, reason, subject, submitted_by, verified_at FROM publisher_signatures \
         WHERE artifact_id = $1 ORDER BY verified_at"
    )
    .bind(&id)
    .fetch_all(pool)
    .await)?;
    Ok(Json(rows))
}
