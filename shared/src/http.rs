//! The middleware stack every router gets: request ids and structured request logs,
//! metrics, security headers, body limits, and problem+json for every error.

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::app::AppState;
use crate::config::TlsConfig;
use crate::error::ApiError;

/// Header carrying the id of a request, in responses and in every log line.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds fallbacks and the middleware stack, and binds the state.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let mut router = routes
        .fallback(|| async { ApiError::from_status(axum::http::StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|| async {
            ApiError::from_status(axum::http::StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(DefaultBodyLimit::max(state.config.max_json_bytes))
        .layer(from_fn(problem_for_bare_errors))
        .layer(from_fn_with_state(state.clone(), observe));
    for (name, value) in security_headers(&state.config.tls) {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router.with_state(state)
}

fn security_headers(tls: &TlsConfig) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ];
    if *tls != TlsConfig::Off {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    headers
}

/// Gives each request an id (always generated here, never taken from the client), runs it
/// inside a span carrying that id, logs one line per request and records metrics.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let labels = [method.as_str(), route.as_str(), status.as_str()];
    state.metrics.http_requests.with_label_values(&labels).inc();
    state
        .metrics
        .http_duration
        .with_label_values(&labels)
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Turns any error response that is not already JSON (from axum's own rejections or
/// tower layers) into problem+json, keeping headers such as `Allow` and `Retry-After`.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let problem = ApiError::from_status(status).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (problem_parts, body) = problem.into_parts();
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/json") || ct.starts_with(crate::error::PROBLEM_JSON)
        })
}
