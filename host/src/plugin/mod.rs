//! Protocol plugins: finding and checking libraries, the host API they call, calling their hooks.

pub mod host_api;
pub mod loader;
pub mod registry;
