//! API tokens for CI/CD: `arca_…`, shown once, stored as SHA-256, scoped to a subset of the
//! owner's permissions, expiring, revocable at once.

use super::db::{now_ms, Db};
use super::rbac::{self, Permission};
use super::sessions::secret_hash;
use crate::with_pool;

/// Every API token starts with this.
pub const PREFIX: &str = "arca_";

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

pub const COLUMNS: &str = "id, user_id, name, scopes, created_at, expires_at, revoked_at, last_used_at";

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

/// Revokes every API token of a user (a password change or a disabled account).
pub async fn revoke_user(db: &Db, user_id: &str) -> Result<u64, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL"
    )
    .bind(now_ms())
    .bind(user_id)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))
}
