//! Configuration: read once from flags and environment into one typed struct, validated
//! at start-up. Every problem is reported as one line naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ipnet::IpNet;

use crate::core::rbac::Role;

/// Settings shared by `arca serve` and every function binary (flags, or `ARCA_*` variables).
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "ARCA_LISTEN", default_value = "127.0.0.1:8443", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Directory for the database, keys, certificates and blobs.
    #[arg(long, env = "ARCA_DATA_DIR", default_value = "./arca-data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Metadata database: postgres://… for PostgreSQL; unset for SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// PostgreSQL connections this process opens at most (each replica of each function
    /// counts against the server's max_connections: the manifests size them per function).
    #[arg(long, env = "ARCA_DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=64), value_name = "N")]
    pub db_pool_size: u32,

    /// PEM certificate chain for HTTPS (default: a self-signed certificate in the data dir).
    #[arg(long, env = "ARCA_TLS_CERT", requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "ARCA_TLS_KEY", requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,

    /// Serve plain HTTP instead of HTTPS. Only for running behind a TLS-terminating
    /// reverse proxy on the same host or network: never expose it directly.
    #[arg(long, env = "ARCA_PLAIN_HTTP")]
    pub plain_http: bool,

    /// Bearer token that Prometheus presents to scrape /api/metrics.
    #[arg(long, env = "ARCA_METRICS_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub metrics_token: Option<String>,

    /// Largest JSON request body accepted, in bytes.
    #[arg(long, env = "ARCA_MAX_JSON_BYTES", default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_json_bytes: usize,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "ARCA_SHUTDOWN_TIMEOUT", default_value_t = 30, value_name = "SECS")]
    pub shutdown_timeout: u64,

    /// CIDRs (or addresses) of reverse proxies whose X-Forwarded-For is trusted.
    #[arg(long, env = "ARCA_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net, value_name = "CIDRS")]
    pub trusted_proxies: Vec<IpNet>,

    /// CIDRs allowed to use the API at all (empty: any address).
    #[arg(long, env = "ARCA_ALLOWLIST", value_delimiter = ',', value_parser = parse_net, value_name = "CIDRS")]
    pub allowlist: Vec<IpNet>,

    /// Requests per minute per client IP, and per user or token.
    #[arg(long, env = "ARCA_RATE_LIMIT", default_value_t = 1200, value_name = "N")]
    pub rate_limit: u32,

    /// Login attempts per minute per client IP.
    #[arg(long, env = "ARCA_LOGIN_RATE_LIMIT", default_value_t = 30, value_name = "N")]
    pub login_rate_limit: u32,

    /// Failed logins before an account is locked (an IP after four times as many).
    #[arg(long, env = "ARCA_LOCKOUT_THRESHOLD", default_value_t = 5, value_name = "N")]
    pub lockout_threshold: u32,

    /// Longest lifetime of an API token, in days.
    #[arg(long, env = "ARCA_TOKEN_MAX_DAYS", default_value_t = 90, value_name = "DAYS")]
    pub token_max_days: u32,

    /// Lifetime of a refresh token (sign-in session), in hours.
    #[arg(long, env = "ARCA_REFRESH_TTL_HOURS", default_value_t = 168, value_name = "HOURS")]
    pub refresh_ttl_hours: u32,

    /// Largest artifact accepted, in bytes.
    #[arg(long, env = "ARCA_MAX_ARTIFACT_BYTES", default_value_t = 5 * 1024 * 1024 * 1024, value_name = "BYTES")]
    pub max_artifact_bytes: u64,

    /// Seconds an upload URL stays valid.
    #[arg(long, env = "ARCA_UPLOAD_URL_TTL", default_value_t = 900, value_name = "SECS")]
    pub upload_url_ttl: u64,

    /// S3-compatible object store (e.g. MinIO) for blobs; unset: encrypted local files.
    #[arg(long, env = "ARCA_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// The store's address as browsers and CLI clients reach it, when it differs from
    /// `ARCA_S3_ENDPOINT` (in the cluster: the ingress); presigned URLs are signed for it.
    #[arg(long, env = "ARCA_S3_PUBLIC_ENDPOINT", value_name = "URL")]
    pub s3_public_endpoint: Option<String>,

    /// Bucket for blobs (created private, with default encryption, if missing).
    #[arg(long, env = "ARCA_S3_BUCKET", default_value = "arca-artifacts", value_name = "NAME")]
    pub s3_bucket: String,

    #[arg(long, env = "ARCA_S3_REGION", default_value = "us-east-1", value_name = "REGION")]
    pub s3_region: String,

    /// Access key id (the secret comes from `ARCA_S3_SECRET_KEY` only).
    #[arg(long, env = "ARCA_S3_ACCESS_KEY", value_name = "ID")]
    pub s3_access_key: Option<String>,

    /// Server-side encryption: `AES256` (SSE-S3) or `aws:kms:<key-id>` (SSE-KMS).
    #[arg(long, env = "ARCA_S3_SSE", default_value = "AES256", value_name = "MODE")]
    pub s3_sse: String,

    /// Artifacts larger than this are uploaded in parts (presigned URL per part).
    #[arg(long, env = "ARCA_S3_MULTIPART_THRESHOLD", default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    pub s3_multipart_threshold: u64,

    /// Size of each part of a multipart upload (5 MiB … 5 GiB).
    #[arg(long, env = "ARCA_S3_PART_SIZE", default_value_t = 16 * 1024 * 1024, value_name = "BYTES")]
    pub s3_part_size: u64,

    /// The Trivy binary (a path, or a name looked up in PATH).
    #[arg(long, env = "ARCA_TRIVY", default_value = "trivy", value_name = "PATH")]
    pub trivy: PathBuf,

    /// Trivy's cache dir, holding the vulnerability DB (`db/trivy.db`); default `<data-dir>/trivy`.
    #[arg(long, env = "ARCA_TRIVY_CACHE_DIR", value_name = "DIR")]
    pub trivy_cache_dir: Option<PathBuf>,

    /// Deadline of one scan, in seconds (Trivy's process group is killed after it).
    #[arg(long, env = "ARCA_SCAN_TIMEOUT", default_value_t = 600, value_name = "SECS")]
    pub scan_timeout: u64,

    /// Scans run at once.
    #[arg(long, env = "ARCA_SCAN_CONCURRENCY", default_value_t = 2, value_name = "N")]
    pub scan_concurrency: usize,

    /// Attempts of a failing scan before the artifact fails (fail-closed).
    #[arg(long, env = "ARCA_SCAN_ATTEMPTS", default_value_t = 3, value_name = "N")]
    pub scan_attempts: u32,

    /// Most bytes an archive may expand to for scanning.
    #[arg(long, env = "ARCA_SCAN_MAX_EXTRACT_BYTES", default_value_t = 8 * 1024 * 1024 * 1024, value_name = "BYTES")]
    pub scan_max_extract_bytes: u64,

    /// Most files an archive may hold for scanning.
    #[arg(long, env = "ARCA_SCAN_MAX_FILES", default_value_t = 50_000, value_name = "N")]
    pub scan_max_files: u64,

    /// Largest expansion ratio of an archive (compression bombs).
    #[arg(long, env = "ARCA_SCAN_MAX_RATIO", default_value_t = 200, value_name = "N")]
    pub scan_max_ratio: u64,

    /// OCI repository Trivy downloads the vulnerability DB from (default: Trivy's own).
    #[arg(long, env = "ARCA_TRIVY_DB_REPOSITORY", value_name = "REPO")]
    pub trivy_db_repository: Option<String>,

    /// Allow a plain-HTTP or self-signed registry for DB downloads.
    #[arg(long, env = "ARCA_TRIVY_DB_INSECURE")]
    pub trivy_db_insecure: bool,

    /// Time between checks for a newer vulnerability DB (`12h`, `30m`, `90s`; a bare number
    /// is hours); `0` turns downloads off (air-gapped: `arca admin trivy-db-import` only).
    #[arg(long, env = "ARCA_TRIVY_DB_UPDATE_INTERVAL", default_value = "12h", value_parser = parse_duration, value_name = "DURATION")]
    pub trivy_db_update_interval: Duration,

    /// Hours after which the vulnerability DB counts as stale (health, metrics, alerts).
    #[arg(long, env = "ARCA_TRIVY_DB_STALE_HOURS", default_value_t = 72, value_name = "HOURS")]
    pub trivy_db_stale_hours: u64,

    /// Address-space cap of the child process that detects and unpacks an archive, in bytes.
    #[arg(long, env = "ARCA_SCAN_MAX_MEMORY", default_value_t = 512 * 1024 * 1024, value_name = "BYTES")]
    pub scan_max_memory: u64,

    /// How often expired exceptions and vulnerability-DB updates are checked, in seconds.
    #[arg(long, env = "ARCA_POLICY_RECHECK_SECS", default_value_t = 60, value_name = "SECS")]
    pub policy_recheck_secs: u64,

    /// How often the audit chain's head is signed (a checkpoint), in seconds.
    #[arg(long, env = "ARCA_AUDIT_CHECKPOINT_SECS", default_value_t = 300, value_name = "SECS")]
    pub audit_checkpoint_secs: u64,

    /// First retry delay of a failed event delivery, in milliseconds (doubles per attempt).
    #[arg(long, env = "ARCA_EVENT_RETRY_BASE_MS", default_value_t = 1000, value_name = "MS")]
    pub event_retry_base_ms: i64,

    /// PEM private key that signs access tokens (the `auth` function; `arca serve`
    /// generates one in the data dir when unset).
    #[arg(long, env = "ARCA_JWT_KEY", value_name = "PEM")]
    pub jwt_key: Option<PathBuf>,

    /// PEM public key that verifies access tokens (every function but `auth`).
    #[arg(long, env = "ARCA_JWT_PUBLIC_KEY", value_name = "PEM")]
    pub jwt_public_key: Option<PathBuf>,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "ARCA_ACCESS_TOKEN_TTL", default_value_t = 900, value_name = "SECS")]
    pub access_token_ttl: u64,

    /// How long a claim on an event or a job lasts without renewal, in seconds.
    #[arg(long, env = "ARCA_EVENT_LEASE_SECS", default_value_t = 30, value_name = "SECS")]
    pub event_lease_secs: u64,

    /// Where the outbox relay publishes CloudEvents (the Broker; Knative's SinkBinding sets it).
    #[arg(long, env = "K_SINK", value_name = "URL", hide = true)]
    pub k_sink: Option<String>,

    /// File holding the bearer token the relay presents to `K_SINK` (Knative's OIDC token,
    /// mounted by the SinkBinding; read again for every batch, as it rotates).
    #[arg(long, env = "ARCA_SINK_TOKEN_FILE", value_name = "FILE", hide = true)]
    pub sink_token_file: Option<PathBuf>,

    /// How long the relay waits for the Broker to answer one publication, in seconds. A
    /// channel that delivers synchronously (Knative's InMemoryChannel) answers only after the
    /// subscriber's work (a scan: up to its deadline) and the Broker's own retries (about two
    /// minutes): a shorter wait publishes the event again while the first copy is in flight.
    #[arg(long, env = "ARCA_RELAY_TIMEOUT_SECS", default_value_t = 300, value_name = "SECS", hide = true)]
    pub relay_timeout_secs: u64,

    /// JWKS (file) that verifies the Broker's sender tokens (Knative OIDC).
    #[arg(long, env = "ARCA_EVENT_JWKS", value_name = "FILE")]
    pub event_jwks: Option<PathBuf>,

    /// Issuer of the Broker's sender tokens.
    #[arg(long, env = "ARCA_EVENT_ISSUER", value_name = "ISS")]
    pub event_issuer: Option<String>,

    /// Audience the Broker's sender tokens must carry (the Trigger's subscriber audience).
    #[arg(long, env = "ARCA_EVENT_AUDIENCE", value_name = "AUD")]
    pub event_audience: Option<String>,

    /// Subjects (`sub`) of the sender tokens a receiver accepts, comma-separated: the
    /// Broker's identities (Knative: each Trigger's OIDC service account,
    /// `system:serviceaccount:<namespace>:<trigger>-oidc-eventing.knative.dev-trigger`).
    #[arg(long, env = "ARCA_EVENT_SENDERS", value_delimiter = ',', value_name = "SUBJECTS")]
    pub event_senders: Vec<String>,

    /// Seconds an artifact may wait in `scanning` or `signing` without progress before the
    /// reconciler sends its event again (it must outlast the Broker's retries).
    #[arg(long, env = "ARCA_REDRIVE_AFTER_SECS", default_value_t = 900, value_name = "SECS")]
    pub redrive_after_secs: u64,

    /// Times the reconciler sends a stuck artifact's event again before failing it.
    #[arg(long, env = "ARCA_REDRIVE_ATTEMPTS", default_value_t = 3, value_name = "N")]
    pub redrive_attempts: u32,

    /// Directory of the built web app (`arca serve`); default `frontend/dist` when present.
    #[arg(long, env = "ARCA_WEB_DIR", value_name = "DIR")]
    pub web_dir: Option<PathBuf>,

    /// Lifetime of a presigned download URL (S3 store), in seconds.
    #[arg(long, env = "ARCA_S3_DOWNLOAD_URL_TTL", default_value_t = 60, value_name = "SECS")]
    pub s3_download_url_ttl: u64,

    /// ARN of the bucket notification target (MinIO's webhook to `ingest`).
    #[arg(long, env = "ARCA_S3_NOTIFY_ARN", default_value = "arn:minio:sqs::ARCA:webhook", value_name = "ARN")]
    pub s3_notify_arn: String,

    /// Origins allowed to upload to the bucket from a browser (CORS), comma-separated.
    #[arg(long, env = "ARCA_CORS_ORIGINS", value_delimiter = ',', value_name = "ORIGINS")]
    pub cors_origins: Vec<String>,

    /// Audit entries per minute that one address may cause with anonymous failed requests.
    #[arg(long, env = "ARCA_ANONYMOUS_AUDIT_RATE", default_value_t = 60, value_name = "N")]
    pub anonymous_audit_rate: u32,

    /// Most connections open at once; over it, new connections are closed at once.
    #[arg(long, env = "ARCA_MAX_CONNECTIONS", default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,

    /// Seconds a connection may stay silent (no byte read or written) before it is closed.
    #[arg(long, env = "ARCA_IDLE_TIMEOUT", default_value_t = 60, value_name = "SECS")]
    pub idle_timeout: u64,

    /// Seconds a client has to send a request's headers (and to finish a TLS handshake).
    #[arg(long, env = "ARCA_HEADER_TIMEOUT", default_value_t = 10, value_name = "SECS")]
    pub header_timeout: u64,

    /// Seconds a non-streaming request may take (uploads, downloads and exports stream).
    #[arg(long, env = "ARCA_REQUEST_TIMEOUT", default_value_t = 30, value_name = "SECS")]
    pub request_timeout: u64,

    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, env = "ARCA_HTTP2_MAX_STREAMS", default_value_t = 128, value_name = "N")]
    pub http2_max_streams: u32,

    /// Benchmarks only: do not write the audit log (to measure its cost). Never in production.
    #[arg(long, env = "ARCA_BENCH_NO_AUDIT", hide = true)]
    pub bench_no_audit: bool,

    /// Log filter (tracing syntax), e.g. `info` or `arca=debug`.
    #[arg(long, env = "ARCA_LOG", default_value = "info", value_name = "FILTER")]
    pub log: String,
}

/// Where metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    Sqlite {
        path: PathBuf,
    },
    /// The URL may hold a password: never log or print it.
    Postgres {
        url: String,
        /// Connections this process opens at most (`ARCA_DB_POOL_SIZE`).
        pool_size: u32,
    },
}

/// Server-side encryption requested on every S3 write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// SSE-S3 (`AES256`): keys managed by the store.
    S3,
    /// SSE-KMS with the named key.
    Kms(String),
}

/// The S3 blob store.
#[derive(Clone)]
pub struct S3Config {
    pub endpoint: String,
    /// Where clients reach the store (presigned URLs); None: `endpoint`.
    pub public_endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    /// Never logged: `Debug` prints it redacted.
    pub secret_key: String,
    pub sse: Sse,
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Lifetime of presigned download URLs.
    pub download_url_ttl: Duration,
    /// The bucket notification target (`setup-storage`).
    pub notify_arn: String,
}

impl S3Config {
    /// `scheme://host[:port]` of the address clients use (for CORS and CSP).
    pub fn public_origin(&self) -> String {
        let url = self.public_endpoint.as_deref().unwrap_or(&self.endpoint);
        let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
        format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("sse", &self.sse)
            .finish_non_exhaustive()
    }
}

/// TLS material for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsConfig {
    /// No TLS (behind a terminating proxy, or inside a Knative pod).
    Off,
    /// Certificate and key in the data dir, generated on first start.
    SelfSigned,
    /// Operator-provided PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

/// The validated configuration of one Arca process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub tls: TlsConfig,
    pub metrics_token: Option<String>,
    pub max_json_bytes: usize,
    pub shutdown_timeout: Duration,
    /// Initial admin password (`ARCA_ADMIN_PASSWORD`), used only when the admin is created.
    pub admin_password: Option<String>,
    pub network: NetworkPolicy,
    pub limits: Limits,
    /// False only in benchmarks that measure the audit log's cost.
    pub audit_enabled: bool,
    pub max_artifact_bytes: u64,
    pub upload_url_ttl: Duration,
    /// Object store for blobs; None: encrypted local files.
    pub s3: Option<S3Config>,
    pub scan: crate::core::scan::ScanConfig,
    pub signing: crate::core::signing::SigningConfig,
    pub policy: crate::core::scan::policy::Policy,
    pub policy_recheck: Duration,
    /// How often the audit chain's head is signed.
    pub audit_checkpoint: Duration,
    /// Master key (`ARCA_MASTER_KEY`, base64); else `<data-dir>/master.key`.
    pub master_key: Option<String>,
    pub jwt: JwtConfig,
    pub events: EventConfig,
    pub server: ServerLimits,
    /// The built web app (`arca serve`).
    pub web_dir: Option<PathBuf>,
    /// Bearer token MinIO presents with storage notifications (`ARCA_INGEST_TOKEN`).
    pub ingest_token: Option<String>,
    /// Key (base64, 32 bytes) that signs download links (`ARCA_DOWNLOAD_LINK_KEY`).
    pub download_link_key: Option<String>,
    pub cors_origins: Vec<String>,
}

/// Limits of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_streams: u32,
}

/// Access tokens.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub key: Option<PathBuf>,
    pub public_key: Option<PathBuf>,
    pub ttl_secs: i64,
}

/// How events are delivered and received.
#[derive(Debug, Clone)]
pub struct EventConfig {
    pub lease: Duration,
    pub retry_base_ms: i64,
    /// The Broker (cluster): set, the outbox relay publishes to it.
    pub sink: Option<crate::core::outbox::Sink>,
    /// JWKS file, issuer and audience of the Broker's sender tokens.
    pub jwks: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Subjects of the sender tokens accepted (the Broker's identities).
    pub senders: Vec<String>,
    /// An artifact in `scanning` or `signing` this long without progress is stuck.
    pub redrive_after: Duration,
    /// Re-drives of a stuck artifact before it fails.
    pub redrive_attempts: u32,
}

/// Who may connect, and through which proxies.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    pub trusted_proxies: Vec<IpNet>,
    /// Empty: any address.
    pub allowlist: Vec<IpNet>,
    /// Per-role allowlists (`ARCA_ALLOWLIST_ADMIN`, …): a caller holding the role must
    /// come from one of these networks.
    pub role_allowlists: Vec<(Role, Vec<IpNet>)>,
}

/// Rate limits, lockout and token lifetimes.
#[derive(Debug, Clone)]
pub struct Limits {
    pub rate_per_minute: u32,
    pub login_rate_per_minute: u32,
    pub anonymous_audit_per_minute: u32,
    pub lockout_threshold: u32,
    pub token_max_days: u32,
    pub refresh_ttl: Duration,
}

/// Minimum length of any password Arca accepts.
pub const MIN_PASSWORD_LEN: usize = 12;

impl Config {
    /// Validates the arguments.
    pub fn from_args(mut args: ServerArgs) -> anyhow::Result<Self> {
        // Every path is made absolute once, here: Trivy and the unpacker run in other
        // working directories, so a relative path would point somewhere else for them.
        args.data_dir = absolute("--data-dir (ARCA_DATA_DIR)", &args.data_dir)?;
        for (name, path) in [
            ("--tls-cert (ARCA_TLS_CERT)", &mut args.tls_cert),
            ("--tls-key (ARCA_TLS_KEY)", &mut args.tls_key),
            ("--trivy-cache-dir (ARCA_TRIVY_CACHE_DIR)", &mut args.trivy_cache_dir),
            ("ARCA_JWT_KEY", &mut args.jwt_key),
            ("ARCA_JWT_PUBLIC_KEY", &mut args.jwt_public_key),
            ("ARCA_EVENT_JWKS", &mut args.event_jwks),
            ("ARCA_SINK_TOKEN_FILE", &mut args.sink_token_file),
            ("--web-dir (ARCA_WEB_DIR)", &mut args.web_dir),
        ] {
            if let Some(p) = path.as_mut() {
                *p = absolute(name, p)?;
            }
        }
        args.trivy = find_program(&args.trivy);
        let database = database_config(args.database_url.as_deref(), &args.data_dir, args.db_pool_size)?;
        let s3 = s3_config(&args)?;
        let tls = match (args.plain_http, args.tls_cert.clone(), args.tls_key.clone()) {
            (true, _, _) => TlsConfig::Off,
            (false, Some(cert), Some(key)) => TlsConfig::Files { cert, key },
            _ => TlsConfig::SelfSigned,
        };
        let admin_password = std::env::var("ARCA_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
        if let Some(p) = &admin_password {
            if p.chars().count() < MIN_PASSWORD_LEN {
                bail!("ARCA_ADMIN_PASSWORD: must be at least {MIN_PASSWORD_LEN} characters");
            }
        }
        if args.metrics_token.as_deref().is_some_and(|t| t.len() < 16) {
            bail!("ARCA_METRICS_TOKEN: must be at least 16 characters");
        }
        if args.max_artifact_bytes == 0 {
            bail!("ARCA_MAX_ARTIFACT_BYTES: must be at least 1");
        }
        if args.max_json_bytes < 1024 {
            bail!("--max-json-bytes (ARCA_MAX_JSON_BYTES): must be at least 1024");
        }
        let mut role_allowlists = Vec::new();
        for role in Role::ALL {
            let var = format!("ARCA_ALLOWLIST_{}", role.as_str().to_uppercase());
            if let Ok(value) = std::env::var(&var) {
                let nets = value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| parse_net(s.trim()).map_err(|e| anyhow::anyhow!("{var}: {e}")))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                role_allowlists.push((role, nets));
            }
        }
        for (name, value) in [
            ("ARCA_RATE_LIMIT", args.rate_limit),
            ("ARCA_LOGIN_RATE_LIMIT", args.login_rate_limit),
            ("ARCA_LOCKOUT_THRESHOLD", args.lockout_threshold),
            ("ARCA_TOKEN_MAX_DAYS", args.token_max_days),
            ("ARCA_REFRESH_TTL_HOURS", args.refresh_ttl_hours),
        ] {
            if value == 0 {
                bail!("{name}: must be at least 1");
            }
        }
        for (name, value) in [
            ("ARCA_SCAN_TIMEOUT", args.scan_timeout),
            ("ARCA_SCAN_CONCURRENCY", args.scan_concurrency as u64),
            ("ARCA_SCAN_ATTEMPTS", u64::from(args.scan_attempts)),
            ("ARCA_SCAN_MAX_FILES", args.scan_max_files),
            ("ARCA_SCAN_MAX_RATIO", args.scan_max_ratio),
            ("ARCA_POLICY_RECHECK_SECS", args.policy_recheck_secs),
            ("ARCA_AUDIT_CHECKPOINT_SECS", args.audit_checkpoint_secs),
            ("ARCA_ACCESS_TOKEN_TTL", args.access_token_ttl),
            ("ARCA_TRIVY_DB_STALE_HOURS", args.trivy_db_stale_hours),
            ("ARCA_MAX_CONNECTIONS", args.max_connections as u64),
            ("ARCA_IDLE_TIMEOUT", args.idle_timeout),
            ("ARCA_HEADER_TIMEOUT", args.header_timeout),
            ("ARCA_REQUEST_TIMEOUT", args.request_timeout),
            ("ARCA_HTTP2_MAX_STREAMS", u64::from(args.http2_max_streams)),
            ("ARCA_EVENT_LEASE_SECS", args.event_lease_secs),
            ("ARCA_REDRIVE_AFTER_SECS", args.redrive_after_secs),
            ("ARCA_REDRIVE_ATTEMPTS", u64::from(args.redrive_attempts)),
            ("ARCA_S3_DOWNLOAD_URL_TTL", args.s3_download_url_ttl),
            ("ARCA_ANONYMOUS_AUDIT_RATE", u64::from(args.anonymous_audit_rate)),
        ] {
            if value == 0 {
                bail!("{name}: must be at least 1");
            }
        }
        if args.scan_max_memory < 64 * 1024 * 1024 {
            bail!("ARCA_SCAN_MAX_MEMORY: must be at least 64 MiB");
        }
        for (name, value) in [("ARCA_SCAN_MAX_EXTRACT_BYTES", args.scan_max_extract_bytes)] {
            if value == 0 {
                bail!("{name}: must be at least 1");
            }
        }
        let policy = crate::core::scan::policy::Policy::from_env()?;
        let var = |name: &str| -> anyhow::Result<Option<PathBuf>> {
            match std::env::var(name).ok().filter(|v| !v.is_empty()) {
                Some(v) => Ok(Some(absolute(name, Path::new(&v))?)),
                None => Ok(None),
            }
        };
        let chain = var("ARCA_SIGNING_CHAIN")?;
        let files = match (var("ARCA_SIGNING_KEY")?, var("ARCA_SIGNING_CERT")?, &chain) {
            (Some(key), Some(cert), Some(chain)) => Some((key, cert, chain.clone())),
            (None, None, _) => None,
            _ => bail!(
                "ARCA_SIGNING_KEY, ARCA_SIGNING_CERT and ARCA_SIGNING_CHAIN: give all three to sign, \
                 or only ARCA_SIGNING_CHAIN to verify"
            ),
        };
        let signing = crate::core::signing::SigningConfig {
            files,
            chain,
            trusted: var("ARCA_SIGNING_TRUSTED")?,
            trust_bundle: var("ARCA_TRUST_BUNDLE")?,
        };
        let scan = crate::core::scan::ScanConfig {
            trivy: args.trivy.clone(),
            cache_dir: args.trivy_cache_dir.clone().unwrap_or_else(|| args.data_dir.join("trivy")),
            work_dir: args.data_dir.join("scans"),
            timeout: Duration::from_secs(args.scan_timeout),
            concurrency: args.scan_concurrency,
            attempts: args.scan_attempts,
            limits: crate::core::scan::extract::Limits {
                max_bytes: args.scan_max_extract_bytes,
                max_files: args.scan_max_files,
                max_ratio: args.scan_max_ratio,
            },
            db_stale_after: Duration::from_secs(args.trivy_db_stale_hours * 3600),
            db_download: (!args.trivy_db_update_interval.is_zero()).then(|| crate::core::scan::trivydb::Download {
                repository: args.trivy_db_repository.clone().filter(|r| !r.is_empty()),
                insecure: args.trivy_db_insecure,
                interval: args.trivy_db_update_interval,
                timeout: Duration::from_secs(900),
            }),
            unpacker: crate::core::scan::unpack::Unpacker {
                program: std::env::current_exe().context("cannot find this executable (it unpacks archives)")?,
                memory_limit: args.scan_max_memory,
            },
        };
        Ok(Self {
            s3,
            scan,
            signing,
            policy,
            policy_recheck: Duration::from_secs(args.policy_recheck_secs),
            audit_checkpoint: Duration::from_secs(args.audit_checkpoint_secs),
            audit_enabled: !args.bench_no_audit,
            max_artifact_bytes: args.max_artifact_bytes,
            upload_url_ttl: Duration::from_secs(args.upload_url_ttl),
            master_key: std::env::var("ARCA_MASTER_KEY").ok().filter(|k| !k.is_empty()),
            network: NetworkPolicy {
                trusted_proxies: args.trusted_proxies,
                allowlist: args.allowlist,
                role_allowlists,
            },
            limits: Limits {
                rate_per_minute: args.rate_limit,
                login_rate_per_minute: args.login_rate_limit,
                anonymous_audit_per_minute: args.anonymous_audit_rate,
                lockout_threshold: args.lockout_threshold,
                token_max_days: args.token_max_days,
                refresh_ttl: Duration::from_secs(u64::from(args.refresh_ttl_hours) * 3600),
            },
            jwt: JwtConfig {
                key: args.jwt_key.clone(),
                public_key: args.jwt_public_key.clone(),
                ttl_secs: i64::try_from(args.access_token_ttl).unwrap_or(i64::MAX),
            },
            server: ServerLimits {
                max_connections: args.max_connections,
                idle_timeout: Duration::from_secs(args.idle_timeout),
                header_timeout: Duration::from_secs(args.header_timeout),
                request_timeout: Duration::from_secs(args.request_timeout),
                max_streams: args.http2_max_streams,
            },
            events: EventConfig {
                lease: Duration::from_secs(args.event_lease_secs),
                retry_base_ms: args.event_retry_base_ms.clamp(1, 3_600_000),
                sink: args.k_sink.clone().filter(|s| !s.is_empty()).map(|url| crate::core::outbox::Sink {
                    url,
                    token_file: args.sink_token_file.clone(),
                    timeout: Duration::from_secs(args.relay_timeout_secs.max(1)),
                }),
                jwks: args.event_jwks.clone(),
                issuer: args.event_issuer.clone().filter(|s| !s.is_empty()),
                audience: args.event_audience.clone().filter(|s| !s.is_empty()),
                senders: event_senders(&args.event_senders)?,
                redrive_after: Duration::from_secs(args.redrive_after_secs),
                redrive_attempts: args.redrive_attempts,
            },
            web_dir: args.web_dir.clone(),
            ingest_token: std::env::var("ARCA_INGEST_TOKEN").ok().filter(|t| !t.is_empty()),
            download_link_key: std::env::var("ARCA_DOWNLOAD_LINK_KEY").ok().filter(|t| !t.is_empty()),
            cors_origins: args.cors_origins.iter().map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect(),
            listen: args.listen,
            data_dir: args.data_dir,
            database,
            tls,
            metrics_token: args.metrics_token.filter(|t| !t.is_empty()),
            max_json_bytes: args.max_json_bytes,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
            admin_password,
        })
    }

    /// Creates the data dir (0700) and checks it is writable (`arca serve`; functions keep
    /// nothing on disk but the scanner's workspaces).
    pub fn prepare_data_dir(&self) -> anyhow::Result<()> {
        prepare_data_dir(&self.data_dir)
    }

    /// Directory of encrypted blobs.
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Logs every path in use, resolved, once at start-up.
    pub fn log_paths(&self) {
        let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let (tls_cert, tls_key) = match &self.tls {
            TlsConfig::Files { cert, key } => (Some(cert.display().to_string()), Some(key.display().to_string())),
            TlsConfig::SelfSigned => (Some(self.data_dir.join("tls/cert.pem").display().to_string()), None),
            TlsConfig::Off => (None, None),
        };
        let database = match &self.database {
            DatabaseConfig::Sqlite { path } => path.display().to_string(),
            DatabaseConfig::Postgres { .. } => "postgres".to_owned(),
        };
        tracing::info!(
            data_dir = %self.data_dir.display(),
            database,
            trivy = %self.scan.trivy.display(),
            trivy_cache_dir = %self.scan.cache_dir.display(),
            scan_work_dir = %self.scan.work_dir.display(),
            tls_cert,
            tls_key,
            signing_files = ?self.signing.files,
            signing_trusted = shown(&self.signing.trusted),
            trust_bundle = shown(&self.signing.trust_bundle),
            policy_file = std::env::var("ARCA_POLICY_FILE").ok().and_then(|p| absolute("", Path::new(&p)).ok()).map(|p| p.display().to_string()),
            "paths in use"
        );
    }
}

/// `path` made absolute against the current directory (named `setting` in errors).
pub fn absolute(setting: &str, path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("{setting}: cannot resolve {}", path.display()))
}

/// A program named without a directory is looked up in `PATH` once, so that the log shows
/// which one runs; a path is made absolute. Unfound names stay as given (the scanner then
/// reports itself unavailable).
fn find_program(program: &Path) -> PathBuf {
    if program.components().count() > 1 {
        return std::path::absolute(program).unwrap_or_else(|_| program.to_owned());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| program.to_owned())
}

fn s3_config(args: &ServerArgs) -> anyhow::Result<Option<S3Config>> {
    let Some(endpoint) = args.s3_endpoint.clone().filter(|e| !e.is_empty()) else { return Ok(None) };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        bail!("ARCA_S3_ENDPOINT: must be an http:// or https:// URL");
    }
    let access_key = args
        .s3_access_key
        .clone()
        .filter(|k| !k.is_empty())
        .context("ARCA_S3_ACCESS_KEY: required with ARCA_S3_ENDPOINT")?;
    let secret_key = std::env::var("ARCA_S3_SECRET_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .context("ARCA_S3_SECRET_KEY: required with ARCA_S3_ENDPOINT")?;
    let sse = match args.s3_sse.as_str() {
        "AES256" => Sse::S3,
        other => match other.strip_prefix("aws:kms:") {
            Some(key) if !key.is_empty() => Sse::Kms(key.to_owned()),
            _ => bail!("ARCA_S3_SSE: must be AES256 or aws:kms:<key-id>"),
        },
    };
    const MIB: u64 = 1024 * 1024;
    if !(5 * MIB..=5 * 1024 * MIB).contains(&args.s3_part_size) {
        bail!("ARCA_S3_PART_SIZE: must be between 5 MiB and 5 GiB");
    }
    if args.s3_multipart_threshold < args.s3_part_size {
        bail!("ARCA_S3_MULTIPART_THRESHOLD: must be at least ARCA_S3_PART_SIZE");
    }
    Ok(Some(S3Config {
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        public_endpoint: match args.s3_public_endpoint.as_deref().filter(|e| !e.is_empty()) {
            Some(e) if e.starts_with("http://") || e.starts_with("https://") => {
                Some(e.trim_end_matches('/').to_owned())
            }
            Some(_) => bail!("ARCA_S3_PUBLIC_ENDPOINT: must be an http:// or https:// URL"),
            None => None,
        },
        bucket: args.s3_bucket.clone(),
        region: args.s3_region.clone(),
        access_key,
        secret_key,
        sse,
        multipart_threshold: args.s3_multipart_threshold,
        part_size: args.s3_part_size,
        download_url_ttl: Duration::from_secs(args.s3_download_url_ttl),
        notify_arn: args.s3_notify_arn.clone(),
    }))
}

/// `12h`, `30m`, `90s`, or a bare number of hours.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "h"),
    };
    let n: u64 = number.parse().map_err(|_| format!("'{s}' is not a duration like 12h, 30m or 90s"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("'{s}': the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

/// A CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
/// `ARCA_EVENT_SENDERS`: token subjects, without blanks or control characters.
fn event_senders(values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut senders = Vec::new();
    for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        if value.len() > 253 || !value.chars().all(|c| c.is_ascii_graphic()) {
            bail!(
                "ARCA_EVENT_SENDERS: '{}' is not a token subject (printable ASCII, no blanks)",
                value.escape_default()
            );
        }
        senders.push(value.to_owned());
    }
    Ok(senders)
}

pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{s}' is not a CIDR or IP address"))
}

fn database_config(url: Option<&str>, data_dir: &Path, pool_size: u32) -> anyhow::Result<DatabaseConfig> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Ok(DatabaseConfig::Sqlite { path: data_dir.join("arca.db") });
    };
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => Ok(DatabaseConfig::Postgres { url: url.to_owned(), pool_size }),
        "sqlite" => {
            let path = url.trim_start_matches("sqlite://");
            if path.is_empty() {
                bail!("DATABASE_URL: sqlite:// needs a file path");
            }
            Ok(DatabaseConfig::Sqlite { path: absolute("DATABASE_URL", Path::new(path))? })
        }
        "" => bail!("DATABASE_URL: not a URL (expected postgres://… or sqlite://…)"),
        // Only the scheme is echoed: the rest may hold credentials.
        other => {
            bail!("DATABASE_URL: unknown scheme '{other}' (expected postgres:// or sqlite://)")
        }
    }
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    std::fs::create_dir_all(dir).with_context(|| format!("data dir {shown}: cannot create"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("data dir {shown}: cannot set permissions"))?;
    }
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok")
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| format!("data dir {shown}: not writable"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_schemes() {
        let dir = Path::new("/d");
        assert_eq!(database_config(None, dir, 16).unwrap(), DatabaseConfig::Sqlite { path: dir.join("arca.db") });
        assert!(matches!(
            database_config(Some("postgresql://u:p@h/db"), dir, 3).unwrap(),
            DatabaseConfig::Postgres { pool_size: 3, .. }
        ));
        let err = database_config(Some("mysql://root:hunter2@h/db"), dir, 16).unwrap_err().to_string();
        assert!(err.contains("unknown scheme 'mysql'"), "{err}");
        assert!(!err.contains("hunter2"), "the URL's secret must not be echoed: {err}");
    }

    #[test]
    fn event_senders_are_subjects() {
        let given = ["system:serviceaccount:arca:a-oidc".to_owned(), " ".to_owned(), " b ".to_owned()];
        assert_eq!(event_senders(&given).unwrap(), ["system:serviceaccount:arca:a-oidc", "b"]);
        let err = event_senders(&["a b".to_owned()]).unwrap_err().to_string();
        assert!(err.starts_with("ARCA_EVENT_SENDERS: 'a b'"), "{err}");
    }
}
