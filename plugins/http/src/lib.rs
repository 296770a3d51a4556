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

use std::sync::Arc;

use switchyard_plugin_api::{
    export_protocol, BoxError, Channels, ConnectionId, DisconnectReason, Host, InitConfig, Protocol,
};

pub use config::Settings;
pub use server::Server;
pub use switchyard_plugin_api::{Backend, ResponseCallback};

/// The plugin: one value per `[server.protocols.<name>]` section using this library.
#[derive(Debug)]
pub struct HttpProtocol {
    /// Kept alive for the life of the instance (its drop stops the runtime).
    _server: Server,
}

impl Protocol for HttpProtocol {
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError> {
        let settings = Settings::from_init(&config)?;
        let server = Server::start(config.name, settings, Arc::new(host))?;
        Ok(HttpProtocol { _server: server })
    }

    // HTTP connections live for one request and never join channels (subscriptions are
    // refused), so there is nothing to deliver.
    fn broadcast(&self, _channels: Channels<'_>, _payload: &str) {}

    fn notify(&self, _connection: ConnectionId, _channels: Channels<'_>, _payload: &str) {}

    fn join_channel(&self, _channel: &str, _connection: ConnectionId) {}

    fn leave_channel(&self, _channel: &str, _connection: ConnectionId) {}

    // The request in flight finishes (the host refuses new ones while shutting down) and its
    // connection is removed then; keep-alive sockets get `Connection: close` on their next
    // answer.
    fn disconnect(&self, _connection: ConnectionId, _reason: DisconnectReason, _message: &str) {}
}

export_protocol!(HttpProtocol, name = "http");
