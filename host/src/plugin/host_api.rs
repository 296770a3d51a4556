//! The host API vtable handed to every plugin's `init` (Kuzzle's entry point, over the ABI).
//!
//! Each protocol instance gets its own `Binding`, leaked so the pointer in `FfiHost::context`
//! stays valid for the life of the process (plugins are never unloaded, so neither is this).
//! These functions run on plugin threads; none blocks, and none unwinds into the plugin.
//!
//! They reach the host through [`EntryPointApi`], which the entry point implements: this module
//! imports nothing above `plugin/`.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RSlice, RStr};
use switchyard_plugin_api::abi::{FfiCallback, FfiHost, HostVTable, HostVTableRef, LogLevel};
use switchyard_plugin_api::ConnectionId;

use super::callback::Callback;

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
        report_pressure,
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
        binding
            .entry
            .announce_listener(binding.protocol, address.as_str())
    })
}

extern "C" fn report_pressure(host: FfiHost, congested: bool) {
    shielded("report_pressure", (), || {
        let binding = binding(&host);
        binding.entry.report_pressure(binding.protocol, congested)
    })
}
