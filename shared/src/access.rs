//! Access rules: what a caller must present to reach a route, checked in one place.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;
use crate::users::{self, Role};

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, including anonymous callers.
    Public,
    /// The Prometheus scrape token (`ARCA_METRICS_TOKEN`).
    MetricsScrape,
    /// Any signed-in, enabled user.
    Authenticated,
}

/// The authenticated caller, put into the request's extensions by [`authorize`].
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    /// Current roles, read from the store on each request (not from the token), so that a
    /// role change or a disabled account takes effect at once.
    pub roles: Vec<Role>,
    pub token_id: String,
}

/// Middleware applied to every route with that route's rule.
pub async fn authorize(
    State((state, access)): State<(AppState, Access)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match access {
        Access::Public => {}
        Access::MetricsScrape => {
            let Some(expected) = state.config.metrics_token.as_deref() else {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "metrics_disabled",
                    "metrics scraping is disabled: set ARCA_METRICS_TOKEN",
                ));
            };
            let presented = bearer(&request).unwrap_or_default();
            if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
                return Err(ApiError::unauthorized(
                    "invalid_scrape_token",
                    "a valid scrape token is required",
                ));
            }
        }
        Access::Authenticated => {
            let token = bearer(&request).map(str::to_owned);
            let principal = authenticate(&state, token.as_deref()).await?;
            request.extensions_mut().insert(principal);
        }
    }
    Ok(next.run(request).await)
}

/// The bearer token of the `Authorization` header, if any.
pub fn bearer(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Compares two secrets without leaking where they differ (hashing first equalises lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn unauthenticated() -> ApiError {
    ApiError::unauthorized("invalid_token", "a valid access token is required")
}

/// Verifies the bearer access token and loads the current state of its user.
async fn authenticate(state: &AppState, token: Option<&str>) -> Result<Principal, ApiError> {
    let token = token.ok_or_else(unauthenticated)?;
    let claims = state.jwt.verify(token).map_err(|_| unauthenticated())?;
    let user = users::find_by_id(&state.db, &claims.sub)
        .await?
        .ok_or_else(unauthenticated)?;
    if user.disabled {
        return Err(unauthenticated());
    }
    Ok(Principal {
        roles: user.roles(),
        user_id: user.id,
        username: user.username,
        token_id: claims.jti,
    })
}
