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

use switchyard_plugin_api::export_protocol;

pub use config::Settings;
pub use server::Server;
pub use switchyard_plugin_api::{Backend, ResponseCallback};
pub use switchyard_plugin_kit::instance::Instance;

switchyard_plugin_kit::protocol!(
    /// The plugin: one value per `[server.protocols.<name>]` section using this library.
    MqttProtocol => Server
);

export_protocol!(MqttProtocol, name = "mqtt");
