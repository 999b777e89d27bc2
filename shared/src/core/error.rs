//! The one error type of the HTTP API: every error leaves as `application/problem+json`
//! (RFC 9457) with a stable `code`. Each code is defined once, in [`Code`], with its HTTP
//! status and meaning; the OpenAPI document and README list them from here. Internal causes
//! are logged, never sent.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! codes {
    ($($variant:ident = $name:literal, $status:ident, $meaning:literal;)*) => {
        /// Every error code the API returns: clients switch on these.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable name (snake_case) sent as `code`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The HTTP status every response with this code carries.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }

            /// What the code means, for the API's documentation.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning,)* }
            }
        }
    };
}

codes! {
    // Requests that cannot be read.
    MalformedJson = "malformed_json", BAD_REQUEST, "The body is not valid JSON.";
    InvalidBody = "invalid_body", UNPROCESSABLE_ENTITY, "The JSON does not have the expected shape (the detail names the field).";
    InvalidField = "invalid_field", BAD_REQUEST, "A field is out of its bounds or format (the detail names it and the rule).";
    InvalidQuery = "invalid_query", BAD_REQUEST, "A query parameter is out of its bounds or format.";
    BadRequest = "bad_request", BAD_REQUEST, "The request is malformed.";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "Wrong Content-Type (JSON bodies need application/json).";
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, "The request body is larger than allowed.";
    NotFound = "not_found", NOT_FOUND, "No such route or resource (or not visible to the caller).";
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, "The route exists, not with this method.";
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT, "The request took longer than the server allows.";
    // Who the caller is.
    Unauthorized = "unauthorized", UNAUTHORIZED, "Authentication is required.";
    InvalidToken = "invalid_token", UNAUTHORIZED, "The access token or API token is missing, invalid, expired or revoked.";
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED, "Wrong username or password (or the account is disabled).";
    InvalidRefreshToken = "invalid_refresh_token", UNAUTHORIZED, "The refresh token is missing, invalid or expired.";
    RefreshTokenReused = "refresh_token_reused", UNAUTHORIZED, "An old refresh token was used again: the whole session is revoked.";
    InvalidEventSender = "invalid_event_sender", UNAUTHORIZED, "An event or storage notification without valid sender credentials.";
    // What the caller may do.
    Forbidden = "forbidden", FORBIDDEN, "Not allowed.";
    PermissionDenied = "permission_denied", FORBIDDEN, "The caller lacks the permission the route needs (the detail names it).";
    IpNotAllowed = "ip_not_allowed", FORBIDDEN, "The client address is not in the allowlist.";
    IpNotAllowedForRole = "ip_not_allowed_for_role", FORBIDDEN, "A role the caller holds may not be used from this address.";
    NotOwner = "not_owner", FORBIDDEN, "Only the owner (or an admin) may do this.";
    ScopeNotPermitted = "scope_not_permitted", FORBIDDEN, "An API token cannot carry a permission its owner lacks.";
    InteractiveSessionRequired = "interactive_session_required", FORBIDDEN, "Only a signed-in session may do this, not an API token.";
    InvalidUploadUrl = "invalid_upload_url", FORBIDDEN, "The upload URL's signature does not verify.";
    UploadUrlExpired = "upload_url_expired", FORBIDDEN, "The upload URL has expired; ask for a new one.";
    InvalidDownloadLink = "invalid_download_link", FORBIDDEN, "The download link is invalid, expired or already used.";
    // Limits.
    RateLimited = "rate_limited", TOO_MANY_REQUESTS, "Too many requests; `retry_after` says when to retry.";
    LockedOut = "locked_out", TOO_MANY_REQUESTS, "Too many failed sign-ins; `retry_after` says when to retry.";
    Busy = "busy", TOO_MANY_REQUESTS, "Another replica is working on this event; retry after `retry_after`.";
    // State of the resource.
    Conflict = "conflict", CONFLICT, "The request conflicts with the resource's state.";
    InvalidState = "invalid_state", CONFLICT, "The artifact's status does not allow this (the detail says which status).";
    ConcurrentChange = "concurrent_change", CONFLICT, "The resource changed meanwhile; retry.";
    ArtifactExists = "artifact_exists", CONFLICT, "name@version exists and is immutable.";
    NameOwned = "name_owned", FORBIDDEN, "The artifact name belongs to another publisher; only its owners or an admin may add versions.";
    NotApproved = "not_approved", CONFLICT, "The artifact is not approved; `status` and the detail say why.";
    UploadMissing = "upload_missing", CONFLICT, "The bytes (or some parts) have not been uploaded yet.";
    UploadUrlUsed = "upload_url_used", CONFLICT, "The upload URL was used already, or an upload is in progress.";
    NotMultipart = "not_multipart", CONFLICT, "The artifact is not uploaded in parts.";
    UsernameTaken = "username_taken", CONFLICT, "A user with this name exists.";
    LastAdmin = "last_admin", CONFLICT, "The last enabled admin cannot be disabled or demoted.";
    DigestMismatch = "digest_mismatch", UNPROCESSABLE_ENTITY, "The bytes do not match the declared SHA-256 (the artifact failed).";
    SizeMismatch = "size_mismatch", BAD_REQUEST, "The body's length differs from the declared size.";
    UploadInterrupted = "upload_interrupted", BAD_REQUEST, "The upload stopped before all bytes arrived; send them again.";
    RangeNotSatisfiable = "range_not_satisfiable", RANGE_NOT_SATISFIABLE, "The Range header cannot be served.";
    InvalidEvent = "invalid_event", BAD_REQUEST, "The CloudEvent or storage notification is malformed.";
    WeakPassword = "weak_password", BAD_REQUEST, "The password is too short or too long.";
    InvalidUsername = "invalid_username", BAD_REQUEST, "The username does not follow the rules.";
    InvalidRoles = "invalid_roles", BAD_REQUEST, "At least one valid role is required.";
    InvalidScopes = "invalid_scopes", BAD_REQUEST, "At least one valid scope is required.";
    InvalidExpiry = "invalid_expiry", BAD_REQUEST, "The expiry is out of bounds.";
    InvalidName = "invalid_name", BAD_REQUEST, "The name is empty, too long or has control characters.";
    // Arca's own trouble.
    SignatureInvalid = "signature_invalid", INTERNAL_SERVER_ERROR, "Download refused: Arca's signature over the artifact does not verify.";
    IntegrityError = "integrity_error", INTERNAL_SERVER_ERROR, "The stored artifact failed its integrity check.";
    StoreUnavailable = "store_unavailable", BAD_GATEWAY, "The object store did not answer; retry.";
    ScannerUnavailable = "scanner_unavailable", SERVICE_UNAVAILABLE, "The scanner (Trivy or its vulnerability DB) is not available; the artifact can be retried.";
    Unavailable = "unavailable", SERVICE_UNAVAILABLE, "A dependency is down; retry.";
    Internal = "internal", INTERNAL_SERVER_ERROR, "Internal error (the cause is logged with the request id).";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a handler returns; it becomes a problem+json response.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    pub code: Code,
    /// Human-readable explanation, safe to show to the caller.
    pub detail: String,
    /// Extra members merged into the problem document (e.g. `retry_after`).
    pub extra: Option<serde_json::Value>,
    /// Extra response headers (e.g. `Retry-After`).
    pub headers: Vec<(axum::http::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), extra: None, headers: Vec::new() }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Code::NotFound, detail)
    }

    /// The object store failed; the cause is logged with its chain (an S3 error's code is
    /// in its source, not its top line), the caller is told to retry.
    pub fn store_unavailable(cause: impl std::fmt::Display) -> Self {
        let cause = format!("{cause:#}");
        tracing::error!(error = %cause, "object store request failed");
        Self::new(Code::StoreUnavailable, "the object store did not answer; retry")
    }

    /// A failure whose cause must stay on the server: logged here, sent as a bare 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(Code::Internal, "internal server error")
    }

    pub fn with_header(mut self, name: axum::http::HeaderName, value: impl Into<HeaderValue>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 429 with `Retry-After` and `retry_after`.
    pub fn too_many(code: Code, detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(code, detail)
            .with_header(header::RETRY_AFTER, retry_after_secs)
            .with_extra(json!({ "retry_after": retry_after_secs }))
    }

    pub fn with_extra(mut self, extra: serde_json::Value) -> Self {
        self.extra = Some(extra);
        self
    }

    /// The problem document for a bare status (errors raised outside handlers).
    pub fn from_status(status: StatusCode) -> Self {
        let (code, detail) = match status {
            StatusCode::NOT_FOUND => (Code::NotFound, "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => (Code::MethodNotAllowed, "method not allowed on this route"),
            StatusCode::PAYLOAD_TOO_LARGE => (Code::PayloadTooLarge, "request body too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (Code::UnsupportedMediaType, "unsupported content type"),
            StatusCode::REQUEST_TIMEOUT => (Code::RequestTimeout, "request timed out"),
            StatusCode::TOO_MANY_REQUESTS => (Code::RateLimited, "too many requests"),
            StatusCode::UNAUTHORIZED => (Code::Unauthorized, "authentication required"),
            StatusCode::FORBIDDEN => (Code::Forbidden, "not allowed"),
            StatusCode::SERVICE_UNAVAILABLE => (Code::Unavailable, "service unavailable"),
            StatusCode::CONFLICT => (Code::Conflict, "conflict"),
            StatusCode::RANGE_NOT_SATISFIABLE => (Code::RangeNotSatisfiable, "range not satisfiable"),
            StatusCode::UNPROCESSABLE_ENTITY => (Code::InvalidBody, "the body does not have the expected shape"),
            StatusCode::BAD_GATEWAY => (Code::StoreUnavailable, "an upstream service did not answer; retry"),
            s if s.is_client_error() => (Code::BadRequest, "bad request"),
            _ => (Code::Internal, "internal server error"),
        };
        Self::new(code, detail)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(format_args!("database: {e}"))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(format_args!("{e:#}"))
    }
}

impl From<super::lifecycle::ApplyError> for ApiError {
    fn from(e: super::lifecycle::ApplyError) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let mut body = json!({
            "type": format!("urn:arca:problem:{}", self.code),
            "title": title,
            "status": status.as_u16(),
            "code": self.code.as_str(),
            "detail": self.detail,
        });
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) = (self.extra, body.as_object_mut()) {
            obj.extend(extra);
        }
        let mut response = (status, body.to_string()).into_response();
        // For the request's audit entry (which error it was, not just the status).
        response.extensions_mut().insert(self.code);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// `Json` whose rejections are problems: malformed JSON → 400, wrong shape → 422,
/// wrong content type → 415, oversize body → 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonSyntaxError(_) => ApiError::new(Code::MalformedJson, "request body is not valid JSON"),
        // serde's message names the field and the expected type, never server internals.
        JsonRejection::JsonDataError(e) => ApiError::new(Code::InvalidBody, e.body_text()),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::new(Code::UnsupportedMediaType, "expected Content-Type: application/json")
        }
        other => ApiError::from_status(other.status()),
    }
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_errors_carry_their_status() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate code names");
        for code in Code::ALL {
            assert!(code.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
            assert!(!code.meaning().is_empty());
        }
        // Every status the framework can produce maps to a code of that status.
        for status in [400, 401, 403, 404, 405, 408, 409, 413, 415, 416, 422, 429, 500, 502, 503] {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(ApiError::from_status(status).status(), status, "{status}");
        }
    }
}

/// Deserializes an integer that a JSON client may spell with a zero fraction (`8838.0`):
/// JSON Schema's `integer` allows it, so the API does too. Anything else that is not a
/// whole number in range is refused.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i128>,
{
    use serde::de::Error;
    let number = <serde_json::Number as serde::Deserialize>::deserialize(deserializer)?;
    let whole = number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
        .or_else(|| {
            // 2^53 bounds the floats that still hold every integer exactly.
            number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0).map(|f| f as i128)
        })
        .ok_or_else(|| D::Error::custom(format!("expected a whole number, got {number}")))?;
    T::try_from(whole).map_err(|_| D::Error::custom(format!("{number} is out of range")))
}

#[cfg(test)]
mod whole_number_tests {
    #[derive(serde::Deserialize)]
    struct Sized {
        #[serde(deserialize_with = "super::whole_number")]
        size: u64,
    }

    #[test]
    fn zero_fractions_are_whole_numbers_and_nothing_else_is() {
        let parse = |json: &str| serde_json::from_str::<Sized>(json).map(|s| s.size);
        assert_eq!(parse(r#"{"size": 8838}"#).unwrap(), 8838);
        assert_eq!(parse(r#"{"size": 8838.0}"#).unwrap(), 8838);
        assert!(parse(r#"{"size": 8838.5}"#).is_err());
        assert!(parse(r#"{"size": -1}"#).is_err());
        assert!(parse(r#"{"size": "8838"}"#).is_err());
        assert!(parse(r#"{"size": 1e300}"#).is_err());
    }
}
