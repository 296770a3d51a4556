//! The binary contract: `repr(C)` types that cross the host/plugin boundary (see `ABI.md`).
//!
//! Everything here is plain data or `extern "C"` function pointers checked by abi_stable's layout
//! check at load time. Plugin authors never touch these types: the SDK (`crate::sdk`) wraps them.
//! Rules for changing this file are in `ABI.md`, "Versioning": append, never insert, retype or
//! remove.

use std::ffi::c_void;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RSlice, RStr, RString},
    StableAbi,
};

/// The version of the interface this crate describes (the crate's own version).
pub const INTERFACE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The name under which a Switchyard protocol library exports its root module.
pub const ROOT_MODULE_NAME: &str = "switchyard_protocol";

/// The six hooks every protocol exports, as `(field name in ProtocolModule, Kuzzle's name)`.
///
/// Kuzzle's names are the ones users know from its protocol documentation, so every message
/// about a hook uses them.
pub const HOOKS: [(&str, &str); 6] = [
    ("init", "init"),
    ("broadcast", "broadcast"),
    ("notify", "notify"),
    ("join_channel", "joinChannel"),
    ("leave_channel", "leaveChannel"),
    ("disconnect", "disconnect"),
];

/// A connection, as allocated by the host's `new_connection`. Never 0, never reused.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnectionId(pub u64);

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A log level, as `tracing` orders them: `OFF` < `ERROR` < … < `TRACE`.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Nothing is logged.
    pub const OFF: LogLevel = LogLevel(0);
    /// Errors.
    pub const ERROR: LogLevel = LogLevel(1);
    /// Warnings.
    pub const WARN: LogLevel = LogLevel(2);
    /// Information.
    pub const INFO: LogLevel = LogLevel(3);
    /// Debugging.
    pub const DEBUG: LogLevel = LogLevel(4);
    /// Tracing.
    pub const TRACE: LogLevel = LogLevel(5);
}

/// Why the host asks a protocol to close a connection. Unknown values must be treated like
/// `REQUESTED`: new reasons may be added in a minor version.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct DisconnectReason(pub u32);

impl DisconnectReason {
    /// The host is shutting down: the client should reconnect later (WebSocket close 1001).
    pub const SHUTDOWN: DisconnectReason = DisconnectReason(1);
    /// The host wants this connection gone (for instance its protocol is being disabled).
    pub const REQUESTED: DisconnectReason = DisconnectReason(2);
    /// Since 1.3: the host is being replaced by a new process (a hot upgrade) that already
    /// holds the listeners: the client should reconnect at once (WebSocket close 1012, "service
    /// restart"). A plugin that predates it treats it like `REQUESTED`.
    pub const RESTART: DisconnectReason = DisconnectReason(3);
}

/// What a hook reports when it did not complete.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiHookError {
    /// True when the hook panicked (the SDK caught the unwind); false for an ordinary error.
    pub panicked: bool,
    /// What happened, for the host's log: the panic message and location, or the error text.
    pub message: RString,
}

/// The result of every hook but `init`.
pub type FfiHookResult = RResult<(), FfiHookError>;

/// How a plugin library was built, as bits (since 1.1; the root module's `build` field).
///
/// Unknown bits are ignored: later versions may add flags.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct BuildFlags(pub u32);

impl BuildFlags {
    /// Built with `panic = "unwind"`: the SDK's trampolines can turn a panic into an error.
    /// Without it, a panic in a hook aborts the whole host, so the host refuses the library.
    pub const PANIC_UNWIND: u32 = 1;

    /// The flags of the crate being compiled: `export_protocol!` passes
    /// `cfg!(panic = "unwind")`, evaluated in the plugin's crate.
    pub const fn new(panic_unwind: bool) -> BuildFlags {
        BuildFlags(if panic_unwind { Self::PANIC_UNWIND } else { 0 })
    }

    /// True when the library was built with `panic = "unwind"`.
    pub const fn panic_unwind(self) -> bool {
        self.0 & Self::PANIC_UNWIND != 0
    }
}

/// A counter or gauge a protocol reports through its `stats` hook (since 1.2).
///
/// Counters are totals since the instance started (the host exports them as Prometheus
/// counters); gauges are values now. New ids may be added in a minor version: the host ignores
/// ids it does not know, and a plugin reports only the ones it keeps.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct StatId(pub u32);

impl StatId {
    /// Counter: connections closed as slow consumers (queue cap, total cap, stalled writes).
    pub const CLOSED_SLOW_CONSUMER: StatId = StatId(1);
    /// Counter: connections closed by the protocol because they were idle too long.
    pub const CLOSED_IDLE: StatId = StatId(2);
    /// Counter: connections closed because they exceeded a rate limit.
    pub const CLOSED_RATE_LIMIT: StatId = StatId(3);
    /// Counter: connections closed on a protocol error (malformed frames, violations).
    pub const CLOSED_ERROR: StatId = StatId(4);
    /// Counter: notification frames queued for delivery (one per member per channel).
    pub const DELIVERIES: StatId = StatId(5);
    /// Counter: bytes read from clients.
    pub const BYTES_IN: StatId = StatId(6);
    /// Counter: bytes written to clients.
    pub const BYTES_OUT: StatId = StatId(7);
    /// Gauge: bytes queued for clients now, in all of the instance's queues.
    pub const QUEUED_BYTES: StatId = StatId(8);
    /// Counter: connections refused before being served (per-address limits, the file
    /// descriptor reserve, a failed accept dropped through the spare descriptor).
    pub const CONNECTIONS_REFUSED: StatId = StatId(9);
}

/// Where a `stats` hook writes its figures: `record(context, id, value)` once per figure,
/// during the call only. Owned by the host.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct FfiStatsSink {
    /// Records one figure; callable only during the `stats` call, on its thread.
    pub record: extern "C" fn(context: *mut c_void, stat: StatId, value: u64),
    /// The host's state for `record`; the plugin never looks inside.
    pub context: *mut c_void,
}

/// A plugin's description of itself, read by the host before `init`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct PluginInfo {
    /// The plugin's name (`websocket`), used in logs and `server:info`.
    pub name: RStr<'static>,
    /// The plugin's own version (semver).
    pub version: RStr<'static>,
}

/// The handle `init` returns; every other hook receives it back. Opaque to the host.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct FfiInstance(pub *const c_void);

// SAFETY: an instance handle is an opaque token; the host only copies it and passes it back.
// The plugin's object behind it is `Send + Sync` (the SDK's `Protocol` trait requires both).
unsafe impl Send for FfiInstance {}
// SAFETY: as above.
unsafe impl Sync for FfiInstance {}

/// What `init` receives besides the host API. Borrowed for the duration of `init` only.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct FfiInitArgs<'a> {
    /// The protocol's name: its `[server.protocols.<name>]` section.
    pub name: RStr<'a>,
    /// That section as a JSON object, without the host's own keys (`enabled`, `library`).
    pub config: RStr<'a>,
    /// The whole `[server]` table as a JSON object (Kuzzle's `entryPoint.config`).
    pub server: RStr<'a>,
    /// The most verbose level the host will print for this plugin: the SDK skips formatting
    /// anything more verbose.
    pub max_log_level: LogLevel,
}

/// The answer to one `execute`, borrowed for the duration of the callback.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct FfiResponse<'a> {
    /// HTTP-like status (200, 400, 503…).
    pub status: u16,
    /// The request's id (the client's `requestId`, or one the host generated).
    pub request_id: RStr<'a>,
    /// Kuzzle's response `content` as a JSON object (`requestId`, `status`, `error`, `result`…).
    pub content: RStr<'a>,
    /// Response headers an action set, as a JSON object (usually `{}`).
    pub headers: RStr<'a>,
}

/// The continuation of an `execute`: the host calls `call(context, response)` exactly once.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiCallback {
    /// Called exactly once, on any thread, possibly before `execute` returns.
    pub call: extern "C" fn(context: *mut c_void, response: FfiResponse<'_>),
    /// The plugin's state for `call`; the host never looks inside.
    pub context: *mut c_void,
}

// SAFETY: the SDK builds `context` from a `Box<F>` with `F: Send`, and `call` consumes it on
// whichever thread the host runs it; nothing else touches it.
unsafe impl Send for FfiCallback {}

/// The host side of the boundary: a vtable plus the host's token for the calling protocol.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiHost {
    /// The host's functions.
    pub vtable: HostVTableRef,
    /// The host's token for this protocol instance; passed back unchanged on every call.
    pub context: *const c_void,
}

impl std::fmt::Debug for FfiHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfiHost")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

// SAFETY: `context` points to host-owned data that lives as long as the process and is
// `Sync` on the host side; the plugin only passes it back.
unsafe impl Send for FfiHost {}
// SAFETY: as above.
unsafe impl Sync for FfiHost {}

/// The functions the host offers a protocol (Kuzzle's *entry point*).
///
/// Later versions append fields after `announce_listener` (the last prefix field); a plugin
/// reads them as `Option`, so it can run on an older host that lacks them. A host that appends
/// one keeps the previous table in a frozen module ([`v1_0::HostVTable`]) and gives older
/// plugins that one: abi_stable refuses a host table longer than the plugin's.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = HostVTableRef)))]
#[sabi(missing_field(option))]
pub struct HostVTable {
    /// Declares a client connection; returns its id.
    pub new_connection: extern "C" fn(
        host: FfiHost,
        ips: RSlice<'_, RStr<'_>>,
        headers_json: RStr<'_>,
    ) -> ConnectionId,
    /// Forgets a connection; the host leaves all its channels (calling `leave_channel`).
    pub remove_connection: extern "C" fn(host: FfiHost, connection: ConnectionId),
    /// Runs an API request for `connection`; the answer arrives through `callback`.
    pub execute: extern "C" fn(
        host: FfiHost,
        connection: ConnectionId,
        request_json: RStr<'_>,
        callback: FfiCallback,
    ),
    /// Writes a line to the host's log, tagged with the plugin's name.
    pub log: extern "C" fn(host: FfiHost, level: LogLevel, target: RStr<'_>, message: RStr<'_>),
    /// True once the host has started shutting down.
    pub is_shutting_down: extern "C" fn(host: FfiHost) -> bool,
    /// Tells the host where this instance listens (`ws://127.0.0.1:7512`), for its ready line.
    #[sabi(last_prefix_field)]
    pub announce_listener: extern "C" fn(host: FfiHost, address: RStr<'_>),
    /// Added after 1.0 (a suffix field: `None` on older hosts): this instance's queued outgoing bytes
    /// passed its high-water mark (`true`) or drained below its low-water mark (`false`), so
    /// the host paces (or resumes) the requests that fan out. Edge-triggered.
    pub report_pressure: extern "C" fn(host: FfiHost, congested: bool),
    /// Since 1.3 (a suffix field: `None` on older hosts): a listening TCP socket for
    /// `address:port` (an IP address as text; port 0: any free port), made by the host or
    /// inherited from the process it replaced in a hot upgrade. `ROk(fd)` hands the plugin a
    /// new descriptor it owns (close-on-exec, blocking, already listening); `RErr(message)`
    /// says why there is none (a port in use), naming the protocol and the key to change.
    pub listener:
        extern "C" fn(host: FfiHost, address: RStr<'_>, port: u16) -> RResult<i32, RString>,
}

/// Takes ownership of the descriptor the host's `listener` returned.
#[cfg(unix)]
pub(crate) fn listener_from_host(fd: i32) -> Option<std::net::TcpListener> {
    use std::os::fd::FromRawFd as _;
    if fd < 0 {
        return None;
    }
    // SAFETY: the host's `listener` returns a descriptor it made for this call only and gives
    // up (ABI.md, "The host API": the plugin owns it), so nothing else closes or reuses it.
    Some(unsafe { std::net::TcpListener::from_raw_fd(fd) })
}

/// The root module a protocol library exports: its info and the six hooks.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ProtocolModuleRef)))]
#[sabi(missing_field(panic))]
pub struct ProtocolModule {
    /// The plugin's name and version.
    pub info: PluginInfo,
    /// Starts one instance (binds its listeners); returns the handle every other hook gets.
    pub init:
        extern "C" fn(host: FfiHost, args: FfiInitArgs<'_>) -> RResult<FfiInstance, FfiHookError>,
    /// Delivers `payload` to this instance's connections that joined any of `channels`.
    pub broadcast: extern "C" fn(
        instance: FfiInstance,
        channels: RSlice<'_, RStr<'_>>,
        payload: RStr<'_>,
    ) -> FfiHookResult,
    /// Delivers `payload` to one connection, once per channel in `channels`.
    pub notify: extern "C" fn(
        instance: FfiInstance,
        connection: ConnectionId,
        channels: RSlice<'_, RStr<'_>>,
        payload: RStr<'_>,
    ) -> FfiHookResult,
    /// Adds `connection` to `channel`; idempotent.
    pub join_channel: extern "C" fn(
        instance: FfiInstance,
        channel: RStr<'_>,
        connection: ConnectionId,
    ) -> FfiHookResult,
    /// Removes `connection` from `channel`; unknown pairs are ignored.
    pub leave_channel: extern "C" fn(
        instance: FfiInstance,
        channel: RStr<'_>,
        connection: ConnectionId,
    ) -> FfiHookResult,
    /// Force-closes `connection`.
    #[sabi(last_prefix_field)]
    pub disconnect: extern "C" fn(
        instance: FfiInstance,
        connection: ConnectionId,
        reason: DisconnectReason,
        message: RStr<'_>,
    ) -> FfiHookResult,
    /// Since 1.1: how the library was built (its panic strategy). Absent (`None`) in 1.0
    /// plugins.
    #[sabi(missing_field(option))]
    pub build: BuildFlags,
    /// Since 1.2: writes the instance's counters into `sink` (called on scrape, from any host
    /// thread). Absent (`None`) in 1.0 and 1.1 plugins, which report none.
    #[sabi(missing_field(option))]
    pub stats: extern "C" fn(instance: FfiInstance, sink: FfiStatsSink) -> FfiHookResult,
}

impl RootModule for ProtocolModuleRef {
    declare_root_module_statics! {ProtocolModuleRef}
    const BASE_NAME: &'static str = ROOT_MODULE_NAME;
    const NAME: &'static str = ROOT_MODULE_NAME;
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The root module and the host table as plugin-api 1.0 declared them, frozen: the host checks
/// a plugin whose root module has only 1.0's fields against this layout, and gives it a 1.0
/// host table.
///
/// abi_stable refuses a root module with fewer fields than the loader's type ("too many
/// fields", `ABI.md`, "Versioning"), and the same for every prefix type the root module
/// reaches (`HostVTable`, through `init`'s `FfiHost`), so a host that reads a field appended
/// in 1.N, or offers a function appended in 1.N, keeps the layouts of every older minor and
/// picks the one the plugin's field names match. Never edit these types: they are what 1.0
/// plugins were built with (`compat/plugin-api-1.0`, tests/it/abi_compat.rs).
pub mod v1_0 {
    use abi_stable::{
        declare_root_module_statics, library::RootModule, sabi_types::VersionStrings,
        std_types::RResult, StableAbi,
    };

    use std::ffi::c_void;

    use super::{ConnectionId, DisconnectReason, FfiCallback, LogLevel, ROOT_MODULE_NAME};
    use super::{FfiHookError, FfiHookResult, FfiInitArgs, FfiInstance, PluginInfo};
    use abi_stable::std_types::{RSlice, RStr};

    /// plugin-api 1.0's `FfiHost`: the same two pointers, with 1.0's host table type.
    ///
    /// abi_stable checks the whole root module, `init`'s `FfiHost` argument included, and
    /// refuses a host type with *more* fields than the plugin's ("too many fields"), whichever
    /// side fills it in. So a host function appended in 1.1 (`report_pressure`) would refuse
    /// every 1.0 plugin if the host checked them against today's `HostVTable`
    /// (tests/it/abi_compat.rs caught exactly that): the 1.0 table is frozen here, and the host
    /// gives 1.0 plugins a table of this type.
    #[repr(C)]
    #[derive(StableAbi, Clone, Copy)]
    #[allow(missing_docs)]
    pub struct FfiHost {
        pub vtable: HostVTableRef,
        pub context: *const c_void,
    }

    // SAFETY: as for `super::FfiHost`: `context` points to host-owned data that lives as long
    // as the process and is `Sync` on the host side; the plugin only passes it back.
    unsafe impl Send for FfiHost {}
    // SAFETY: as above.
    unsafe impl Sync for FfiHost {}

    /// plugin-api 1.0's host table: the six functions before 1.1's `report_pressure`.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = HostVTableRef)))]
    #[sabi(missing_field(option))]
    #[allow(missing_docs)]
    pub struct HostVTable {
        pub new_connection: extern "C" fn(
            host: FfiHost,
            ips: RSlice<'_, RStr<'_>>,
            headers_json: RStr<'_>,
        ) -> ConnectionId,
        pub remove_connection: extern "C" fn(host: FfiHost, connection: ConnectionId),
        pub execute: extern "C" fn(
            host: FfiHost,
            connection: ConnectionId,
            request_json: RStr<'_>,
            callback: FfiCallback,
        ),
        pub log: extern "C" fn(host: FfiHost, level: LogLevel, target: RStr<'_>, message: RStr<'_>),
        pub is_shutting_down: extern "C" fn(host: FfiHost) -> bool,
        #[sabi(last_prefix_field)]
        pub announce_listener: extern "C" fn(host: FfiHost, address: RStr<'_>),
    }

    /// plugin-api 1.0's root module: info and the six hooks.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = ProtocolModuleRef)))]
    #[sabi(missing_field(panic))]
    #[allow(missing_docs)]
    pub struct ProtocolModule {
        pub info: PluginInfo,
        pub init: extern "C" fn(
            host: FfiHost,
            args: FfiInitArgs<'_>,
        ) -> RResult<FfiInstance, FfiHookError>,
        pub broadcast: extern "C" fn(
            instance: FfiInstance,
            channels: RSlice<'_, RStr<'_>>,
            payload: RStr<'_>,
        ) -> FfiHookResult,
        pub notify: extern "C" fn(
            instance: FfiInstance,
            connection: ConnectionId,
            channels: RSlice<'_, RStr<'_>>,
            payload: RStr<'_>,
        ) -> FfiHookResult,
        pub join_channel: extern "C" fn(
            instance: FfiInstance,
            channel: RStr<'_>,
            connection: ConnectionId,
        ) -> FfiHookResult,
        pub leave_channel: extern "C" fn(
            instance: FfiInstance,
            channel: RStr<'_>,
            connection: ConnectionId,
        ) -> FfiHookResult,
        #[sabi(last_prefix_field)]
        pub disconnect: extern "C" fn(
            instance: FfiInstance,
            connection: ConnectionId,
            reason: DisconnectReason,
            message: RStr<'_>,
        ) -> FfiHookResult,
    }

    impl RootModule for ProtocolModuleRef {
        declare_root_module_statics! {ProtocolModuleRef}
        const BASE_NAME: &'static str = ROOT_MODULE_NAME;
        const NAME: &'static str = ROOT_MODULE_NAME;
        const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.0.0");
    }
}

/// The root module as plugin-api 1.1 declared it (1.0's plus `build`), frozen: the host checks
/// a plugin whose root module stops at `build` against this layout. Never edit this type.
pub mod v1_1 {
    use abi_stable::{
        declare_root_module_statics, library::RootModule, sabi_types::VersionStrings,
        std_types::RResult, StableAbi,
    };

    // 1.1 and 1.2 share a host table; 1.3 appended `listener` to it, so `FfiHost` is the
    // frozen 1.2 one (the same layout 1.1 plugins were built with).
    use super::v1_2::FfiHost;
    use super::{BuildFlags, ConnectionId, DisconnectReason, ROOT_MODULE_NAME};
    use super::{FfiHookError, FfiHookResult, FfiInitArgs, FfiInstance, PluginInfo};
    use abi_stable::std_types::{RSlice, RStr};

    /// plugin-api 1.1's root module: info, the six hooks and `build`.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = ProtocolModuleRef)))]
    #[sabi(missing_field(panic))]
    #[allow(missing_docs)]
    pub struct ProtocolModule {
        pub info: PluginInfo,
        pub init: extern "C" fn(
            host: FfiHost,
            args: FfiInitArgs<'_>,
        ) -> RResult<FfiInstance, FfiHookError>,
        pub broadcast: extern "C" fn(
            instance: FfiInstance,
            channels: RSlice<'_, RStr<'_>>,
            payload: RStr<'_>,
        ) -> FfiHookResult,
        pub notify: extern "C" fn(
            instance: FfiInstance,
            connection: ConnectionId,
            channels: RSlice<'_, RStr<'_>>,
            payload: RStr<'_>,
        ) -> FfiHookResult,
        pub join_channel: extern "C" fn(
            instance: FfiInstance,
            channel: RStr<'_>,
            connection: ConnectionId,
        ) -> FfiHookResult,
        pub leave_channel: extern "C" fn(
            instance: FfiInstance,
            channel: RStr<'_>,
            connection: ConnectionId,
        ) -> FfiHookResult,
        #[sabi(last_prefix_field)]
        pub disconnect: extern "C" fn(
            instance: FfiInstance,
            connection: ConnectionId,
            reason: DisconnectReason,
            message: RStr<'_>,
        ) -> FfiHookResult,
        #[sabi(missing_field(option))]
        pub build: BuildFlags,
    }

    impl RootModule for ProtocolModuleRef {
        declare_root_module_statics! {ProtocolModuleRef}
        const BASE_NAME: &'static str = ROOT_MODULE_NAME;
        const NAME: &'static str = ROOT_MODULE_NAME;
        const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.1.0");
    }
}

/// The root module and the host table as plugin-api 1.2 declared them, frozen: 1.3 appended
/// `listener` to `HostVTable`, so a plugin built against 1.1 or 1.2 is checked against this
/// `FfiHost` (through `init`) and given a host table of this type. Never edit these types.
pub mod v1_2 {
    use abi_stable::{
        declare_root_module_statics, library::RootModule, sabi_types::VersionStrings,
        std_types::RResult, StableAbi,
    };

    use std::ffi::c_void;

    use super::{BuildFlags, ConnectionId, DisconnectReason, FfiCallback, LogLevel};
    use super::{FfiHookError, FfiHookResult, FfiInitArgs, FfiInstance, PluginInfo};
    use super::{FfiStatsSink, ROOT_MODULE_NAME};
    use abi_stable::std_types::{RSlice, RStr};

    /// plugin-api 1.1's and 1.2's `FfiHost`: the same two pointers, with their host table.
    #[repr(C)]
    #[derive(StableAbi, Clone, Copy)]
    #[allow(missing_docs)]
    pub struct FfiHost {
        pub vtable: HostVTableRef,
        pub context: *const c_void,
    }

    // SAFETY: as for `super::FfiHost`: `context` points to host-owned data that lives as long
    // as the process and is `Sync` on the host side; the plugin only passes it back.
    unsafe impl Send for FfiHost {}
    // SAFETY: as above.
    unsafe impl Sync for FfiHost {}

    /// plugin-api 1.1's and 1.2's host table: 1.0's six functions and `report_pressure`.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = HostVTableRef)))]
    #[sabi(missing_field(option))]
    #[allow(missing_docs)]
    pub struct HostVTable {
        pub new_connection: extern "C" fn(
            host: FfiHost,
            ips: RSlice<'_, RStr<'_>>,
            headers_json: RStr<'_>,
        ) -> ConnectionId,
        pub remove_connection: extern "C" fn(host: FfiHost, connection: ConnectionId),
        pub execute: extern "C" fn(
            host: FfiHost,
            connection: ConnectionId,
            request_json: RStr<'_>,
            callback: FfiCallback,
        ),
        pub log: extern "C" fn(host: FfiHost, level: LogLevel, target: RStr<'_>, message: RStr<'_>),
        pub is_shutting_down: extern "C" fn(host: FfiHost) -> bool,
        #[sabi(last_prefix_field)]
        pub announce_listener: extern "C" fn(host: FfiHost, address: RStr<'_>),
        pub report_pressure: extern "C" fn(host: FfiHost, congested: bool),
    }

    /// plugin-api 1.2's root module: info, the six hooks, `build` and `stats`.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = ProtocolModuleRef)))]
    #[sabi(missing_field(panic))]
    #[allow(missing_docs)]
    pub struct ProtocolModule {
        pub info: PluginInfo,
        pub init: extern "C" fn(
            host: FfiHost,
            args: FfiInitArgs<'_>,
        ) -> RResult<FfiInstance, FfiHookError>,
        pub broadcast: extern "C" fn(
            instance: FfiInstance,
            channels: RSlice<'_, RStr<'_>>,
            payload: RStr<'_>,
        ) -> FfiHookResult,
        pub notify: extern "C" fn(
            instance: FfiInstance,
            connection: ConnectionId,
            channels: RSlice<'_, RStr<'_>>,
            payload: RStr<'_>,
        ) -> FfiHookResult,
        pub join_channel: extern "C" fn(
            instance: FfiInstance,
            channel: RStr<'_>,
            connection: ConnectionId,
        ) -> FfiHookResult,
        pub leave_channel: extern "C" fn(
            instance: FfiInstance,
            channel: RStr<'_>,
            connection: ConnectionId,
        ) -> FfiHookResult,
        #[sabi(last_prefix_field)]
        pub disconnect: extern "C" fn(
            instance: FfiInstance,
            connection: ConnectionId,
            reason: DisconnectReason,
            message: RStr<'_>,
        ) -> FfiHookResult,
        #[sabi(missing_field(option))]
        pub build: BuildFlags,
        #[sabi(missing_field(option))]
        pub stats: extern "C" fn(instance: FfiInstance, sink: FfiStatsSink) -> FfiHookResult,
    }

    impl RootModule for ProtocolModuleRef {
        declare_root_module_statics! {ProtocolModuleRef}
        const BASE_NAME: &'static str = ROOT_MODULE_NAME;
        const NAME: &'static str = ROOT_MODULE_NAME;
        const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.2.0");
    }
}
