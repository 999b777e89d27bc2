//! The core: rules, crypto, stores, the scanner, the lifecycle, configuration types. Knows no
//! HTTP state and no function.

pub mod artifacts;
pub mod audit;
pub mod blobcrypt;
pub mod config;
pub mod db;
pub mod dbroles;
pub mod decisions;
pub mod error;
pub mod fsutil;
pub mod jwt;
pub mod leases;
pub mod lifecycle;
pub mod lockout;
pub mod netpolicy;
pub mod outbox;
pub mod paging;
pub mod pem;
pub mod ratelimit;
pub mod rbac;
pub mod scan;
pub mod scans;
pub mod sessions;
pub mod signing;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod trust;
pub mod uploads;
pub mod users;
