//! Access control in one place: the rule of each route (from the route table), checked by
//! one middleware that authenticates the caller, applies per-role IP allowlists and the
//! per-principal rate limit, and checks the permission.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::core::error::{ApiError, Code};
use crate::core::netpolicy::{self, ClientIp};
use crate::core::ratelimit::Bucket;
use crate::core::rbac::{self, Permission};
pub use crate::core::rbac::{Credential, Principal};
use crate::core::{sessions, tokens, users};
use crate::web::state::Core;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, including anonymous callers.
    Public,
    /// Any signed-in, enabled user (or valid API token).
    Authenticated,
    /// A caller holding this permission.
    Permission(Permission),
    /// The Prometheus scrape token (`ARCA_METRICS_TOKEN`), or a caller with `metrics_read`.
    Metrics,
}

/// Who the audit log names for a request; filled in once the caller is known.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub name: String,
    pub roles: String,
}

/// A slot the outer audit middleware reads after the route has authenticated the caller.
#[derive(Debug, Clone, Default)]
pub struct ActorSlot(pub std::sync::Arc<std::sync::OnceLock<Actor>>);

/// Middleware applied to every route with that route's rule.
pub async fn authorize(
    State((state, access)): State<(Core, Access)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if access == Access::Public {
        return Ok(next.run(request).await);
    }
    let token = bearer(&request).map(str::to_owned);
    let principal = match (access, token.as_deref()) {
        (Access::Metrics, Some(t)) if is_scrape_token(&state, t) => Principal {
            user_id: String::new(),
            username: "metrics-scraper".to_owned(),
            roles: Vec::new(),
            permissions: vec![Permission::MetricsRead],
            credential: Credential::ScrapeToken,
        },
        (_, token) => authenticate(&state, token).await?,
    };
    if let Some(slot) = request.extensions().get::<ActorSlot>() {
        let _ = slot.0.set(Actor { name: principal.username.clone(), roles: users::encode_roles(&principal.roles) });
    }
    let ip = request.extensions().get::<ClientIp>().map(|c| c.0);
    if let Some(ip) = ip {
        for (role, nets) in &state.config.network.role_allowlists {
            if principal.roles.contains(role) && !netpolicy::contains(nets, ip) {
                return Err(ApiError::new(
                    Code::IpNotAllowedForRole,
                    format!("the {} role may not be used from this address", role.as_str()),
                ));
            }
        }
    }
    let decision = state.limiter.check(Bucket::Principal, &principal.user_id).await.into_result()?;
    let required = match access {
        Access::Permission(p) => Some(p),
        Access::Metrics => Some(Permission::MetricsRead),
        Access::Authenticated | Access::Public => None,
    };
    if let Some(permission) = required {
        if !principal.can(permission) {
            return Err(ApiError::new(
                Code::PermissionDenied,
                format!("this action needs the '{}' permission", permission.as_str()),
            ));
        }
    }
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    decision.apply(&mut response);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn is_scrape_token(state: &Core, presented: &str) -> bool {
    state
        .config
        .metrics_token
        .as_deref()
        .is_some_and(|expected| constant_time_eq(presented.as_bytes(), expected.as_bytes()))
}

/// The bearer token of the `Authorization` header, if any.
pub fn bearer(request: &Request) -> Option<&str> {
    request.headers().get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Compares two secrets without leaking where they differ (hashing first equalises lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn unauthenticated() -> ApiError {
    ApiError::new(Code::InvalidToken, "a valid access token is required")
}

/// Verifies an access token or API token and loads the current state of its user.
async fn authenticate(state: &Core, token: Option<&str>) -> Result<Principal, ApiError> {
    let token = token.ok_or_else(unauthenticated)?;
    let (user_id, credential, scopes) = if token.starts_with(tokens::PREFIX) {
        let api_token = tokens::authenticate(&state.db, token).await?.ok_or_else(unauthenticated)?;
        (api_token.user_id.clone(), Credential::ApiToken { id: api_token.id.clone() }, Some(api_token.scopes()))
    } else {
        let claims = state.tokens.verify(token).map_err(|_| unauthenticated())?;
        if sessions::is_revoked(&state.db, &claims.jti, &claims.sid).await? {
            return Err(unauthenticated());
        }
        (claims.sub, Credential::Session { jti: claims.jti, sid: claims.sid, exp: claims.exp }, None)
    };
    let mut principal = principal_of_user(state, &user_id, scopes.as_deref()).await?;
    principal.credential = credential;
    Ok(principal)
}

/// The current state of a user as a principal: enabled, with the roles' permissions
/// (narrowed by an API token's scopes). For credentials other than a session or a token
/// (download links), the credential is a session without ids.
pub async fn principal_of_user(
    state: &Core,
    user_id: &str,
    scopes: Option<&[Permission]>,
) -> Result<Principal, ApiError> {
    let user = users::find_by_id(&state.db, user_id).await?.ok_or_else(unauthenticated)?;
    if user.disabled {
        return Err(unauthenticated());
    }
    let roles = user.roles();
    let mut permissions = rbac::permissions_of(&roles);
    if let Some(scopes) = scopes {
        permissions.retain(|p| scopes.contains(p));
    }
    let credential = Credential::Session { jti: String::new(), sid: String::new(), exp: 0 };
    Ok(Principal { roles, permissions, user_id: user.id, username: user.username, credential })
}
