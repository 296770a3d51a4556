//! `socketio-fanout`: one publisher, N Socket.IO clients (Engine.IO 4 / Socket.IO 5 over
//! WebSocket) on one channel, against the Socket.io plugin and, as the baseline, npm
//! `socket.io` 4.x (`tests/js/socketio/reference_server.js` on Node.js). The design of
//! `ws-fanout`: subscribers on one thread, the publisher on another at most `--window` messages
//! ahead of the average subscriber, latency from the `"ts"` in the payload.
//!
//! The client is the bench's raw WebSocket client speaking just enough of the protocol: the
//! handshake on `/socket.io/?EIO=4&transport=websocket`, the open packet `0{…}`, `40` to join
//! the main namespace (answered `40{"sid":…}`), every ping `2` answered `3`; deliveries are the
//! text frames `42["<event>",…]` named after the channel.
//!
//! - switchyard: each subscriber emits `realtime:subscribe` on the `kuzzle` event (requestId
//!   `sub`), reads the answer on event `sub` and counts the events named after its
//!   `result.channel`. The publisher is a Socket.IO client too: `realtime:publish` on the
//!   `kuzzle` event, its answers (event `p`) read and dropped.
//! - npm socket.io: the reference script's events: `join` (with an ack, awaited) puts a client
//!   in room `bench`; `publish` (no ack) emits the payload on event `bench` to the room.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::ws::Fanout;
use super::{burst, cpu_figures, ratio, runtime, timed_body};
use crate::target::{Kind, Protocol, Running};
use crate::wsclient::{encode_text, WsClient, WsReader, WsWriter};
use crate::Settings;

/// Engine.IO 4 over WebSocket, straight away (no polling first).
const PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// The npm server's room, and the event its deliveries arrive on.
const ROOM: &str = "bench";

/// `socketio-fanout`: one publisher, N Socket.IO subscribers on one channel.
pub fn socketio_fanout(settings: &Settings) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = Running::start(kind, Protocol::SocketIo, None)?;
        results.push(
            fanout_once(&server, settings)
                .with_context(|| format!("socketio-fanout against {}", server.name()))?,
        );
    }
    Ok(json!({
        "scenario": "socketio-fanout",
        "parameters": {
            "subscribers": settings.subscribers,
            "payload_bytes": settings.payload,
            "window": window(settings),
            "burst": settings.burst,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "transport": "websocket (EIO=4)",
            "publish": "switchyard: realtime:publish on the socket.io `kuzzle` event; \
                        npm socket.io: the reference server's `publish` event, no ack",
        },
        "results": results,
        "ratio_deliveries_per_second": ratio(&results, "deliveries_per_second"),
    }))
}

/// Messages the publisher may have in flight ahead of the average subscriber (default 32).
fn window(settings: &Settings) -> u64 {
    settings.window.unwrap_or(32)
}

/// A Socket.IO client on the main namespace.
struct SioClient {
    reader: WsReader,
    writer: WsWriter,
}

impl SioClient {
    /// Connects over WebSocket and joins the main namespace.
    async fn connect(address: &str) -> anyhow::Result<SioClient> {
        let (reader, writer) = WsClient::connect_path(address, PATH).await?.split();
        let mut client = SioClient { reader, writer };
        let open = client.next_text().await?;
        ensure!(
            open.starts_with('0'),
            "expected the open packet 0{{…}}, got {open}"
        );
        client.writer.send_text(b"40").await?;
        let connected = client.next_text().await?;
        ensure!(
            connected.starts_with("40"),
            "expected 40{{\"sid\":…}}, got {connected}"
        );
        Ok(client)
    }

    /// The next text frame, answering Engine.IO pings on the way.
    async fn next_text(&mut self) -> anyhow::Result<String> {
        loop {
            let mut text = None;
            let open = self
                .reader
                .read_frames(|frame| {
                    if frame.opcode == 1 {
                        text = Some(String::from_utf8_lossy(frame.payload).to_string());
                    }
                    text.is_none()
                })
                .await?;
            match text {
                Some(ping) if ping == "2" => self.writer.send_text(b"3").await?,
                Some(text) => return Ok(text),
                None if !open => bail!("the server closed the connection"),
                None => {}
            }
        }
    }

    /// Subscribes to the channel; returns the prefix of its deliveries, `42["<event>",`.
    async fn subscribe(&mut self, kind: Kind) -> anyhow::Result<Vec<u8>> {
        let event = match kind {
            Kind::Switchyard => {
                self.writer
                    .send_text(
                        br#"42["kuzzle",{"controller":"realtime","action":"subscribe","index":"bench","collection":"fanout","body":{},"requestId":"sub"}]"#,
                    )
                    .await?;
                let answer = loop {
                    let text = self.next_text().await?;
                    if let Some(rest) = text.strip_prefix("42") {
                        let packet: Value = serde_json::from_str(rest)
                            .with_context(|| format!("a Socket.IO event: {text}"))?;
                        if packet[0] == "sub" {
                            break packet[1].clone();
                        }
                    }
                };
                ensure!(answer["status"] == 200, "subscribe failed: {answer}");
                answer["result"]["channel"]
                    .as_str()
                    .with_context(|| format!("no channel in {answer}"))?
                    .to_string()
            }
            Kind::Baseline => {
                self.writer
                    .send_text(format!(r#"420["join","{ROOM}"]"#).as_bytes())
                    .await?;
                while !self.next_text().await?.starts_with("430") {}
                ROOM.to_string()
            }
        };
        Ok(format!("42[{},", Value::from(event)).into_bytes())
    }
}

fn fanout_once(server: &Running, settings: &Settings) -> anyhow::Result<Value> {
    let address = server.address();
    let kind = server.kind();
    let shared = Arc::new(Fanout::new(settings.subscribers, settings.payload));

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
                for task in tasks {
                    if let Ok(Err(error)) = task.await {
                        eprintln!("socket.io subscriber: {error:#}");
                    }
                }
            })
        })
    };

    // The runtime outlives the drain below: dropping it would drop the publisher's reader, and
    // a socket closed with unread answers is reset, which can discard the last publications
    // before the server reads them (they would then count as lost).
    let publisher_runtime = runtime();
    if let Some(burst) = settings.burst {
        let record = publisher_runtime.block_on(publish_burst(server, burst, &shared));
        drop(subscribers);
        drop(publisher_runtime);
        return record;
    }
    let outcome = publisher_runtime.block_on(publisher(server, settings, &shared));
    let (sent, measured_deliveries, measured_time, cpu) = outcome?;

    let record = shared.record(server, sent, measured_deliveries, measured_time, cpu);
    drop(subscribers);
    drop(publisher_runtime);
    Ok(record)
}

async fn subscriber(
    number: usize,
    address: &str,
    kind: Kind,
    shared: &Fanout,
) -> anyhow::Result<()> {
    let connected = async {
        let mut client = SioClient::connect(address).await?;
        let prefix = client.subscribe(kind).await?;
        anyhow::Ok((client, prefix))
    };
    let (mut client, prefix) = match connected.await {
        Ok(connected) => connected,
        Err(error) => {
            // The publisher stops waiting for subscribers that will never be ready.
            shared.closed.fetch_add(1, Ordering::AcqRel);
            return Err(error);
        }
    };
    shared.ready.fetch_add(1, Ordering::AcqRel);
    loop {
        let mut pinged = false;
        let open = client
            .reader
            .read_frames(|frame| {
                if frame.opcode != 1 {
                    return true;
                }
                if frame.payload.starts_with(&prefix) {
                    shared.delivered_to(number, frame.payload);
                } else if frame.payload == b"2" {
                    pinged = true;
                }
                !pinged
            })
            .await?;
        if !open {
            break;
        }
        if pinged {
            client.writer.send_text(b"3").await?;
        }
    }
    shared.closed.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// One publication as a pre-encoded WebSocket frame.
fn message(kind: Kind, sent_at: u64, payload: usize) -> Vec<u8> {
    let body = timed_body(sent_at, payload);
    let text = match kind {
        Kind::Switchyard => format!(
            r#"42["kuzzle",{{"controller":"realtime","action":"publish","index":"bench","collection":"fanout","requestId":"p","body":{body}}}]"#
        ),
        Kind::Baseline => format!(r#"42["publish","{ROOM}",{body}]"#),
    };
    let mut frame = Vec::with_capacity(text.len() + 14);
    encode_text(&mut frame, text.as_bytes());
    frame
}

/// Publishes until the measured time is over; returns (messages sent, deliveries counted while
/// measuring, measured time, the server's CPU over it).
async fn publisher(
    server: &Running,
    settings: &Settings,
    shared: &Fanout,
) -> anyhow::Result<(u64, u64, Duration, Value)> {
    let ready_until = Instant::now() + Duration::from_secs(60);
    while shared.ready.load(Ordering::Acquire) < shared.subscribers {
        ensure!(
            shared.closed.load(Ordering::Acquire) == 0,
            "subscribers failed to connect or subscribe (their errors are above)"
        );
        ensure!(
            Instant::now() < ready_until,
            "subscribers did not all subscribe within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let SioClient {
        mut reader,
        mut writer,
    } = SioClient::connect(&server.address()).await?;
    // Answers to the publications come back to the publisher: read and drop them, but flag
    // pings for the writer to answer.
    let pinged = Arc::new((AtomicBool::new(false), Notify::new()));
    let ping_flag = Arc::clone(&pinged);
    tokio::spawn(async move {
        reader
            .read_frames(|frame| {
                if frame.opcode == 1 && frame.payload == b"2" {
                    ping_flag.0.store(true, Ordering::Release);
                    ping_flag.1.notify_one();
                }
                true
            })
            .await
    });

    let kind = server.kind();
    let subscribers = shared.subscribers as u64;
    let stop_at = settings.warmup + settings.seconds;
    let mut sent = 0u64;
    let mut measured_from: Option<(Instant, u64, Option<f64>)> = None;
    loop {
        let elapsed = shared.epoch.elapsed();
        if elapsed >= stop_at {
            break;
        }
        if measured_from.is_none() && elapsed >= settings.warmup {
            measured_from = Some((
                Instant::now(),
                shared.received.load(Ordering::Acquire),
                server.cpu_seconds(),
            ));
            shared.measuring.store(true, Ordering::Release);
        }
        if pinged.0.swap(false, Ordering::AcqRel) {
            writer.send_text(b"3").await?;
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
            // Wake when a message has reached every subscriber, on a ping, or shortly.
            tokio::select! {
                _ = shared.progress.notified() => {}
                _ = pinged.1.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        ensure!(
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

/// Burst mode: writes `burst` publications back to back (64 frames a write, answering pings
/// between writes), then waits for their deliveries; the record is `burst::record`'s.
async fn publish_burst(server: &Running, burst: u64, shared: &Fanout) -> anyhow::Result<Value> {
    let ready_until = Instant::now() + Duration::from_secs(60);
    while shared.ready.load(Ordering::Acquire) < shared.subscribers {
        ensure!(
            shared.closed.load(Ordering::Acquire) == 0,
            "subscribers failed to connect or subscribe (their errors are above)"
        );
        ensure!(
            Instant::now() < ready_until,
            "subscribers did not all subscribe within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let SioClient {
        mut reader,
        mut writer,
    } = SioClient::connect(&server.address()).await?;
    let pinged = Arc::new(AtomicBool::new(false));
    let ping_flag = Arc::clone(&pinged);
    tokio::spawn(async move {
        reader
            .read_frames(|frame| {
                if frame.opcode == 1 && frame.payload == b"2" {
                    ping_flag.store(true, Ordering::Release);
                }
                true
            })
            .await
    });
    let kind = server.kind();
    let memory = burst::MemoryProbe::start(server);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut frames = Vec::new();
    while sent < burst {
        if pinged.swap(false, Ordering::AcqRel) {
            writer.send_text(b"3").await?;
        }
        frames.clear();
        let count = burst::PER_WRITE.min(burst - sent);
        let now = shared.epoch.elapsed().as_nanos() as u64;
        for _ in 0..count {
            frames.extend_from_slice(&message(kind, now, shared.payload));
        }
        writer.send_raw(&frames).await?;
        sent += count;
    }
    let last = burst::wait_delivered(
        burst * shared.subscribers as u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publications_are_socketio_events_in_one_text_frame() {
        let frame = message(Kind::Baseline, 5, 100);
        // A masked text frame (mask 0), the 7-bit length form: 122 bytes of text.
        assert_eq!(frame[0], 0x81);
        let text = std::str::from_utf8(&frame[6..]).unwrap();
        assert!(text.starts_with(r#"42["publish","bench",{"ts":"#), "{text}");
        let packet: Value = serde_json::from_str(&text[2..]).unwrap();
        assert_eq!(packet[2]["pad"].as_str().unwrap().len() + 35, 100);

        let frame = message(Kind::Switchyard, 5, 100);
        let text = String::from_utf8_lossy(&frame);
        assert!(text.contains(r#""action":"publish""#), "{text}");
        let json = &text[text.find("42[").unwrap() + 2..];
        let packet: Value = serde_json::from_str(json).unwrap();
        assert_eq!(packet[0], "kuzzle");
        assert_eq!(packet[1]["body"]["ts"], 1_000_000_000_000_000_005u64);
    }
}
