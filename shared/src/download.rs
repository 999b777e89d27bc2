//! The `download` function: approved artifacts only, streamed and decrypted with `Range`
//! support; every segment is authenticated before its bytes are sent.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::access::{Access, Principal};
use crate::app::AppState;
use crate::artifacts::{self, Status};
use crate::error::ApiError;
use crate::http::RequestContext;
use crate::rbac::Permission;
use crate::routes::FunctionRouter;
use crate::storage::BlobStore;

pub fn router() -> FunctionRouter {
    FunctionRouter::new("download").route(
        Method::GET,
        "/api/artifacts/{id}/download",
        Access::Permission(Permission::ArtifactsDownload),
        download,
    )
}

/// Lifetime of a presigned download URL (S3 store).
const PRESIGNED_GET_TTL: std::time::Duration = std::time::Duration::from_secs(300);

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

/// Downloads an approved artifact (supports `Range`).
#[utoipa::path(get, path = "/api/artifacts/{id}/download", tag = "artifacts", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, content_type = "application/octet-stream"), (status = 206), (status = 401), (status = 403),
              (status = 404), (status = 409, description = "not approved: the problem says why"), (status = 416)))]
pub async fn download(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = artifacts::find(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    let status = row.status();
    if status != Status::Approved {
        if !principal.can(Permission::ArtifactsReadAll) {
            return Err(ApiError::not_found("no such artifact"));
        }
        let why =
            row.status_reason.clone().unwrap_or_else(|| "it has not passed verification, scanning and policy".into());
        return Err(ApiError::conflict("not_approved", format!("artifact is {}: {why}", status.as_str()))
            .with_extra(serde_json::json!({ "status": status.as_str() })));
    }
    // The gate: Arca's signature over the recorded digest must verify with a trusted certificate.
    let signature = match crate::signing::verify_artifact(&state, &id, &row.sha256).await {
        Ok(signature) => {
            state
                .audit
                .record(context.event(
                    &principal,
                    "artifacts.verify",
                    &id,
                    "success",
                    serde_json::json!({ "gate": "download" }),
                ))
                .await;
            signature
        }
        Err(reason) => {
            tracing::error!(artifact = %id, %reason, "download refused: signature verification failed");
            state
                .audit
                .record_durable(context.event(
                    &principal,
                    "artifacts.verify",
                    &id,
                    "failure",
                    serde_json::json!({ "gate": "download", "reason": reason }),
                ))
                .await;
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "signature_invalid",
                format!("download refused: Arca's signature does not verify ({reason})"),
            ));
        }
    };
    if let BlobStore::S3(store) = &state.store {
        // Straight from the store: a presigned GET that expires within minutes.
        let url = store
            .presign_get(&id, content_disposition(&row.filename).to_str().unwrap_or("attachment"), PRESIGNED_GET_TTL)
            .await
            .map_err(ApiError::store_unavailable)?;
        let mut response = StatusCode::FOUND.into_response();
        let h = response.headers_mut();
        h.insert(header::LOCATION, HeaderValue::from_str(&url).map_err(|_| ApiError::internal("bad presigned URL"))?);
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        digest_headers(h, &row.sha256, &signature);
        return Ok(response);
    }
    let size = u64::try_from(row.size).unwrap_or(0);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) => Some(parse_range(value, size).ok_or_else(|| {
            ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable", "invalid or unsatisfiable Range")
                .with_header(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{size}")).unwrap_or(HeaderValue::from_static("*")),
                )
        })?),
        None => None,
    };
    let (start, end) = range.unwrap_or((0, size));
    let stream =
        match state.store.read(artifacts::blob_area(&row), &id, row.wrapped_key.as_deref(), size, start, end).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::error!(artifact = %id, error = %e, "download refused: stored blob failed authentication");
                state
                    .audit
                    .record_durable(context.event(
                        &principal,
                        "artifacts.integrity_failure",
                        &id,
                        "error",
                        serde_json::json!({ "error": e.to_string() }),
                    ))
                    .await;
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "integrity_error",
                    "the stored artifact failed its integrity check",
                ));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
