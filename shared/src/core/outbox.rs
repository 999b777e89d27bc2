//! Lifecycle events: the durable outbox and its delivery. Every status change writes its
//! CloudEvent into the outbox in the same transaction (see `lifecycle::apply`). Then either
//! an in-process worker (`arca serve`) hands each event to this process's handlers, or the
//! relay (the `ingest` function in the cluster) publishes it as a binary-mode CloudEvent to
//! the Broker (`K_SINK`). Both claim rows with a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), so any number of replicas can run and a claim whose holder died is taken
//! over once its lease expires. Handlers are idempotent; events that keep failing are
//! dead-lettered: kept, shown to operators, no longer retried.
//!
//! Receivers of the Broker's deliveries act only on events of the outbox (`emitted`), and
//! claim each event id the same way (`event_claims`), so a redelivery while another
//! replica works on the event is answered "busy", and the number of attempts survives
//! across replicas.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};
use tokio::sync::Notify;

use super::db::{now_ms, Db};
use crate::with_pool;

/// Deliveries before an event is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 8;

/// Source of every event Arca emits.
pub const SOURCE: &str = "/arca/artifacts";

/// PostgreSQL channel that announces new outbox rows to relays in other processes.
const CHANNEL: &str = "arca_outbox";

/// A new event, ready to be written with the change that causes it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: &'static str,
    pub artifact: String,
    /// The CloudEvent 1.0 in structured JSON.
    pub payload: String,
}

impl NewEvent {
    pub fn new(event_type: &'static str, artifact: &str, data: serde_json::Value) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        let event = EventBuilderV10::new()
            .id(&id)
            .source(SOURCE)
            .ty(event_type)
            .subject(artifact)
            .time(chrono::Utc::now())
            .data("application/json", data)
            .build();
        let payload = match event {
            Ok(event) => serde_json::to_string(&event).unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "building a CloudEvent failed");
                String::new()
            }
        };
        Self { id, event_type, artifact: artifact.to_owned(), payload }
    }
}

const INSERT_SQL: &str = "INSERT INTO outbox (id, event_type, artifact_id, payload, created_at, next_attempt_at) \
                          VALUES ($1, $2, $3, $4, $5, $5)";

/// The insert of an event, to run in the transaction of the change it announces.
pub fn insert_query<'q, DB: sqlx::Database>(
    event: &'q NewEvent,
    now: i64,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(INSERT_SQL)
        .bind(event.id.as_str())
        .bind(event.event_type)
        .bind(event.artifact.as_str())
        .bind(event.payload.as_str())
        .bind(now)
}

/// Wakes whoever delivers events: this process's worker, and (PostgreSQL) relays elsewhere.
#[derive(Clone, Default)]
pub struct EventBus(Arc<Notify>);

impl EventBus {
    pub async fn notify(&self, db: &Db) {
        self.0.notify_one();
        if let Db::Postgres(pool) = db {
            let _ = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(pool).await;
        }
    }

    /// Waits until notified or `timeout` passes.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.0.notified()).await;
    }
}

/// One delivery of an event to a handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub event_type: String,
    pub artifact_id: String,
    /// 1 on the first delivery.
    pub attempt: u32,
    pub data: serde_json::Value,
}

impl Delivery {
    /// From a CloudEvent (as the Broker delivers it, or as stored in the outbox).
    pub fn from_event(event: &cloudevents::Event, attempt: u32) -> Option<Self> {
        let data = match event.data() {
            Some(cloudevents::Data::Json(v)) => v.clone(),
            Some(cloudevents::Data::Binary(b)) => serde_json::from_slice(b).unwrap_or_default(),
            Some(cloudevents::Data::String(s)) => serde_json::from_str(s).unwrap_or_default(),
            None => serde_json::Value::Null,
        };
        Some(Self {
            id: event.id().to_owned(),
            event_type: event.ty().to_owned(),
            artifact_id: event.subject()?.to_owned(),
            attempt,
            data,
        })
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
/// Something done with an event; must be idempotent (events are delivered at least once).
pub type Handler = Arc<dyn Fn(Delivery) -> HandlerFuture + Send + Sync>;

/// The handlers of one process, by event type.
#[derive(Clone, Default)]
pub struct Handlers(Vec<(&'static str, Handler)>);

impl Handlers {
    /// Adds `handler` for each of `types`.
    pub fn on<F, Fut>(mut self, types: &[&'static str], handler: F) -> Self
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |delivery| Box::pin(handler(delivery)));
        for event_type in types {
            self.0.push((event_type, handler.clone()));
        }
        self
    }

    pub fn merge(mut self, other: Handlers) -> Self {
        self.0.extend(other.0);
        self
    }

    pub fn handles(&self, event_type: &str) -> bool {
        self.0.iter().any(|(t, _)| *t == event_type)
    }

    pub fn types(&self) -> Vec<&'static str> {
        let mut types: Vec<&'static str> = self.0.iter().map(|(t, _)| *t).collect();
        types.dedup();
        types
    }

    /// Runs every handler of the delivery's type, in order.
    pub async fn run(&self, delivery: &Delivery) -> anyhow::Result<()> {
        for (event_type, handler) in &self.0 {
            if *event_type == delivery.event_type {
                handler(delivery.clone()).await?;
            }
        }
        Ok(())
    }
}

/// An outbox row claimed for delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: String,
    pub event_type: String,
    pub artifact_id: String,
    /// Failed deliveries so far.
    pub attempts: i64,
    pub payload: String,
}

/// Claims up to `limit` due events for `owner` until `now + lease`.
pub async fn claim_due(db: &Db, owner: &str, lease: Duration, limit: i64) -> Result<Vec<Claimed>, sqlx::Error> {
    let now = now_ms();
    let until = now + millis(lease);
    let due = "SELECT id FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3 \
               AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_at LIMIT $4";
    match db {
        Db::Postgres(pool) => {
            let sql = format!(
                "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE id IN ({due} FOR UPDATE SKIP LOCKED) \
                 RETURNING id, event_type, artifact_id, attempts, payload"
            );
            sqlx::query_as(&sql).bind(owner).bind(until).bind(now).bind(limit).fetch_all(pool).await
        }
        // SQLite has one writer at a time: the UPDATE is the claim.
        Db::Sqlite(pool) => {
            let sql = format!(
                "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE id IN ({due}) \
                 RETURNING id, event_type, artifact_id, attempts, payload"
            );
            sqlx::query_as(&sql).bind(owner).bind(until).bind(now).bind(limit).fetch_all(pool).await
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Releases every claim of `owner` (a restarted `arca serve`: its previous life's claims).
pub async fn release_claims(db: &Db, owner: &str) -> Result<(), sqlx::Error> {
    with_pool!(db, |pool| async {
        sqlx::query("UPDATE outbox SET lease_until = NULL WHERE lease_owner = $1 AND delivered_at IS NULL")
            .bind(owner)
            .execute(pool)
            .await?;
        sqlx::query("UPDATE event_claims SET lease_until = 0 WHERE owner = $1 AND done_at IS NULL")
            .bind(owner)
            .execute(pool)
            .await?;
        Ok(())
    }
    .await)
}

/// Extends a claim while its work goes on.
pub async fn renew(db: &Db, id: &str, owner: &str, lease: Duration) -> Result<(), sqlx::Error> {
    with_pool!(db, |pool| sqlx::query("UPDATE outbox SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
        .bind(now_ms() + millis(lease))
        .bind(id)
        .bind(owner)
        .execute(pool)
        .await
        .map(|_| ()))
}

/// Records the outcome of one delivery: done, retried later with backoff, or dead-lettered
/// (returns true then).
pub async fn settle(
    db: &Db,
    event: &Claimed,
    owner: &str,
    result: &anyhow::Result<()>,
    retry_base_ms: i64,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    match result {
        Ok(()) => with_pool!(db, |pool| sqlx::query(
            "UPDATE outbox SET delivered_at = $1, lease_until = NULL WHERE id = $2 AND lease_owner = $3"
        )
        .bind(now)
        .bind(&event.id)
        .bind(owner)
        .execute(pool)
        .await
        .map(|_| false)),
        Err(e) => {
            let attempts = event.attempts + 1;
            let dead = (attempts >= MAX_ATTEMPTS).then_some(now);
            let backoff = retry_base_ms << event.attempts.clamp(0, 10);
            if dead.is_some() {
                tracing::error!(event = %event.id, kind = %event.event_type, error = %e, "outbox: event dead-lettered");
            } else {
                tracing::warn!(event = %event.id, kind = %event.event_type, error = %e, "outbox: delivery failed; will retry");
            }
            with_pool!(db, |pool| sqlx::query(
                "UPDATE outbox SET attempts = $1, next_attempt_at = $2, last_error = $3, dead_at = $4, \
                 lease_until = NULL WHERE id = $5 AND lease_owner = $6"
            )
            .bind(attempts)
            .bind(now + backoff)
            .bind(format!("{e:#}").chars().take(2000).collect::<String>())
            .bind(dead)
            .bind(&event.id)
            .bind(owner)
            .execute(pool)
            .await
            .map(|_| dead.is_some()))
        }
    }
}

/// Runs `work` while renewing a lease every third of its length.
pub async fn while_renewing<W, R, RenewFut>(lease: Duration, renew: R, work: W) -> W::Output
where
    W: Future,
    R: Fn() -> RenewFut,
    RenewFut: Future<Output = Result<(), sqlx::Error>>,
{
    tokio::pin!(work);
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = tick.tick() => {
                if let Err(e) = renew().await {
                    tracing::warn!(error = %e, "renewing a lease failed");
                }
            }
        }
    }
}

/// How outbox events leave this process.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Unique name of this process (lease owner).
    pub owner: String,
    pub lease: Duration,
    pub retry_base_ms: i64,
}

/// Delivers outbox events to this process's handlers until the process ends (`arca serve`).
pub async fn run_worker(
    db: Db,
    bus: EventBus,
    handlers: Handlers,
    config: DeliveryConfig,
    dead: prometheus::IntCounter,
) {
    loop {
        let claimed = match claim_due(&db, &config.owner, config.lease, 16).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "outbox: claiming events failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if claimed.is_empty() {
            bus.wait(Duration::from_millis(500)).await;
            continue;
        }
        let runs = claimed.into_iter().map(|event| {
            let (db, handlers, config, dead) = (&db, &handlers, &config, &dead);
            async move {
                let result = match parse_payload(&event) {
                    Some(delivery) => {
                        let renew = || renew(db, &event.id, &config.owner, config.lease);
                        while_renewing(config.lease, renew, handlers.run(&delivery)).await
                    }
                    None => Err(anyhow::anyhow!("unreadable outbox payload")),
                };
                match settle(db, &event, &config.owner, &result, config.retry_base_ms).await {
                    Ok(true) => dead.inc(),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "outbox: recording a delivery failed"),
                }
            }
        });
        futures::future::join_all(runs).await;
    }
}

fn parse_payload(event: &Claimed) -> Option<Delivery> {
    let parsed: cloudevents::Event = serde_json::from_str(&event.payload).ok()?;
    Delivery::from_event(&parsed, u32::try_from(event.attempts + 1).unwrap_or(u32::MAX))
}

/// Where the relay publishes: the Broker's address, and the file of the token it presents.
#[derive(Debug, Clone)]
pub struct Sink {
    pub url: String,
    pub token_file: Option<std::path::PathBuf>,
    /// The longest wait for the Broker's answer to one publication.
    pub timeout: Duration,
}

impl Sink {
    /// The bearer token, read now (Knative rotates the mounted file).
    fn token(&self) -> anyhow::Result<Option<String>> {
        let Some(path) = &self.token_file else { return Ok(None) };
        let token = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("ARCA_SINK_TOKEN_FILE {}: {e}", path.display()))?;
        let token = token.trim();
        anyhow::ensure!(!token.is_empty(), "ARCA_SINK_TOKEN_FILE {}: empty", path.display());
        Ok(Some(token.to_owned()))
    }
}

/// Events the relay publishes at once.
const RELAY_IN_FLIGHT: usize = 32;

/// Publishes outbox events to the Broker (`K_SINK`) as binary-mode CloudEvents until the
/// process ends. A 2xx answer marks an event delivered; anything else is retried.
///
/// The Broker may answer only once its subscribers have (Knative's InMemoryChannel fans out
/// synchronously), so one publication can take as long as a scan plus the Broker's retries:
/// each is its own task, its claim renewed while it waits (never published twice by lease
/// expiry), and the others go on beside it.
pub async fn run_relay(db: Db, bus: EventBus, sink: Sink, config: DeliveryConfig, dead: prometheus::IntCounter) {
    let client = match reqwest::Client::builder().timeout(sink.timeout).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "relay: cannot build an HTTP client");
            return;
        }
    };
    if let Db::Postgres(pool) = &db {
        tokio::spawn(listen(pool.clone(), bus.clone()));
    }
    let mut sending = tokio::task::JoinSet::new();
    loop {
        let room = RELAY_IN_FLIGHT - sending.len();
        let claimed = if room == 0 {
            Vec::new()
        } else {
            match claim_due(&db, &config.owner, config.lease, i64::try_from(room).unwrap_or(1)).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(error = %e, "relay: claiming events failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        };
        if claimed.is_empty() {
            // Wait for a publication to end (room again) or for news.
            tokio::select! {
                Some(_) = sending.join_next(), if !sending.is_empty() => {}
                () = bus.wait(Duration::from_millis(1000)) => {}
            }
            continue;
        }
        let token = sink.token().map_err(|e| format!("{e:#}"));
        for event in claimed {
            let (db, client, url, config, dead, token) =
                (db.clone(), client.clone(), sink.url.clone(), config.clone(), dead.clone(), token.clone());
            sending.spawn(async move {
                let renew = || renew(&db, &event.id, &config.owner, config.lease);
                let result = match &token {
                    Ok(token) => {
                        while_renewing(config.lease, renew, publish(&client, &url, token.as_deref(), &event)).await
                    }
                    Err(e) => Err(anyhow::anyhow!("{e}")),
                };
                match settle(&db, &event, &config.owner, &result, config.retry_base_ms).await {
                    Ok(true) => dead.inc(),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "relay: recording a delivery failed"),
                }
            });
        }
    }
}

/// Wakes the relay when another process writes an event (PostgreSQL `NOTIFY`).
async fn listen(pool: sqlx::PgPool, bus: EventBus) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(CHANNEL).await.is_ok() {
                    while listener.recv().await.is_ok() {
                        bus.0.notify_one();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "relay: LISTEN failed; polling"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One HTTP POST of an event in binary mode: attributes as `ce-*` headers, data as body.
pub fn binary_request(
    client: &reqwest::Client,
    url: &str,
    event: &cloudevents::Event,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let mut request = client
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", event.id())
        .header("ce-type", event.ty())
        .header("ce-source", event.source().as_str());
    if let Some(subject) = event.subject() {
        request = request.header("ce-subject", subject);
    }
    if let Some(time) = event.time() {
        request = request.header("ce-time", time.to_rfc3339());
    }
    let body = match event.data() {
        Some(cloudevents::Data::Json(v)) => serde_json::to_vec(v)?,
        Some(cloudevents::Data::Binary(b)) => b.clone(),
        Some(cloudevents::Data::String(s)) => s.clone().into_bytes(),
        None => Vec::new(),
    };
    Ok(request.header("content-type", event.datacontenttype().unwrap_or("application/json")).body(body))
}

async fn publish(client: &reqwest::Client, sink: &str, token: Option<&str>, event: &Claimed) -> anyhow::Result<()> {
    let parsed: cloudevents::Event =
        serde_json::from_str(&event.payload).map_err(|e| anyhow::anyhow!("unreadable outbox payload: {e}"))?;
    let mut request = binary_request(client, sink, &parsed)?;
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    anyhow::ensure!(response.status().is_success(), "the broker answered {}", response.status());
    Ok(())
}

// ---- Receivers of the Broker's deliveries ----

/// What a receiver may do with an event it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Work on it: this is delivery number `attempt`.
    Acquired { attempt: u32 },
    /// Already done (a redelivery): answer success.
    Done,
    /// Another replica works on it until its lease ends: answer "busy".
    Busy { retry_after_secs: u64 },
}

/// Whether Arca emitted the event `id`, with this type and subject (artifact).
pub async fn emitted(db: &Db, id: &str, event_type: &str, subject: &str) -> Result<bool, sqlx::Error> {
    let found: i64 = with_pool!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE id = $1 AND event_type = $2 AND artifact_id = $3"
    )
    .bind(id)
    .bind(event_type)
    .bind(subject)
    .fetch_one(pool)
    .await)?;
    Ok(found == 1)
}

/// Claims an event id for `owner`; a claim whose holder died is taken over after `lease`.
pub async fn claim_event(db: &Db, event_id: &str, owner: &str, lease: Duration) -> Result<Claim, sqlx::Error> {
    let now = now_ms();
    let until = now + millis(lease);
    let claimed: Option<i64> = with_pool!(db, |pool| sqlx::query_scalar(
        "INSERT INTO event_claims (event_id, owner, lease_until, attempts, created_at) VALUES ($1, $2, $3, 1, $4) \
         ON CONFLICT (event_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until, \
         attempts = event_claims.attempts + 1 \
         WHERE event_claims.done_at IS NULL AND event_claims.lease_until < $4 RETURNING attempts"
    )
    .bind(event_id)
    .bind(owner)
    .bind(until)
    .bind(now)
    .fetch_optional(pool)
    .await)?;
    if let Some(attempts) = claimed {
        return Ok(Claim::Acquired { attempt: u32::try_from(attempts).unwrap_or(u32::MAX) });
    }
    let state: Option<(Option<i64>, i64)> =
        with_pool!(db, |pool| sqlx::query_as("SELECT done_at, lease_until FROM event_claims WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(pool)
            .await)?;
    Ok(match state {
        Some((Some(_), _)) => Claim::Done,
        Some((None, lease_until)) => {
            Claim::Busy { retry_after_secs: u64::try_from((lease_until - now).max(0) / 1000 + 1).unwrap_or(1) }
        }
        None => Claim::Busy { retry_after_secs: 1 },
    })
}

pub async fn renew_event(db: &Db, event_id: &str, owner: &str, lease: Duration) -> Result<(), sqlx::Error> {
    with_pool!(db, |pool| sqlx::query("UPDATE event_claims SET lease_until = $1 WHERE event_id = $2 AND owner = $3")
        .bind(now_ms() + millis(lease))
        .bind(event_id)
        .bind(owner)
        .execute(pool)
        .await
        .map(|_| ()))
}

/// Ends a claim: done (redeliveries are answered as done) or released for a retry.
pub async fn finish_event(db: &Db, event_id: &str, owner: &str, done: bool) -> Result<(), sqlx::Error> {
    let (done_at, lease_until) = if done { (Some(now_ms()), now_ms()) } else { (None, 0) };
    with_pool!(db, |pool| sqlx::query(
        "UPDATE event_claims SET done_at = $1, lease_until = $2 WHERE event_id = $3 AND owner = $4"
    )
    .bind(done_at)
    .bind(lease_until)
    .bind(event_id)
    .bind(owner)
    .execute(pool)
    .await
    .map(|_| ()))
}

// ---- Dead letters ----

/// An event no handler could deliver after `MAX_ATTEMPTS` (or that the Broker gave up on).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: String,
    pub event_type: String,
    pub artifact_id: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub dead_at: Option<i64>,
}

/// Dead-lettered events, newest first, at most 500.
pub async fn dead_letters(db: &Db) -> Result<Vec<DeadLetter>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, DeadLetter>(
        "SELECT id, event_type, artifact_id, attempts, last_error, created_at, dead_at FROM outbox \
         WHERE dead_at IS NOT NULL ORDER BY dead_at DESC LIMIT 500"
    )
    .fetch_all(pool)
    .await)
}

pub async fn dead_letter_count(db: &Db) -> Result<i64, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE dead_at IS NOT NULL")
        .fetch_one(pool)
        .await)
}

/// Records an event the Broker dead-lettered (its dead-letter sink). False when the event
/// is unknown.
pub async fn record_broker_dead_letter(db: &Db, event_id: &str, reason: &str) -> Result<bool, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query(
        "UPDATE outbox SET dead_at = $1, last_error = $2 WHERE id = $3 AND dead_at IS NULL"
    )
    .bind(now_ms())
    .bind(reason.chars().take(2000).collect::<String>())
    .bind(event_id)
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Events not delivered yet (a gauge for operators).
pub async fn depth(db: &Db) -> Result<i64, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL"
    )
    .fetch_one(pool)
    .await)
}
