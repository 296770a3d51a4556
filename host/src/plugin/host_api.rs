//! The host API handed to every plugin's `init` (Kuzzle's entry point, over the ABI): the
//! abi_stable vtable for Rust plugins, and `switchyard_host_api` for C plugins.
//!
//! Each protocol instance gets its own `Binding`, leaked so the pointer in `FfiHost::context`
//! stays valid for the life of the process (plugins are never unloaded, so neither is this).
//! These functions run on plugin threads; none blocks, and none unwinds into the plugin.
//!
//! They reach the host through [`EntryPointApi`], which the entry point implements: this module
//! imports nothing above `plugin/`.

use std::borrow::Cow;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RSlice, RStr};
use switchyard_plugin_api::abi::{
    self, FfiCallback, FfiHost, FfiStatsSink, HostVTable, HostVTableRef, LogLevel, StatId,
};
use switchyard_plugin_api::c_abi::{CAbiCallback, CAbiCallbackFn, CAbiHost, CAbiHostApi, CAbiStr};
use switchyard_plugin_api::ConnectionId;

use super::callback::Callback;
use super::registry::ProtocolStats;

/// What the host offers a protocol, whatever ABI the protocol speaks: Kuzzle's entry point.
pub trait EntryPointApi: Send + Sync + 'static {
    /// Declares a connection of protocol `protocol`.
    fn new_connection(&self, protocol: usize, ips: &[&str], headers_json: &str) -> ConnectionId;
    /// Forgets a connection (it leaves every room first).
    fn remove_connection(&self, connection: ConnectionId);
    /// Runs a request; `callback` is called exactly once.
    fn execute(&self, connection: ConnectionId, request_json: &str, callback: Callback);
    /// `protocol`'s subscribers' queues passed their high-water mark (`true`) or drained
    /// below the low-water mark (`false`).
    fn report_pressure(&self, protocol: usize, congested: bool) {
        let _ = (protocol, congested);
    }
    /// True once shutdown began.
    fn is_shutting_down(&self) -> bool;
    /// Protocol `protocol` listens at `address`.
    fn announce_listener(&self, protocol: usize, address: &str);
    /// A listening socket the host owns, lent to protocol `protocol_name` (a descriptor of
    /// its own).
    fn listener(
        &self,
        protocol_name: &str,
        address: std::net::IpAddr,
        port: u16,
    ) -> std::io::Result<std::net::TcpListener> {
        let _ = protocol_name;
        std::net::TcpListener::bind((address, port))
    }
}

/// What a protocol's `FfiHost::context` points to.
struct Binding {
    entry: Arc<dyn EntryPointApi>,
    protocol: usize,
    protocol_name: String,
    plugin_name: &'static str,
}

/// The `FfiHost` for protocol number `protocol`.
pub fn host_for(
    entry: &Arc<dyn EntryPointApi>,
    protocol: usize,
    protocol_name: &str,
    plugin_name: &'static str,
) -> FfiHost {
    let binding = leak_binding(entry, protocol, protocol_name, plugin_name);
    FfiHost {
        vtable: vtable(),
        context: (binding as *const Binding).cast::<c_void>(),
    }
}

/// The 1.0 `FfiHost` for protocol number `protocol`, a plugin built against plugin-api 1.0:
/// the same binding, with 1.0's host table (`abi::v1_0`).
pub fn host_for_v1_0(
    entry: &Arc<dyn EntryPointApi>,
    protocol: usize,
    protocol_name: &str,
    plugin_name: &'static str,
) -> abi::v1_0::FfiHost {
    let binding = leak_binding(entry, protocol, protocol_name, plugin_name);
    abi::v1_0::FfiHost {
        vtable: vtable_v1_0(),
        context: (binding as *const Binding).cast::<c_void>(),
    }
}

/// The 1.2 `FfiHost` for protocol number `protocol`, a plugin built against plugin-api 1.1 or
/// 1.2: the same binding, with their host table (`abi::v1_2`, before 1.3's `listener`).
pub fn host_for_v1_2(
    entry: &Arc<dyn EntryPointApi>,
    protocol: usize,
    protocol_name: &str,
    plugin_name: &'static str,
) -> abi::v1_2::FfiHost {
    let binding = leak_binding(entry, protocol, protocol_name, plugin_name);
    abi::v1_2::FfiHost {
        vtable: vtable_v1_2(),
        context: (binding as *const Binding).cast::<c_void>(),
    }
}

/// The `switchyard_host` for protocol number `protocol`, a C plugin.
pub fn c_host_for(
    entry: &Arc<dyn EntryPointApi>,
    protocol: usize,
    protocol_name: &str,
    plugin_name: &'static str,
) -> CAbiHost {
    let binding = leak_binding(entry, protocol, protocol_name, plugin_name);
    CAbiHost {
        api: &C_HOST_API,
        // The plugin gets a `void *` (C has no const-correct opaque handle worth the
        // friction); the host never writes through it.
        context: (binding as *const Binding).cast_mut().cast::<c_void>(),
    }
}

fn leak_binding(
    entry: &Arc<dyn EntryPointApi>,
    protocol: usize,
    protocol_name: &str,
    plugin_name: &'static str,
) -> &'static Binding {
    Box::leak(Box::new(Binding {
        entry: Arc::clone(entry),
        protocol,
        protocol_name: protocol_name.to_string(),
        plugin_name,
    }))
}

/// Today's host table, made once.
fn vtable() -> HostVTableRef {
    static VTABLE: OnceLock<HostVTableRef> = OnceLock::new();
    *VTABLE.get_or_init(|| {
        HostVTable {
            new_connection,
            remove_connection,
            execute,
            log,
            is_shutting_down,
            announce_listener,
            report_pressure,
            listener,
        }
        .leak_into_prefix()
    })
}

/// plugin-api 1.1's and 1.2's host table, made once: the same functions, each taking their
/// `FfiHost`.
fn vtable_v1_2() -> abi::v1_2::HostVTableRef {
    static VTABLE: OnceLock<abi::v1_2::HostVTableRef> = OnceLock::new();
    *VTABLE.get_or_init(|| {
        abi::v1_2::HostVTable {
            new_connection: new_connection_v1_2,
            remove_connection: remove_connection_v1_2,
            execute: execute_v1_2,
            log: log_v1_2,
            is_shutting_down: is_shutting_down_v1_2,
            announce_listener: announce_listener_v1_2,
            report_pressure: report_pressure_v1_2,
        }
        .leak_into_prefix()
    })
}

/// Today's `FfiHost` for the binding a 1.1 or 1.2 plugin passed back.
fn from_v1_2(host: abi::v1_2::FfiHost) -> FfiHost {
    FfiHost {
        vtable: vtable(),
        context: host.context,
    }
}

extern "C" fn new_connection_v1_2(
    host: abi::v1_2::FfiHost,
    ips: RSlice<'_, RStr<'_>>,
    headers_json: RStr<'_>,
) -> ConnectionId {
    new_connection(from_v1_2(host), ips, headers_json)
}

extern "C" fn remove_connection_v1_2(host: abi::v1_2::FfiHost, connection: ConnectionId) {
    remove_connection(from_v1_2(host), connection)
}

extern "C" fn execute_v1_2(
    host: abi::v1_2::FfiHost,
    connection: ConnectionId,
    request_json: RStr<'_>,
    callback: FfiCallback,
) {
    execute(from_v1_2(host), connection, request_json, callback)
}

extern "C" fn log_v1_2(
    host: abi::v1_2::FfiHost,
    level: LogLevel,
    target: RStr<'_>,
    message: RStr<'_>,
) {
    log(from_v1_2(host), level, target, message)
}

extern "C" fn is_shutting_down_v1_2(host: abi::v1_2::FfiHost) -> bool {
    is_shutting_down(from_v1_2(host))
}

extern "C" fn announce_listener_v1_2(host: abi::v1_2::FfiHost, address: RStr<'_>) {
    announce_listener(from_v1_2(host), address)
}

extern "C" fn report_pressure_v1_2(host: abi::v1_2::FfiHost, congested: bool) {
    report_pressure(from_v1_2(host), congested)
}

/// plugin-api 1.0's host table, made once: the same functions, each taking 1.0's `FfiHost`.
fn vtable_v1_0() -> abi::v1_0::HostVTableRef {
    static VTABLE: OnceLock<abi::v1_0::HostVTableRef> = OnceLock::new();
    *VTABLE.get_or_init(|| {
        abi::v1_0::HostVTable {
            new_connection: new_connection_v1_0,
            remove_connection: remove_connection_v1_0,
            execute: execute_v1_0,
            log: log_v1_0,
            is_shutting_down: is_shutting_down_v1_0,
            announce_listener: announce_listener_v1_0,
        }
        .leak_into_prefix()
    })
}

/// Today's `FfiHost` for the binding a 1.0 plugin passed back: the functions only read
/// `context`.
fn from_v1_0(host: abi::v1_0::FfiHost) -> FfiHost {
    FfiHost {
        vtable: vtable(),
        context: host.context,
    }
}

extern "C" fn new_connection_v1_0(
    host: abi::v1_0::FfiHost,
    ips: RSlice<'_, RStr<'_>>,
    headers_json: RStr<'_>,
) -> ConnectionId {
    new_connection(from_v1_0(host), ips, headers_json)
}

extern "C" fn remove_connection_v1_0(host: abi::v1_0::FfiHost, connection: ConnectionId) {
    remove_connection(from_v1_0(host), connection)
}

extern "C" fn execute_v1_0(
    host: abi::v1_0::FfiHost,
    connection: ConnectionId,
    request_json: RStr<'_>,
    callback: FfiCallback,
) {
    execute(from_v1_0(host), connection, request_json, callback)
}

extern "C" fn log_v1_0(
    host: abi::v1_0::FfiHost,
    level: LogLevel,
    target: RStr<'_>,
    message: RStr<'_>,
) {
    log(from_v1_0(host), level, target, message)
}

extern "C" fn is_shutting_down_v1_0(host: abi::v1_0::FfiHost) -> bool {
    is_shutting_down(from_v1_0(host))
}

extern "C" fn announce_listener_v1_0(host: abi::v1_0::FfiHost, address: RStr<'_>) {
    announce_listener(from_v1_0(host), address)
}

fn binding(host: &FfiHost) -> &'static Binding {
    // SAFETY: every `FfiHost` the host gives out comes from `host_for`, `host_for_v1_0` or
    // `host_for_v1_2` (which `from_v1_0` and `from_v1_2` turn into one with the same
    // `context`), whose `context` is a leaked
    // `Binding` (never freed), and plugins pass it back unchanged (ABI.md, "FfiHost").
    unsafe { &*host.context.cast::<Binding>() }
}

/// Runs `body`, logging instead of unwinding into the plugin if the host has a bug.
fn shielded<T>(what: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        tracing::error!("host API call {what} panicked");
        fallback
    })
}

extern "C" fn new_connection(
    host: FfiHost,
    ips: RSlice<'_, RStr<'_>>,
    headers_json: RStr<'_>,
) -> ConnectionId {
    shielded("new_connection", ConnectionId(0), || {
        let binding = binding(&host);
        // One or two addresses in practice: borrowed on the stack.
        const INLINE: usize = 4;
        let ips = ips.as_slice();
        let headers = headers_json.as_str();
        if ips.len() <= INLINE {
            let mut borrowed = [""; INLINE];
            for (slot, ip) in borrowed.iter_mut().zip(ips) {
                *slot = ip.as_str();
            }
            binding
                .entry
                .new_connection(binding.protocol, &borrowed[..ips.len()], headers)
        } else {
            let borrowed: Vec<&str> = ips.iter().map(|ip| ip.as_str()).collect();
            binding
                .entry
                .new_connection(binding.protocol, &borrowed, headers)
        }
    })
}

extern "C" fn remove_connection(host: FfiHost, connection: ConnectionId) {
    shielded("remove_connection", (), || {
        binding(&host).entry.remove_connection(connection)
    })
}

extern "C" fn execute(
    host: FfiHost,
    connection: ConnectionId,
    request_json: RStr<'_>,
    callback: FfiCallback,
) {
    // The callback runs exactly once even if the host panics in there: once the request is
    // admitted, a `Responder` owns the callback and answers 500 when it is dropped unanswered,
    // unwinding included; before that only an atomic add runs (`admission.rs`).
    shielded("execute", (), || {
        binding(&host)
            .entry
            .execute(connection, request_json.as_str(), Callback::Abi(callback))
    })
}

extern "C" fn log(host: FfiHost, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
    shielded("log", (), || {
        log_line(binding(&host), level, target.as_str(), message.as_str())
    })
}

fn log_line(binding: &Binding, level: LogLevel, target: &str, message: &str) {
    let (plugin, protocol) = (binding.plugin_name, binding.protocol_name.as_str());
    match level {
        LogLevel::ERROR => tracing::error!(plugin, protocol, target, "{message}"),
        LogLevel::WARN => tracing::warn!(plugin, protocol, target, "{message}"),
        LogLevel::INFO => tracing::info!(plugin, protocol, target, "{message}"),
        LogLevel::DEBUG => tracing::debug!(plugin, protocol, target, "{message}"),
        LogLevel::OFF => {}
        _ => tracing::trace!(plugin, protocol, target, "{message}"),
    }
}

extern "C" fn is_shutting_down(host: FfiHost) -> bool {
    shielded("is_shutting_down", true, || {
        binding(&host).entry.is_shutting_down()
    })
}

extern "C" fn announce_listener(host: FfiHost, address: RStr<'_>) {
    shielded("announce_listener", (), || {
        let binding = binding(&host);
        binding
            .entry
            .announce_listener(binding.protocol, address.as_str())
    })
}

/// The listener for `address:port` as the protocol's message: the host's error, or what a
/// plugin binding its own would have said.
fn lend_listener(binding: &Binding, address: &str, port: u16) -> Result<i32, String> {
    use std::os::fd::IntoRawFd as _;
    let protocol = binding.protocol_name.as_str();
    let ip: std::net::IpAddr = address.parse().map_err(|_| {
        format!("protocol \"{protocol}\" asked for a listener on {address:?}, which is not an IP address")
    })?;
    let socket = std::net::SocketAddr::new(ip, port);
    match binding.entry.listener(protocol, ip, port) {
        Ok(listener) => Ok(listener.into_raw_fd()),
        Err(error) => Err(format!(
            "protocol \"{protocol}\" cannot listen on {socket}: {error}\nhint: another process may use this port; change server.protocols.{protocol}.port"
        )),
    }
}

extern "C" fn listener(
    host: FfiHost,
    address: RStr<'_>,
    port: u16,
) -> abi_stable::std_types::RResult<i32, abi_stable::std_types::RString> {
    use abi_stable::std_types::{RErr, ROk};
    shielded(
        "listener",
        RErr("the host failed to make a listener".into()),
        || match lend_listener(binding(&host), address.as_str(), port) {
            Ok(fd) => ROk(fd),
            Err(message) => RErr(message.into()),
        },
    )
}

// The C ABI's host functions (`switchyard_host_api`). Each checks what C can get wrong (a NULL
// handle or buffer, bytes that are not UTF-8) instead of trusting it, and none unwinds.

static C_HOST_API: CAbiHostApi = CAbiHostApi {
    size: size_of::<CAbiHostApi>() as u32,
    new_connection: c_new_connection,
    remove_connection: c_remove_connection,
    execute: c_execute,
    log: c_log,
    is_shutting_down: c_is_shutting_down,
    announce_listener: c_announce_listener,
    report_pressure: c_report_pressure,
    listener: c_listener,
};

fn c_binding(host: *mut c_void) -> Option<&'static Binding> {
    if host.is_null() {
        return None;
    }
    // SAFETY: the only non-null `context` the host gives a C plugin comes from `c_host_for`: a
    // leaked `Binding`, never freed; the header says to pass it back unchanged.
    Some(unsafe { &*host.cast_const().cast::<Binding>() })
}

/// A C string argument: borrowed for the call; invalid UTF-8 is replaced, not trusted.
fn c_text<'a>(text: CAbiStr) -> Cow<'a, str> {
    if text.ptr.is_null() || text.len == 0 {
        return Cow::Borrowed("");
    }
    // SAFETY: non-null, and the header requires `len` readable bytes at `ptr` for the call.
    let bytes = unsafe { std::slice::from_raw_parts(text.ptr.cast::<u8>(), text.len) };
    String::from_utf8_lossy(bytes)
}

extern "C" fn c_new_connection(
    host: *mut c_void,
    ips: *const CAbiStr,
    n_ips: usize,
    headers_json: CAbiStr,
) -> u64 {
    shielded("new_connection", 0, || {
        let Some(binding) = c_binding(host) else {
            return 0;
        };
        let ips: &[CAbiStr] = if ips.is_null() || n_ips == 0 {
            &[]
        } else {
            // SAFETY: non-null, and the header requires `n_ips` strings at `ips` for the call.
            unsafe { std::slice::from_raw_parts(ips, n_ips) }
        };
        let owned: Vec<Cow<'_, str>> = ips.iter().map(|ip| c_text(*ip)).collect();
        let borrowed: Vec<&str> = owned.iter().map(|ip| ip.as_ref()).collect();
        let headers = c_text(headers_json);
        let headers = if headers.is_empty() { "{}" } else { &headers };
        binding
            .entry
            .new_connection(binding.protocol, &borrowed, headers)
            .0
    })
}

extern "C" fn c_remove_connection(host: *mut c_void, connection: u64) {
    shielded("remove_connection", (), || {
        if let Some(binding) = c_binding(host) {
            binding.entry.remove_connection(ConnectionId(connection))
        }
    })
}

extern "C" fn c_execute(
    host: *mut c_void,
    connection: u64,
    request_json: CAbiStr,
    callback: Option<CAbiCallbackFn>,
    callback_context: *mut c_void,
) {
    // As for `execute`: once admitted, a `Responder` owns the callback and answers once.
    shielded("execute", (), || {
        let Some(binding) = c_binding(host) else {
            return;
        };
        let Some(call) = callback else {
            log_line(
                binding,
                LogLevel::ERROR,
                "switchyard",
                "execute called with a NULL callback: request ignored",
            );
            return;
        };
        let callback = Callback::C(CAbiCallback {
            call,
            context: callback_context,
        });
        binding
            .entry
            .execute(ConnectionId(connection), &c_text(request_json), callback)
    })
}

extern "C" fn c_log(host: *mut c_void, level: u32, target: CAbiStr, message: CAbiStr) {
    shielded("log", (), || {
        if let Some(binding) = c_binding(host) {
            let level = LogLevel(u8::try_from(level).unwrap_or(LogLevel::TRACE.0));
            log_line(binding, level, &c_text(target), &c_text(message))
        }
    })
}

extern "C" fn c_is_shutting_down(host: *mut c_void) -> i32 {
    shielded("is_shutting_down", 1, || {
        c_binding(host).map_or(1, |binding| i32::from(binding.entry.is_shutting_down()))
    })
}

extern "C" fn c_announce_listener(host: *mut c_void, address: CAbiStr) {
    shielded("announce_listener", (), || {
        if let Some(binding) = c_binding(host) {
            binding
                .entry
                .announce_listener(binding.protocol, &c_text(address))
        }
    })
}

extern "C" fn c_report_pressure(host: *mut c_void, congested: i32) {
    shielded("report_pressure", (), || {
        if let Some(binding) = c_binding(host) {
            binding
                .entry
                .report_pressure(binding.protocol, congested != 0)
        }
    })
}

extern "C" fn c_listener(
    host: *mut c_void,
    address: CAbiStr,
    port: u16,
    error: *mut std::ffi::c_char,
    error_size: usize,
) -> i32 {
    shielded("listener", -1, || {
        let Some(binding) = c_binding(host) else {
            return -1;
        };
        match lend_listener(binding, &c_text(address), port) {
            Ok(fd) => fd,
            Err(message) => {
                write_c_error(&message, error, error_size);
                -1
            }
        }
    })
}

/// Writes `message` NUL-terminated into the C plugin's buffer, cut to fit (on a character
/// boundary); nothing when the buffer is NULL or empty.
fn write_c_error(message: &str, error: *mut std::ffi::c_char, error_size: usize) {
    if error.is_null() || error_size == 0 {
        return;
    }
    let mut end = message.len().min(error_size - 1);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    // SAFETY: non-null, and the header requires `error_size` writable bytes at `error` for the
    // call; `end < error_size`, so the copy and the NUL fit.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), error.cast::<u8>(), end);
        *error.add(end) = 0;
    }
}

extern "C" fn report_pressure(host: FfiHost, congested: bool) {
    shielded("report_pressure", (), || {
        let binding = binding(&host);
        binding.entry.report_pressure(binding.protocol, congested)
    })
}

// The sinks of the `stats` hook: the plugin calls `record` during the hook only, with the
// context the host made from a `&mut ProtocolStats` on its own stack.

/// A Rust plugin's sink writing into `stats` (valid while `stats` is borrowed: the hook's call).
pub fn rust_stats_sink(stats: &mut ProtocolStats) -> FfiStatsSink {
    FfiStatsSink {
        record: rust_record_stat,
        context: (stats as *mut ProtocolStats).cast::<c_void>(),
    }
}

/// A C plugin's `record` function and sink for `stats`, as [`rust_stats_sink`].
pub fn c_stats_sink(
    stats: &mut ProtocolStats,
) -> (switchyard_plugin_api::c_abi::CAbiStatFn, *mut c_void) {
    (
        c_record_stat,
        (stats as *mut ProtocolStats).cast::<c_void>(),
    )
}

extern "C" fn rust_record_stat(context: *mut c_void, stat: StatId, value: u64) {
    shielded("stats", (), || {
        if context.is_null() {
            return;
        }
        // SAFETY: `context` comes from `rust_stats_sink`, whose `&mut ProtocolStats` outlives
        // the hook call, and ABI.md allows `record` only during that call, on its thread.
        let stats = unsafe { &mut *context.cast::<ProtocolStats>() };
        stats.record(stat, value);
    })
}

extern "C" fn c_record_stat(sink: *mut c_void, stat: u32, value: u64) {
    shielded("stats", (), || {
        if sink.is_null() {
            return;
        }
        // SAFETY: as for `rust_record_stat`: the header allows `record` only during the
        // `stats` call, and `sink` is the `&mut ProtocolStats` the host lent for it.
        let stats = unsafe { &mut *sink.cast::<ProtocolStats>() };
        stats.record(StatId(stat), value);
    })
}
