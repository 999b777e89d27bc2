//! The `upload` function: declare an artifact, get where to send its bytes (a signed,
//! single-use URL on Arca itself with the local store; presigned `PUT`s straight to the
//! object store with S3, whole or in parts), and complete the upload. Names have owners:
//! only they and admins add versions.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{FromRef, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::artifacts::{self, Artifact, ArtifactRow, UploadColumn};
use crate::core::db::{now_ms, Db};
use crate::core::error::{ApiError, ApiJson, Code};
use crate::core::lifecycle::{self, Change, Effect, Status};
use crate::core::rbac::{Permission, Principal};
use crate::core::storage::{BlobStore, LocalStore, S3Store, UploadedPart, WriteError};
use crate::core::uploads;
use crate::web::access::Access;
use crate::web::http::RequestContext;
use crate::web::routes::FunctionRouter;
use crate::web::state::{Blobs, Core};
use crate::with_pool;

pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Blobs: FromRef<S>,
{
    let write = Access::Permission(Permission::ArtifactsWrite);
    FunctionRouter::new("upload")
        .route(write, routes!(create))
        .route(write, routes!(complete))
        .route(write, routes!(reissue))
        .route(write, routes!(list_parts))
        .route(write, routes!(sign_parts))
        // The signed token in the URL is the credential.
        .route(Access::Public, routes!(receive))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewArtifact {
    /// 1 to 128 of a-z 0-9 . _ -, starting with a letter or digit.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,127}$", example = "tool")]
    pub name: String,
    /// 1 to 64 of A-Z a-z 0-9 . _ + -, starting with a letter or digit.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$", example = "1.2.0")]
    pub version: String,
    /// 1 to 255 bytes; not starting with a dot; no path separators (`/`, `\`), control
    /// characters, Unicode bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E,
    /// U+200F, U+061C) or shell-special characters (`` $ ` " ' \ ; & | < > ``). A refusal
    /// (`invalid_field`) names the rule.
    #[schema(min_length = 1, max_length = 255, example = "tool.tar.gz")]
    pub filename: String,
    /// Bytes (1 to `ARCA_MAX_ARTIFACT_BYTES`, 5 GiB unless configured).
    #[schema(minimum = 1, maximum = 5368709120_u64)]
    #[serde(deserialize_with = "crate::core::error::whole_number")]
    pub size: u64,
    /// Hex SHA-256 of the bytes that will be uploaded.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: String,
    /// At most 32; keys 1 to 63 of a-z 0-9 . _ / -, values at most 128 of A-Z a-z 0-9 . _ / : @ + -.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub description: String,
}

/// Where and how to send the bytes: one `PUT` of the whole file to `url` with `headers`,
/// or (`method: MULTIPART`) parts whose presigned URLs come from `url` (`POST …/parts`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTarget {
    /// `PUT` or `MULTIPART`.
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
fn local_store(blobs: &Blobs) -> Result<&LocalStore, ApiError> {
    match &*blobs.0 {
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

fn verify(blobs: &Blobs, token: &str) -> Result<TokenClaims, ApiError> {
    let bad = || ApiError::new(Code::InvalidUploadUrl, "the upload URL is not valid");
    let (payload, signature) = token.split_once('.').ok_or_else(bad)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| bad())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&local_store(blobs)?.upload_key()).map_err(|_| bad())?;
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature).map_err(|_| bad())?;
    let claims: TokenClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?).map_err(|_| bad())?;
    if claims.e <= now_ms() {
        return Err(ApiError::new(Code::UploadUrlExpired, "the upload URL has expired; create a new one"));
    }
    Ok(claims)
}

/// The externally visible base URL: the request's authority (HTTP/2) or Host, and the
/// scheme Arca serves; behind a trusted proxy, its `X-Forwarded-Proto`/`-Host`.
fn base_url(core: &Core, uri: &axum::http::Uri, headers: &HeaderMap, context: &RequestContext) -> String {
    let header = |name: &str| {
        headers.get(name).and_then(|h| h.to_str().ok()).map(|v| v.split(',').next().unwrap_or(v).trim().to_owned())
    };
    let proxied = context.via_trusted_proxy;
    let host = proxied
        .then(|| header("x-forwarded-host"))
        .flatten()
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .or_else(|| header(header::HOST.as_str()))
        .unwrap_or_else(|| core.config.listen.to_string());
    let scheme = match proxied.then(|| header("x-forwarded-proto")).flatten() {
        Some(proto) if proto == "https" || proto == "http" => proto,
        _ if core.config.tls == crate::core::config::TlsConfig::Off => "http".to_owned(),
        _ => "https".to_owned(),
    };
    format!("{scheme}://{host}")
}

fn ttl_ms(core: &Core) -> i64 {
    i64::try_from(core.config.upload_url_ttl.as_millis()).unwrap_or(i64::MAX)
}

/// Where to send an artifact's bytes. Local: a fresh single-use URL (any earlier one stops
/// working). S3: a presigned `PUT`, or the multipart upload (started once, then resumed).
async fn upload_target(core: &Core, blobs: &Blobs, row: &ArtifactRow, base: &str) -> Result<UploadTarget, ApiError> {
    let expires_at = now_ms() + ttl_ms(core);
    let size = row.size();
    match &*blobs.0 {
        BlobStore::Local(store) => {
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            artifacts::set_upload_state(&core.db, &row.id, UploadColumn::Nonce, &nonce).await?;
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
                artifacts::set_upload_state(&core.db, &row.id, UploadColumn::MultipartId, &upload_id).await?;
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
                .presign_put(&row.id, size, &row.sha256, core.config.upload_url_ttl)
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

/// The artifact, if the caller may upload to it and it still waits for its bytes.
async fn pending_upload(core: &Core, principal: &Principal, id: &str) -> Result<ArtifactRow, ApiError> {
    let row = artifacts::get(&core.db, id).await?;
    artifacts::require_owner(&row, principal, "upload this artifact")?;
    if row.status() != Status::PendingUpload {
        return Err(ApiError::new(
            Code::InvalidState,
            format!("artifact is {}: it does not wait for an upload", row.status().as_str()),
        ));
    }
    Ok(row)
}

async fn view(core: &Core, row: ArtifactRow, principal: &Principal) -> Result<Artifact, ApiError> {
    let owner = artifacts::username(&core.db, &row.owner_id).await?;
    Ok(Artifact::view(row, owner, None, principal))
}

/// Issues a new upload target for an artifact still waiting for its bytes (an expired URL,
/// a resumed multipart upload). A local upload URL issued earlier stops working.
#[utoipa::path(post, path = "/api/artifacts/{id}/upload", operation_id = "reissueUpload",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = UploadTarget), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn reissue(
    State(core): State<Core>,
    State(blobs): State<Blobs>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Json<UploadTarget>, ApiError> {
    let row = pending_upload(&core, &principal, &id).await?;
    let base = base_url(&core, &uri, &headers, &context);
    Ok(Json(upload_target(&core, &blobs, &row, &base).await?))
}

fn multipart_of<'a>(blobs: &'a Blobs, row: &ArtifactRow) -> Result<(&'a S3Store, String), ApiError> {
    match (&*blobs.0, &row.upload_id) {
        (BlobStore::S3(store), Some(upload_id)) => Ok((store, upload_id.clone())),
        _ => Err(ApiError::new(Code::NotMultipart, "this artifact is not uploaded in parts")),
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
#[utoipa::path(get, path = "/api/artifacts/{id}/parts", operation_id = "listUploadedParts",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = PartsStatus), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn list_parts(
    State(core): State<Core>,
    State(blobs): State<Blobs>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<PartsStatus>, ApiError> {
    let row = pending_upload(&core, &principal, &id).await?;
    let (store, upload_id) = multipart_of(&blobs, &row)?;
    let (part_size, part_count) = store.part_plan(row.size());
    let uploaded = store.list_parts(&id, &upload_id).await.map_err(ApiError::store_unavailable)?;
    Ok(Json(PartsStatus { part_size, part_count, uploaded }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartRequest {
    /// 1-based.
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(deserialize_with = "crate::core::error::whole_number")]
    pub number: u64,
    /// Hex SHA-256 of the part's bytes (the store refuses other bytes).
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartsRequest {
    /// 1 to 1000 parts per request.
    #[schema(min_items = 1, max_items = 1000)]
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
#[utoipa::path(post, path = "/api/artifacts/{id}/parts", operation_id = "presignParts",
    params(("id" = String, Path, description = "artifact id")), request_body = PartsRequest,
    responses((status = 200, body = PartTargets), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn sign_parts(
    State(core): State<Core>,
    State(blobs): State<Blobs>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<PartsRequest>,
) -> Result<Json<PartTargets>, ApiError> {
    let row = pending_upload(&core, &principal, &id).await?;
    let (store, upload_id) = multipart_of(&blobs, &row)?;
    let size = row.size();
    let (part_size, part_count) = store.part_plan(size);
    if request.parts.is_empty() || request.parts.len() > MAX_PARTS_PER_REQUEST {
        return Err(ApiError::new(Code::InvalidField, format!("parts: 1 to {MAX_PARTS_PER_REQUEST} per request")));
    }
    let expires_at = now_ms() + ttl_ms(&core);
    let mut parts = Vec::with_capacity(request.parts.len());
    for part in request.parts {
        if part.number == 0 || part.number > part_count {
            return Err(ApiError::new(Code::InvalidField, format!("parts.number: 1 to {part_count}")));
        }
        let sha256 = artifacts::validate_sha256(&part.sha256)?;
        let this_size = if part.number == part_count { size - part_size * (part_count - 1) } else { part_size };
        let number = i32::try_from(part.number).map_err(|_| ApiError::new(Code::InvalidField, "parts.number"))?;
        let presigned = store
            .presign_part(&id, &upload_id, number, this_size, &sha256, core.config.upload_url_ttl)
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

/// The name belongs to its owners: the first publisher of it, and whom admins grant.
/// Claims an unowned name for `principal`.
async fn claim_name(db: &Db, principal: &Principal, name: &str) -> Result<(), ApiError> {
    let now = now_ms();
    let claimed = with_pool!(db, |pool| sqlx::query(
        "INSERT INTO artifact_names (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
    )
    .bind(name)
    .bind(now)
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 1))?;
    if claimed {
        with_pool!(db, |pool| sqlx::query(
            "INSERT INTO name_owners (name, user_id, granted_by, created_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(name)
        .bind(&principal.user_id)
        .bind(&principal.username)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
        return Ok(());
    }
    if principal.is_admin() {
        return Ok(());
    }
    let owner: Option<String> =
        with_pool!(db, |pool| sqlx::query_scalar("SELECT user_id FROM name_owners WHERE name = $1 AND user_id = $2")
            .bind(name)
            .bind(&principal.user_id)
            .fetch_optional(pool)
            .await)?;
    if owner.is_none() {
        return Err(ApiError::new(
            Code::NameOwned,
            format!("the name '{name}' belongs to another publisher: only its owners or an admin may add versions"),
        ));
    }
    Ok(())
}

/// Creates an artifact and returns where to upload its bytes.
#[utoipa::path(post, path = "/api/artifacts", operation_id = "createArtifact", request_body = NewArtifact,
    responses((status = 201, body = Created), (status = 400), (status = 401), (status = 403), (status = 409), (status = 422)))]
pub async fn create(
    State(core): State<Core>,
    State(blobs): State<Blobs>,
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
    let max = core.config.max_artifact_bytes;
    if request.size == 0 || request.size > max {
        return Err(ApiError::new(Code::InvalidField, format!("size: 1 to {max} bytes")));
    }
    if request.description.chars().count() > 4096 {
        return Err(ApiError::new(Code::InvalidField, "description: at most 4096 characters"));
    }
    let size = i64::try_from(request.size).map_err(|_| ApiError::new(Code::InvalidField, "size too large"))?;
    claim_name(&core.db, &principal, &request.name).await?;
    let now = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let labels = serde_json::to_string(&request.labels).unwrap_or_else(|_| "{}".into());
    let inserted = with_pool!(&core.db, |pool| {
        sqlx::query(
        "INSERT INTO artifacts (id, name, version, version_key, filename, size, sha256, labels, description, status, \
         owner_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
         ON CONFLICT (name, version) DO NOTHING"
    )
    .bind(&id)
    .bind(&request.name)
    .bind(&request.version)
    .bind(artifacts::version_key(&request.version))
    .bind(&request.filename)
    .bind(size)
    .bind(&sha256)
    .bind(&labels)
    .bind(&request.description)
    .bind(Status::PendingUpload.as_str())
    .bind(&principal.user_id)
    .bind(now)
    .execute(pool)
    .await
    .map(|r| r.rows_affected())
    })?;
    if inserted == 0 {
        return Err(ApiError::new(
            Code::ArtifactExists,
            format!("{}@{} exists and is immutable", request.name, request.version),
        ));
    }
    let row = artifacts::get(&core.db, &id).await?;
    let upload = upload_target(&core, &blobs, &row, &base_url(&core, &uri, &headers, &context)).await?;
    core.audit
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
    let row = artifacts::get(&core.db, &id).await?;
    Ok((StatusCode::CREATED, Json(Created { artifact: view(&core, row, &principal).await?, upload })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    pub id: String,
    pub status: Status,
    pub sha256: String,
    pub size: u64,
}

/// Receives the bytes of an artifact (streamed: hashed and encrypted on the fly). A body
/// cut short returns the artifact to `pending_upload` (ask for a new URL and send again);
/// only bytes that are not the declared ones fail it.
#[utoipa::path(put, path = "/api/uploads/{token}", operation_id = "uploadBytes",
    params(("token" = String, Path, description = "signed upload token from the create answer")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Received), (status = 400), (status = 403), (status = 409), (status = 422)))]
pub async fn receive(
    State(core): State<Core>,
    State(blobs): State<Blobs>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Received>, ApiError> {
    local_store(&blobs)?;
    let claims = verify(&blobs, &token)?;
    let id = claims.a.clone();
    if let Some(length) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) {
        if length != claims.s {
            return Err(ApiError::new(
                Code::SizeMismatch,
                format!("Content-Length {length} differs from the declared size {}", claims.s),
            ));
        }
    }
    // Claiming the upload is atomic and needs the URL in force: a used URL cannot be replayed.
    let row = artifacts::get(&core.db, &id).await?;
    let lease = core.config.events.lease;
    let until = now_ms() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let in_force = row.upload_nonce.as_deref() == Some(claims.n.as_str());
    let claim = Change::new(&id, Status::PendingUpload, Status::Uploading)
        .effect(Effect::ClearUploadUrl)
        .effect(Effect::Lease { until });
    if !in_force || !lifecycle::apply(&core, claim).await? {
        return Err(ApiError::new(
            Code::UploadUrlUsed,
            "this upload URL was already used or the upload is in progress",
        ));
    }
    // The bytes are taken in a task of their own: when the client resets the stream (or the
    // connection drops), this handler is cancelled, but the task sees the body end in an
    // error and puts the artifact back to `pending_upload` at once, instead of leaving it
    // `uploading` until the lease runs out.
    let task = tokio::spawn(take_bytes(core, blobs, id, claims, body));
    task.await.map_err(|e| ApiError::internal(format!("the upload task failed: {e}")))?
}

/// Writes the uploaded bytes and moves the artifact on: verifying, failed (wrong bytes) or
/// back to `pending_upload` (cut short, too long, interrupted).
async fn take_bytes(
    core: Core,
    blobs: Blobs,
    id: String,
    claims: TokenClaims,
    body: Body,
) -> Result<Json<Received>, ApiError> {
    let lease = core.config.events.lease;
    let store = local_store(&blobs)?;
    let renew = || artifacts::renew_lease(&core.db, &id, now_ms() + i64::try_from(lease.as_millis()).unwrap_or(0));
    let written =
        crate::core::outbox::while_renewing(lease, renew, store.write(&id, claims.s, body.into_data_stream())).await;
    match written {
        Ok(written) if written.sha256 != claims.h => {
            let reason = format!("sha256 mismatch: declared {}, received {}", claims.h, written.sha256);
            store.remove(&id).await;
            let failed = Change::new(&id, Status::Uploading, Status::Failed).reason(reason.clone());
            lifecycle::apply(&core, failed).await?;
            Err(ApiError::new(Code::DigestMismatch, reason))
        }
        Ok(written) => {
            let size = i64::try_from(written.size).unwrap_or(i64::MAX);
            let change = Change::new(&id, Status::Uploading, Status::Verifying)
                .effect(Effect::Received { sha256: written.sha256.clone(), size })
                .effect(Effect::WrappedKey(written.wrapped_key));
            lifecycle::apply(&core, change).await?;
            Ok(Json(Received { id, status: Status::Verifying, sha256: written.sha256, size: written.size }))
        }
        Err(e) => {
            // Cut short, too long, or the client went away: nothing was kept, and the
            // artifact waits for its bytes again (a new URL is needed: this one was used).
            store.remove(&id).await;
            let back =
                Change::new(&id, Status::Uploading, Status::PendingUpload).reason(format!("upload interrupted: {e}"));
            lifecycle::apply(&core, back).await?;
            match e {
                WriteError::TooLarge(_) | WriteError::TooShort { .. } => {
                    Err(ApiError::new(Code::SizeMismatch, e.to_string()))
                }
                _ => {
                    tracing::warn!(error = %e, artifact = %id, "upload aborted");
                    Err(ApiError::new(
                        Code::UploadInterrupted,
                        "the upload was interrupted; ask for a new upload URL (POST /api/artifacts/{id}/upload) and retry",
                    ))
                }
            }
        }
    }
}

/// Finishes an upload: checks size and SHA-256, then hands the artifact to scanning. On
/// S3 the storage notification may have done it already: the answer is then the current
/// state.
#[utoipa::path(post, path = "/api/artifacts/{id}/complete", operation_id = "completeUpload",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = Artifact), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422), (status = 502)))]
pub async fn complete(
    State(core): State<Core>,
    State(blobs): State<Blobs>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Json<Artifact>, ApiError> {
    let row = artifacts::get(&core.db, &id).await?;
    artifacts::require_owner(&row, &principal, "complete this upload")?;
    if matches!(row.status(), Status::Deleted) {
        return Err(ApiError::new(Code::InvalidState, "artifact is deleted"));
    }
    let lease = core.config.events.lease;
    let row = uploads::finish(&core, &blobs, lease, &id).await?;
    if row.status() == Status::Failed {
        return Err(ApiError::new(
            Code::InvalidState,
            format!("artifact is failed: {}", row.status_reason.as_deref().unwrap_or("nothing to complete")),
        ));
    }
    core.audit
        .record_durable(context.event(&principal, "artifacts.complete", &id, "success", serde_json::Value::Null))
        .await;
    Ok(Json(view(&core, row, &principal).await?))
}
