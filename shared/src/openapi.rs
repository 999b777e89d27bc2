//! The OpenAPI 3 document. Every route in the route table must be listed here; a test
//! enumerates the table and fails on any route this document lacks.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::scan::service as scanning;
use crate::{artifacts, audit, auth, download, events, publisher, signing, system, tokens, upload, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "Arca", description = "Secure artifact manager: verified, scanned, signed, audited."),
    paths(
        system::health, system::liveness, system::readiness, system::metrics, system::openapi,
        auth::login, auth::refresh, auth::logout, auth::me, auth::jwks,
        tokens::create, tokens::list, tokens::revoke,
        users::list, users::create_user, users::update, users::roles,
        audit::search, audit::verify_chain, events::dead_letters,
        upload::create, upload::receive, upload::complete, upload::reissue, upload::list_parts, upload::sign_parts,
        artifacts::search, artifacts::get, artifacts::delete, download::download,
        scanning::scan_results, scanning::rescan, scanning::release, scanning::show_policy,
        scanning::list_exceptions, scanning::create_exception, scanning::revoke_exception,
        signing::get_signature, signing::resign, publisher::attach, publisher::list,
    ),
    modifiers(&SecuritySchemes),
    tags((name = "system", description = "Health, metrics and this document"), (name = "auth", description = "Sign-in, identity and API tokens"),
        (name = "users", description = "Accounts and roles"), (name = "audit", description = "The tamper-evident audit log"),
        (name = "artifacts", description = "Upload, search, download"),
        (name = "scanning", description = "Trivy findings, policy, releases and exceptions"),
        (name = "signing", description = "Arca's x509 signatures"))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "scrape_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::HttpMethod;

    fn http_method(method: &axum::http::Method) -> HttpMethod {
        match method.as_str() {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "DELETE" => HttpMethod::Delete,
            "PATCH" => HttpMethod::Patch,
            "HEAD" => HttpMethod::Head,
            other => panic!("unexpected method {other}"),
        }
    }

    /// Every route in the route table is documented, and nothing documented is missing
    /// from the table.
    #[test]
    fn every_route_is_documented() {
        let doc = document();
        let mut table = Vec::new();
        for function in crate::all_functions() {
            for spec in function.specs() {
                let item = doc
                    .paths
                    .paths
                    .get(spec.path)
                    .unwrap_or_else(|| panic!("{} {} is served but not in openapi.json", spec.method, spec.path));
                let documented = match http_method(&spec.method) {
                    HttpMethod::Get => item.get.is_some(),
                    HttpMethod::Post => item.post.is_some(),
                    HttpMethod::Put => item.put.is_some(),
                    HttpMethod::Delete => item.delete.is_some(),
                    HttpMethod::Patch => item.patch.is_some(),
                    HttpMethod::Head => item.head.is_some(),
                    _ => false,
                };
                assert!(documented, "{} {} is served but its method is not documented", spec.method, spec.path);
                table.push(spec.path);
            }
        }
        for path in doc.paths.paths.keys() {
            assert!(table.contains(&path.as_str()), "{path} is documented but not served");
        }
    }
}
