//! Rate limits per client IP, per principal and (stricter) per login IP.
//!
//! Two implementations, chosen at start-up:
//! - **In process** (`arca serve`): `governor`'s keyed GCRA limiter on a sharded map (no
//!   global lock), pruned of idle keys every minute, so many clients (IPv6) cost memory only
//!   while they are active. A limit of N per minute allows a burst of N, then one request
//!   every 60/N seconds.
//! - **Shared** (the functions, any number of replicas): fixed one-minute windows in
//!   PostgreSQL, one upsert per check (two per authenticated request). Keys are hashed, so
//!   a stored key has a fixed size whatever the client sends.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use sha2::{Digest, Sha256};

use super::db::Db;
use super::error::ApiError;
use crate::with_pool;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Ip,
    Principal,
    Login,
    /// Audit entries of anonymous requests that failed (what a stranger can make Arca write).
    AnonymousAudit,
}

impl Bucket {
    fn as_str(self) -> &'static str {
        match self {
            Bucket::Ip => "ip",
            Bucket::Principal => "principal",
            Bucket::Login => "login",
            Bucket::AnonymousAudit => "anon-audit",
        }
    }
}

type Keyed = governor::RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// The limits in force, by bucket.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_ip: u32,
    pub per_principal: u32,
    pub login_per_ip: u32,
    pub anonymous_audit_per_ip: u32,
}

impl Limits {
    fn of(&self, bucket: Bucket) -> u32 {
        match bucket {
            Bucket::Ip => self.per_ip,
            Bucket::Principal => self.per_principal,
            Bucket::Login => self.login_per_ip,
            Bucket::AnonymousAudit => self.anonymous_audit_per_ip,
        }
    }
}

/// The process's rate limiter.
pub enum RateLimiter {
    InProcess(Box<InProcess>),
    Shared { db: Db, limits: Limits },
}

/// The in-process limiters, one per bucket.
pub struct InProcess {
    ip: Keyed,
    principal: Keyed,
    login: Keyed,
    anonymous: Keyed,
    limits: Limits,
    checks: AtomicU64,
}

/// What a check decided, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until a request is allowed again (refused) or the budget is full (allowed).
    pub reset: u64,
}

fn keyed(per_minute: u32) -> Keyed {
    let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    governor::RateLimiter::keyed(governor::Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>()
}

impl RateLimiter {
    pub fn in_process(limits: Limits) -> Self {
        RateLimiter::InProcess(Box::new(InProcess {
            ip: keyed(limits.per_ip),
            principal: keyed(limits.per_principal),
            login: keyed(limits.login_per_ip),
            anonymous: keyed(limits.anonymous_audit_per_ip),
            limits,
            checks: AtomicU64::new(0),
        }))
    }

    pub fn shared(db: Db, limits: Limits) -> Self {
        RateLimiter::Shared { db, limits }
    }

    /// Counts one request against `key` in `bucket`.
    pub async fn check(&self, bucket: Bucket, key: &str) -> Decision {
        match self {
            RateLimiter::InProcess(limiters) => {
                let InProcess { ip, principal, login, anonymous, limits, checks } = &**limiters;
                let limiter = match bucket {
                    Bucket::Ip => ip,
                    Bucket::Principal => principal,
                    Bucket::Login => login,
                    Bucket::AnonymousAudit => anonymous,
                };
                // Idle keys (a full budget again) are dropped now and then: memory follows
                // the clients active within the last minute, not every client ever seen.
                if checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 0 {
                    for l in [ip, principal, login, anonymous] {
                        l.retain_recent();
                        l.shrink_to_fit();
                    }
                }
                let limit = limits.of(bucket);
                let per_request = 60.0 / f64::from(limit.max(1));
                match limiter.check_key(&key.to_owned()) {
                    Ok(snapshot) => {
                        let remaining = snapshot.remaining_burst_capacity();
                        let reset = (f64::from(limit.saturating_sub(remaining)) * per_request).ceil() as u64;
                        Decision { allowed: true, limit, remaining, reset }
                    }
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        Decision { allowed: false, limit, remaining: 0, reset: wait.as_secs() + 1 }
                    }
                }
            }
            RateLimiter::Shared { db, limits } => {
                let limit = limits.of(bucket);
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
                let minute = i64::try_from(now / 60).unwrap_or(i64::MAX);
                let reset = 60 - now % 60;
                let hashed = hex::encode(&Sha256::digest(format!("{}:{key}", bucket.as_str()))[..16]);
                let hits: Result<i64, sqlx::Error> = with_pool!(db, |pool| sqlx::query_scalar(
                    "INSERT INTO rate_windows (bucket, minute, hits) VALUES ($1, $2, 1) \
                     ON CONFLICT (bucket, minute) DO UPDATE SET hits = rate_windows.hits + 1 RETURNING hits"
                )
                .bind(&hashed)
                .bind(minute)
                .fetch_one(pool)
                .await);
                match hits {
                    Ok(hits) => {
                        let hits = u32::try_from(hits).unwrap_or(u32::MAX);
                        Decision { allowed: hits <= limit, limit, remaining: limit.saturating_sub(hits), reset }
                    }
                    Err(e) => {
                        // The request itself needs the database; it will fail there if it is down.
                        tracing::warn!(error = %e, "rate limit: database check failed; allowing");
                        Decision { allowed: true, limit, remaining: limit, reset }
                    }
                }
            }
        }
    }

    /// Drops windows older than the previous minute (shared limiter; a leased job).
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let RateLimiter::Shared { db, .. } = self else { return Ok(0) };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        let minute = i64::try_from(now / 60).unwrap_or(i64::MAX);
        with_pool!(db, |pool| sqlx::query("DELETE FROM rate_windows WHERE minute < $1")
            .bind(minute - 1)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
    }

    /// Keys held in memory (in-process limiter), for tests and metrics.
    pub fn tracked_keys(&self) -> usize {
        match self {
            RateLimiter::InProcess(l) => l.ip.len() + l.principal.len() + l.login.len() + l.anonymous.len(),
            RateLimiter::Shared { .. } => 0,
        }
    }
}

impl Decision {
    /// 429 with `Retry-After` and the `RateLimit-*` headers when refused.
    pub fn into_result(self) -> Result<Decision, ApiError> {
        if self.allowed {
            return Ok(self);
        }
        let detail = format!("too many requests: limit {} per minute; retry in {} s", self.limit, self.reset);
        let mut error = ApiError::too_many(super::error::Code::RateLimited, detail, self.reset);
        for (name, value) in self.headers() {
            error = error.with_header(name, value);
        }
        Err(error)
    }

    fn headers(&self) -> [(HeaderName, HeaderValue); 3] {
        [
            (HeaderName::from_static("ratelimit-limit"), HeaderValue::from(self.limit)),
            (HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(self.remaining)),
            (HeaderName::from_static("ratelimit-reset"), HeaderValue::from(self.reset)),
        ]
    }

    /// Adds `RateLimit-Limit/Remaining/Reset` to a response.
    pub fn apply(&self, response: &mut Response) {
        response.headers_mut().extend(self.headers());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_per_key_and_forgets_idle_keys() {
        let limiter = RateLimiter::in_process(Limits {
            per_ip: 3,
            per_principal: 100,
            login_per_ip: 1,
            anonymous_audit_per_ip: 1,
        });
        let mut allowed = 0;
        for _ in 0..5 {
            allowed += u32::from(limiter.check(Bucket::Ip, "a").await.allowed);
        }
        assert_eq!(allowed, 3);
        assert!(limiter.check(Bucket::Ip, "b").await.allowed, "another key has its own budget");
        let refused = limiter.check(Bucket::Ip, "a").await;
        assert!(!refused.allowed && refused.reset >= 1 && refused.remaining == 0);
        // 200k distinct keys do not need a global lock and are pruned once idle.
        for i in 0..200_000u32 {
            limiter.check(Bucket::Principal, &i.to_string()).await;
        }
        assert!(limiter.tracked_keys() > 0);
    }
}
