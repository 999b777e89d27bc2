//! The `upload` function: create an artifact, receive its bytes through a signed,
//! expiring, single-use upload URL, and complete the upload.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::access::{Access, Principal};
use crate::app::AppState;
use crate::artifacts::{self, Artifact, ArtifactRow, Status};
use crate::db::now_ms;
use crate::error::{ApiError, ApiJson};
use crate::events;
use crate::http::RequestContext;
use crate::rbac::Permission;
use crate::routes::FunctionRouter;
use crate::storage::WriteError;
use crate::with_pool;

pub fn router() -> FunctionRouter {
    let write = Access::Permission(Permission::ArtifactsWrite);
    FunctionRouter::new("upload")
        .route(Method::POST, "/api/artifacts", write, create)
        .route(Method::POST, "/api/artifacts/{id}/complete", write, complete)
        // The signed token in the URL is the credential.
        .route(Method::PUT, "/api/uploads/{token}", Access::Public, receive)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewArtifact {
    pub name: String,
    pub version: String,
    pub filename: String,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256 of the bytes that will be uploaded.
    pub sha256: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
}

/// Where and how to send the bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTarget {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// Unix milliseconds.
    pub expires_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub upload: UploadTarget,
}

#[derive(Debug, Serialize, Deserialize)]
struct TokenClaims {
    /// Artifact id.
    a: String,
    /// Nonce of the URL in force (single use).
    n: String,
    /// Expiry, Unix ms.
    e: i64,
    s: u64,
    h: String,
}

fn sign(state: &AppState, claims: &TokenClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.store.upload_key()).unwrap_or_else(|_| unreachable!());
    mac.update(payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn verify(state: &AppState, token: &str) -> Result<TokenClaims, ApiError> {
    let bad = || ApiError::forbidden("invalid_upload_url", "the upload URL is not valid");
    let (payload, signature) = token.split_once('.').ok_or_else(bad)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| bad())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.store.upload_key()).map_err(|_| bad())?;
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature).map_err(|_| bad())?;
    let claims: TokenClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?).map_err(|_| bad())?;
    if claims.e <= now_ms() {
        return Err(ApiError::forbidden("upload_url_expired", "the upload URL has expired; create a new one"));
    }
    Ok(claims)
}

/// The externally visible base URL, from the request's authority (HTTP/2) or Host.
fn base_url(state: &AppState, uri: &axum::http::Uri, headers: &HeaderMap) -> String {
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
        .unwrap_or_else(|| state.config.listen.to_string());
    let scheme = if state.config.tls == crate::config::TlsConfig::Off { "http" } else { "https" };
    format!("{scheme}://{host}")
}

/// Creates an artifact and returns where to upload its bytes.
#[utoipa::path(post, path = "/api/artifacts", tag = "artifacts", security(("bearer" = [])), request_body = NewArtifact,
    responses((status = 201, body = Created), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    ApiJson(request): ApiJson<NewArtifact>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    artifacts::validate_name(&request.name)?;
    artifacts::validate_version(&request.version)?;
    artifacts::validate_filename(&request.filename)?;
    let sha256 = artifacts::validate_sha256(&request.sha256)?;
    artifacts::validate_labels(&request.labels)?;
    let max = state.config.max_artifact_bytes;
    if request.size == 0 || request.size > max {
        return Err(ApiError::bad_request("invalid_field", format!("size: 1 to {max} bytes")));
    }
    if request.description.chars().count() > 4096 {
        return Err(ApiError::bad_request("invalid_field", "description: at most 4096 characters"));
    }
    let size = i64::try_from(request.size).map_err(|_| ApiError::bad_request("invalid_field", "size too large"))?;
    let now = now_ms();
    let row = ArtifactRow {
        id: uuid::Uuid::new_v4().to_string(),
        name: request.name,
        version: request.version,
        filename: request.filename,
        size,
        sha256,
        labels: serde_json::to_string(&request.labels).unwrap_or_else(|_| "{}".into()),
        description: request.description,
        status: Status::PendingUpload.as_str().to_owned(),
        status_reason: None,
        owner_id: principal.user_id.clone(),
        wrapped_key: None,
        upload_nonce: Some(uuid::Uuid::new_v4().simple().to_string()),
        received_sha256: None,
        received_size: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let inserted = with_pool!(&state.db, |pool| sqlx::query(
        "INSERT INTO artifacts (id, name, version, filename, size, sha256, labels, description, status, owner_id, \
         upload_nonce, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (name, version) DO NOTHING"
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.version)
    .bind(&row.filename)
    .bind(row.size)
    .bind(&row.sha256)
    .bind(&row.labels)
    .bind(&row.description)
    .bind(&row.status)
    .bind(&row.owner_id)
    .bind(&row.upload_nonce)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if inserted == 0 {
        return Err(ApiError::conflict(
            "artifact_exists",
            format!("{}@{} exists and is immutable", row.name, row.version),
        ));
    }
    let expires_at = now + i64::try_from(state.config.upload_url_ttl.as_millis()).unwrap_or(i64::MAX);
    let token = sign(
        &state,
        &TokenClaims {
            a: row.id.clone(),
            n: row.upload_nonce.clone().unwrap_or_default(),
            e: expires_at,
            s: request.size,
            h: row.sha256.clone(),
        },
    );
    let upload = UploadTarget {
        method: "PUT".to_owned(),
        url: format!("{}/api/uploads/{token}", base_url(&state, &uri, &headers)),
        headers: BTreeMap::from([("Content-Type".to_owned(), "application/octet-stream".to_owned())]),
        expires_at,
    };
    state
        .audit
        .record_durable(context.event(
            &principal,
            "artifacts.create",
            &row.id,
            "success",
            serde_json::json!({
                "name": row.name, "version": row.version, "size": row.size, "sha256": row.sha256,
            }),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(Created { artifact: row.into(), upload })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    pub id: String,
    pub status: Status,
    pub sha256: String,
    pub size: u64,
}

/// Receives the bytes of an artifact (streamed: hashed and encrypted on the fly).
#[utoipa::path(put, path = "/api/uploads/{token}", tag = "artifacts",
    params(("token" = String, Path, description = "signed upload token from the create answer")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Received), (status = 400), (status = 403), (status = 409), (status = 422)))]
pub async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Received>, ApiError> {
    let claims = verify(&state, &token)?;
    let id = claims.a.clone();
    if let Some(length) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) {
        if length != claims.s {
            return Err(ApiError::bad_request(
                "size_mismatch",
                format!("Content-Length {length} differs from the declared size {}", claims.s),
            ));
        }
    }
    // Claiming the upload is atomic and needs the URL in force: a used URL cannot be replayed.
    let claimed = with_pool!(&state.db, |pool| sqlx::query(
        "UPDATE artifacts SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 AND upload_nonce = $5"
    )
    .bind(Status::Uploading.as_str())
    .bind(now_ms())
    .bind(&id)
    .bind(Status::PendingUpload.as_str())
    .bind(&claims.n)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if claimed != 1 {
        return Err(ApiError::conflict(
            "upload_url_used",
            "this upload URL was already used or the upload is in progress",
        ));
    }
    let fail = |reason: String| {
        let state = state.clone();
        let id = id.clone();
        async move {
            state.store.remove(&id).await;
            let _ = events::transition_with_event(
                &state,
                &id,
                Status::Uploading,
                Status::Failed,
                Some(&reason),
                events::FAILED,
            )
            .await;
        }
    };
    match state.store.write(&id, claims.s, body.into_data_stream()).await {
        Ok(written) if written.sha256 != claims.h => {
            let reason = format!("sha256 mismatch: declared {}, received {}", claims.h, written.sha256);
            fail(reason.clone()).await;
            Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "digest_mismatch", reason))
        }
        Ok(written) => {
            with_pool!(&state.db, |pool| sqlx::query(
                "UPDATE artifacts SET status = $1, wrapped_key = $2, received_sha256 = $3, received_size = $4, \
                 upload_nonce = NULL, updated_at = $5 WHERE id = $6 AND status = $7"
            )
            .bind(Status::Verifying.as_str())
            .bind(&written.wrapped_key)
            .bind(&written.sha256)
            .bind(i64::try_from(written.size).unwrap_or(i64::MAX))
            .bind(now_ms())
            .bind(&id)
            .bind(Status::Uploading.as_str())
            .execute(pool)
            .await
            .map(|_| ()))?;
            Ok(Json(Received { id, status: Status::Verifying, sha256: written.sha256, size: written.size }))
        }
        Err(e @ (WriteError::TooLarge(_) | WriteError::TooShort { .. })) => {
            fail(format!("size mismatch: {e}")).await;
            Err(ApiError::bad_request("size_mismatch", e.to_string()))
        }
        Err(e) => {
            // The client went away or the disk failed: nothing was kept; the same URL may retry.
            tracing::warn!(error = %e, artifact = %id, "upload aborted");
            let _ = artifacts::transition(&state.db, &id, Status::Uploading, Status::PendingUpload, None).await;
            Err(ApiError::new(StatusCode::BAD_REQUEST, "upload_interrupted", "the upload was interrupted; retry it"))
        }
    }
}

/// Finishes an upload: checks size and SHA-256, then hands the artifact to scanning.
#[utoipa::path(post, path = "/api/artifacts/{id}/complete", tag = "artifacts", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = Artifact), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn complete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Json<Artifact>, ApiError> {
    let row = artifacts::find(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    if row.owner_id != principal.user_id && !principal.is_admin() {
        return Err(ApiError::forbidden("not_owner", "only the uploader or an admin may complete this upload"));
    }
    match row.status() {
        Status::Verifying => {}
        Status::PendingUpload | Status::Uploading => {
            return Err(ApiError::conflict("upload_missing", "the bytes have not been uploaded yet"))
        }
        other => {
            return Err(ApiError::conflict(
                "invalid_state",
                format!(
                    "artifact is {}: {}",
                    other.as_str(),
                    row.status_reason.as_deref().unwrap_or("nothing to complete")
                ),
            ))
        }
    }
    let verified = row.received_sha256.as_deref() == Some(row.sha256.as_str()) && row.received_size == Some(row.size);
    if !verified {
        let reason = "received bytes do not match the declared size and sha256";
        state.store.remove(&id).await;
        events::transition_with_event(&state, &id, Status::Verifying, Status::Failed, Some(reason), events::FAILED)
            .await?;
        return Err(ApiError::conflict("digest_mismatch", reason));
    }
    events::transition_with_event(&state, &id, Status::Verifying, Status::Scanning, None, events::UPLOADED).await?;
    state.events.notify();
    state
        .audit
        .record_durable(context.event(&principal, "artifacts.complete", &id, "success", serde_json::Value::Null))
        .await;
    let row = artifacts::find(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    Ok(Json(row.into()))
}
