//! The integration tests, one binary: each module starts the real `switchyard` binary with real
//! plugin libraries and talks to it with real, independent clients.
//!
//! `cargo test -p switchyard-tests` runs them all; `cargo test -p switchyard-tests -- mqtt::`
//! runs one protocol's.

mod abi_compat;
mod admin_page;
mod c_abi;
mod cluster;
mod cluster_limits;
mod cluster_three;
mod connection_limits;
mod document_cache;
mod documents;
mod flow;
mod guide;
pub mod host;
mod http;
mod mqtt;
mod mqtt_raw;
mod postgres;
mod rust_example;
mod sdk;
mod security;
mod socketio;
mod tidy;
mod tls;
mod upgrade;
mod websocket;
mod websocket_e2e;
