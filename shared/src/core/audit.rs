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

use super::db::{now_ms, Db};
use crate::with_pool;

/// Hash that precedes the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const BATCH: usize = 256;
/// The outcomes an entry may have; an event with any other (an empty one included) is
/// refused, here and by the database.
pub const OUTCOMES: [&str; 4] = ["success", "denied", "failure", "error"];
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
        // The database refuses such a row, and a refused batch would be retried forever.
        events.retain(|event| {
            let known = OUTCOMES.contains(&event.outcome.as_str());
            if !known {
                tracing::error!(action = %event.action, outcome = %event.outcome, "audit: entry refused: unknown outcome");
            }
            known
        });
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339 time; entries at or after it.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339 time; entries before it.
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// Resolved filter values bound into the query.
#[derive(Debug, Clone, Copy, Default)]
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
    /// The latest signed checkpoint the chain was checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
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
            return Ok(Verification { valid: true, entries: count, head: prev, first_invalid: None, checkpoint: None });
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
                    checkpoint: None,
                });
            }
            count += 1;
            expected_seq += 1;
            prev = entry.hash;
        }
    }
}

// ---- Checkpoints: the chain's head, signed with a key the database does not hold ----

/// A signed statement that the chain had `seq` entries ending in `head_hash` at `signed_at`.
/// Deleting entries from the tail (which re-links nothing and so still verifies as a chain)
/// is detected: the chain no longer reaches the latest checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Checkpoint {
    pub seq: i64,
    pub head_hash: String,
    /// Unix milliseconds.
    pub signed_at: i64,
    /// Base64 of the DER ECDSA P-256 signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed.
    pub fn message(&self) -> String {
        format!("arca-audit-checkpoint:v1:{}:{}:{}", self.seq, self.head_hash, self.signed_at)
    }
}

/// The key that signs checkpoints (the `audit` function; `arca serve` keeps one in the data
/// dir, outside the database), and the signer's anchor: the last checkpoint it signed, kept
/// in a file beside it, so a database writer who removes checkpoints cannot make it forget
/// what it vouched for.
pub struct CheckpointKey {
    key: p256::ecdsa::SigningKey,
    anchor: std::path::PathBuf,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey(<redacted>)")
    }
}

impl CheckpointKey {
    /// From `path` (PKCS#8 PEM), or `<data-dir>/keys/audit-checkpoint.pem` (generated). The
    /// anchor is `<data-dir>/audit-anchor.json`.
    pub fn load_or_generate(path: Option<&std::path::Path>, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        use p256::pkcs8::DecodePrivateKey;
        let pem = match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("ARCA_AUDIT_CHECKPOINT_KEY: cannot read {}", path.display()))?,
            None => {
                let path = data_dir.join("keys").join("audit-checkpoint.pem");
                match std::fs::read_to_string(&path) {
                    Ok(pem) => pem,
                    Err(_) => {
                        std::fs::create_dir_all(data_dir.join("keys"))?;
                        let pem = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?.serialize_pem();
                        super::fsutil::write_secret(&path, pem.as_bytes())?;
                        pem
                    }
                }
            }
        };
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem)
            .context("ARCA_AUDIT_CHECKPOINT_KEY: not a PKCS#8 ECDSA P-256 key")?;
        Ok(Self { key, anchor: data_dir.join(ANCHOR_FILE) })
    }

    /// The last checkpoint this signer signed (None before the first). An anchor that cannot
    /// be read or is not signed by this key is an error naming why.
    pub fn anchor(&self) -> Result<Option<Checkpoint>, String> {
        let text = match std::fs::read_to_string(&self.anchor) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("the checkpoint anchor {} cannot be read: {e}", self.anchor.display())),
        };
        let anchor: Checkpoint = serde_json::from_str(&text)
            .map_err(|e| format!("the checkpoint anchor {} is malformed: {e}", self.anchor.display()))?;
        if !checkpoint_signed_by(&anchor, &self.verifying_key()) {
            return Err(format!("the checkpoint anchor {} is not signed by the checkpoint key", self.anchor.display()));
        }
        Ok(Some(anchor))
    }

    fn remember(&self, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        use anyhow::Context;
        if let Some(dir) = self.anchor.parent() {
            std::fs::create_dir_all(dir)?;
        }
        super::fsutil::write_secret(&self.anchor, &serde_json::to_vec(checkpoint)?)
            .with_context(|| format!("cannot write the checkpoint anchor {}", self.anchor.display()))
    }

    /// A key for `purpose`, derived from this one (single-use export links).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key.to_bytes()).unwrap_or_else(|_| unreachable!("any key length"));
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The public key in PEM (to verify exports offline).
    pub fn public_pem(&self) -> String {
        use p256::pkcs8::EncodePublicKey;
        self.key.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap_or_default()
    }

    pub fn verifying_key(&self) -> p256::ecdsa::VerifyingKey {
        *self.key.verifying_key()
    }

    fn sign(&self, checkpoint: &mut Checkpoint) {
        use base64::Engine;
        use p256::ecdsa::signature::Signer;
        let signature: p256::ecdsa::Signature = self.key.sign(checkpoint.message().as_bytes());
        checkpoint.signature = base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
    }
}

/// The signer's anchor, in its state dir (the data dir).
const ANCHOR_FILE: &str = "audit-anchor.json";

/// Checks a checkpoint's signature.
pub fn checkpoint_signed_by(checkpoint: &Checkpoint, key: &p256::ecdsa::VerifyingKey) -> bool {
    use base64::Engine;
    use p256::ecdsa::signature::Verifier;
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&checkpoint.signature) else { return false };
    let Ok(signature) = p256::ecdsa::Signature::from_der(&der) else { return false };
    key.verify(checkpoint.message().as_bytes(), &signature).is_ok()
}

/// What a checkpoint round did.
#[derive(Debug)]
pub enum Round {
    Signed(Checkpoint),
    /// The latest checkpoint is the head already.
    UpToDate,
    /// The log, or its checkpoints, were altered (the reason): nothing was signed.
    Refused(String),
}

/// Signs the current head, unless it is already the latest checkpoint. Returns the new one.
/// Refuses when the log no longer agrees with the signer's anchor or the latest checkpoint
/// (entries were removed or rewritten, or checkpoints removed): signing the altered chain
/// would launder it.
pub async fn checkpoint(db: &Db, key: &CheckpointKey) -> anyhow::Result<Round> {
    let head: Option<(i64, String)> =
        with_pool!(db, |pool| sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(pool)
            .await)?;
    let (seq, head_hash) = head.unwrap_or((0, GENESIS.to_owned()));
    let anchor = match key.anchor() {
        Ok(anchor) => anchor,
        Err(reason) => return Ok(Round::Refused(reason)),
    };
    let latest = latest_checkpoint(db).await?;
    if let Some(latest) = latest.as_ref().filter(|c| !checkpoint_signed_by(c, &key.verifying_key())) {
        return Ok(Round::Refused(format!(
            "the latest checkpoint (entry {}) is not signed by the checkpoint key",
            latest.seq
        )));
    }
    for vouched in anchor.iter().chain(latest.iter()) {
        if let Some(broken) = disagreement(vouched, seq, hash_at(db, vouched.seq).await?) {
            return Ok(Round::Refused(format!(
                "the audit log no longer agrees with a signed checkpoint: {}",
                broken.reason
            )));
        }
    }
    if let Some(missing) = anchor.as_ref().and_then(|a| checkpoints_removed(a, latest.as_ref())) {
        return Ok(Round::Refused(missing.reason));
    }
    if seq == 0 || latest.as_ref().is_some_and(|l| l.seq >= seq) {
        return Ok(Round::UpToDate);
    }
    let mut checkpoint = Checkpoint { seq, head_hash, signed_at: now_ms(), signature: String::new() };
    key.sign(&mut checkpoint);
    with_pool!(db, |pool| sqlx::query(
        "INSERT INTO audit_checkpoints (seq, head_hash, signed_at, signature) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (seq) DO NOTHING"
    )
    .bind(checkpoint.seq)
    .bind(&checkpoint.head_hash)
    .bind(checkpoint.signed_at)
    .bind(&checkpoint.signature)
    .execute(pool)
    .await
    .map(|_| ()))?;
    // After the insert: an anchor is never ahead of the checkpoints in the database.
    key.remember(&checkpoint)?;
    Ok(Round::Signed(checkpoint))
}

/// The hash of the entry at `seq`, if there is one.
async fn hash_at(db: &Db, seq: i64) -> Result<Option<String>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
        .bind(seq)
        .fetch_optional(pool)
        .await)
}

/// Why the checkpoints in the database (`latest` the newest) lack the anchored one.
fn checkpoints_removed(anchor: &Checkpoint, latest: Option<&Checkpoint>) -> Option<BrokenEntry> {
    (latest.map_or(0, |l| l.seq) < anchor.seq).then(|| BrokenEntry {
        seq: anchor.seq,
        reason: format!(
            "the signer's anchor vouches for a checkpoint at entry {} that the database no longer holds: \
             checkpoints were removed",
            anchor.seq
        ),
    })
}

pub async fn latest_checkpoint(db: &Db) -> Result<Option<Checkpoint>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, Checkpoint>(
        "SELECT seq, head_hash, signed_at, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
    )
    .fetch_optional(pool)
    .await)
}

/// Every checkpoint, oldest first (for offline verification of an export).
pub async fn checkpoints(db: &Db) -> Result<Vec<Checkpoint>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, Checkpoint>(
        "SELECT seq, head_hash, signed_at, signature FROM audit_checkpoints ORDER BY seq"
    )
    .fetch_all(pool)
    .await)
}

/// Checks entries (in order, from the first) against their chain and the checkpoints,
/// without a database: what `arca audit verify` does with an export.
pub fn verify_entries(
    entries: &[AuditEntry],
    checkpoints: &[Checkpoint],
    key: Option<&p256::ecdsa::VerifyingKey>,
) -> Verification {
    let mut prev = GENESIS.to_owned();
    for (i, entry) in entries.iter().enumerate() {
        let expected = i64::try_from(i).unwrap_or(i64::MAX) + 1;
        let reason = if entry.seq != expected {
            Some(format!("expected entry {expected}, found {} (entries missing)", entry.seq))
        } else if entry.prev_hash != prev {
            Some("prev_hash does not match the previous entry".to_owned())
        } else if entry.compute_hash() != entry.hash {
            Some("hash does not match the entry's contents".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            let count = expected - 1;
            return Verification {
                valid: false,
                entries: count,
                head: prev,
                first_invalid: Some(BrokenEntry { seq: entry.seq, reason }),
                checkpoint: None,
            };
        }
        prev = entry.hash.clone();
    }
    let count = i64::try_from(entries.len()).unwrap_or(i64::MAX);
    let mut result = Verification { valid: true, entries: count, head: prev, first_invalid: None, checkpoint: None };
    check_against_checkpoints(&mut result, checkpoints, key, |seq| {
        usize::try_from(seq - 1).ok().and_then(|i| entries.get(i)).map(|e| e.hash.clone())
    });
    result
}

/// The chain must agree with every validly signed checkpoint: a checkpoint vouches for the
/// entry at its `seq`, so a log cut below it and grown again still fails at that checkpoint.
fn check_against_checkpoints(
    result: &mut Verification,
    checkpoints: &[Checkpoint],
    key: Option<&p256::ecdsa::VerifyingKey>,
    hash_at: impl Fn(i64) -> Option<String>,
) {
    let Some(key) = key else { return };
    if let Some(forged) = checkpoints.iter().find(|c| !checkpoint_signed_by(c, key)) {
        result.valid = false;
        result.first_invalid = Some(BrokenEntry {
            seq: forged.seq,
            reason: format!("checkpoint at entry {} is not signed by the checkpoint key", forged.seq),
        });
        return;
    }
    let mut ordered: Vec<&Checkpoint> = checkpoints.iter().collect();
    ordered.sort_by_key(|c| c.seq);
    let Some(latest) = ordered.last() else { return };
    result.checkpoint = Some((*latest).clone());
    if !result.valid {
        return;
    }
    for checkpoint in ordered {
        if let Some(broken) = disagreement(checkpoint, result.entries, hash_at(checkpoint.seq)) {
            result.valid = false;
            result.first_invalid = Some(broken);
            return;
        }
    }
}

/// Why the entry at a checkpoint's `seq` (`hash`, None when absent) contradicts it.
fn disagreement(checkpoint: &Checkpoint, entries: i64, hash: Option<String>) -> Option<BrokenEntry> {
    match hash {
        None => Some(BrokenEntry {
            seq: entries + 1,
            reason: format!(
                "the log ends at entry {entries} but a signed checkpoint vouches for {} entries: the tail was removed",
                checkpoint.seq
            ),
        }),
        Some(hash) if hash != checkpoint.head_hash => Some(BrokenEntry {
            seq: checkpoint.seq,
            reason: format!("entry {} differs from the signed checkpoint", checkpoint.seq),
        }),
        Some(_) => None,
    }
}

/// Verifies the stored chain, then against every signed checkpoint and the signer's anchor
/// (which a database writer cannot reach: removing checkpoints with the entries they vouch
/// for is detected too).
pub async fn verify_with_checkpoints(db: &Db, key: &CheckpointKey) -> Result<Verification, sqlx::Error> {
    let mut result = verify(db).await?;
    let checkpoints = checkpoints(db).await?;
    let mut hashes = std::collections::HashMap::new();
    for c in &checkpoints {
        if let Some(hash) = hash_at(db, c.seq).await? {
            hashes.insert(c.seq, hash);
        }
    }
    check_against_checkpoints(&mut result, &checkpoints, Some(&key.verifying_key()), |seq| hashes.get(&seq).cloned());
    if !result.valid {
        return Ok(result);
    }
    let broken = match key.anchor() {
        Err(reason) => Some(BrokenEntry { seq: 0, reason }),
        Ok(None) => None,
        Ok(Some(anchor)) => match disagreement(&anchor, result.entries, hash_at(db, anchor.seq).await?) {
            Some(broken) => Some(broken),
            None => checkpoints_removed(&anchor, checkpoints.iter().max_by_key(|c| c.seq)),
        },
    };
    if let Some(broken) = broken {
        result.valid = false;
        result.first_invalid = Some(broken);
    }
    Ok(result)
}
