//! The sub-states the features take. Every function has a [`Core`]; the rest exist only in
//! the functions that need them, so a function's dependencies (and the secrets it holds)
//! are visible in its state type: the `scan` function's state has no `Signing`, so no
//! handler of it can sign. `arca serve` holds all of them ([`ServeState`]).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;

use crate::core::audit::Audit;
use crate::core::config::Config;
use crate::core::db::Db;
use crate::core::jwt;
use crate::core::outbox::{EventBus, Handlers};
use crate::core::ratelimit::RateLimiter;
use crate::core::scan::Scanner;
use crate::core::signing::{Signer, TrustedSigners};
use crate::core::storage::BlobStore;
use crate::core::telemetry::Metrics;
use crate::core::trust::TrustBundle;

/// What every function has: configuration, the metadata store, metrics, the audit writer,
/// rate limits, access-token verification (public key only) and the event bus.
pub struct CoreParts {
    pub config: Config,
    pub db: Db,
    pub metrics: Metrics,
    pub audit: Audit,
    pub limiter: RateLimiter,
    pub tokens: jwt::Verifier,
    pub bus: EventBus,
    /// This process's name in leases and claims (unique per process).
    pub instance: String,
}

/// Cheap-to-clone handle on the [`CoreParts`].
#[derive(Clone)]
pub struct Core(pub Arc<CoreParts>);

impl Deref for Core {
    type Target = CoreParts;
    fn deref(&self) -> &CoreParts {
        &self.0
    }
}

impl Core {
    /// A unique name for this process: host, pid and a random suffix.
    pub fn instance_name() -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "arca".to_owned());
        format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
    }

    /// The name of an `arca serve` on `data_dir`: the same across restarts, so that a
    /// restarted server takes back its own claims at once instead of waiting for their
    /// leases to expire (two servers on one database have two data dirs).
    pub fn embedded_instance_name(data_dir: &std::path::Path) -> String {
        use sha2::Digest;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "arca".to_owned());
        let dir = sha2::Sha256::digest(data_dir.to_string_lossy().as_bytes());
        format!("serve-{host}-{}", hex::encode(&dir[..6]))
    }
}

impl crate::core::lifecycle::Context for Core {
    fn db(&self) -> &Db {
        &self.db
    }
    fn bus(&self) -> &EventBus {
        &self.bus
    }
    fn audit(&self) -> &Audit {
        &self.audit
    }
    fn metrics(&self) -> &crate::core::telemetry::Metrics {
        &self.metrics
    }
}

/// The access-token signing key (the `auth` function only).
#[derive(Clone)]
pub struct Issuer(pub Arc<jwt::Issuer>);

/// The blob store (`upload`, `ingest`, `download`, `scan`, `sign`).
#[derive(Clone)]
pub struct Blobs(pub Arc<BlobStore>);

impl Deref for Blobs {
    type Target = BlobStore;
    fn deref(&self) -> &BlobStore {
        &self.0
    }
}

/// Trivy and its vulnerability DB (the `scan` function only).
#[derive(Clone)]
pub struct Scanning(pub Arc<Scanner>);

impl Deref for Scanning {
    type Target = Scanner;
    fn deref(&self) -> &Scanner {
        &self.0
    }
}

/// Arca's artifact-signing key (the `sign` function only).
#[derive(Clone)]
pub struct Signing(pub Arc<Signer>);

/// The signing certificates whose signatures downloads accept (public; `download`, `sign`).
#[derive(Clone)]
pub struct Trusted(pub Arc<TrustedSigners>);

/// CAs that publishers' signing certificates must chain to (public; `sign`).
#[derive(Clone)]
pub struct PublisherTrust(pub Arc<TrustBundle>);

/// The bearer token MinIO presents with storage notifications (`ingest`).
#[derive(Clone)]
pub struct IngestToken(pub Arc<String>);

/// The key that signs single-use download links (`download`).
#[derive(Clone)]
pub struct DownloadLinks(pub Arc<[u8; 32]>);

/// What a CloudEvent receiver (`POST /`) needs: who may send, and what to do with events.
#[derive(Clone)]
pub struct Receiver(pub Arc<ReceiverParts>);

pub struct ReceiverParts {
    /// Verifies the Broker's sender token; None refuses every delivery.
    pub verifier: Option<crate::web::receiver::SenderVerifier>,
    pub handlers: Handlers,
    /// How long a claim on an event lasts without renewal.
    pub lease: Duration,
}

/// Everything, for `arca serve` (all functions in one process).
#[derive(Clone, FromRef)]
pub struct ServeState {
    pub core: Core,
    pub probes: crate::web::system::Probes,
    pub issuer: Issuer,
    pub blobs: Blobs,
    pub scanning: Scanning,
    pub signing: Signing,
    pub trusted: Trusted,
    pub publisher_trust: PublisherTrust,
    pub links: DownloadLinks,
    pub audit_key: crate::features::audit::AuditKey,
}
