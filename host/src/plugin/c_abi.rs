//! The host's side of the C ABI (`plugin-api/include/switchyard_protocol.h`): finding a C
//! plugin's entry symbol, checking its description, and calling its hooks.
//!
//! A C plugin passes the same checks as a Rust one, with the same messages: its ABI version
//! (plugin-api's), and every hook present (a NULL hook is named missing). C does not unwind,
//! so nothing can cross back as a panic; a hook's non-zero return is a failed hook.

use std::ffi::{c_char, c_void, CStr};
use std::path::Path;

use abi_stable::library::RawLibrary;
use abi_stable::sabi_types::VersionNumber;
use abi_stable::std_types::{RErr, ROk, RStr, RString};
use switchyard_plugin_api::abi::{FfiHookError, FfiHookResult, FfiInstance, HOOKS};
use switchyard_plugin_api::c_abi::{
    CAbiBroadcast, CAbiChannelHook, CAbiDisconnect, CAbiEntry, CAbiHost, CAbiInit, CAbiInitArgs,
    CAbiNotify, CAbiProtocol, CAbiStatFn, CAbiStats, CAbiStr, C_ENTRY_SYMBOL,
};
use switchyard_plugin_api::{ConnectionId, DisconnectReason, LogLevel};

use super::loader::{loads_version, LoadErrorKind, LoadedLibrary, PluginModule};

/// A checked C plugin: its hooks, none NULL.
#[derive(Clone, Copy)]
pub struct CModule {
    init: CAbiInit,
    broadcast: CAbiBroadcast,
    notify: CAbiNotify,
    join_channel: CAbiChannelHook,
    leave_channel: CAbiChannelHook,
    disconnect: CAbiDisconnect,
    /// Optional (since 1.2): NULL or beyond `size` reports no counters.
    stats: Option<CAbiStats>,
}

/// Looks for the C entry symbol in the library at `path` and checks the description it
/// returns. `Ok(None)`: the library has no such symbol.
pub fn load(path: &Path) -> Result<Option<LoadedLibrary>, LoadErrorKind> {
    let library = RawLibrary::load_at(path).map_err(|error| LoadErrorKind::NotALibrary {
        reason: error.to_string(),
    })?;
    // Never unloaded (see `loader.rs`): everything read from it is `'static`.
    let library: &'static RawLibrary = Box::leak(Box::new(library));
    let symbol = format!("{C_ENTRY_SYMBOL}\0");
    // SAFETY: a library exporting `switchyard_protocol_entry` declares it as the header says,
    // `const switchyard_protocol *switchyard_protocol_entry(void)`, which is `CAbiEntry`.
    let entry: CAbiEntry = match unsafe { library.get::<CAbiEntry>(symbol.as_bytes()) } {
        Ok(entry) => *entry,
        Err(_) => return Ok(None),
    };
    // The header's contract: the entry only returns the address of a static description.
    let description = entry();
    if description.is_null() {
        return Err(LoadErrorKind::NotAPlugin {
            reason: format!("its {C_ENTRY_SYMBOL} returned NULL"),
        });
    }
    // SAFETY: non-null, and the header requires it to point to a static `switchyard_protocol`
    // that lives as long as the library, which is never unloaded. Only the fields within the
    // plugin's `size` are read below.
    let description: &'static CAbiProtocol = unsafe { &*description };
    check(description).map(Some)
}

/// The same checks as for a Rust plugin, in the same order.
fn check(description: &'static CAbiProtocol) -> Result<LoadedLibrary, LoadErrorKind> {
    let (major, minor) = (
        description.abi_version >> 16,
        description.abi_version & 0xffff,
    );
    if !loads_version(major, minor) {
        return Err(LoadErrorKind::IncompatibleVersion {
            found: format!("{major}.{minor}.0"),
        });
    }
    let known = |offset: usize| offset + size_of::<usize>() <= description.size as usize;
    // A field beyond the size the plugin was compiled with is absent, like a NULL one.
    macro_rules! field {
        ($name:ident) => {
            if known(std::mem::offset_of!(CAbiProtocol, $name)) {
                description.$name
            } else {
                None
            }
        };
    }
    let (init, broadcast, notify) = (field!(init), field!(broadcast), field!(notify));
    let (join_channel, leave_channel, disconnect) = (
        field!(join_channel),
        field!(leave_channel),
        field!(disconnect),
    );
    let present = [
        init.is_some(),
        broadcast.is_some(),
        notify.is_some(),
        join_channel.is_some(),
        leave_channel.is_some(),
        disconnect.is_some(),
    ];
    let missing: Vec<&'static str> = HOOKS
        .iter()
        .zip(present)
        .filter(|(_, present)| !present)
        .map(|((_, kuzzle_name), _)| *kuzzle_name)
        .collect();
    let (
        Some(init),
        Some(broadcast),
        Some(notify),
        Some(join_channel),
        Some(leave_channel),
        Some(disconnect),
    ) = (
        init,
        broadcast,
        notify,
        join_channel,
        leave_channel,
        disconnect,
    )
    else {
        return Err(LoadErrorKind::MissingHooks { missing });
    };
    let plugin_name = static_text(description.name).ok_or_else(|| LoadErrorKind::NotAPlugin {
        reason: "its description's name is NULL or not UTF-8".to_string(),
    })?;
    let plugin_version =
        static_text(description.version).ok_or_else(|| LoadErrorKind::NotAPlugin {
            reason: "its description's version is NULL or not UTF-8".to_string(),
        })?;
    let interface_version = VersionNumber {
        major,
        minor,
        patch: 0,
    };
    Ok(LoadedLibrary {
        module: PluginModule::C(CModule {
            init,
            broadcast,
            notify,
            join_channel,
            leave_channel,
            disconnect,
            stats: field!(stats),
        }),
        plugin_name,
        plugin_version,
        interface_version,
    })
}

/// A NUL-terminated static string of the plugin's description.
fn static_text(text: *const c_char) -> Option<&'static str> {
    if text.is_null() {
        return None;
    }
    // SAFETY: non-null, and the header requires `name` and `version` to be NUL-terminated
    // static strings of a library that is never unloaded.
    unsafe { CStr::from_ptr(text) }.to_str().ok()
}

/// A hook's status as the registry reports it.
fn outcome(status: i32) -> FfiHookResult {
    if status == 0 {
        ROk(())
    } else {
        RErr(FfiHookError {
            panicked: false,
            message: RString::from(format!("returned {status}")),
        })
    }
}

/// Channels as the C hooks take them: on the stack for a few.
fn with_channels<T>(channels: &[RStr<'_>], body: impl FnOnce(&[CAbiStr]) -> T) -> T {
    const INLINE: usize = 8;
    if channels.len() <= INLINE {
        let mut borrowed = [CAbiStr::new(""); INLINE];
        for (slot, channel) in borrowed.iter_mut().zip(channels) {
            *slot = CAbiStr::new(channel.as_str());
        }
        body(&borrowed[..channels.len()])
    } else {
        let borrowed: Vec<CAbiStr> = channels
            .iter()
            .map(|channel| CAbiStr::new(channel.as_str()))
            .collect();
        body(&borrowed)
    }
}

fn instance_pointer(instance: FfiInstance) -> *mut c_void {
    instance.0.cast_mut()
}

impl CModule {
    /// Calls `init`: the instance, or the plugin's message.
    pub fn init(
        &self,
        host: CAbiHost,
        name: &str,
        config: &str,
        server: &str,
        max_log_level: LogLevel,
    ) -> Result<FfiInstance, String> {
        let mut error = [0 as c_char; 1024];
        let args = CAbiInitArgs {
            name: CAbiStr::new(name),
            config: CAbiStr::new(config),
            server: CAbiStr::new(server),
            max_log_level: u32::from(max_log_level.0),
            error: error.as_mut_ptr(),
            error_size: error.len(),
        };
        let mut instance: *mut c_void = std::ptr::null_mut();
        let status = (self.init)(host, &args, &mut instance);
        if status == 0 {
            return Ok(FfiInstance(instance.cast_const()));
        }
        // The plugin may have filled the buffer without a final NUL: the last byte is one.
        error[error.len() - 1] = 0;
        let bytes: Vec<u8> = error
            .iter()
            .take_while(|byte| **byte != 0)
            .map(|byte| *byte as u8)
            .collect();
        let message = String::from_utf8_lossy(&bytes);
        Err(if message.is_empty() {
            format!("returned {status}")
        } else {
            message.into_owned()
        })
    }

    /// Calls `broadcast`.
    pub fn broadcast(
        &self,
        instance: FfiInstance,
        channels: &[RStr<'_>],
        payload: &str,
    ) -> FfiHookResult {
        outcome(with_channels(channels, |channels| {
            (self.broadcast)(
                instance_pointer(instance),
                channels.as_ptr(),
                channels.len(),
                CAbiStr::new(payload),
            )
        }))
    }

    /// Calls `notify`.
    pub fn notify(
        &self,
        instance: FfiInstance,
        connection: ConnectionId,
        channels: &[RStr<'_>],
        payload: &str,
    ) -> FfiHookResult {
        outcome(with_channels(channels, |channels| {
            (self.notify)(
                instance_pointer(instance),
                connection.0,
                channels.as_ptr(),
                channels.len(),
                CAbiStr::new(payload),
            )
        }))
    }

    /// Calls `join_channel`.
    pub fn join_channel(
        &self,
        instance: FfiInstance,
        channel: &str,
        connection: ConnectionId,
    ) -> FfiHookResult {
        outcome((self.join_channel)(
            instance_pointer(instance),
            CAbiStr::new(channel),
            connection.0,
        ))
    }

    /// Calls `leave_channel`.
    pub fn leave_channel(
        &self,
        instance: FfiInstance,
        channel: &str,
        connection: ConnectionId,
    ) -> FfiHookResult {
        outcome((self.leave_channel)(
            instance_pointer(instance),
            CAbiStr::new(channel),
            connection.0,
        ))
    }

    /// Calls `stats` with the host's `record` function and its `sink`; `None` when the plugin
    /// has no such hook.
    pub fn stats(
        &self,
        instance: FfiInstance,
        record: CAbiStatFn,
        sink: *mut c_void,
    ) -> Option<FfiHookResult> {
        let stats = self.stats?;
        Some(outcome(stats(instance_pointer(instance), record, sink)))
    }

    /// Calls `disconnect`.
    pub fn disconnect(
        &self,
        instance: FfiInstance,
        connection: ConnectionId,
        reason: DisconnectReason,
        message: &str,
    ) -> FfiHookResult {
        outcome((self.disconnect)(
            instance_pointer(instance),
            connection.0,
            reason.0,
            CAbiStr::new(message),
        ))
    }
}
