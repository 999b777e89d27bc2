//! Routes every function carries: health, liveness/readiness probes, metrics, OpenAPI.
//! Health checks only read (no probe files), so concurrent checks cannot disturb each other
//! and anonymous callers cannot make Arca write.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::core::db::Db;
use crate::core::scan::Scanner;
use crate::core::storage::BlobStore;
use crate::web::access::Access;
use crate::web::routes::FunctionRouter;
use crate::web::state::Core;

/// What a function's health depends on.
#[derive(Clone)]
pub struct Probes(pub Arc<Vec<Probe>>);

pub enum Probe {
    Database(Db),
    Store(Arc<BlobStore>),
    Scanner(Arc<Scanner>),
}

/// The system routes, merged into every function.
pub fn router<S>() -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Probes: FromRef<S>,
{
    FunctionRouter::new("system")
        .route(Access::Public, routes!(health))
        .route(Access::Public, routes!(liveness))
        .route(Access::Public, routes!(readiness))
        .route(Access::Metrics, routes!(metrics))
        .route(Access::Public, routes!(openapi))
}

/// Outcome of one dependency check.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Ok,
    /// Works, but needs attention (an old vulnerability DB).
    Stale,
    Unavailable,
}

/// Health of the process and its dependencies.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every check passes (or is only stale), else `unavailable`.
    pub status: Check,
    pub checks: HealthChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthChecks {
    pub database: Check,
    /// Absent in functions that use no blob store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Check>,
    /// Trivy and its vulnerability DB (functions that scan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanner: Option<Check>,
    /// Age of the vulnerability DB, in hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_age_hours: Option<f64>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check_database(db: &Db) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, db.ping()).await {
        Ok(Ok(())) => Check::Ok,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: database check failed");
            Check::Unavailable
        }
        Err(_) => {
            tracing::warn!("health: database check timed out");
            Check::Unavailable
        }
    }
}

async fn check_store(store: &BlobStore) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, store.check()).await {
        Ok(Ok(())) => Check::Ok,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: storage check failed");
            Check::Unavailable
        }
        Err(_) => {
            tracing::warn!("health: storage check timed out");
            Check::Unavailable
        }
    }
}

fn check_scanner(scanner: &Scanner) -> (Check, Option<f64>) {
    match scanner.db_age() {
        None => (Check::Unavailable, None),
        Some(age) => {
            let hours = (age.as_secs_f64() / 36.0).round() / 100.0;
            (if age > scanner.config.db_stale_after { Check::Stale } else { Check::Ok }, Some(hours))
        }
    }
}

/// Health of Arca and its dependencies; 503 names what failed.
#[utoipa::path(get, path = "/api/health", operation_id = "getHealth",
    responses((status = 200, body = Health), (status = 503, body = Health, description = "a dependency is down")))]
pub async fn health(State(core): State<Core>, State(probes): State<Probes>) -> impl IntoResponse {
    let mut checks = HealthChecks { database: Check::Ok, storage: None, scanner: None, db_age_hours: None };
    for probe in probes.0.iter() {
        match probe {
            Probe::Database(db) => checks.database = check_database(db).await,
            Probe::Store(store) => checks.storage = Some(check_store(store).await),
            Probe::Scanner(scanner) => {
                let (check, age) = check_scanner(scanner);
                core.metrics.trivy_db_age.set(age.map_or(-1, |h| (h * 3600.0) as i64));
                checks.scanner = Some(check);
                checks.db_age_hours = age;
            }
        }
    }
    let healthy =
        [Some(checks.database), checks.storage, checks.scanner].into_iter().flatten().all(|c| c != Check::Unavailable);
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Health { status: if healthy { Check::Ok } else { Check::Unavailable }, checks };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body))
}

/// Knative liveness probe: the process answers.
#[utoipa::path(get, path = "/health/liveness", operation_id = "liveness", responses((status = 200)))]
pub async fn liveness() -> StatusCode {
    StatusCode::OK
}

/// Knative readiness probe: the database answers (read-only).
#[utoipa::path(get, path = "/health/readiness", operation_id = "readiness", responses((status = 200), (status = 503)))]
pub async fn readiness(State(core): State<Core>) -> StatusCode {
    match check_database(&core.db).await {
        Check::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/api/metrics", operation_id = "getMetrics",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4"), (status = 401), (status = 403)))]
pub async fn metrics(State(core): State<Core>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], core.metrics.render())
}

/// The OpenAPI 3 document of every route.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "getOpenApi",
    responses((status = 200, body = Object, content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    Json(crate::web::openapi::document().clone())
}
