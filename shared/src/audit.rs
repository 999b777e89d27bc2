//! The audit log: append-only and hash-chained. Each entry stores the previous entry's
//! hash and its own hash, SHA-256 over a canonical JSON encoding of its fields.
//!
//! Entries are written by one task per process in small batches, so recording an access
//! does not wait for the database; security events wait until their entry is committed.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

use crate::db::{now_ms, Db};
use crate::with_pool;

/// Hash that precedes the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const BATCH: usize = 256;
/// Lock id serialising writers of the chain across PostgreSQL clients.
const PG_CHAIN_LOCK: i64 = 0x4152_4341; // "ARCA"

/// What happened, before it is given a place in the chain.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub actor: String,
    pub roles: String,
    pub action: String,
    pub target: String,
    /// `success`, `denied`, `failure` or `error`.
    pub outcome: String,
    pub status: i64,
    pub client_ip: String,
    pub user_agent: String,
    pub request_id: String,
    pub details: serde_json::Value,
}

/// A stored entry.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    /// Unix milliseconds.
    pub ts: i64,
    pub actor: String,
    pub roles: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub status: i64,
    pub client_ip: String,
    pub user_agent: String,
    pub request_id: String,
    /// JSON text.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The canonical encoding that is hashed: fixed field order, JSON escaping.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    ts: i64,
    actor: &'a str,
    roles: &'a str,
    action: &'a str,
    target: &'a str,
    outcome: &'a str,
    status: i64,
    client_ip: &'a str,
    user_agent: &'a str,
    request_id: &'a str,
    details: &'a str,
    prev_hash: &'a str,
}

impl AuditEntry {
    /// The hash this entry must carry, given its fields and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let canonical = Canonical {
            seq: self.seq,
            ts: self.ts,
            actor: &self.actor,
            roles: &self.roles,
            action: &self.action,
            target: &self.target,
            outcome: &self.outcome,
            status: self.status,
            client_ip: &self.client_ip,
            user_agent: &self.user_agent,
            request_id: &self.request_id,
            details: &self.details,
            prev_hash: &self.prev_hash,
        };
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

enum Message {
    Record(Box<AuditEvent>, Option<oneshot::Sender<()>>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the process's audit writer.
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Message>,
}

impl Audit {
    /// Starts the writer task. `enabled: false` exists only to measure the log's cost.
    pub fn spawn(db: Db, enabled: bool) -> Self {
        let (tx, rx) = mpsc::channel(16 * 1024);
        tokio::spawn(writer(db, rx, enabled));
        Self { tx }
    }

    /// Queues an entry; waits only if the writer is far behind.
    pub async fn record(&self, event: AuditEvent) {
        if self.tx.send(Message::Record(Box::new(event), None)).await.is_err() {
            tracing::error!("audit writer is gone; entry lost");
        }
    }

    /// Records an entry and waits until it is committed (security events).
    pub async fn record_durable(&self, event: AuditEvent) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Message::Record(Box::new(event), Some(ack))).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Message::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Message>, enabled: bool) {
    while let Some(first) = rx.recv().await {
        let mut events = Vec::new();
        let mut acks = Vec::new();
        let mut take = |message: Message, events: &mut Vec<AuditEvent>| match message {
            Message::Record(event, ack) => {
                events.push(*event);
                acks.extend(ack);
            }
            Message::Flush(ack) => acks.push(ack),
        };
        take(first, &mut events);
        while events.len() < BATCH {
            match rx.try_recv() {
                Ok(message) => take(message, &mut events),
                Err(_) => break,
            }
        }
        if enabled && !events.is_empty() {
            let mut delay = Duration::from_millis(100);
            // Entries are kept until written: a database outage delays them, never drops them.
            while let Err(e) = append(&db, &events).await {
                tracing::error!(error = %e, pending = events.len(), "audit: write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Appends `events` to the chain in one transaction.
async fn append(db: &Db, events: &[AuditEvent]) -> Result<(), sqlx::Error> {
    macro_rules! append_in {
        ($tx:ident) => {{
            let head: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *$tx)
                    .await?;
            let (mut seq, mut prev) = head.unwrap_or((0, GENESIS.to_owned()));
            let ts = now_ms();
            for event in events {
                seq += 1;
                let mut entry = AuditEntry {
                    seq,
                    ts,
                    actor: event.actor.clone(),
                    roles: event.roles.clone(),
                    action: event.action.clone(),
                    target: event.target.clone(),
                    outcome: event.outcome.clone(),
                    status: event.status,
                    client_ip: event.client_ip.clone(),
                    user_agent: event.user_agent.clone(),
                    request_id: event.request_id.clone(),
                    details: event.details.to_string(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                entry.hash = entry.compute_hash();
                sqlx::query(
                    "INSERT INTO audit_log (seq, ts, actor, roles, action, target, outcome, status, client_ip, \
                     user_agent, request_id, details, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(entry.seq)
                .bind(entry.ts)
                .bind(&entry.actor)
                .bind(&entry.roles)
                .bind(&entry.action)
                .bind(&entry.target)
                .bind(&entry.outcome)
                .bind(entry.status)
                .bind(&entry.client_ip)
                .bind(&entry.user_agent)
                .bind(&entry.request_id)
                .bind(&entry.details)
                .bind(&entry.prev_hash)
                .bind(&entry.hash)
                .execute(&mut *$tx)
                .await?;
                prev = entry.hash;
            }
            $tx.commit().await
        }};
    }
    match db {
        // IMMEDIATE takes the write lock before reading the head, so the chain cannot fork.
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            append_in!(tx)
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_CHAIN_LOCK).execute(&mut *tx).await?;
            append_in!(tx)
        }
    }
}

/// Filters of `GET /api/audit-logs`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339 time; entries at or after it.
    pub since: Option<String>,
    /// RFC 3339 time; entries before it.
    pub until: Option<String>,
}

/// Resolved filter values bound into the query.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

const SELECT_FILTERED: &str =
    "SELECT * FROM audit_log WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
     AND ($3 IS NULL OR target = $3) AND ($4 IS NULL OR outcome = $4) AND ($5 IS NULL OR ts >= $5) \
     AND ($6 IS NULL OR ts < $6)";

/// One page, newest first, below `before_seq`.
pub async fn list(
    db: &Db,
    filter: &AuditFilter,
    bounds: &Bounds,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    select(db, filter, bounds, "AND ($7 IS NULL OR seq < $7) ORDER BY seq DESC LIMIT $8", before_seq, limit).await
}

/// One chunk, oldest first, above `after_seq` (exports and verification).
pub async fn list_ascending(
    db: &Db,
    filter: &AuditFilter,
    bounds: &Bounds,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    select(db, filter, bounds, "AND seq > $7 ORDER BY seq ASC LIMIT $8", Some(after_seq), limit).await
}

/// The filtered query; `tail` adds the cursor condition ($7), order and limit ($8).
async fn select(
    db: &Db,
    filter: &AuditFilter,
    bounds: &Bounds,
    tail: &str,
    cursor: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let sql = format!("{SELECT_FILTERED} {tail}");
    with_pool!(db, |pool| sqlx::query_as::<_, AuditEntry>(&sql)
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.target.as_deref())
        .bind(filter.outcome.as_deref())
        .bind(bounds.since_ms)
        .bind(bounds.until_ms)
        .bind(cursor)
        .bind(limit)
        .fetch_all(pool)
        .await)
}

/// Result of walking the whole chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    pub valid: bool,
    /// Entries checked.
    pub entries: i64,
    /// Hash of the last entry (the chain's head).
    pub head: String,
    /// The first entry that does not verify, when invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_invalid: Option<BrokenEntry>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BrokenEntry {
    pub seq: i64,
    pub reason: String,
}

/// Recomputes every hash and link, in order.
pub async fn verify(db: &Db) -> Result<Verification, sqlx::Error> {
    let all = AuditFilter::default();
    let bounds = Bounds { since_ms: None, until_ms: None };
    let (mut expected_seq, mut prev, mut count) = (1_i64, GENESIS.to_owned(), 0_i64);
    loop {
        let chunk = list_ascending(db, &all, &bounds, expected_seq - 1, 1000).await?;
        if chunk.is_empty() {
            return Ok(Verification { valid: true, entries: count, head: prev, first_invalid: None });
        }
        for entry in chunk {
            let reason = if entry.seq != expected_seq {
                Some(format!("expected entry {expected_seq}, found {} (entries missing)", entry.seq))
            } else if entry.prev_hash != prev {
                Some("prev_hash does not match the previous entry".to_owned())
            } else if entry.compute_hash() != entry.hash {
                Some("hash does not match the entry's contents".to_owned())
            } else {
                None
            };
            if let Some(reason) = reason {
                return Ok(Verification {
                    valid: false,
                    entries: count,
                    head: prev,
                    first_invalid: Some(BrokenEntry { seq: entry.seq, reason }),
                });
            }
            count += 1;
            expected_seq += 1;
            prev = entry.hash;
        }
    }
}

// ---- The `audit` function: search, export, verification. ----

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::access::Access;
use crate::app::AppState;
use crate::error::ApiError;
use crate::rbac::Permission;
use crate::routes::FunctionRouter;

pub fn router() -> FunctionRouter {
    let read = Access::Permission(Permission::AuditRead);
    FunctionRouter::new("audit").route(Method::GET, "/api/audit-logs", read, search).route(
        Method::GET,
        "/api/audit-logs/verify",
        read,
        verify_chain,
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Entries per page (1–1000, default 100).
    pub limit: Option<i64>,
    /// `ndjson` streams every matching entry, oldest first, as an export.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| ApiError::bad_request("invalid_query", format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

/// Searches the audit log (filters, cursor pagination) or exports it as NDJSON.
#[utoipa::path(get, path = "/api/audit-logs", tag = "audit", security(("bearer" = [])),
    params(AuditFilter, Page),
    responses((status = 200, body = AuditPage), (status = 200, content_type = "application/x-ndjson"),
              (status = 400), (status = 401), (status = 403)))]
pub async fn search(
    State(state): State<AppState>,
    Query(filter): Query<AuditFilter>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    let bounds = Bounds {
        since_ms: parse_time("since", filter.since.as_deref())?,
        until_ms: parse_time("until", filter.until.as_deref())?,
    };
    if page.format.as_deref() == Some("ndjson") {
        return Ok(export(state, filter, bounds));
    }
    if let Some(format) = page.format.as_deref().filter(|f| *f != "json") {
        return Err(ApiError::bad_request("invalid_query", format!("unknown format '{format}' (json or ndjson)")));
    }
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be 1 to 1000"));
    }
    let before = page
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>().map_err(|_| ApiError::bad_request("invalid_query", "malformed cursor")))
        .transpose()?;
    let entries = list(&state.db, &filter, &bounds, before, limit).await?;
    let next_cursor = (entries.len() == usize::try_from(limit).unwrap_or(0))
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(Json(AuditPage { entries, next_cursor }).into_response())
}

/// Streams matching entries, oldest first, one JSON object per line, in chunks.
fn export(state: AppState, filter: AuditFilter, bounds: Bounds) -> Response {
    let stream = futures::stream::unfold(Some(0_i64), move |after| {
        let (state, filter) = (state.clone(), filter.clone());
        async move {
            let after = after?;
            match list_ascending(&state.db, &filter, &bounds, after, 500).await {
                Ok(chunk) if chunk.is_empty() => None,
                Ok(chunk) => {
                    let next = chunk.last().map(|e| e.seq);
                    let mut text = String::new();
                    for entry in &chunk {
                        text.push_str(&serde_json::to_string(entry).unwrap_or_default());
                        text.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(text), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    Some((Err(std::io::Error::other("audit export failed")), None))
                }
            }
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}

/// Walks the hash chain; reports the first entry that does not verify.
#[utoipa::path(get, path = "/api/audit-logs/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = Verification), (status = 401), (status = 403)))]
pub async fn verify_chain(State(state): State<AppState>) -> Result<Json<Verification>, ApiError> {
    Ok(Json(verify(&state.db).await?))
}
