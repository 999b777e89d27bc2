//! The middleware stack every router gets: request ids and structured request logs,
//! metrics, client address and IP allowlist, per-IP rate limit, the audit entry of every
//! request, security headers, body limits, and problem+json for every error.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::access::{ActorSlot, Principal};
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::config::TlsConfig;
use crate::error::ApiError;
use crate::netpolicy::{self, ClientIp};

/// Header carrying the id of a request, in responses and in every log line.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Facts about the current request that handlers put into audit events.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: IpAddr,
    pub user_agent: String,
}

/// Adds fallbacks and the middleware stack, and binds the state.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let mut router = routes
        .fallback(|| async { ApiError::from_status(StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|| async { ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED) })
        .layer(DefaultBodyLimit::max(state.config.max_json_bytes))
        .layer(from_fn(problem_for_bare_errors))
        .layer(from_fn_with_state(state.clone(), gate_and_audit))
        .layer(from_fn_with_state(state.clone(), observe));
    for (name, value) in security_headers(&state.config.tls) {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router.with_state(state)
}

fn security_headers(tls: &TlsConfig) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    if *tls != TlsConfig::Off {
        headers
            .push((header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains")));
    }
    headers
}

/// Gives each request an id (always generated here, never taken from the client), runs it
/// inside a span carrying that id, logs one line per request and records metrics.
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let method = request.method().clone();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let client_ip = netpolicy::client_ip(&request, &state.config.network);
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect();
    request.extensions_mut().insert(ClientIp(client_ip));
    request.extensions_mut().insert(RequestContext { request_id: id.clone(), client_ip, user_agent });
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let labels = [method.as_str(), route.as_str(), status.as_str()];
    state.metrics.http_requests.with_label_values(&labels).inc();
    state.metrics.http_duration.with_label_values(&labels).observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1000.0, %client_ip, "request");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The global allowlist and per-IP rate limit (stricter on login), then one audit entry
/// per request with its outcome. Knative probes are not audited.
async fn gate_and_audit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(context) = request.extensions().get::<RequestContext>().cloned() else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    // An upload URL is a credential until used: the log names the route, never the token.
    let path = match route.as_deref() {
        Some(r) if r.contains("{token}") => r.to_owned(),
        _ => request.uri().path().to_owned(),
    };
    let slot = ActorSlot::default();
    request.extensions_mut().insert(slot.clone());

    let response = match gate(&state, &context, &path) {
        Ok(decision) => {
            let mut response = next.run(request).await;
            decision.apply(&mut response);
            response
        }
        Err(error) => error.into_response(),
    };
    if !path.starts_with("/health/") {
        let status = response.status();
        let outcome = match status.as_u16() {
            s if s < 400 => "success",
            401 | 403 | 429 => "denied",
            s if s < 500 => "failure",
            _ => "error",
        };
        let actor = slot.0.get().cloned().unwrap_or_default();
        let action = format!("{method} {}", route.as_deref().unwrap_or("unmatched"));
        let mut event = context.anonymous_event(&action, &path, outcome, serde_json::Value::Null);
        if !actor.name.is_empty() {
            event.actor = actor.name;
            event.roles = actor.roles;
        }
        event.status = i64::from(status.as_u16());
        state.audit.record(event).await;
    }
    response
}

fn gate(state: &AppState, context: &RequestContext, path: &str) -> Result<crate::ratelimit::Decision, ApiError> {
    if !netpolicy::allowed(&state.config.network.allowlist, context.client_ip) {
        return Err(ApiError::forbidden("ip_not_allowed", "this address may not use Arca"));
    }
    let limits = &state.config.limits;
    if path == "/api/auth/login" {
        state
            .rate_limiter
            .check(&format!("login:{}", context.client_ip), limits.login_rate_per_minute)
            .into_result()?;
    }
    state.rate_limiter.check(&format!("ip:{}", context.client_ip), limits.rate_per_minute).into_result()
}

impl RequestContext {
    /// An audit event about this request, by `principal`.
    pub fn event(
        &self,
        principal: &Principal,
        action: &str,
        target: &str,
        outcome: &str,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            actor: principal.username.clone(),
            roles: crate::users::encode_roles(&principal.roles),
            ..self.anonymous_event(action, target, outcome, details)
        }
    }

    /// An audit event about this request by a caller not (yet) known.
    pub fn anonymous_event(&self, action: &str, target: &str, outcome: &str, details: serde_json::Value) -> AuditEvent {
        AuditEvent {
            actor: "anonymous".to_owned(),
            roles: String::new(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            status: 0,
            client_ip: self.client_ip.to_string(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
            details,
        }
    }
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
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with(crate::error::PROBLEM_JSON))
}
