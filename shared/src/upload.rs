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
use crate::storage::{Area, BlobStore, LocalStore, S3Store, UploadedPart, WriteError};
use crate::with_pool;

pub fn router() -> FunctionRouter {
    let write = Access::Permission(Permission::ArtifactsWrite);
    FunctionRouter::new("upload")
        .route(Method::POST, "/api/artifacts", write, create)
        .route(Method::POST, "/api/artifacts/{id}/complete", write, complete)
        .route(Method::POST, "/api/artifacts/{id}/upload", write, reissue)
        .route(Method::GET, "/api/artifacts/{id}/parts", write, list_parts)
        .route(Method::POST, "/api/artifacts/{id}/parts", write, sign_parts)
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

/// Where and how to send the bytes: one `PUT` of the whole file to `url` with `headers`,
/// or (`method: MULTIPART`) parts whose presigned URLs come from `url` (`POST …/parts`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTarget {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// Unix milliseconds.
    pub expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multipart: Option<MultipartPlan>,
}

/// How a large artifact is cut into parts: every part `part_size` bytes but the last.
#[derive(Debug, Serialize, ToSchema)]
pub struct MultipartPlan {
    pub part_size: u64,
    pub part_count: u64,
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

/// The local store (uploads through Arca exist only there).
fn local_store(state: &AppState) -> Result<&LocalStore, ApiError> {
    match &state.store {
        BlobStore::Local(store) => Ok(store),
        BlobStore::S3(_) => Err(ApiError::not_found("uploads go straight to the object store")),
    }
}

fn sign(store: &LocalStore, claims: &TokenClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut mac = Hmac::<Sha256>::new_from_slice(&store.upload_key()).unwrap_or_else(|_| unreachable!());
    mac.update(payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn verify(state: &AppState, token: &str) -> Result<TokenClaims, ApiError> {
    let bad = || ApiError::forbidden("invalid_upload_url", "the upload URL is not valid");
    let (payload, signature) = token.split_once('.').ok_or_else(bad)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| bad())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&local_store(state)?.upload_key()).map_err(|_| bad())?;
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

fn ttl_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.upload_url_ttl.as_millis()).unwrap_or(i64::MAX)
}

/// Where to send an artifact's bytes. Local: a fresh single-use URL (any earlier one stops
/// working). S3: a presigned `PUT`, or the multipart upload (started once, then resumed).
async fn upload_target(state: &AppState, row: &ArtifactRow, base: &str) -> Result<UploadTarget, ApiError> {
    let expires_at = now_ms() + ttl_ms(state);
    let size = u64::try_from(row.size).unwrap_or(0);
    match &state.store {
        BlobStore::Local(store) => {
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            set_column(state, &row.id, "upload_nonce", &nonce).await?;
            let token = sign(
                store,
                &TokenClaims { a: row.id.clone(), n: nonce, e: expires_at, s: size, h: row.sha256.clone() },
            );
            Ok(UploadTarget {
                method: "PUT".to_owned(),
                url: format!("{base}/api/uploads/{token}"),
                headers: BTreeMap::from([("content-type".to_owned(), "application/octet-stream".to_owned())]),
                expires_at,
                multipart: None,
            })
        }
        BlobStore::S3(store) if store.is_multipart(size) => {
            if row.upload_id.is_none() {
                let upload_id = store.create_multipart(&row.id).await.map_err(ApiError::store_unavailable)?;
                set_column(state, &row.id, "upload_id", &upload_id).await?;
            }
            let (part_size, part_count) = store.part_plan(size);
            Ok(UploadTarget {
                method: "MULTIPART".to_owned(),
                url: format!("{base}/api/artifacts/{}/parts", row.id),
                headers: BTreeMap::new(),
                expires_at,
                multipart: Some(MultipartPlan { part_size, part_count }),
            })
        }
        BlobStore::S3(store) => {
            let presigned = store
                .presign_put(&row.id, size, &row.sha256, state.config.upload_url_ttl)
                .await
                .map_err(ApiError::store_unavailable)?;
            Ok(UploadTarget {
                method: "PUT".to_owned(),
                url: presigned.url,
                headers: client_headers(presigned.headers),
                expires_at,
                multipart: None,
            })
        }
    }
}

/// The signed headers a client must send; the length and host come from the request itself.
fn client_headers(headers: BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("host"))
        .collect()
}

async fn set_column(state: &AppState, id: &str, column: &'static str, value: &str) -> Result<(), ApiError> {
    let sql = format!("UPDATE artifacts SET {column} = $1, updated_at = $2 WHERE id = $3");
    with_pool!(&state.db, |pool| sqlx::query(&sql)
        .bind(value)
        .bind(now_ms())
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The artifact, if the caller may upload to it and it still waits for its bytes.
async fn pending_upload(state: &AppState, principal: &Principal, id: &str) -> Result<ArtifactRow, ApiError> {
    let row = artifacts::find(&state.db, id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    artifacts::require_owner(&row, principal, "upload this artifact")?;
    if row.status() != Status::PendingUpload {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("artifact is {}: it does not wait for an upload", row.status().as_str()),
        ));
    }
    Ok(row)
}

/// Issues a new upload target for an artifact still waiting for its bytes (an expired URL,
/// a resumed multipart upload). A local upload URL issued earlier stops working.
#[utoipa::path(post, path = "/api/artifacts/{id}/upload", tag = "artifacts", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = UploadTarget), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn reissue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Json<UploadTarget>, ApiError> {
    let row = pending_upload(&state, &principal, &id).await?;
    Ok(Json(upload_target(&state, &row, &base_url(&state, &uri, &headers)).await?))
}

fn multipart_of<'a>(state: &'a AppState, row: &ArtifactRow) -> Result<(&'a S3Store, String), ApiError> {
    match (&state.store, &row.upload_id) {
        (BlobStore::S3(store), Some(upload_id)) => Ok((store, upload_id.clone())),
        _ => Err(ApiError::conflict("not_multipart", "this artifact is not uploaded in parts")),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartsStatus {
    pub part_size: u64,
    pub part_count: u64,
    /// Parts the store already holds (with their verified SHA-256): skip them when resuming.
    pub uploaded: Vec<UploadedPart>,
}

/// Which parts of a multipart upload are done (to resume an interrupted upload).
#[utoipa::path(get, path = "/api/artifacts/{id}/parts", tag = "artifacts", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = PartsStatus), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn list_parts(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<PartsStatus>, ApiError> {
    let row = pending_upload(&state, &principal, &id).await?;
    let (store, upload_id) = multipart_of(&state, &row)?;
    let (part_size, part_count) = store.part_plan(u64::try_from(row.size).unwrap_or(0));
    let uploaded = store.list_parts(&id, &upload_id).await.map_err(ApiError::store_unavailable)?;
    Ok(Json(PartsStatus { part_size, part_count, uploaded }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartRequest {
    /// 1-based.
    pub number: u64,
    /// Hex SHA-256 of the part's bytes (the store refuses other bytes).
    pub sha256: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartsRequest {
    pub parts: Vec<PartRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartTarget {
    pub number: u64,
    pub size: u64,
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartTargets {
    pub parts: Vec<PartTarget>,
}

/// Most parts signed by one request.
const MAX_PARTS_PER_REQUEST: usize = 1000;

/// Presigned `PUT` URLs for parts, each bound to the part's size and SHA-256.
#[utoipa::path(post, path = "/api/artifacts/{id}/parts", tag = "artifacts", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")), request_body = PartsRequest,
    responses((status = 200, body = PartTargets), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn sign_parts(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<PartsRequest>,
) -> Result<Json<PartTargets>, ApiError> {
    let row = pending_upload(&state, &principal, &id).await?;
    let (store, upload_id) = multipart_of(&state, &row)?;
    let size = u64::try_from(row.size).unwrap_or(0);
    let (part_size, part_count) = store.part_plan(size);
    if request.parts.is_empty() || request.parts.len() > MAX_PARTS_PER_REQUEST {
        return Err(ApiError::bad_request("invalid_field", format!("parts: 1 to {MAX_PARTS_PER_REQUEST} per request")));
    }
    let expires_at = now_ms() + ttl_ms(&state);
    let mut parts = Vec::with_capacity(request.parts.len());
    for part in request.parts {
        if part.number == 0 || part.number > part_count {
            return Err(ApiError::bad_request("invalid_field", format!("parts.number: 1 to {part_count}")));
        }
        let sha256 = artifacts::validate_sha256(&part.sha256)?;
        let this_size = if part.number == part_count { size - part_size * (part_count - 1) } else { part_size };
        let number = i32::try_from(part.number).map_err(|_| ApiError::bad_request("invalid_field", "parts.number"))?;
        let presigned = store
            .presign_part(&id, &upload_id, number, this_size, &sha256, state.config.upload_url_ttl)
            .await
            .map_err(ApiError::store_unavailable)?;
        parts.push(PartTarget {
            number: part.number,
            size: this_size,
            method: "PUT".to_owned(),
            url: presigned.url,
            headers: client_headers(presigned.headers),
            expires_at,
        });
    }
    Ok(Json(PartTargets { parts }))
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
        upload_nonce: None,
        received_sha256: None,
        received_size: None,
        upload_id: None,
        policy_reasons: None,
        released_scan_id: None,
        promoted_at: None,
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
    let upload = upload_target(&state, &row, &base_url(&state, &uri, &headers)).await?;
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
    let row = artifacts::find(&state.db, &row.id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
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
    match local_store(&state)?.write(&id, claims.s, body.into_data_stream()).await {
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
    artifacts::require_owner(&row, &principal, "complete this upload")?;
    if let BlobStore::S3(store) = &state.store {
        verify_s3(&state, store, &row).await?;
    }
    let row = artifacts::find(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
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

/// S3: assembles a multipart upload, then checks the object's size and SHA-256 (verified by
/// the store for a single `PUT`, else re-hashed as a stream) and records what was received.
/// The artifact is `verifying` meanwhile; if the bytes are not all there it waits again.
async fn verify_s3(state: &AppState, store: &S3Store, row: &ArtifactRow) -> Result<(), ApiError> {
    if row.status() != Status::PendingUpload {
        return Ok(()); // the state check in `complete` answers
    }
    if !artifacts::transition(&state.db, &row.id, Status::PendingUpload, Status::Verifying, None).await? {
        return Err(ApiError::conflict("concurrent_change", "the artifact changed meanwhile; retry"));
    }
    let received = match receive_s3(store, row).await {
        Ok(received) => received,
        Err(e) => {
            let _ = artifacts::transition(&state.db, &row.id, Status::Verifying, Status::PendingUpload, None).await;
            return Err(e);
        }
    };
    with_pool!(&state.db, |pool| sqlx::query(
        "UPDATE artifacts SET received_sha256 = $1, received_size = $2, upload_id = NULL, updated_at = $3 \
         WHERE id = $4 AND status = $5"
    )
    .bind(&received.0)
    .bind(i64::try_from(received.1).unwrap_or(i64::MAX))
    .bind(now_ms())
    .bind(&row.id)
    .bind(Status::Verifying.as_str())
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// The SHA-256 and size of what the store received for an artifact.
async fn receive_s3(store: &S3Store, row: &ArtifactRow) -> Result<(String, u64), ApiError> {
    let id = row.id.as_str();
    let size = u64::try_from(row.size).unwrap_or(0);
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
                    return Err(ApiError::conflict(
                        "upload_missing",
                        format!("{} of {part_count} parts are uploaded; resume the upload", parts.len()),
                    ));
                }
                store.complete_multipart(id, upload_id, &parts).await.map_err(ApiError::store_unavailable)?;
            }
            // Assembled by an earlier `complete` that did not finish.
            Err(_) if matches!(store.head(Area::Quarantine, id).await, Ok(Some(_))) => {}
            Err(e) => return Err(ApiError::store_unavailable(e)),
        }
    }
    let info = store
        .head(Area::Quarantine, id)
        .await
        .map_err(ApiError::store_unavailable)?
        .ok_or_else(|| ApiError::conflict("upload_missing", "the bytes have not been uploaded yet"))?;
    let sha256 = match info.sha256 {
        _ if info.size != size => String::new(), // recorded; `complete` fails the artifact
        Some(sha256) => sha256,
        None => rehash(store, id, info.size).await.map_err(ApiError::store_unavailable)?,
    };
    Ok((sha256, info.size))
}

/// SHA-256 of an object, read as a stream.
async fn rehash(store: &S3Store, id: &str, size: u64) -> anyhow::Result<String> {
    use futures::StreamExt;
    use sha2::Digest;
    let mut hasher = Sha256::new();
    let mut body = store.read(Area::Quarantine, id, 0, size).await?;
    while let Some(chunk) = body.next().await {
        hasher.update(&chunk?);
    }
    Ok(hex::encode(hasher.finalize()))
}
