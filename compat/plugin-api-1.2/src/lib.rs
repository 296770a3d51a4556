//! Switchyard's plugin interface: the stable ABI between the host and protocol plugins, and
//! the safe SDK plugin authors use.
//!
//! A protocol plugin is a `cdylib` that implements [`Protocol`] and exports it:
//!
//! ```text
//! use switchyard_plugin_api::{export_protocol, Protocol};
//! struct Echo { /* … */ }
//! impl Protocol for Echo { /* init, broadcast, notify, join_channel, leave_channel, disconnect */ }
//! export_protocol!(Echo, name = "echo");
//! ```
//!
//! The contract (threads, ownership, panics, versioning) is in `ABI.md` next to this crate.

#![deny(missing_docs)]

pub mod abi;
pub mod c_abi;
pub mod config;
pub mod errors;
#[doc(hidden)]
pub mod export;
pub mod json;
mod logging;
pub mod net;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod sdk;

pub use abi::{ConnectionId, DisconnectReason, LogLevel, StatId, INTERFACE_VERSION};
pub use sdk::{
    Backend, BoxError, Channels, Host, InitConfig, Protocol, Response, ResponseCallback, StatsSink,
};

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{lib_header, ProtocolInfo};
    pub use abi_stable::library::LibHeader;
}

/// Exports a [`Protocol`] implementation as this library's Switchyard protocol.
///
/// `export_protocol!(MyProtocol, name = "mine")` uses the crate's version;
/// `export_protocol!(MyProtocol, name = "mine", version = "1.2.3")` sets it. Use it once per
/// library, at the crate root. It expands to one exported static (abi_stable's library header);
/// every hook it wires catches panics.
///
/// The library must be built with `panic = "unwind"` (Cargo's default): with `panic = "abort"`
/// a panic in a hook could not be caught and would kill the host, so the macro refuses to
/// compile, and the host refuses a library whose header says it was built that way.
///
/// The expansion needs no `unsafe` in the plugin's crate: a plugin may use
/// `#![forbid(unsafe_code)]`.
///
/// ```
/// #![forbid(unsafe_code)]
/// # use switchyard_plugin_api::*;
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn init(_: Host, _: InitConfig<'_>) -> Result<Self, BoxError> { Ok(Quiet) }
///     fn broadcast(&self, _: Channels<'_>, _: &str) {}
///     fn notify(&self, _: ConnectionId, _: Channels<'_>, _: &str) {}
///     fn join_channel(&self, _: &str, _: ConnectionId) {}
///     fn leave_channel(&self, _: &str, _: ConnectionId) {}
///     fn disconnect(&self, _: ConnectionId, _: DisconnectReason, _: &str) {}
/// }
/// export_protocol!(Quiet, name = "quiet");
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_protocol {
    ($protocol:ty, name = $name:expr $(,)?) => {
        $crate::export_protocol!($protocol, name = $name, version = env!("CARGO_PKG_VERSION"));
    };
    ($protocol:ty, name = $name:expr, version = $version:expr $(,)?) => {
        // Evaluated in the plugin's crate, with its profile's panic strategy.
        #[cfg(not(panic = "unwind"))]
        compile_error!(
            "a Switchyard protocol must be built with panic = \"unwind\": with panic = \"abort\" a panic in a hook kills the host; remove `panic = \"abort\"` from the profile"
        );

        impl $crate::__private::ProtocolInfo for $protocol {
            const NAME: &'static str = $name;
            const VERSION: &'static str = $version;
            const PANIC_UNWIND: bool = cfg!(panic = "unwind");
        }

        /// abi_stable's library header: the one symbol the host looks up.
        // The symbol name is abi_stable 0.11's root-module loader name; a test in
        // switchyard-plugin-api pins it. No `#[allow(unsafe_code)]`: rustc does not report
        // `unsafe_code` in an external macro's expansion, and an `allow` would be an error
        // under the plugin's `#![forbid(unsafe_code)]`.
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static SWITCHYARD_PROTOCOL_HEADER: $crate::__private::LibHeader =
            $crate::__private::lib_header::<$protocol>();
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn exported_symbol_is_abi_stables_loader_name() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
