//! API tokens for CI/CD: `arca_…`, shown once, stored as SHA-256, scoped to a subset of the
//! owner's permissions, expiring, revocable at once.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Access, Principal};
use crate::app::AppState;
use crate::db::{now_ms, Db};
use crate::error::{ApiError, ApiJson};
use crate::http::RequestContext;
use crate::rbac::{self, Permission};
use crate::routes::FunctionRouter;
use crate::sessions::{random_secret, secret_hash};
use crate::with_pool;

/// Every API token starts with this.
pub const PREFIX: &str = "arca_";

pub fn routes(router: FunctionRouter) -> FunctionRouter {
    let manage = Access::Permission(Permission::TokensManage);
    router.route(Method::POST, "/api/tokens", manage, create).route(Method::GET, "/api/tokens", manage, list).route(
        Method::DELETE,
        "/api/tokens/{id}",
        manage,
        revoke,
    )
}

/// A stored token (never its value).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl TokenRow {
    pub fn scopes(&self) -> Vec<Permission> {
        rbac::decode_scopes(&self.scopes)
    }
}

const COLUMNS: &str = "id, user_id, name, scopes, created_at, expires_at, revoked_at, last_used_at";

/// Finds the live token with this value and notes its use.
pub async fn authenticate(db: &Db, value: &str) -> Result<Option<TokenRow>, sqlx::Error> {
    let now = now_ms();
    let sql =
        format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2");
    let row: Option<TokenRow> =
        with_pool!(db, |pool| sqlx::query_as(&sql).bind(secret_hash(value)).bind(now).fetch_optional(pool).await)?;
    if let Some(row) = &row {
        // At most one write a minute per token keeps `last_used_at` cheap.
        if row.last_used_at.is_none_or(|t| now - t > 60_000) {
            with_pool!(db, |pool| sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&row.id)
                .execute(pool)
                .await
                .map(|_| ()))?;
        }
    }
    Ok(row)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for (e.g. the CI pipeline's name).
    pub name: String,
    /// Permissions the token carries; each must be one of the owner's.
    pub scopes: Vec<Permission>,
    /// Days until the token expires (required; at most `ARCA_TOKEN_MAX_DAYS`).
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

/// Creates an API token; its value is returned once.
#[utoipa::path(post, path = "/api/tokens", tag = "auth", security(("bearer" = [])), request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400), (status = 401), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    ApiJson(request): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("invalid_name", "name must be 1 to 100 printable characters"));
    }
    if request.scopes.is_empty() {
        return Err(ApiError::bad_request("invalid_scopes", "at least one scope is required"));
    }
    if let Some(p) = request.scopes.iter().find(|p| !principal.can(**p)) {
        return Err(ApiError::forbidden(
            "scope_not_permitted",
            format!("you do not hold '{}', so a token of yours cannot carry it", p.as_str()),
        ));
    }
    let max = state.config.limits.token_max_days;
    if request.expires_in_days == 0 || request.expires_in_days > max {
        return Err(ApiError::bad_request("invalid_expiry", format!("expires_in_days must be 1 to {max}")));
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
            serde_json::json!({
                "name": row.name, "scopes": row.scopes, "expires_at": row.expires_at,
            }),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(CreatedToken { info: row.into(), token: value })))
}

/// The caller's API tokens (never their values).
#[utoipa::path(get, path = "/api/tokens", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [TokenInfo]), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC");
    let rows: Vec<TokenRow> =
        with_pool!(&state.db, |pool| sqlx::query_as(&sql).bind(&principal.user_id).fetch_all(pool).await)?;
    Ok(Json(rows.into_iter().map(TokenInfo::from).collect()))
}

/// Revokes a token (one's own; admins may revoke any).
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn revoke(
    State(state): State<AppState>,
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
