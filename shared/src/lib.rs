//! Arca's library: configuration, metadata store, HTTP routers of every function, and the
//! middleware they share. `arca serve` and each `functions/<name>` binary only compose it.

pub mod access;
pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod fsutil;
pub mod function;
pub mod http;
pub mod jwt;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod system;
pub mod telemetry;
pub mod tls;
pub mod users;

use routes::FunctionRouter;

/// Every function's routes, as `arca serve` runs them in one process.
pub fn all_functions() -> Vec<FunctionRouter> {
    vec![system::router(), auth::router()]
}
