//! `documents`: acknowledged durable `document:create` from C concurrent WebSocket clients, then
//! `document:get` by id from the same clients, against switchyard's embedded store; the baseline
//! does the same work on SQLite in WAL mode with `synchronous=FULL`, one transaction per write,
//! one connection per client thread, in this process, with the same documents.
//!
//! Both sides write into a fresh temporary folder (under `TMPDIR`, which must be on a real disk
//! for the durability figures to mean anything).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::{cpu_figures, histogram, percentiles, ratio, runtime};
use crate::target::{Kind, Protocol, Running};
use crate::wsclient::{encode_text, WsClient};
use crate::Settings;

/// The document numbered `i`: about 330 bytes of JSON, the documents of the storage crate's
/// `group_commit` bench.
pub(super) fn document(i: u64) -> Value {
    json!({
        "name": format!("user {i}"),
        "email": format!("user{i}@example.com"),
        "age": i % 90,
        "city": format!("city-{}", i % 10_000),
        "tags": [format!("t{}", i % 7), format!("t{}", i % 13)],
        "score": (i % 10_000) as f64 + 0.5,
        "active": i % 2 == 0,
        "bio": format!("lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt {i}"),
    })
}

/// The collection's mapping: four indexed fields, as in the storage bench.
pub(super) fn mapping() -> Value {
    json!({"properties": {"city": {"type": "keyword"}, "age": {"type": "integer"},
        "active": {"type": "boolean"}, "score": {"type": "double"}}})
}

/// The id of client `client`'s `n`th document.
pub(super) fn id(client: usize, n: u64) -> String {
    format!("c{client:03}-{n:09}")
}

/// The number of client `client`'s `n`th document (the same on both sides).
pub(super) fn number(client: usize, n: u64) -> u64 {
    client as u64 * 1_000_000_000 + n
}

/// A small xorshift generator: which document a read asks for.
pub(super) fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A random id among those written (`written[c]` documents by client c).
fn random_id(written: &[u64], state: &mut u64) -> String {
    loop {
        let client = (next_random(state) % written.len() as u64) as usize;
        if written[client] > 0 {
            return id(client, next_random(state) % written[client]);
        }
    }
}

/// Builds a client's `n`th request (the `u64` is its random state).
pub(super) type Request = Arc<dyn Fn(usize, u64, &mut u64) -> Vec<u8> + Send + Sync>;

/// What one measured phase gives.
pub(super) struct Phase {
    /// Operations answered with success in the measured window.
    pub(super) counted: u64,
    /// Operations that failed (any time).
    pub(super) failed: u64,
    pub(super) elapsed: Duration,
    pub(super) latency: Histogram<u64>,
    /// Operations each client completed (warm-up included).
    pub(super) done: Vec<u64>,
    pub(super) cpu: Value,
}

impl Phase {
    pub(super) fn per_second(&self) -> f64 {
        (self.counted as f64 / self.elapsed.as_secs_f64()).round()
    }
}

/// The measuring window shared by a phase's clients.
pub(super) struct Window {
    pub(super) measuring: AtomicBool,
    pub(super) stop: AtomicBool,
    pub(super) counted: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) latency: Mutex<Histogram<u64>>,
}

impl Window {
    pub(super) fn new() -> Arc<Window> {
        Arc::new(Window {
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            counted: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: histogram(),
        })
    }

    pub(super) fn record(&self, sent_at: Instant, ok: bool) {
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.measuring.load(Ordering::Relaxed) {
            self.counted.fetch_add(1, Ordering::Relaxed);
            let micros = sent_at.elapsed().as_micros() as u64;
            let _ = self
                .latency
                .lock()
                .expect("not poisoned")
                .record(micros.max(1));
        }
    }

    /// Warm-up, then the measured window; `cpu` reads the server's CPU seconds.
    pub(super) fn measure(
        &self,
        settings: &Settings,
        cpu: &dyn Fn() -> Option<f64>,
        sleep: &dyn Fn(Duration),
    ) -> (Duration, Value) {
        sleep(settings.warmup);
        self.measuring.store(true, Ordering::Release);
        let (started, before) = (Instant::now(), cpu());
        sleep(settings.seconds);
        self.measuring.store(false, Ordering::Release);
        let elapsed = started.elapsed();
        let figures = cpu_figures(before, cpu(), self.counted.load(Ordering::Acquire));
        self.stop.store(true, Ordering::Release);
        (elapsed, figures)
    }

    pub(super) fn into_phase(
        self: Arc<Window>,
        elapsed: Duration,
        cpu: Value,
        done: Vec<u64>,
    ) -> Phase {
        Phase {
            counted: self.counted.load(Ordering::Acquire),
            failed: self.failed.load(Ordering::Acquire),
            elapsed,
            latency: self.latency.lock().expect("not poisoned").clone(),
            done,
            cpu,
        }
    }
}

/// `documents` scenario.
pub fn documents(settings: &Settings) -> anyhow::Result<Value> {
    let clients = if settings.connections == 0 {
        50
    } else {
        settings.connections
    };
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let (name, creates, gets) = match kind {
            Kind::Switchyard => switchyard(settings, clients)?,
            Kind::Baseline => sqlite(settings, clients)?,
        };
        anyhow::ensure!(
            creates.failed == 0 && gets.failed == 0,
            "{name}: {} creates and {} gets failed",
            creates.failed,
            gets.failed
        );
        results.push(json!({
            "target": name,
            "creates_per_second": creates.per_second(),
            "create_latency": percentiles(&creates.latency),
            "create_cpu": creates.cpu,
            "documents": creates.done.iter().sum::<u64>(),
            "gets_per_second": gets.per_second(),
            "get_latency": percentiles(&gets.latency),
            "get_cpu": gets.cpu,
        }));
    }
    Ok(json!({
        "scenario": "documents",
        "parameters": {
            "connections": clients,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "document_cache_bytes": settings.document_cache,
            "request": "switchyard: document:create (acknowledged after fsync), then document:get by id, over WebSocket; baseline: SQLite WAL synchronous=FULL, one INSERT transaction per document, then SELECT by primary key, one connection per client thread, in process",
        },
        "results": results,
        "ratio_creates_per_second": ratio(&results, "creates_per_second"),
        "ratio_gets_per_second": ratio(&results, "gets_per_second"),
    }))
}

/// A WebSocket phase: each client sends `request(client, n, &mut random)` and waits for its
/// answer, `"status":200` counting as success.
pub(super) async fn ws_phase(
    address: &str,
    clients: usize,
    settings: &Settings,
    server: &Running,
    request: Request,
) -> anyhow::Result<Phase> {
    let window = Window::new();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let connection = WsClient::connect(address).await?;
        let (window, request) = (Arc::clone(&window), Arc::clone(&request));
        tasks.push(tokio::spawn(async move {
            let (mut reader, mut writer) = connection.split();
            let mut random = 0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1);
            let mut n = 0u64;
            let mut frame = Vec::new();
            while !window.stop.load(Ordering::Relaxed) {
                frame.clear();
                encode_text(&mut frame, &request(client, n, &mut random));
                let sent_at = Instant::now();
                writer.send_raw(&frame).await?;
                let mut ok = None;
                reader
                    .read_frames(|frame| {
                        if frame.opcode == 1 {
                            ok = Some(
                                crate::wsclient::find(frame.payload, br#""status":200"#).is_some(),
                            );
                        }
                        ok.is_none()
                    })
                    .await?;
                let ok = ok.context("connection closed")?;
                window.record(sent_at, ok);
                n += u64::from(ok);
            }
            anyhow::Ok(n)
        }));
    }
    tokio::time::sleep(settings.warmup).await;
    window.measuring.store(true, Ordering::Release);
    let (started, before) = (Instant::now(), server.cpu_seconds());
    tokio::time::sleep(settings.seconds).await;
    window.measuring.store(false, Ordering::Release);
    let elapsed = started.elapsed();
    let cpu = cpu_figures(
        before,
        server.cpu_seconds(),
        window.counted.load(Ordering::Acquire),
    );
    window.stop.store(true, Ordering::Release);
    let mut done = Vec::with_capacity(clients);
    for task in tasks {
        done.push(task.await??);
    }
    Ok(window.into_phase(elapsed, cpu, done))
}

/// Switchyard: creates, then gets, over WebSocket.
fn switchyard(settings: &Settings, clients: usize) -> anyhow::Result<(String, Phase, Phase)> {
    let server = match settings.document_cache {
        Some(bytes) => Running::start_switchyard(
            Protocol::WebSocket,
            &format!("[storage]\ndocumentCacheBytes = {bytes}"),
        )?,
        None => Running::start(Kind::Switchyard, Protocol::WebSocket, None)?,
    };
    let address = server.address();
    runtime().block_on(async {
        let mut setup = WsClient::connect(&address).await?;
        for (n, request) in [
            json!({"controller": "index", "action": "create", "index": "bench"}),
            json!({"controller": "collection", "action": "create", "index": "bench",
                "collection": "docs", "body": mapping()}),
        ]
        .into_iter()
        .enumerate()
        {
            let mut request = request;
            request["requestId"] = json!(format!("setup{n}"));
            setup.send_text(request.to_string().as_bytes()).await?;
            let answer = setup.wait_for(&format!("\"setup{n}\"")).await?;
            anyhow::ensure!(answer.contains(r#""status":200"#), "setup: {answer}");
        }
        let create: Request =
            Arc::new(|client, n, _| {
                json!({"controller": "document", "action": "create", "index": "bench",
                    "collection": "docs", "_id": id(client, n), "body": document(number(client, n)),
                    "requestId": "c"})
                .to_string()
                .into_bytes()
            });
        let creates = ws_phase(&address, clients, settings, &server, create).await?;
        let written = Arc::new(creates.done.clone());
        let get: Request =
            Arc::new(move |_, _, random| {
                format!(
                    r#"{{"controller":"document","action":"get","index":"bench","collection":"docs","_id":"{}","requestId":"g"}}"#,
                    random_id(&written, random)
                )
                .into_bytes()
            });
        let gets = ws_phase(&address, clients, settings, &server, get).await?;
        anyhow::Ok((server.name(), creates, gets))
    })
}

/// SQLite, WAL, `synchronous=FULL`: one thread and one connection per client.
fn sqlite(settings: &Settings, clients: usize) -> anyhow::Result<(String, Phase, Phase)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("baseline.sqlite");
    let conn = rusqlite::Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE docs (id TEXT PRIMARY KEY, version INTEGER, source TEXT) WITHOUT ROWID;",
    )?;
    drop(conn);
    let open = |path: &std::path::Path| -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA busy_timeout=600000;")?;
        Ok(conn)
    };
    let sleep = |d: Duration| std::thread::sleep(d);
    // In process: this process's CPU is the baseline's (the bench does nothing else meanwhile).
    let own_cpu = || crate::target::cpu_seconds(std::process::id());
    // Creates.
    let window = Window::new();
    let (elapsed, cpu, done) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let (window, path) = (&window, &path);
                scope.spawn(move || -> anyhow::Result<u64> {
                    let mut conn = open(path)?;
                    let mut n = 0u64;
                    while !window.stop.load(Ordering::Relaxed) {
                        let sent_at = Instant::now();
                        let txn = rusqlite::Transaction::new(
                            &mut conn,
                            rusqlite::TransactionBehavior::Immediate,
                        )?;
                        txn.execute(
                            "INSERT INTO docs (id, version, source) VALUES (?1, 1, ?2)",
                            (id(client, n), document(number(client, n)).to_string()),
                        )?;
                        txn.commit()?;
                        window.record(sent_at, true);
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        let (elapsed, cpu) = window.measure(settings, &own_cpu, &sleep);
        let done: anyhow::Result<Vec<u64>> = handles
            .into_iter()
            .map(|handle| handle.join().expect("a writer thread"))
            .collect();
        done.map(|done| (elapsed, cpu, done))
    })?;
    let creates = window.into_phase(elapsed, cpu, done);
    // Gets.
    let written = creates.done.clone();
    let window = Window::new();
    let (elapsed, cpu, done) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let (window, path, written) = (&window, &path, &written);
                scope.spawn(move || -> anyhow::Result<u64> {
                    let conn = open(path)?;
                    let mut statement = conn.prepare("SELECT source FROM docs WHERE id = ?1")?;
                    let mut random = 0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1);
                    let mut n = 0u64;
                    while !window.stop.load(Ordering::Relaxed) {
                        let sent_at = Instant::now();
                        let source: String = statement
                            .query_row([random_id(written, &mut random)], |row| row.get(0))?;
                        // Parsed, as the host parses what it stores.
                        let ok = serde_json::from_str::<Value>(&source).is_ok();
                        window.record(sent_at, ok);
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        let (elapsed, cpu) = window.measure(settings, &own_cpu, &sleep);
        let done: anyhow::Result<Vec<u64>> = handles
            .into_iter()
            .map(|handle| handle.join().expect("a reader thread"))
            .collect();
        done.map(|done| (elapsed, cpu, done))
    })?;
    let gets = window.into_phase(elapsed, cpu, done);
    Ok(("sqlite-wal-full".to_string(), creates, gets))
}
