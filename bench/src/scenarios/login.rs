//! `login`: `auth:login` per second with the default Argon2id parameters (issue 15). C
//! WebSocket connections each log the same `local` user in (`auth.rs` makes it), one request
//! in flight each, against switchyard with `limits.loginsPerSecond` raised: Kuzzle's default,
//! one per connection, would measure the limit, not the login. The baseline is the same
//! Argon2id verification (`switchyard-security`'s, a hash made with the default parameters) on
//! bare threads of this process, one per core: what password hashing alone allows here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};
use switchyard_security::password::{Argon2Params, StoredPassword};
use switchyard_security::secret::Secret;

use super::{auth, cpu_figures, histogram, percentiles, ratio, runtime};
use crate::target::{Kind, Protocol, Running};
use crate::wsclient::{encode_text, find, WsClient};
use crate::Settings;

/// `[limits]` for the measured server: logins limited by nothing but their cost.
const UNLIMITED_LOGINS: &str = "[limits]\nloginsPerSecond = 1000000\n";

/// `login`: C connections logging in, against Argon2id verifications on one thread per core.
pub fn login(settings: &Settings) -> anyhow::Result<Value> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let connections = if settings.connections == 0 {
        2 * cores
    } else {
        settings.connections
    };
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let result = match kind {
            Kind::Switchyard => {
                let server = Running::start_switchyard(Protocol::WebSocket, UNLIMITED_LOGINS)?;
                runtime()
                    .block_on(drive(&server, connections, settings))
                    .context("login against switchyard")?
            }
            Kind::Baseline => bare_verifications(cores, settings)?,
        };
        results.push(result);
    }
    let params = Argon2Params::default();
    Ok(json!({
        "scenario": "login",
        "parameters": {
            "connections": connections,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "argon2id": {
                "memory_kib": params.memory_kib,
                "iterations": params.iterations,
                "parallelism": params.parallelism,
            },
            "request": "switchyard: auth:login (local strategy) over WebSocket; baseline: Argon2id verify of the same password on one thread per core",
        },
        "ratio_logins_per_second": ratio(&results, "logins_per_second"),
        "results": results,
    }))
}

async fn drive(server: &Running, connections: usize, settings: &Settings) -> anyhow::Result<Value> {
    let address = server.address();
    auth::user_token_ws(&address).await?;
    let mut request = auth::login_request();
    request["requestId"] = json!("l");
    let mut frame = Vec::new();
    encode_text(&mut frame, request.to_string().as_bytes());
    let frame = Arc::new(frame);
    let counted = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let latency = Arc::new(histogram());
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = WsClient::connect(&address).await?;
        let (frame, counted, measuring, stop, latency) = (
            Arc::clone(&frame),
            Arc::clone(&counted),
            Arc::clone(&measuring),
            Arc::clone(&stop),
            Arc::clone(&latency),
        );
        tasks.push(tokio::spawn(async move {
            let (mut reader, mut writer) = client.split();
            while !stop.load(Ordering::Relaxed) {
                let sent_at = Instant::now();
                writer.send_raw(&frame).await?;
                let answer = reader.wait_for("\"requestId\":\"l\"").await?;
                anyhow::ensure!(
                    find(answer.as_bytes(), b"\"status\":200").is_some(),
                    "auth:login failed: {answer}"
                );
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
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .context("a login got no answer within 30 s")???;
    }
    let logins = counted.load(Ordering::Acquire);
    let latency = latency.lock().expect("not poisoned");
    Ok(json!({
        "target": server.name(),
        "logins_per_second": (logins as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0,
        "logins": logins,
        "server_cpu": cpu_figures(cpu_before, cpu_after, logins),
        "latency": percentiles(&latency),
    }))
}

/// One thread per core verifying the password against its Argon2id hash (default
/// parameters) for the warm-up and the measured time; verifications per second over the
/// measured time.
fn bare_verifications(threads: usize, settings: &Settings) -> anyhow::Result<Value> {
    let password = Secret::new(auth::PASSWORD);
    let stored = Arc::new(
        StoredPassword::hash(&password, &Argon2Params::default())
            .map_err(|error| anyhow::anyhow!("hash the password: {error}"))?,
    );
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(histogram());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stored, measuring, stop, counted, latency) = (
                Arc::clone(&stored),
                Arc::clone(&measuring),
                Arc::clone(&stop),
                Arc::clone(&counted),
                Arc::clone(&latency),
            );
            let password = Secret::new(auth::PASSWORD);
            std::thread::spawn(move || -> anyhow::Result<()> {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let matches = stored
                        .verify(&password)
                        .map_err(|error| anyhow::anyhow!("verify: {error}"))?;
                    anyhow::ensure!(matches, "the password does not match its own hash");
                    if measuring.load(Ordering::Relaxed) {
                        counted.fetch_add(1, Ordering::Relaxed);
                        let micros = started.elapsed().as_micros() as u64;
                        let _ = latency.lock().expect("not poisoned").record(micros.max(1));
                    }
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(settings.warmup);
    measuring.store(true, Ordering::Release);
    let started = Instant::now();
    std::thread::sleep(settings.seconds);
    measuring.store(false, Ordering::Release);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Release);
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a verifying thread panicked"))??;
    }
    let verifications = counted.load(Ordering::Acquire);
    let latency = latency.lock().expect("not poisoned");
    Ok(json!({
        "target": format!("argon2id verify, {threads} threads"),
        "logins_per_second": (verifications as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0,
        "logins": verifications,
        "latency": percentiles(&latency),
    }))
}
