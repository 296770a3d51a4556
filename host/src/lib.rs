//! Switchyard's host: configuration, the plugin loader, the entry point plugins call, the API.
//!
//! `main.rs` is a thin shell over `startup::start` and `shutdown::shutdown`; see
//! `ARCHITECTURE.md` for the map. Layers, lowest first (a module imports only from layers
//! below it; `tests/tidy` checks it): `config`, `connections`, `execution`, `security` →
//! `plugin` → `realtime` → `services` → `sessions` → `api` → `admission`, `entry_point` →
//! `startup`, `shutdown`.

#![deny(unsafe_code)]

pub mod admission;
pub mod api;
pub mod config;
pub mod connections;
pub mod entry_point;
pub mod execution;
#[allow(unsafe_code)]
pub mod plugin;
pub mod realtime;
pub mod security;
pub mod services;
pub mod sessions;
pub mod shutdown;
pub mod startup;
