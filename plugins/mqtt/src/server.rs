//! One instance: its broker and the hooks' entry points; the runtime, the listener and the accept
//! loop are the kit's (`switchyard_plugin_kit::server`).
//!
//! Hooks run on host threads that know nothing of the instance's runtime: they only touch the
//! broker's tables and outboxes, which are runtime-agnostic.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use switchyard_plugin_api::{
    Backend, BoxError, ConnectionId, DisconnectReason, Host, InitConfig, StatsSink,
};
use switchyard_plugin_kit::gate::Refusal;
use switchyard_plugin_kit::instance::Instance;
use switchyard_plugin_kit::outbox::Pushed;
use switchyard_plugin_kit::partial::PartialBudget;
use switchyard_plugin_kit::pressure::Pressure;
use switchyard_plugin_kit::refusal::{self, Wait};
use switchyard_plugin_kit::server::{Listen, Service};
use switchyard_plugin_kit::stats::Counter;
use switchyard_plugin_kit::stream::Stream;
use tokio::net::TcpStream;

use crate::broker::{Broker, Fanout};
use crate::config::Settings;
use crate::connection;
use crate::encode;

/// CONNACK, no session present, return code 3: "Connection Refused, Server unavailable"
/// (MQTT 3.1.1, 3.2.2.3).
pub const CONNACK_SERVER_UNAVAILABLE: [u8; 4] = [0x20, 0x02, 0x00, 0x03];

/// What every task of an instance shares.
pub struct Shared {
    /// Validated configuration.
    pub settings: Settings,
    /// The host.
    pub backend: Arc<dyn Backend>,
    /// Sessions, subscriptions, retained messages, live connections.
    pub broker: Broker,
    /// Bytes of unfinished packets held by all connections (`maxTotalPartialBytes`).
    pub partial: Arc<PartialBudget>,
}

impl Shared {
    /// What an instance named `name` shares; its pressure is reported to `backend`.
    pub fn new(name: &str, settings: Settings, backend: Arc<dyn Backend>) -> Shared {
        let pressure = Pressure::reported_to(name, settings.flow.marks, &backend);
        Shared {
            broker: Broker::new(
                settings.max_queued_messages,
                Arc::new(pressure),
                settings.retain_limits,
            )
            .with_max_inflight(settings.max_inflight_messages),
            partial: PartialBudget::new(settings.max_total_partial_bytes),
            settings,
            backend,
        }
    }

    /// The instance's queued bytes.
    pub fn pressure(&self) -> &Arc<Pressure> {
        self.broker.pressure()
    }
}

impl Service for Shared {
    type Settings = Settings;

    /// One runtime thread per core.
    fn listen(settings: &Settings) -> Listen {
        Listen::new("mqtt", settings.address, settings.port, 0)
            .with_limits(settings.connections)
            .with_tls(settings.tls.clone())
    }

    fn new(name: &str, settings: Settings, backend: Arc<dyn Backend>) -> Shared {
        Shared::new(name, settings, backend)
    }

    fn serve(self: Arc<Self>, stream: Stream, peer: SocketAddr) -> impl Future<Output = ()> {
        connection::serve(self, stream, peer)
    }

    /// Refused with MQTT 3.1.1's CONNACK return code 3, "server unavailable" (this broker
    /// speaks 3.1.1 only; a 5.0 client gets the same bytes), after reading the CONNECT.
    async fn refuse(self: Arc<Self>, stream: TcpStream, _refusal: Refusal) {
        refusal::answer(stream, &CONNACK_SERVER_UNAVAILABLE, Wait::FirstBytes).await;
    }
}

switchyard_plugin_kit::server! {
    /// A running MQTT listener.
    Server => Shared
}

impl Server {
    /// What the `broadcast` hook does: one QoS 0 PUBLISH per channel, on the channel's topic.
    pub fn fanout<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str) -> Fanout {
        self.shared().broker.broadcast(channels, payload)
    }

    /// Subscribers of a filter (tests, metrics).
    pub fn subscriber_count(&self, filter: &str) -> usize {
        self.shared().broker.subscriber_count(filter)
    }
}

impl Instance for Server {
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError> {
        Server::from_init(host, &config)
    }

    /// The `broadcast` hook: see `fanout`.
    fn broadcast<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str) {
        self.fanout(channels, payload);
    }

    /// The `notify` hook: `payload` on each channel's topic, to one client, subscribed or not
    /// (as Kuzzle's MQTT protocol does).
    fn notify<'c>(&self, id: ConnectionId, channels: impl Iterator<Item = &'c str>, payload: &str) {
        let Some(link) = self.shared().broker.link(id) else {
            return;
        };
        let mut delivered = 0;
        for channel in channels {
            let packet = encode::publish(channel, payload.as_bytes(), 0, false, false, None);
            delivered += u64::from(link.outbox.push(packet) == Pushed::Queued);
        }
        let counters = self.shared().pressure().counters();
        counters.add(Counter::Deliveries, delivered);
    }

    /// The `joinChannel` and `leaveChannel` hooks are no-ops, as in Kuzzle: the client
    /// subscribes to the channel's topic itself after reading `result.channel`.
    ///
    /// The `disconnect` hook: queued packets are written, then the socket is closed (MQTT
    /// 3.1.1 has no DISCONNECT from the server). The will is published unless the host is
    /// shutting down.
    fn disconnect(&self, id: ConnectionId, _reason: DisconnectReason, _message: &str) {
        if let Some(link) = self.shared().broker.link(id) {
            link.outbox.close(
                crate::outbox::Closing::silent("disconnected by the host"),
                false,
            );
        }
    }

    /// The `stats` hook: the kit's counters and the queued bytes.
    fn stats(&self, sink: &mut StatsSink<'_>) {
        self.shared().pressure().report_stats(sink);
        self.gate().report_stats(sink);
    }
}
