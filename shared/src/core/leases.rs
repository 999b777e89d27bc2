//! Background jobs that exactly one replica runs at a time: the reconciler, policy
//! re-checks, audit checkpoints, pruning. Each job has a named lease row; whoever holds an
//! unexpired lease runs the job and renews the lease each round. If the holder dies, its
//! lease expires and another replica takes the job over; a holder that finds its lease
//! gone (or cannot renew it) stops the job's run at its next renewal (a third of the
//! lease), instead of running on beside the new holder.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::db::{now_ms, Db};
use crate::with_pool;

/// Whether this process ever asked for a lease: one that never did has none to give up at
/// shutdown (and its database role may not touch `job_leases`: core::dbroles).
static ASKED: AtomicBool = AtomicBool::new(false);

/// Takes or renews the lease `name` for `owner` until `now + ttl`; false while another
/// owner holds it.
pub async fn acquire(db: &Db, name: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
    ASKED.store(true, Ordering::Relaxed);
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
/// replaced within `ttl`, whatever `every` is; a round whose renewal fails is stopped (see
/// [`while_held`]). Runs until the process ends.
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
                if let Some(Err(e)) = while_held(&db, name, &owner, ttl, job()).await {
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

/// Runs `work` while renewing the lease every third of `ttl`. When a renewal finds the
/// lease taken by another holder (this one paused past `ttl`), or cannot reach the database
/// (the lease may lapse before the next try), the work is stopped (dropped) at once and
/// `None` returned: a job never runs on beside the holder that took it over.
async fn while_held<W: Future>(db: &Db, name: &str, owner: &str, ttl: Duration, work: W) -> Option<W::Output> {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(ttl / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            output = &mut work => return Some(output),
            _ = tick.tick() => match acquire(db, name, owner, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = name, "the job's lease was taken over: this run is stopped");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(job = name, error = %e, "the job's lease could not be renewed: this run is stopped");
                    return None;
                }
            }
        }
    }
}

/// Whether this process has asked for any lease.
pub fn asked() -> bool {
    ASKED.load(Ordering::Relaxed)
}

/// Gives up every lease of `owner` (a clean shutdown): others take the jobs over at once.
pub async fn release_all(db: &Db, owner: &str) {
    let _ = with_pool!(db, |pool| sqlx::query("DELETE FROM job_leases WHERE owner = $1")
        .bind(owner)
        .execute(pool)
        .await
        .map(|_| ()));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::core::config::DatabaseConfig;

    /// Issue 21 (Low): a holder that lost its lease stops its job instead of running on
    /// beside the new holder.
    #[tokio::test]
    async fn a_job_stops_when_its_lease_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DatabaseConfig::Sqlite { path: dir.path().join("leases.db") }).await.unwrap();
        let ttl = Duration::from_millis(600);
        let steps = Arc::new(AtomicU64::new(0));
        let counter = steps.clone();
        let job = move || {
            let counter = counter.clone();
            async move {
                loop {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let every = Duration::from_secs(3600);
        let runner = tokio::spawn(run_periodically(db.clone(), "fenced", "a".into(), every, ttl, job));
        for _ in 0..100 {
            if steps.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(steps.load(Ordering::SeqCst) > 0, "the job did not start");
        // Another replica holds the lease now (as after a pause of the holder longer than ttl).
        let until = now_ms() + 60_000;
        with_pool!(&db, |pool| sqlx::query(
            "UPDATE job_leases SET owner = 'b', lease_until = $1 WHERE name = 'fenced'"
        )
        .bind(until)
        .execute(pool)
        .await
        .map(|_| ()))
        .unwrap();
        tokio::time::sleep(ttl).await; // at least one renewal
        let stopped_at = steps.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(steps.load(Ordering::SeqCst), stopped_at, "the job ran on beside the new holder");
        runner.abort();
    }
}
