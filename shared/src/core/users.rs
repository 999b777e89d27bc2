//! Accounts: storage and the first admin.

use rand::distributions::{Alphanumeric, DistString};

pub use super::rbac::{decode_roles, encode_roles, Role};
use crate::core::db::{now_ms, Db};
use crate::with_pool;

/// bcrypt work factor for every stored password.
pub const BCRYPT_COST: u32 = 12;

/// A stored account, without its password hash: only signing in and setting a password
/// read that (`credentials`), and only the `auth` and `users` functions' database roles may.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
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

/// The columns of [`UserRow`]: every database role may read these (core::dbroles).
pub const COLUMNS: &str = "id, username, roles, disabled, created_at, updated_at";

pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE username = $1");
    with_pool!(db, |pool| sqlx::query_as::<_, UserRow>(&sql).bind(username).fetch_optional(pool).await)
}

pub async fn find_by_id(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    with_pool!(db, |pool| sqlx::query_as::<_, UserRow>(&sql).bind(id).fetch_optional(pool).await)
}

/// An account and its password hash, to check a password against.
pub async fn credentials(db: &Db, username: &str) -> Result<Option<(UserRow, String)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Credentials {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: String,
    }
    let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE username = $1");
    let row = with_pool!(db, |pool| sqlx::query_as::<_, Credentials>(&sql).bind(username).fetch_optional(pool).await)?;
    Ok(row.map(|c| (c.user, c.password_hash)))
}

/// Inserts a user; the password is hashed here (bcrypt) on a blocking thread.
pub async fn create(db: &Db, username: &str, password: &str, roles: &[Role]) -> anyhow::Result<UserRow> {
    let hash = hash_password(password).await?;
    let now = now_ms();
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.to_owned(),
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
    .bind(&hash)
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
