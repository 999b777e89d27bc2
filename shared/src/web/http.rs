//! The middleware stack every router gets: request ids and structured request logs,
//! metrics, client address and IP allowlist, per-IP rate limit, the audit entry of every
//! request, security headers, body limits, and problem+json for every error.
//!
//! What an unauthenticated caller can make Arca store is bounded: metrics and audit
//! entries name the route template (or `unmatched`) and a known method (or `OTHER`),
//! never the raw path or method; the path kept in the audit target is truncated and
//! escaped; and anonymous requests that fail are audited within a per-IP budget.
//! Cluster-internal routes (event receivers, storage notifications) are audited too, every
//! refusal within that budget, whoever sent it.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::core::audit::AuditEvent;
use crate::core::config::TlsConfig;
use crate::core::error::{ApiError, Code};
use crate::core::netpolicy::{self, ClientIp};
use crate::core::ratelimit::Bucket;
use crate::web::access::{ActorSlot, Principal};
use crate::web::routes::InternalRoute;
use crate::web::state::Core;

/// Header carrying the id of a request, in responses and in every log line.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request path kept in an audit entry.
const MAX_AUDITED_PATH: usize = 256;

/// Details a route adds to its request's audit entry (a response extension).
#[derive(Debug, Clone)]
pub struct AuditDetails(pub serde_json::Value);

/// Facts about the current request that handlers put into audit events.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: IpAddr,
    pub user_agent: String,
    /// The peer is a trusted proxy, so its `X-Forwarded-Proto`/`-Host` describe the client.
    pub via_trusted_proxy: bool,
}

/// Adds fallbacks and the middleware stack, and binds the state. `pages` (the web app in
/// `arca serve`) answers what no API route matches; `/api/*` never falls back to it.
pub fn finish<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    state: S,
    core: Core,
    pages: Option<Router>,
) -> Router {
    let routes = match pages {
        Some(pages) => routes.fallback_service(pages),
        None => routes.fallback(|| async { ApiError::from_status(axum::http::StatusCode::NOT_FOUND) }),
    };
    let mut router = routes
        .method_not_allowed_fallback(|| async { ApiError::from_status(axum::http::StatusCode::METHOD_NOT_ALLOWED) })
        .layer(DefaultBodyLimit::max(core.config.max_json_bytes))
        .layer(from_fn_with_state(core.clone(), request_timeout))
        .layer(from_fn(problem_for_bare_errors))
        .layer(from_fn_with_state(core.clone(), gate_and_audit))
        .layer(from_fn_with_state(core.clone(), observe));
    for (name, value) in security_headers(&core.config.tls) {
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

/// The method as a metric label and audit action: one of the known methods, else `OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// A request path as stored in an audit entry: at most 256 characters, control and
/// non-ASCII characters escaped.
pub fn audited_path(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if out.len() >= MAX_AUDITED_PATH {
            out.push('…');
            break;
        }
        if c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.push_str(&c.escape_default().to_string());
        }
    }
    out
}

/// Routes whose bodies stream (uploads, downloads, exports) or that do long work (event
/// receivers run scans): no request timeout; the idle timeout still applies.
const UNTIMED_ROUTES: &[&str] = &[
    "/api/uploads/{token}",
    "/api/artifacts/{id}/download",
    "/api/download-links/{token}",
    "/api/audit-logs",
    "/api/audit-logs/export/{token}",
    "/",
];

/// Ends a request that takes longer than `ARCA_REQUEST_TIMEOUT` (408).
async fn request_timeout(State(core): State<Core>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    if route.as_deref().is_some_and(|r| UNTIMED_ROUTES.contains(&r)) {
        return next.run(request).await;
    }
    let limit = core.config.server.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(Code::RequestTimeout, format!("the request took longer than {} s", limit.as_secs()))
            .into_response(),
    }
}

/// Gives each request an id (always generated here, never taken from the client), runs it
/// inside a span carrying that id, logs one line per request and records metrics.
async fn observe(State(core): State<Core>, mut request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let method = method_label(request.method());
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let client_ip = netpolicy::client_ip(&request, &core.config.network);
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect();
    request.extensions_mut().insert(ClientIp(client_ip));
    let via_trusted_proxy = netpolicy::from_trusted_proxy(&request, &core.config.network);
    request.extensions_mut().insert(RequestContext {
        request_id: id.clone(),
        client_ip,
        user_agent,
        via_trusted_proxy,
    });
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let labels = [method, route.as_str(), status.as_str()];
    core.metrics.http_requests.with_label_values(&labels).inc();
    core.metrics.http_duration.with_label_values(&labels).observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1000.0, %client_ip, "request");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Knative's liveness probe (`web::system`).
const LIVENESS: &str = "/health/liveness";

/// The global allowlist and per-IP rate limit (stricter on login), then one audit entry
/// per request with its outcome. Knative probes are not audited; liveness is not gated.
async fn gate_and_audit(State(core): State<Core>, mut request: Request, next: Next) -> Response {
    let Some(context) = request.extensions().get::<RequestContext>().cloned() else {
        return next.run(request).await;
    };
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    // Credentials in paths (upload tokens, download links) are never logged: the template is.
    let path = match route.as_deref() {
        Some(r) if r.contains("{token}") => r.to_owned(),
        _ => audited_path(request.uri().path()),
    };
    // Liveness says only that the process answers: it never waits on the allowlist's or the
    // rate limiter's store (the database), or an outage would get every pod restarted.
    if path == LIVENESS {
        return next.run(request).await;
    }
    let slot = ActorSlot::default();
    request.extensions_mut().insert(slot.clone());

    let response = match gate(&core, &context, route.as_deref()).await {
        Ok(decision) => {
            let mut response = next.run(request).await;
            decision.apply(&mut response);
            response
        }
        Err(error) => error.into_response(),
    };
    // Probes and the web app's static files are not API requests: not audited.
    let internal = response.extensions().get::<InternalRoute>().is_some();
    if !internal && (path.starts_with("/health/") || !path.starts_with("/api")) {
        return response;
    }
    let status = response.status();
    if internal && response.extensions().get::<Code>() == Some(&Code::Busy) {
        // Another replica works on the event: flow control, not a decision about the sender
        // (the delivery that does the work is audited).
        return response;
    }
    let outcome = match status.as_u16() {
        s if s < 400 => "success",
        401 | 403 | 429 => "denied",
        s if s < 500 => "failure",
        _ => "error",
    };
    let actor = slot.0.get().cloned().unwrap_or_default();
    if (actor.name.is_empty() || internal) && status.as_u16() >= 400 {
        // Anonymous failures, and refused deliveries to internal routes (a sender with a
        // valid token may still send forged events), cost a budget of their own: a stranger
        // cannot fill the log.
        if !core.limiter.check(Bucket::AnonymousAudit, &context.client_ip.to_string()).await.allowed {
            core.metrics.audit_suppressed.inc();
            return response;
        }
    }
    let action = format!("{method} {}", route.as_deref().unwrap_or("unmatched"));
    let mut details = match response.extensions().get::<AuditDetails>() {
        Some(added) => added.0.clone(),
        None => serde_json::Value::Null,
    };
    if let Some(code) = response.extensions().get::<Code>().filter(|_| status.as_u16() >= 400) {
        match details.as_object_mut() {
            Some(map) => {
                map.insert("code".into(), code.as_str().into());
            }
            None => details = serde_json::json!({ "code": code.as_str() }),
        }
    }
    let mut event = context.anonymous_event(&action, &path, outcome, details);
    if !actor.name.is_empty() {
        event.actor = actor.name;
        event.roles = actor.roles;
    }
    event.status = i64::from(status.as_u16());
    core.audit.record(event).await;
    response
}

async fn gate(
    core: &Core,
    context: &RequestContext,
    route: Option<&str>,
) -> Result<crate::core::ratelimit::Decision, ApiError> {
    if !netpolicy::allowed(&core.config.network.allowlist, context.client_ip) {
        return Err(ApiError::new(Code::IpNotAllowed, "this address may not use Arca"));
    }
    let ip = context.client_ip.to_string();
    if route == Some("/api/auth/login") {
        core.limiter.check(Bucket::Login, &ip).await.into_result()?;
    }
    core.limiter.check(Bucket::Ip, &ip).await.into_result()
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
            roles: crate::core::rbac::encode_roles(&principal.roles),
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
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with(crate::core::error::PROBLEM_JSON))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_stored_paths_are_bounded() {
        assert_eq!(method_label(&Method::from_bytes(b"FROBNICATE").unwrap()), "OTHER");
        assert_eq!(method_label(&Method::GET), "GET");
        let long = format!("/{}", "a".repeat(64 * 1024));
        assert!(audited_path(&long).len() <= MAX_AUDITED_PATH + 4);
        assert_eq!(audited_path("/x\u{7}y\u{e9}"), "/x\\u{7}y\\u{e9}");
    }
}
