//! Arca's library. Three layers, arrows pointing down only:
//! - [`core`]: rules, crypto, stores, the scanner, the lifecycle, configuration types. It
//!   knows no HTTP state and no function.
//! - [`features`]: one module per function (its domain rules, its queries, its handlers).
//!   A feature takes the sub-states it needs (`State<Core>`, `State<Blobs>`, …), never the
//!   whole application.
//! - [`web`]: the sub-states and what composes them: middleware, the route table, serving,
//!   the function runner. `arca serve` and each `functions/<name>` binary only compose it.

pub mod core;
pub mod features;
pub mod web;
