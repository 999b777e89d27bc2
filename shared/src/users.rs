//! Accounts: storage and the first admin.

use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{now_ms, Db};
use crate::with_pool;

/// bcrypt work factor for every stored password.
pub const BCRYPT_COST: u32 = 12;

/// The four roles of ARCHITECTURE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Publisher,
    Consumer,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Publisher, Role::Consumer, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Publisher => "publisher",
            Role::Consumer => "consumer",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Roles as stored: a comma-separated list.
pub fn encode_roles(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

pub fn decode_roles(s: &str) -> Vec<Role> {
    s.split(',').filter_map(Role::parse).collect()
}

/// A stored account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub roles: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    pub fn roles(&self) -> Vec<Role> {
        decode_roles(&self.roles)
    }
}

pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(pool)
        .await)
}

pub async fn find_by_id(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await)
}

/// Inserts a user; the password is hashed here (bcrypt) on a blocking thread.
pub async fn create(db: &Db, username: &str, password: &str, roles: &[Role]) -> anyhow::Result<UserRow> {
    let hash = hash_password(password).await?;
    let now = now_ms();
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.to_owned(),
        password_hash: hash,
        roles: encode_roles(roles),
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    with_pool!(db, |pool| sqlx::query(
        "INSERT INTO users (id, username, password_hash, roles, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(&row.id)
    .bind(&row.username)
    .bind(&row.password_hash)
    .bind(&row.roles)
    .bind(row.disabled)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(row)
}

pub async fn hash_password(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    Ok(tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST)).await??)
}

/// Creates the `admin` user on first start. Returns the password only when it was
/// generated here, so the caller prints it exactly once.
pub async fn ensure_admin(db: &Db, configured_password: Option<&str>) -> anyhow::Result<Option<String>> {
    if find_by_username(db, "admin").await?.is_some() {
        return Ok(None);
    }
    let (password, generated) = match configured_password {
        Some(p) => (p.to_owned(), false),
        None => (Alphanumeric.sample_string(&mut rand::thread_rng(), 24), true),
    };
    create(db, "admin", &password, &[Role::Admin]).await?;
    tracing::info!(generated, "created the admin user");
    Ok(generated.then_some(password))
}

// ---- The `users` function: accounts and roles (admins), and the role list. ----

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};

use crate::access::{Access, Principal};
use crate::app::AppState;
use crate::config::MIN_PASSWORD_LEN;
use crate::error::{ApiError, ApiJson};
use crate::http::RequestContext;
use crate::rbac::{self, Permission};
use crate::routes::FunctionRouter;
use crate::sessions;

pub fn router() -> FunctionRouter {
    let manage = Access::Permission(Permission::UsersManage);
    FunctionRouter::new("users")
        .route(Method::GET, "/api/users", manage, list)
        .route(Method::POST, "/api/users", manage, create_user)
        .route(Method::PUT, "/api/users/{id}", manage, update)
        .route(Method::GET, "/api/roles", Access::Authenticated, roles)
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
    pub username: String,
    pub password: String,
    pub roles: Vec<Role>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub roles: Option<Vec<Role>>,
    pub password: Option<String>,
    pub disabled: Option<bool>,
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
        Err(ApiError::bad_request(
            "invalid_username",
            "username: 3 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
        ))
    }
}

/// Passwords: at least 12 characters, at most 72 bytes (bcrypt's limit).
pub fn validate_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > 72 {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("password must be at least {MIN_PASSWORD_LEN} characters and at most 72 bytes"),
        ));
    }
    Ok(())
}

fn validate_roles(roles: &[Role]) -> Result<(), ApiError> {
    if roles.is_empty() {
        return Err(ApiError::bad_request("invalid_roles", "at least one role is required"));
    }
    Ok(())
}

pub async fn list_all(db: &Db) -> Result<Vec<UserRow>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, UserRow>("SELECT * FROM users ORDER BY username").fetch_all(pool).await)
}

/// All accounts.
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [User]), (status = 401), (status = 403)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(list_all(&state.db).await?.into_iter().map(User::from).collect()))
}

/// Creates an account.
#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])), request_body = NewUser,
    responses((status = 201, body = User), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn create_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    ApiJson(request): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    validate_username(&request.username)?;
    validate_password(&request.password)?;
    validate_roles(&request.roles)?;
    if find_by_username(&state.db, &request.username).await?.is_some() {
        return Err(ApiError::conflict("username_taken", "a user with this name exists"));
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
#[utoipa::path(put, path = "/api/users/{id}", tag = "users", security(("bearer" = [])), request_body = UserUpdate,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = User), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn update(
    State(state): State<AppState>,
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
        return Err(ApiError::conflict("last_admin", "the last enabled admin cannot be disabled or demoted"));
    }
    let password_hash = match &request.password {
        Some(p) => {
            validate_password(p)?;
            hash_password(p).await?
        }
        None => user.password_hash.clone(),
    };
    let now = now_ms();
    with_pool!(&state.db, |pool| sqlx::query(
        "UPDATE users SET roles = $1, password_hash = $2, disabled = $3, updated_at = $4 WHERE id = $5"
    )
    .bind(encode_roles(&roles))
    .bind(&password_hash)
    .bind(disabled)
    .bind(now)
    .bind(&id)
    .execute(pool)
    .await
    .map(|_| ()))?;
    if request.password.is_some() || disabled {
        sessions::revoke_user(&state.db, &id).await?;
    }
    let details = serde_json::json!({
        "roles_before": user.roles, "roles_after": encode_roles(&roles),
        "password_changed": request.password.is_some(), "disabled": disabled,
    });
    let action = if roles != user.roles() { "users.role_change" } else { "users.update" };
    state.audit.record_durable(context.event(&principal, action, &user.username, "success", details)).await;
    let updated = find_by_id(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such user"))?;
    Ok(Json(updated.into()))
}

/// The roles and the permissions each grants.
#[utoipa::path(get, path = "/api/roles", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [RoleInfo]), (status = 401)))]
pub async fn roles() -> Json<Vec<RoleInfo>> {
    Json(Role::ALL.into_iter().map(|role| RoleInfo { role, permissions: rbac::permissions(role).to_vec() }).collect())
}
