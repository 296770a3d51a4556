//! Switchyard's MQTT protocol plugin: Kuzzle's MQTT API and an MQTT 3.1.1 broker on one port.
//!
//! Kuzzle requests are published on `requestTopic`; each response goes to its requester only,
//! on `responseTopic`; notifications are published on the channel's topic. With `allowPubSub`
//! the same listener is an ordinary broker (QoS 0-2, retained messages, wills, persistent
//! sessions, `+`/`#`). See `README.md` for configuration, behaviour on bad input and limits.
//!
//! Code map: `server` (runtime, listener, hooks) → `connection` (CONNECT, reader task, writer
//! task) → `packets` (what each packet does) → `broker` (sessions, subscription tables,
//! retained messages) → `session` (per-client QoS state) / `outbox` (bounded queue) →
//! `writer`. `codec` decodes, `encode` builds, `topic` validates and matches, `kuzzle` checks
//! requests.

#![deny(unsafe_code)]

pub mod broker;
pub mod codec;
pub mod config;
mod connection;
pub mod encode;
pub mod kuzzle;
pub mod outbox;
mod packets;
pub mod server;
pub mod session;
pub mod topic;

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod socket_tests;

use std::sync::Arc;

use switchyard_plugin_api::{
    export_protocol, BoxError, Channels, ConnectionId, DisconnectReason, Host, InitConfig, Protocol,
};

pub use config::Settings;
pub use server::Server;
pub use switchyard_plugin_api::{Backend, ResponseCallback};

/// The plugin: one value per `[server.protocols.<name>]` section using this library.
#[derive(Debug)]
pub struct MqttProtocol {
    server: Server,
}

impl Protocol for MqttProtocol {
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError> {
        let settings = Settings::from_init(&config)?;
        let server = Server::start(config.name, settings, Arc::new(host))?;
        Ok(MqttProtocol { server })
    }

    fn broadcast(&self, channels: Channels<'_>, payload: &str) {
        self.server.broadcast(channels.iter(), payload);
    }

    fn notify(&self, connection: ConnectionId, channels: Channels<'_>, payload: &str) {
        self.server.notify(connection, channels.iter(), payload);
    }

    /// A no-op, as in Kuzzle: the client subscribes to the channel's topic itself after
    /// reading `result.channel`.
    fn join_channel(&self, _channel: &str, _connection: ConnectionId) {}

    /// A no-op, as in Kuzzle.
    fn leave_channel(&self, _channel: &str, _connection: ConnectionId) {}

    fn disconnect(&self, connection: ConnectionId, _reason: DisconnectReason, _message: &str) {
        self.server.disconnect(connection);
    }
}

export_protocol!(MqttProtocol, name = "mqtt");
