//! One instance: its own tokio runtime, its listener, its broker, and the hooks' entry points.
//!
//! Hooks run on host threads that know nothing of this runtime (the host has another copy of
//! tokio): they only touch the broker's tables and outboxes, which are runtime-agnostic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_plugin_api::runtime::InstanceRuntime;
use switchyard_plugin_api::{BoxError, ConnectionId};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::broker::{Broker, Fanout};
use crate::config::Settings;
use crate::connection;
use crate::encode;
use switchyard_plugin_api::Backend;

/// What every task of an instance shares.
pub struct Shared {
    /// Validated configuration.
    pub settings: Settings,
    /// The host.
    pub backend: Arc<dyn Backend>,
    /// Sessions, subscriptions, retained messages, live connections.
    pub broker: Broker,
}

/// A running MQTT listener.
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
    switchyard_plugin_api::net::announced_url("mqtt", bound)
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
        let runtime = InstanceRuntime::start(name, "mqtt", 0, &backend)?;
        let listener = {
            let _context = runtime.handle().enter();
            TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared {
            broker: Broker::new(settings.max_queued_messages),
            settings,
            backend,
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

    /// The `broadcast` hook: one QoS 0 PUBLISH per channel, on the channel's topic.
    pub fn broadcast<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str) -> Fanout {
        self.shared.broker.broadcast(channels, payload)
    }

    /// The `notify` hook: `payload` on each channel's topic, to one client, subscribed or not
    /// (as Kuzzle's MQTT protocol does).
    pub fn notify<'c>(
        &self,
        id: ConnectionId,
        channels: impl Iterator<Item = &'c str>,
        payload: &str,
    ) {
        let Some(link) = self.shared.broker.link(id) else {
            return;
        };
        for channel in channels {
            let packet = encode::publish(channel, payload.as_bytes(), 0, false, false, None);
            link.outbox.push(packet);
        }
    }

    /// The `disconnect` hook: queued packets are written, then the socket is closed (MQTT
    /// 3.1.1 has no DISCONNECT from the server). The will is published unless the host is
    /// shutting down.
    pub fn disconnect(&self, id: ConnectionId) {
        if let Some(link) = self.shared.broker.link(id) {
            link.outbox.close("disconnected by the host", false);
        }
    }

    /// Subscribers of a filter (tests, metrics).
    pub fn subscriber_count(&self, filter: &str) -> usize {
        self.shared.broker.subscriber_count(filter)
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
