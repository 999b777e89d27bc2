//! The metadata store: SQLite (embedded default) or PostgreSQL, one migrations folder per
//! backend, applied at start-up. Queries use `$N` placeholders, valid on both.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::core::config::DatabaseConfig;

/// A connection pool to one of the two backends.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same expression against whichever pool `db` holds. The expression is compiled
/// once per backend, so queries stay portable by construction.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::core::db::Db::Sqlite($pool) => $body,
            $crate::core::db::Db::Postgres($pool) => $body,
        }
    };
}

/// How long a request waits for a connection before the database counts as down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Db {
    /// Connects, then applies pending migrations.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let db = match config {
            DatabaseConfig::Sqlite { path } => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
                    // deleted content (a shredded data key) is overwritten, not just unlinked
                    .pragma("secure_delete", "ON");
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("database: cannot open SQLite file {}", path.display()))?;
                Db::Sqlite(pool)
            }
            DatabaseConfig::Postgres { url, pool_size } => {
                // Parse errors from sqlx may quote the URL; report without it.
                let options = PgConnectOptions::from_str(url)
                    .map_err(|_| anyhow::anyhow!("DATABASE_URL: malformed PostgreSQL URL"))?;
                let pool = PgPoolOptions::new()
                    .max_connections(*pool_size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| anyhow::anyhow!("database: cannot connect to PostgreSQL ({})", pg_reason(&e)))?;
                Db::Postgres(pool)
            }
        };
        db.migrate().await?;
        Ok(db)
    }

    /// A pool that connects on first use (a function's cold start does no I/O; the
    /// `migrate` Job migrates before a rollout).
    pub fn connect_lazy(config: &DatabaseConfig) -> anyhow::Result<Self> {
        match config {
            DatabaseConfig::Postgres { url, pool_size } => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|_| anyhow::anyhow!("DATABASE_URL: malformed PostgreSQL URL"))?;
                Ok(Db::Postgres(
                    PgPoolOptions::new()
                        .max_connections(*pool_size)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_lazy_with(options),
                ))
            }
            DatabaseConfig::Sqlite { .. } => anyhow::bail!("DATABASE_URL: a lazy pool needs PostgreSQL"),
        }
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        }
        .context("database: migration failed")
    }

    /// After a crypto-shred: makes the destroyed data unrecoverable from the database's
    /// files. SQLite overwrites deleted content (`secure_delete`, on every connection), but
    /// the write-ahead log keeps earlier versions of the changed pages, the data key among
    /// them, until it is checkpointed and truncated, which this does. PostgreSQL keeps the
    /// old row version until (auto)vacuum removes it, and its own WAL until recycled:
    /// nothing is forced there (docs/security.md says so).
    pub async fn erase_freed(&self) -> Result<(), sqlx::Error> {
        if let Db::Sqlite(pool) = self {
            let (busy, _, _): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(pool).await?;
            if busy != 0 {
                tracing::warn!("the SQLite write-ahead log could not be truncated now (readers); it is at the next delete or checkpoint");
            }
        }
        Ok(())
    }

    /// Name of the backend, for health output and logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_pool!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}

/// A short reason for a connection failure, free of the URL and credentials.
fn pg_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.kind().to_string(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::PoolTimedOut => "timed out".to_owned(),
        sqlx::Error::Tls(_) => "TLS error".to_owned(),
        _ => "connection failed".to_owned(),
    }
}

/// Current time in Unix milliseconds, the timestamp format of every table.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Fills columns derived in Rust that a migration added (version sort keys). Idempotent;
/// run by `migrate` and by `arca serve` at start-up, only on rows that lack them.
pub async fn backfill(db: &Db) -> anyhow::Result<()> {
    let missing: Vec<(String, String)> =
        with_pool!(db, |pool| sqlx::query_as("SELECT id, version FROM artifacts WHERE version_key = ''")
            .fetch_all(pool)
            .await)?;
    for (id, version) in missing {
        with_pool!(db, |pool| sqlx::query("UPDATE artifacts SET version_key = $1 WHERE id = $2")
            .bind(crate::core::artifacts::version_key(&version))
            .bind(&id)
            .execute(pool)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}
