//! `mqtt-rtt`: C MQTT clients on one thread, each with one request in flight, QoS 0.
//!
//! `--via kuzzle` (default for switchyard): each client publishes a `server:now` request on
//! `Kuzzle/request` and waits for the answer the plugin publishes to it on `Kuzzle/response` —
//! one PUBLISH in, one API call through the host, one PUBLISH out.
//! A broker (mosquitto, `--broker`, and switchyard with `--via topics`) has no API: each client
//! subscribes to its own topic `bench/rtt/<n>` and publishes the same request bytes there, so
//! the broker routes the message back to its sender — one PUBLISH in, one topic lookup, one
//! PUBLISH out. The same packets cross the wire in; the answer differs (a `server:now` response
//! is about 200 bytes, the echo is the request itself).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use super::mqtt::{REQUEST_TOPIC, RESPONSE_TOPIC};
use super::{cpu_figures, histogram, percentiles, ratio, runtime};
use crate::mqttclient::{encode_publish, MqttClient};
use crate::target::{Kind, Protocol, Running};
use crate::{Settings, Via};

/// The request every client sends.
const REQUEST: &[u8] = br#"{"controller":"server","action":"now","requestId":"r"}"#;

/// `mqtt-rtt`.
pub fn mqtt_rtt(settings: &Settings) -> anyhow::Result<Value> {
    let connections = if settings.connections == 0 {
        50
    } else {
        settings.connections
    };
    let via = settings.via.unwrap_or(Via::Kuzzle);
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = Running::start(kind, Protocol::Mqtt, settings.broker.as_deref())?;
        let via = if kind == Kind::Switchyard {
            via
        } else {
            Via::Topics
        };
        results.push(
            rtt_once(&server, via, connections, settings)
                .with_context(|| format!("mqtt-rtt against {}", server.name()))?,
        );
    }
    Ok(json!({
        "scenario": "mqtt-rtt",
        "parameters": {
            "connections": connections,
            "via": via.name(),
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "request": "kuzzle: server:now on Kuzzle/request, answer on Kuzzle/response; \
                        topics: the same bytes published to the client's own topic bench/rtt/<n>",
        },
        "results": results,
        "ratio_requests_per_second": ratio(&results, "requests_per_second"),
    }))
}

fn rtt_once(
    server: &Running,
    via: Via,
    connections: usize,
    settings: &Settings,
) -> anyhow::Result<Value> {
    let address = server.address();
    runtime().block_on(async {
        let counted = Arc::new(AtomicU64::new(0));
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let latency = Arc::new(histogram());
        let mut tasks = Vec::with_capacity(connections);
        for number in 0..connections {
            let mut client = MqttClient::connect(&address, &format!("bench-rtt-{number}")).await?;
            let (publish_to, answer_on) = match via {
                Via::Kuzzle => (REQUEST_TOPIC.to_string(), RESPONSE_TOPIC.to_string()),
                Via::Topics => {
                    let own = format!("bench/rtt/{number}");
                    client.subscribe(&own).await?;
                    (own.clone(), own)
                }
            };
            let mut packet = Vec::new();
            encode_publish(&mut packet, &publish_to, REQUEST);
            let (counted, measuring, stop, latency) = (
                Arc::clone(&counted),
                Arc::clone(&measuring),
                Arc::clone(&stop),
                Arc::clone(&latency),
            );
            tasks.push(tokio::spawn(async move {
                let (mut reader, mut writer) = client.split();
                while !stop.load(Ordering::Relaxed) {
                    let sent_at = Instant::now();
                    writer.send_raw(&packet).await?;
                    reader.next_publish(&answer_on).await?;
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
        let (elapsed, cpu_after) = (started.elapsed(), server.cpu_seconds());
        stop.store(true, Ordering::Release);
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .context("a client got no answer within 10 s")???;
        }
        let requests = counted.load(Ordering::Acquire);
        let latency = latency.lock().expect("not poisoned");
        anyhow::Ok(json!({
            "target": server.name(),
            "via": via.name(),
            "requests_per_second": (requests as f64 / elapsed.as_secs_f64()).round(),
            "requests": requests,
            "server_cpu": cpu_figures(cpu_before, cpu_after, requests),
            "latency": percentiles(&latency),
        }))
    })
}
