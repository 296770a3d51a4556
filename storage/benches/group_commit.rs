//! Group commit against one commit per write and against SQLite, in the same run, plus reads.
//!
//! `cargo bench -p switchyard-storage --bench group_commit [-- N]`: 50 writer threads, each
//! writing single-document batches (acknowledged only when durable):
//! * `EmbeddedStorage` with group commit (the default);
//! * `EmbeddedStorage` with one commit per write;
//! * SQLite (rusqlite, bundled) in WAL mode, `synchronous=FULL`, one transaction per write, one
//!   connection per thread: the baseline the issue names.
//!
//! Then, on a collection of N documents (default 100000): `get` by id throughput from 2 threads
//! and the latency of a `term` search on an indexed field matching 10 documents.
//! Figures are printed, never asserted.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_storage::{
    EmbeddedOptions, EmbeddedStorage, KuzzleInfo, Operation, Precondition, SearchRequest, Storage,
    WriteBatch,
};

const WRITERS: usize = 50;

fn document(i: u64) -> Value {
    json!({
        "name": format!("user {i}"),
        "email": format!("user{i}@example.com"),
        "age": i % 90,
        "city": format!("city-{}", i % 10_000),
        "tags": [format!("t{}", i % 7), format!("t{}", i % 13)],
        "score": (i % 10_000) as f64 + 0.5,
        "active": i.is_multiple_of(2),
        "bio": format!("lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt {i}"),
    })
}

fn info() -> KuzzleInfo {
    KuzzleInfo {
        author: Some("-1".into()),
        created_at: Some(1_700_000_000_000),
        updated_at: None,
        updater: None,
    }
}

fn put(i: u64) -> Operation {
    Operation::Put {
        id: format!("doc-{i:012}"),
        source: document(i),
        info: info(),
        meta: Vec::new(),
        precondition: Precondition::Absent,
    }
}

const MAPPING: &str = r#"{"properties": {"city": {"type": "keyword"}, "age": {"type": "integer"},
    "active": {"type": "boolean"}, "score": {"type": "double"}}}"#;

fn open(dir: &Path, group_commit: bool) -> Arc<EmbeddedStorage> {
    let store = EmbeddedStorage::open(
        dir,
        EmbeddedOptions {
            group_commit,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    store.create_index("bench").unwrap();
    store
        .create_collection("bench", "docs", &serde_json::from_str(MAPPING).unwrap())
        .unwrap();
    Arc::new(store)
}

/// 50 threads x `per_thread` single-document durable writes; documents per second.
fn embedded_writers(dir: &Path, group_commit: bool, per_thread: u64) -> f64 {
    let store = open(dir, group_commit);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..WRITERS as u64 {
            let store = store.clone();
            scope.spawn(move || {
                for i in 0..per_thread {
                    store
                        .write(WriteBatch {
                            index: "bench".into(),
                            collection: "docs".into(),
                            operations: vec![put(t * 1_000_000 + i)],
                        })
                        .unwrap();
                }
            });
        }
    });
    (WRITERS as u64 * per_thread) as f64 / started.elapsed().as_secs_f64()
}

fn sqlite_writers(dir: &Path, per_thread: u64) -> f64 {
    let path = dir.join("baseline.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE docs (id TEXT PRIMARY KEY, version INTEGER, source TEXT) WITHOUT ROWID;",
    )
    .unwrap();
    drop(conn);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..WRITERS as u64 {
            let path = &path;
            scope.spawn(move || {
                let mut conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA busy_timeout=600000;")
                    .unwrap();
                for i in 0..per_thread {
                    let n = t * 1_000_000 + i;
                    let txn = rusqlite::Transaction::new(
                        &mut conn,
                        rusqlite::TransactionBehavior::Immediate,
                    )
                    .unwrap();
                    txn.execute(
                        "INSERT INTO docs (id, version, source) VALUES (?1, 1, ?2)",
                        (format!("doc-{n:012}"), document(n).to_string()),
                    )
                    .unwrap();
                    txn.commit().unwrap();
                }
            });
        }
    });
    (WRITERS as u64 * per_thread) as f64 / started.elapsed().as_secs_f64()
}

fn reads_and_search(dir: &Path, n: u64) {
    let store = open(dir, true);
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let operations = (i..(i + 5000).min(n)).map(put).collect();
        store
            .write(WriteBatch {
                index: "bench".into(),
                collection: "docs".into(),
                operations,
            })
            .unwrap();
        i += 5000;
    }
    let load = started.elapsed();
    let size = std::fs::metadata(store.path()).unwrap().len();
    // get by id, 2 threads (the machine has 2 cores).
    let reads_per_thread = 200_000u64;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..2u64 {
            let store = store.clone();
            scope.spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                for _ in 0..reads_per_thread {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let id = format!("doc-{:012}", rng % n);
                    assert!(store.get("bench", "docs", &id).unwrap().is_some());
                }
            });
        }
    });
    let get_rate = (2 * reads_per_thread) as f64 / started.elapsed().as_secs_f64();
    // term on an indexed field: `city` has 10000 values, so n / 10000 matches.
    let mut latencies = Vec::new();
    for q in 0..500u64 {
        let request = SearchRequest::from_body(
            &json!({"query": {"term": {"city": format!("city-{}", (q * 7919) % 10_000)}}}),
            None,
            None,
        )
        .unwrap();
        let started = Instant::now();
        let page = store.search("bench", "docs", &request).unwrap();
        latencies.push(started.elapsed());
        assert_eq!(page.total, n / 10_000);
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    // The same on an unmapped field: a full scan.
    let started = Instant::now();
    let request = SearchRequest::from_body(
        &json!({"query": {"term": {"email": "user7@example.com"}}}),
        None,
        None,
    )
    .unwrap();
    assert_eq!(store.search("bench", "docs", &request).unwrap().total, 1);
    let scan = started.elapsed();
    println!(
        "{n} docs: load {:.1} s, file {:.1} MiB | get by id {get_rate:.0}/s (2 threads) | term on indexed field ({} hits) p50 {:.2} ms p99 {:.2} ms | term on unmapped field (full scan) {:.0} ms",
        load.as_secs_f64(),
        size as f64 / (1 << 20) as f64,
        n / 10_000,
        ms(p(0.5)),
        ms(p(0.99)),
        ms(scan),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("?").trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "CPU: {cpu}, {} cores; loadavg {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.trim()
    );
    let base =
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let tmp = || tempfile::tempdir_in(&base).unwrap();
    let group = embedded_writers(tmp().path(), true, 200);
    let single = embedded_writers(tmp().path(), false, 20);
    let sqlite = sqlite_writers(tmp().path(), 20);
    println!(
        "50 writers, single-document durable writes: group commit {group:.0} docs/s | one commit per write {single:.0} docs/s | SQLite WAL synchronous=FULL one txn per write {sqlite:.0} docs/s | group commit / SQLite = {:.1}x",
        group / sqlite
    );
    reads_and_search(tmp().path(), n);
}
