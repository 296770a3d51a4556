//! `cluster-fanout`: the cost of the Redis hop (issue 16). One `redis-server`, then, one after
//! the other: a single node without `[cluster]` (the reference), and 1, 2 and 3 nodes with it.
//! The subscribers are spread over the nodes (subscriber i on node i mod N), the publisher
//! talks to the first node, and the publisher waits for every delivery as `ws-fanout` does
//! (`--window`). Reported per setup: deliveries per second and the CPU of every process that
//! serves (the nodes and Redis) per delivery; the hop's cost is the difference with the single
//! node. On one machine the nodes share its cores: this measures cost, not scale.
//!
//! That CPU is split into user and system time, and the nodes' write system calls are counted
//! (`/proc/<pid>/io`): most of a delivery's cost is the kernel's loopback `writev`, one per
//! connection per batch of frames, so a setup whose writers carry fewer frames per `writev`
//! pays more per delivery for reasons that are not the Redis hop (BENCHMARKS.md, issue 16).
//! With `--window 1` every write carries one frame in every setup: the ratios then compare
//! the setups at equal batching, which is what the cluster path itself costs.

use std::cell::RefCell;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::{json, Value};
use switchyard_tests::redis::Redis;
use switchyard_tests::{protocol_section, Server};

use super::ws::{publish_windowed, subscriber, Fanout};
use super::{percentiles, runtime};
use crate::target::{cpu_seconds, cpu_split, write_calls, Kind, UNLIMITED_CONNECTIONS};
use crate::Settings;

/// The setups measured, as (nodes, with `[cluster]`).
const SETUPS: &[(usize, bool)] = &[(1, false), (1, true), (2, true), (3, true)];

/// `cluster-fanout`.
pub fn cluster_fanout(settings: &Settings) -> anyhow::Result<Value> {
    let redis = Redis::start("cluster-fanout")
        .context("cluster-fanout needs redis-server (apt-get install -y redis-server)")?;
    let mut results = Vec::new();
    for &(nodes, clustered) in SETUPS {
        let record = measure(&redis, nodes, clustered, settings)
            .with_context(|| format!("cluster-fanout with {nodes} node(s), cluster {clustered}"))?;
        results.push(record);
    }
    let ratios = [
        ("server_cpu", "us_per_op", "cpu_per_delivery_vs_single_node"),
        (
            "user_cpu",
            "us_per_op",
            "user_cpu_per_delivery_vs_single_node",
        ),
        (
            "system_cpu",
            "us_per_op",
            "system_cpu_per_delivery_vs_single_node",
        ),
        (
            "node_writes",
            "per_delivery",
            "writes_per_delivery_vs_single_node",
        ),
    ];
    for (figure, unit, ratio) in ratios {
        let single = results[0][figure][unit].as_f64();
        for result in &mut results {
            let cost = result[figure][unit].as_f64();
            result[ratio] = match (cost, single) {
                (Some(cost), Some(single)) if single > 0.0 => {
                    json!((cost / single * 100.0).round() / 100.0)
                }
                _ => Value::Null,
            };
        }
    }
    Ok(json!({
        "scenario": "cluster-fanout",
        "parameters": {
            "subscribers": settings.subscribers,
            "payload_bytes": settings.payload,
            "window": settings.window.unwrap_or(32),
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "flush_interval_ms": settings.flush_interval,
        },
        "results": results,
    }))
}

/// One setup: `nodes` hosts (with `[cluster]` on `redis` when `clustered`), the subscribers
/// spread over them, one publisher on the first.
fn measure(
    redis: &Redis,
    nodes: usize,
    clustered: bool,
    settings: &Settings,
) -> anyhow::Result<Value> {
    let servers: Vec<Server> = (0..nodes)
        .map(|number| Server::start(&config(redis, number, clustered, settings.flush_interval)))
        .collect();
    let addresses: Vec<String> = servers
        .iter()
        .map(|server| server.address("websocket"))
        .collect();
    let mut pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    if clustered {
        pids.push(redis.pid());
    }
    let shared = Arc::new(Fanout::new(settings.subscribers, settings.payload));
    let subscribers = {
        let shared = Arc::clone(&shared);
        let addresses = addresses.clone();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let mut tasks = Vec::new();
                for number in 0..shared.subscribers {
                    let shared = Arc::clone(&shared);
                    let address = addresses[number % addresses.len()].clone();
                    tasks.push(tokio::spawn(async move {
                        subscriber(number, &address, Kind::Switchyard, &shared).await
                    }));
                }
                for task in tasks {
                    let _ = task.await;
                }
            })
        })
    };
    // Each reading of the serving processes' CPU (at the start and at the end of the measured
    // window) also takes their user/system split and the nodes' write system calls.
    let node_pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    let snapshots = RefCell::new(Vec::new());
    let total_cpu = || -> Option<f64> {
        let split: Option<Vec<(f64, f64)>> = pids.iter().map(|pid| cpu_split(*pid)).collect();
        let writes: Option<Vec<(u64, u64)>> =
            node_pids.iter().map(|pid| write_calls(*pid)).collect();
        if let (Some(split), Some(writes)) = (split, writes) {
            snapshots.borrow_mut().push((
                split.iter().map(|(user, _)| user).sum::<f64>(),
                split.iter().map(|(_, system)| system).sum::<f64>(),
                writes.iter().map(|(calls, _)| calls).sum::<u64>(),
                writes.iter().map(|(_, bytes)| bytes).sum::<u64>(),
            ));
        }
        pids.iter().map(|pid| cpu_seconds(*pid)).sum()
    };
    let (sent, deliveries, time, cpu) = runtime().block_on(async {
        if clustered && nodes > 1 {
            // Every node subscribes to the collection's channel once it has a room on it: wait
            // until the other nodes' subscribers all count, so nothing published is missed.
            wait_for_cluster(&addresses[0], settings.subscribers as u64).await?;
        }
        publish_windowed(
            &addresses[0],
            Kind::Switchyard,
            &total_cpu,
            settings,
            &shared,
        )
        .await
    })?;
    let (user_cpu, system_cpu, node_writes) = split_figures(&snapshots.borrow(), deliveries);
    let expected = sent * settings.subscribers as u64;
    let received = shared.drain(sent);
    let latency = percentiles(&shared.latency.lock().expect("not poisoned"));
    drop(servers);
    drop(subscribers);
    Ok(json!({
        "target": format!("{nodes} node{}{}", if nodes > 1 { "s" } else { "" },
                          if clustered { ", [cluster]" } else { ", single" }),
        "nodes": nodes,
        "cluster": clustered,
        "deliveries_per_second": (deliveries as f64 / time.as_secs_f64()).round(),
        "server_cpu": cpu,
        "user_cpu": user_cpu,
        "system_cpu": system_cpu,
        "node_writes": node_writes,
        "messages_published": sent,
        "deliveries": received,
        "lost": expected.saturating_sub(received),
        "latency": latency,
    }))
}

/// The user and system CPU of the serving processes per delivery, and the nodes' write system
/// calls per delivery and bytes per call, between the first and the last snapshot (Null when
/// `/proc` could not be read).
fn split_figures(snapshots: &[(f64, f64, u64, u64)], deliveries: u64) -> (Value, Value, Value) {
    let (Some(first), Some(last)) = (snapshots.first(), snapshots.last()) else {
        return (Value::Null, Value::Null, Value::Null);
    };
    if snapshots.len() < 2 || deliveries == 0 {
        return (Value::Null, Value::Null, Value::Null);
    }
    let per_delivery = |seconds: f64| json!((seconds * 1e9 / deliveries as f64).round() / 1000.0);
    let calls = last.2.saturating_sub(first.2);
    let bytes = last.3.saturating_sub(first.3);
    (
        json!({ "us_per_op": per_delivery(last.0 - first.0) }),
        json!({ "us_per_op": per_delivery(last.1 - first.1) }),
        json!({
            "per_delivery": (calls as f64 / deliveries as f64 * 10_000.0).round() / 10_000.0,
            "bytes_per_write": bytes.checked_div(calls),
        }),
    )
}

/// Node `number`'s configuration: WebSocket on a free loopback port (no per-address limits: every
/// subscriber comes from 127.0.0.1), and `[cluster]` with a short heartbeat when `clustered`
/// (and `flush_interval`, `--flush-interval`, when given).
fn config(redis: &Redis, number: usize, clustered: bool, flush_interval: Option<u64>) -> String {
    let mut config = format!(
        "[server]\n{}",
        protocol_section(
            "websocket",
            "websocket",
            &format!(
                "port = 0\naddress = \"127.0.0.1\"\nmaxQueuedBytes = \"16MB\"\n{UNLIMITED_CONNECTIONS}"
            )
        )
    );
    if clustered {
        config.push_str(&format!(
            "[cluster]\nredis = \"{}\"\nnodeName = \"bench-{number}\"\nheartbeatInterval = 200\n",
            redis.url()
        ));
        if let Some(interval) = flush_interval {
            config.push_str(&format!("flushInterval = {interval}\n"));
        }
    }
    config
}

/// Waits (up to 30 s) until `realtime:count` on the first node counts every subscriber, the
/// other nodes' included (their reports come every heartbeat).
async fn wait_for_cluster(address: &str, subscribers: u64) -> anyhow::Result<()> {
    use crate::wsclient::WsClient;
    let mut client = WsClient::connect(address).await?;
    // The room of `{}` on bench/fanout, as every subscriber made it.
    client
        .send_text(
            br#"{"controller":"realtime","action":"subscribe","index":"bench","collection":"fanout","body":{},"requestId":"probe"}"#,
        )
        .await?;
    let answer = client.wait_for("\"requestId\":\"probe\"").await?;
    let room: Value = serde_json::from_str(&answer).context("a subscribe answer")?;
    let room = room["result"]["roomId"]
        .as_str()
        .context("a room id")?
        .to_string();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let request = json!({"controller": "realtime", "action": "count",
                         "body": {"roomId": room}, "requestId": "count"})
    .to_string();
    loop {
        client.send_text(request.as_bytes()).await?;
        let answer = client.wait_for("\"requestId\":\"count\"").await?;
        let answer: Value = serde_json::from_str(&answer).context("a count answer")?;
        // The probe itself is one of the room's subscribers.
        if answer["result"]["count"].as_u64() == Some(subscribers + 1) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < until,
            "the nodes never counted {subscribers} subscribers: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
