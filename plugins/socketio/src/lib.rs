//! Switchyard's Socket.io protocol plugin: Kuzzle's Socket.io API over Engine.IO 4 and
//! Socket.IO 5 (npm `socket.io-client` 4.x), on HTTP long-polling and WebSocket.
//!
//! A client emits each request on the event `kuzzle`; the response is emitted on the event named
//! after its `requestId`; notifications are emitted on the event named after their channel.
//! See `README.md` for configuration, transports, behaviour on bad input and limits.
//!
//! Code map: `server` (runtime, listener, session drivers, hooks) → `http` (routing, polling)
//! and `websocket` (upgrade, reader, writer) → `inbound` (Engine.IO / Socket.IO / Kuzzle
//! packets in). `session` holds one session's queue and state; `registry` sessions, connections
//! and channels; `packets` builds every outgoing frame. `engine` and `sio` are the
//! Engine.IO and Socket.IO codecs; RFC 6455 is `switchyard_plugin_kit::ws`.

#![deny(unsafe_code)]

pub mod config;
pub mod engine;
pub mod http;
pub mod inbound;
pub mod packets;
pub mod registry;
pub mod server;
pub mod session;
pub mod sio;
pub mod websocket;

use std::sync::Arc;

use switchyard_plugin_api::{
    export_protocol, BoxError, Channels, ConnectionId, DisconnectReason, Host, InitConfig, Protocol,
};

pub use config::Settings;
pub use server::Server;
pub use switchyard_plugin_api::sdk::{Backend, ResponseCallback};

/// The plugin: one value per `[server.protocols.<name>]` section using this library.
#[derive(Debug)]
pub struct SocketIoProtocol {
    server: Server,
}

impl Protocol for SocketIoProtocol {
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError> {
        let settings = Settings::from_init(&config)?;
        let server = Server::start(config.name, settings, Arc::new(host))?;
        Ok(SocketIoProtocol { server })
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

    fn disconnect(&self, connection: ConnectionId, reason: DisconnectReason, _message: &str) {
        self.server
            .disconnect(connection, reason == DisconnectReason::SHUTDOWN);
    }
}

export_protocol!(SocketIoProtocol, name = "socketio");
