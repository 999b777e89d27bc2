//! The OpenAPI 3 document, built from the route table: each route's documentation comes
//! from its handler's `#[utoipa::path]`, its tag is its function, its security requirement
//! follows from its access rule, and every 4xx/5xx response is the one `Problem` schema
//! (whose `code` enum is [`Code::ALL`]). Nothing is listed twice, so nothing can drift.

use std::sync::OnceLock;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, ResponseBuilder, Tag,
};

use crate::core::error::{Code, PROBLEM_JSON};
use crate::web::access::Access;

/// The functions' names and what each does (the document's tags).
const TAGS: &[(&str, &str)] = &[
    ("system", "Health, probes, metrics and this document (every function)"),
    ("auth", "Sign-in, sessions, identity and API tokens"),
    ("users", "Accounts and roles"),
    ("upload", "Declaring artifacts and sending their bytes"),
    ("artifacts", "Search, metadata, history, deletion, names"),
    ("download", "Downloading approved, signed artifacts"),
    ("scan", "Trivy findings, policy, releases, exceptions, the scanner"),
    ("sign", "Arca's and publishers' signatures"),
    ("audit", "The tamper-evident audit log and dead-lettered events"),
];

/// Every operation of a path item.
pub fn operations_mut(item: &mut PathItem) -> Vec<&mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.options, &mut item.head, &mut item.patch]
        .into_iter()
        .filter_map(Option::as_mut)
        .collect()
}

/// The security requirement an access rule means.
pub fn document_access(operation: &mut Operation, access: Access) {
    let requirement = |scheme: &str| SecurityRequirement::new(scheme, Vec::<String>::new());
    operation.security = match access {
        Access::Public => None,
        Access::Authenticated | Access::Permission(_) => Some(vec![requirement("bearer"), requirement("api_token")]),
        Access::Metrics => Some(vec![requirement("scrape_token"), requirement("bearer")]),
    };
    if let Access::Permission(p) = access {
        let line = format!("Requires the `{}` permission.", p.as_str());
        operation.description = Some(match operation.description.take() {
            Some(d) if !d.is_empty() => format!("{d}\n\n{line}"),
            _ => line,
        });
    }
}

/// The `Problem` schema (RFC 9457 and Arca's members).
fn problem_schema() -> Schema {
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let descriptions: Vec<String> =
        Code::ALL.iter().map(|c| format!("`{}` ({}): {}", c, c.status().as_u16(), c.meaning())).collect();
    ObjectBuilder::new()
        .description(Some(format!("An error (RFC 9457 problem details). Codes:\n\n- {}", descriptions.join("\n- "))))
        .property("type", ObjectBuilder::new().schema_type(Type::String).description(Some("urn:arca:problem:<code>")))
        .property("title", ObjectBuilder::new().schema_type(Type::String))
        .property("status", ObjectBuilder::new().schema_type(Type::Integer))
        .property("code", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes)))
        .property("detail", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "retry_after",
            ObjectBuilder::new().schema_type(Type::Integer).description(Some("Seconds to wait (429)")),
        )
        .property(
            "artifact_status",
            ObjectBuilder::new().schema_type(Type::String).description(Some("The artifact's status (not_approved)")),
        )
        .required("type")
        .required("title")
        .required("status")
        .required("code")
        .required("detail")
        .into()
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::String)).description(Some(description)).build()
}

/// Problem bodies on every error response; `X-Request-Id` on every response;
/// `Retry-After` and the `RateLimit-*` headers where they are sent.
fn document_responses(operation: &mut Operation, authenticated: bool) {
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let code: u16 = status.parse().unwrap_or(0);
        response.headers.insert("X-Request-Id".into(), string_header("Id of this request, also on its log line"));
        if code >= 400 {
            response.content.clear();
            response.content.insert(
                PROBLEM_JSON.into(),
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            );
            if response.description.is_empty() {
                response.description = axum::http::StatusCode::from_u16(code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Error")
                    .to_owned();
            }
        }
        if code == 429 || code == 503 {
            response.headers.insert("Retry-After".into(), string_header("Seconds to wait before retrying"));
        }
        if authenticated || code == 429 {
            for name in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
                response.headers.insert(name.into(), string_header("Rate limit of the caller (per minute)"));
            }
        }
    }
    // Every route can refuse a malformed request, be rate limited and fail unexpectedly; a
    // JSON body can also be too large, of another media type, or of the wrong shape.
    let json_body = operation.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
    let mut always = vec![("400", "Bad Request"), ("429", "Too Many Requests"), ("500", "Internal Server Error")];
    if json_body {
        always.extend([
            ("413", "Payload Too Large"),
            ("415", "Unsupported Media Type"),
            ("422", "Unprocessable Entity"),
        ]);
    }
    for (status, description) in always {
        if !operation.responses.responses.contains_key(status) {
            let mut response = ResponseBuilder::new()
                .description(description)
                .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
                .header("X-Request-Id", string_header("Id of this request, also on its log line"));
            if status == "429" {
                response = response.header("Retry-After", string_header("Seconds to wait before retrying"));
            }
            let response = response.build();
            operation.responses.responses.insert(status.into(), RefOr::T(response));
        }
    }
}

fn build() -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas = Vec::new();
    for function in crate::web::function::all_functions::<crate::web::state::ServeState>() {
        let (function_paths, function_schemas) = function.documentation();
        paths.merge(function_paths);
        schemas.extend(function_schemas);
    }
    for item in paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let authenticated = operation.security.is_some();
            document_responses(operation, authenticated);
        }
    }
    let mut components = ComponentsBuilder::new()
        .schema("Problem", problem_schema())
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        )
        .security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("arca_…")
                    .description(Some("An API token (`arca_…`), for CI"))
                    .build(),
            ),
        )
        .security_scheme(
            "scrape_token",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("ARCA_METRICS_TOKEN")).build(),
            ),
        )
        .build();
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Arca")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Secure artifact manager: verified, scanned, signed, audited."))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some(TAGS.iter().map(|(name, description)| {
            let mut tag = Tag::new(*name);
            tag.description = Some((*description).to_owned());
            tag
        })))
        .build()
}

/// The document, built once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every served public route is documented, nothing documented is unserved, and
    /// operation ids are unique.
    #[test]
    fn the_document_is_the_route_table() {
        let doc = document();
        let mut served = BTreeSet::new();
        for function in crate::web::function::all_functions::<crate::web::state::ServeState>() {
            for spec in function.specs().filter(|s| !s.internal) {
                served.insert((spec.method.to_string().to_lowercase(), spec.path.clone()));
            }
        }
        let mut documented = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            let mut item = item.clone();
            for (method, op) in [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("patch", &item.patch),
            ] {
                if let Some(op) = op {
                    documented.insert((method.to_owned(), path.clone()));
                    let id = op.operation_id.clone().unwrap_or_default();
                    assert!(
                        !id.is_empty() && ids.insert(id.clone()),
                        "{method} {path}: operationId {id:?} missing or repeated"
                    );
                    assert!(op.tags.as_ref().is_some_and(|t| t.len() == 1), "{method} {path}: one tag");
                }
            }
            for op in operations_mut(&mut item) {
                for (status, response) in &op.responses.responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let RefOr::T(response) = response else { panic!("{path}: a referenced response") };
                        assert!(response.content.contains_key(PROBLEM_JSON), "{path} {status}: no Problem body");
                    }
                }
            }
        }
        assert_eq!(served, documented);
    }
}
