//! Issue 14's two document targets at scale:
//!
//! * `documents-search`: N documents (default 1 M, `--documents`) loaded once with `mCreate`
//!   batches into a collection whose mapping indexes `city` (10,000 distinct values, so a term
//!   matches N / 10,000 documents), then C clients (default 1, `--connections`) each sending
//!   `document:search` with `{"term": {"city": …}}` over WebSocket, as the SDK does, and waiting
//!   for the answer: searches/s, p50/p99. Baseline: SQLite with the same documents, `city` in an
//!   indexed column, `SELECT … WHERE city = ? ORDER BY id` (every row counted, the first 10
//!   parsed: Kuzzle's `total` and default `size`), one connection per client thread, in process.
//! * `documents-subscribed`: durable `document:create` from C clients (default 50) on a server
//!   with R rooms subscribed on the collection (default 10,000, `--rooms`), 99 % of them filters
//!   that never match the written documents and 1 % an `equals` on `city` that 1 % of the writes
//!   match; the baseline is the same server with no subscription at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use super::documents::{document, mapping, next_random, ws_phase, Phase, Request, Window};
use super::{percentiles, ratio, runtime};
use crate::target::{Kind, Protocol, Running};
use crate::wsclient::{find, WsClient};
use crate::Settings;

/// Distinct `city` values in the documents (`document(n)`: `city-{n % 10000}`).
const CITIES: u64 = 10_000;
/// Documents per `mCreate` while loading (the host's `documentsWriteCount` is raised to it).
const LOAD_BATCH: u64 = 1_000;
/// Connections loading at once (their batches share commits).
const LOADERS: u64 = 4;
/// Subscriptions per subscriber connection (`documents-subscribed`).
const ROOMS_PER_CONNECTION: usize = 1_000;

/// The id of the `n`th loaded document.
fn load_id(n: u64) -> String {
    format!("d{n:09}")
}

/// How many of the first `documents` documents have `city-{city}`.
fn documents_in_city(documents: u64, city: u64) -> u64 {
    documents / CITIES + u64::from(city < documents % CITIES)
}

/// Sends `requests` on `client` and waits for their answers, `window` in flight at most;
/// each answer must be a success and contain `expect`.
async fn pipelined(
    client: &mut WsClient,
    requests: &[String],
    window: usize,
    expect: &[u8],
) -> anyhow::Result<()> {
    for chunk in requests.chunks(window) {
        let mut frames = Vec::new();
        for request in chunk {
            crate::wsclient::encode_text(&mut frames, request.as_bytes());
        }
        client.writer_mut().send_raw(&frames).await?;
        let mut answered = 0;
        let mut failure = None;
        client
            .reader_mut()
            .read_frames(|frame| {
                if frame.opcode == 1 && find(frame.payload, br#""requestId""#).is_some() {
                    answered += 1;
                    if find(frame.payload, br#""status":200"#).is_none()
                        || find(frame.payload, expect).is_none()
                    {
                        failure = Some(
                            String::from_utf8_lossy(frame.payload)
                                .chars()
                                .take(600)
                                .collect::<String>(),
                        );
                    }
                }
                answered < chunk.len() && failure.is_none()
            })
            .await?;
        if let Some(failure) = failure {
            anyhow::bail!("a request failed: {failure}");
        }
        anyhow::ensure!(answered == chunk.len(), "the connection closed");
    }
    Ok(())
}

/// Creates index `bench` and collection `docs` with the bench's mapping.
async fn setup(address: &str) -> anyhow::Result<()> {
    let mut client = WsClient::connect(address).await?;
    let requests = [
        json!({"controller": "index", "action": "create", "index": "bench", "requestId": "i"}),
        json!({"controller": "collection", "action": "create", "index": "bench",
            "collection": "docs", "body": mapping(), "requestId": "c"}),
    ];
    for request in requests {
        pipelined(&mut client, &[request.to_string()], 1, br#""status":200"#).await?;
    }
    Ok(())
}

/// `documents-search` scenario.
pub fn documents_search(settings: &Settings) -> anyhow::Result<Value> {
    let clients = settings.connections.max(1);
    let documents = settings.documents.unwrap_or(1_000_000).max(1);
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let result = match kind {
            Kind::Switchyard => search_switchyard(settings, clients, documents)?,
            Kind::Baseline => search_sqlite(settings, clients, documents)?,
        };
        results.push(result);
    }
    Ok(json!({
        "scenario": "documents-search",
        "parameters": {
            "connections": clients,
            "documents": documents,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "request": format!("document:search {{\"query\":{{\"term\":{{\"city\":\"city-<random>\"}}}}}} over WebSocket (default size 10; {} hits per term), after loading the documents with mCreate batches of {LOAD_BATCH}; baseline: SQLite, city in an indexed column, SELECT id, source WHERE city = ? ORDER BY id (all rows counted, 10 parsed), in process", documents_in_city(documents, 0)),
        },
        "results": results,
        "ratio_searches_per_second": ratio(&results, "searches_per_second"),
        "ratio_search_p99": ratio(&results, "search_p99_us"),
    }))
}

/// The record of a search phase.
fn search_record(name: &str, documents: u64, load: Duration, searches: &Phase) -> Value {
    json!({
        "target": name,
        "documents": documents,
        "load_seconds": (load.as_secs_f64() * 10.0).round() / 10.0,
        "load_documents_per_second": (documents as f64 / load.as_secs_f64()).round(),
        "searches_per_second": searches.per_second(),
        "search_latency": percentiles(&searches.latency),
        "search_p99_us": searches.latency.value_at_quantile(0.99),
        "search_cpu": searches.cpu,
    })
}

/// A random city's term search, as the SDK sends it.
fn search_request(documents: u64) -> Request {
    let cities = CITIES.min(documents);
    Arc::new(move |_, _, random| {
        format!(
            r#"{{"controller":"document","action":"search","index":"bench","collection":"docs","body":{{"query":{{"term":{{"city":"city-{}"}}}}}},"requestId":"s"}}"#,
            next_random(random) % cities
        )
        .into_bytes()
    })
}

fn search_switchyard(settings: &Settings, clients: usize, documents: u64) -> anyhow::Result<Value> {
    let server = Running::start_switchyard(
        Protocol::WebSocket,
        &format!("[limits]\ndocumentsWriteCount = {LOAD_BATCH}"),
    )?;
    let address = server.address();
    runtime().block_on(async {
        setup(&address).await?;
        let started = Instant::now();
        let next_batch = Arc::new(AtomicU64::new(0));
        let mut loaders = Vec::new();
        for _ in 0..LOADERS {
            let mut client = WsClient::connect(&address).await?;
            let next_batch = Arc::clone(&next_batch);
            loaders.push(tokio::spawn(async move {
                loop {
                    let first = next_batch.fetch_add(1, Ordering::Relaxed) * LOAD_BATCH;
                    if first >= documents {
                        return anyhow::Ok(());
                    }
                    let batch: Vec<Value> = (first..(first + LOAD_BATCH).min(documents))
                        .map(|n| json!({"_id": load_id(n), "body": document(n)}))
                        .collect();
                    let request = json!({"controller": "document", "action": "mCreate",
                        "index": "bench", "collection": "docs",
                        "body": {"documents": batch}, "requestId": "l"});
                    pipelined(&mut client, &[request.to_string()], 1, br#""errors":[]"#).await?;
                }
            }));
        }
        for loader in loaders {
            loader.await??;
        }
        let load = started.elapsed();
        // The answer is right before it is fast.
        let mut check = WsClient::connect(&address).await?;
        let total = format!(r#""total":{}"#, documents_in_city(documents, 7));
        let request = json!({"controller": "document", "action": "search", "index": "bench",
            "collection": "docs", "body": {"query": {"term": {"city": "city-7"}}},
            "requestId": "check"});
        pipelined(&mut check, &[request.to_string()], 1, total.as_bytes())
            .await
            .context("the check search")?;
        let searches = ws_phase(
            &address,
            clients,
            settings,
            &server,
            search_request(documents),
        )
        .await?;
        anyhow::ensure!(searches.failed == 0, "{} searches failed", searches.failed);
        anyhow::Ok(search_record(&server.name(), documents, load, &searches))
    })
}

fn search_sqlite(settings: &Settings, clients: usize, documents: u64) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("baseline.sqlite");
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE docs (id TEXT PRIMARY KEY, city TEXT, source TEXT) WITHOUT ROWID;
         CREATE INDEX docs_city ON docs (city);",
    )?;
    let started = Instant::now();
    for first in (0..documents).step_by(LOAD_BATCH as usize) {
        let txn = conn.transaction()?;
        {
            let mut insert =
                txn.prepare("INSERT INTO docs (id, city, source) VALUES (?1, ?2, ?3)")?;
            for n in first..(first + LOAD_BATCH).min(documents) {
                let source = document(n);
                insert.execute((load_id(n), source["city"].as_str(), source.to_string()))?;
            }
        }
        txn.commit()?;
    }
    let load = started.elapsed();
    drop(conn);
    let own_cpu = || crate::target::cpu_seconds(std::process::id());
    let sleep = |d: Duration| std::thread::sleep(d);
    let window = Window::new();
    let cities = CITIES.min(documents);
    let (elapsed, cpu, done) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let (window, path) = (&window, &path);
                scope.spawn(move || -> anyhow::Result<u64> {
                    let conn = rusqlite::Connection::open(path)?;
                    let mut statement =
                        conn.prepare("SELECT id, source FROM docs WHERE city = ?1 ORDER BY id")?;
                    let mut random = 0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1);
                    let mut n = 0u64;
                    while !window.stop.load(Ordering::Relaxed) {
                        let sent_at = Instant::now();
                        let city = format!("city-{}", next_random(&mut random) % cities);
                        let mut rows = statement.query([city])?;
                        let (mut total, mut ok) = (0u64, true);
                        while let Some(row) = rows.next()? {
                            total += 1;
                            if total <= 10 {
                                let _id: String = row.get(0)?;
                                let source: String = row.get(1)?;
                                ok &= serde_json::from_str::<Value>(&source).is_ok();
                            }
                        }
                        window.record(sent_at, ok && total > 0);
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        let (elapsed, cpu) = window.measure(settings, &own_cpu, &sleep);
        let done: anyhow::Result<Vec<u64>> = handles
            .into_iter()
            .map(|handle| handle.join().expect("a search thread"))
            .collect();
        done.map(|done| (elapsed, cpu, done))
    })?;
    let searches = window.into_phase(elapsed, cpu, done);
    anyhow::ensure!(searches.failed == 0, "{} searches failed", searches.failed);
    Ok(search_record(
        "sqlite-indexed-column",
        documents,
        load,
        &searches,
    ))
}

/// `documents-subscribed` scenario.
pub fn documents_subscribed(settings: &Settings) -> anyhow::Result<Value> {
    let clients = if settings.connections == 0 {
        50
    } else {
        settings.connections
    };
    let rooms = settings.rooms.unwrap_or(10_000);
    let mut results = Vec::new();
    // The baseline (no subscription) first, then the same server with the rooms.
    for kind in [Kind::Baseline, Kind::Switchyard] {
        if !settings.targets.contains(&kind) {
            continue;
        }
        let (name, rooms) = match kind {
            Kind::Switchyard => ("switchyard", rooms),
            Kind::Baseline => ("switchyard-no-subscriptions", 0),
        };
        let (creates, notifications) = subscribed_run(settings, clients, rooms)?;
        anyhow::ensure!(
            creates.failed == 0,
            "{name}: {} creates failed",
            creates.failed
        );
        results.push(json!({
            "target": name,
            "rooms": rooms,
            "creates_per_second": creates.per_second(),
            "create_latency": percentiles(&creates.latency),
            "create_cpu": creates.cpu,
            "documents": creates.done.iter().sum::<u64>(),
            "notifications_received": notifications,
        }));
    }
    Ok(json!({
        "scenario": "documents-subscribed",
        "parameters": {
            "connections": clients,
            "rooms": rooms,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "request": format!("durable document:create over WebSocket; switchyard: {rooms} rooms on the collection ({ROOMS_PER_CONNECTION} per subscriber connection), 1 % equals on city (1 % of writes match one), the others equals / range / and filters that never match; baseline: the same server, no subscription"),
        },
        "results": results,
        "ratio_creates_per_second": ratio(&results, "creates_per_second"),
    }))
}

/// Room `r`'s filter: the first `matching` ones match the documents of one city each
/// (`city-0`, `city-100`, …: a client's `n`th document has `city-{n % 10000}`, so 1 % of every
/// client's writes, spread over the run), the others never match.
fn room_filter(r: usize, matching: usize) -> Value {
    if r < matching {
        let city = r * (CITIES as usize / matching.max(1)).max(1);
        return json!({"equals": {"city": format!("city-{city}")}});
    }
    match r % 3 {
        0 => json!({"equals": {"city": format!("elsewhere-{r}")}}),
        1 => json!({"range": {"age": {"gte": 1000 + r}}}),
        _ => {
            json!({"and": [{"equals": {"active": true}}, {"equals": {"city": format!("elsewhere-{r}")}}]})
        }
    }
}

/// One fresh server with `rooms` rooms, creates measured; with the notifications received.
fn subscribed_run(
    settings: &Settings,
    clients: usize,
    rooms: usize,
) -> anyhow::Result<(Phase, u64)> {
    let server = Running::start(Kind::Switchyard, Protocol::WebSocket, None)?;
    let address = server.address();
    runtime().block_on(async {
        setup(&address).await?;
        let matching = if rooms == 0 { 0 } else { (rooms / 100).max(1) };
        let received = Arc::new(AtomicU64::new(0));
        let mut drains = Vec::new();
        for first in (0..rooms).step_by(ROOMS_PER_CONNECTION) {
            let mut client = WsClient::connect(&address).await?;
            let requests: Vec<String> = (first..(first + ROOMS_PER_CONNECTION).min(rooms))
                .map(|r| {
                    json!({"controller": "realtime", "action": "subscribe", "index": "bench",
                        "collection": "docs", "body": room_filter(r, matching),
                        "requestId": format!("sub-{r}")})
                    .to_string()
                })
                .collect();
            pipelined(&mut client, &requests, 100, br#""roomId""#).await?;
            let received = Arc::clone(&received);
            drains.push(tokio::spawn(async move {
                let (mut reader, _writer) = client.split();
                let _ = reader
                    .read_frames(|frame| {
                        if frame.opcode == 1 {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        true
                    })
                    .await;
            }));
        }
        let create: Request = Arc::new(|client, n, _| {
            json!({"controller": "document", "action": "create", "index": "bench",
                "collection": "docs", "_id": super::documents::id(client, n),
                "body": document(super::documents::number(client, n)), "requestId": "c"})
            .to_string()
            .into_bytes()
        });
        let creates = ws_phase(&address, clients, settings, &server, create).await?;
        for drain in drains {
            drain.abort();
        }
        anyhow::Ok((creates, received.load(Ordering::Relaxed)))
    })
}
