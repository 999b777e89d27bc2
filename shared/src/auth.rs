//! The `auth` function: sign-in, refresh rotation, logout, identity, verification keys,
//! and API tokens.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Access, Credential, Principal};
use crate::app::AppState;
use crate::error::{ApiError, ApiJson};
use crate::http::RequestContext;
use crate::rbac::Permission;
use crate::routes::FunctionRouter;
use crate::sessions::{self, Issued, Refresh};
use crate::users::{self, Role};
use crate::{lockout, tokens};

/// Cookie that carries the refresh token for the SPA (httpOnly, Secure, SameSite=Strict).
pub const REFRESH_COOKIE: &str = "arca_refresh";

pub fn router() -> FunctionRouter {
    let router = FunctionRouter::new("auth")
        .route(Method::POST, "/api/auth/login", Access::Public, login)
        .route(Method::POST, "/api/auth/refresh", Access::Public, refresh)
        .route(Method::POST, "/api/auth/logout", Access::Authenticated, logout)
        .route(Method::GET, "/api/auth/me", Access::Authenticated, me)
        .route(Method::GET, "/api/auth/jwks", Access::Public, jwks);
    tokens::routes(router)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; single use: each refresh returns a new one.
    pub refresh_token: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token; when absent, the `arca_refresh` cookie is used.
    pub refresh_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub username: String,
    pub roles: Vec<Role>,
    pub permissions: Vec<Permission>,
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "invalid username or password")
}

/// A bcrypt hash of a random password at the production cost: checking an unknown user's
/// password against it costs the same as checking a real one (no enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash(uuid::Uuid::new_v4().to_string(), users::BCRYPT_COST).unwrap_or_default())
}

/// The token response plus the refresh cookie.
fn session_response(issued: &Issued) -> Response {
    let body = TokenResponse {
        access_token: issued.access_token.clone(),
        token_type: "Bearer".to_owned(),
        expires_in: crate::jwt::ACCESS_TTL_SECS,
        refresh_token: issued.refresh_token.clone(),
    };
    let cookie = refresh_cookie(&issued.refresh_token, issued.refresh_ttl_secs);
    ([(header::SET_COOKIE, cookie)], Json(body)).into_response()
}

fn refresh_cookie(value: &str, max_age: i64) -> HeaderValue {
    // `Secure` always: browsers honour it on https and on http://localhost.
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={value}; Path=/api/auth; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Exchanges a username and password for an access token and a refresh token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "invalid credentials"),
              (status = 429, description = "locked out or rate limited"), (status = 400), (status = 413), (status = 422)))]
pub async fn login(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let keys = lockout::keys(&request.username, &context.client_ip.to_string());
    let target = format!("user:{}", request.username.chars().take(64).collect::<String>());
    for key in &keys {
        if let Some(ms) = lockout::locked_for(&state.db, key).await? {
            let secs = u64::try_from(ms.div_euclid(1000) + 1).unwrap_or(1);
            state
                .audit
                .record_durable(context.anonymous_event(
                    "auth.lockout",
                    &target,
                    "denied",
                    serde_json::json!({ "key": key.split(':').next() }),
                ))
                .await;
            return Err(ApiError::too_many(
                "locked_out",
                format!("too many failed sign-ins; try again in {secs} s"),
                secs,
            ));
        }
    }
    let user = users::find_by_username(&state.db, &request.username).await?;
    let hash = user.as_ref().map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let password = request.password;
    let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(user) if matches && !user.disabled => user,
        _ => {
            let threshold = state.config.limits.lockout_threshold;
            lockout::record_failure(&state.db, &keys[0], threshold).await?;
            lockout::record_failure(&state.db, &keys[1], threshold.saturating_mul(4)).await?;
            state
                .audit
                .record_durable(context.anonymous_event("auth.login", &target, "failure", serde_json::Value::Null))
                .await;
            return Err(invalid_credentials());
        }
    };
    lockout::clear(&state.db, &keys[0]).await?;
    let issued = sessions::start(&state, &user).await?;
    let mut event = context.anonymous_event("auth.login", &target, "success", serde_json::Value::Null);
    event.actor.clone_from(&user.username);
    event.roles.clone_from(&user.roles);
    state.audit.record_durable(event).await;
    Ok(session_response(&issued))
}

/// Rotates a refresh token: returns a new access token and a new refresh token. Reusing
/// an old refresh token revokes its whole family.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401)))]
pub async fn refresh(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: RefreshRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::bad_request("malformed_json", "body must be {\"refresh_token\": \"…\"} or empty"))?
    };
    let presented = request
        .refresh_token
        .or_else(|| cookie_value(&headers, REFRESH_COOKIE))
        .ok_or_else(|| ApiError::unauthorized("invalid_refresh_token", "a refresh token is required"))?;
    match sessions::refresh(&state, &presented).await? {
        Refresh::Rotated(issued, _) => Ok(session_response(&issued)),
        Refresh::Reused { user_id, family_id } => {
            let username = users::find_by_id(&state.db, &user_id).await?.map(|u| u.username).unwrap_or_default();
            let mut event = context.anonymous_event(
                "auth.refresh_reuse",
                &format!("session:{family_id}"),
                "denied",
                serde_json::json!({ "user": username, "revoked_family": family_id }),
            );
            event.actor = username;
            state.audit.record_durable(event).await;
            tracing::warn!(family = %family_id, "refresh token reused: session revoked");
            Err(ApiError::unauthorized("refresh_token_reused", "refresh token already used: the session is revoked"))
        }
        Refresh::Invalid => Err(ApiError::unauthorized("invalid_refresh_token", "refresh token invalid or expired")),
    }
}

/// Ends the session: revokes its refresh-token family and this access token.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401)))]
pub async fn logout(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    if let Credential::Session { jti, sid, exp } = &principal.credential {
        sessions::revoke_family(&state.db, sid).await?;
        sessions::revoke_access(&state.db, jti, *exp).await?;
    }
    let clear = refresh_cookie("", 0);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}

/// The caller's identity, roles and effective permissions.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401)))]
pub async fn me(Extension(principal): Extension<Principal>) -> Json<Me> {
    Json(Me {
        id: principal.user_id,
        username: principal.username,
        roles: principal.roles,
        permissions: principal.permissions,
    })
}

/// Public keys that verify Arca access tokens (RFC 7517 JWK Set).
#[utoipa::path(get, path = "/api/auth/jwks", tag = "auth", responses((status = 200, content_type = "application/json")))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": [state.jwt.jwk.clone()] }))
}
