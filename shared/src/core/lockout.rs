//! Failed-login lockout with exponential backoff, stored in the database so that every
//! instance sees it. Three counters per attempt ([`keys`]): the account from this client
//! address (locks at the threshold), the client address over all accounts (×4), and the
//! account over all addresses (×10, a backstop against a distributed guess). So anyone
//! can lock an account only for their own address: five wrong passwords from one address
//! do not lock the admin out everywhere.

use super::db::{now_ms, Db};
use crate::with_pool;

/// First lock after the threshold is reached; doubles with each further failure.
const BASE_LOCK_MS: i64 = 30_000;
const MAX_LOCK_MS: i64 = 15 * 60 * 1000;
/// Failures older than this are forgotten.
const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Rows untouched this long (and not locked) are pruned.
pub const FORGET_AFTER_MS: i64 = 2 * WINDOW_MS;

/// How many failures lock each of the [`keys`], as multiples of the threshold.
pub const THRESHOLD_FACTORS: [u32; 3] = [1, 4, 10];

/// Keys for one login attempt: the account (known or not) from this address, the address,
/// and the account; hashed, so a stored key has a fixed size whatever the caller sent.
pub fn keys(username: &str, ip: &str) -> [String; 3] {
    use sha2::{Digest, Sha256};
    let hashed = |s: String| hex::encode(&Sha256::digest(s.as_bytes())[..16]);
    let account = username.to_lowercase();
    [
        format!("account-address:{}", hashed(format!("{account}\n{ip}"))),
        format!("ip:{}", hashed(ip.to_owned())),
        format!("user:{}", hashed(account)),
    ]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::DatabaseConfig;

    /// The lock starts at 30 s when the threshold is reached, doubles with each further
    /// failure up to 15 min, and ends when its time is up.
    #[tokio::test]
    async fn locks_double_up_to_the_cap_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DatabaseConfig::Sqlite { path: dir.path().join("lockout.db") }).await.unwrap();
        let key = &keys("admin", "192.0.2.1")[0];
        assert_eq!(record_failure(&db, key, 3).await.unwrap(), None);
        assert_eq!(record_failure(&db, key, 3).await.unwrap(), None);
        assert_eq!(locked_for(&db, key).await.unwrap(), None, "below the threshold");
        let mut locks = Vec::new();
        for _ in 0..8 {
            locks.push(record_failure(&db, key, 3).await.unwrap().unwrap());
        }
        assert_eq!(locks, [30_000, 60_000, 120_000, 240_000, 480_000, 900_000, 900_000, 900_000]);
        let left = locked_for(&db, key).await.unwrap().unwrap();
        assert!(left > 890_000 && left <= 900_000, "{left}");
        // Time passes: the lock ends.
        with_pool!(&db, |pool| sqlx::query("UPDATE login_throttle SET locked_until = $1")
            .bind(now_ms() - 1)
            .execute(pool)
            .await
            .map(|_| ()))
        .unwrap();
        assert_eq!(locked_for(&db, key).await.unwrap(), None);
        clear(&db, key).await.unwrap();
        assert_eq!(record_failure(&db, key, 3).await.unwrap(), None, "cleared: counting starts again");
    }

    #[test]
    fn keys_are_fixed_size_and_separate_address_and_account() {
        let a = keys("Admin", "192.0.2.1");
        let b = keys("admin", "192.0.2.2");
        assert_eq!(a[2], b[2], "the account key ignores the address and the name's case");
        assert_ne!(a[0], b[0], "the account-address key does not");
        assert_ne!(a[1], b[1]);
        let long = keys(&"x".repeat(10_000), "192.0.2.1");
        assert!(long.iter().all(|k| k.len() < 64), "{long:?}");
    }
}
