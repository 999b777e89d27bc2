//! The web app, as `arca serve` serves it: the built files of `frontend/dist` from a
//! directory (`--web-dir`), with the SPA fallback (client routes get `index.html`; `/api/*`
//! never falls back), long caching for hashed assets, `no-store` for `index.html`, and the
//! page's own Content-Security-Policy (the API's `default-src 'none'` would block it).

use std::path::{Path, PathBuf};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of the app's HTML and assets. Scripts only from the app itself (no inline
/// script, no eval); MUI's emotion injects `<style>` elements, hence `'unsafe-inline'` for
/// styles only; WebAssembly (the SHA-256 worker) needs `'wasm-unsafe-eval'`; `connect-src`
/// adds the object store's origin for presigned uploads.
pub fn content_security_policy(s3_origin: Option<&str>) -> String {
    let connect = match s3_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src {connect}; worker-src 'self'; \
         object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )
}

/// The directory of the built app: `--web-dir`, else `frontend/dist` when it exists.
pub fn web_dir(configured: Option<&Path>) -> Option<PathBuf> {
    match configured {
        Some(dir) => Some(dir.to_owned()),
        None => std::path::absolute("frontend/dist").ok().filter(|d| d.join("index.html").is_file()),
    }
}

/// Routes for the app, to merge after the API (so the API's routes win).
pub fn router(dir: &Path, s3_origin: Option<&str>) -> Router {
    let csp = HeaderValue::from_str(&content_security_policy(s3_origin))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    let index = dir.join("index.html");
    let assets = ServeDir::new(dir.join("assets"));
    let app = ServeDir::new(dir).fallback(ServeFile::new(&index));
    Router::new()
        .nest_service(
            "/assets",
            tower::ServiceBuilder::new()
                // Only a file that exists is cached for a year: a 404 (an asset of a newer
                // build asked for early) must not stick.
                .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, |r: &Response<_>| {
                    Some(HeaderValue::from_static(match r.status() {
                        StatusCode::OK | StatusCode::NOT_MODIFIED => "public, max-age=31536000, immutable",
                        _ => "no-store",
                    }))
                }))
                .service(assets),
        )
        .route("/api", get(api_not_found))
        .route("/api/{*rest}", get(api_not_found).post(api_not_found).put(api_not_found).delete(api_not_found))
        .fallback_service(
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .service(app),
        )
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, csp))
}

/// `/api/*` never falls back to the page.
async fn api_not_found() -> Response {
    crate::core::error::ApiError::from_status(StatusCode::NOT_FOUND).into_response()
}

/// Shown at `/` when the app is not built.
pub fn placeholder() -> Router {
    Router::new().route(
        "/",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Arca</title></head><body>\
                 <h1>Arca</h1><p>The web app is not built: run <code>make run</code> (it builds <code>frontend/</code>), \
                 or start with <code>--web-dir</code>. The API is at <code>/api</code>.</p></body></html>",
            )
        }),
    )
}
