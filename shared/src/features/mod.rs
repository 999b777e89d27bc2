//! One module per function: its domain rules, its queries and its HTTP handlers. Each takes
//! the sub-states it needs (see `web::state`), so its dependencies are visible in its types.

pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod download;
pub mod ingest;
pub mod scan;
pub mod sign;
pub mod upload;
pub mod users;
