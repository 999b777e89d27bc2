//! Running Arca: one function on its own (plain HTTP on `0.0.0.0:$PORT` for Knative, or AWS
//! Lambda through `lambda_http` when `AWS_LAMBDA_RUNTIME_API` is set), or every function in
//! one process (`arca serve`). [`Startup`] builds the sub-states a function asks for, and
//! only those: a function holds only the secrets it needs, refuses to start without one of
//! them (one line naming it), and warns about secrets it was given but does not use.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use base64::Engine;
use clap::Parser;

use crate::core::audit::{Audit, CheckpointKey};
use crate::core::config::{Config, DatabaseConfig, ServerArgs};
use crate::core::db::Db;
use crate::core::jwt;
use crate::core::outbox::{DeliveryConfig, EventBus, Handlers};
use crate::core::ratelimit::{self, RateLimiter};
use crate::core::scan::Scanner;
use crate::core::signing::{Signer, TrustedSigners};
use crate::core::storage::BlobStore;
use crate::core::telemetry::{self, Metrics};
use crate::core::trust::TrustBundle;
use crate::features::audit::AuditKey;
use crate::web::routes::FunctionRouter;
use crate::web::state::{
    Blobs, Core, CoreParts, DownloadLinks, IngestToken, Issuer, PublisherTrust, Receiver, ReceiverParts, Scanning,
    ServeState, Signing, Trusted,
};
use crate::web::system::{Probe, Probes};

/// Every function's public routes, as `arca serve` runs them in one process (and as the
/// OpenAPI document lists them).
pub fn all_functions<S>() -> Vec<FunctionRouter<S>>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Probes: FromRef<S>,
    Issuer: FromRef<S>,
    Blobs: FromRef<S>,
    Scanning: FromRef<S>,
    Signing: FromRef<S>,
    Trusted: FromRef<S>,
    PublisherTrust: FromRef<S>,
    DownloadLinks: FromRef<S>,
    AuditKey: FromRef<S>,
{
    use crate::features::{artifacts, audit, auth, download, scan, sign, upload, users};
    vec![
        crate::web::system::router(),
        auth::router(),
        users::router(),
        audit::router(),
        upload::router(),
        artifacts::router(),
        download::router(),
        scan::router(),
        sign::router(),
    ]
}

/// Secrets (environment variables) a function may be given; each builder below notes the
/// ones it uses.
const SECRETS: &[&str] = &[
    "ARCA_JWT_KEY",
    "ARCA_S3_SECRET_KEY",
    "ARCA_SIGNING_KEY",
    "ARCA_MASTER_KEY",
    "ARCA_INGEST_TOKEN",
    "ARCA_DOWNLOAD_LINK_KEY",
    "ARCA_AUDIT_CHECKPOINT_KEY",
    "ARCA_ADMIN_PASSWORD",
];

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a process runs: routes, their state, and background work.
pub struct Running {
    router: axum::Router,
    core: Core,
    tasks: Vec<Task>,
}

impl Running {
    /// A leased job (one replica at a time), run every `every`.
    pub fn leased<F, Fut>(mut self, name: &'static str, every: Duration, job: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (db, owner, ttl) = (self.core.db.clone(), self.core.instance.clone(), self.core.config.events.lease);
        self.tasks.push(Box::pin(crate::core::leases::run_periodically(db, name, owner, every, ttl, job)));
        self
    }

    /// Background work every replica does (its own DB updates, the relay's claims).
    pub fn task(mut self, task: impl Future<Output = ()> + Send + 'static) -> Self {
        self.tasks.push(Box::pin(task));
        self
    }

    pub fn core(&self) -> &Core {
        &self.core
    }
}

/// Builds a function's sub-states from the configuration, tracking which secrets it uses.
pub struct Startup {
    pub name: &'static str,
    pub config: Config,
    used: Vec<&'static str>,
    /// `arca serve`: local defaults (SQLite, local files, keys generated in the data dir).
    embedded: bool,
}

fn required(name: &str, variable: &str) -> anyhow::Error {
    anyhow::anyhow!("{variable}: required by the {name} function")
}

impl Startup {
    /// A function: configuration from the environment only, plain HTTP on `$PORT`.
    pub fn function(name: &'static str) -> anyhow::Result<Self> {
        #[derive(Parser)]
        struct FunctionArgs {
            #[command(flatten)]
            server: ServerArgs,
        }
        let mut args =
            FunctionArgs::try_parse_from(["function"]).map_err(|e| anyhow::anyhow!(first_line(&e.to_string())))?;
        let port: u16 = match std::env::var("PORT") {
            Ok(p) => p.parse().with_context(|| format!("PORT: not a port number: '{p}'"))?,
            Err(_) => 8080,
        };
        args.server.listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        args.server.plain_http = true; // TLS terminates at the ingress.
        telemetry::init_logging(&args.server.log)?;
        let config = Config::from_args(args.server)?;
        Ok(Self { name, config, used: Vec::new(), embedded: false })
    }

    /// `arca serve`: every function in one process, on embedded defaults.
    pub fn embedded(config: Config) -> Self {
        Self { name: "serve", config, used: Vec::new(), embedded: true }
    }

    fn uses(&mut self, secret: &'static str) {
        self.used.push(secret);
    }

    /// The database: migrated at start (`arca serve`), or connected lazily (functions: the
    /// `migrate` Job migrates once per rollout; a cold start does no I/O).
    async fn db(&mut self) -> anyhow::Result<Db> {
        if self.embedded {
            return Db::connect(&self.config.database).await;
        }
        if !matches!(self.config.database, DatabaseConfig::Postgres { .. }) {
            anyhow::bail!("DATABASE_URL: required by the {} function (postgres://…)", self.name);
        }
        Db::connect_lazy(&self.config.database)
    }

    /// The core every function has. `verifier` checks access tokens: the public key
    /// ([`Startup::jwt_verifier`]), or the issuer's own (`auth`).
    pub async fn core(&mut self, verifier: jwt::Verifier) -> anyhow::Result<Core> {
        let db = self.db().await?;
        let limits = ratelimit::Limits {
            per_ip: self.config.limits.rate_per_minute,
            per_principal: self.config.limits.rate_per_minute,
            login_per_ip: self.config.limits.login_rate_per_minute,
            anonymous_audit_per_ip: self.config.limits.anonymous_audit_per_minute,
        };
        let limiter =
            if self.embedded { RateLimiter::in_process(limits) } else { RateLimiter::shared(db.clone(), limits) };
        let audit = Audit::spawn(db.clone(), self.config.audit_enabled);
        if !self.config.audit_enabled {
            tracing::warn!("ARCA_BENCH_NO_AUDIT is set: the audit log is NOT written (benchmarks only)");
        }
        let instance = if self.embedded {
            let name = Core::embedded_instance_name(&self.config.data_dir);
            // Claims of this server's previous life died with it: take them back now.
            crate::core::outbox::release_claims(&db, &name).await?;
            crate::core::leases::release_all(&db, &name).await;
            name
        } else {
            Core::instance_name()
        };
        Ok(Core(Arc::new(CoreParts {
            config: self.config.clone(),
            db,
            metrics: Metrics::new(),
            audit,
            limiter,
            tokens: verifier,
            bus: EventBus::default(),
            instance,
        })))
    }

    /// The access-token verifier from `ARCA_JWT_PUBLIC_KEY` (every function but `auth`).
    pub fn jwt_verifier(&mut self) -> anyhow::Result<jwt::Verifier> {
        let path = self.config.jwt.public_key.clone().ok_or_else(|| required(self.name, "ARCA_JWT_PUBLIC_KEY"))?;
        jwt::Verifier::load(&path)
    }

    /// The access-token signing key (`auth`; `arca serve` generates one in the data dir).
    pub fn issuer(&mut self) -> anyhow::Result<Issuer> {
        self.uses("ARCA_JWT_KEY");
        let path = self.config.jwt.key.clone();
        if path.is_none() && !self.embedded {
            return Err(required(self.name, "ARCA_JWT_KEY"));
        }
        let issuer = jwt::Issuer::load_or_generate(path.as_deref(), &self.config.data_dir, self.config.jwt.ttl_secs)?;
        Ok(Issuer(Arc::new(issuer)))
    }

    /// The blob store: S3 for functions; local encrypted files by default in `arca serve`.
    pub async fn blobs(&mut self) -> anyhow::Result<Blobs> {
        if self.config.s3.is_none() && !self.embedded {
            anyhow::bail!(
                "ARCA_S3_ENDPOINT, ARCA_S3_ACCESS_KEY and ARCA_S3_SECRET_KEY: required by the {} function",
                self.name
            );
        }
        self.uses("ARCA_S3_SECRET_KEY");
        if self.config.s3.is_none() {
            self.uses("ARCA_MASTER_KEY");
            std::fs::create_dir_all(self.config.blob_dir())
                .with_context(|| format!("data dir: cannot create {}", self.config.blob_dir().display()))?;
        }
        let store = BlobStore::open(&self.config)?;
        if self.embedded {
            if let BlobStore::S3(s3) = &store {
                s3.ensure_bucket().await.context("S3: cannot prepare the bucket")?;
                s3.configure_cors(&self.config.cors_origins).await.context("S3: cannot set CORS")?;
            }
        }
        Ok(Blobs(Arc::new(store)))
    }

    /// Trivy and its vulnerability DB.
    pub async fn scanning(&mut self) -> anyhow::Result<Scanning> {
        let scanner = Scanner::new(self.config.scan.clone()).context("scanner: cannot prepare its directories")?;
        crate::core::scan::trivydb::ensure_java_db(&self.config.scan.cache_dir).await.context("scanner: Java index")?;
        if scanner.db_updated_at().is_none() && scanner.config.db_download.is_none() {
            tracing::warn!(
                cache_dir = %self.config.scan.cache_dir.display(),
                "no vulnerability DB and downloads are off: scans wait until one is imported \
                 (`arca admin trivy-db-import DIR --cache-dir {}`)",
                self.config.scan.cache_dir.display()
            );
        }
        Ok(Scanning(Arc::new(scanner)))
    }

    /// Arca's signing key (`sign`; `arca serve` generates an identity in the data dir).
    pub fn signing(&mut self) -> anyhow::Result<Signing> {
        self.uses("ARCA_SIGNING_KEY");
        if self.config.signing.files.is_none() && !self.embedded {
            return Err(required(self.name, "ARCA_SIGNING_KEY, ARCA_SIGNING_CERT and ARCA_SIGNING_CHAIN"));
        }
        Ok(Signing(Arc::new(Signer::load(&self.config.signing, &self.config.data_dir)?)))
    }

    /// The signing certificates downloads trust (public: `ARCA_SIGNING_CHAIN`).
    pub fn trusted(&mut self) -> anyhow::Result<Trusted> {
        let signing = &self.config.signing;
        let signers = match &signing.chain {
            _ if self.embedded => TrustedSigners::load(signing, &self.config.data_dir)?,
            Some(chain) => TrustedSigners::from_files(chain, signing.trusted.as_deref())?,
            None => return Err(required(self.name, "ARCA_SIGNING_CHAIN")),
        };
        Ok(Trusted(Arc::new(signers)))
    }

    /// CAs for publishers' signatures (`ARCA_TRUST_BUNDLE`, optional).
    pub fn publisher_trust(&mut self) -> anyhow::Result<PublisherTrust> {
        Ok(PublisherTrust(Arc::new(TrustBundle::load(self.config.signing.trust_bundle.as_deref())?)))
    }

    /// The token MinIO presents with storage notifications (`ingest`).
    pub fn ingest_token(&mut self) -> anyhow::Result<IngestToken> {
        self.uses("ARCA_INGEST_TOKEN");
        let token = self.config.ingest_token.clone().ok_or_else(|| required(self.name, "ARCA_INGEST_TOKEN"))?;
        anyhow::ensure!(token.len() >= 16, "ARCA_INGEST_TOKEN: must be at least 16 characters");
        Ok(IngestToken(Arc::new(token)))
    }

    /// The receiver of the Broker's deliveries (`scan`, `sign`, `ingest`).
    pub fn receiver(&mut self, handlers: Handlers) -> anyhow::Result<Receiver> {
        let events = &self.config.events;
        let verifier = match (&events.jwks, &events.issuer, &events.audience) {
            (Some(jwks), Some(issuer), Some(audience)) => {
                Some(crate::web::receiver::SenderVerifier::load(jwks, issuer, audience, &events.senders)?)
            }
            (None, None, None) if events.senders.is_empty() => {
                tracing::warn!(
                    "ARCA_EVENT_JWKS, ARCA_EVENT_ISSUER, ARCA_EVENT_AUDIENCE and ARCA_EVENT_SENDERS are not set: \
                     `POST /` refuses every event"
                );
                None
            }
            _ => anyhow::bail!(
                "ARCA_EVENT_JWKS, ARCA_EVENT_ISSUER, ARCA_EVENT_AUDIENCE and ARCA_EVENT_SENDERS: give all four or none"
            ),
        };
        Ok(Receiver(Arc::new(ReceiverParts { verifier, handlers, lease: events.lease })))
    }

    /// The key of single-use download links: `ARCA_DOWNLOAD_LINK_KEY` (base64 of 32 bytes),
    /// or (`arca serve`) one kept in the data dir.
    pub fn download_links(&mut self) -> anyhow::Result<DownloadLinks> {
        self.uses("ARCA_DOWNLOAD_LINK_KEY");
        let key = match &self.config.download_link_key {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .context("ARCA_DOWNLOAD_LINK_KEY: must be 32 bytes in base64")?,
            None if self.embedded => {
                let path = self.config.data_dir.join("keys").join("download-links.key");
                match std::fs::read(&path).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                    Some(key) => key,
                    None => {
                        std::fs::create_dir_all(self.config.data_dir.join("keys"))?;
                        let key: [u8; 32] = rand::random();
                        crate::core::fsutil::write_secret(&path, &key)?;
                        key
                    }
                }
            }
            None => return Err(required(self.name, "ARCA_DOWNLOAD_LINK_KEY")),
        };
        Ok(DownloadLinks(Arc::new(key)))
    }

    /// The audit checkpoint key (`audit`; `arca serve` keeps one in the data dir).
    pub fn audit_key(&mut self) -> anyhow::Result<AuditKey> {
        self.uses("ARCA_AUDIT_CHECKPOINT_KEY");
        let path = std::env::var_os("ARCA_AUDIT_CHECKPOINT_KEY")
            .map(|p| crate::core::config::absolute("ARCA_AUDIT_CHECKPOINT_KEY", std::path::Path::new(&p)))
            .transpose()?;
        if path.is_none() && !self.embedded {
            return Err(required(self.name, "ARCA_AUDIT_CHECKPOINT_KEY"));
        }
        Ok(AuditKey(Arc::new(CheckpointKey::load_or_generate(path.as_deref(), &self.config.data_dir)?)))
    }

    /// What `/api/health` checks.
    pub fn probes(&self, core: &Core, blobs: Option<&Blobs>, scanning: Option<&Scanning>) -> Probes {
        let mut probes = vec![Probe::Database(core.db.clone())];
        if let Some(blobs) = blobs {
            probes.push(Probe::Store(blobs.0.clone()));
        }
        if let Some(scanning) = scanning {
            probes.push(Probe::Scanner(scanning.0.clone()));
        }
        Probes(Arc::new(probes))
    }

    /// Where outbox events go: the process's own handlers, or the Broker.
    pub fn delivery(&self, core: &Core) -> DeliveryConfig {
        DeliveryConfig {
            owner: core.instance.clone(),
            lease: self.config.events.lease,
            retry_base_ms: self.config.events.retry_base_ms,
        }
    }

    /// Logs a warning for every secret given to this process that it does not use.
    fn warn_unused_secrets(&self) {
        for secret in SECRETS {
            let given = std::env::var_os(secret).is_some_and(|v| !v.is_empty());
            if given && !self.used.contains(secret) && *secret != "ARCA_ADMIN_PASSWORD" {
                tracing::warn!(
                    secret,
                    function = self.name,
                    "a secret this function does not use was given to it; it is ignored (remove it)"
                );
            }
        }
    }

    /// The function's router (its routes, the system routes and the middleware) with its state.
    pub fn serve<S>(&self, core: &Core, routes: FunctionRouter<S>, state: S) -> Running
    where
        S: Clone + Send + Sync + 'static,
        Core: FromRef<S>,
        Probes: FromRef<S>,
    {
        let routes = routes.merge(crate::web::system::router());
        let pages = self.embedded.then(|| match crate::web::spa::web_dir(self.config.web_dir.as_deref()) {
            Some(dir) => {
                tracing::info!(web_dir = %dir.display(), "serving the web app");
                let s3_origin = self.config.s3.as_ref().map(|s3| s3.public_origin());
                crate::web::spa::router(&dir, s3_origin.as_deref())
            }
            None => {
                tracing::warn!("the web app is not built (frontend/dist); `/` shows how to build it");
                crate::web::spa::placeholder()
            }
        });
        let router = crate::web::http::finish(routes.into_router(core), state, core.clone(), pages);
        self.warn_unused_secrets();
        Running { router, core: core.clone(), tasks: Vec::new() }
    }
}

/// The whole `main` of a function binary: `arca-fn-<name> [migrate|setup-storage]`.
pub fn main<F, Fut>(name: &'static str, build: F) -> ExitCode
where
    F: FnOnce(Startup) -> Fut,
    Fut: Future<Output = anyhow::Result<Running>>,
{
    crate::core::scan::unpack::run_child_if_requested();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arca: error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = std::env::args().nth(1);
    let result = runtime.block_on(async move {
        let startup = Startup::function(name)?;
        match command.as_deref() {
            Some("migrate") => migrate(&startup.config).await,
            Some("setup-storage") => crate::features::ingest::setup_storage(&startup.config).await,
            Some(other) => anyhow::bail!("unknown command '{other}' (expected migrate or setup-storage)"),
            None => run(build(startup).await?).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arca: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Applies migrations, creates the first admin (`ARCA_ADMIN_PASSWORD`, or generated and
/// printed once), and fills derived columns. Once per rollout (a Job), never from functions.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = Db::connect(&config.database).await?;
    if let Some(password) = crate::core::users::ensure_admin(&db, config.admin_password.as_deref()).await? {
        eprintln!("arca: created user 'admin' with password: {password}");
    }
    crate::core::db::backfill(&db).await?;
    println!("database migrated");
    // The functions' own roles (the cluster): see core::dbroles.
    if let Some(dir) = std::env::var_os("ARCA_DB_ROLES").filter(|d| !d.is_empty()) {
        let Db::Postgres(pool) = &db else {
            anyhow::bail!("ARCA_DB_ROLES: function roles need PostgreSQL");
        };
        let functions = crate::core::dbroles::apply(pool, std::path::Path::new(&dir)).await?;
        println!("database roles set for: {}", functions.join(", "));
    }
    Ok(())
}

/// Serves until SIGTERM (HTTP), or runs on Lambda; background work runs beside.
pub async fn run(running: Running) -> anyhow::Result<()> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let Running { router, core, tasks } = running;
        for task in tasks {
            tokio::spawn(task);
        }
        tracing::info!("running on AWS Lambda");
        let router = router.layer(axum::middleware::from_fn(lambda_source_ip));
        let result = lambda_http::run(router).await.map_err(|e| anyhow::anyhow!("lambda: {e}"));
        core.audit.flush().await;
        return result;
    }
    let listener = crate::web::server::bind(running.core.config.listen)?;
    tracing::info!(listen = %running.core.config.listen, "function listening");
    run_on(running, listener, None).await
}

/// Serves on a bound listener (HTTPS with `tls`) until SIGTERM; background work beside.
pub async fn run_on(
    running: Running,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<()> {
    let Running { router, core, tasks } = running;
    for task in tasks {
        tokio::spawn(task);
    }
    let result = crate::web::server::serve(listener, router, tls, &core.config).await;
    if crate::core::leases::asked() {
        crate::core::leases::release_all(&core.db, &core.instance).await;
    }
    core.audit.flush().await;
    result
}

/// On Lambda there is no peer address: the client is the source IP of the API Gateway
/// request context (else the limits and allowlists would see everyone as one address).
async fn lambda_source_ip(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use lambda_http::request::RequestContext;
    let ip = request.extensions().get::<RequestContext>().and_then(|context| match context {
        RequestContext::ApiGatewayV1(c) => c.identity.source_ip.clone(),
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
        RequestContext::WebSocket(c) => c.identity.source_ip.clone(),
        _ => None,
    });
    if let Some(ip) = ip.and_then(|ip| ip.parse::<std::net::IpAddr>().ok()) {
        request.extensions_mut().insert(axum::extract::ConnectInfo(SocketAddr::new(ip, 0)));
    }
    next.run(request).await
}

/// `arca serve`: every function in one process, its event handlers in-process, and every
/// background job (each leased, so two instances on one database coordinate).
pub async fn embedded(config: Config) -> anyhow::Result<(Running, Option<String>)> {
    config.log_paths();
    let mut startup = Startup::embedded(config);
    let issuer = startup.issuer()?;
    let core = startup.core(issuer.0.verifier.clone()).await?;
    let generated = crate::core::users::ensure_admin(&core.db, core.config.admin_password.as_deref()).await?;
    crate::core::db::backfill(&core.db).await?;
    let blobs = startup.blobs().await?;
    let scanning = startup.scanning().await?;
    let signing = startup.signing()?;
    let state = ServeState {
        probes: startup.probes(&core, Some(&blobs), Some(&scanning)),
        trusted: startup.trusted()?,
        publisher_trust: startup.publisher_trust()?,
        links: startup.download_links()?,
        audit_key: startup.audit_key()?,
        issuer,
        blobs: blobs.clone(),
        scanning: scanning.clone(),
        signing: signing.clone(),
        core: core.clone(),
    };
    let handlers = crate::features::scan::handlers(core.clone(), scanning.clone(), blobs.clone())
        .merge(crate::features::sign::handlers(core.clone(), signing, blobs.clone()))
        .merge(crate::features::ingest::handlers(core.clone(), blobs.clone()));
    let delivery = startup.delivery(&core);
    let audit_key = state.audit_key.clone();
    let running = startup.serve(&core, routes_of_serve(), state);
    let running = with_scan_jobs(running, &core, &scanning);
    let (c1, c2, c3, c4, c5, b4) =
        (core.clone(), core.clone(), core.clone(), core.clone(), core.clone(), blobs.clone());
    let running = running
        .leased("upload-leases", lease_check_interval(&core), move || {
            let (core, blobs) = (c4.clone(), b4.clone());
            async move { crate::features::ingest::reset_expired_uploads(&core, &blobs).await.map(|_| ()) }
        })
        .leased("redrive", crate::features::ingest::redrive_interval(&core), move || {
            let core = c5.clone();
            async move { crate::features::ingest::redrive(&core).await.map(|_| ()) }
        })
        .task(crate::core::outbox::run_worker(
            core.db.clone(),
            core.bus.clone(),
            handlers,
            delivery,
            core.metrics.dead_letters.clone(),
        ))
        .leased("reconcile", Duration::from_secs(600), move || {
            let (core, blobs) = (c1.clone(), blobs.clone());
            async move { crate::features::ingest::sweep(&core, &blobs).await.map(|_| ()) }
        })
        .leased("audit-checkpoint", core.config.audit_checkpoint, move || {
            let (core, key) = (c2.clone(), audit_key.clone());
            async move { crate::features::audit::checkpoint(&core, &key).await }
        })
        .leased("prune", Duration::from_secs(600), move || {
            let core = c3.clone();
            async move { crate::features::auth::prune(&core).await }
        });
    Ok((running, generated))
}

fn routes_of_serve() -> FunctionRouter<ServeState> {
    all_functions::<ServeState>()
        .into_iter()
        .filter(|f| f.name != "system") // `serve` adds the system routes itself
        .fold(FunctionRouter::new("serve"), FunctionRouter::merge)
}

/// How often expired upload leases are looked for: half a lease, at least every second.
pub fn lease_check_interval(core: &Core) -> Duration {
    (core.config.events.lease / 2).max(Duration::from_secs(1))
}

/// The `scan` function's background work: policy re-checks and retries (leased), and its
/// own vulnerability-DB updates (every replica keeps its own cache).
pub fn with_scan_jobs(running: Running, core: &Core, scanning: &Scanning) -> Running {
    let (c, s) = (core.clone(), scanning.clone());
    let every = core.config.policy_recheck;
    let running = running.leased("policy-recheck", every, move || {
        let (core, scanning) = (c.clone(), s.clone());
        async move { crate::features::scan::recheck(&core, &scanning).await }
    });
    let Some(download) = scanning.config.db_download.clone() else { return running };
    let scanning = scanning.clone();
    let metrics = core.metrics.clone();
    running.task(async move {
        // At start-up when there is no DB, then on the schedule.
        if scanning.db_updated_at().is_some() {
            tokio::time::sleep(download.interval).await;
        }
        loop {
            let _ = scanning.update_db().await;
            metrics.trivy_db_age.set(scanning.db_age().map_or(-1, |a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX)));
            tokio::time::sleep(download.interval).await;
        }
    })
}

/// clap renders errors over several lines; Arca reports configuration problems in one.
pub fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}
