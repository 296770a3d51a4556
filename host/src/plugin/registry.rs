//! The loaded protocols and the one place the host calls their hooks.
//!
//! Every hook call goes through `ProtocolSlot`, which logs a failed or panicking hook with the
//! protocol's and plugin's names and counts panics. A protocol that keeps panicking is
//! disabled: the host stops calling it (see README, "When a plugin misbehaves").
//! `Protocols` is the list of every enabled protocol; `broadcast` fans a notification out to
//! all of them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use abi_stable::std_types::{RErr, RStr};
use parking_lot::Mutex;
use switchyard_plugin_api::abi::{FfiHookResult, FfiInstance, StatId};
use switchyard_plugin_api::{ConnectionId, DisconnectReason};

use super::host_api::{c_stats_sink, rust_stats_sink};
use super::loader::{LoadedLibrary, PluginModule};

/// The figures a protocol reports through its `stats` hook (ABI 1.2), as `(id, name)`: the name
/// is the key in `server:info`'s `protocols.<name>.stats`.
pub const STATS: [(StatId, &str); 9] = [
    (StatId::CLOSED_SLOW_CONSUMER, "slowConsumersClosed"),
    (StatId::CLOSED_IDLE, "idleClosed"),
    (StatId::CLOSED_RATE_LIMIT, "rateLimitClosed"),
    (StatId::CLOSED_ERROR, "errorClosed"),
    (StatId::DELIVERIES, "deliveries"),
    (StatId::BYTES_IN, "bytesIn"),
    (StatId::BYTES_OUT, "bytesOut"),
    (StatId::QUEUED_BYTES, "queuedBytes"),
    (StatId::CONNECTIONS_REFUSED, "connectionsRefused"),
];

/// What one `stats` call reported, by [`STATS`] position; `None`: not reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolStats {
    values: [Option<u64>; STATS.len()],
}

impl ProtocolStats {
    /// Records one figure; ids this host does not know are ignored (a newer plugin).
    pub fn record(&mut self, stat: StatId, value: u64) {
        if let Some(slot) = STATS.iter().position(|(id, _)| *id == stat) {
            self.values[slot] = Some(value);
        }
    }

    /// The value reported for `stat`, if any.
    pub fn get(&self, stat: StatId) -> Option<u64> {
        let slot = STATS.iter().position(|(id, _)| *id == stat)?;
        self.values[slot]
    }

    /// Every reported figure with its `server:info` name, in [`STATS`] order.
    pub fn reported(&self) -> impl Iterator<Item = (StatId, &'static str, u64)> + '_ {
        STATS
            .iter()
            .zip(self.values)
            .filter_map(|((id, name), value)| Some((*id, *name, value?)))
    }
}

/// One enabled protocol: a library plus the instance its `init` returned.
pub struct ProtocolSlot {
    /// Position in the host's protocol list; the host API's token for this protocol.
    pub index: usize,
    /// The config section's name.
    pub name: String,
    /// The library file.
    pub path: PathBuf,
    /// The checked root module.
    pub library: LoadedLibrary,
    /// Set once `init` succeeded; hooks are not called before.
    instance: OnceLock<FfiInstance>,
    /// What the plugin announced with `announce_listener`.
    listeners: Mutex<Vec<String>>,
    /// Panics caught in this protocol's hooks so far.
    panics: AtomicU32,
    /// Set when `panics` reached `panic_limit`: no hook is called any more.
    disabled: AtomicBool,
    /// `server.hookPanicLimit` (0: never disable).
    panic_limit: u32,
}

impl std::fmt::Debug for ProtocolSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolSlot")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ProtocolSlot {
    /// A protocol whose library is loaded but whose `init` has not run yet.
    pub fn new(
        index: usize,
        name: String,
        path: PathBuf,
        library: LoadedLibrary,
        panic_limit: u32,
    ) -> Self {
        ProtocolSlot {
            index,
            name,
            path,
            library,
            instance: OnceLock::new(),
            listeners: Mutex::new(Vec::new()),
            panics: AtomicU32::new(0),
            disabled: AtomicBool::new(false),
            panic_limit,
        }
    }

    /// Records the instance `init` returned: from now on hooks are called.
    pub fn set_instance(&self, instance: FfiInstance) {
        let _ = self.instance.set(instance);
    }

    /// Records a listener address the plugin announced.
    pub fn add_listener(&self, address: String) {
        self.listeners.lock().push(address);
    }

    /// The listener addresses announced so far.
    pub fn listeners(&self) -> Vec<String> {
        self.listeners.lock().clone()
    }

    /// Panics caught in this protocol's hooks so far.
    pub fn panics(&self) -> u32 {
        self.panics.load(Ordering::Relaxed)
    }

    /// True when the protocol was disabled after too many panics.
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    fn instance(&self) -> Option<FfiInstance> {
        if self.is_disabled() {
            return None;
        }
        self.instance.get().copied()
    }

    /// Delivers a notification to this protocol's members of `channels`.
    pub fn broadcast(&self, channels: &[RStr<'_>], payload: &str) {
        if let Some(instance) = self.instance() {
            let result = match self.library.module {
                PluginModule::Rust(hooks) => {
                    (hooks.broadcast)(instance, channels.into(), RStr::from_str(payload))
                }
                PluginModule::C(module) => module.broadcast(instance, channels, payload),
            };
            self.check("broadcast", result);
        }
    }

    /// Delivers a notification to one connection.
    pub fn notify(&self, connection: ConnectionId, channels: &[RStr<'_>], payload: &str) {
        super::notifications::record();
        if let Some(instance) = self.instance() {
            let result = match self.library.module {
                PluginModule::Rust(hooks) => (hooks.notify)(
                    instance,
                    connection,
                    channels.into(),
                    RStr::from_str(payload),
                ),
                PluginModule::C(module) => module.notify(instance, connection, channels, payload),
            };
            self.check("notify", result);
        }
    }

    /// Adds a connection to a channel.
    pub fn join_channel(&self, channel: &str, connection: ConnectionId) {
        if let Some(instance) = self.instance() {
            let result = match self.library.module {
                PluginModule::Rust(hooks) => {
                    (hooks.join_channel)(instance, RStr::from_str(channel), connection)
                }
                PluginModule::C(module) => module.join_channel(instance, channel, connection),
            };
            self.check("joinChannel", result);
        }
    }

    /// Removes a connection from a channel.
    pub fn leave_channel(&self, channel: &str, connection: ConnectionId) {
        if let Some(instance) = self.instance() {
            let result = match self.library.module {
                PluginModule::Rust(hooks) => {
                    (hooks.leave_channel)(instance, RStr::from_str(channel), connection)
                }
                PluginModule::C(module) => module.leave_channel(instance, channel, connection),
            };
            self.check("leaveChannel", result);
        }
    }

    /// Asks the protocol to close a connection.
    pub fn disconnect(&self, connection: ConnectionId, reason: DisconnectReason, message: &str) {
        if let Some(instance) = self.instance() {
            let result = match self.library.module {
                PluginModule::Rust(hooks) => {
                    (hooks.disconnect)(instance, connection, reason, RStr::from_str(message))
                }
                PluginModule::C(module) => module.disconnect(instance, connection, reason, message),
            };
            self.check("disconnect", result);
        }
    }

    /// Asks the protocol for its counters (ABI 1.2's `stats`): `None` when its plugin predates
    /// the hook (or leaves it out), is disabled, or the hook failed.
    pub fn stats(&self) -> Option<ProtocolStats> {
        let instance = self.instance()?;
        let mut stats = ProtocolStats::default();
        let result = match self.library.module {
            PluginModule::Rust(hooks) => (hooks.stats?)(instance, rust_stats_sink(&mut stats)),
            PluginModule::C(module) => {
                let (record, sink) = c_stats_sink(&mut stats);
                module.stats(instance, record, sink)?
            }
        };
        let failed = matches!(result, RErr(_));
        self.check("stats", result);
        (!failed).then_some(stats)
    }

    fn check(&self, hook: &'static str, result: FfiHookResult) {
        let RErr(error) = result else { return };
        if !error.panicked {
            tracing::warn!(
                protocol = self.name.as_str(),
                plugin = self.library.plugin_name,
                hook,
                "hook failed: {}",
                error.message
            );
            return;
        }
        let panics = self.panics.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            protocol = self.name.as_str(),
            plugin = self.library.plugin_name,
            hook,
            panics,
            "hook {}",
            error.message
        );
        if self.panic_limit != 0
            && panics >= self.panic_limit
            && !self.disabled.swap(true, Ordering::Relaxed)
        {
            tracing::error!(
                protocol = self.name.as_str(),
                plugin = self.library.plugin_name,
                "protocol disabled after {panics} panics (server.hookPanicLimit): its hooks are no longer called"
            );
        }
    }
}

/// Every enabled protocol, in configuration order; set once, before any `init` runs.
#[derive(Debug, Default)]
pub struct Protocols {
    list: OnceLock<Box<[Arc<ProtocolSlot>]>>,
}

impl Protocols {
    /// An empty list, to be set once with [`Protocols::set`].
    pub fn new() -> Protocols {
        Protocols::default()
    }

    /// Sets the list (once; later calls are ignored).
    pub fn set(&self, protocols: Vec<Arc<ProtocolSlot>>) {
        let _ = self.list.set(protocols.into_boxed_slice());
    }

    /// Every protocol, in configuration order.
    pub fn all(&self) -> &[Arc<ProtocolSlot>] {
        self.list.get().map(|list| &list[..]).unwrap_or(&[])
    }

    /// Protocol number `index`.
    pub fn get(&self, index: usize) -> Option<&ProtocolSlot> {
        self.all().get(index).map(|slot| &**slot)
    }

    /// The name of protocol number `index` (`""` when there is none).
    pub fn name(&self, index: usize) -> &str {
        self.get(index)
            .map_or("", |protocol| protocol.name.as_str())
    }

    /// Hands a notification to every protocol: each delivers to its own members of `channels`.
    pub fn broadcast<S: AsRef<str>>(&self, channels: &[S], payload: &str) {
        super::notifications::record();
        // A few channels per notification: on the stack, not in a `Vec`.
        const INLINE: usize = 8;
        if channels.len() <= INLINE {
            let mut borrowed = [RStr::from_str(""); INLINE];
            for (slot, channel) in borrowed.iter_mut().zip(channels) {
                *slot = RStr::from_str(channel.as_ref());
            }
            self.broadcast_borrowed(&borrowed[..channels.len()], payload);
        } else {
            let borrowed: Vec<RStr<'_>> = channels
                .iter()
                .map(|channel| RStr::from_str(channel.as_ref()))
                .collect();
            self.broadcast_borrowed(&borrowed, payload);
        }
    }

    fn broadcast_borrowed(&self, channels: &[RStr<'_>], payload: &str) {
        for protocol in self.all() {
            protocol.broadcast(channels, payload);
        }
    }
}
