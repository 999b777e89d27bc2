//! The route table. A route is declared once: its method, path, request and response types
//! and documentation in the handler's `#[utoipa::path]` attribute, its access rule here
//! (`FunctionRouter::route(access, routes!(handler))`). The table builds the axum router
//! (each route wrapped in its access check) and the OpenAPI document, so a route without
//! an access rule cannot be served and a served route cannot be undocumented.

use axum::extract::FromRef;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;
use axum::Router;
use utoipa::openapi::path::Paths;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use crate::web::access::{authorize, Access};
use crate::web::state::Core;

/// One row of the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    /// Axum path template, e.g. `/api/users/{id}`.
    pub path: String,
    pub access: Access,
    /// Cluster-internal routes (event receivers, storage notifications) are not part of
    /// the public API: not documented, never routed by the ingress.
    pub internal: bool,
}

/// Marks the answer of a cluster-internal route, which the audit middleware then records
/// (it records no other route outside `/api`).
#[derive(Debug, Clone, Copy)]
pub struct InternalRoute;

async fn mark_internal(mut response: axum::response::Response) -> axum::response::Response {
    response.extensions_mut().insert(InternalRoute);
    response
}

/// What `utoipa_axum::routes!(handler)` produces for one handler.
pub type Documented<S> = (Vec<(String, RefOr<Schema>)>, Paths, MethodRouter<S>);

struct Entry<S> {
    spec: RouteSpec,
    router: MethodRouter<S>,
    paths: Option<Paths>,
    schemas: Vec<(String, RefOr<Schema>)>,
}

/// The routes of one function (a Knative Service in the cluster).
pub struct FunctionRouter<S> {
    pub name: &'static str,
    entries: Vec<Entry<S>>,
}

fn method_of(paths: &Paths) -> Option<(Method, String)> {
    let (path, item) = paths.paths.iter().next()?;
    let method = if item.get.is_some() {
        Method::GET
    } else if item.post.is_some() {
        Method::POST
    } else if item.put.is_some() {
        Method::PUT
    } else if item.delete.is_some() {
        Method::DELETE
    } else if item.patch.is_some() {
        Method::PATCH
    } else {
        return None;
    };
    Some((method, path.clone()))
}

impl<S: Clone + Send + Sync + 'static> FunctionRouter<S>
where
    Core: FromRef<S>,
{
    pub fn new(name: &'static str) -> Self {
        Self { name, entries: Vec::new() }
    }

    /// Adds a documented route (`routes!(handler)`, one handler) with the access it requires.
    pub fn route(mut self, access: Access, (schemas, paths, router): Documented<S>) -> Self {
        let Some((method, path)) = method_of(&paths) else {
            tracing::error!(function = self.name, "a route without a method in its documentation");
            return self;
        };
        let spec = RouteSpec { method, path, access, internal: false };
        self.entries.push(Entry { spec, router, paths: Some(paths), schemas });
        self
    }

    /// Adds a cluster-internal route that authenticates its sender itself.
    pub fn internal(mut self, method: Method, path: &str, router: MethodRouter<S>) -> Self {
        let spec = RouteSpec { method, path: path.to_owned(), access: Access::Public, internal: true };
        self.entries.push(Entry { spec, router, paths: None, schemas: Vec::new() });
        self
    }

    /// Adds every route of `other`.
    pub fn merge(mut self, other: FunctionRouter<S>) -> Self {
        self.entries.extend(other.entries);
        self
    }

    pub fn specs(&self) -> impl Iterator<Item = &RouteSpec> {
        self.entries.iter().map(|e| &e.spec)
    }

    /// The documentation of every public route, tagged with this function's name.
    pub fn documentation(&self) -> (Paths, Vec<(String, RefOr<Schema>)>) {
        let mut all = Paths::new();
        let mut schemas = Vec::new();
        for entry in &self.entries {
            if let Some(paths) = &entry.paths {
                for (path, item) in &paths.paths {
                    let mut item = item.clone();
                    for operation in crate::web::openapi::operations_mut(&mut item) {
                        operation.tags = Some(vec![self.name.to_owned()]);
                        crate::web::openapi::document_access(operation, entry.spec.access);
                    }
                    match all.paths.get_mut(path) {
                        Some(existing) => existing.merge_operations(item),
                        None => {
                            all.paths.insert(path.clone(), item);
                        }
                    }
                }
            }
            schemas.extend(entry.schemas.iter().cloned());
        }
        (all, schemas)
    }

    /// Builds the axum router, wrapping each route in its access check.
    pub fn into_router(self, core: &Core) -> Router<S> {
        let mut router = Router::new();
        for entry in self.entries {
            let mut guarded =
                entry.router.route_layer(from_fn_with_state((core.clone(), entry.spec.access), authorize));
            if entry.spec.internal {
                guarded = guarded.route_layer(axum::middleware::map_response(mark_internal));
            }
            router = router.route(&entry.spec.path, guarded);
        }
        router
    }
}
