//! Routes every function carries: health, liveness/readiness probes, metrics, OpenAPI.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Access;
use crate::app::AppState;
use crate::routes::FunctionRouter;

/// The system routes, merged into every function.
pub fn router() -> FunctionRouter {
    FunctionRouter::new("system")
        .route(Method::GET, "/api/health", Access::Public, health)
        .route(Method::GET, "/health/liveness", Access::Public, liveness)
        .route(Method::GET, "/health/readiness", Access::Public, readiness)
        .route(Method::GET, "/api/metrics", Access::Metrics, metrics)
        .route(Method::GET, "/api/openapi.json", Access::Public, openapi)
}

/// Outcome of one dependency check.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Ok,
    Unavailable,
}

/// Health of the process and its dependencies.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every check passes, else `unavailable`.
    pub status: Check,
    pub checks: HealthChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthChecks {
    pub database: Check,
    pub storage: Check,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check_database(state: &AppState) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
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

async fn check_storage(state: &AppState) -> Check {
    let probe = state.config.blob_dir().join(".health-probe");
    let result = async {
        tokio::fs::write(&probe, b"ok").await?;
        tokio::fs::remove_file(&probe).await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, result).await {
        Ok(Ok(())) => Check::Ok,
        _ => {
            tracing::warn!("health: storage check failed");
            Check::Unavailable
        }
    }
}

/// Health of Arca and its dependencies; 503 names what failed.
#[utoipa::path(get, path = "/api/health", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Health, description = "a dependency is down")))]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (database, storage) = tokio::join!(check_database(&state), check_storage(&state));
    let healthy = database == Check::Ok && storage == Check::Ok;
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Health {
        status: if healthy { Check::Ok } else { Check::Unavailable },
        checks: HealthChecks { database, storage },
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body))
}

/// Knative liveness probe: the process answers.
#[utoipa::path(get, path = "/health/liveness", tag = "system", responses((status = 200)))]
pub async fn liveness() -> StatusCode {
    StatusCode::OK
}

/// Knative readiness probe: the database answers.
#[utoipa::path(get, path = "/health/readiness", tag = "system", responses((status = 200), (status = 503)))]
pub async fn readiness(State(state): State<AppState>) -> StatusCode {
    match check_database(&state).await {
        Check::Ok => StatusCode::OK,
        Check::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/api/metrics", tag = "system",
    security(("scrape_token" = []), ("bearer" = [])),
    responses((status = 200, content_type = "text/plain; version=0.0.4"), (status = 401), (status = 403)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

/// The OpenAPI 3 document of every route.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system", responses((status = 200, content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document().clone())
}
