//! One instance: its own tokio runtime, its listener, its registry, and the hooks' entry points.
//!
//! Hooks run on host threads that know nothing of this runtime (the host has another copy of
//! tokio): they only touch the registry and outboxes, which are runtime-agnostic, or spawn on
//! this instance's runtime through its handle.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use switchyard_plugin_kit::stream::Stream;
use tokio::net::TcpStream;

use switchyard_plugin_api::{
    Backend, BoxError, ConnectionId, DisconnectReason, Host, InitConfig, StatsSink,
};
use switchyard_plugin_kit::config::Section;
use switchyard_plugin_kit::gate::Refusal;
use switchyard_plugin_kit::instance::Instance;
use switchyard_plugin_kit::outbox::Pushed;
use switchyard_plugin_kit::partial::PartialBudget;
use switchyard_plugin_kit::pressure::Pressure;
use switchyard_plugin_kit::refusal::{self, Wait};
use switchyard_plugin_kit::server::{Listen, Service};
use switchyard_plugin_kit::stats::Counter;
use switchyard_plugin_kit::ws::frame::{self, close_code};

use crate::config::Settings;
use crate::connection;
use crate::registry::{self, Registry};
use crate::replies::ChannelFrames;

/// What every task of an instance shares.
pub struct Shared {
    /// Validated configuration.
    pub settings: Settings,
    /// The host.
    pub backend: Arc<dyn Backend>,
    /// Connections and channels.
    pub registry: Registry,
    /// Bytes queued in all of the instance's outboxes, reported to the host on crossings.
    pub pressure: Arc<Pressure>,
    /// Bytes of unfinished messages held by all connections (`maxTotalPartialBytes`).
    pub partial: Arc<PartialBudget>,
}

impl Shared {
    /// What an instance named `name` shares; its pressure is reported to `backend`.
    pub fn new(name: &str, settings: Settings, backend: Arc<dyn Backend>) -> Shared {
        let pressure = Pressure::reported_to(name, settings.flow.marks, &backend);
        let partial = PartialBudget::new(settings.max_total_partial_bytes);
        Shared {
            settings,
            backend,
            registry: Registry::default(),
            pressure: Arc::new(pressure),
            partial,
        }
    }
}

impl Service for Shared {
    type Settings = Settings;

    fn listen(settings: &Settings) -> Listen {
        Listen::new(
            "ws",
            settings.address,
            settings.port,
            settings.worker_threads,
        )
        .with_limits(settings.connections)
        .with_tls(settings.tls.clone())
    }

    fn new(name: &str, settings: Settings, backend: Arc<dyn Backend>) -> Shared {
        Shared::new(name, settings, backend)
    }

    fn serve(self: Arc<Self>, stream: Stream, peer: SocketAddr) -> impl Future<Output = ()> {
        connection::serve(self, stream, peer)
    }

    /// Refused before the handshake: HTTP 429 with Kuzzle's error body
    /// (`refusal::http_answer`), after reading the upgrade request.
    async fn refuse(self: Arc<Self>, stream: TcpStream, refusal: Refusal) {
        let answer = refusal::http_answer(refusal);
        refusal::answer(stream, &answer, Wait::HttpHead).await;
    }
}

switchyard_plugin_kit::server! {
    /// A running WebSocket listener.
    Server => Shared
}

impl Server {
    /// Bytes queued in all outboxes (tests, metrics).
    pub fn queued_bytes(&self) -> u64 {
        self.shared().pressure.queued_bytes()
    }

    /// Members of `channel` (tests, metrics).
    pub fn member_count(&self, channel: &str) -> usize {
        self.shared().registry.member_count(channel)
    }
}

impl Instance for Server {
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError> {
        let settings = Settings::from_init(&config)?;
        if let Some(warning) = &settings.idle_timeout_warning {
            tracing::warn!("{warning}");
        }
        Server::start(config.name, settings, Arc::new(host))
    }

    /// The `broadcast` hook.
    fn broadcast<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str) {
        let shared = self.shared();
        registry::broadcast(&shared.registry, &shared.pressure, channels, payload);
    }

    /// The `notify` hook: `payload` once per channel, to one connection.
    fn notify<'c>(&self, id: ConnectionId, channels: impl Iterator<Item = &'c str>, payload: &str) {
        let Some(connection) = self.shared().registry.get(id) else {
            return;
        };
        let mut delivered = 0;
        for channel in channels {
            let frame = ChannelFrames::new(payload, channel).get(connection.deflate);
            delivered += u64::from(connection.outbox.push(frame) == Pushed::Queued);
        }
        let counters = self.shared().pressure.counters();
        counters.add(Counter::Deliveries, delivered);
    }

    /// The `joinChannel` hook.
    fn join_channel(&self, channel: &str, id: ConnectionId) {
        self.shared().registry.join(channel, id);
    }

    /// The `leaveChannel` hook.
    fn leave_channel(&self, channel: &str, id: ConnectionId) {
        self.shared().registry.leave(channel, id);
    }

    /// The `disconnect` hook. A shutdown closes with 1001 (the Kuzzle SDK reconnects; it would
    /// not after 1000), anything else with 1011. Queued frames are written first. Shutdown closes
    /// are not delayed here: the host already spreads its `disconnect` calls over a window.
    fn disconnect(&self, id: ConnectionId, reason: DisconnectReason, message: &str) {
        if let Some(connection) = self.shared().registry.get(id) {
            let code = close_code::on_disconnect(reason, close_code::INTERNAL_ERROR);
            connection
                .outbox
                .close(frame::closing(code, message), false);
        }
    }

    /// The `stats` hook: the kit's counters, the queued bytes and the refused connections.
    fn stats(&self, sink: &mut StatsSink<'_>) {
        self.shared().pressure.report_stats(sink);
        self.gate().report_stats(sink);
    }
}
