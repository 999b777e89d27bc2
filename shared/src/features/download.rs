//! The `download` function: approved artifacts only, and only when Arca's signature over
//! them verifies. Local blobs are streamed and decrypted with `Range` support (every
//! segment authenticated before its bytes are sent); S3 blobs are a short-lived presigned
//! `GET`. Browsers download through single-use links (`POST …/download-link`), so that a
//! download streams to disk instead of through page memory.

use axum::body::Body;
use axum::extract::{FromRef, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::artifacts::{self, ArtifactRow};
use crate::core::db::now_ms;
use crate::core::error::{ApiError, Code};
use crate::core::lifecycle::Status;
use crate::core::rbac::{Permission, Principal};
use crate::core::signing;
use crate::core::storage::BlobStore;
use crate::web::access::{self, Access};
use crate::web::http::RequestContext;
use crate::web::routes::FunctionRouter;
use crate::web::state::{Blobs, Core, DownloadLinks, Trusted};
use crate::with_pool;

pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Blobs: FromRef<S>,
    Trusted: FromRef<S>,
    DownloadLinks: FromRef<S>,
{
    let may_download = Access::Permission(Permission::ArtifactsDownload);
    FunctionRouter::new("download")
        .route(may_download, routes!(download))
        .route(may_download, routes!(create_link))
        // The signed, single-use token in the URL is the credential.
        .route(Access::Public, routes!(redeem_link))
}

/// Longest life of a download link.
const LINK_TTL_MS: i64 = 60_000;

/// `X-Arca-Sha256`, `Repr-Digest` (RFC 9530) and `X-Arca-Signature` (base64 DER ECDSA).
fn digest_headers(h: &mut HeaderMap, sha256_hex: &str, signature: &str) {
    if let Ok(v) = HeaderValue::from_str(signature) {
        h.insert("x-arca-signature", v);
    }
    if let Ok(v) = HeaderValue::from_str(sha256_hex) {
        h.insert("x-arca-sha256", v);
    }
    let digest = hex::decode(sha256_hex).unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&format!("sha-256=:{}:", STANDARD.encode(digest))) {
        h.insert("repr-digest", v);
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → `[start, end)`; None when unsatisfiable.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // one range only
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.saturating_add(1).min(size)),
    };
    (start < end && start < size).then_some((start, end))
}

/// `attachment` with an ASCII fallback and the RFC 5987 UTF-8 name.
fn content_disposition(filename: &str) -> HeaderValue {
    let ascii: String =
        filename.chars().map(|c| if c.is_ascii_alphanumeric() || "._-+".contains(c) { c } else { '_' }).collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// The artifact, if `principal` may download it now; else why not.
async fn downloadable(core: &Core, principal: &Principal, id: &str) -> Result<ArtifactRow, ApiError> {
    let row = artifacts::get(&core.db, id).await?;
    let status = row.status();
    if status != Status::Approved {
        if !artifacts::visible(&row, principal) {
            return Err(ApiError::not_found("no such artifact"));
        }
        let why =
            row.status_reason.clone().unwrap_or_else(|| "it has not passed verification, scanning and policy".into());
        return Err(ApiError::new(Code::NotApproved, format!("artifact is {}: {why}", status.as_str()))
            .with_extra(serde_json::json!({ "artifact_status": status.as_str() })));
    }
    Ok(row)
}

/// Downloads an approved artifact (supports `Range`).
#[utoipa::path(get, path = "/api/artifacts/{id}/download", operation_id = "downloadArtifact",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, content_type = "application/octet-stream",
                headers(("x-arca-sha256" = String, description = "hex SHA-256"), ("repr-digest" = String, description = "RFC 9530 digest"),
                        ("x-arca-signature" = String, description = "base64 DER ECDSA signature"))),
              (status = 206, content_type = "application/octet-stream"),
              (status = 302, headers(("location" = String, description = "presigned GET (S3 store)"))),
              (status = 401), (status = 403), (status = 404),
              (status = 409, description = "not approved: the problem says why"), (status = 416), (status = 500), (status = 502)))]
pub async fn download(
    State(core): State<Core>,
    State(blobs): State<Blobs>,
    State(trusted): State<Trusted>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(&core, &blobs, &trusted, &principal, &context, &id, &headers).await
}

async fn serve(
    core: &Core,
    blobs: &Blobs,
    trusted: &Trusted,
    principal: &Principal,
    context: &RequestContext,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let row = downloadable(core, principal, id).await?;
    // The gate: Arca's signature over the recorded digest must verify with a trusted certificate.
    let signature = match signing::verify_stored(&core.db, &trusted.0, id, &row.sha256).await {
        Ok(signature) => {
            let event =
                context.event(principal, "artifacts.verify", id, "success", serde_json::json!({ "gate": "download" }));
            core.audit.record(event).await;
            signature
        }
        Err(reason) => {
            tracing::error!(artifact = %id, %reason, "download refused: signature verification failed");
            let details = serde_json::json!({ "gate": "download", "reason": reason });
            core.audit.record_durable(context.event(principal, "artifacts.verify", id, "failure", details)).await;
            return Err(ApiError::new(
                Code::SignatureInvalid,
                format!("download refused: Arca's signature does not verify ({reason})"),
            ));
        }
    };
    if let BlobStore::S3(store) = &*blobs.0 {
        // Straight from the store: a presigned GET that expires within a minute.
        let url = store
            .presign_get(id, content_disposition(&row.filename).to_str().unwrap_or("attachment"))
            .await
            .map_err(ApiError::store_unavailable)?;
        let mut response = StatusCode::FOUND.into_response();
        let h = response.headers_mut();
        h.insert(header::LOCATION, HeaderValue::from_str(&url).map_err(|_| ApiError::internal("bad presigned URL"))?);
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        digest_headers(h, &row.sha256, &signature);
        return Ok(response);
    }
    let size = row.size();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) => Some(parse_range(value, size).ok_or_else(|| {
            ApiError::new(Code::RangeNotSatisfiable, "invalid or unsatisfiable Range").with_header(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).unwrap_or(HeaderValue::from_static("*")),
            )
        })?),
        None => None,
    };
    let (start, end) = range.unwrap_or((0, size));
    let stream = match blobs.read(artifacts::blob_area(&row), id, row.wrapped_key.as_deref(), size, start, end).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::error!(artifact = %id, error = %e, "download refused: stored blob failed authentication");
            let details = serde_json::json!({ "error": e.to_string() });
            core.audit
                .record_durable(context.event(principal, "artifacts.integrity_failure", id, "error", details))
                .await;
            return Err(ApiError::new(Code::IntegrityError, "the stored artifact failed its integrity check"));
        }
    };
    let mut response = Body::from_stream(stream).into_response();
    *response.status_mut() = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_DISPOSITION, content_disposition(&row.filename));
    digest_headers(h, &row.sha256, &signature);
    if range.is_some() {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// A single-use download link.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadLink {
    /// Path to navigate to (`/api/download-links/<token>`): valid once, within 60 s.
    pub url: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct LinkClaims {
    /// Artifact id.
    a: String,
    /// User id of the caller who asked for the link.
    u: String,
    /// Expiry, Unix ms.
    e: i64,
    /// Nonce (single use).
    n: String,
}

fn seal(key: &[u8; 32], claims: &LinkClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"arca download link v1\0");
    mac.update(payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn open(key: &[u8; 32], token: &str) -> Option<LinkClaims> {
    let (payload, signature) = token.split_once('.')?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(b"arca download link v1\0");
    mac.update(payload.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// A short-lived (60 s), single-use link to download an approved artifact, bound to the
/// caller (for browsers: navigating to it streams the file to disk).
#[utoipa::path(post, path = "/api/artifacts/{id}/download-link", operation_id = "createDownloadLink",
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = DownloadLink), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn create_link(
    State(core): State<Core>,
    State(links): State<DownloadLinks>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<DownloadLink>, ApiError> {
    downloadable(&core, &principal, &id).await?;
    let expires_at = now_ms() + LINK_TTL_MS;
    let claims =
        LinkClaims { a: id, u: principal.user_id.clone(), e: expires_at, n: uuid::Uuid::new_v4().simple().to_string() };
    Ok(Json(DownloadLink { url: format!("/api/download-links/{}", seal(&links.0, &claims)), expires_at }))
}

/// A link expiring at `expires_at` is good at `now`: not expired, and not set further ahead
/// than a link's lifetime (a sealed claim from a misconfigured clock or an old key).
fn link_is_current(expires_at: i64, now: i64) -> bool {
    expires_at > now && expires_at <= now + LINK_TTL_MS
}

/// Downloads through a link from `POST …/download-link`: valid once, within its minute,
/// for the user who asked for it (still allowed to download), audited like any download.
#[utoipa::path(get, path = "/api/download-links/{token}", operation_id = "redeemDownloadLink",
    params(("token" = String, Path, description = "the link's token")),
    responses((status = 200, content_type = "application/octet-stream"), (status = 302), (status = 403),
              (status = 404), (status = 409), (status = 500), (status = 502)))]
pub async fn redeem_link(
    State(core): State<Core>,
    State(blobs): State<Blobs>,
    State(trusted): State<Trusted>,
    State(links): State<DownloadLinks>,
    Extension(context): Extension<RequestContext>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let invalid = || ApiError::new(Code::InvalidDownloadLink, "the download link is invalid, expired or already used");
    let claims = open(&links.0, &token).ok_or_else(invalid)?;
    if !link_is_current(claims.e, now_ms()) {
        return Err(invalid());
    }
    let used = with_pool!(&core.db, |pool| {
        sqlx::query(
        "INSERT INTO download_links (nonce, artifact_id, used_at) VALUES ($1, $2, $3) ON CONFLICT (nonce) DO NOTHING"
    )
    .bind(&claims.n)
    .bind(&claims.a)
    .bind(now_ms())
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 0)
    })?;
    if used {
        return Err(invalid());
    }
    let principal = access::principal_of_user(&core, &claims.u, None).await.map_err(|_| invalid())?;
    if !principal.can(Permission::ArtifactsDownload) {
        return Err(ApiError::new(Code::PermissionDenied, "this action needs the 'artifacts_download' permission"));
    }
    serve(&core, &blobs, &trusted, &principal, &context, &claims.a, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_expire_after_their_lifetime() {
        let now = 1_000_000;
        assert!(link_is_current(now + 1, now));
        assert!(link_is_current(now + LINK_TTL_MS, now));
        assert!(!link_is_current(now, now), "expired at this very moment");
        assert!(!link_is_current(now - 1, now));
        assert!(!link_is_current(now + LINK_TTL_MS + 1, now), "longer than a link lives");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn disposition_is_safe() {
        let v = content_disposition("a\"b;c\r\nd.tar.gz");
        let s = v.to_str().unwrap();
        assert!(s.starts_with("attachment; filename=\"a_b_c__d.tar.gz\""), "{s}");
    }

    #[test]
    fn links_are_sealed() {
        let key = [3u8; 32];
        let claims = LinkClaims { a: "x".into(), u: "u".into(), e: 1, n: "n".into() };
        let token = seal(&key, &claims);
        assert_eq!(open(&key, &token).unwrap().a, "x");
        assert!(open(&[4u8; 32], &token).is_none());
        let forged = token.replacen('e', "f", 1);
        assert!(open(&key, &forged).is_none() || forged == token);
    }
}
