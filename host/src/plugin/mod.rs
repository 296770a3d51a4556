//! Protocol plugins: finding and checking libraries, the host API they call, calling their hooks.
//!
//! This folder imports nothing above it: the host API reaches the entry point through the
//! [`host_api::EntryPointApi`] trait, which the entry point implements.

pub mod c_abi;
pub mod callback;
pub mod host_api;
pub mod loader;
pub mod notifications;
pub mod registry;
