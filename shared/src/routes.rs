//! The route table: every route of every function is declared here with the access it
//! needs. A route can only be added together with its access rule, so a route without an
//! entry cannot be served, and tests can enumerate every route.

use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{on, MethodFilter};
use axum::Router;

use crate::access::{authorize, Access};
use crate::app::AppState;

/// One row of the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    /// Axum path template, e.g. `/api/users/{id}`.
    pub path: &'static str,
    pub access: Access,
}

/// The routes of one function (a Knative Service in the cluster).
pub struct FunctionRouter {
    pub name: &'static str,
    entries: Vec<(RouteSpec, axum::routing::MethodRouter<AppState>)>,
}

impl FunctionRouter {
    pub fn new(name: &'static str) -> Self {
        Self { name, entries: Vec::new() }
    }

    /// Adds a route with the access it requires.
    pub fn route<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.entries.push((RouteSpec { method, path, access }, on(filter, handler)));
        self
    }

    /// Adds a route whose method router the caller built (e.g. with a layer of its own).
    pub fn route_method(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        method_router: axum::routing::MethodRouter<AppState>,
    ) -> Self {
        self.entries.push((RouteSpec { method, path, access }, method_router));
        self
    }

    /// Adds every route of `other` (used to put the system routes into each function).
    pub fn merge(mut self, other: FunctionRouter) -> Self {
        self.entries.extend(other.entries);
        self
    }

    pub fn specs(&self) -> impl Iterator<Item = &RouteSpec> {
        self.entries.iter().map(|(spec, _)| spec)
    }

    /// Builds the axum router, wrapping each route in its access check.
    pub fn into_router(self, state: &AppState) -> Router<AppState> {
        self.entries.into_iter().fold(Router::new(), |router, (spec, method_router)| {
            let guarded = method_router.route_layer(from_fn_with_state((state.clone(), spec.access), authorize));
            router.route(spec.path, guarded)
        })
    }
}
