//! One instance: its HTTP/1.1 connections (hyper, with upgrades), its registry, each session's
//! driver (pings, timeouts, the one clean-up), and the hooks. The runtime, the listener and the
//! accept loop are the kit's (`switchyard_plugin_kit::server`).
//!
//! Hooks run on host threads that know nothing of the instance's runtime: they only touch the
//! registry and session queues, which are runtime-agnostic.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchyard_plugin_api::sdk::Backend;
use switchyard_plugin_api::{
    BoxError, ConnectionId, DisconnectReason, Host, InitConfig, StatsSink,
};
use switchyard_plugin_kit::gate::Refusal;
use switchyard_plugin_kit::instance::Instance;
use switchyard_plugin_kit::partial::PartialBudget;
use switchyard_plugin_kit::pressure::Pressure;
use switchyard_plugin_kit::refusal::{self, Wait};
use switchyard_plugin_kit::server::{Listen, Service};
use switchyard_plugin_kit::stats::Counter;
use switchyard_plugin_kit::stream::Stream;
use switchyard_plugin_kit::ws::frame::close_code;
use tokio::net::TcpStream;
use tracing::debug;

use crate::config::Settings;
use crate::engine::{self, OpenInfo};
use crate::http;
use crate::packets;
use crate::registry::Registry;
use crate::session::{Client, Session, Transport};

/// How long a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What every task of an instance shares.
pub struct Shared {
    /// Validated configuration.
    pub settings: Settings,
    /// The host.
    pub backend: Arc<dyn Backend>,
    /// Sessions, connections and channels.
    pub registry: Registry,
    /// Bytes queued in all sessions, reported to the host on crossings.
    pub pressure: Arc<Pressure>,
    /// Bytes of unfinished POST bodies and WebSocket messages (`maxTotalPartialBytes`).
    pub partial: Arc<PartialBudget>,
}

impl Shared {
    /// Creates a session (its open packet queued), registers it and starts its driver. Must run
    /// on this instance's runtime.
    pub fn new_session(self: &Arc<Self>, client: Client, transport: Transport) -> Arc<Session> {
        let session = Arc::new(Session::new(
            random_id(),
            random_id(),
            client,
            transport,
            &self.settings.flow,
            self.pressure.clone(),
        ));
        let open = engine::open_packet(&OpenInfo {
            sid: &session.sid,
            upgrade_to_websocket: transport == Transport::Polling,
            ping_interval_ms: millis(self.settings.ping_interval),
            ping_timeout_ms: millis(self.settings.ping_timeout),
            max_payload: self.settings.max_request_size as u64,
        });
        session.push(packets::engine(&open));
        self.registry.insert_session(session.clone());
        tokio::spawn(drive(self.clone(), session.clone()));
        session
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// 15 random bytes, URL-safe base64 (20 characters), as npm `base64id` makes session ids.
fn random_id() -> String {
    let mut bytes = [0u8; 15];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A session's life after its handshake: a ping every `pingInterval`, closed when a ping is
/// not answered within `pingTimeout` or when no namespace was joined by `connectTimeout`
/// (checked at each ping); then the one clean-up, which calls `remove_connection` at most once.
async fn drive(shared: Arc<Shared>, session: Arc<Session>) {
    let started = Instant::now();
    let settings = &shared.settings;
    loop {
        tokio::select! {
            () = session.driver_wait() => {}
            () = tokio::time::sleep(settings.ping_interval) => {}
        }
        if session.is_closing() {
            break;
        }
        let connected = session.memberships.connection().is_some();
        if !connected && started.elapsed() >= settings.connect_timeout {
            debug!(sid = %session.sid, "no namespace joined in time: closing");
            session.close(close_code::NORMAL, false);
            break;
        }
        session.ping_sent();
        session.push(packets::ping());
        tokio::select! {
            () = session.driver_wait() => {}
            () = tokio::time::sleep(settings.ping_timeout) => {}
        }
        if session.is_closing() {
            break;
        }
        if session.awaiting_pong() {
            debug!(sid = %session.sid, "ping timeout: closing");
            session.close(close_code::NORMAL, true);
            break;
        }
    }
    shared.registry.remove_session(&session.sid);
    if let Some(id) = shared.registry.detach(&session) {
        shared.backend.remove_connection(id);
    }
}

impl Service for Shared {
    type Settings = Settings;

    /// Engine.IO starts over plain HTTP (long-polling); clients upgrade from there. One runtime
    /// thread per core.
    fn listen(settings: &Settings) -> Listen {
        Listen::new("http", settings.address, settings.port, 0)
            .with_limits(settings.connections)
            .with_tls(settings.tls.clone())
    }

    /// Its pressure is reported to `backend`.
    fn new(name: &str, settings: Settings, backend: Arc<dyn Backend>) -> Shared {
        let pressure = Pressure::reported_to(name, settings.flow.marks, &backend);
        Shared {
            partial: PartialBudget::new(settings.max_total_partial_bytes),
            settings,
            backend,
            registry: Registry::default(),
            pressure: Arc::new(pressure),
        }
    }

    fn serve(self: Arc<Self>, stream: Stream, peer: SocketAddr) -> impl Future<Output = ()> {
        serve_http(self, stream, peer)
    }

    /// Refused on its first request (a polling handshake, a POST or a WebSocket upgrade): HTTP
    /// 429 with Kuzzle's error body (`refusal::http_answer`), after reading the request's head.
    async fn refuse(self: Arc<Self>, stream: TcpStream, refusal: Refusal) {
        let answer = refusal::http_answer(refusal);
        refusal::answer(stream, &answer, Wait::HttpHead).await;
    }
}

switchyard_plugin_kit::server! {
    /// A running Socket.io listener.
    Server => Shared
}

impl Server {
    /// Live sessions (tests, metrics).
    pub fn session_count(&self) -> usize {
        self.shared().registry.session_count()
    }

    /// Members of `channel` (tests, metrics).
    pub fn member_count(&self, channel: &str) -> usize {
        self.shared().registry.member_count(channel)
    }
}

impl Instance for Server {
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError> {
        Server::from_init(host, &config)
    }

    /// The `broadcast` hook.
    fn broadcast<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str) {
        let shared = self.shared();
        shared
            .registry
            .broadcast(&shared.pressure, channels, payload);
    }

    /// The `notify` hook: `payload` once per channel, to one connection.
    fn notify<'c>(&self, id: ConnectionId, channels: impl Iterator<Item = &'c str>, payload: &str) {
        if let Some(session) = self.shared().registry.connection(id) {
            let mut delivered = 0;
            for channel in channels {
                delivered += u64::from(session.push(packets::event(channel, payload)));
            }
            session.counters().add(Counter::Deliveries, delivered);
        }
    }

    /// The `joinChannel` hook.
    fn join_channel(&self, channel: &str, id: ConnectionId) {
        self.shared().registry.join(channel, id);
    }

    /// The `leaveChannel` hook.
    fn leave_channel(&self, channel: &str, id: ConnectionId) {
        self.shared().registry.leave(channel, id);
    }

    /// The `disconnect` hook: the session closes after what is queued (WebSocket: 1001 on
    /// shutdown, 1000 otherwise; polling: a close packet). socket.io-client reconnects.
    fn disconnect(&self, id: ConnectionId, reason: DisconnectReason, _message: &str) {
        if let Some(session) = self.shared().registry.connection(id) {
            session.close(close_code::on_disconnect(reason, close_code::NORMAL), false);
        }
    }

    /// The `stats` hook: the kit's counters and the queued bytes.
    fn stats(&self, sink: &mut StatsSink<'_>) {
        self.shared().pressure.report_stats(sink);
        self.gate().report_stats(sink);
    }
}

/// Serves one HTTP/1.1 connection: polling requests, and the upgrade to WebSocket.
async fn serve_http(shared: Arc<Shared>, stream: Stream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| http::handle(shared.clone(), peer, request));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        debug!(peer = %peer, error = %error, "HTTP connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_and_url_safe() {
        let a = random_id();
        assert_eq!(a.len(), 20);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, random_id());
    }
}
