//! Background jobs that exactly one replica runs at a time: the reconciler, policy
//! re-checks, audit checkpoints, pruning. Each job has a named lease row; whoever holds an
//! unexpired lease runs the job and renews the lease each round. If the holder dies, its
//! lease expires and another replica takes the job over.

use std::future::Future;
use std::time::Duration;

use super::db::{now_ms, Db};
use crate::with_pool;

/// Takes or renews the lease `name` for `owner` until `now + ttl`; false while another
/// owner holds it.
pub async fn acquire(db: &Db, name: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let until = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    with_pool!(db, |pool| sqlx::query(
        "INSERT INTO job_leases (name, owner, lease_until) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until \
         WHERE job_leases.owner = excluded.owner OR job_leases.lease_until < $4"
    )
    .bind(name)
    .bind(owner)
    .bind(until)
    .bind(now)
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Gives a lease up (at a clean shutdown), so another replica need not wait for it to expire.
pub async fn release(db: &Db, name: &str, owner: &str) {
    let _ = with_pool!(db, |pool| sqlx::query("DELETE FROM job_leases WHERE name = $1 AND owner = $2")
        .bind(name)
        .bind(owner)
        .execute(pool)
        .await
        .map(|_| ()));
}

/// Runs `job` every `every` while this process holds the lease `name`. The holder renews
/// its lease every third of `ttl` (also while the job runs), so a holder that dies is
/// replaced within `ttl`, whatever `every` is. Runs until the process ends.
pub async fn run_periodically<F, Fut>(db: Db, name: &'static str, owner: String, every: Duration, ttl: Duration, job: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let tick = (ttl / 3).max(Duration::from_millis(200));
    let mut next_run = tokio::time::Instant::now();
    loop {
        match acquire(&db, name, &owner, ttl).await {
            Ok(true) if tokio::time::Instant::now() >= next_run => {
                next_run = tokio::time::Instant::now() + every;
                let renew = || async { acquire(&db, name, &owner, ttl).await.map(|_| ()) };
                if let Err(e) = super::outbox::while_renewing(ttl, renew, job()).await {
                    tracing::warn!(job = name, error = format!("{e:#}"), "background job failed");
                }
            }
            Ok(true) => {}
            // Someone else holds it: when we take over, we run at once.
            Ok(false) => next_run = tokio::time::Instant::now(),
            Err(e) => tracing::warn!(job = name, error = %e, "background job: lease check failed"),
        }
        tokio::time::sleep(tick.min(every)).await;
    }
}

/// Gives up every lease of `owner` (a clean shutdown): others take the jobs over at once.
pub async fn release_all(db: &Db, owner: &str) {
    let _ = with_pool!(db, |pool| sqlx::query("DELETE FROM job_leases WHERE owner = $1")
        .bind(owner)
        .execute(pool)
        .await
        .map(|_| ()));
}
