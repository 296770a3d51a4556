//! Switchyard's HTTP protocol plugin: Kuzzle's HTTP API (REST routes, `POST /_query`, CORS,
//! compression) on hyper's HTTP/1.1 server with keep-alive.
//!
//! One host connection per HTTP request, as Kuzzle. The REST routes come from the host's own
//! route table, read through `server:info` at start-up. See `README.md` for configuration,
//! routes, behaviour on bad input and limits.
//!
//! Code map: `server` (request threads, listener, hyper) → `exchange` (one request: checks, body,
//! routing, host call) using `body` (content type, size cap, decompression), `request` (HTTP to
//! Kuzzle's JSON request), `router` and `routes` (the route table), `reply` (responses), `cors`.

#![deny(unsafe_code)]

pub mod body;
pub mod config;
pub mod cors;
pub mod errors;
mod exchange;
pub mod reply;
pub mod request;
pub mod router;
pub mod routes;
pub mod server;
#[doc(hidden)]
pub mod testing;

use switchyard_plugin_api::export_protocol;

pub use config::Settings;
pub use server::Server;
pub use switchyard_plugin_api::{Backend, ResponseCallback};

switchyard_plugin_kit::protocol!(
    /// The plugin: one value per `[server.protocols.<name>]` section using this library.
    HttpProtocol => Server
);

export_protocol!(HttpProtocol, name = "http");
