//! The `auth` function: login, current identity, public verification keys.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::Method;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Access, Principal};
use crate::app::AppState;
use crate::error::{ApiError, ApiJson};
use crate::routes::FunctionRouter;
use crate::users::{self, Role};

pub fn router() -> FunctionRouter {
    FunctionRouter::new("auth")
        .route(Method::POST, "/api/auth/login", Access::Public, login)
        .route(Method::GET, "/api/auth/me", Access::Authenticated, me)
        .route(Method::GET, "/api/auth/jwks", Access::Public, jwks)
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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub username: String,
    pub roles: Vec<Role>,
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "invalid username or password")
}

/// A bcrypt hash of a random password at the production cost: checking an unknown user's
/// password against it costs the same as checking a real one (no enumeration by timing).
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        bcrypt::hash(uuid::Uuid::new_v4().to_string(), users::BCRYPT_COST).unwrap_or_default()
    })
}

/// Exchanges a username and password for an access token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "invalid credentials"),
              (status = 400), (status = 413), (status = 422)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let user = users::find_by_username(&state.db, &request.username).await?;
    let hash = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let password = request.password;
    let matches =
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .map_err(ApiError::internal)?;
    let user = match user {
        Some(user) if matches && !user.disabled => user,
        _ => return Err(invalid_credentials()),
    };
    let (token, _) = state.jwt.issue(&user.id, &user.roles())?;
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".to_owned(),
        expires_in: crate::jwt::ACCESS_TTL_SECS,
    }))
}

/// The caller's identity.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401)))]
pub async fn me(Extension(principal): Extension<Principal>) -> Json<Me> {
    Json(Me {
        id: principal.user_id,
        username: principal.username,
        roles: principal.roles,
    })
}

/// Public keys that verify Arca access tokens (RFC 7517 JWK Set).
#[utoipa::path(get, path = "/api/auth/jwks", tag = "auth", responses((status = 200, content_type = "application/json")))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": [state.jwt.jwk.clone()] }))
}
