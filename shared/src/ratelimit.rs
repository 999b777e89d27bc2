//! Fixed-window rate limits (per minute) keyed by client IP, principal, or login IP.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use crate::error::ApiError;

const WINDOW_SECS: u64 = 60;

/// Counters of the current window.
#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (u64, u32)>>,
}

/// What a check decided, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset: u64,
}

impl RateLimiter {
    /// Counts one request against `key` with `limit` per minute.
    pub fn check(&self, key: &str, limit: u32) -> Decision {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let window = now / WINDOW_SECS;
        let reset = (window + 1) * WINDOW_SECS - now;
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > 100_000 {
            windows.retain(|_, (w, _)| *w == window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        let allowed = entry.1 < limit;
        if allowed {
            entry.1 += 1;
        }
        Decision { allowed, limit, remaining: limit - entry.1.min(limit), reset }
    }
}

impl Decision {
    /// 429 with `Retry-After` and the `RateLimit-*` headers when refused.
    pub fn into_result(self) -> Result<Decision, ApiError> {
        if self.allowed {
            return Ok(self);
        }
        let detail = format!("too many requests: limit {} per minute; retry in {} s", self.limit, self.reset);
        let mut error = ApiError::too_many("rate_limited", detail, self.reset);
        for (name, value) in self.headers() {
            error = error.with_header(name, value);
        }
        Err(error)
    }

    fn headers(&self) -> [(HeaderName, HeaderValue); 3] {
        [
            (HeaderName::from_static("ratelimit-limit"), HeaderValue::from(self.limit)),
            (HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(self.remaining)),
            (HeaderName::from_static("ratelimit-reset"), HeaderValue::from(self.reset)),
        ]
    }

    /// Adds `RateLimit-Limit/Remaining/Reset` to a response.
    pub fn apply(&self, response: &mut Response) {
        response.headers_mut().extend(self.headers());
    }
}
