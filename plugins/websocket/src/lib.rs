//! Switchyard's WebSocket protocol plugin: Kuzzle's WebSocket API over RFC 6455.
//!
//! One JSON request per text frame in, responses (`room` = requestId) and notifications
//! (`room` = channel) out. See `README.md` for configuration, behaviour on bad input and limits.
//!
//! Code map: `server` (hooks) → `connection` (one task per client, plus a writer task) →
//! `replies` (every JSON frame). `registry` is this plugin's connection type and fan-out. The
//! RFC 6455 / 7692 codecs, the outbox, the writer, the channel registry and the server loop are
//! `switchyard_plugin_kit`'s.

#![deny(unsafe_code)]

pub mod config;
mod connection;
pub mod registry;
pub mod replies;
pub mod server;

use std::sync::Arc;

use switchyard_plugin_api::{
    export_protocol, BoxError, Channels, ConnectionId, DisconnectReason, Host, InitConfig, Protocol,
};

pub use config::Settings;
pub use server::Server;
pub use switchyard_plugin_api::{Backend, ResponseCallback};

/// The plugin: one value per `[server.protocols.<name>]` section using this library.
#[derive(Debug)]
pub struct WebSocketProtocol {
    server: Server,
}

impl Protocol for WebSocketProtocol {
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError> {
        let settings = Settings::from_init(&config)?;
        if let Some(warning) = &settings.idle_timeout_warning {
            tracing::warn!("{warning}");
        }
        let server = Server::start(config.name, settings, Arc::new(host))?;
        Ok(WebSocketProtocol { server })
    }

    fn broadcast(&self, channels: Channels<'_>, payload: &str) {
        self.server.broadcast(channels.iter(), payload);
    }

    fn notify(&self, connection: ConnectionId, channels: Channels<'_>, payload: &str) {
        self.server.notify(connection, channels.iter(), payload);
    }

    fn join_channel(&self, channel: &str, connection: ConnectionId) {
        self.server.join_channel(channel, connection);
    }

    fn leave_channel(&self, channel: &str, connection: ConnectionId) {
        self.server.leave_channel(channel, connection);
    }

    fn disconnect(&self, connection: ConnectionId, reason: DisconnectReason, message: &str) {
        self.server
            .disconnect(connection, reason == DisconnectReason::SHUTDOWN, message);
    }
}

export_protocol!(WebSocketProtocol, name = "websocket");
