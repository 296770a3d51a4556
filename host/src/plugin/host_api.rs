//! The host API vtable handed to every plugin's `init` (Kuzzle's entry point, over the ABI).
//!
//! Each protocol instance gets its own `Binding`, leaked so the pointer in `FfiHost::context`
//! stays valid for the life of the process (plugins are never unloaded, so neither is this).
//! These functions run on plugin threads; none blocks, and none unwinds into the plugin.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RSlice, RStr};
use switchyard_plugin_api::abi::{FfiCallback, FfiHost, HostVTable, HostVTableRef, LogLevel};
use switchyard_plugin_api::ConnectionId;

use crate::entry_point::EntryPoint;

/// What a protocol's `FfiHost::context` points to.
struct Binding {
    entry: Arc<EntryPoint>,
    protocol: usize,
    protocol_name: String,
    plugin_name: &'static str,
}

/// The `FfiHost` for protocol number `protocol`.
pub fn host_for(
    entry: &Arc<EntryPoint>,
    protocol: usize,
    protocol_name: &str,
    plugin_name: &'static str,
) -> FfiHost {
    let binding: &'static Binding = Box::leak(Box::new(Binding {
        entry: Arc::clone(entry),
        protocol,
        protocol_name: protocol_name.to_string(),
        plugin_name,
    }));
    FfiHost {
        vtable: vtable(),
        context: (binding as *const Binding).cast::<c_void>(),
    }
}

fn vtable() -> HostVTableRef {
    HostVTable {
        new_connection,
        remove_connection,
        execute,
        log,
        is_shutting_down,
        announce_listener,
    }
    .leak_into_prefix()
}

fn binding(host: &FfiHost) -> &'static Binding {
    // SAFETY: every `FfiHost` the host gives out comes from `host_for`, whose `context` is a
    // leaked `Binding` (never freed), and plugins pass it back unchanged (ABI.md, "FfiHost").
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
        binding
            .entry
            .new_connection(binding.protocol, ips.as_slice(), headers_json.as_str())
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
    // The callback must still run exactly once if the host panics here; `execute` has no
    // code between taking the callback and queueing it that can panic short of allocation
    // failure, which aborts anyway.
    shielded("execute", (), || {
        binding(&host)
            .entry
            .execute(connection, request_json.as_str(), callback)
    })
}

extern "C" fn log(host: FfiHost, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
    shielded("log", (), || {
        let binding = binding(&host);
        let (plugin, protocol) = (binding.plugin_name, binding.protocol_name.as_str());
        let (target, message) = (target.as_str(), message.as_str());
        match level {
            LogLevel::ERROR => tracing::error!(plugin, protocol, target, "{message}"),
            LogLevel::WARN => tracing::warn!(plugin, protocol, target, "{message}"),
            LogLevel::INFO => tracing::info!(plugin, protocol, target, "{message}"),
            LogLevel::DEBUG => tracing::debug!(plugin, protocol, target, "{message}"),
            LogLevel::OFF => {}
            _ => tracing::trace!(plugin, protocol, target, "{message}"),
        }
    })
}

extern "C" fn is_shutting_down(host: FfiHost) -> bool {
    shielded("is_shutting_down", true, || {
        binding(&host).entry.is_shutting_down()
    })
}

extern "C" fn announce_listener(host: FfiHost, address: RStr<'_>) {
    shielded("announce_listener", (), || {
        let binding = binding(&host);
        if let Some(protocol) = binding.entry.protocols().get(binding.protocol) {
            protocol.add_listener(address.as_str().to_string());
        }
    })
}
