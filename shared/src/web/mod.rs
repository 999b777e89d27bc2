//! The web layer: sub-states, middleware, the route table, serving, and the runner of one
//! function. It composes the features; nothing below it knows about it.

pub mod access;
pub mod function;
pub mod http;
pub mod openapi;
pub mod receiver;
pub mod routes;
pub mod server;
pub mod spa;
pub mod state;
pub mod system;
