//! The C ABI's types, mirroring `include/switchyard_protocol.h` field for field: the host reads
//! C plugins through them, and a test compiles the header and compares every size and offset.
//!
//! A C plugin exports `switchyard_protocol_entry`, returning a static [`CAbiProtocol`]. These
//! are plain `repr(C)` data and `extern "C"` function pointers; hooks a plugin may leave NULL
//! are `Option`s, so a NULL is seen (and named as a missing hook), never called.

use std::ffi::{c_char, c_void};

/// `SWITCHYARD_ABI_MAJOR`.
pub const C_ABI_MAJOR: u32 = 1;
/// `SWITCHYARD_ABI_MINOR`: the C ABI is part of plugin-api and shares its version.
pub const C_ABI_MINOR: u32 = 3;
/// `SWITCHYARD_ABI_VERSION`: `(major << 16) | minor`.
pub const C_ABI_VERSION: u32 = (C_ABI_MAJOR << 16) | C_ABI_MINOR;
/// `SWITCHYARD_PROTOCOL_ENTRY_NAME`: the one symbol the host looks up.
pub const C_ENTRY_SYMBOL: &str = "switchyard_protocol_entry";

/// `switchyard_str`: UTF-8 bytes, not NUL-terminated, borrowed for one call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CAbiStr {
    /// The first byte (may dangle when `len` is 0).
    pub ptr: *const c_char,
    /// How many bytes.
    pub len: usize,
}

impl CAbiStr {
    /// Borrows `text` for a call.
    pub fn new(text: &str) -> CAbiStr {
        CAbiStr {
            ptr: text.as_ptr().cast(),
            len: text.len(),
        }
    }
}

/// `switchyard_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CAbiResponse {
    /// HTTP-like status.
    pub status: u16,
    /// The request's id.
    pub request_id: CAbiStr,
    /// Kuzzle's response `content`.
    pub content: CAbiStr,
    /// Headers an action set, a JSON object.
    pub headers: CAbiStr,
}

/// `switchyard_callback_fn`.
pub type CAbiCallbackFn = extern "C" fn(context: *mut c_void, response: *const CAbiResponse);

/// One `execute`'s continuation from a C plugin: called exactly once.
#[derive(Debug)]
pub struct CAbiCallback {
    /// The plugin's function.
    pub call: CAbiCallbackFn,
    /// The plugin's state for it.
    pub context: *mut c_void,
}

// SAFETY: the header requires a callback and its context to be usable from any thread ("runs
// exactly once, on any thread"); the host only moves the pair to the thread that answers.
unsafe impl Send for CAbiCallback {}

/// `switchyard_host_api`: the host's functions. Every pointer is set by the host.
#[repr(C)]
#[derive(Debug)]
pub struct CAbiHostApi {
    /// `sizeof(switchyard_host_api)` as the host knows it.
    pub size: u32,
    /// Declares a connection.
    pub new_connection: extern "C" fn(
        host: *mut c_void,
        ips: *const CAbiStr,
        n_ips: usize,
        headers_json: CAbiStr,
    ) -> u64,
    /// Forgets a connection.
    pub remove_connection: extern "C" fn(host: *mut c_void, connection: u64),
    /// Runs one request.
    pub execute: extern "C" fn(
        host: *mut c_void,
        connection: u64,
        request_json: CAbiStr,
        callback: Option<CAbiCallbackFn>,
        callback_context: *mut c_void,
    ),
    /// One line in the host's log.
    pub log: extern "C" fn(host: *mut c_void, level: u32, target: CAbiStr, message: CAbiStr),
    /// Non-zero once shutdown began.
    pub is_shutting_down: extern "C" fn(host: *mut c_void) -> i32,
    /// Where this instance listens.
    pub announce_listener: extern "C" fn(host: *mut c_void, address: CAbiStr),
    /// Since 1.2: congestion crossings (non-zero: congested).
    pub report_pressure: extern "C" fn(host: *mut c_void, congested: i32),
    /// Since 1.3: a listening socket for `address:port` owned by the host; returns a
    /// descriptor the plugin owns, or -1 with a NUL-terminated message in `error`.
    pub listener: extern "C" fn(
        host: *mut c_void,
        address: CAbiStr,
        port: u16,
        error: *mut c_char,
        error_size: usize,
    ) -> i32,
}

/// `switchyard_host`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CAbiHost {
    /// The host's functions.
    pub api: *const CAbiHostApi,
    /// The host's token for this instance.
    pub context: *mut c_void,
}

/// `switchyard_init_args`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CAbiInitArgs {
    /// The protocol's name.
    pub name: CAbiStr,
    /// Its section as JSON.
    pub config: CAbiStr,
    /// The `[server]` table as JSON.
    pub server: CAbiStr,
    /// The most verbose level the host prints.
    pub max_log_level: u32,
    /// Where a failing `init` may write a NUL-terminated message.
    pub error: *mut c_char,
    /// Its capacity, NUL included.
    pub error_size: usize,
}

/// `init`.
pub type CAbiInit =
    extern "C" fn(host: CAbiHost, args: *const CAbiInitArgs, instance: *mut *mut c_void) -> i32;
/// `broadcast`.
pub type CAbiBroadcast = extern "C" fn(
    instance: *mut c_void,
    channels: *const CAbiStr,
    n_channels: usize,
    payload: CAbiStr,
) -> i32;
/// `notify`.
pub type CAbiNotify = extern "C" fn(
    instance: *mut c_void,
    connection: u64,
    channels: *const CAbiStr,
    n_channels: usize,
    payload: CAbiStr,
) -> i32;
/// `join_channel` and `leave_channel`.
pub type CAbiChannelHook =
    extern "C" fn(instance: *mut c_void, channel: CAbiStr, connection: u64) -> i32;
/// `disconnect`.
pub type CAbiDisconnect =
    extern "C" fn(instance: *mut c_void, connection: u64, reason: u32, message: CAbiStr) -> i32;

/// `switchyard_stat_fn`: records one figure of a `stats` call.
pub type CAbiStatFn = extern "C" fn(sink: *mut c_void, stat: u32, value: u64);
/// `stats` (since 1.2, optional).
pub type CAbiStats =
    extern "C" fn(instance: *mut c_void, record: CAbiStatFn, sink: *mut c_void) -> i32;

/// `switchyard_protocol`: what `switchyard_protocol_entry` returns.
#[repr(C)]
#[derive(Debug)]
pub struct CAbiProtocol {
    /// `SWITCHYARD_ABI_VERSION` as the plugin was compiled.
    pub abi_version: u32,
    /// `sizeof(switchyard_protocol)` as the plugin was compiled.
    pub size: u32,
    /// NUL-terminated name.
    pub name: *const c_char,
    /// NUL-terminated version.
    pub version: *const c_char,
    /// `init`.
    pub init: Option<CAbiInit>,
    /// `broadcast`.
    pub broadcast: Option<CAbiBroadcast>,
    /// `notify`.
    pub notify: Option<CAbiNotify>,
    /// `joinChannel`.
    pub join_channel: Option<CAbiChannelHook>,
    /// `leaveChannel`.
    pub leave_channel: Option<CAbiChannelHook>,
    /// `disconnect`.
    pub disconnect: Option<CAbiDisconnect>,
    /// `stats` (since 1.2; NULL or beyond `size`: no counters).
    pub stats: Option<CAbiStats>,
}

/// The entry symbol's type.
pub type CAbiEntry = extern "C" fn() -> *const CAbiProtocol;

/// One C struct as Rust lays it out: its C name, its size, and each field's name and offset.
pub type CLayout = (&'static str, usize, Vec<(&'static str, usize)>);

/// Every C struct with its size and the offset of each field, as Rust lays them out: the
/// header test prints the same from C and compares.
pub fn layouts() -> Vec<CLayout> {
    use std::mem::{offset_of, size_of};
    macro_rules! layout {
        ($c:literal, $t:ty, [$($field:ident),*]) => {
            ($c, size_of::<$t>(), vec![$((stringify!($field), offset_of!($t, $field))),*])
        };
    }
    vec![
        layout!("switchyard_str", CAbiStr, [ptr, len]),
        layout!(
            "switchyard_response",
            CAbiResponse,
            [status, request_id, content, headers]
        ),
        layout!(
            "switchyard_host_api",
            CAbiHostApi,
            [
                size,
                new_connection,
                remove_connection,
                execute,
                log,
                is_shutting_down,
                announce_listener,
                report_pressure,
                listener
            ]
        ),
        layout!("switchyard_host", CAbiHost, [api, context]),
        layout!(
            "switchyard_init_args",
            CAbiInitArgs,
            [name, config, server, max_log_level, error, error_size]
        ),
        layout!(
            "switchyard_protocol",
            CAbiProtocol,
            [
                abi_version,
                size,
                name,
                version,
                init,
                broadcast,
                notify,
                join_channel,
                leave_channel,
                disconnect,
                stats
            ]
        ),
    ]
}
