//! plugin-api 1.0 with a field inserted in the middle of `HostVTable` (see `build.rs`); every
//! other module is the frozen 1.0 file itself. Only for tests/it/abi_compat.rs.

#![allow(missing_docs)]

/// 1.0's `abi.rs` with the inserted field.
pub mod abi {
    include!(concat!(env!("OUT_DIR"), "/abi.rs"));
}
#[path = "../../plugin-api-1.0/src/config.rs"]
pub mod config;
#[path = "../../plugin-api-1.0/src/errors.rs"]
pub mod errors;
#[doc(hidden)]
#[path = "../../plugin-api-1.0/src/export.rs"]
pub mod export;
#[path = "../../plugin-api-1.0/src/json.rs"]
pub mod json;
#[path = "../../plugin-api-1.0/src/logging.rs"]
mod logging;
#[path = "../../plugin-api-1.0/src/net.rs"]
pub mod net;
#[path = "../../plugin-api-1.0/src/sdk.rs"]
pub mod sdk;

pub use abi::{ConnectionId, DisconnectReason, LogLevel, INTERFACE_VERSION};
pub use sdk::{
    Backend, BoxError, Channels, Host, InitConfig, Protocol, Response, ResponseCallback,
};

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{lib_header, ProtocolInfo};
    pub use abi_stable::library::LibHeader;
}

/// 1.0's `export_protocol!`, word for word.
#[macro_export]
macro_rules! export_protocol {
    ($protocol:ty, name = $name:expr $(,)?) => {
        $crate::export_protocol!($protocol, name = $name, version = env!("CARGO_PKG_VERSION"));
    };
    ($protocol:ty, name = $name:expr, version = $version:expr $(,)?) => {
        impl $crate::__private::ProtocolInfo for $protocol {
            const NAME: &'static str = $name;
            const VERSION: &'static str = $version;
        }

        /// abi_stable's library header: the one symbol the host looks up.
        #[allow(unsafe_code)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static SWITCHYARD_PROTOCOL_HEADER: $crate::__private::LibHeader =
            $crate::__private::lib_header::<$protocol>();
    };
}
