//! Switchyard's host: configuration, the plugin loader, the entry point plugins call, the API.
//!
//! `main.rs` is a thin shell over `startup::start` and `shutdown::shutdown`; see
//! `ARCHITECTURE.md` for the map.

#![deny(unsafe_code)]

pub mod api;
pub mod config;
pub mod entry_point;
#[allow(unsafe_code)]
pub mod plugin;
pub mod realtime;
pub mod shutdown;
pub mod startup;
