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

use switchyard_plugin_api::export_protocol;

pub use config::Settings;
pub use server::Server;
pub use switchyard_plugin_api::{Backend, ResponseCallback};
pub use switchyard_plugin_kit::instance::Instance;

switchyard_plugin_kit::protocol!(
    /// The plugin: one value per `[server.protocols.<name>]` section using this library.
    SocketIoProtocol => Server
);

export_protocol!(SocketIoProtocol, name = "socketio");
