//! The `auth` function: sign-in, refresh rotation, logout, identity, verification keys,
//! and API tokens. The only holder of the access-token signing key.

use std::sync::OnceLock;

use axum::extract::{FromRef, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::db::now_ms;
use crate::core::error::{ApiError, ApiJson, Code};
use crate::core::lockout;
use crate::core::rbac::{self, Credential, Permission, Principal, Role};
use crate::core::sessions::{self, random_secret, secret_hash, Issued, Refresh};
use crate::core::tokens::{self, TokenRow, COLUMNS, PREFIX};
use crate::core::users;
use crate::web::access::Access;
use crate::web::http::RequestContext;
use crate::web::routes::FunctionRouter;
use crate::web::state::{Core, Issuer};
use crate::with_pool;

/// Cookie that carries the refresh token for the SPA (httpOnly, Secure, SameSite=Strict).
pub const REFRESH_COOKIE: &str = "arca_refresh";

/// Longest username or password a sign-in may carry (stored nowhere at that length).
const MAX_CREDENTIAL_LEN: usize = 256;

pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Issuer: FromRef<S>,
{
    let manage = Access::Permission(Permission::TokensManage);
    FunctionRouter::new("auth")
        .route(Access::Public, routes!(login))
        .route(Access::Public, routes!(refresh))
        .route(Access::Authenticated, routes!(logout))
        .route(Access::Authenticated, routes!(me))
        .route(Access::Public, routes!(jwks))
        .route(manage, routes!(create_token))
        .route(manage, routes!(list_tokens))
        .route(manage, routes!(revoke_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(max_length = 256)]
    pub username: String,
    #[schema(max_length = 256)]
    pub password: String,
    /// For clients that are not browsers (the CLI): the refresh token is returned in the
    /// body too. Otherwise it travels only in the `HttpOnly` cookie, out of page scripts'
    /// reach.
    #[serde(default)]
    pub refresh_token_in_body: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; single use: each refresh returns a new one. Only for a login that asked for
    /// it (`refresh_token_in_body`) and a refresh that sent it in the body; browsers get it
    /// as the `arca_refresh` cookie alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
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
    ApiError::new(Code::InvalidCredentials, "invalid username or password")
}

/// A bcrypt hash of a random password at the production cost: checking an unknown user's
/// password against it costs the same as checking a real one (no enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash(uuid::Uuid::new_v4().to_string(), users::BCRYPT_COST).unwrap_or_default())
}

/// The token response (the refresh token in it only when `in_body`) plus the refresh cookie.
fn session_response(issued: &Issued, in_body: bool) -> Response {
    let body = TokenResponse {
        access_token: issued.access_token.clone(),
        token_type: "Bearer".to_owned(),
        expires_in: issued.access_ttl_secs,
        refresh_token: in_body.then(|| issued.refresh_token.clone()),
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

/// Refuses a request a browser made for another site's page (`Sec-Fetch-Site: cross-site`):
/// the refresh cookie is `SameSite=Strict` already; this also covers a login forced on a
/// browser by another site.
fn refuse_cross_site(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) if site.eq_ignore_ascii_case("cross-site") => {
            Err(ApiError::new(Code::Forbidden, "sign-in requests from another site's page are refused"))
        }
        _ => Ok(()),
    }
}

/// Exchanges a username and password for an access token and a refresh token.
#[utoipa::path(post, path = "/api/auth/login", operation_id = "login", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "invalid credentials"),
              (status = 403, description = "from another site's page"),
              (status = 429, description = "locked out or rate limited"), (status = 400), (status = 413), (status = 422)))]
pub async fn login(
    State(state): State<Core>,
    State(issuer): State<Issuer>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&headers)?;
    if request.username.len() > MAX_CREDENTIAL_LEN || request.password.len() > MAX_CREDENTIAL_LEN {
        return Err(ApiError::new(Code::InvalidField, "username and password: at most 256 bytes each"));
    }
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
                Code::LockedOut,
                format!("too many failed sign-ins; try again in {secs} s"),
                secs,
            ));
        }
    }
    let (user, hash) = match users::credentials(&state.db, &request.username).await? {
        Some((user, hash)) => (Some(user), hash),
        None => (None, dummy_hash().to_owned()),
    };
    let password = request.password;
    let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(user) if matches && !user.disabled => user,
        _ => {
            let threshold = state.config.limits.lockout_threshold;
            for (key, factor) in keys.iter().zip(lockout::THRESHOLD_FACTORS) {
                lockout::record_failure(&state.db, key, threshold.saturating_mul(factor)).await?;
            }
            state
                .audit
                .record_durable(context.anonymous_event("auth.login", &target, "failure", serde_json::Value::Null))
                .await;
            return Err(invalid_credentials());
        }
    };
    lockout::clear(&state.db, &keys[0]).await?;
    lockout::clear(&state.db, &keys[2]).await?;
    let issued = sessions::start(&state.db, &issuer.0, state.config.limits.refresh_ttl, &user).await?;
    let mut event = context.anonymous_event("auth.login", &target, "success", serde_json::Value::Null);
    event.actor.clone_from(&user.username);
    event.roles.clone_from(&user.roles);
    state.audit.record_durable(event).await;
    Ok(session_response(&issued, request.refresh_token_in_body))
}

/// Rotates a refresh token: returns a new access token and a new refresh token. Reusing
/// an old refresh token revokes its whole family.
#[utoipa::path(post, path = "/api/auth/refresh", operation_id = "refreshSession", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401), (status = 403, description = "from another site's page")))]
pub async fn refresh(
    State(state): State<Core>,
    State(issuer): State<Issuer>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: RefreshRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::new(Code::MalformedJson, "body must be {\"refresh_token\": \"…\"} or empty"))?
    };
    let in_body = request.refresh_token.is_some();
    if !in_body {
        refuse_cross_site(&headers)?;
    }
    let presented = request
        .refresh_token
        .or_else(|| cookie_value(&headers, REFRESH_COOKIE))
        .ok_or_else(|| ApiError::new(Code::InvalidRefreshToken, "a refresh token is required"))?;
    match sessions::refresh(&state.db, &issuer.0, state.config.limits.refresh_ttl, &presented).await? {
        Refresh::Rotated(issued, _) => Ok(session_response(&issued, in_body)),
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
            Err(ApiError::new(Code::RefreshTokenReused, "refresh token already used: the session is revoked"))
        }
        Refresh::Invalid => Err(ApiError::new(Code::InvalidRefreshToken, "refresh token invalid or expired")),
    }
}

/// Ends the session: revokes its refresh-token family and this access token.
#[utoipa::path(post, path = "/api/auth/logout", operation_id = "logout",
    responses((status = 204), (status = 401)))]
pub async fn logout(
    State(state): State<Core>,
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
#[utoipa::path(get, path = "/api/auth/me", operation_id = "getCurrentUser",
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
#[utoipa::path(get, path = "/api/auth/jwks", operation_id = "getJwks", responses((status = 200, body = Object, content_type = "application/json")))]
pub async fn jwks(State(issuer): State<Issuer>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": [issuer.0.verifier.jwk.clone()] }))
}

// ---- API tokens for CI/CD ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for (e.g. the CI pipeline's name), 1 to 100 printable characters.
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    pub name: String,
    /// Permissions the token carries; each must be one of the owner's.
    #[schema(min_items = 1)]
    pub scopes: Vec<Permission>,
    /// Days until the token expires (1 to `ARCA_TOKEN_MAX_DAYS`, 90 unless configured).
    #[schema(minimum = 1, maximum = 90)]
    #[serde(deserialize_with = "crate::core::error::whole_number")]
    pub expires_in_days: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Permission>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The token itself: shown only in this response.
    pub token: String,
}

impl From<TokenRow> for TokenInfo {
    fn from(row: TokenRow) -> Self {
        Self {
            scopes: row.scopes(),
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// Creates an API token; its value is returned once. Only a signed-in session may create
/// tokens: a token cannot mint successors that would outlive its own revocation.
#[utoipa::path(post, path = "/api/tokens", operation_id = "createToken", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400), (status = 401), (status = 403)))]
pub async fn create_token(
    State(state): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    ApiJson(request): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    if !matches!(principal.credential, Credential::Session { .. }) {
        return Err(ApiError::new(
            Code::InteractiveSessionRequired,
            "API tokens are created from a signed-in session, not with another token",
        ));
    }
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::new(Code::InvalidName, "name must be 1 to 100 printable characters"));
    }
    if request.scopes.is_empty() {
        return Err(ApiError::new(Code::InvalidScopes, "at least one scope is required"));
    }
    if let Some(p) = request.scopes.iter().find(|p| !principal.can(**p)) {
        return Err(ApiError::new(
            Code::ScopeNotPermitted,
            format!("you do not hold '{}', so a token of yours cannot carry it", p.as_str()),
        ));
    }
    let max = state.config.limits.token_max_days;
    if request.expires_in_days == 0 || request.expires_in_days > max {
        return Err(ApiError::new(Code::InvalidExpiry, format!("expires_in_days must be 1 to {max}")));
    }
    let mut scopes = request.scopes;
    scopes.sort();
    scopes.dedup();
    let value = random_secret(PREFIX);
    let now = now_ms();
    let row = TokenRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: principal.user_id.clone(),
        name: name.to_owned(),
        scopes: rbac::encode_scopes(&scopes),
        created_at: now,
        expires_at: now + i64::from(request.expires_in_days) * 86_400_000,
        revoked_at: None,
        last_used_at: None,
    };
    with_pool!(&state.db, |pool| sqlx::query(
        "INSERT INTO api_tokens (id, user_id, name, token_hash, scopes, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(&row.id)
    .bind(&row.user_id)
    .bind(&row.name)
    .bind(secret_hash(&value))
    .bind(&row.scopes)
    .bind(row.created_at)
    .bind(row.expires_at)
    .execute(pool)
    .await
    .map(|_| ()))?;
    state
        .audit
        .record_durable(context.event(
            &principal,
            "tokens.create",
            &row.id,
            "success",
            serde_json::json!({ "name": row.name, "scopes": row.scopes, "expires_at": row.expires_at }),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(CreatedToken { info: row.into(), token: value })))
}

/// The caller's API tokens (never their values).
#[utoipa::path(get, path = "/api/tokens", operation_id = "listTokens",
    responses((status = 200, body = [TokenInfo]), (status = 401), (status = 403)))]
pub async fn list_tokens(
    State(state): State<Core>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC");
    let rows: Vec<TokenRow> =
        with_pool!(&state.db, |pool| sqlx::query_as(&sql).bind(&principal.user_id).fetch_all(pool).await)?;
    Ok(Json(rows.into_iter().map(TokenInfo::from).collect()))
}

/// Revokes a token (one's own; admins may revoke any).
#[utoipa::path(delete, path = "/api/tokens/{id}", operation_id = "revokeToken",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn revoke_token(
    State(state): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let owner: Option<String> =
        with_pool!(&state.db, |pool| sqlx::query_scalar("SELECT user_id FROM api_tokens WHERE id = $1")
            .bind(&id)
            .fetch_optional(pool)
            .await)?;
    match owner {
        Some(owner) if owner == principal.user_id || principal.is_admin() => {}
        _ => return Err(ApiError::not_found("no such token")),
    }
    with_pool!(&state.db, |pool| sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"
    )
    .bind(now_ms())
    .bind(&id)
    .execute(pool)
    .await
    .map(|_| ()))?;
    state
        .audit
        .record_durable(context.event(&principal, "tokens.revoke", &id, "success", serde_json::Value::Null))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Prunes expired sessions, login throttles and rate windows (the `auth` function's job).
pub async fn prune(core: &Core) -> anyhow::Result<()> {
    sessions::prune(&core.db).await?;
    core.limiter.prune().await?;
    Ok(())
}

/// Whether `token` looks like an API token (rather than an access token).
pub fn is_api_token(token: &str) -> bool {
    token.starts_with(tokens::PREFIX)
}
