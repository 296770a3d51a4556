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

use switchyard_plugin_api::export_protocol;

pub use config::Settings;
pub use server::Server;
pub use switchyard_plugin_api::{Backend, ResponseCallback};
pub use switchyard_plugin_kit::config::Section;
pub use switchyard_plugin_kit::instance::Instance;

switchyard_plugin_kit::protocol!(
    /// The plugin: one value per `[server.protocols.<name>]` section using this library.
    WebSocketProtocol => Server
);

export_protocol!(WebSocketProtocol, name = "websocket");
