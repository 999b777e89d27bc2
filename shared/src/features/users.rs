//! The `users` function: accounts and roles (admins), and the list of roles.

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::config::MIN_PASSWORD_LEN;
use crate::core::db::{now_ms, Db};
use crate::core::error::{ApiError, ApiJson, Code};
use crate::core::rbac::{self, encode_roles, Permission, Principal, Role};
use crate::core::users::{create, find_by_id, find_by_username, hash_password, UserRow};
use crate::core::{sessions, tokens};
use crate::web::access::Access;
use crate::web::http::RequestContext;
use crate::web::routes::FunctionRouter;
use crate::web::state::Core;
use crate::with_pool;

pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
{
    let manage = Access::Permission(Permission::UsersManage);
    FunctionRouter::new("users")
        .route(manage, routes!(list))
        .route(manage, routes!(create_user))
        .route(manage, routes!(update))
        .route(Access::Authenticated, routes!(roles))
}

/// An account as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub roles: Vec<Role>,
    pub disabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            roles: row.roles(),
            id: row.id,
            username: row.username,
            disabled: row.disabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{2,63}$")]
    pub username: String,
    #[schema(min_length = 12, max_length = 72)]
    pub password: String,
    #[schema(min_items = 1)]
    pub roles: Vec<Role>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[schema(min_items = 1)]
    pub roles: Option<Vec<Role>>,
    #[schema(min_length = 12, max_length = 72)]
    pub password: Option<String>,
    pub disabled: Option<bool>,
    /// With a password change or disabling: also revoke the user's API tokens (default
    /// true; a client should ask).
    pub revoke_api_tokens: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleInfo {
    pub role: Role,
    pub permissions: Vec<Permission>,
}

fn validate_username(name: &str) -> Result<(), ApiError> {
    let ok = (3..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::InvalidUsername,
            "username: 3 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
        ))
    }
}

/// Passwords: at least 12 characters, at most 72 bytes (bcrypt's limit).
pub fn validate_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > 72 {
        return Err(ApiError::new(
            Code::WeakPassword,
            format!("password must be at least {MIN_PASSWORD_LEN} characters and at most 72 bytes"),
        ));
    }
    Ok(())
}

fn validate_roles(roles: &[Role]) -> Result<(), ApiError> {
    if roles.is_empty() {
        return Err(ApiError::new(Code::InvalidRoles, "at least one role is required"));
    }
    Ok(())
}

pub async fn list_all(db: &Db) -> Result<Vec<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM users ORDER BY username", crate::core::users::COLUMNS);
    with_pool!(db, |pool| sqlx::query_as::<_, UserRow>(&sql).fetch_all(pool).await)
}

/// All accounts.
#[utoipa::path(get, path = "/api/users", operation_id = "listUsers",
    responses((status = 200, body = [User]), (status = 401), (status = 403)))]
pub async fn list(State(state): State<Core>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(list_all(&state.db).await?.into_iter().map(User::from).collect()))
}

/// Creates an account.
#[utoipa::path(post, path = "/api/users", operation_id = "createUser", request_body = NewUser,
    responses((status = 201, body = User), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn create_user(
    State(state): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    ApiJson(request): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    validate_username(&request.username)?;
    validate_password(&request.password)?;
    validate_roles(&request.roles)?;
    if find_by_username(&state.db, &request.username).await?.is_some() {
        return Err(ApiError::new(Code::UsernameTaken, "a user with this name exists"));
    }
    let row = create(&state.db, &request.username, &request.password, &request.roles).await?;
    state
        .audit
        .record_durable(context.event(
            &principal,
            "users.create",
            &row.username,
            "success",
            serde_json::json!({ "roles": row.roles }),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(row.into())))
}

async fn enabled_admins(db: &Db) -> Result<usize, sqlx::Error> {
    Ok(list_all(db).await?.iter().filter(|u| !u.disabled && u.roles().contains(&Role::Admin)).count())
}

/// Changes roles, password or the disabled flag. Takes effect on existing tokens at once.
#[utoipa::path(put, path = "/api/users/{id}", operation_id = "updateUser", request_body = UserUpdate,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = User), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn update(
    State(state): State<Core>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UserUpdate>,
) -> Result<Json<User>, ApiError> {
    let user = find_by_id(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such user"))?;
    let was_admin = !user.disabled && user.roles().contains(&Role::Admin);
    let roles = request.roles.clone().unwrap_or_else(|| user.roles());
    validate_roles(&roles)?;
    let disabled = request.disabled.unwrap_or(user.disabled);
    let stays_admin = !disabled && roles.contains(&Role::Admin);
    if was_admin && !stays_admin && enabled_admins(&state.db).await? <= 1 {
        return Err(ApiError::new(Code::LastAdmin, "the last enabled admin cannot be disabled or demoted"));
    }
    let password_hash = match &request.password {
        Some(p) => {
            validate_password(p)?;
            Some(hash_password(p).await?)
        }
        None => None, // kept
    };
    let now = now_ms();
    with_pool!(&state.db, |pool| sqlx::query(
        "UPDATE users SET roles = $1, password_hash = COALESCE($2, password_hash), disabled = $3, updated_at = $4 \
         WHERE id = $5"
    )
    .bind(encode_roles(&roles))
    .bind(&password_hash)
    .bind(disabled)
    .bind(now)
    .bind(&id)
    .execute(pool)
    .await
    .map(|_| ()))?;
    let mut tokens_revoked = 0;
    if request.password.is_some() || disabled {
        sessions::revoke_user(&state.db, &id).await?;
        if request.revoke_api_tokens.unwrap_or(true) {
            tokens_revoked = tokens::revoke_user(&state.db, &id).await?;
        }
    }
    let details = serde_json::json!({
        "roles_before": user.roles, "roles_after": encode_roles(&roles),
        "password_changed": request.password.is_some(), "disabled": disabled, "api_tokens_revoked": tokens_revoked,
    });
    let action = if roles != user.roles() { "users.role_change" } else { "users.update" };
    state.audit.record_durable(context.event(&principal, action, &user.username, "success", details)).await;
    let updated = find_by_id(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such user"))?;
    Ok(Json(updated.into()))
}

/// The roles and the permissions each grants.
#[utoipa::path(get, path = "/api/roles", operation_id = "listRoles",
    responses((status = 200, body = [RoleInfo]), (status = 401)))]
pub async fn roles() -> Json<Vec<RoleInfo>> {
    Json(Role::ALL.into_iter().map(|role| RoleInfo { role, permissions: rbac::permissions(role).to_vec() }).collect())
}
