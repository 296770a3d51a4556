//! What `export_protocol!` expands to: the root module and the `extern "C"` trampolines.
//!
//! Every trampoline runs its body inside `catch_unwind`: since Rust 1.81 a panic unwinding out
//! of an `extern "C"` function aborts the process, and the host must survive a plugin's bug.
//! This file and `abi.rs` hold the SDK's only `unsafe` code.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use abi_stable::{
    library::{CheckTypeLayout, LibHeader, RootModuleResult},
    prefix_type::PrefixTypeTrait,
    std_types::{RErr, ROk, RResult, RSlice, RStr, RString},
};

use crate::abi::{
    BuildFlags, ConnectionId, DisconnectReason, FfiHookError, FfiHookResult, FfiHost, FfiInitArgs,
    FfiInstance, FfiResponse, FfiStatsSink, PluginInfo, ProtocolModule, ProtocolModuleRef,
};
use crate::sdk::{Channels, Host, InitConfig, Protocol, Response, StatsSink};

/// A plugin's name and version; `export_protocol!` implements it.
pub trait ProtocolInfo {
    /// The plugin's name.
    const NAME: &'static str;
    /// The plugin's version.
    const VERSION: &'static str;
    /// True when the plugin's crate is built with `panic = "unwind"`: `export_protocol!` sets
    /// it from `cfg!(panic = "unwind")`, and the host refuses a library where it is false.
    const PANIC_UNWIND: bool;
}

/// The library header `export_protocol!` puts in the exported static.
pub const fn lib_header<P: Protocol + ProtocolInfo>() -> LibHeader {
    // SAFETY: `root_module_constructor::<P>` returns the erased `PrefixRef` of a
    // `ProtocolModuleRef`, which is what `from_constructor::<ProtocolModuleRef>` requires.
    unsafe {
        LibHeader::from_constructor::<ProtocolModuleRef>(
            root_module_constructor::<P>,
            CheckTypeLayout::Yes,
        )
    }
}

extern "C" fn root_module_constructor<P: Protocol + ProtocolInfo>() -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(root_module::<P>)
}

fn root_module<P: Protocol + ProtocolInfo>() -> ProtocolModuleRef {
    ProtocolModule {
        info: PluginInfo {
            name: RStr::from_str(P::NAME),
            version: RStr::from_str(P::VERSION),
        },
        init: init_trampoline::<P>,
        broadcast: broadcast_trampoline::<P>,
        notify: notify_trampoline::<P>,
        join_channel: join_channel_trampoline::<P>,
        leave_channel: leave_channel_trampoline::<P>,
        disconnect: disconnect_trampoline::<P>,
        build: BuildFlags::new(P::PANIC_UNWIND),
        stats: stats_trampoline::<P>,
    }
    .leak_into_prefix()
}

thread_local! {
    /// How many trampolines are running on this thread: a panic inside one is reported by the
    /// trampoline's return value, outside one (a plugin thread) by the panic hook itself.
    static HOOK_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The last panic's message and location, recorded by the panic hook for the trampoline.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static PANIC_HOOK: Once = Once::new();

/// Replaces this library's panic hook (each cdylib has its own copy of std) with one that
/// records the message for the trampoline, or forwards it to the host's log when the panic
/// happened on one of the plugin's own threads.
fn install_panic_hook(host: FfiHost) {
    PANIC_HOOK.call_once(|| {
        panic::set_hook(Box::new(move |info| {
            let message = match info.location() {
                Some(location) => {
                    format!("panicked at {location}: {}", payload_text(info.payload()))
                }
                None => format!("panicked: {}", payload_text(info.payload())),
            };
            if HOOK_DEPTH.with(Cell::get) > 0 {
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(message));
            } else {
                let thread = std::thread::current();
                let name = thread.name().unwrap_or("unnamed");
                Host::new(host).log(
                    crate::abi::LogLevel::ERROR,
                    "panic",
                    &format!("thread '{name}' {message}"),
                );
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "Box<dyn Any>"
    }
}

/// Runs `body`, turning a panic into `FfiHookError { panicked: true }`.
fn guard<T>(body: impl FnOnce() -> Result<T, String>) -> RResult<T, FfiHookError> {
    HOOK_DEPTH.with(|depth| depth.set(depth.get() + 1));
    let outcome = panic::catch_unwind(AssertUnwindSafe(body));
    HOOK_DEPTH.with(|depth| depth.set(depth.get() - 1));
    match outcome {
        Ok(Ok(value)) => ROk(value),
        Ok(Err(message)) => RErr(FfiHookError {
            panicked: false,
            message: RString::from(message),
        }),
        Err(payload) => {
            let message = LAST_PANIC
                .with(|last| last.borrow_mut().take())
                .unwrap_or_else(|| format!("panicked: {}", payload_text(payload.as_ref())));
            RErr(FfiHookError {
                panicked: true,
                message: RString::from(message),
            })
        }
    }
}

/// The instance behind a handle.
///
/// # Safety
/// `instance` must be a handle returned by `init_trampoline::<P>` for this same `P`.
unsafe fn instance<'a, P: Protocol>(instance: FfiInstance) -> &'a P {
    // SAFETY: per this function's contract the pointer came from `Box::into_raw(Box<P>)` in
    // `init_trampoline::<P>`, and instances are never freed (ABI.md, "Instances").
    unsafe { &*instance.0.cast::<P>() }
}

extern "C" fn init_trampoline<P: Protocol + ProtocolInfo>(
    host: FfiHost,
    args: FfiInitArgs<'_>,
) -> RResult<FfiInstance, FfiHookError> {
    install_panic_hook(host);
    guard(|| {
        crate::logging::install(host, args.max_log_level);
        let config = InitConfig {
            name: args.name.as_str(),
            config: args.config.as_str(),
            server: args.server.as_str(),
        };
        // `init` runs on a host thread: tag it for this instance only while `init` runs (the
        // guard restores the tag even if `init` panics).
        let _tagged = crate::logging::ThreadHostGuard::set(host);
        match P::init(Host::new(host), config) {
            Ok(protocol) => {
                let pointer = Box::into_raw(Box::new(protocol));
                Ok(FfiInstance(pointer.cast_const().cast::<c_void>()))
            }
            Err(error) => Err(error.to_string()),
        }
    })
}

// The hooks below all follow one shape. SAFETY (for every `instance::<P>` call): the host passes
// back the handle `init_trampoline::<P>` returned; every function pointer of this root module is
// instantiated with the same `P` (`root_module::<P>`), so the handle's type is `P`.

extern "C" fn broadcast_trampoline<P: Protocol>(
    handle: FfiInstance,
    channels: RSlice<'_, RStr<'_>>,
    payload: RStr<'_>,
) -> FfiHookResult {
    guard(|| {
        // SAFETY: see the comment above the hooks.
        let protocol = unsafe { instance::<P>(handle) };
        protocol.broadcast(Channels(channels), payload.as_str());
        Ok(())
    })
}

extern "C" fn notify_trampoline<P: Protocol>(
    handle: FfiInstance,
    connection: ConnectionId,
    channels: RSlice<'_, RStr<'_>>,
    payload: RStr<'_>,
) -> FfiHookResult {
    guard(|| {
        // SAFETY: see the comment above the hooks.
        let protocol = unsafe { instance::<P>(handle) };
        protocol.notify(connection, Channels(channels), payload.as_str());
        Ok(())
    })
}

extern "C" fn join_channel_trampoline<P: Protocol>(
    handle: FfiInstance,
    channel: RStr<'_>,
    connection: ConnectionId,
) -> FfiHookResult {
    guard(|| {
        // SAFETY: see the comment above the hooks.
        let protocol = unsafe { instance::<P>(handle) };
        protocol.join_channel(channel.as_str(), connection);
        Ok(())
    })
}

extern "C" fn leave_channel_trampoline<P: Protocol>(
    handle: FfiInstance,
    channel: RStr<'_>,
    connection: ConnectionId,
) -> FfiHookResult {
    guard(|| {
        // SAFETY: see the comment above the hooks.
        let protocol = unsafe { instance::<P>(handle) };
        protocol.leave_channel(channel.as_str(), connection);
        Ok(())
    })
}

extern "C" fn disconnect_trampoline<P: Protocol>(
    handle: FfiInstance,
    connection: ConnectionId,
    reason: DisconnectReason,
    message: RStr<'_>,
) -> FfiHookResult {
    guard(|| {
        // SAFETY: see the comment above the hooks.
        let protocol = unsafe { instance::<P>(handle) };
        protocol.disconnect(connection, reason, message.as_str());
        Ok(())
    })
}

extern "C" fn stats_trampoline<P: Protocol>(
    handle: FfiInstance,
    sink: FfiStatsSink,
) -> FfiHookResult {
    guard(|| {
        // SAFETY: see the comment above the hooks.
        let protocol = unsafe { instance::<P>(handle) };
        let mut record = crate::sdk::ffi_sink_record(sink);
        protocol.stats(&mut StatsSink::new(&mut record));
        Ok(())
    })
}

/// Runs the closure `Host::execute` boxed, exactly once.
pub(crate) extern "C" fn callback_trampoline<F>(context: *mut c_void, response: FfiResponse<'_>)
where
    F: FnOnce(Response<'_>) + Send + 'static,
{
    // SAFETY: `context` is the `Box<F>` that `Host::execute` leaked for this callback, and the
    // host calls a callback exactly once (ABI.md, "execute"), so the box is reclaimed once.
    let on_response = unsafe { Box::from_raw(context.cast::<F>()) };
    let outcome = guard(|| {
        on_response(Response::from(response));
        Ok(())
    });
    if let RErr(error) = outcome {
        // Nobody upstream can receive this error: the host is not waiting for the callback.
        tracing::error!(target: "panic", "execute callback {}", error.message);
    }
}
