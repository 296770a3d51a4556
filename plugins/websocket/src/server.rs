//! One instance: its own tokio runtime, its listener, its registry, and the hooks' entry points.
//!
//! Hooks run on host threads that know nothing of this runtime (the host has another copy of
//! tokio): they only touch the registry and outboxes, which are runtime-agnostic, or spawn on
//! this instance's runtime through its handle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_plugin_api::runtime::InstanceRuntime;
use switchyard_plugin_api::{BoxError, ConnectionId};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::config::Settings;
use crate::connection;
use crate::frame::close_code;
use crate::registry::Registry;
use crate::replies::ChannelFrames;
use switchyard_plugin_api::Backend;

/// What every task of an instance shares.
pub struct Shared {
    /// Validated configuration.
    pub settings: Settings,
    /// The host.
    pub backend: Arc<dyn Backend>,
    /// Connections and channels.
    pub registry: Registry,
}

/// A running WebSocket listener.
pub struct Server {
    shared: Arc<Shared>,
    /// The instance's own runtime; dropping the server stops it.
    _runtime: InstanceRuntime,
    /// The address actually bound (the real port when 0 was asked).
    local_address: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_address", &self.local_address)
            .finish_non_exhaustive()
    }
}

/// Creates the listening socket. The one place a listener is made: a later host version will hand
/// plugins pre-opened sockets, and only this function will change.
pub fn bind_listener(name: &str, settings: &Settings) -> Result<std::net::TcpListener, BoxError> {
    switchyard_plugin_api::net::bind_listener(name, settings.address, settings.port)
}

/// The URL clients on this machine can use: an unspecified bind address is reached on loopback.
pub fn announced_url(bound: SocketAddr) -> String {
    switchyard_plugin_api::net::announced_url("ws", bound)
}

impl Server {
    /// Binds the listener and starts serving. Fails if the port cannot be bound.
    pub fn start(
        name: &str,
        settings: Settings,
        backend: Arc<dyn Backend>,
    ) -> Result<Server, BoxError> {
        let listener = bind_listener(name, &settings)?;
        let local_address = listener.local_addr()?;
        let runtime = InstanceRuntime::start(name, "ws", settings.worker_threads, &backend)?;
        let listener = {
            let _context = runtime.handle().enter();
            TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared {
            settings,
            backend,
            registry: Registry::default(),
        });
        runtime
            .handle()
            .spawn(accept_loop(listener, shared.clone()));
        shared
            .backend
            .announce_listener(&announced_url(local_address));
        Ok(Server {
            shared,
            _runtime: runtime,
            local_address,
        })
    }

    /// The bound address.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// The `broadcast` hook.
    pub fn broadcast<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str) {
        self.shared.registry.broadcast(channels, payload);
    }

    /// The `notify` hook: `payload` once per channel, to one connection.
    pub fn notify<'c>(
        &self,
        id: ConnectionId,
        channels: impl Iterator<Item = &'c str>,
        payload: &str,
    ) {
        let Some(connection) = self.shared.registry.get(id) else {
            return;
        };
        for channel in channels {
            let frame = ChannelFrames::new(payload, channel).get(connection.deflate);
            connection.outbox.push(frame);
        }
    }

    /// The `joinChannel` hook.
    pub fn join_channel(&self, channel: &str, id: ConnectionId) {
        self.shared.registry.join(channel, id);
    }

    /// The `leaveChannel` hook.
    pub fn leave_channel(&self, channel: &str, id: ConnectionId) {
        self.shared.registry.leave(channel, id);
    }

    /// The `disconnect` hook. A shutdown closes with 1001 (the Kuzzle SDK reconnects; it would
    /// not after 1000), anything else with 1011. Queued frames are written first. Shutdown closes
    /// are not delayed here: the host already spreads its `disconnect` calls over a window.
    pub fn disconnect(&self, id: ConnectionId, shutdown: bool, message: &str) {
        if let Some(connection) = self.shared.registry.get(id) {
            let code = if shutdown {
                close_code::GOING_AWAY
            } else {
                close_code::INTERNAL_ERROR
            };
            connection.outbox.close(code, message, false);
        }
    }

    /// Members of `channel` (tests, metrics).
    pub fn member_count(&self, channel: &str) -> usize {
        self.shared.registry.member_count(channel)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if shared.backend.is_shutting_down() {
                    debug!(peer = %peer, "refused: shutting down");
                    continue;
                }
                tokio::spawn(connection::serve(shared.clone(), stream, peer));
            }
            Err(error) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                warn!(error = %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
