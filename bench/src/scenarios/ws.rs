//! The WebSocket scenarios — `ws-fanout`, `ws-rtt`, `connections` — against the WebSocket plugin
//! and the bare tokio-tungstenite broadcast server. Fan-out: subscribers on one thread, the
//! publisher on another.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;

use super::{
    auth, burst, cpu_figures, histogram, percentiles, ratio, runtime, timed_body, TS_OFFSET,
};
use crate::target::{rss_bytes, Kind, Protocol, Running};
use crate::tls::{tls_vs_plain, Pki, TLS_TARGET};
use crate::wsclient::{encode_text, find, timestamp, WsClient};
use crate::Settings;

/// Subscribers whose every delivery is timed (the others only count).
pub(super) const TIMED_SUBSCRIBERS: usize = 10;

/// Shared counters between the subscriber thread and the publisher (every fan-out scenario
/// over WebSocket: `ws-fanout`, `socketio-fanout`).
pub(super) struct Fanout {
    pub(super) epoch: Instant,
    pub(super) subscribers: usize,
    /// Message body size (`--payload`).
    pub(super) payload: usize,
    pub(super) received: AtomicU64,
    pub(super) ready: AtomicUsize,
    pub(super) closed: AtomicUsize,
    pub(super) measuring: AtomicBool,
    pub(super) progress: Notify,
    pub(super) latency: Mutex<hdrhistogram::Histogram<u64>>,
    /// Deliveries per subscriber (burst mode's worst subscriber).
    pub(super) per_subscriber: Vec<AtomicU64>,
    /// Set for `ws-fanout --tls`'s second run: every client connects over `wss://`.
    pub(super) tls: Option<TlsConnector>,
}

impl Fanout {
    /// Counters for `subscribers` subscribers of `payload`-byte messages, the run's epoch now.
    pub(super) fn new(subscribers: usize, payload: usize) -> Fanout {
        Fanout {
            epoch: Instant::now(),
            subscribers,
            payload,
            received: AtomicU64::new(0),
            ready: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            measuring: AtomicBool::new(false),
            progress: Notify::new(),
            latency: histogram(),
            per_subscriber: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            tls: None,
        }
    }

    /// [`Fanout::delivered`] for subscriber `number`, counted as its own too.
    pub(super) fn delivered_to(&self, number: usize, payload: &[u8]) {
        self.per_subscriber[number].fetch_add(1, Ordering::Relaxed);
        self.delivered(number < TIMED_SUBSCRIBERS, payload);
    }

    /// Counts one delivery, waking the publisher when a message has reached every subscriber;
    /// for a timed subscriber while measuring, records the latency from the payload's `"ts"`.
    pub(super) fn delivered(&self, timed: bool, payload: &[u8]) {
        let total = self.received.fetch_add(1, Ordering::AcqRel) + 1;
        if total % self.subscribers as u64 == 0 {
            self.progress.notify_one();
        }
        if timed && self.measuring.load(Ordering::Relaxed) {
            if let Some(sent_at) = timestamp(payload).and_then(|ts| ts.checked_sub(TS_OFFSET)) {
                let now = self.epoch.elapsed().as_nanos() as u64;
                let micros = now.saturating_sub(sent_at) / 1000;
                let _ = self
                    .latency
                    .lock()
                    .expect("not poisoned")
                    .record(micros.max(1));
            }
        }
    }

    /// Waits (up to 5 s) for the deliveries of `sent` messages still in flight, unless a
    /// subscriber was cut off; returns the deliveries counted.
    pub(super) fn drain(&self, sent: u64) -> u64 {
        let expected = sent * self.subscribers as u64;
        let drain_until = Instant::now() + Duration::from_secs(5);
        while self.received.load(Ordering::Acquire) < expected
            && Instant::now() < drain_until
            && self.closed.load(Ordering::Acquire) == 0
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.received.load(Ordering::Acquire)
    }

    /// Lets what is in flight arrive, then makes the record of one run: deliveries per second
    /// over the measured window, and what never arrived.
    pub(super) fn record(
        &self,
        server: &Running,
        sent: u64,
        measured_deliveries: u64,
        measured_time: Duration,
        cpu: Value,
    ) -> Value {
        let expected = sent * self.subscribers as u64;
        let received = self.drain(sent);
        let latency = self.latency.lock().expect("not poisoned");
        json!({
            "target": server.name(),
            "deliveries_per_second": (measured_deliveries as f64 / measured_time.as_secs_f64()).round(),
            "server_cpu": cpu,
            "messages_published": sent,
            "deliveries": received,
            "lost": expected.saturating_sub(received),
            "subscribers_disconnected": self.closed.load(Ordering::Acquire),
            "latency": percentiles(&latency),
        })
    }
}

/// `ws-fanout`: one publisher, N subscribers on one channel.
pub fn ws_fanout(settings: &Settings) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = Running::start(kind, Protocol::WebSocket, None)?;
        results.push(
            fanout_once(&server, settings, None)
                .with_context(|| format!("ws-fanout against {}", server.name()))?,
        );
        if kind == Kind::Switchyard && settings.tls {
            // A second server whose section serves TLS; the same fan-out over `wss://`.
            let pki = Pki::generate()?;
            let secure =
                Running::start_switchyard(Protocol::WebSocket, &pki.ssl_section("websocket"))?;
            let mut record = fanout_once(&secure, settings, Some(pki.connector()?))
                .context("ws-fanout against switchyard over TLS")?;
            record["target"] = json!(TLS_TARGET);
            results.push(record);
        }
    }
    Ok(json!({
        "scenario": "ws-fanout",
        "parameters": {
            "subscribers": settings.subscribers,
            "payload_bytes": settings.payload,
            "window": window(settings),
            "burst": settings.burst,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "tls": settings.tls,
        },
        "ratio_deliveries_per_second": ratio(&results, "deliveries_per_second"),
        "ratio_tls_vs_plain": tls_vs_plain(&results, "deliveries_per_second"),
        "results": results,
    }))
}

/// Burst mode: writes `burst` publications back to back (64 frames a write), then waits for
/// their deliveries; the record is `burst::record`'s.
async fn publish_burst(server: &Running, burst: u64, shared: &Fanout) -> anyhow::Result<Value> {
    let (address, kind) = (server.address(), server.kind());
    wait_ready(shared).await?;
    let client = WsClient::connect_with(&address, "/", shared.tls.as_ref()).await?;
    let (mut reader, mut writer) = client.split();
    tokio::spawn(async move { reader.read_frames(|_| true).await });
    let memory = burst::MemoryProbe::start(server);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut frames = Vec::new();
    while sent < burst {
        frames.clear();
        let count = burst::PER_WRITE.min(burst - sent);
        let now = shared.epoch.elapsed().as_nanos() as u64;
        for _ in 0..count {
            frames.extend_from_slice(&message(kind, now, shared.payload));
        }
        writer.send_raw(&frames).await?;
        sent += count;
    }
    let expected = burst * shared.subscribers as u64;
    let last = burst::wait_delivered(
        expected,
        || shared.received.load(Ordering::Acquire),
        || shared.closed.load(Ordering::Acquire),
    )
    .await;
    let per_subscriber = burst::snapshot(&shared.per_subscriber);
    Ok(burst::record(
        server,
        burst,
        &per_subscriber,
        last.saturating_duration_since(started),
        memory,
        shared.closed.load(Ordering::Acquire),
    ))
}

/// Waits (up to 60 s) until every subscriber is ready.
async fn wait_ready(shared: &Fanout) -> anyhow::Result<()> {
    let ready_until = Instant::now() + Duration::from_secs(60);
    while shared.ready.load(Ordering::Acquire) < shared.subscribers {
        anyhow::ensure!(
            Instant::now() < ready_until,
            "subscribers did not all connect within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn subscribe_request(kind: Kind) -> Option<&'static [u8]> {
    match kind {
        Kind::Switchyard => Some(
            br#"{"controller":"realtime","action":"subscribe","index":"bench","collection":"fanout","body":{},"requestId":"sub"}"#,
        ),
        Kind::Baseline => None,
    }
}

fn fanout_once(
    server: &Running,
    settings: &Settings,
    tls: Option<TlsConnector>,
) -> anyhow::Result<Value> {
    let address = server.address();
    let kind = server.kind();
    let mut shared = Fanout::new(settings.subscribers, settings.payload);
    shared.tls = tls;
    let shared = Arc::new(shared);

    let subscribers = {
        let shared = Arc::clone(&shared);
        let address = address.clone();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let mut tasks = Vec::new();
                for number in 0..shared.subscribers {
                    let shared = Arc::clone(&shared);
                    let address = address.clone();
                    tasks.push(tokio::spawn(async move {
                        subscriber(number, &address, kind, &shared).await
                    }));
                }
                let mut errors = Vec::new();
                for task in tasks {
                    if let Ok(Err(error)) = task.await {
                        errors.push(error.to_string());
                    }
                }
                errors
            })
        })
    };

    let runtime = runtime();
    if let Some(burst) = settings.burst {
        let record = runtime.block_on(publish_burst(server, burst, &shared));
        drop(subscribers);
        return record;
    }
    let outcome = runtime.block_on(publisher(server, settings, &shared));
    let (sent, measured_deliveries, measured_time, cpu) = outcome?;

    let record = shared.record(server, sent, measured_deliveries, measured_time, cpu);
    drop(subscribers);
    Ok(record)
}

pub(super) async fn subscriber(
    number: usize,
    address: &str,
    kind: Kind,
    shared: &Fanout,
) -> anyhow::Result<()> {
    let mut client = WsClient::connect_with(address, "/", shared.tls.as_ref()).await?;
    if let Some(request) = subscribe_request(kind) {
        client.send_text(request).await?;
        client.wait_for("\"room\":\"sub\"").await?;
    }
    shared.ready.fetch_add(1, Ordering::AcqRel);
    let (mut reader, _writer) = client.split();
    reader
        .read_frames(|frame| {
            if frame.opcode == 1 {
                shared.delivered_to(number, frame.payload);
            }
            true
        })
        .await?;
    shared.closed.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

fn message(kind: Kind, sent_at: u64, payload: usize) -> Vec<u8> {
    let body = timed_body(sent_at, payload);
    let text = match kind {
        Kind::Switchyard => format!(
            r#"{{"controller":"realtime","action":"publish","index":"bench","collection":"fanout","requestId":"p","body":{body}}}"#
        ),
        Kind::Baseline => body,
    };
    let mut frame = Vec::with_capacity(text.len() + 14);
    encode_text(&mut frame, text.as_bytes());
    frame
}

/// Messages a publisher may have in flight ahead of the average subscriber (default 32).
fn window(settings: &Settings) -> u64 {
    settings.window.unwrap_or(32)
}

/// Publishes until the measured time is over; returns (messages sent, deliveries counted while
/// measuring, measured time, the server's CPU over it).
async fn publisher(
    server: &Running,
    settings: &Settings,
    shared: &Fanout,
) -> anyhow::Result<(u64, u64, Duration, Value)> {
    publish_windowed(
        &server.address(),
        server.kind(),
        &|| server.cpu_seconds(),
        settings,
        shared,
    )
    .await
}

/// [`publisher`] against the server at `address`, whose CPU seconds so far `cpu_seconds` reads
/// (the sum over several processes for `cluster-fanout`).
pub(super) async fn publish_windowed(
    address: &str,
    kind: Kind,
    cpu_seconds: &dyn Fn() -> Option<f64>,
    settings: &Settings,
    shared: &Fanout,
) -> anyhow::Result<(u64, u64, Duration, Value)> {
    let ready_until = Instant::now() + Duration::from_secs(60);
    while shared.ready.load(Ordering::Acquire) < shared.subscribers {
        anyhow::ensure!(
            Instant::now() < ready_until,
            "subscribers did not all connect within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = WsClient::connect_with(address, "/", shared.tls.as_ref()).await?;
    let (mut reader, mut writer) = client.split();
    // Publish responses come back to the publisher: read and drop them.
    tokio::spawn(async move { reader.read_frames(|_| true).await });

    let subscribers = shared.subscribers as u64;
    let measure_from = settings.warmup;
    let stop_at = settings.warmup + settings.seconds;
    let mut sent = 0u64;
    let mut measured_from: Option<(Instant, u64, Option<f64>)> = None;
    loop {
        let elapsed = shared.epoch.elapsed();
        if elapsed >= stop_at {
            break;
        }
        if measured_from.is_none() && elapsed >= measure_from {
            measured_from = Some((
                Instant::now(),
                shared.received.load(Ordering::Acquire),
                cpu_seconds(),
            ));
            shared.measuring.store(true, Ordering::Release);
        }
        let delivered = shared.received.load(Ordering::Acquire) / subscribers;
        if sent - delivered.min(sent) < window(settings) {
            let frame = message(
                kind,
                shared.epoch.elapsed().as_nanos() as u64,
                settings.payload,
            );
            writer.send_raw(&frame).await?;
            sent += 1;
        } else {
            // Wake when a message has reached every subscriber, or re-check shortly.
            let _ =
                tokio::time::timeout(Duration::from_millis(5), shared.progress.notified()).await;
        }
        anyhow::ensure!(
            shared.closed.load(Ordering::Acquire) == 0,
            "the server closed subscriber connections"
        );
    }
    shared.measuring.store(false, Ordering::Release);
    let (started, base, cpu_before) = measured_from.unwrap_or((Instant::now(), 0, None));
    let deliveries = shared.received.load(Ordering::Acquire) - base;
    let cpu = cpu_figures(cpu_before, cpu_seconds(), deliveries);
    Ok((sent, deliveries, started.elapsed(), cpu))
}

/// `ws-rtt`: C connections each doing request/response round trips. With `--auth`, switchyard
/// is measured twice in the same run: anonymous, then as a logged-in user sending its token
/// with every request (`auth.rs`), on the same server.
pub fn ws_rtt(settings: &Settings) -> anyhow::Result<Value> {
    let connections = if settings.connections == 0 {
        50
    } else {
        settings.connections
    };
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = Running::start(kind, Protocol::WebSocket, None)?;
        let address = server.address();
        let request = match kind {
            Kind::Switchyard => r#"{"controller":"server","action":"now","requestId":"r"}"#,
            Kind::Baseline => r#"{"echo":1}"#,
        };
        let result = runtime().block_on(measure_rtt(
            &server,
            &address,
            None,
            connections,
            settings,
            request,
            server.name(),
        ))?;
        results.push(result);
        if kind == Kind::Switchyard && settings.tls {
            // A second server whose section serves TLS; the same anonymous requests.
            let pki = Pki::generate()?;
            let secure =
                Running::start_switchyard(Protocol::WebSocket, &pki.ssl_section("websocket"))?;
            let connector = pki.connector()?;
            let result = runtime().block_on(measure_rtt(
                &secure,
                &secure.address(),
                Some(&connector),
                connections,
                settings,
                request,
                TLS_TARGET.to_string(),
            ))?;
            results.push(result);
        }
        if kind == Kind::Switchyard && settings.auth {
            let jwt = runtime().block_on(auth::user_token_ws(&address))?;
            let request = format!(
                r#"{{"controller":"server","action":"now","requestId":"r","jwt":"{jwt}"}}"#
            );
            let result = runtime().block_on(measure_rtt(
                &server,
                &address,
                None,
                connections,
                settings,
                &request,
                auth::USER_TARGET.to_string(),
            ))?;
            results.push(result);
        }
    }
    Ok(json!({
        "scenario": "ws-rtt",
        "parameters": {
            "connections": connections,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "auth": settings.auth,
            "tls": settings.tls,
            "request": "switchyard: server:now (with --auth, also as a logged-in user: jwt in each request; with --tls, also over wss:// on a second server); baseline: echo",
        },
        "ratio_requests_per_second": ratio(&results, "requests_per_second"),
        "ratio_user_vs_anonymous": auth::user_vs_anonymous(&results, "requests_per_second"),
        "ratio_tls_vs_plain": tls_vs_plain(&results, "requests_per_second"),
        "results": results,
    }))
}

/// C connections each sending `request` and awaiting its answer until the measured time is
/// over; the record is named `target`.
async fn measure_rtt(
    server: &Running,
    address: &str,
    tls: Option<&TlsConnector>,
    connections: usize,
    settings: &Settings,
    request: &str,
    target: String,
) -> anyhow::Result<Value> {
    let check_status = server.kind() == Kind::Switchyard;
    let counted = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let latency = Arc::new(histogram());
    let stop = Arc::new(AtomicBool::new(false));
    let mut frame = Vec::new();
    encode_text(&mut frame, request.as_bytes());
    let frame = Arc::new(frame);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = WsClient::connect_with(address, "/", tls).await?;
        let (counted, measuring, latency, stop, frame) = (
            Arc::clone(&counted),
            Arc::clone(&measuring),
            Arc::clone(&latency),
            Arc::clone(&stop),
            Arc::clone(&frame),
        );
        tasks.push(tokio::spawn(async move {
            let (mut reader, mut writer) = client.split();
            while !stop.load(Ordering::Relaxed) {
                let sent_at = Instant::now();
                writer.send_raw(&frame).await?;
                let mut answer = None;
                reader
                    .read_frames(|frame| {
                        if frame.opcode == 1 {
                            // The baseline echoes; switchyard must answer 200.
                            answer = Some(
                                !check_status || find(frame.payload, b"\"status\":200").is_some(),
                            );
                        }
                        answer.is_none()
                    })
                    .await?;
                match answer {
                    None => anyhow::bail!("connection closed"),
                    Some(false) => anyhow::bail!("an answer other than 200: the request failed"),
                    Some(true) => {}
                }
                if measuring.load(Ordering::Relaxed) {
                    counted.fetch_add(1, Ordering::Relaxed);
                    let micros = sent_at.elapsed().as_micros() as u64;
                    let _ = latency.lock().expect("not poisoned").record(micros.max(1));
                }
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(settings.warmup).await;
    measuring.store(true, Ordering::Release);
    let (started, cpu_before) = (Instant::now(), server.cpu_seconds());
    tokio::time::sleep(settings.seconds).await;
    measuring.store(false, Ordering::Release);
    let elapsed = started.elapsed();
    let cpu = cpu_figures(
        cpu_before,
        server.cpu_seconds(),
        counted.load(Ordering::Acquire),
    );
    stop.store(true, Ordering::Release);
    for task in tasks {
        task.await??;
    }
    let latency = latency.lock().expect("not poisoned");
    anyhow::Ok(json!({
        "target": target,
        "requests_per_second": (counted.load(Ordering::Acquire) as f64 / elapsed.as_secs_f64()).round(),
        "server_cpu": cpu,
        "latency": percentiles(&latency),
    }))
}

/// `connections`: C idle WebSocket connections; the server's RSS growth per connection (user
/// space only: the kernel's socket buffers are not in RSS). The baseline runs with a 4 KiB read
/// buffer per connection (see `Running::start_lean_ws_baseline`).
pub fn connections(settings: &Settings) -> anyhow::Result<Value> {
    let connections = if settings.connections == 0 {
        5000
    } else {
        settings.connections
    };
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = match kind {
            Kind::Switchyard => Running::start(kind, Protocol::WebSocket, None)?,
            Kind::Baseline => Running::start_lean_ws_baseline()?,
        };
        let address = server.address();
        let pid = server.pid().context("a server we started")?;
        let result = runtime().block_on(async {
            // One connection first, so lazily built state is not counted per connection.
            let mut first = WsClient::connect(&address).await?;
            round_trip(&mut first, kind).await?;
            let before = rss_bytes(pid).context("read the server's RSS")?;
            let mut clients = Vec::with_capacity(connections);
            for _ in 0..connections {
                clients.push(WsClient::connect(&address).await?);
            }
            // A round trip on the last one: every connection before it is registered.
            if let Some(last) = clients.last_mut() {
                round_trip(last, kind).await?;
            }
            let after = rss_bytes(pid).context("read the server's RSS")?;
            let per_connection = after.saturating_sub(before) as f64 / connections as f64;
            anyhow::Ok(json!({
                "target": server.name(),
                "rss_before_bytes": before,
                "rss_after_bytes": after,
                "bytes_per_connection": per_connection.round(),
            }))
        })?;
        results.push(result);
    }
    Ok(json!({
        "scenario": "connections",
        "parameters": { "connections": connections },
        "ratio_bytes_per_connection": ratio(&results, "bytes_per_connection"),
        "results": results,
    }))
}

async fn round_trip(client: &mut WsClient, kind: Kind) -> anyhow::Result<()> {
    match kind {
        Kind::Switchyard => {
            client
                .send_text(br#"{"controller":"server","action":"now","requestId":"probe"}"#)
                .await?;
            client.wait_for("\"room\":\"probe\"").await?;
        }
        Kind::Baseline => {
            client.send_text(br#"{"echo":"probe"}"#).await?;
            client.wait_for("probe").await?;
        }
    }
    Ok(())
}
