//! Switchyard's host: configuration, the plugin loader, the entry point plugins call, the API.
//!
//! `main.rs` is a thin shell over `startup::start`, `shutdown::shutdown` and `upgrade`; see
//! `ARCHITECTURE.md` for the map. Layers, lowest first (a module imports only from layers
//! below it; `tests/it/tidy.rs` checks it): `config`, `connections`, `execution`, `listeners`,
//! `metrics`, `pressure`, `security` → `plugin` → `realtime` → `cluster`, `validation` → `services` →
//! `sessions` → `api` → `admission` → `entry_point` → `admin` → `startup`, `shutdown` →
//! `upgrade`.

#![deny(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod api;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod entry_point;
pub mod execution;
pub mod listeners;
pub mod metrics;
#[allow(unsafe_code)]
pub mod plugin;
pub mod pressure;
pub mod realtime;
pub mod security;
pub mod services;
pub mod sessions;
pub mod shutdown;
pub mod startup;
pub mod upgrade;
pub mod validation;
