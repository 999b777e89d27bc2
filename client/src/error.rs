//! Errors: the server's problem documents (RFC 9457) decoded into [`Problem`], and what
//! can go wrong on this side.

use serde::{Deserialize, Serialize};

/// An error answer of the API (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The HTTP status of the response.
    pub status: u16,
    /// The stable error code (`core::error::Code`), e.g. `not_approved`; empty when the
    /// body was not a problem document (a proxy's or object store's answer).
    pub code: String,
    pub title: String,
    pub detail: String,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u64>,
    /// The whole document, extensions included (`reasons`, `artifact_status`, …).
    pub body: serde_json::Value,
}

impl Problem {
    /// Decodes an error body; anything that is not a problem document keeps its status and
    /// the start of its text as the detail.
    pub fn from_body(status: u16, retry_after_header: Option<u64>, body: &[u8]) -> Self {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        let text = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let detail = match value.get("detail").and_then(|v| v.as_str()) {
            Some(d) => d.to_owned(),
            None => String::from_utf8_lossy(body).chars().take(300).collect(),
        };
        Self {
            status,
            code: text("code"),
            title: text("title"),
            detail,
            retry_after: value.get("retry_after").and_then(|v| v.as_u64()).or(retry_after_header),
            body: value,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code.is_empty(), self.detail.is_empty()) {
            (false, false) => write!(f, "{}: {} ({})", self.status, self.detail, self.code),
            (false, true) => write!(f, "{} ({})", self.status, self.code),
            (true, false) => write!(f, "{}: {}", self.status, self.detail),
            (true, true) => write!(f, "{}", self.status),
        }
    }
}

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error.
    #[error("{0}")]
    Api(Box<Problem>),
    /// The server could not be reached, or the connection broke (TLS refusals included).
    #[error("{context}: {source}")]
    Transport {
        context: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer that does not have the documented shape.
    #[error("unexpected answer from {operation}: {detail}")]
    Decode { operation: &'static str, detail: String },
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The bytes received are not the ones Arca recorded.
    #[error("digest mismatch: expected sha256 {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// An artifact did not reach a final status in time.
    #[error("{id} still {status} after {seconds} s")]
    Timeout { id: String, status: String, seconds: u64 },
    /// Anything else this side refuses (bad arguments, an untrusted certificate, …).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The problem document, when the server answered with one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Api(p) => Some(p.as_ref()),
            _ => None,
        }
    }

    /// The API error code (`not_found`, …), when there is one.
    pub fn code(&self) -> Option<&str> {
        self.problem().map(|p| p.code.as_str()).filter(|c| !c.is_empty())
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        self.problem().map(|p| p.status)
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    pub(crate) fn transport(context: impl Into<String>, source: reqwest::Error) -> Self {
        Error::Transport { context: context.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
