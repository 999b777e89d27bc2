//! Sign-in sessions: an access token plus an opaque refresh token, rotated on every use.
//! Presenting a rotated refresh token again revokes the whole family (token theft), with
//! one exception, [`REUSE_GRACE_MS`]: see there.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::db::{now_ms, Db};
use super::jwt::Issuer;
use super::users::UserRow;
use crate::with_pool;

/// How long the *immediately previous* refresh token of a family may be presented again
/// without counting as theft. Two clients of one session that refresh at the same moment
/// (two browser tabs, two CLI processes on machines sharing a home directory), or a client
/// whose refresh answer was lost on the way, present the token just rotated a second
/// time. Within this window that token is answered as Auth0's "rotation overlap" does: a
/// fresh access token and a new refresh token of the same family, issued beside the current
/// one (which stays valid, so the client that won the race is not cut off). Still theft,
/// revoking the family: the previous token after the window, any older token (one that was
/// rotated before the family's latest rotation), and any reuse once the family is revoked.
pub const REUSE_GRACE_MS: i64 = 30_000;

/// What a client receives when a session starts or is refreshed.
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the refresh token stays valid.
    pub refresh_ttl_secs: i64,
    /// Seconds the access token stays valid.
    pub access_ttl_secs: i64,
}

/// Outcome of presenting a refresh token.
pub enum Refresh {
    Rotated(Box<Issued>, UserRow),
    /// An already-rotated token came back: the family is now revoked.
    Reused {
        user_id: String,
        family_id: String,
    },
    Invalid,
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: String,
    family_id: String,
    user_id: String,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// A new random secret, `prefix` + base64url(32 bytes).
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// How secrets are stored: SHA-256, hex (they are high-entropy, so no slow hash is needed).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Starts a session (a new refresh family) for a user who just proved their password.
pub async fn start(
    db: &Db,
    issuer: &Issuer,
    refresh_ttl: std::time::Duration,
    user: &UserRow,
) -> anyhow::Result<Issued> {
    let family_id = uuid::Uuid::new_v4().to_string();
    issue(db, issuer, refresh_ttl, user, &family_id).await
}

async fn issue(
    db: &Db,
    issuer: &Issuer,
    refresh_ttl: std::time::Duration,
    user: &UserRow,
    family_id: &str,
) -> anyhow::Result<Issued> {
    let refresh_token = random_secret("");
    let ttl_ms = i64::try_from(refresh_ttl.as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    with_pool!(db, |pool| sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(family_id)
    .bind(&user.id)
    .bind(secret_hash(&refresh_token))
    .bind(now)
    .bind(now.saturating_add(ttl_ms))
    .execute(pool)
    .await
    .map(|_| ()))?;
    let (access_token, _) = issuer.issue(&user.id, &user.roles(), family_id)?;
    Ok(Issued { access_token, refresh_token, refresh_ttl_secs: ttl_ms / 1000, access_ttl_secs: issuer.ttl_secs() })
}

/// Rotates a refresh token.
pub async fn refresh(
    db: &Db,
    issuer: &Issuer,
    refresh_ttl: std::time::Duration,
    presented: &str,
) -> anyhow::Result<Refresh> {
    let row: Option<RefreshRow> = with_pool!(db, |pool| sqlx::query_as(
        "SELECT id, family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1"
    )
    .bind(secret_hash(presented))
    .fetch_optional(pool)
    .await)?;
    let Some(row) = row else { return Ok(Refresh::Invalid) };
    if row.revoked_at.is_some() && row.used_at.is_none() {
        return Ok(Refresh::Invalid); // revoked by logout or a password change
    }
    let now = now_ms();
    // Marking the token used is atomic: of two concurrent uses, one wins and one is a reuse.
    let claimed = with_pool!(db, |pool| sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL"
    )
    .bind(now)
    .bind(&row.id)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if row.expires_at <= now {
        return Ok(Refresh::Invalid);
    }
    if claimed != 1 {
        if !within_grace(db, &row, now).await? {
            revoke_family(db, &row.family_id).await?;
            return Ok(Refresh::Reused { user_id: row.user_id, family_id: row.family_id });
        }
        tracing::info!(family = %row.family_id, "the previous refresh token came back within the grace window");
    }
    let user = match crate::core::users::find_by_id(db, &row.user_id).await? {
        Some(user) if !user.disabled => user,
        _ => return Ok(Refresh::Invalid),
    };
    let issued = issue(db, issuer, refresh_ttl, &user, &row.family_id).await?;
    Ok(Refresh::Rotated(Box::new(issued), user))
}

/// Whether `row`, already used, is its family's most recently rotated token, rotated less
/// than [`REUSE_GRACE_MS`] ago, in a family that is not revoked.
async fn within_grace(db: &Db, row: &RefreshRow, now: i64) -> Result<bool, sqlx::Error> {
    // Read again: a concurrent claim may have set `used_at` after the first read.
    let (latest, revoked, used_at): (Option<i64>, i64, Option<i64>) = with_pool!(db, |pool| sqlx::query_as(
        "SELECT (SELECT MAX(used_at) FROM refresh_tokens WHERE family_id = $1), \
                (SELECT COUNT(*) FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NOT NULL), \
                (SELECT used_at FROM refresh_tokens WHERE id = $2)"
    )
    .bind(&row.family_id)
    .bind(&row.id)
    .fetch_one(pool)
    .await)?;
    Ok(match (used_at, latest) {
        (Some(used), Some(latest)) => revoked == 0 && used == latest && now - used <= REUSE_GRACE_MS,
        _ => false,
    })
}

/// Revokes every refresh token of a family (and so every access token of that session).
pub async fn revoke_family(db: &Db, family_id: &str) -> Result<(), sqlx::Error> {
    with_pool!(db, |pool| sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL"
    )
    .bind(now_ms())
    .bind(family_id)
    .execute(pool)
    .await
    .map(|_| ()))
}

/// Revokes every session of a user (password change, disabling).
pub async fn revoke_user(db: &Db, user_id: &str) -> Result<(), sqlx::Error> {
    with_pool!(db, |pool| sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL"
    )
    .bind(now_ms())
    .bind(user_id)
    .execute(pool)
    .await
    .map(|_| ()))
}

/// Puts an access token on the deny-list until it expires.
pub async fn revoke_access(db: &Db, jti: &str, exp_secs: i64) -> Result<(), sqlx::Error> {
    with_pool!(db, |pool| sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING"
    )
    .bind(jti)
    .bind(exp_secs.saturating_mul(1000))
    .execute(pool)
    .await
    .map(|_| ()))
}

/// True when the access token was revoked, or its session was.
pub async fn is_revoked(db: &Db, jti: &str, sid: &str) -> Result<bool, sqlx::Error> {
    let (denied, revoked): (i64, i64) = with_pool!(db, |pool| sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $1), \
                (SELECT COUNT(*) FROM refresh_tokens WHERE family_id = $2 AND revoked_at IS NOT NULL)"
    )
    .bind(jti)
    .bind(sid)
    .fetch_one(pool)
    .await)?;
    Ok(denied > 0 || revoked > 0)
}

/// Drops deny-list entries, refresh tokens, login throttles and used download links that
/// can no longer matter.
pub async fn prune(db: &Db) -> Result<(), sqlx::Error> {
    let now = now_ms();
    with_pool!(db, |pool| async {
        sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at < $1").bind(now).execute(pool).await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1").bind(now).execute(pool).await?;
        sqlx::query("DELETE FROM login_throttle WHERE updated_at < $1 AND locked_until < $2")
            .bind(now - super::lockout::FORGET_AFTER_MS)
            .bind(now)
            .execute(pool)
            .await?;
        sqlx::query("DELETE FROM download_links WHERE used_at < $1").bind(now - 3_600_000).execute(pool).await?;
        Ok(())
    }
    .await)
}
