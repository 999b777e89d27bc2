//! Application state shared by every handler, built once at start-up.

use std::ops::Deref;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;

use crate::audit::Audit;
use crate::config::Config;
use crate::db::Db;
use crate::events::Events;
use crate::jwt::JwtKeys;
use crate::ratelimit::RateLimiter;
use crate::routes::FunctionRouter;
use crate::scan::policy::Policy;
use crate::scan::Scanner;
use crate::signing::Signer;
use crate::storage::BlobStore;
use crate::telemetry::Metrics;
use crate::{http, users};

/// Cheap-to-clone handle on the application.
#[derive(Clone)]
pub struct AppState(Arc<App>);

/// Everything a request may need.
pub struct App {
    pub config: Config,
    pub db: Db,
    pub metrics: Metrics,
    pub jwt: JwtKeys,
    pub audit: Audit,
    pub rate_limiter: RateLimiter,
    pub store: BlobStore,
    pub events: Events,
    pub scanner: Scanner,
    pub policy: Policy,
    pub signer: Signer,
    pub trust_bundle: crate::publisher::TrustBundle,
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// What start-up did that the operator must be told once.
pub struct Startup {
    pub state: AppState,
    /// Generated admin password, present only on the start that created the admin.
    pub generated_admin_password: Option<String>,
}

impl AppState {
    /// Connects to the database, applies migrations and creates the first admin.
    pub async fn build(config: Config) -> anyhow::Result<Startup> {
        config.log_paths();
        std::fs::create_dir_all(config.blob_dir())
            .with_context(|| format!("data dir: cannot create {}", config.blob_dir().display()))?;
        let db = Db::connect(&config.database).await?;
        let generated_admin_password = users::ensure_admin(&db, config.admin_password.as_deref()).await?;
        let jwt = JwtKeys::load_or_generate(&config.data_dir)?;
        let store = BlobStore::open(&config).await?;
        let scanner = Scanner::new(config.scan.clone()).context("scanner: cannot prepare its directories")?;
        let policy = config.policy.clone();
        let signer = Signer::load(&config.signing, &config.data_dir)?;
        let trust_bundle = crate::publisher::TrustBundle::load(config.signing.trust_bundle.as_deref())?;
        crate::scan::trivydb::ensure_java_db(&config.scan.cache_dir).await.context("scanner: Java index")?;
        if scanner.db_updated_at().is_none() {
            tracing::warn!(
                cache_dir = %config.scan.cache_dir.display(),
                "no vulnerability DB: scans fail until one is imported (`arca admin trivy-db-import DIR --cache-dir {}`)",
                config.scan.cache_dir.display()
            );
        }
        let audit = Audit::spawn(db.clone(), config.audit_enabled);
        if !config.audit_enabled {
            tracing::warn!("ARCA_BENCH_NO_AUDIT is set: the audit log is NOT written (benchmarks only)");
        }
        let state = AppState(Arc::new(App {
            config,
            db,
            metrics: Metrics::new(),
            jwt,
            audit,
            rate_limiter: RateLimiter::default(),
            store,
            events: Events::default(),
            scanner,
            policy,
            signer,
            trust_bundle,
        }));
        crate::reconcile::run(&state).await?;
        tokio::spawn(crate::reconcile::run_periodically(state.clone()));
        let warm = state.clone();
        tokio::spawn(async move { warm.scanner.trivy_version().await });
        tokio::spawn(crate::events::run_worker(state.clone()));
        tokio::spawn(crate::scan::service::run_rechecks(state.clone(), state.config.policy_recheck));
        // Computed off the request path so the first unknown-user login costs what others do.
        tokio::task::spawn_blocking(|| crate::auth::dummy_hash().len());
        tokio::spawn(prune_periodically(state.db.clone()));
        Ok(Startup { state, generated_admin_password })
    }

    /// The HTTP router of the given functions, with the common middleware stack.
    pub fn router(&self, functions: Vec<FunctionRouter>) -> Router {
        let routes =
            functions.into_iter().fold(Router::new(), |router, function| router.merge(function.into_router(self)));
        http::finish(routes, self.clone())
    }
}

async fn prune_periodically(db: Db) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(e) = crate::sessions::prune(&db).await {
            tracing::warn!(error = %e, "pruning expired sessions failed");
        }
    }
}
