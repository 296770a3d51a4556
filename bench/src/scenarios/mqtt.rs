//! `mqtt-fanout`: one publisher, N subscribers on one topic, QoS 0, against the MQTT plugin in
//! the real host (`allowPubSub = true`) and mosquitto (or `--broker HOST:PORT`), with the same
//! load generator and the same bytes on the wire: subscribers on one thread, the publisher on
//! another, raw MQTT (`mqttclient.rs`).
//!
//! `--via topics` (default): everybody uses the plain topic `bench/fanout` — the broker path.
//! `--via kuzzle` (switchyard only; a baseline broker still gets `topics`): each subscriber sends
//! `realtime:subscribe` on `Kuzzle/request` and subscribes to the channel it is given; the
//! publisher sends `realtime:publish` requests, so every message goes through the host's API
//! and realtime engine and arrives as a Kuzzle notification.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{burst, cpu_figures, histogram, percentiles, ratio, runtime, timed_body, TS_OFFSET};
use crate::mqttclient::{encode_publish, MqttClient};
use crate::target::{Kind, Protocol, Running};
use crate::wsclient::timestamp;
use crate::{Settings, Via};

/// The plain topic of `--via topics`.
const TOPIC: &str = "bench/fanout";
/// Kuzzle's default request topic.
pub(crate) const REQUEST_TOPIC: &str = "Kuzzle/request";
/// Kuzzle's default response topic.
pub(crate) const RESPONSE_TOPIC: &str = "Kuzzle/response";
/// Subscribers whose every delivery is timed (the others only count).
const TIMED_SUBSCRIBERS: usize = 10;

/// Shared by the subscriber thread and the publisher.
struct Fanout {
    epoch: Instant,
    subscribers: u64,
    received: AtomicU64,
    ready: AtomicUsize,
    closed: AtomicUsize,
    measuring: AtomicBool,
    /// Set while the publisher waits for the window to open.
    publisher_waiting: AtomicBool,
    wake: Notify,
    latency: Mutex<hdrhistogram::Histogram<u64>>,
    /// Deliveries per subscriber (burst mode's worst subscriber).
    per_subscriber: Vec<AtomicU64>,
}

/// `mqtt-fanout`.
pub fn mqtt_fanout(settings: &Settings) -> anyhow::Result<Value> {
    let via = settings.via.unwrap_or(Via::Topics);
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = Running::start(kind, Protocol::Mqtt, settings.broker.as_deref())?;
        let via = if kind == Kind::Switchyard {
            via
        } else {
            Via::Topics
        };
        results.push(
            fanout_once(&server, via, settings)
                .with_context(|| format!("mqtt-fanout against {}", server.name()))?,
        );
    }
    Ok(json!({
        "scenario": "mqtt-fanout",
        "parameters": {
            "subscribers": settings.subscribers,
            "payload_bytes": settings.payload,
            "window": window(settings),
            "per_write": per_write(settings),
            "burst": settings.burst,
            "qos": 0,
            "via": via.name(),
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
        },
        "results": results,
        "ratio_deliveries_per_second": ratio(&results, "deliveries_per_second"),
    }))
}

/// Messages the publisher may have ahead of the average subscriber (default 64).
fn window(settings: &Settings) -> u64 {
    settings.window.unwrap_or(64)
}

/// Messages per publisher write (default 16, at most the window).
fn per_write(settings: &Settings) -> u64 {
    settings
        .per_write
        .unwrap_or(16)
        .clamp(1, window(settings).max(1))
}

fn fanout_once(server: &Running, via: Via, settings: &Settings) -> anyhow::Result<Value> {
    let address = server.address();
    let shared = Arc::new(Fanout {
        epoch: Instant::now(),
        subscribers: settings.subscribers as u64,
        received: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
        measuring: AtomicBool::new(false),
        publisher_waiting: AtomicBool::new(false),
        wake: Notify::new(),
        latency: histogram(),
        per_subscriber: (0..settings.subscribers)
            .map(|_| AtomicU64::new(0))
            .collect(),
    });
    let (setup_sender, setup_errors) = std::sync::mpsc::channel::<String>();
    let subscribers = {
        let (shared, address) = (Arc::clone(&shared), address.clone());
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let mut tasks = Vec::new();
                // One after the other: no connection storm, and Kuzzle subscriptions in order.
                for number in 0..shared.subscribers as usize {
                    match open_subscriber(number, &address, via).await {
                        Ok(client) => {
                            let shared = Arc::clone(&shared);
                            tasks.push(tokio::spawn(count(client, number, shared)));
                        }
                        Err(error) => {
                            let _ = setup_sender.send(format!("subscriber {number}: {error:#}"));
                            return;
                        }
                    }
                    shared.ready.fetch_add(1, Ordering::AcqRel);
                }
                for task in tasks {
                    let _ = task.await;
                }
            })
        })
    };

    // The runtime outlives the drain below, so the publisher's connection is not torn down (and
    // possibly reset, discarding its last publications) before they have been delivered.
    let publisher_runtime = runtime();
    if let Some(burst) = settings.burst {
        let record = publisher_runtime.block_on(publish_burst(
            server,
            via,
            settings,
            burst,
            &shared,
            &setup_errors,
        ));
        drop(subscribers);
        drop(publisher_runtime);
        return record.map(|mut record| {
            record["via"] = json!(via.name());
            record
        });
    }
    let outcome =
        publisher_runtime.block_on(publish(server, via, settings, &shared, &setup_errors));
    let (sent, measured_deliveries, measured_time, cpu) = outcome?;

    // Let what is in flight arrive, then count what never did.
    let expected = sent * shared.subscribers;
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
    drop(publisher_runtime);

    let latency = shared.latency.lock().expect("not poisoned");
    Ok(json!({
        "target": server.name(),
        "via": via.name(),
        "deliveries_per_second": (measured_deliveries as f64 / measured_time.as_secs_f64()).round(),
        "messages_published": sent,
        "deliveries": received,
        "lost": expected.saturating_sub(received),
        "subscribers_disconnected": closed,
        "server_cpu": cpu,
        "latency": percentiles(&latency),
    }))
}

/// Connects subscriber `number` and subscribes it: to `TOPIC`, or to the channel that
/// `realtime:subscribe` names.
async fn open_subscriber(number: usize, address: &str, via: Via) -> anyhow::Result<MqttClient> {
    let mut client = MqttClient::connect(address, &format!("bench-sub-{number}")).await?;
    match via {
        Via::Topics => client.subscribe(TOPIC).await?,
        Via::Kuzzle => {
            client
                .publish(
                    REQUEST_TOPIC,
                    br#"{"controller":"realtime","action":"subscribe","index":"bench","collection":"fanout","body":{},"requestId":"sub"}"#,
                )
                .await?;
            let response = client.next_publish(RESPONSE_TOPIC).await?;
            let response: Value = serde_json::from_slice(&response)?;
            let channel = response["result"]["channel"]
                .as_str()
                .with_context(|| format!("realtime:subscribe answered {response}"))?;
            client.subscribe(channel).await?;
        }
    }
    Ok(client)
}

/// Counts the PUBLISH packets a subscriber receives (timing the first few subscribers').
async fn count(client: MqttClient, number: usize, shared: Arc<Fanout>) {
    let (mut reader, _writer) = client.split();
    let timed = number < TIMED_SUBSCRIBERS;
    // Counted per packet, published to the shared counter once per read.
    let mut counted = 0u64;
    let _ = reader
        .read_batches(|event| {
            let Some(packet) = event else {
                if counted > 0 {
                    shared.per_subscriber[number].fetch_add(counted, Ordering::Relaxed);
                    shared.received.fetch_add(counted, Ordering::AcqRel);
                    counted = 0;
                    if shared.publisher_waiting.load(Ordering::Acquire) {
                        shared.wake.notify_one();
                    }
                }
                return true;
            };
            let Some((_, payload)) = packet.publish() else {
                return true;
            };
            counted += 1;
            if timed && shared.measuring.load(Ordering::Relaxed) {
                if let Some(sent_at) = timestamp(payload).and_then(|ts| ts.checked_sub(TS_OFFSET)) {
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
        .await;
    shared.closed.fetch_add(1, Ordering::AcqRel);
}

/// One message as the publisher sends it: the timed body on `TOPIC`, or wrapped in a
/// `realtime:publish` request on `Kuzzle/request`.
fn push_message(out: &mut Vec<u8>, via: Via, sent_at: u64, payload: usize) {
    let body = timed_body(sent_at, payload);
    match via {
        Via::Topics => encode_publish(out, TOPIC, body.as_bytes()),
        Via::Kuzzle => {
            let request = format!(
                r#"{{"controller":"realtime","action":"publish","index":"bench","collection":"fanout","requestId":"p","body":{body}}}"#
            );
            encode_publish(out, REQUEST_TOPIC, request.as_bytes());
        }
    }
}

/// Publishes until the measured time is over; returns (messages sent, deliveries counted while
/// measuring, measured time, the server's CPU over it).
async fn publish(
    server: &Running,
    via: Via,
    settings: &Settings,
    shared: &Fanout,
    setup_errors: &std::sync::mpsc::Receiver<String>,
) -> anyhow::Result<(u64, u64, Duration, Value)> {
    let ready_until = Instant::now() + Duration::from_secs(60);
    while shared.ready.load(Ordering::Acquire) < shared.subscribers as usize {
        if let Ok(error) = setup_errors.try_recv() {
            anyhow::bail!("{error}");
        }
        anyhow::ensure!(
            Instant::now() < ready_until,
            "subscribers did not all connect within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = MqttClient::connect(&server.address(), "bench-publisher").await?;
    let (mut reader, mut writer) = client.split();
    // `realtime:publish` answers come back to the publisher: read and drop them.
    tokio::spawn(async move { reader.read_packets(|_| true).await });

    let (window, burst) = (window(settings), per_write(settings));
    let measure_from = settings.warmup;
    let stop_at = settings.warmup + settings.seconds;
    let mut sent = 0u64;
    let mut packets = Vec::with_capacity(burst as usize * (settings.payload + 200));
    let mut measured_from: Option<(Instant, u64, Option<f64>)> = None;
    loop {
        let elapsed = shared.epoch.elapsed();
        if elapsed >= stop_at {
            break;
        }
        if measured_from.is_none() && elapsed >= measure_from {
            let received = shared.received.load(Ordering::Acquire);
            measured_from = Some((Instant::now(), received, server.cpu_seconds()));
            shared.measuring.store(true, Ordering::Release);
        }
        let delivered = shared.received.load(Ordering::Acquire) / shared.subscribers;
        if sent + burst <= delivered + window {
            packets.clear();
            let now = shared.epoch.elapsed().as_nanos() as u64;
            for _ in 0..burst {
                push_message(&mut packets, via, now, settings.payload);
            }
            writer.send_raw(&packets).await?;
            sent += burst;
        } else {
            shared.publisher_waiting.store(true, Ordering::Release);
            // Re-check after announcing, so a wake-up cannot be missed; never wait long.
            let delivered = shared.received.load(Ordering::Acquire) / shared.subscribers;
            if sent + burst > delivered + window {
                let _ =
                    tokio::time::timeout(Duration::from_millis(5), shared.wake.notified()).await;
            }
            shared.publisher_waiting.store(false, Ordering::Release);
        }
        anyhow::ensure!(
            shared.closed.load(Ordering::Acquire) == 0,
            "the server closed subscriber connections"
        );
    }
    shared.measuring.store(false, Ordering::Release);
    let (started, base, cpu_before) = measured_from.unwrap_or((Instant::now(), 0, None));
    let deliveries = shared.received.load(Ordering::Acquire) - base;
    let cpu = cpu_figures(cpu_before, server.cpu_seconds(), deliveries);
    Ok((sent, deliveries, started.elapsed(), cpu))
}

/// Burst mode: writes `burst` messages back to back (64 a write), then waits for their
/// deliveries; the record is `burst::record`'s.
async fn publish_burst(
    server: &Running,
    via: Via,
    settings: &Settings,
    burst: u64,
    shared: &Fanout,
    setup_errors: &std::sync::mpsc::Receiver<String>,
) -> anyhow::Result<Value> {
    let ready_until = Instant::now() + Duration::from_secs(60);
    while shared.ready.load(Ordering::Acquire) < shared.subscribers as usize {
        if let Ok(error) = setup_errors.try_recv() {
            anyhow::bail!("{error}");
        }
        anyhow::ensure!(
            Instant::now() < ready_until,
            "subscribers did not all connect within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = MqttClient::connect(&server.address(), "bench-publisher").await?;
    let (mut reader, mut writer) = client.split();
    tokio::spawn(async move { reader.read_packets(|_| true).await });
    let memory = burst::MemoryProbe::start(server);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut packets = Vec::new();
    while sent < burst {
        packets.clear();
        let count = burst::PER_WRITE.min(burst - sent);
        let now = shared.epoch.elapsed().as_nanos() as u64;
        for _ in 0..count {
            push_message(&mut packets, via, now, settings.payload);
        }
        writer.send_raw(&packets).await?;
        sent += count;
    }
    let last = burst::wait_delivered(
        burst * shared.subscribers,
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
