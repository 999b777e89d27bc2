//! Arca's library: configuration, metadata store, HTTP routers of every function, and the
//! middleware they share. `arca serve` and each `functions/<name>` binary only compose it.

pub mod access;
pub mod app;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod blobcrypt;
pub mod config;
pub mod db;
pub mod download;
pub mod error;
pub mod events;
pub mod fsutil;
pub mod function;
pub mod http;
pub mod jwt;
pub mod lockout;
pub mod netpolicy;
pub mod openapi;
pub mod publisher;
pub mod ratelimit;
pub mod rbac;
pub mod reconcile;
pub mod routes;
pub mod scan;
pub mod server;
pub mod sessions;
pub mod signing;
pub mod storage;
pub mod system;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod upload;
pub mod users;

use routes::FunctionRouter;

/// Every function's routes, as `arca serve` runs them in one process.
pub fn all_functions() -> Vec<FunctionRouter> {
    vec![
        system::router(),
        auth::router(),
        users::router(),
        audit::router(),
        events::router(),
        upload::router(),
        artifacts::router(),
        download::router(),
        scan::service::router(),
        signing::router().merge(publisher::router()),
    ]
}
