//! What every Switchyard protocol plugin needs, linked statically into each (an `rlib`: nothing
//! here crosses the ABI, and every plugin still carries its own copy).
//!
//! - `instance` — the `Instance` trait and `protocol!`, which turns it into the plugin's
//!   ABI type.
//! - `server` — the listener, the instance runtime, the accept loop and its shutdown check;
//!   `Service` and `server!`, which declare a plugin's running instance.
//! - `config` — loading a `[server.protocols.<name>]` section into a plugin's settings;
//!   `raw_section!`, which declares the keys every protocol shares (listener, flow control).
//! - `outbox` — a connection's bounded queue of outgoing frames; `writer` drains it with
//!   vectored writes and closes a consumer whose writes stall.
//! - `gate` — who gets in: connections and new connections per second per source address,
//!   the file-descriptor reserve; refusals counted and logged at a bounded rate.
//! - `refusal` — what a refused client is told in its protocol's terms, and how it is
//!   written (bounded).
//! - `partial` — the bytes of unfinished messages held by all of an instance's connections,
//!   against one total (`maxTotalPartialBytes`).
//! - `pressure` — the bytes queued in all of an instance's outboxes, reported to the host on
//!   crossing the high- and low-water marks; slow-consumer warnings.
//! - `flow` — flow-control settings shared by every protocol, and the per-connection count of
//!   requests awaiting their answers that pauses reading.
//! - `stats` — the instance's own counters (closes by reason, deliveries, bytes), per thread,
//!   summed when the host asks (the `stats` hook).
//! - `socket` — reading a socket into a connection's buffer; a read loop's idle deadline.
//! - `stream` — a connection's socket, plain TCP or TLS, and its read and write halves.
//! - `tls` — a section's `ssl` keys, the TLS handshake, certificates reloaded on SIGHUP.
//! - `request` — checks on a request's text (one JSON object, its `requestId`).
//! - `registry` — connections and channel memberships, O(1) per join and leave.
//! - `ws` — the RFC 6455 codec, the opening handshake and permessage-deflate (RFC 7692),
//!   shared by the WebSocket and Socket.io plugins.

#![forbid(unsafe_code)]

pub mod config;
pub mod flow;
pub mod gate;
pub mod instance;
pub mod outbox;
pub mod partial;
pub mod pressure;
pub mod refusal;
pub mod registry;
pub mod request;
pub mod server;
pub mod socket;
pub mod stats;
pub mod stream;
pub mod tls;
pub mod writer;
pub mod ws;

#[doc(hidden)]
pub use switchyard_plugin_api as __api;
