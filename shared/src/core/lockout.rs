//! Failed-login lockout with exponential backoff, per account and per client IP. Stored in
//! the database so that every instance sees it.

use super::db::{now_ms, Db};
use crate::with_pool;

/// First lock after the threshold is reached; doubles with each further failure.
const BASE_LOCK_MS: i64 = 30_000;
const MAX_LOCK_MS: i64 = 15 * 60 * 1000;
/// Failures older than this are forgotten.
const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Rows untouched this long (and not locked) are pruned.
pub const FORGET_AFTER_MS: i64 = 2 * WINDOW_MS;

/// Keys for one login attempt: the account name (known or not) and the client IP, hashed,
/// so a stored key has a fixed size whatever the caller sent.
pub fn keys(username: &str, ip: &str) -> [String; 2] {
    use sha2::{Digest, Sha256};
    let hashed = |s: String| hex::encode(&Sha256::digest(s.as_bytes())[..16]);
    [format!("user:{}", hashed(username.to_lowercase())), format!("ip:{}", hashed(ip.to_owned()))]
}

/// Milliseconds until the key is unlocked, if it is locked.
pub async fn locked_for(db: &Db, key: &str) -> Result<Option<i64>, sqlx::Error> {
    let until: Option<i64> =
        with_pool!(db, |pool| sqlx::query_scalar("SELECT locked_until FROM login_throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await)?;
    let now = now_ms();
    Ok(until.filter(|u| *u > now).map(|u| u - now))
}

/// Counts a failure; locks the key once `threshold` failures are reached.
/// Returns the lock length in ms when this failure locked it.
pub async fn record_failure(db: &Db, key: &str, threshold: u32) -> Result<Option<i64>, sqlx::Error> {
    let now = now_ms();
    let failures: i64 = with_pool!(db, |pool| sqlx::query_scalar(
        "INSERT INTO login_throttle (key, failures, locked_until, updated_at) VALUES ($1, 1, 0, $2) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_throttle.updated_at < $3 THEN 1 ELSE login_throttle.failures + 1 END, \
           updated_at = $2 \
         RETURNING failures"
    )
    .bind(key)
    .bind(now)
    .bind(now - WINDOW_MS)
    .fetch_one(pool)
    .await)?;
    let over = failures - i64::from(threshold);
    if over < 0 {
        return Ok(None);
    }
    let lock = BASE_LOCK_MS.saturating_mul(1_i64 << over.min(20)).min(MAX_LOCK_MS);
    with_pool!(db, |pool| sqlx::query("UPDATE login_throttle SET locked_until = $1 WHERE key = $2")
        .bind(now + lock)
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(Some(lock))
}

/// Forgets an account's failures after a successful login.
pub async fn clear(db: &Db, key: &str) -> Result<(), sqlx::Error> {
    with_pool!(db, |pool| sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ()))
}
