//! The scenarios: each starts the servers it compares, drives them with the same load from this
//! process (subscribers on one thread, the publisher on another), and returns a JSON record.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::target::{rss_bytes, Kind, Running};
use crate::wsclient::{encode_text, timestamp, WsClient};
use crate::Settings;

/// Subscribers whose every delivery is timed (the others only count).
const TIMED_SUBSCRIBERS: usize = 10;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn percentiles(histogram: &Histogram<u64>) -> Value {
    json!({
        "p50_us": histogram.value_at_quantile(0.50),
        "p99_us": histogram.value_at_quantile(0.99),
        "p999_us": histogram.value_at_quantile(0.999),
        "samples": histogram.len(),
    })
}

fn ratio(results: &[Value], key: &str) -> Value {
    let find = |kind: Kind| {
        results
            .iter()
            .find(|result| result["target"] == kind.name())
            .and_then(|result| result[key].as_f64())
    };
    match (find(Kind::Switchyard), find(Kind::Baseline)) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => {
            json!((ours / theirs * 100.0).round() / 100.0)
        }
        _ => Value::Null,
    }
}

/// Shared counters between the subscriber thread and the publisher.
struct Fanout {
    epoch: Instant,
    subscribers: usize,
    received: AtomicU64,
    ready: AtomicUsize,
    closed: AtomicUsize,
    measuring: AtomicBool,
    progress: Notify,
    latency: Mutex<Histogram<u64>>,
}

/// `ws-fanout`: one publisher, N subscribers on one channel.
pub fn ws_fanout(settings: &Settings) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = Running::start(kind)?;
        results.push(
            fanout_once(&server, settings)
                .with_context(|| format!("ws-fanout against {}", kind.name()))?,
        );
    }
    Ok(json!({
        "scenario": "ws-fanout",
        "parameters": {
            "subscribers": settings.subscribers,
            "payload_bytes": settings.payload,
            "window": settings.window,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
        },
        "results": results,
        "ratio_deliveries_per_second": ratio(&results, "deliveries_per_second"),
    }))
}

fn subscribe_request(kind: Kind) -> Option<&'static [u8]> {
    match kind {
        Kind::Switchyard => Some(
            br#"{"controller":"realtime","action":"subscribe","index":"bench","collection":"fanout","body":{},"requestId":"sub"}"#,
        ),
        Kind::Baseline => None,
    }
}

fn fanout_once(server: &Running, settings: &Settings) -> anyhow::Result<Value> {
    let address = server.address();
    let kind = server.kind();
    let shared = Arc::new(Fanout {
        epoch: Instant::now(),
        subscribers: settings.subscribers,
        received: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
        measuring: AtomicBool::new(false),
        progress: Notify::new(),
        latency: Mutex::new(Histogram::new(3).expect("a histogram")),
    });

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
    let outcome = runtime.block_on(publisher(&address, kind, settings, &shared));
    let (sent, measured_deliveries, measured_time) = outcome?;

    // Let what is in flight arrive, then count what never did.
    let expected = sent * settings.subscribers as u64;
    let drain_until = Instant::now() + Duration::from_secs(5);
    while shared.received.load(Ordering::Acquire) < expected
        && Instant::now() < drain_until
        && shared.closed.load(Ordering::Acquire) == 0
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let received = shared.received.load(Ordering::Acquire);
    let closed = shared.closed.load(Ordering::Acquire);
    drop(subscribers);

    let latency = shared.latency.lock().expect("not poisoned");
    Ok(json!({
        "target": kind.name(),
        "deliveries_per_second": (measured_deliveries as f64 / measured_time.as_secs_f64()).round(),
        "messages_published": sent,
        "deliveries": received,
        "lost": expected.saturating_sub(received),
        "subscribers_disconnected": closed,
        "latency": percentiles(&latency),
    }))
}

async fn subscriber(
    number: usize,
    address: &str,
    kind: Kind,
    shared: &Fanout,
) -> anyhow::Result<()> {
    let mut client = WsClient::connect(address).await?;
    if let Some(request) = subscribe_request(kind) {
        client.send_text(request).await?;
        client.wait_for("\"room\":\"sub\"").await?;
    }
    shared.ready.fetch_add(1, Ordering::AcqRel);
    let (mut reader, _writer) = client.split();
    let timed = number < TIMED_SUBSCRIBERS;
    let subscribers = shared.subscribers as u64;
    reader
        .read_frames(|frame| {
            if frame.opcode != 1 {
                return true;
            }
            let total = shared.received.fetch_add(1, Ordering::AcqRel) + 1;
            if total % subscribers == 0 {
                shared.progress.notify_one();
            }
            if timed && shared.measuring.load(Ordering::Relaxed) {
                if let Some(sent_at) =
                    timestamp(frame.payload).and_then(|ts| ts.checked_sub(TS_OFFSET))
                {
                    let now = shared.epoch.elapsed().as_nanos() as u64;
                    let micros = now.saturating_sub(sent_at) / 1000;
                    let _ = shared
                        .latency
                        .lock()
                        .expect("not poisoned")
                        .record(micros.max(1));
                }
            }
            true
        })
        .await?;
    shared.closed.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// Added to timestamps so they always have 19 digits (a fixed message size; JSON numbers cannot
/// have leading zeros).
const TS_OFFSET: u64 = 1_000_000_000_000_000_000;

fn message(kind: Kind, sent_at: u64, payload: usize) -> Vec<u8> {
    // `{"ts":<19 digits>,"pad":"…"}` padded to `payload` bytes.
    let fixed = r#"{"ts":1000000000000000000,"pad":""}"#.len();
    let pad = "x".repeat(payload.saturating_sub(fixed));
    let body = format!(r#"{{"ts":{},"pad":"{pad}"}}"#, TS_OFFSET + sent_at);
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

/// Publishes until the measured time is over; returns (messages sent, deliveries counted while
/// measuring, measured time).
async fn publisher(
    address: &str,
    kind: Kind,
    settings: &Settings,
    shared: &Fanout,
) -> anyhow::Result<(u64, u64, Duration)> {
    let ready_until = Instant::now() + Duration::from_secs(60);
    while shared.ready.load(Ordering::Acquire) < shared.subscribers {
        anyhow::ensure!(
            Instant::now() < ready_until,
            "subscribers did not all connect within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = WsClient::connect(address).await?;
    let (mut reader, mut writer) = client.split();
    // Publish responses come back to the publisher: read and drop them.
    tokio::spawn(async move { reader.read_frames(|_| true).await });

    let subscribers = shared.subscribers as u64;
    let measure_from = settings.warmup;
    let stop_at = settings.warmup + settings.seconds;
    let mut sent = 0u64;
    let mut measured_from: Option<(Instant, u64)> = None;
    loop {
        let elapsed = shared.epoch.elapsed();
        if elapsed >= stop_at {
            break;
        }
        if measured_from.is_none() && elapsed >= measure_from {
            measured_from = Some((Instant::now(), shared.received.load(Ordering::Acquire)));
            shared.measuring.store(true, Ordering::Release);
        }
        let delivered = shared.received.load(Ordering::Acquire) / subscribers;
        if sent - delivered.min(sent) < settings.window {
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
    let (started, base) = measured_from.unwrap_or((Instant::now(), 0));
    let deliveries = shared.received.load(Ordering::Acquire) - base;
    Ok((sent, deliveries, started.elapsed()))
}

/// `ws-rtt`: C connections each doing request/response round trips.
pub fn ws_rtt(settings: &Settings) -> anyhow::Result<Value> {
    let connections = if settings.connections == 0 {
        50
    } else {
        settings.connections
    };
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = Running::start(kind)?;
        let address = server.address();
        let result = runtime().block_on(async {
            let counted = Arc::new(AtomicU64::new(0));
            let measuring = Arc::new(AtomicBool::new(false));
            let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("a histogram")));
            let stop = Arc::new(AtomicBool::new(false));
            let mut tasks = Vec::new();
            for _ in 0..connections {
                let client = WsClient::connect(&address).await?;
                let (counted, measuring, latency, stop) =
                    (Arc::clone(&counted), Arc::clone(&measuring), Arc::clone(&latency), Arc::clone(&stop));
                tasks.push(tokio::spawn(async move {
                    let (mut reader, mut writer) = client.split();
                    let request: &[u8] = match kind {
                        Kind::Switchyard => br#"{"controller":"server","action":"now","requestId":"r"}"#,
                        Kind::Baseline => br#"{"echo":1}"#,
                    };
                    let mut frame = Vec::new();
                    encode_text(&mut frame, request);
                    while !stop.load(Ordering::Relaxed) {
                        let sent_at = Instant::now();
                        writer.send_raw(&frame).await?;
                        let mut answered = false;
                        reader.read_frames(|frame| {
                            answered = frame.opcode == 1;
                            !answered
                        }).await?;
                        anyhow::ensure!(answered, "connection closed");
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
            let started = Instant::now();
            tokio::time::sleep(settings.seconds).await;
            measuring.store(false, Ordering::Release);
            let elapsed = started.elapsed();
            stop.store(true, Ordering::Release);
            for task in tasks {
                task.await??;
            }
            let latency = latency.lock().expect("not poisoned");
            anyhow::Ok(json!({
                "target": kind.name(),
                "requests_per_second": (counted.load(Ordering::Acquire) as f64 / elapsed.as_secs_f64()).round(),
                "latency": percentiles(&latency),
            }))
        })?;
        results.push(result);
    }
    Ok(json!({
        "scenario": "ws-rtt",
        "parameters": {
            "connections": connections,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "request": "switchyard: server:now; baseline: echo",
        },
        "results": results,
        "ratio_requests_per_second": ratio(&results, "requests_per_second"),
    }))
}

/// `connections`: C idle WebSocket connections; the server's RSS growth per connection.
pub fn connections(settings: &Settings) -> anyhow::Result<Value> {
    let connections = if settings.connections == 0 {
        5000
    } else {
        settings.connections
    };
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = Running::start(kind)?;
        let address = server.address();
        let result = runtime().block_on(async {
            // One connection first, so lazily built state is not counted per connection.
            let mut first = WsClient::connect(&address).await?;
            round_trip(&mut first, kind).await?;
            let before = rss_bytes(server.pid()).context("read the server's RSS")?;
            let mut clients = Vec::with_capacity(connections);
            for _ in 0..connections {
                clients.push(WsClient::connect(&address).await?);
            }
            // A round trip on the last one: every connection before it is registered.
            if let Some(last) = clients.last_mut() {
                round_trip(last, kind).await?;
            }
            let after = rss_bytes(server.pid()).context("read the server's RSS")?;
            let per_connection = after.saturating_sub(before) as f64 / connections as f64;
            anyhow::Ok(json!({
                "target": kind.name(),
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
