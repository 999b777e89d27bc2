//! End-to-end tests: each starts real `arca` processes on fresh data dirs and talks HTTPS
//! to them, against SQLite and a real PostgreSQL (provided by `make test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod artifacts;
mod cli;
mod cluster;
mod deployment;
mod first_run;
mod foundation;
mod hardening;
mod helpers;
mod hostile;
mod identity;
mod s3;
mod scanning;
mod signing;
mod trivy_db;
